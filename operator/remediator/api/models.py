"""Typed models of the remediator.dev/v1alpha1 resources.

These pydantic models are the one source of truth: the CRD YAML in
charts/remediator/crds/ is generated from them (remediator.api.crds), and the
core takes them as plain data. Field names are camelCase on the wire and
snake_case in Python.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, get_args

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, SerializationInfo,
                      model_serializer, model_validator)
from pydantic.alias_generators import to_camel

GROUP = "remediator.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
# kopf's finalizer, which earlier versions put on every Remediation (their loops were kopf daemons); nothing needs
# it now and the operator drops it where it finds it (controller/handlers.drop_kopf_finalizer).
KOPF_FINALIZER = f"{GROUP}/kopf-finalizer"

# A Go-style duration as the CRDs accept it: 30s, 5m, 1h30m, 7d.
DURATION_PATTERN = r"^([0-9]+(ms|s|m|h|d|w))+$"


def bounded_duration(text: str) -> str:
    """At most MAX_DURATION (999999d): the CRDs say the same in CEL (api/crds.py)."""
    from ..core.durations import parse_duration  # it reads DURATION_PATTERN from here
    parse_duration(text)
    return text


Duration = Annotated[str, Field(pattern=DURATION_PATTERN, max_length=64), AfterValidator(bounded_duration)]

# An RFC 3339 time with an explicit offset, as Go's time.RFC3339 (and so CEL timestamp()) parses it.
RFC3339_PATTERN = (
    r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
MAX_TIME_LENGTH = 40

# Upper bounds on lists and strings that CEL rules walk: the apiserver estimates a
# rule's cost from them and refuses a CRD whose rules could be too expensive.
MAX_TRIGGERS = 16
MAX_MATCHERS = 32
MAX_SELECTOR_REQUIREMENTS = 32
MAX_FREEZE_WINDOWS = 64
MAX_BOUNDS = 64
MAX_REGEX_LENGTH = 1024
MAX_QUANTITY_LENGTH = 64
MAX_TARGET_TEMPLATE = 512  # a name (253) with a few placeholders
# What can render a DNS-1123 name: its characters, and `{{ labels.NAME }}` placeholders (core/match/templating.py)
TARGET_TEMPLATE_PATTERN = r"^([a-z0-9.-]|\{\{\s*labels\.[A-Za-z_][A-Za-z0-9_]*\s*\}\})+$"

# A ServiceAccount name: a DNS-1123 subdomain.
ServiceAccountName = Annotated[str, Field(min_length=1, max_length=253,
                                          pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")]

RiskLevel = Literal["low", "medium", "high", "critical"]
RISK_LEVELS: tuple[str, ...] = ("low", "medium", "high", "critical")

ActionName = Literal["restartRollout", "scale", "rollback", "deletePod", "cordonDrain", "raiseMemory"]
ACTIONS: tuple[str, ...] = ("restartRollout", "scale", "rollback", "deletePod", "cordonDrain", "raiseMemory")

TargetKind = Literal["Deployment", "StatefulSet", "DaemonSet", "Pod", "Node", "Rollout"]
TARGET_KINDS: tuple[str, ...] = ("Deployment", "StatefulSet", "DaemonSet", "Pod", "Node", "Rollout")

PodState = Literal["CrashLoopBackOff", "OOMKilled", "ImagePullBackOff", "NotReady"]


class Model(BaseModel):
    """Wire names are camelCase; unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    def wire(self) -> dict:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class LabelSelectorRequirement(Model):
    key: str = Field(min_length=1, max_length=317)
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] = Field(default_factory=list)


class LabelSelector(Model):
    match_labels: dict[str, str] = Field(default_factory=dict)
    match_expressions: list[LabelSelectorRequirement] = Field(
        default_factory=list, max_length=MAX_SELECTOR_REQUIREMENTS
    )


# ---------------------------------------------------------------- printer-column text


MAX_TEXT = 32  # the text fields' maxLength: a longer text is left out, never a status write the apiserver refuses


def seconds_text(value: float) -> str | None:
    """30.266 -> "30s", 125 -> "2m5s", 90000 -> "1d1h": a duration as kubectl writes ages, to the second."""
    if not math.isfinite(value):
        return None
    left = max(0, round(value))
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, left = divmod(left, size)
        if count:
            parts.append(f"{count}{unit}")
    text = "".join(parts) or "0s"
    return text if len(text) <= MAX_TEXT else None


def percent_text(fraction: float) -> str | None:
    """-5.50433 -> "-550%": a fraction as a whole percent."""
    if not math.isfinite(fraction):
        return None
    text = f"{round(fraction * 100)}%"
    return text if len(text) <= MAX_TEXT else None


MAX_STEP_RESULTS = 256


def step_results_text(stats: list) -> str | None:
    """restart 3/4, rollback 1/1: verified successes / steps with a verdict, per step."""
    text = ", ".join(f"{s.name} {s.succeeded}/{s.succeeded + s.failed}" for s in stats)
    if not text:
        return None
    return text if len(text) <= MAX_STEP_RESULTS else text[:MAX_STEP_RESULTS - 1] + "…"


def without_text(data, *fields: str):
    """Text read back from the apiserver is dropped: the number is the truth, the text is written from it."""
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k not in fields and k not in {to_camel(f) for f in fields}}
    return data


def with_text(self: BaseModel, handler, info: SerializationInfo, texts: dict) -> dict:
    """Dump the model and write each text field from its number (None: left out), so every writer of the status
    writes the column people read next to the number programs read."""
    data = handler(self)
    for field, (number, render) in texts.items():
        key = to_camel(field) if info.by_alias else field
        value = getattr(self, number)
        value = None if value is None else render(value)
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


# ---------------------------------------------------------------- Runbook


class Matcher(Model):
    """One Alertmanager-style label matcher; regexes are anchored, as in Alertmanager."""

    name: str = Field(min_length=1)
    op: Literal["=", "!=", "=~", "!~"] = "="
    value: str = Field("", max_length=MAX_REGEX_LENGTH)


class AlertTrigger(Model):
    matchers: list[Matcher] = Field(min_length=1, max_length=MAX_MATCHERS)


class SloBurnTrigger(Model):
    slo: str = Field(min_length=1, description="name of a ServiceLevelObjective in the Runbook's namespace")
    severity: Literal["page", "ticket"] = "page"


class PodStateTrigger(Model):
    states: list[PodState] = Field(min_length=1)
    selector: LabelSelector = Field(default_factory=LabelSelector)
    grace_period: Duration = Field("2m", description="how long NotReady must last before it is a signal")
    min_restarts: int = Field(3, ge=0, description="restarts before CrashLoopBackOff counts")


# A Node condition type: Ready, MemoryPressure, DiskPressure, PIDPressure, or one a node agent sets
# (node-problem-detector's KernelDeadlock …); a Kubernetes qualified name.
NodeConditionType = Annotated[str, Field(min_length=1, max_length=316,
                                         pattern=r"^([a-z0-9.-]+/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")]


class NodeConditionTrigger(Model):
    """A Node condition held for a duration, as Medik8s NodeHealthCheck's unhealthyConditions: the node is
    unhealthy when its condition `type` has had one of `statuses` for at least `for` (since the condition's
    lastTransitionTime). The Remediation lives in the Runbook's namespace; acting on the Node needs a
    RemediationPolicy bounds entry for that namespace with allowNodeActions: true."""

    type: NodeConditionType = "Ready"
    statuses: list[Literal["True", "False", "Unknown"]] = Field(
        default_factory=lambda: ["False", "Unknown"], min_length=1, max_length=3,
        description="the condition's statuses that are unhealthy (Ready: False, Unknown; a pressure: True)")
    for_: Duration = Field("5m", alias="for", description="how long the condition must hold")
    selector: LabelSelector = Field(default_factory=LabelSelector, description="which Nodes, by their labels")


class AnomalyBaseline(Model):
    method: Literal["medianMad", "ewma"] = "medianMad"
    lookback: Duration = "7d"
    step: Duration = "5m"
    daily_seasonality: bool = False
    ewma_alpha: float | None = Field(None, gt=0, le=1)


class AnomalyTrigger(Model):
    query: str = Field(min_length=1, description="PromQL returning one series per target")
    description: str = Field("", description="what the series is, used in explanations (e.g. 'p95 latency')")
    unit: str = ""
    baseline: AnomalyBaseline = Field(default_factory=AnomalyBaseline)
    threshold: float = Field(6.0, gt=0, description="score (MADs or sigmas) at which it fires")
    clear_threshold: float = Field(3.0, ge=0, description="score under which it clears (hysteresis)")
    direction: Literal["up", "down", "both"] = "up"
    min_samples: int = Field(30, ge=3)
    for_: Duration = Field("0s", alias="for", description="how long the score must stay over the threshold")


class Trigger(Model):
    """Exactly one of the kinds is set."""

    alert: AlertTrigger | None = None
    slo_burn: SloBurnTrigger | None = None
    pod_state: PodStateTrigger | None = None
    anomaly: AnomalyTrigger | None = None
    node_condition: NodeConditionTrigger | None = None


class TargetTemplate(Model):
    kind: TargetKind
    name: str = Field(
        min_length=1, max_length=MAX_TARGET_TEMPLATE, pattern=TARGET_TEMPLATE_PATTERN,
        description="object name; may template signal labels, e.g. '{{ labels.deployment }}'",
    )


class ScaleParams(Model):
    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(ge=1)
    step: int = Field(1, ge=1, description="replicas added per run (ignored when factor is set)")
    factor: float | None = Field(None, gt=1, description="multiply current replicas, rounded up")
    autoscaler: Literal["lease", "refuse"] = Field(
        "lease", description="when an HPA or KEDA ScaledObject targets the workload: lease = raise its floor "
        "under a lease (restored when the lease expires or the Remediation ends); refuse = fail the step")
    lease_duration: Duration = Field("1h", description="how long an autoscaler's raised floor is held at most")


class RaiseMemoryParams(Model):
    container: str | None = Field(None, description="default: the container that was OOMKilled, else the first")
    factor: float = Field(1.5, gt=1, le=4)
    max_limit: str = Field(
        max_length=MAX_QUANTITY_LENGTH, description="memory quantity the limit never exceeds, e.g. 2Gi"
    )


MIN_HEALTHY_PATTERN = r"^([0-9]+|([0-9]|[1-9][0-9]|100)%)$"


class DrainParams(Model):
    grace_period_seconds: int | None = Field(None, ge=0)
    timeout: Duration = "5m"
    min_healthy: str = Field(
        "51%", max_length=8, pattern=MIN_HEALTHY_PATTERN,
        description="Nodes that must stay healthy, cluster-wide: a number or a percent of all Nodes (rounded up), "
                    "as NodeHealthCheck's minHealthy; the drain is refused when it would leave fewer. Healthy: "
                    "none of the Runbook's nodeCondition triggers holds (Ready=True when it has none), not cordoned")


class DeletePodParams(Model):
    only_failing: bool = Field(True, description="delete only the pods that are failing, not healthy ones")


class RolloutCompleteCheck(Model):
    timeout: Duration | None = None


class PodsReadyCheck(Model):
    window: Duration = Field("1m", description="Ready with a stable restart count for this long")


class PromqlCheck(Model):
    query: str = Field(min_length=1)
    op: Literal["<", "<=", ">", ">=", "==", "!="] = "<"
    threshold: float
    for_: Duration = Field("1m", alias="for")


class SloRecoveredCheck(Model):
    slo: str = Field(min_length=1)
    for_: Duration = Field("2m", alias="for")


class Verify(Model):
    """All checks that are set must pass; none set means the action's own completion is the check."""

    rollout_complete: RolloutCompleteCheck | None = None
    pods_ready: PodsReadyCheck | None = None
    promql: PromqlCheck | None = None
    slo_recovered: SloRecoveredCheck | None = None


ChangeKind = Literal["rollout", "configChange", "secretChange", "scaleChange", "hpaChange", "nodeChange"]
CauseKind = Literal["rollout", "configChange", "secretChange", "scaleChange", "hpaChange", "nodeChange", "none"]


class CauseCondition(Model):
    """Run a step only when the probable cause is (or is not) of these kinds."""

    cause_kinds: list[CauseKind] = Field(default_factory=list)
    negate: bool = False


GitopsMode = Literal["refuse", "suspend", "ignore"]


class StepGitops(Model):
    """A step's own choice for a target a GitOps reconciler owns; used only where the policy allows it."""

    flux: GitopsMode | None = None
    argocd: GitopsMode | None = None


class Step(Model):
    name: str = Field(min_length=1, max_length=63)
    action: ActionName
    risk: RiskLevel = "low"
    timeout: Duration = "5m"
    scale: ScaleParams | None = None
    raise_memory: RaiseMemoryParams | None = None
    drain: DrainParams | None = None
    delete_pod: DeletePodParams | None = None
    verify: Verify = Field(default_factory=Verify)
    when: CauseCondition | None = None
    gitops: StepGitops | None = Field(None, description="override the policy's gitops modes for this step "
                                                        "(only where the policy's gitops.allowStepOverride is true)")


class Guard(Model):
    cooldown: Duration = "10m"
    max_runs_per_hour: int = Field(3, ge=1)
    max_concurrent_per_target: int = Field(1, ge=1)


class Escalation(Model):
    message: str = ""
    slack_channel: str | None = None


class RunbookSpec(Model):
    description: str = ""
    priority: int = Field(0, description="breaks ties between equally specific runbooks; higher wins")
    triggers: list[Trigger] = Field(min_length=1, max_length=MAX_TRIGGERS)
    target: TargetTemplate
    steps: list[Step] = Field(min_length=1, max_length=20)
    guard: Guard = Field(default_factory=Guard)
    escalation: Escalation = Field(default_factory=Escalation)
    service_account_name: str | None = Field(
        None, description="actions run as this ServiceAccount of the Runbook's namespace (impersonated)"
    )
    adaptive: bool = Field(False, description="reorder steps by observed success (off by default)")
    suspend: bool = False


MAX_RECENT_RECOVERIES = 20
MAX_FOLDED = 100
MAX_STEP_STATS = 64
# Per signal type, what the adaptive ladder reads: the most recently seen types, each with its steps.
MAX_SIGNAL_STATS = 16
MAX_SIGNAL_TYPE_LENGTH = 256
MAX_STEPS = 20


class StepStats(Model):
    """How a step has fared over the Remediations folded into this Runbook's status."""

    name: str
    succeeded: int = Field(0, ge=0)
    failed: int = Field(0, ge=0)


class SignalStats(Model):
    """How each step fared on one signal type (source/name): what the adaptive ladder orders by."""

    signal: str = Field(max_length=MAX_SIGNAL_TYPE_LENGTH, description="source/name, e.g. alertmanager/HighErrorRate")
    steps: list[StepStats] = Field(default_factory=list, max_length=MAX_STEPS)


class LastRemediation(Model):
    name: str
    phase: str
    finished_at: str | None = None


class RunbookStatus(Model):
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    last_remediation: LastRemediation | None = Field(None, description="the latest Remediation this Runbook ended")
    last_triggered_at: str | None = None
    step_stats: list[StepStats] = Field(default_factory=list, max_length=MAX_STEP_STATS)
    signal_stats: list[SignalStats] = Field(
        default_factory=list, max_length=MAX_SIGNAL_STATS,
        description="per signal type, applied steps with a verdict; the least recently seen type goes first")
    signal_stats_complete: bool = Field(
        False, description="signalStats count every ended Remediation of this Runbook, also those ended before "
                           "signalStats existed (counted once by the retention sweep, which deletes none before)")
    recent_recovery_seconds: list[float] = Field(
        default_factory=list, max_length=MAX_RECENT_RECOVERIES,
        description="time to recover of the latest recovered Remediations, oldest first")
    median_time_to_recover_seconds: float | None = None
    median_time_to_recover: str | None = Field(None, max_length=MAX_TEXT, description="the same as a duration (2m5s), "
                                                                                  "for the printer column")
    step_results: str | None = Field(None, max_length=MAX_STEP_RESULTS,
                                     description="each step's verified successes/applied, for the printer column")
    folded: list[str] = Field(default_factory=list, max_length=MAX_FOLDED,
                              description="uids of the latest Remediations counted here: each counts once")

    @model_validator(mode="before")
    @classmethod
    def _read(cls, data):
        return without_text(data, "median_time_to_recover", "step_results")

    @model_serializer(mode="wrap")
    def _texts(self, handler, info: SerializationInfo) -> dict:
        return with_text(self, handler, info, {
            "median_time_to_recover": ("median_time_to_recover_seconds", seconds_text),
            "step_results": ("step_stats", step_results_text)})


# ---------------------------------------------------------------- RemediationPolicy


class ApprovalRule(Model):
    level: RiskLevel
    approvers: int = Field(0, ge=0, le=5, description="0 = no approval needed")
    allowed_slack_users: list[str] = Field(default_factory=list)
    allowed_slack_groups: list[str] = Field(default_factory=list)
    allowed_kubernetes_users: list[str] = Field(default_factory=list)
    allowed_kubernetes_groups: list[str] = Field(default_factory=list)
    timeout: Duration = "30m"
    on_timeout: Literal["deny", "escalate", "proceed"] = "deny"


class Person(Model):
    """One human and their identities: votes are counted per person, not per identity."""

    name: str = Field(min_length=1, max_length=128)
    slack: str | None = Field(None, max_length=64, description="Slack user id, e.g. U0123ABC")
    kubernetes: str | None = Field(None, max_length=512, description="Kubernetes username, as the apiserver knows it")


class Approval(Model):
    slack_channel: str | None = Field(
        None, description="where approval requests are posted; a channel id (C...) lets a restarted operator find "
                          "a message it posted before a crash instead of posting a second one")
    rules: list[ApprovalRule] = Field(
        default_factory=list, max_length=len(RISK_LEVELS), description="at most one rule per risk level"
    )
    people: list[Person] = Field(
        default_factory=list, max_length=256,
        description="persons and their Slack/Kubernetes identities: one person's votes count once")


class BlastRadius(Model):
    max_pods: int = Field(5, ge=1)
    max_percent: int = Field(50, ge=1, le=100)


class Concurrency(Model):
    max_active: int = Field(10, ge=1, description="remediations acting at once, cluster-wide")
    max_per_namespace: int = Field(3, ge=1)


class FreezeWindow(Model):
    # start/end are checked by remediator.api.rules (CEL and offline), not by pydantic:
    # core.freeze reads an unreadable window as in force, and its tests hand it one.
    name: str
    start: str = Field(
        max_length=MAX_TIME_LENGTH, description="RFC 3339 time with an offset, e.g. 2025-12-24T00:00:00Z"
    )
    end: str = Field(
        max_length=MAX_TIME_LENGTH, description="RFC 3339 time with an offset; the window is [start, end)"
    )


class CircuitBreaker(Model):
    failures: int = Field(3, ge=1)
    window: Duration = "1h"


class StormHoldoff(Model):
    targets: int = Field(10, ge=2, description="distinct failing targets that make a storm")
    window: Duration = "5m"


class NamespaceBounds(Model):
    namespaces: list[str] = Field(default_factory=list, description="names or globs; empty = all")
    allowed_actions: list[ActionName] = Field(default_factory=lambda: list(ACTIONS))
    max_replicas: int | None = Field(None, ge=1)
    max_memory: str | None = Field(
        None, max_length=MAX_QUANTITY_LENGTH, description="a memory quantity, e.g. 4Gi"
    )
    allow_cross_namespace: bool = False
    allow_node_actions: bool = Field(
        False, description="Runbooks of these namespaces may act on Nodes (cordonDrain); off unless a cluster "
                           "admin turns it on here")
    allowed_service_accounts: list[ServiceAccountName] = Field(
        default_factory=list, max_length=MAX_BOUNDS,
        description="ServiceAccounts of these namespaces a Runbook's serviceAccountName may name (exact names); "
                    "the chart's tenant action account is always allowed, any other name is refused")


class Retention(Model):
    terminal_remediations: Duration = Field(
        "30d", description="ended Remediations are deleted this long after they finished, once their outcome is "
                           "counted in their Runbook's status; at least 1h. The report's default window is 30d")


class GitopsPolicy(Model):
    """What to do when the target is owned by a GitOps reconciler, which would undo the action."""

    flux: GitopsMode = Field("refuse", description="Flux Kustomization/HelmRelease owners: refuse (escalate), "
                                                   "suspend (pause it, act, resume when Git moves on) or ignore")
    argocd: GitopsMode = Field("refuse", description="Argo CD Application owners, as for flux")
    lease: Duration = Field("1h", description="longest pause: the owner is resumed then even if Git is unchanged")
    allow_step_override: bool = Field(False, description="Runbook steps may choose their own mode")
    argocd_instance_label: str | None = Field(
        None, max_length=317, description="Argo CD label tracking: the label naming the Application "
                                          "(e.g. app.kubernetes.io/instance); unset: the tracking-id annotation only")
    argocd_namespace: str = Field("argocd", min_length=1, max_length=63,
                                  description="where Argo CD's Applications live (label tracking, plain tracking ids)")


class EscalationPolicy(Model):
    allowed_slack_channels: list[Annotated[str, Field(min_length=1, max_length=80)]] = Field(
        default_factory=list, max_length=64,
        description="channels a Runbook's escalation.slackChannel may name ('*': any); any other is not used and "
                    "the escalation goes to approval.slackChannel: a tenant's Runbook cannot post where it likes")


class RemediationPolicySpec(Model):
    mode: Literal["enforce", "dryRun"] = "enforce"
    namespaces: list[str] = Field(default_factory=list, description="names or globs; empty = all")
    namespace_selector: LabelSelector | None = None
    approval: Approval = Field(default_factory=Approval)
    blast_radius: BlastRadius = Field(default_factory=BlastRadius)
    concurrency: Concurrency = Field(default_factory=Concurrency)
    freeze_windows: list[FreezeWindow] = Field(default_factory=list, max_length=MAX_FREEZE_WINDOWS)
    circuit_breaker: CircuitBreaker = Field(default_factory=CircuitBreaker)
    storm_holdoff: StormHoldoff = Field(default_factory=StormHoldoff)
    bounds: list[NamespaceBounds] = Field(default_factory=list, max_length=MAX_BOUNDS)
    retention: Retention = Field(default_factory=Retention)
    gitops: GitopsPolicy = Field(default_factory=GitopsPolicy)
    escalation: EscalationPolicy = Field(default_factory=EscalationPolicy)


class RemediationPolicyStatus(Model):
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)


# ---------------------------------------------------------------- Remediation

RemediationPhase = Literal[
    "Pending", "Planned", "AwaitingApproval", "Acting", "Verifying",
    "Succeeded", "Failed", "Escalated", "Denied", "Cancelled", "Skipped", "Expired",
]
PHASES: frozenset[str] = frozenset(get_args(RemediationPhase))
TERMINAL_PHASES: frozenset[str] = frozenset(
    {"Succeeded", "Failed", "Escalated", "Denied", "Cancelled", "Skipped", "Expired"}
)


class Signal(Model):
    source: Literal["alertmanager", "podState", "sloBurn", "anomaly", "nodeCondition", "manual"]
    name: str = Field(description="alertname, pod state, SLO name or anomaly description")
    fingerprint: str = ""
    starts_at: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    severity: str = ""
    summary: str = ""


class ObjectRef(Model):
    kind: TargetKind
    namespace: str | None = None
    name: str


class RunbookRef(Model):
    name: str
    namespace: str
    generation: int | None = None


class RemediationSpec(Model):
    signal: Signal
    runbook: RunbookRef
    target: ObjectRef


class Evidence(Model):
    kind: str
    detail: str
    value: str | None = None
    at: str | None = None


class CauseChange(Model):
    """One ranked candidate change: what, when, before/after digests, never a Secret's contents."""

    kind: ChangeKind
    object: str = Field(max_length=320, description="Kind/name, e.g. Deployment/web")
    at: str
    what: str = Field("", max_length=512)
    before: str = Field("", max_length=256)
    after: str = Field("", max_length=256)
    revision: str | None = None
    score: int = Field(ge=0, le=100)
    reasons: list[str] = Field(default_factory=list, max_length=8)


class ProbableCause(Model):
    """What changed before the breach, ranked; found once when the Remediation is planned."""

    kind: CauseKind = Field(description="the top candidate's kind; none = nothing changed in the window")
    summary: str = Field("", max_length=1024)
    breach_start: str | None = None
    changes: list[CauseChange] = Field(default_factory=list, max_length=5)
    ignored: list[str] = Field(default_factory=list, max_length=8,
                               description="changes left out, and why (after the breach, outside the window)")


class PlannedStep(Model):
    index: int
    name: str
    action: ActionName
    risk: RiskLevel
    skip: bool = False
    reason: str = ""
    order: int | None = Field(None, ge=0, description="position in the ladder when adaptive ordering moved "
                                                       "steps; unset: the runbook's order (its index)")
    step: Step | None = Field(None, description="the Runbook step as it was at planning (action, params, risk, "
                                                "verify, timeout): what runs, whatever the Runbook says later")


class RiskAssessment(Model):
    score: int = Field(ge=0, le=100)
    level: RiskLevel
    reasons: list[str] = Field(default_factory=list)


StepPhase = Literal["Intended", "Applied", "Verifying", "Succeeded", "Failed", "Inconclusive", "Skipped"]


MAX_READINGS = 24  # per step record: 8 run starts per check, so a Remediation stays small
MAX_READING_PODS = 20  # restart counts a step began with, kept per step record (pods above zero only)
MAX_READING_TEXT = 128
MAX_READING_DETAIL = 1000  # as evidence keeps it; only the start of each query's current run keeps one


class Reading(Model):
    """One verification reading kept in the step record, so a restarted or newly elected operator continues
    the same window. Only the first reading of each run is kept (pods all Ready with the same restart counts;
    a query's condition holding, erroring or neither): a run's start is all a verdict needs besides the
    reading in hand. `at` is the wall-clock instant of the reading, comparable across replicas."""

    check: Literal["pods", "promql", "sloRecovered"]
    at: str = Field(max_length=40)
    holds: bool = Field(False, description="pods: the target exists and every pod is Ready; "
                                           "queries: the condition holds")
    gone: bool = Field(False, description="pods: the target was not found")
    pods: str | None = Field(None, max_length=16, description="digest of the pods' uids and restart counts")
    restarts: dict[str, int] = Field(default_factory=dict, max_length=MAX_READING_PODS,
                                     description="pods: the step's first reading only, the restart count each pod "
                                                 "(by uid) began with, if above zero; a pod not named began at zero "
                                                 "or was made during the step")
    restarts_untold: bool | None = Field(None, description="pods: more pods had restarted before the step than "
                                                     "`restarts` may name; a pod not named then counts no restart")
    value: float | None = None
    detail: str | None = Field(None, max_length=MAX_READING_DETAIL,
                               description="queries: what came back (kept on the current run's start only)")
    error: str | None = Field(None, max_length=MAX_READING_TEXT,
                              description="queries: why Prometheus could not answer")


class StepRecord(Model):
    index: int
    name: str
    action: ActionName
    idempotency_key: str
    phase: StepPhase
    started_at: str | None = None
    applied_at: str | None = None
    finished_at: str | None = None
    result: str = ""
    message: str = ""
    evidence: list[Evidence] = Field(default_factory=list)
    readings: list[Reading] = Field(default_factory=list, max_length=MAX_READINGS,
                                    description="the verification readings the verdict needs, bounded")


class TargetClaim(Model):
    """The per-target Lease (coordination.k8s.io/v1) this Remediation holds while a step acts and verifies:
    recorded before the action, so a restart knows the claim is its own."""

    lease: str
    namespace: str
    holder: str = Field(description="the holding Remediation's uid (the Lease's holderIdentity)")
    acquired_at: str
    expires_at: str


class Vote(Model):
    user: str
    source: Literal["slack", "kubernetes"]
    decision: Literal["approve", "deny"]
    at: str
    reason: str = ""
    request_id: str = Field("", max_length=64, description="the approval request this vote was cast for")


class ApprovalState(Model):
    request_id: str | None = Field(None, max_length=64, description="votes must name it (Slack button, "
                                                                    "RemediationApproval spec.requestId)")
    step_index: int | None = Field(None, description="the one step this request approves")
    step_digest: str | None = Field(None, max_length=64, description="digest of that step's action, target and "
                                                                     "params: an approval covers exactly it")
    step_summary: str = Field("", max_length=512, description="what is approved, as shown to the approvers")
    required: int = 0
    level: RiskLevel | None = None
    requested_at: str | None = None
    deadline: str | None = None
    decided_at: str | None = None
    decision: Literal["approved", "denied", "expired"] | None = None
    votes: list[Vote] = Field(default_factory=list)
    slack_channel: str | None = None
    slack_ts: str | None = None
    slack_channel_name: str | None = Field(None, max_length=256, description="the channel as the policy named it "
                                                                             "when the request was posted "
                                                                             "(slackChannel: Slack's id for it)")


# The timeline keeps its last TIMELINE_LIMIT entries (core.state.append_timeline); the schema leaves room for a
# few more, so objects written before every writer went through append_timeline still read.
TIMELINE_LIMIT = 50
MAX_TIMELINE = 64
MAX_TIMELINE_MESSAGE = 1024


def cut(limit: int):
    """A long text is cut to `limit` (ending in …) rather than refused: a note must never stop the loop."""
    return BeforeValidator(lambda v: v[:limit - 1] + "…" if isinstance(v, str) and len(v) > limit else v)


class TimelineEntry(Model):
    at: str = Field(max_length=MAX_TIME_LENGTH)
    kind: str = Field(max_length=64)
    message: Annotated[str, cut(MAX_TIMELINE_MESSAGE)] = Field(max_length=MAX_TIMELINE_MESSAGE)


class Condition(Model):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = ""
    message: str = ""
    last_transition_time: str | None = None


class RemediationStatus(Model):
    phase: RemediationPhase = "Pending"
    dry_run: bool = False
    match_reasons: list[str] = Field(default_factory=list)
    probable_cause: ProbableCause | None = None
    plan: list[PlannedStep] = Field(default_factory=list, max_length=20)  # a Runbook has at most 20 steps
    runbook_generation: int | None = Field(None, description="the Runbook's metadata.generation the plan pinned")
    runbook_seen_generation: int | None = Field(None, description="the last Runbook generation noted on the "
                                                                  "timeline (edits after planning do not run)")
    service_account_name: str | None = Field(None, description="the Runbook's serviceAccountName pinned at planning")
    risk: RiskAssessment | None = None
    planned_changes: list[str] = Field(default_factory=list, max_length=20,
                                       description="what a server-side dry run of the next step would change")
    current_step: int | None = None
    steps: list[StepRecord] = Field(default_factory=list, max_length=MAX_STEPS, description="one per step run")
    approval: ApprovalState | None = None
    timeline: list[TimelineEntry] = Field(default_factory=list, max_length=MAX_TIMELINE)
    conditions: list[Condition] = Field(default_factory=list, max_length=8)
    reason: str = ""
    signal_resolved_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    time_to_recover_seconds: float | None = None
    time_to_recover: str | None = Field(None, max_length=MAX_TEXT, description="the same as a duration (30s, 2m5s), "
                                                                           "for the printer column")
    target_display: str = Field("", description="Kind/name, for the printer column")
    claim: TargetClaim | None = None
    folded_into_runbook: bool = Field(False, description="its outcome is counted in its Runbook's status")
    escalation: EscalationPost | None = Field(None, description="the escalation message posted when it ended")
    escalation_alert: EscalationAlert | None = Field(None, description="the RemediationEscalated alert sent to "
                                                                       "Alertmanager while the incident is open")
    # The end of the incident (core.escalation.incident_end); null while nobody knows service is back.
    restored_at: str | None = Field(None, max_length=MAX_TIME_LENGTH, description="when service was restored")
    restored_by: Literal["operator", "humans"] | None = Field(
        None, description="operator: its own step verified; humans: ended after escalation or failure, by the "
                          "signal resolving or `remediator resolve`")
    # "kubernetes:" + a RemediationApproval's spec.user (at most 512): a longest name still fits
    resolved_by: str | None = Field(None, max_length=576, description="who ran `remediator resolve`, as the "
                                                                      "apiserver authenticated them")
    resolution_note: str = Field("", max_length=1024, description="their note")
    gitops: GitopsState | None = Field(None, description="the GitOps reconciler that owns the target, if any")

    @model_validator(mode="before")
    @classmethod
    def _read(cls, data):
        return without_text(data, "time_to_recover")

    @model_serializer(mode="wrap")
    def _texts(self, handler, info: SerializationInfo) -> dict:
        return with_text(self, handler, info, {"time_to_recover": ("time_to_recover_seconds", seconds_text)})


class GitopsState(Model):
    """The GitOps owner of the target, what the policy said, and the pause this Remediation holds on it."""

    tool: Literal["flux", "argocd"]
    kind: str = Field(max_length=64)
    namespace: str = Field(max_length=63)
    name: str = Field(max_length=253)
    mode: GitopsMode
    source: str = Field("", max_length=320, description="the owner's source, e.g. GitRepository flux-system/app")
    revision: str | None = Field(None, max_length=256, description="the Git revision the owner applied when planned")
    suspended_at: str | None = None
    until: str | None = Field(None, description="the pause's lease: resumed then even if Git is unchanged")
    settled_at: str | None = Field(None, description="when the step was let act after the pause: the owner "
                                                     "handled the pause's reconcile request, or the wait's bound "
                                                     "passed (settleReason says which)")
    settle_reason: Annotated[str, cut(512)] = Field("", max_length=512)
    resumed_at: str | None = None
    resume_reason: str = Field("", max_length=512)
    desired_state: Annotated[str, cut(1024)] = Field("", max_length=1024,
                                                     description="what Git still declares, after the fix")
    revert: Annotated[str, cut(1024)] = Field("", max_length=1024,
                                              description="the change a human should make in Git")
    declared: dict[str, Annotated[str, cut(256), Field(max_length=256)]] = Field(
        default_factory=dict, max_length=3,
        description="what Git declares of the fields the fix changed (path -> value): the target back at these "
                    "while the owner is held means the fix was undone")
    watched_revision: str | None = Field(None, max_length=256,
                                         description="the revision Git moved to, watched after the resume")
    watch_until: str | None = Field(None, description="end of the watch after the resume: the revision must be "
                                                      "Ready with the target healthy, and stay so, until then")
    ready_at: str | None = Field(None, description="when the owner was first Ready at the watched revision with "
                                                   "the target healthy")
    watch_outcome: Literal["Healthy", "Regressed"] | None = Field(
        None, description="Healthy, or Regressed (escalated to humans: not remediated again at that revision)")
    watch_reason: Annotated[str, cut(512)] = Field("", max_length=512)


class EscalationPost(Model):
    slack_channel: str
    slack_ts: str


class EscalationAlert(Model):
    starts_at: str = Field(max_length=MAX_TIME_LENGTH, description="the alert's startsAt (it names the alert)")
    sent_at: str | None = Field(None, max_length=MAX_TIME_LENGTH, description="last (re-)sent firing")
    resolved_at: str | None = Field(None, max_length=MAX_TIME_LENGTH,
                                    description="when Alertmanager took its resolution (endsAt)")
    refused: str | None = Field(None, max_length=512,
                                description="why Alertmanager refused this alert (400/413/422); not sent again")


# ---------------------------------------------------------------- RemediationApproval


class RemediationApprovalSpec(Model):
    """A vote cast with kubectl or `remediator approve|deny` when Slack is down.

    Who may create one is Kubernetes RBAC (`create remediationapprovals`);
    `user` and `groups` are checked against the creator's real identity by
    a ValidatingAdmissionPolicy the chart installs, so nobody can vote as
    someone else.
    """

    remediation: str = Field(min_length=1, max_length=253)
    request_id: str = Field(min_length=1, max_length=64,
                            description="the Remediation's status.approval.requestId this vote is for; a vote "
                                        "for any other request is refused as stale")
    decision: Literal["approve", "deny", "resolve"] = Field(
        description="approve|deny: a vote on the open request; resolve: the incident is over (service restored "
                    "by people), requestId is then the Remediation's metadata.uid and reason the note")
    reason: str = Field("", max_length=1024)
    user: str = Field(min_length=1, max_length=512, description="the creator's username, as the apiserver knows it")
    groups: list[str] = Field(default_factory=list, max_length=64)


class RemediationApprovalStatus(Model):
    outcome: str = Field("", description="accepted | duplicate | refused-not-allowed | refused-already-decided "
                                         "| refused-expired | refused-stale | refused-invalid | refused-unknown-remediation")
    message: str = ""
    recorded_at: str | None = None
