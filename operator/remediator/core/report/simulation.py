"""What the operator would do with an alert, decided offline: `remediator simulate`.

Pure: alerts (as Signals), Runbooks, RemediationPolicies, exported
Remediations and `now` in; one explained `AlertSimulation` per alert out.
Nothing is read or written here; the CLI reads the files and prints.

The simulation walks the same code the operator runs, in the same order, with
what the operator would observe replaced by what the user says:

1. ingest (controller/ingest.py): the alert's `namespace` label is the
   namespace it concerns; a resolved alert only marks its Remediation;
   a Remediation of the same name already in the history makes the delivery
   a duplicate (the apiserver's create conflict);
2. matching (core.matching), every candidate with its reason;
3. the policy (core.policy_select), every policy with why it applies or not;
4. the facts of the first runnable step, as controller/guard_facts.py
   gathers them, with what it reads from the cluster taken from the user:
   the guards (core.guards) fed by the same builder the operator uses
   (core.guard_inputs.observe_step: pods touched, replicas and memory a step
   sets) and the target's replicas from `replicas` (unknown when not given: the
   blast-radius guard then blocks, as it does in the cluster when it cannot
   read them), and the risk input (core.risk): namespace and target labels,
   the namespace's pod count, recent failures from the history, freeze
   windows from the policy, and the server-side dry run's result, which
   cannot run offline (`unavailable` unless the user says otherwise);
5. the first decision of the loop (core.engine.decide on a new Remediation),
   which plans the ladder, scores the risk and applies guards, dry run and
   the approval rule: its resulting phase is the outcome.

Choices:

- A Runbook document without `metadata.namespace` is placed where `kubectl
  apply -n NS` would put it: `runbook_namespace` when given, else the
  namespace the alert concerns (so the library in runbooks/ can be tried
  against any alert). A later document with the same namespace/name replaces
  an earlier one, as a second apply would.
- The probable cause is ranked (core.cause) from the changes the user
  gives (`changes`, as the operator's change journal would hold them) and
  the objects the target references; without any changes given the cause
  is unknown, and steps with a `when` are skipped, as they would be in a
  cluster whose change journal could not be read. An empty list of changes
  is a finding: nothing changed (cause "none").
- The history is taken as it stood at `now`: Remediations created after it
  (an export taken later, or `--now` in the past) are left out, and a note
  says how many; their phases are the export's, not those at `now`.
- The operator reads replicas of Deployments, StatefulSets and DaemonSets
  (desiredNumberScheduled); for other kinds there are none. The update
  strategy, when not given, is the one the apiserver fills in by default.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from remediator.api.models import (
    TERMINAL_PHASES,
    Approval,
    PlannedStep,
    ProbableCause,
    RemediationPolicySpec,
    RemediationSpec,
    RemediationStatus,
    RunbookRef,
    RunbookSpec,
    Signal,
)
from remediator.core.approve import approval
from remediator.core.plan import autoscalers, cause, gitops, guard_inputs, guards, planning, risk
from remediator.core.plan.nodes import NodeFact
from remediator.core.engine import engine, state
from remediator.core.match import matching, policy_select
from remediator.core.durations import format_time, parse_time
from remediator.core.plan.guard_inputs import past_remediation
from remediator.core.plan.sizing import ROLLING_DEFAULTS, Strategy

AlertStatus = Literal["firing", "resolved"]
Outcome = Literal["act", "awaitApproval", "skip", "dryRun", "unmatched", "duplicate", "resolved"]

# As controller/guard_facts.py: the kinds whose replicas the operator reads.
REPLICA_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet"})


# ---------------------------------------------------------------- inputs


@dataclass(frozen=True)
class RunbookDoc:
    """One Runbook as read from a file; `namespace` None = placed by the simulation (see module doc)."""

    name: str
    spec: RunbookSpec
    namespace: str | None = None
    generation: int | None = None
    origin: str = ""  # "runbooks/x.yaml doc 1", for the reader


@dataclass(frozen=True)
class PolicyDoc:
    """One RemediationPolicy: its name and its spec as written (validated by policy_select, as in the cluster)."""

    name: str
    spec: Mapping[str, Any]


@dataclass(frozen=True)
class IncomingAlert:
    status: AlertStatus
    signal: Signal


@dataclass(frozen=True)
class Settings:
    now: datetime
    replicas: int | None = None  # the target workload's spec.replicas; None = unknown
    runbook_namespace: str | None = None  # where Runbooks without a namespace are applied
    namespace_labels: Mapping[str, str] = field(default_factory=dict)  # labels of the alert's namespace
    target_labels: Mapping[str, str] = field(default_factory=dict)  # labels of the target object
    namespace_pods: int | None = None  # pods in the namespace, for the risk's namespace share; None = unknown
    server_dry_run: risk.DryRunResult = "unavailable"  # what the apiserver's dry run of the step would answer
    changes: tuple[cause.Change, ...] | None = None  # the change journal's content; None = unknown
    strategy: Strategy | None = None  # the target's update strategy; None = the apiserver's default for its kind
    references: frozenset[str] = frozenset()  # what the target references: "ConfigMap/x", "Node/n" ...
    change_window: timedelta = cause.DEFAULT_WINDOW
    action_service_account: str | None = None  # the operator's tenant action account (chart: actions.serviceAccount)
    hpa: tuple[int, int] | None = None  # (minReplicas, maxReplicas) of an HPA targeting the target; None = none
    pods: tuple[guard_inputs.PodFact, ...] | None = None  # cordonDrain: the node's pods; None = unknown
    nodes: tuple[NodeFact, ...] | None = None  # cordonDrain: every Node, for minHealthy; None = unknown

    def __post_init__(self) -> None:
        if self.now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        for name in ("replicas", "namespace_pods"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must not be negative, got {value}")
        if self.server_dry_run not in risk.DRY_RUN_POINTS:
            raise ValueError(f"server_dry_run must be one of {', '.join(risk.DRY_RUN_POINTS)}")
        object.__setattr__(self, "namespace_labels", dict(self.namespace_labels))
        object.__setattr__(self, "target_labels", dict(self.target_labels))


# ---------------------------------------------------------------- outputs


@dataclass(frozen=True)
class Candidate:
    runbook: str  # namespace/name
    chosen: bool
    reason: str


@dataclass(frozen=True)
class PolicyChoice:
    name: str | None  # the governing policy; None = none applies, default guardrails
    mode: str
    reasons: list[str]


@dataclass(frozen=True)
class RiskView:
    step: str
    score: int
    level: str
    reasons: list[str]
    notes: list[str] = field(default_factory=list)  # where offline facts stand in for the cluster's


@dataclass(frozen=True)
class ApprovalView:
    level: str
    approvers: int
    needed: bool
    defaulted: bool
    reasons: list[str]


@dataclass(frozen=True)
class GuardView:
    step: str
    action: str
    replicas: int | None
    pods_touched: int | None
    allowed: bool
    decisions: list[guards.GuardDecision]
    notes: list[str]


@dataclass(frozen=True)
class AlertSimulation:
    alert: str  # alertname
    fingerprint: str
    status: AlertStatus
    namespace: str | None
    outcome: Outcome
    summary: str
    remediation: str | None = None  # namespace/name of the Remediation it would create or touch
    runbook: str | None = None
    target: str | None = None
    match_reasons: list[str] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    policy: PolicyChoice | None = None
    plan: list[PlannedStep] = field(default_factory=list)
    risk: RiskView | None = None
    approval: ApprovalView | None = None
    guards: GuardView | None = None
    probable_cause: ProbableCause | None = None  # None: unknown (no changes given)
    phase: str | None = None  # the Remediation's phase after the operator's first decision
    phase_reason: str = ""
    gitops: str = ""  # the target's GitOps owner (from --target-label) and the policy's mode for it

    def to_dict(self) -> dict[str, Any]:
        return {
            "alert": self.alert, "fingerprint": self.fingerprint, "status": self.status,
            "namespace": self.namespace, "outcome": self.outcome, "summary": self.summary,
            "remediation": self.remediation, "runbook": self.runbook, "target": self.target,
            "match": {"reasons": list(self.match_reasons),
                      "candidates": [{"runbook": c.runbook, "chosen": c.chosen, "reason": c.reason}
                                     for c in self.candidates]},
            "policy": None if self.policy is None else {
                "name": self.policy.name, "mode": self.policy.mode, "reasons": list(self.policy.reasons)},
            "plan": [step.wire() for step in self.plan],
            "risk": None if self.risk is None else {
                "step": self.risk.step, "score": self.risk.score, "level": self.risk.level,
                "reasons": list(self.risk.reasons), "notes": list(self.risk.notes)},
            "approval": None if self.approval is None else {
                "level": self.approval.level, "approvers": self.approval.approvers, "needed": self.approval.needed,
                "defaulted": self.approval.defaulted, "reasons": list(self.approval.reasons)},
            "guards": None if self.guards is None else {
                "step": self.guards.step, "action": self.guards.action, "replicas": self.guards.replicas,
                "podsTouched": self.guards.pods_touched, "allowed": self.guards.allowed,
                "decisions": [{"guard": d.guard, "allowed": d.allowed, "reason": d.reason}
                              for d in self.guards.decisions],
                "notes": list(self.guards.notes)},
            "probableCause": None if self.probable_cause is None else self.probable_cause.wire(),
            "phase": self.phase, "phaseReason": self.phase_reason, "gitops": self.gitops,
        }


@dataclass(frozen=True)
class Simulation:
    now: datetime
    alerts: list[AlertSimulation]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"now": format_time(self.now), "actsOnNothing": True, "notes": list(self.notes),
                "alerts": [a.to_dict() for a in self.alerts]}


# ---------------------------------------------------------------- the simulation


def simulate(alerts: Sequence[IncomingAlert], runbooks: Sequence[RunbookDoc], policies: Sequence[PolicyDoc],
             history: Sequence[Mapping[str, Any]], settings: Settings) -> Simulation:
    notes = duplicate_runbook_notes(runbooks)
    history, later = history_at(history, settings.now)
    if later:
        notes.append(f"{later} Remediation(s) in the history were created after {format_time(settings.now)}: left "
                     "out, as the operator deciding then could not have seen them")
    past = [past_remediation(obj) for obj in history]
    return Simulation(settings.now, [simulate_alert(a, runbooks, policies, history, past, settings) for a in alerts],
                      notes)


def history_at(history: Sequence[Mapping[str, Any]], now: datetime) -> tuple[list[Mapping[str, Any]], int]:
    """The Remediations that existed at `now` (an export taken later holds more), and how many were left out."""
    kept = []
    for obj in history:
        created = (obj.get("metadata") or {}).get("creationTimestamp") or (obj.get("status") or {}).get("startedAt")
        try:
            if created and parse_time(str(created)) > now:
                continue
        except ValueError:
            pass  # an unreadable time is kept: better counted than missed
        kept.append(obj)
    return kept, len(history) - len(kept)


def simulate_alert(incoming: IncomingAlert, runbooks: Sequence[RunbookDoc], policies: Sequence[PolicyDoc],
                   history: Sequence[Mapping[str, Any]], past: Sequence[guards.PastRemediation],
                   settings: Settings) -> AlertSimulation:
    signal = incoming.signal
    namespace = signal.labels.get(matching.NAMESPACE_LABEL) or None
    base = {"alert": signal.name, "fingerprint": signal.fingerprint, "status": incoming.status,
            "namespace": namespace}
    if namespace is None:
        return AlertSimulation(**base, outcome="unmatched",
                               summary="the alert has no namespace label: the operator ignores it (unmatched)")
    name = state.remediation_name(signal.source, signal.fingerprint, signal.starts_at or "", namespace)
    existing = find_remediation(history, namespace, name)
    if incoming.status == "resolved":
        return resolved(base, namespace, name, existing)

    entries = place_runbooks(runbooks, namespace, settings.runbook_namespace)
    result = matching.match_signal(signal, namespace, entries)
    candidates = [Candidate(key, False, why) for key, why in result.rejected]
    if result.runbook is not None:
        candidates.insert(0, Candidate(result.runbook.key, True,
                                       result.reasons[0].removeprefix(f"Runbook {result.runbook.key} ")))
    base |= {"match_reasons": list(result.reasons), "candidates": candidates}
    if not result.matched:
        return AlertSimulation(**base, outcome="unmatched",
                               summary="no Runbook would act: " + result.reasons[-1])
    assert result.runbook is not None and result.target is not None
    rb, target = result.runbook, result.target
    base |= {"runbook": rb.key, "target": matching.target_display(target),
             "remediation": f"{namespace}/{name}"}
    if existing is not None:
        phase = (existing.get("status") or {}).get("phase", "Pending")
        return AlertSimulation(**base, outcome="duplicate", summary=(
            f"Remediation {namespace}/{name} already exists (phase {phase}): this delivery is the same incident "
            "and would change nothing"))

    policy, choice = choose_policy(policies, namespace, settings.namespace_labels)
    spec = RemediationSpec(signal=signal, target=target,
                           runbook=RunbookRef(name=rb.name, namespace=rb.namespace, generation=rb.generation))
    pending = RemediationStatus(probable_cause=probable_cause(spec, settings))
    observed = step_facts(rb, spec, policy, past, name, settings, engine.cause_kind(pending))
    facts = engine.Facts(now=settings.now, runbook=rb.spec, policy=policy, guards=observed.verdict,
                         risk_input=observed.risk_input, cause_kind=engine.cause_kind(pending),
                         gitops=gitops.offline(settings.target_labels, {}, policy.gitops if policy else None))
    decision = engine.decide(name, spec, pending, facts)
    status = decision.status
    index = planning.next_step(status.plan, [])
    risk_view = approval_view = None
    if index is not None:
        step = status.plan[index]
        assessed = status.risk or engine.assess(status, index, facts)
        risk_view = RiskView(step.name, assessed.score, assessed.level, list(assessed.reasons), observed.risk_notes)
        chosen = approval.choose_rule(assessed.level, policy.approval if policy else Approval())
        approval_view = ApprovalView(assessed.level, chosen.rule.approvers, approval.needs_approval(chosen.rule),
                                     chosen.defaulted, list(chosen.reasons))
    outcome, summary = outcome_of(status, target)
    return AlertSimulation(**base, outcome=outcome, summary=summary, policy=choice, plan=list(status.plan),
                           risk=risk_view, approval=approval_view, guards=observed.view,
                           probable_cause=pending.probable_cause, phase=status.phase,
                           phase_reason=status.reason, gitops=gitops.summary(status.gitops))


def probable_cause(spec: RemediationSpec, settings: Settings) -> ProbableCause | None:
    """As controller's changes.find_cause: the breach began at the signal's startsAt, else now."""
    if settings.changes is None:
        return None
    target = cause.Target(spec.target.kind, spec.target.namespace, spec.target.name, settings.references)
    began = parse_time(spec.signal.starts_at) if spec.signal.starts_at else settings.now
    return cause.to_status(cause.rank(target, settings.changes, began, spec.signal.name or "the signal",
                                      settings.change_window))


def resolved(base: dict, namespace: str, name: str, existing: Mapping[str, Any] | None) -> AlertSimulation:
    if existing is None:
        return AlertSimulation(**base, outcome="unmatched", remediation=f"{namespace}/{name}",
                               summary=f"resolved, but there is no Remediation {namespace}/{name} for it in the "
                                       "history: nothing to do")
    phase = (existing.get("status") or {}).get("phase", "Pending")
    if phase in TERMINAL_PHASES:
        what = f"it is already {phase}: nothing changes"
    elif phase in ("Pending", "Planned", "AwaitingApproval"):
        what = "nothing acted yet, so the loop would cancel it"
    else:
        what = f"it is {phase}: the loop carries on (a started action is verified, not abandoned)"
    return AlertSimulation(**base, outcome="resolved", remediation=f"{namespace}/{name}",
                           summary=f"resolved: the operator would record the resolution on {namespace}/{name}; "
                                   f"{what}", phase=phase)


def outcome_of(status: RemediationStatus, target) -> tuple[Outcome, str]:
    shown = matching.target_display(target)
    if status.phase == "Acting":
        step = status.plan[status.current_step or 0]
        return "act", f"would {step.action} {shown} (step {step.name!r}) and then verify it"
    if status.phase == "AwaitingApproval":
        return "awaitApproval", f"would ask for approval before acting on {shown}: {status.reason}"
    if status.dry_run and status.phase == "Skipped" and status.reason.startswith("dry run"):
        return "dryRun", f"would only record it: {status.reason}"
    return "skip", f"would do nothing ({status.phase}): {status.reason}"


# ---------------------------------------------------------------- runbooks and policies


def place_runbooks(runbooks: Iterable[RunbookDoc], alert_namespace: str,
                   runbook_namespace: str | None) -> list[matching.RunbookEntry]:
    by_key: dict[tuple[str, str], matching.RunbookEntry] = {}
    for doc in runbooks:
        namespace = doc.namespace or runbook_namespace or alert_namespace
        by_key[(namespace, doc.name)] = matching.RunbookEntry(namespace, doc.name, doc.generation, doc.spec)
    return list(by_key.values())


def duplicate_runbook_notes(runbooks: Sequence[RunbookDoc]) -> list[str]:
    seen: dict[tuple[str | None, str], str] = {}
    notes = []
    for doc in runbooks:
        key = (doc.namespace, doc.name)
        if key in seen:
            notes.append(f"Runbook {doc.name!r} ({doc.origin or 'later document'}) replaces the one from "
                         f"{seen[key] or 'an earlier document'}, as a second apply would")
        seen[key] = doc.origin
    return notes


def choose_policy(policies: Sequence[PolicyDoc], namespace: str,
                  labels: Mapping[str, str]) -> tuple[RemediationPolicySpec | None, PolicyChoice]:
    """The governing policy as policy_select picks it, with a reason for every policy given."""
    raw = [(p.name, p.spec) for p in policies]
    effective = policy_select.effective_policy(raw, namespace, labels)
    reasons: list[str] = []
    matching_ones: list[tuple[str, RemediationPolicySpec]] = []
    for name, spec_raw in sorted(raw, key=lambda p: p[0]):
        try:
            spec = RemediationPolicySpec.model_validate(spec_raw)
        except ValueError:
            reasons.append(f"policy {name}: invalid, ignored (the apiserver would refuse it)")
            continue
        if policy_select.applies(spec, namespace, labels):
            matching_ones.append((name, spec))
            reasons.append(f"policy {name}: applies to namespace {namespace!r} ({scope_text(spec)})")
        else:
            reasons.append(f"policy {name}: does not apply to namespace {namespace!r} "
                           f"({scope_text(spec)}; namespace labels {dict(labels) or 'none given'})")
    if effective is None:
        reasons.append(f"no RemediationPolicy applies to namespace {namespace!r}: the default guardrails are used "
                       "and approvals follow the default rules")
        return None, PolicyChoice(None, "enforce", reasons)
    chosen = min(matching_ones, key=lambda m: (-policy_select.specificity(m[1], namespace), m[0]))[0]
    if len(matching_ones) > 1:
        reasons.append(f"policy {chosen} governs: the most specific of {len(matching_ones)} (exact name, then glob, "
                       "then selector, then all namespaces; ties by name)")
    else:
        reasons.append(f"policy {chosen} governs")
    dry = [name for name, spec in matching_ones if spec.mode == "dryRun"]
    if dry:
        reasons.append(f"mode dryRun because policy {', '.join(dry)} is dryRun (any dryRun among those that apply "
                       "wins)")
    return effective, PolicyChoice(chosen, effective.mode, reasons)


def scope_text(spec: RemediationPolicySpec) -> str:
    parts = [f"namespaces {', '.join(spec.namespaces)}" if spec.namespaces else "all namespaces"]
    selector = spec.namespace_selector
    if selector is not None:
        wanted = [f"{k}={v}" for k, v in selector.match_labels.items()]
        wanted += [f"{r.key} {r.operator} {r.values}" if r.values else f"{r.key} {r.operator}"
                   for r in selector.match_expressions]
        parts.append(f"namespaceSelector {', '.join(wanted) or '(empty)'}")
    return "; ".join(parts)


# ---------------------------------------------------------------- guards, as controller/guard_facts.py gathers them


@dataclass(frozen=True)
class StepFacts:
    view: GuardView | None = None
    verdict: guards.GuardVerdict | None = None
    risk_input: risk.RiskInput | None = None
    risk_notes: list[str] = field(default_factory=list)


def step_facts(rb: matching.RunbookEntry, spec: RemediationSpec, policy: RemediationPolicySpec | None,
               past: Sequence[guards.PastRemediation], name: str, settings: Settings,
               cause_kind: str | None = None) -> StepFacts:
    """Guard verdict and risk input of the first runnable step, by the builder the operator's loop uses
    (core.guard_inputs.observe_step), with the facts the loop would read taken from the settings."""
    found = guard_inputs.next_step(rb.spec, RemediationStatus(), cause_kind)
    if found is None:
        return StepFacts()
    steps, index = found
    target = spec.target
    notes: list[str] = []
    replicas = settings.replicas if target.kind in REPLICA_KINDS else None
    if target.kind not in REPLICA_KINDS:
        notes.append(f"a {target.kind} has no replicas")
    elif replicas is None:
        notes.append(f"replicas of {matching.target_display(target)} not given (--replicas N): unknown, and the "
                     "blast-radius guard blocks on unknown replicas, as it does in the cluster")
    else:
        notes.append(f"replicas of {matching.target_display(target)}: {replicas}, as given")
    strategy = None
    if target.kind in REPLICA_KINDS:
        strategy = settings.strategy or Strategy()
        if settings.strategy is None:
            notes.append(f"update strategy not given: the apiserver's default for a {target.kind} is assumed "
                         f"(RollingUpdate, maxUnavailable/maxSurge {'/'.join(map(str, ROLLING_DEFAULTS[target.kind]))})")
    if not past:
        notes.append("no history given: no earlier Remediations (cooldown, rate, concurrency, circuit breaker "
                     "and storm hold-off see none)")
    observed = guard_inputs.observe_step(
        now=settings.now, name=name, spec=spec, runbook=rb.spec, steps=steps, index=index, policy=policy,
        history=past, target=guard_inputs.TargetFacts(replicas=replicas, labels=settings.target_labels,
                                                      strategy=strategy, pods=settings.pods, nodes=settings.nodes),
        namespace_labels=settings.namespace_labels, namespace_pods=settings.namespace_pods,
        dry_run=settings.server_dry_run, cause_kind=cause_kind,
        default_service_account=settings.action_service_account)
    notes += list(observed.change.reasons)
    step = planning.pinned_step(steps, index, rb.spec)
    if settings.hpa is not None and step is not None and step.action == "scale" and step.scale is not None:
        notes.append(autoscalers.simulated_raise(step.scale, replicas, *settings.hpa, policy_select.caps_for(
            policy, target.namespace or "").max_replicas, settings.now))
    view = GuardView(observed.step, observed.action, replicas, observed.change.pods_touched,
                     observed.verdict.allowed, list(observed.verdict.decisions), notes)
    return StepFacts(view, observed.verdict, observed.risk_input, risk_notes(settings))


def risk_notes(settings: Settings) -> list[str]:
    notes = [f"server-side dry run: cannot run offline, scored as {settings.server_dry_run!r}"
             + (" (for a target that exists the cluster usually answers 'succeeded': --server-dry-run succeeded)"
                if settings.server_dry_run == "unavailable" else " as given")]
    if settings.namespace_pods is None:
        notes.append("pods in the namespace not given (--namespace-pods N): the namespace share is not scored")
    if not settings.namespace_labels:
        notes.append("no namespace labels given (--namespace-label): a production namespace is not recognised")
    if not settings.target_labels:
        notes.append("no target labels given (--target-label): a criticality label is not scored")
    return notes


def find_remediation(history: Iterable[Mapping[str, Any]], namespace: str, name: str) -> Mapping[str, Any] | None:
    for obj in history:
        metadata = obj.get("metadata") or {}
        if metadata.get("name") == name and metadata.get("namespace", namespace) == namespace:
            return obj
    return None


# ---------------------------------------------------------------- text


def render_text(sim: Simulation) -> str:
    lines = [f"simulation at {format_time(sim.now)}: acts on nothing, reads no cluster"]
    lines += [f"note: {n}" for n in sim.notes]
    for a in sim.alerts:
        lines.append("")
        lines += render_alert(a)
    return "\n".join(lines) + "\n"


def render_alert(a: AlertSimulation) -> list[str]:
    lines = [f"alert {a.alert} ({a.status}, fingerprint {a.fingerprint or '-'}, namespace {a.namespace or '-'})",
             f"  outcome: {a.outcome}: {a.summary}"]
    if a.remediation:
        lines.append(f"  remediation: {a.remediation}")
    if a.candidates or a.match_reasons:
        lines.append(f"  match: {a.runbook or 'none'}")
        for c in a.candidates:
            lines.append(f"    {'chosen  ' if c.chosen else 'rejected'} {c.runbook}: {c.reason}")
        # The winner's own reason is its candidate line; the rest (ties, target, refusals) follow.
        lines += [f"    {r}" for r in (a.match_reasons[1:] if a.runbook else a.match_reasons)]
    if a.target:
        lines.append(f"  target: {a.target}")
    if a.gitops:
        lines.append(f"  gitops owner: {a.gitops}")
    if a.policy is not None:
        lines.append(f"  policy: {a.policy.name or 'none (default guardrails)'}, mode {a.policy.mode}")
        lines += [f"    {r}" for r in a.policy.reasons]
    if a.target and a.runbook and a.outcome not in ("duplicate", "unmatched"):
        if a.probable_cause is None:
            lines.append("  probable cause: unknown (no --changes given): steps with a `when` are skipped")
        else:
            lines.append(f"  probable cause: {a.probable_cause.kind}: {a.probable_cause.summary}")
            lines += [f"    {c.score}/100 {c.what} at {c.at}: {'; '.join(c.reasons)}" for c in a.probable_cause.changes]
            lines += [f"    ignored: {i}" for i in a.probable_cause.ignored]
    if a.plan:
        lines.append("  plan:")
        for step in a.plan:
            flag = "skip" if step.skip else "run "
            lines.append(f"    {step.index}. [{flag}] {step.name}: {step.action}, declared risk {step.risk} "
                         f"-- {step.reason}")
    if a.risk is not None:
        lines.append(f"  risk (step {a.risk.step}): {a.risk.score} {a.risk.level}")
        lines += [f"    {r}" for r in a.risk.reasons]
        lines += [f"    note: {n}" for n in a.risk.notes]
    if a.approval is not None:
        need = (f"{a.approval.approvers} approver(s) needed" if a.approval.needed else "no approval needed")
        lines.append(f"  approval ({a.approval.level} risk): {need}")
        lines += [f"    {r}" for r in a.approval.reasons]
    if a.guards is not None:
        g = a.guards
        shown = "unknown" if g.replicas is None else g.replicas
        touched = "unknown" if g.pods_touched is None else g.pods_touched
        lines.append(f"  guards (step {g.step}, {g.action}; replicas {shown}, pods touched at once {touched}): "
                     f"{'allowed' if g.allowed else 'BLOCKED'}")
        lines += [f"    note: {n}" for n in g.notes]
        lines += [f"    {'ok     ' if d.allowed else 'BLOCKED'} {d.reason}" for d in g.decisions]
    if a.phase and a.plan:
        lines.append(f"  first decision: phase {a.phase}: {a.phase_reason}")
    return lines
