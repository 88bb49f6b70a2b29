"""The semantic rules of the API, written once for two enforcers.

Each `Rule` is attached to one model. `remediator.api.crds` turns it into a CEL
`x-kubernetes-validations` entry on that model's schema, so the apiserver
refuses a bad object at `kubectl apply`; `remediator.api.validation` runs the
Python predicate on the same object offline. Both report the same path (the
model's place in the document plus `field`) and the same message.

Predicates read the object the way CEL sees it: the wire (camelCase) dict with
defaults applied and unset optional fields absent. A message names the field
and says what is required; an optional `detail` says what was found, from
`{placeholders}`: each a field of the object (printed as CEL's format()
prints it) or a named pair of (CEL expression, Python function) in `values`.
The apiserver shows `message (detail)` through a CEL messageExpression.

Pure: no kubernetes, no I/O.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from pydantic import BaseModel

from ..core.durations import parse_duration, parse_time
from ..core.match.regexes import regex_problem  # the engine's own compiler: admission accepts what it runs
from .models import (
    RFC3339_PATTERN,
    AnomalyBaseline,
    AnomalyTrigger,
    Approval,
    ApprovalRule,
    FreezeWindow,
    LabelSelectorRequirement,
    Matcher,
    NamespaceBounds,
    RaiseMemoryParams,
    Retention,
    RunbookSpec,
    ScaleParams,
    Step,
    Trigger,
)
from .slo import (
    SLI_PLACEHOLDERS,
    BadTotalSli,
    BurnRateWindow,
    GoodTotalSli,
    ServiceLevelObjectiveSpec,
    Sli,
    sli_placeholders,
    sli_stray_braces,
)

Wire = Mapping[str, object]

# Which target kinds each action can act on.
ACTION_TARGET_KINDS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "restartRollout": ("Deployment", "StatefulSet", "DaemonSet"),
    "scale": ("Deployment", "StatefulSet"),
    "rollback": ("Deployment", "StatefulSet", "DaemonSet", "Rollout"),
    "deletePod": ("Deployment", "StatefulSet", "DaemonSet", "Pod"),
    "cordonDrain": ("Node",),
    "raiseMemory": ("Deployment", "StatefulSet", "DaemonSet"),
})

# The Step field holding each action's parameters, and the actions that cannot run without them.
ACTION_PARAMS: Mapping[str, str] = MappingProxyType({
    "scale": "scale", "raiseMemory": "raiseMemory", "cordonDrain": "drain", "deletePod": "deletePod",
})
ACTIONS_NEEDING_PARAMS: frozenset[str] = frozenset({"scale", "raiseMemory"})
# Why an action is limited to its kinds, when the list alone would not say it.
ACTION_KIND_NOTES: Mapping[str, str] = MappingProxyType({})

TRIGGER_KINDS: tuple[str, ...] = ("alert", "sloBurn", "podState", "anomaly", "nodeCondition")
PROCEED_ON_TIMEOUT_LEVELS: tuple[str, ...] = ("low", "medium")
REGEX_OPS: tuple[str, ...] = ("=~", "!~")

# resource.Quantity's grammar (k8s.io/apimachinery), which CEL isQuantity() accepts.
QUANTITY = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[mkMGTPE]|[eE][+-]?[0-9]+)?$")
# How the apiserver words the reason of a failed rule (`x-kubernetes-validations[].reason`).
REQUIRED, FORBIDDEN, INVALID = "FieldValueRequired", "FieldValueForbidden", "FieldValueInvalid"


@dataclass(frozen=True)
class Rule:
    model: type[BaseModel]
    cel: str  # over `self`; true means valid
    holds: Callable[[Wire], bool]  # the same check in Python
    message: str  # names the field and what it must be
    detail: str = ""  # what was found, with {placeholders}
    field: str = ""  # the field the error is about, relative to the model ("" = the model itself)
    reason: str = INVALID
    values: Mapping[str, tuple[str, Callable[[Wire], object]]] = dataclasses.field(default_factory=dict)
    # Python's version of a detail the apiserver takes from a CEL evaluation error (e.g. RE2's reason).
    evaluation_detail: Callable[[Wire], str] | None = None


# ---------------------------------------------------------------- helpers shared by predicates


def cel_string(value: object) -> str:
    """A value as the apiserver's format('%s') prints it, so both enforcers agree (2.0 -> "2")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return str(value)


def cel_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def cel_list(items: tuple[str, ...]) -> str:
    return "[" + ", ".join(cel_quote(i) for i in items) + "]"


def is_positive_quantity(text: object) -> bool:
    if not isinstance(text, str) or not QUANTITY.fullmatch(text):
        return False
    number = re.match(r"^[+-]?([0-9]*\.?[0-9]*)", text).group(1)
    return not text.startswith("-") and any(c in "123456789" for c in number)


def rfc3339(text: object) -> datetime | None:
    if not isinstance(text, str) or not re.fullmatch(RFC3339_PATTERN, text):
        return None
    try:
        return parse_time(text)
    except ValueError:
        return None


def ends_after_start(window: Wire) -> bool:
    """True unless both times are readable and out of order (unreadable ones have a rule of their own)."""
    start, end = rfc3339(window.get("start")), rfc3339(window.get("end"))
    return start is None or end is None or end > start


def duplicates(names: list[object]) -> list[object]:
    return [n for i, n in enumerate(names) if n in names[:i]]


# ---------------------------------------------------------------- the rules


def trigger_rules() -> list[Rule]:
    kinds = ", ".join(TRIGGER_KINDS)
    return [Rule(
        Trigger,
        cel=" + ".join(f"(has(self.{k}) ? 1 : 0)" for k in TRIGGER_KINDS) + " == 1",
        holds=lambda t: sum(k in t for k in TRIGGER_KINDS) == 1,
        message=f"a trigger sets exactly one of {kinds}",
    )]


def step_param_rules() -> list[Rule]:
    """An action's parameters are set when it needs them, and only for that action."""
    rules = []
    for action, param in ACTION_PARAMS.items():
        if action in ACTIONS_NEEDING_PARAMS:
            rules.append(Rule(
                Step,
                cel=f"self.action != '{action}' || has(self.{param})",
                holds=lambda s, a=action, p=param: s.get("action") != a or p in s,
                message=f"{param} is required when action is {action}",
                field=param, reason=REQUIRED,
            ))
        rules.append(Rule(
            Step,
            cel=f"!has(self.{param}) || self.action == '{action}'",
            holds=lambda s, a=action, p=param: p not in s or s.get("action") == a,
            message=f"{param} is only allowed when action is {action}",
            detail="action is {action}",
            field=param, reason=FORBIDDEN,
        ))
    return rules


def runbook_rules() -> list[Rule]:
    rules = [Rule(
        RunbookSpec,
        cel="self.steps.all(s, self.steps.exists_one(t, t.name == s.name))",
        holds=lambda r: not duplicates([s.get("name") for s in r["steps"]]),
        message="steps must have unique names",
        detail="{name} is used more than once",
        field="steps",
        values={"name": (
            "self.steps.filter(s, self.steps.filter(t, t.name == s.name).size() > 1)[0].name",
            lambda r: duplicates([s.get("name") for s in r["steps"]])[0],
        )},
    ), Rule(
        RunbookSpec,
        # the signal is about a Node, whose name is the only label a target could be rendered from
        cel="!self.triggers.exists(t, has(t.nodeCondition)) || self.target.kind == 'Node'",
        holds=lambda r: not any("nodeCondition" in t for t in r["triggers"]) or r["target"]["kind"] == "Node",
        message="a nodeCondition trigger needs target.kind Node",
        detail="target.kind {kind}",
        field="triggers",
        values={"kind": ("self.target.kind", lambda r: r["target"]["kind"])},
    )]
    for action, kinds in ACTION_TARGET_KINDS.items():
        allowed = " or ".join(kinds) if len(kinds) < 3 else f"{', '.join(kinds[:-1])} or {kinds[-1]}"
        rules.append(Rule(
            RunbookSpec,
            cel=f"!self.steps.exists(s, s.action == '{action}') || self.target.kind in {cel_list(kinds)}",
            holds=lambda r, a=action, k=kinds: (
                not any(s.get("action") == a for s in r["steps"]) or r["target"]["kind"] in k),
            message=f"action {action} needs target.kind {allowed}"
                    + (f": {ACTION_KIND_NOTES[action]}" if action in ACTION_KIND_NOTES else ""),
            detail="step {step}, target.kind {kind}",
            field="steps",
            values={
                "step": (f"self.steps.filter(s, s.action == '{action}')[0].name",
                         lambda r, a=action: next(s["name"] for s in r["steps"] if s.get("action") == a)),
                "kind": ("self.target.kind", lambda r: r["target"]["kind"]),
            },
        ))
    return rules


def scale_rules() -> list[Rule]:
    return [Rule(
        ScaleParams,
        cel="self.minReplicas <= self.maxReplicas",
        holds=lambda s: s["minReplicas"] <= s["maxReplicas"],
        message="minReplicas must be <= maxReplicas",
        detail="minReplicas {minReplicas} > maxReplicas {maxReplicas}",
    ), Rule(
        ScaleParams,
        # shorter ends the autoscaler's raised floor before verification can judge it; longer outlives incidents
        cel=f"!has(self.leaseDuration) || ({cel_duration_ms('self.leaseDuration')} >= {MIN_LEASE_MS}"
            f" && {cel_duration_ms('self.leaseDuration')} <= {MAX_LEASE_MS})",
        holds=lambda s: "leaseDuration" not in s or MIN_LEASE_MS <= duration_ms(s["leaseDuration"]) <= MAX_LEASE_MS,
        message="leaseDuration must be between 1m and 7d",
        detail="got {leaseDuration}",
        field="leaseDuration",
    )]


MIN_LEASE_MS, MAX_LEASE_MS = 60_000, 604_800_000


def quantity_rule(model: type[BaseModel], name: str, optional: bool) -> Rule:
    cel = f"isQuantity(self.{name}) && quantity(self.{name}).isGreaterThan(quantity('0'))"
    return Rule(
        model,
        cel=f"!has(self.{name}) || ({cel})" if optional else cel,
        holds=lambda o: (optional and name not in o) or is_positive_quantity(o.get(name)),
        message=f"{name} must be a positive memory quantity such as 512Mi or 2Gi",
        detail=f"got {{{name}}}",
        field=name,
    )


def matcher_rules() -> list[Rule]:
    # CEL has no isRegex(): compiling the value is the test. An invalid regex makes
    # matches() an evaluation error, which the apiserver reports (with RE2's own
    # reason) as a failure of this rule. The bare value, not the anchored form
    # Alertmanager builds: `a)|(b` compiles once anchored, as `^(?:a)|(b)$`, unanchored.
    # `x || !x` rather than `x || true`: CEL's `||` absorbs an error when the other side is true.
    compiled = "''.matches(has(self.value) ? self.value : '')"  # an empty default is not stored
    return [Rule(
        Matcher,
        cel=f"self.op in {cel_list(REGEX_OPS)} ? ({compiled} || !{compiled}) : true",
        holds=lambda m: m.get("op") not in REGEX_OPS or regex_problem(m.get("value", "")) is None,
        message="value must be a valid RE2 regular expression when op is =~ or !~",
        evaluation_detail=lambda m: str(regex_problem(m.get("value", ""))),
        # No field: the apiserver reports an evaluation error at the matcher, ignoring fieldPath.
    )]


def selector_rules() -> list[Rule]:
    return [Rule(
        LabelSelectorRequirement,
        cel="self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0)"
            " : (!has(self.values) || size(self.values) == 0)",
        holds=lambda r: bool(r.get("values")) == (r["operator"] in ("In", "NotIn")),
        message="values must be non-empty when operator is In or NotIn, and empty for Exists or DoesNotExist",
        detail="operator is {operator}",
        field="values",
    )]


def anomaly_rules() -> list[Rule]:
    return [
        Rule(
            AnomalyTrigger,
            cel="self.clearThreshold < self.threshold",
            holds=lambda a: a["clearThreshold"] < a["threshold"],
            message="clearThreshold must be below threshold",
            detail="clearThreshold {clearThreshold}, threshold {threshold}",
            field="clearThreshold",
        ),
        Rule(
            AnomalyBaseline,
            cel=f"{cel_duration_ms('self.step')} > 0 && "
                f"{cel_duration_ms('self.lookback')} >= {cel_duration_ms('self.step')} && "
                f"{cel_duration_ms('self.lookback')} <= {MAX_LOOKBACK_MS}",
            holds=lambda b: 0 < duration_ms(b.get("step", "5m")) <= duration_ms(b.get("lookback", "7d"))
            <= MAX_LOOKBACK_MS,
            # the seed reads a lookback back from now: ten years is more than any Prometheus keeps
            message="step must be above 0 and at most lookback, and lookback at most 3650d",
            detail="step {step}, lookback {lookback}",
            field="step",
        ),
        Rule(
            AnomalyBaseline,
            cel="!has(self.ewmaAlpha) || self.method == 'ewma'",
            holds=lambda b: "ewmaAlpha" not in b or b["method"] == "ewma",
            message="ewmaAlpha is only allowed when method is ewma",
            detail="method is {method}",
            field="ewmaAlpha", reason=FORBIDDEN,
        ),
    ]


def policy_rules() -> list[Rule]:
    levels = " or ".join(PROCEED_ON_TIMEOUT_LEVELS)
    return [
        Rule(
            Approval,
            cel="!has(self.rules) || self.rules.all(r, self.rules.exists_one(o, o.level == r.level))",
            holds=lambda a: not duplicates([r["level"] for r in a.get("rules", [])]),
            message="approval rules must have one rule per level",
            detail="{level} has more than one",
            field="rules",
            values={"level": (
                "self.rules.filter(r, self.rules.filter(o, o.level == r.level).size() > 1)[0].level",
                lambda a: duplicates([r["level"] for r in a["rules"]])[0],
            )},
        ),
        Rule(
            ApprovalRule,
            cel=f"self.onTimeout != 'proceed' || self.level in {cel_list(PROCEED_ON_TIMEOUT_LEVELS)}",
            holds=lambda r: r["onTimeout"] != "proceed" or r["level"] in PROCEED_ON_TIMEOUT_LEVELS,
            message=f"onTimeout proceed is only allowed for level {levels}",
            detail="level is {level}",
            field="onTimeout",
        ),
        *(Rule(
            FreezeWindow,
            cel=f"self.{name}.matches({cel_quote(RFC3339_PATTERN)})",
            holds=lambda w, n=name: rfc3339(w[n]) is not None,
            message=f"{name} must be an RFC 3339 time with an offset, e.g. 2025-12-24T00:00:00Z",
            detail=f"got {{{name}}}",
            field=name,
        ) for name in ("start", "end")),
        Rule(
            FreezeWindow,
            # Only once both times are well formed, so a typo gets one clear error, not two.
            cel=f"!self.start.matches({cel_quote(RFC3339_PATTERN)})"
                f" || !self.end.matches({cel_quote(RFC3339_PATTERN)})"
                " || timestamp(self.end) > timestamp(self.start)",
            holds=ends_after_start,
            message="end must be after start",
            detail="start {start}, end {end}",
            field="end",
        ),
        quantity_rule(NamespaceBounds, "maxMemory", optional=True),
        Rule(
            Retention,
            # shorter could delete an ended Remediation before its outcome is folded and its escalation posted
            cel=f"{cel_duration_ms('self.terminalRemediations')} >= {MIN_RETENTION_MS}",
            holds=lambda r: duration_ms(r["terminalRemediations"]) >= MIN_RETENTION_MS,
            message="terminalRemediations must be at least 1h",
            detail="got {terminalRemediations}",
            field="terminalRemediations",
        ),
    ]


MIN_RETENTION_MS = 3_600_000
MAX_LOOKBACK_MS = 3650 * 86_400_000


# ---------------------------------------------------------------- ServiceLevelObjective

# A duration (DURATION_PATTERN: e.g. 1h30m, 7d) in milliseconds, in CEL: CEL's duration() knows no days or weeks.
_UNIT_MS = (("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000), ("w", 604_800_000))


def cel_duration_ms(expr: str) -> str:
    unit = "".join(f"p.endsWith('{u}') ? {ms} : " for u, ms in _UNIT_MS[:-1]) + str(_UNIT_MS[-1][1])
    return f"{expr}.findAll('[0-9]+(ms|s|m|h|d|w)').map(p, int(p.find('[0-9]+')) * ({unit})).sum()"


def duration_ms(text: object) -> float:
    """Milliseconds; 0 for what is no string, infinity for one too long (the field's own check names it)."""
    if not isinstance(text, str):
        return 0
    try:
        return int(parse_duration(text).total_seconds() * 1000)
    except ValueError:
        return math.inf


WINDOW_PLACEHOLDER_RE2 = r"\{\{\s*window\s*\}\}"
ANY_PLACEHOLDER_RE2 = r"\{\{\s*(" + "|".join(SLI_PLACEHOLDERS) + r")\s*\}\}"
OPEN_RE2, CLOSE_RE2 = r"\{\{", r"\}\}"


def sli_query_rules(model: type[BaseModel], name: str) -> list[Rule]:
    known = ", ".join(f"{{{{ {p} }}}}" for p in SLI_PLACEHOLDERS)
    query, placeholders = f"self.{name}", f"size(self.{name}.findAll({cel_quote(ANY_PLACEHOLDER_RE2)}))"
    return [
        Rule(
            model,
            cel=f"{query}.matches({cel_quote(WINDOW_PLACEHOLDER_RE2)})",
            holds=lambda q, n=name: "window" in sli_placeholders(str(q.get(n, ""))),
            message=f"{name} must use '{{{{ window }}}}': each burn-rate window evaluates the query over its own "
                    "range, e.g. rate(http_requests_total[{{ window }}])",
            field=name,
        ),
        Rule(
            model,
            # As many '{{' and as many '}}' as whole placeholders: none stands outside one.
            cel=f"size({query}.findAll({cel_quote(OPEN_RE2)})) == {placeholders}"
                f" && size({query}.findAll({cel_quote(CLOSE_RE2)})) == {placeholders}",
            holds=lambda q, n=name: sli_stray_braces(str(q.get(n, ""))) is None,
            message=f"{name} may have '{{{{' and '}}}}' only around a placeholder: the only placeholders are {known}",
            field=name,
        ),
    ]


def slo_rules() -> list[Rule]:
    window_ms = cel_duration_ms("self.window")
    too_long = f"self.alerting.windows.filter(w, {cel_duration_ms('w.longWindow')} > {window_ms})"
    return [
        Rule(
            Sli,
            cel="has(self.goodTotal) != has(self.badTotal)",
            holds=lambda s: ("goodTotal" in s) != ("badTotal" in s),
            message="set exactly one of goodTotal or badTotal",
        ),
        *sli_query_rules(GoodTotalSli, "good"), *sli_query_rules(GoodTotalSli, "total"),
        *sli_query_rules(BadTotalSli, "bad"), *sli_query_rules(BadTotalSli, "total"),
        Rule(
            BurnRateWindow,
            cel=f"{cel_duration_ms('self.shortWindow')} < {cel_duration_ms('self.longWindow')}",
            holds=lambda w: duration_ms(w["shortWindow"]) < duration_ms(w["longWindow"]),
            message="shortWindow must be shorter than longWindow",
            detail="shortWindow {shortWindow}, longWindow {longWindow}",
            field="shortWindow",
        ),
        Rule(
            ServiceLevelObjectiveSpec,
            cel=f"size({too_long}) == 0",
            holds=lambda s: all(duration_ms(w["longWindow"]) <= duration_ms(s["window"])
                                for w in s["alerting"]["windows"]),
            message="every alerting window's longWindow must be at most the SLO window: the budget would be "
                    "judged over more than it covers",
            detail="longWindow {long}, window {window}",
            field="alerting",
            values={"long": (
                f"{too_long}[0].longWindow",
                lambda s: next(w["longWindow"] for w in s["alerting"]["windows"]
                               if duration_ms(w["longWindow"]) > duration_ms(s["window"]))),
            },
        ),
        *(Rule(
            ServiceLevelObjectiveSpec,
            cel=f"self.{name}.matches('[1-9]')",  # a duration is positive when any of its digits is not 0
            holds=lambda s, n=name: duration_ms(s[n]) > 0,
            message=f"{name} must be longer than 0s",
            detail=f"got {{{name}}}",
            field=name,
        ) for name in ("evaluationInterval", "minWindow")),
    ]


RULES: tuple[Rule, ...] = (
    *trigger_rules(), *matcher_rules(), *selector_rules(), *anomaly_rules(),
    *step_param_rules(), *scale_rules(), quantity_rule(RaiseMemoryParams, "maxLimit", optional=False),
    *runbook_rules(), *policy_rules(), *slo_rules(),
)


def rules_for(model: type[BaseModel]) -> tuple[Rule, ...]:
    return tuple(r for r in RULES if r.model is model)


def broken_rules(model: type[BaseModel], wire: Wire) -> list[str]:
    """`field: message` of each of the model's rules that `wire` breaks."""
    return [f"{rule.field}: {render_message(rule, wire)}" if rule.field else render_message(rule, wire)
            for rule in rules_for(model) if not rule.holds(wire)]


# ---------------------------------------------------------------- messages, for both enforcers

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def render_message(rule: Rule, obj: Wire) -> str:
    """`message (detail)` with the detail filled from `obj`, as the apiserver fills it."""
    if rule.evaluation_detail is not None:
        return f"{rule.message} ({rule.evaluation_detail(obj)})"
    if not rule.detail:
        return rule.message

    def value(match: re.Match) -> str:
        name = match.group(1)
        if name in rule.values:
            return cel_string(rule.values[name][1](obj))
        return cel_string(obj.get(name, ""))

    return f"{rule.message} ({_PLACEHOLDER.sub(value, rule.detail)})"


def message_expression(rule: Rule) -> str | None:
    """`message (detail)` as a CEL string expression, or None when there is no detail.

    Built with the strings library's format(): the apiserver estimates `'a' + string(x)`
    as a concatenation of unbounded strings and refuses the CRD, but accepts format().
    """
    if not rule.detail:
        return None
    template = _PLACEHOLDER.sub("%s", f"{rule.message} ({rule.detail})".replace("%", "%%"))
    args = [rule.values[n][0] if n in rule.values else f"self.{n}" for n in _PLACEHOLDER.findall(rule.detail)]
    return f"{cel_quote(template)}.format([{', '.join(args)}])"


def cel_validation(rule: Rule) -> dict:
    """The `x-kubernetes-validations` entry for a rule."""
    entry: dict = {"rule": rule.cel, "message": rule.message}
    expression = message_expression(rule)
    if expression:
        entry["messageExpression"] = expression
    if rule.field:
        entry["fieldPath"] = f".{rule.field}"
    if rule.reason != INVALID:
        entry["reason"] = rule.reason
    return entry
