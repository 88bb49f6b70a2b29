"""Which Runbook handles a signal, and which object it acts on — with a reason for every candidate.

Rules, in the order they are checked for each candidate:

1. A suspended Runbook never matches.
2. Namespace: a namespaced Runbook only handles signals about its own
   namespace. The namespace a signal concerns is the one the edge established
   (the pod's, the SLO's, the alert route's), else the signal's `namespace`
   label. If both are known and disagree, the signal is refused outright; if
   neither is known, no Runbook matches. This is a security property: an
   alert label must never point a Runbook at another namespace.
3. Triggers: trigger kinds map one to one onto signal sources
   (alert <-> alertmanager, sloBurn <-> sloBurn, podState <-> podState,
   anomaly <-> anomaly); `manual` signals name their Runbook directly and are
   not matched here (`render_target` serves them).
   - alert: every matcher holds, with Alertmanager semantics: `=`, `!=`,
     `=~`, `!~`; regexes are RE2 (linear time, `core.regexes`), fully
     anchored, and see a label value's first 1024 characters; a missing
     label equals ""; `alertname` defaults to the signal's name.
   - sloBurn: the SLO name and the severity ("page" | "ticket") are equal.
   - podState: the state is listed and the pod's labels (the signal's labels)
     satisfy the selector. `gracePeriod` and `minRestarts` are applied by the
     pod-state edge before it emits a signal, not here.
   - anomaly: the signal's `query` annotation is the trigger's query (the
     anomaly evaluator copies the query it scored), compared with
     whitespace collapsed.
   - nodeCondition: the condition type is the trigger's, its status one of
     the trigger's statuses, held at least `for` (the signal's `heldSeconds`
     label), and the Node's labels satisfy the selector. The node edge
     (signals/nodes.py) sends one signal per namespace holding such a Runbook.
4. Most specific wins: more equality matchers, then more regex matchers, then
   more matchers in all; then higher `priority`; then name, for determinism.
   A Runbook with several matching triggers counts its most specific one.
5. The winner's target is rendered (kind from the Runbook, namespace = the
   Runbook's namespace, name from the template). If that fails, nothing
   matches: the runner-up is not substituted, because "unknown -> do nothing"
   and a crafted label should not be able to steer an alert to another Runbook.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from remediator.api.models import (
    AlertTrigger,
    AnomalyTrigger,
    LabelSelector,
    Matcher,
    NodeConditionTrigger,
    ObjectRef,
    PodStateTrigger,
    RemediationSpec,
    RunbookSpec,
    Signal,
    SloBurnTrigger,
    Trigger,
)
from remediator.core.durations import parse_duration
from remediator.core.match.regexes import MAX_MATCHED_CHARS, RegexError, full_match
from remediator.core.match.templating import TemplateError, render_name

CLUSTER_SCOPED_KINDS = frozenset({"Node"})
NAMESPACE_LABEL = "namespace"
ANOMALY_QUERY_ANNOTATION = "query"


@dataclass(frozen=True)
class RunbookEntry:
    namespace: str
    name: str
    generation: int | None
    spec: RunbookSpec

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, order=True)
class Specificity:
    """Compared as a tuple: equality matchers first, then regex matchers, then all matchers."""

    equalities: int
    patterns: int
    total: int

    def describe(self) -> str:
        return f"{self.equalities} equality, {self.patterns} regex, {self.total} matchers in all"


@dataclass(frozen=True)
class TriggerMatch:
    matched: bool
    reason: str
    specificity: Specificity = Specificity(0, 0, 0)


@dataclass(frozen=True)
class MatchResult:
    runbook: RunbookEntry | None
    target: ObjectRef | None
    reasons: list[str]
    rejected: list[tuple[str, str]]  # (runbook key, why it was not chosen)

    @property
    def matched(self) -> bool:
        return self.runbook is not None and self.target is not None


def match_signal(signal: Signal, namespace: str | None, runbooks: Sequence[RunbookEntry]) -> MatchResult:
    """Pick the Runbook for `signal` among `runbooks`; every candidate is explained."""
    concerned, refusal = signal_namespace(signal, namespace)
    if refusal:
        return MatchResult(None, None, [refusal], [(entry.key, refusal) for entry in _sorted(runbooks)])

    rejected: list[tuple[str, str]] = []
    eligible: list[tuple[RunbookEntry, TriggerMatch]] = []
    for entry in _sorted(runbooks):
        verdict = runbook_matches(entry, signal, concerned)
        if verdict.matched:
            eligible.append((entry, verdict))
        else:
            rejected.append((entry.key, verdict.reason))

    if not eligible:
        return MatchResult(None, None, [f"no Runbook matches {describe_signal(signal)}"], rejected)

    eligible.sort(key=lambda pair: (-pair[1].specificity.equalities, -pair[1].specificity.patterns,
                                    -pair[1].specificity.total, -pair[0].spec.priority, pair[0].name))
    winner, winning = eligible[0]
    for loser, losing in eligible[1:]:
        rejected.append((loser.key, f"matched ({losing.reason}), but {_why_beaten(winner, winning, loser, losing)}"))

    reasons = [f"Runbook {winner.key} matches {describe_signal(signal)}: {winning.reason}"]
    if len(eligible) > 1:
        reasons.append(f"chosen over {len(eligible) - 1} other matching Runbook(s) as the most specific")
    try:
        target = render_target(winner, signal)
    except TemplateError as err:
        reasons.append(f"cannot act: {err}")
        return MatchResult(None, None, reasons, [(winner.key, f"target could not be rendered: {err}"), *rejected])
    reasons.append(f"target is {target_display(target)}")
    return MatchResult(winner, target, reasons, rejected)


FOREIGN_HINTS = 3


def foreign_matches(signal: Signal, namespace: str, runbooks: Sequence[RunbookEntry],
                    limit: int = FOREIGN_HINTS) -> list[str]:
    """Runbooks of other namespaces that this signal would have matched (the first `limit`): each is refused, and
    why, so a label pointing at another namespace never borrows a Runbook from there.

    Only a hint, so only the cheap part is checked: another tenant's regexes are never run for it
    (alert triggers are compared on their `=`/`!=` matchers, and need at least one)."""
    refused = []
    for entry in _sorted(runbooks):
        if len(refused) == limit:
            break
        if entry.namespace == namespace:
            continue
        if runbook_matches(entry, signal, entry.namespace, equalities_only=True).matched:
            refused.append(f"Runbook {entry.key} matches the signal's labels but acts only in namespace "
                           f"{entry.namespace!r}, and the signal is about {namespace!r}: refused")
    return refused


def signal_namespace(signal: Signal, namespace: str | None) -> tuple[str | None, str | None]:
    """(the namespace the signal concerns, None) or (None, why the signal is refused)."""
    labelled = signal.labels.get(NAMESPACE_LABEL) or None
    if namespace and labelled and labelled != namespace:
        return None, (
            f"refused: the signal was received for namespace {namespace!r} but its namespace label "
            f"says {labelled!r}; a label never retargets a Runbook"
        )
    concerned = namespace or labelled
    if not concerned:
        return None, "refused: the signal concerns no namespace, and Runbooks only act inside their own"
    return concerned, None


def runbook_matches(entry: RunbookEntry, signal: Signal, namespace: str,
                    equalities_only: bool = False) -> TriggerMatch:
    """Whether one Runbook takes the signal, with its most specific matching trigger's specificity.
    `equalities_only`: alert triggers are judged on their `=`/`!=` matchers alone (no regex runs)."""
    if entry.spec.suspend:
        return TriggerMatch(False, "suspended")
    if entry.namespace != namespace:
        return TriggerMatch(
            False,
            f"lives in namespace {entry.namespace!r} and only handles signals about it; "
            f"this signal concerns {namespace!r}",
        )
    verdicts = [trigger_matches(trigger, signal, equalities_only) for trigger in entry.spec.triggers]
    hits = [v for v in verdicts if v.matched]
    if hits:
        return max(hits, key=lambda v: v.specificity)
    return TriggerMatch(False, "; ".join(v.reason for v in verdicts))


def trigger_matches(trigger: Trigger, signal: Signal, equalities_only: bool = False) -> TriggerMatch:
    kind, body = trigger_kind(trigger)
    expected_source = TRIGGER_SOURCES.get(kind)
    if body is None or expected_source is None:
        return TriggerMatch(False, "trigger must set exactly one of alert, sloBurn, podState, anomaly, nodeCondition")
    if signal.source != expected_source:
        return TriggerMatch(False, f"{kind} trigger does not take {signal.source} signals")
    if isinstance(body, AlertTrigger):
        if equalities_only:
            return alert_equalities_match(body, alert_labels(signal))
        return alert_matches(body, alert_labels(signal))
    if isinstance(body, SloBurnTrigger):
        return slo_burn_matches(body, signal)
    if isinstance(body, PodStateTrigger):
        return pod_state_matches(body, signal)
    if isinstance(body, NodeConditionTrigger):
        return node_condition_matches(body, signal)
    return anomaly_matches(body, signal)


TRIGGER_SOURCES = {"alert": "alertmanager", "sloBurn": "sloBurn", "podState": "podState", "anomaly": "anomaly",
                   "nodeCondition": "nodeCondition"}


def trigger_kind(trigger: Trigger) -> tuple[str, object | None]:
    """(kind, body); ("none", None) unless exactly one kind is set, so an ambiguous trigger never fires."""
    kinds = [(kind, body) for kind, body in (("alert", trigger.alert), ("sloBurn", trigger.slo_burn),
                                             ("podState", trigger.pod_state), ("anomaly", trigger.anomaly),
                                             ("nodeCondition", trigger.node_condition))
             if body is not None]
    return kinds[0] if len(kinds) == 1 else ("none", None)


def alert_labels(signal: Signal) -> dict[str, str]:
    labels = dict(signal.labels)
    labels.setdefault("alertname", signal.name)
    return labels


def alert_matches(trigger: AlertTrigger, labels: Mapping[str, str]) -> TriggerMatch:
    for matcher in trigger.matchers:
        holds, why = matcher_holds(matcher, labels)
        if not holds:
            return TriggerMatch(False, f"alert matcher {matcher_text(matcher)} fails: {why}")
    shown = ", ".join(matcher_text(m) for m in trigger.matchers)
    return TriggerMatch(True, f"alert matchers {{{shown}}} hold", alert_specificity(trigger))


def alert_equalities_match(trigger: AlertTrigger, labels: Mapping[str, str]) -> TriggerMatch:
    """The trigger's `=`/`!=` matchers hold (its regex matchers are not evaluated); false without any."""
    equalities = [m for m in trigger.matchers if m.op in ("=", "!=")]
    if not equalities:
        return TriggerMatch(False, "alert trigger has no equality matcher")
    return alert_matches(trigger.model_copy(update={"matchers": equalities}), labels)


def alert_specificity(trigger: AlertTrigger) -> Specificity:
    ops = [m.op for m in trigger.matchers]
    return Specificity(ops.count("="), ops.count("=~"), len(ops))


def matcher_holds(matcher: Matcher, labels: Mapping[str, str]) -> tuple[bool, str]:
    """Alertmanager semantics: a missing label is ""; regexes must match the whole value."""
    value = labels.get(matcher.name, "")
    shown = f"{matcher.name}={value!r}" if matcher.name in labels else f"{matcher.name} is missing (\"\")"
    if matcher.op in ("=", "!="):
        equal = value == matcher.value
        return equal == (matcher.op == "="), shown
    try:
        found = full_match(matcher.value, value)
    except RegexError as err:
        return False, f"invalid regex {matcher.value!r}: {err}"
    if matcher.op == "!~" and len(value) > MAX_MATCHED_CHARS:  # the unseen rest might match: no proof of absence
        return False, f"{matcher.name} is longer than the {MAX_MATCHED_CHARS} characters a regex sees, so " \
                      f"!~ cannot be shown to hold"
    return found == (matcher.op == "=~"), shown


def matcher_text(matcher: Matcher) -> str:
    return f"{matcher.name}{matcher.op}{matcher.value!r}"


def slo_burn_matches(trigger: SloBurnTrigger, signal: Signal) -> TriggerMatch:
    if signal.name != trigger.slo:
        return TriggerMatch(False, f"sloBurn trigger is for SLO {trigger.slo!r}, the signal is about {signal.name!r}")
    if signal.severity != trigger.severity:
        return TriggerMatch(
            False, f"sloBurn trigger wants a {trigger.severity!r} burn, the signal is {signal.severity or 'unset'!r}"
        )
    return TriggerMatch(True, f"SLO {trigger.slo!r} burns at {trigger.severity!r} severity", Specificity(2, 0, 2))


def pod_state_matches(trigger: PodStateTrigger, signal: Signal) -> TriggerMatch:
    if signal.name not in trigger.states:
        return TriggerMatch(False, f"podState trigger wants {'/'.join(trigger.states)}, the pod is {signal.name!r}")
    waited = signal.labels.get("notReadySeconds", "")
    if signal.name == "NotReady" and waited.isdigit():
        grace = parse_duration(trigger.grace_period)
        if int(waited) < grace.total_seconds():
            return TriggerMatch(False, f"not Ready for {waited}s, the trigger's grace period is {trigger.grace_period}")
    restarts = signal.labels.get("restarts", "")
    if signal.name == "CrashLoopBackOff" and restarts.isdigit() and int(restarts) < trigger.min_restarts:
        return TriggerMatch(False, f"{restarts} restart(s), the trigger wants at least {trigger.min_restarts}")
    holds, why = selector_holds(trigger.selector, signal.labels)
    if not holds:
        return TriggerMatch(False, f"pod labels do not satisfy the selector: {why}")
    return TriggerMatch(True, f"pod is {signal.name} and {why}", selector_specificity(trigger.selector))


def node_condition_matches(trigger: NodeConditionTrigger, signal: Signal) -> TriggerMatch:
    if signal.name != trigger.type:
        return TriggerMatch(False, f"nodeCondition trigger is for condition {trigger.type!r}, the signal is about "
                                   f"{signal.name!r}")
    status = signal.labels.get("status", "")
    if status not in trigger.statuses:
        return TriggerMatch(False, f"nodeCondition trigger wants {trigger.type} {'/'.join(trigger.statuses)}, "
                                   f"the node has {status or 'no status'!r}")
    held = signal.labels.get("heldSeconds", "")
    if not held.isdigit() or int(held) < parse_duration(trigger.for_).total_seconds():
        return TriggerMatch(False, f"{trigger.type}={status} held {held or '?'}s, the trigger wants {trigger.for_}")
    holds, why = selector_holds(trigger.selector, signal.labels)
    if not holds:
        return TriggerMatch(False, f"node labels do not satisfy the selector: {why}")
    return TriggerMatch(True, f"node {signal.labels.get('node', '?')} has {trigger.type}={status} for {held}s "
                              f"(at least {trigger.for_})", selector_specificity(trigger.selector))


def selector_holds(selector: LabelSelector, labels: Mapping[str, str]) -> tuple[bool, str]:
    """Kubernetes label-selector semantics; an empty selector selects everything."""
    for key, value in selector.match_labels.items():
        if labels.get(key) != value:
            return False, f"{key}={value!r} wanted, pod has {_label_shown(labels, key)}"
    for req in selector.match_expressions:
        present = req.key in labels
        if req.operator == "In" and not (present and labels[req.key] in req.values):
            return False, f"{req.key} in {req.values} wanted, pod has {_label_shown(labels, req.key)}"
        if req.operator == "NotIn" and present and labels[req.key] in req.values:
            return False, f"{req.key} not in {req.values} wanted, pod has {_label_shown(labels, req.key)}"
        if req.operator == "Exists" and not present:
            return False, f"label {req.key!r} must exist"
        if req.operator == "DoesNotExist" and present:
            return False, f"label {req.key!r} must not exist"
    if not selector.match_labels and not selector.match_expressions:
        return True, "the selector is empty (every pod)"
    return True, "the pod labels satisfy the selector"


def selector_specificity(selector: LabelSelector) -> Specificity:
    # The state itself is one equality; matchLabels and single-valued In are equalities too.
    equalities = 1 + len(selector.match_labels) + sum(
        1 for r in selector.match_expressions if r.operator == "In" and len(r.values) == 1
    )
    total = 1 + len(selector.match_labels) + len(selector.match_expressions)
    patterns = sum(1 for r in selector.match_expressions if r.operator == "In" and len(r.values) > 1)
    return Specificity(equalities, patterns, total)


def anomaly_matches(trigger: AnomalyTrigger, signal: Signal) -> TriggerMatch:
    scored = signal.annotations.get(ANOMALY_QUERY_ANNOTATION, "")
    if _squash(scored) != _squash(trigger.query):
        return TriggerMatch(False, "anomaly trigger's query is not the one the signal scored")
    what = trigger.description or "the anomaly query"
    return TriggerMatch(True, f"{what} is anomalous", Specificity(1, 0, 1))


def render_target(entry: RunbookEntry, signal: Signal) -> ObjectRef:
    """The object the Runbook acts on: its own namespace, never one taken from a label."""
    name = render_name(entry.spec.target.name, signal.labels)
    kind = entry.spec.target.kind
    namespace = None if kind in CLUSTER_SCOPED_KINDS else entry.namespace
    return ObjectRef(kind=kind, namespace=namespace, name=name)


def remediation_namespace_problem(namespace: str, spec: RemediationSpec) -> str | None:
    """Why a Remediation living in `namespace` may not run as its spec says, or None. The operator only
    writes Remediations whose Runbook and target share their namespace (rule 5); one created by hand that
    points elsewhere would borrow another tenant's Runbook or reach its workloads."""
    wrong = [f"{field} is {value!r}" for field, value in (("spec.runbook.namespace", spec.runbook.namespace),
                                                          ("spec.target.namespace", spec.target.namespace))
             if value is not None and value != namespace]
    if not wrong:
        return None
    return (f"{' and '.join(wrong)}, but this Remediation lives in namespace {namespace!r}: "
            "a Remediation acts only with a Runbook and on a target of its own namespace")


def target_display(target: ObjectRef) -> str:
    return f"{target.kind}/{target.namespace}/{target.name}" if target.namespace else f"{target.kind}/{target.name}"


def describe_signal(signal: Signal) -> str:
    return f"{signal.source} signal {signal.name!r}"


def _why_beaten(winner: RunbookEntry, winning: TriggerMatch, loser: RunbookEntry, losing: TriggerMatch) -> str:
    if winning.specificity != losing.specificity:
        return (f"{winner.key} is more specific ({winning.specificity.describe()} "
                f"vs {losing.specificity.describe()})")
    if winner.spec.priority != loser.spec.priority:
        return f"{winner.key} has a higher priority ({winner.spec.priority} vs {loser.spec.priority})"
    return f"{winner.key} is as specific and as high in priority, and its name sorts first"


def _label_shown(labels: Mapping[str, str], key: str) -> str:
    return f"{key}={labels[key]!r}" if key in labels else f"no {key!r} label"


def _squash(text: str) -> str:
    return " ".join(text.split())


def _sorted(runbooks: Sequence[RunbookEntry]) -> list[RunbookEntry]:
    return sorted(runbooks, key=lambda entry: (entry.namespace, entry.name))
