"""Guardrails checked at plan time and again right before acting: may this action run now?

Every guard is evaluated (no short-circuit) and returns a decision with a
reason, allowed or not, so `kubectl describe` shows the whole picture. The
verdict is allowed only if every decision is; `retry_at` says when the
time-bound blocks (cooldown, rate, freeze, circuit breaker, storm) lift.

Choices worth knowing:

- No RemediationPolicy for the namespace means the *default* policy's
  guardrails (blast radius, concurrency, circuit breaker, storm hold-off),
  not none: safe by default.
- `pods_touched` is how many pods the action takes down *at once*, computed
  by core.guard_inputs with the actions' own sizing (core.sizing): a rolling
  restart (or rollback, raiseMemory) from the workload's update strategy
  (Recreate: all; RollingUpdate: maxUnavailable + maxSurge, at least 1),
  deletePod the pods it deletes, cordonDrain the pods the drain evicts, a
  scale-out none.
  The percent limit always allows one pod (floor(replicas * maxPercent) but
  at least 1), so a 1-replica workload can still be restarted; its risk is
  scored separately (core.risk adds points for touching the only replica).
  Unknown pods touched, or unknown replicas of a workload, block.
- Times in the history: `started_at` is when the remediation was created,
  `finished_at` when it reached a terminal phase. Cooldown and the circuit
  breaker count from `finished_at` (else `started_at`); rate and storm from
  `started_at`. Entries with no time at all only count for concurrency.
- The circuit breaker (and risk's recent failures) count only remediations whose
  action ran and that still did not succeed (Failed, Escalated): a cooldown or
  dry-run skip, a denial, a cancel or an expired approval changed nothing.
- Concurrency counts remediations in Acting or Verifying; the one being
  checked (`remediation_name`) is left out of every count.
- Storm hold-off counts every remediation created within the window (each is
  a failing target, whatever became of it) plus this target.
- Bounds apply by the Runbook's namespace (where the Remediation lives);
  when several entries match, the strictest wins for each limit.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from remediator.api.models import (
    ActionName,
    FreezeWindow,
    Guard,
    NamespaceBounds,
    ObjectRef,
    RemediationPolicySpec,
    RunbookRef,
)
from remediator.core.durations import format_ago, format_time, parse_duration, parse_time
from remediator.core.plan.freeze import freeze_status
from remediator.core.plan.nodes import NodeFact, min_healthy_decision
from remediator.core.match.matching import target_display
from remediator.core.quantity import parse_quantity

ACTIVE_PHASES = frozenset({"Acting", "Verifying"})
# Ended without a failed action: nothing ran (cooldown, dry run, guard), or a human or the signal stopped it.
NOT_A_FAILURE_PHASES = frozenset({"Skipped", "Cancelled", "Denied", "Expired"})
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "Rollout"})
RATE_WINDOW = timedelta(hours=1)


@dataclass(frozen=True, slots=True)  # slots: 10,000 of them are held for the guards
class PastRemediation:
    """What guards need to know of one Remediation (the one being checked may be among them)."""

    name: str
    runbook_key: str  # runbook_key(): "namespace/name"; the Remediation lives in that namespace
    target_key: str  # target_key(): "Kind/namespace/name" or "Kind/name"
    phase: str
    started_at: datetime | None
    finished_at: datetime | None
    succeeded: bool | None
    acted: bool
    resource_version: str = ""  # of the object it was read from: the retention sweep deletes that version only

    @property
    def namespace(self) -> str:
        return self.runbook_key.split("/", 1)[0]

    @property
    def last_seen(self) -> datetime | None:
        return self.finished_at or self.started_at

    @property
    def failed(self) -> bool:
        """An action ran and the remediation still did not succeed (what the circuit breaker and risk count)."""
        return self.acted and self.succeeded is False and self.phase not in NOT_A_FAILURE_PHASES


@dataclass(frozen=True)
class GuardContext:
    now: datetime
    runbook: RunbookRef
    guard: Guard
    policy: RemediationPolicySpec | None
    target: ObjectRef
    history: Sequence[PastRemediation]
    action: ActionName
    target_replicas: int | None
    pods_touched: int | None
    remediation_name: str | None = None  # this remediation, left out of the counts
    desired_replicas: int | None = None  # scale: replicas after the action
    desired_memory: str | None = None  # raiseMemory: the new limit, a quantity like "768Mi"
    service_account: str | None = None  # the Runbook's serviceAccountName
    default_service_account: str | None = None  # the operator's tenant action account (--action-service-account)
    nodes: tuple[NodeFact, ...] | None = None  # cordonDrain: every Node, for minHealthy (None = unknown)
    node_triggers: tuple = ()  # cordonDrain: the Runbook's NodeConditionTriggers, which say what healthy is
    min_healthy: str | None = None  # cordonDrain: the step's drain.minHealthy

    def __post_init__(self) -> None:
        if self.now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        object.__setattr__(self, "history", tuple(self.history))

    @property
    def runbook_key(self) -> str:
        return runbook_key(self.runbook)

    @property
    def target_key(self) -> str:
        return target_key(self.target)

    @property
    def effective_policy(self) -> RemediationPolicySpec:
        return self.policy or RemediationPolicySpec()

    @property
    def others(self) -> tuple[PastRemediation, ...]:
        return tuple(p for p in self.history if p.name != self.remediation_name)


@dataclass(frozen=True)
class GuardDecision:
    guard: str
    allowed: bool
    reason: str
    retry_at: datetime | None = None  # when a time-bound block lifts


@dataclass(frozen=True)
class GuardVerdict:
    allowed: bool
    decisions: list[GuardDecision] = field(default_factory=list)
    retry_at: datetime | None = None  # when every block seen now lifts; None if allowed or not time-bound

    @property
    def blocked_by(self) -> list[GuardDecision]:
        return [d for d in self.decisions if not d.allowed]

    def summary(self) -> str:
        if self.allowed:
            return f"all {len(self.decisions)} guards allow it"
        return "; ".join(d.reason for d in self.blocked_by)


def runbook_key(ref: RunbookRef) -> str:
    return f"{ref.namespace}/{ref.name}"


def target_key(ref: ObjectRef) -> str:
    return target_display(ref)


def check_guards(ctx: GuardContext) -> GuardVerdict:
    decisions = [check(ctx) for check in GUARDS]
    if ctx.policy is None:
        decisions.insert(0, GuardDecision(
            "policy", True, f"policy: no RemediationPolicy applies to namespace {ctx.runbook.namespace!r}: "
                            "default guardrails used"))
    blocked = [d for d in decisions if not d.allowed]
    if not blocked:
        return GuardVerdict(True, decisions, None)
    retry = None if any(d.retry_at is None for d in blocked) else max(d.retry_at for d in blocked)
    return GuardVerdict(False, decisions, retry)


# ---------------------------------------------------------------- per runbook + target


def check_cooldown(ctx: GuardContext) -> GuardDecision:
    try:
        cooldown = parse_duration(ctx.guard.cooldown)
    except ValueError as err:
        return GuardDecision("cooldown", False, f"cooldown: unreadable ({err}): blocked until fixed")
    runs = [p.last_seen for p in _same_runbook_and_target(ctx) if p.acted and p.last_seen]
    if not runs:
        return GuardDecision("cooldown", True, f"cooldown: no earlier run of {ctx.runbook_key} acted on {ctx.target_key}")
    last = max(runs)
    next_allowed = last + cooldown
    if ctx.now < next_allowed:
        return GuardDecision(
            "cooldown", False,
            f"cooldown: last run {format_ago(ctx.now - last)} ago, cooldown {ctx.guard.cooldown}, "
            f"next allowed at {format_time(next_allowed)}",
            next_allowed,
        )
    return GuardDecision("cooldown", True,
                         f"cooldown: last run {format_ago(ctx.now - last)} ago, cooldown {ctx.guard.cooldown} has passed")


def check_rate(ctx: GuardContext) -> GuardDecision:
    limit = ctx.guard.max_runs_per_hour
    recent = sorted(p.started_at for p in _same_runbook_and_target(ctx)
                    if p.acted and p.started_at and ctx.now - p.started_at < RATE_WINDOW)
    counted = f"{len(recent)} run(s) of {ctx.runbook_key} on {ctx.target_key} in the last hour (limit {limit})"
    if len(recent) < limit:
        return GuardDecision("rate", True, f"rate: {counted}")
    # The run that must leave the window for the count to drop under the limit.
    next_allowed = recent[len(recent) - limit] + RATE_WINDOW
    return GuardDecision("rate", False, f"rate: {counted}, next allowed at {format_time(next_allowed)}", next_allowed)


def _same_runbook_and_target(ctx: GuardContext) -> list[PastRemediation]:
    return [p for p in ctx.others if p.runbook_key == ctx.runbook_key and p.target_key == ctx.target_key]


# ---------------------------------------------------------------- concurrency


def check_target_concurrency(ctx: GuardContext) -> GuardDecision:
    limit = ctx.guard.max_concurrent_per_target
    active = [p.name for p in ctx.others if p.phase in ACTIVE_PHASES and p.target_key == ctx.target_key]
    return _concurrency("targetConcurrency", f"acting on {ctx.target_key}", active, limit)


def check_cluster_concurrency(ctx: GuardContext) -> GuardDecision:
    limit = ctx.effective_policy.concurrency.max_active
    active = [p.name for p in ctx.others if p.phase in ACTIVE_PHASES]
    return _concurrency("concurrency", "acting cluster-wide", active, limit, "maxActive")


def check_namespace_concurrency(ctx: GuardContext) -> GuardDecision:
    limit = ctx.effective_policy.concurrency.max_per_namespace
    namespace = ctx.runbook.namespace
    active = [p.name for p in ctx.others if p.phase in ACTIVE_PHASES and p.namespace == namespace]
    return _concurrency("namespaceConcurrency", f"acting in namespace {namespace!r}", active, limit, "maxPerNamespace")


def _concurrency(guard: str, where: str, active: list[str], limit: int, setting: str = "limit") -> GuardDecision:
    shown = f" ({', '.join(sorted(active)[:5])}{', …' if len(active) > 5 else ''})" if active else ""
    text = f"{guard}: {len(active)} other remediation(s) {where}{shown}, {setting} {limit}"
    # No retry time: it lifts when another remediation finishes, not at a known instant.
    return GuardDecision(guard, len(active) < limit, text)


# ---------------------------------------------------------------- blast radius


def check_blast_radius(ctx: GuardContext) -> GuardDecision:
    radius = ctx.effective_policy.blast_radius
    touched, replicas = ctx.pods_touched, ctx.target_replicas
    if touched is None:
        return GuardDecision("blastRadius", False,
                             f"blast radius: unknown how many pods {ctx.action} touches: blocked (unknown -> do nothing)")
    if touched > radius.max_pods:
        return GuardDecision("blastRadius", False,
                             f"blast radius: {ctx.action} touches {touched} pods at once, over maxPods {radius.max_pods}")
    if replicas is None:
        if ctx.target.kind in WORKLOAD_KINDS:
            return GuardDecision("blastRadius", False,
                                 f"blast radius: replicas of {ctx.target_key} unknown, cannot check maxPercent: blocked")
        return GuardDecision("blastRadius", True,
                             f"blast radius: {ctx.action} touches {touched} pod(s), within maxPods {radius.max_pods} "
                             f"(maxPercent does not apply to a {ctx.target.kind})")
    allowance = percent_allowance(replicas, radius.max_percent)
    share = f"{touched} of {replicas} pod(s) at once"
    if touched > allowance:
        return GuardDecision(
            "blastRadius", False,
            f"blast radius: {ctx.action} touches {share}, over maxPercent {radius.max_percent}% "
            f"({allowance} pod(s))",
        )
    floor_note = " (one pod is always allowed)" if allowance > replicas * radius.max_percent // 100 else ""
    return GuardDecision(
        "blastRadius", True,
        f"blast radius: {ctx.action} touches {share}, within maxPods {radius.max_pods} and "
        f"maxPercent {radius.max_percent}% ({allowance} pod(s)){floor_note}",
    )


def percent_allowance(replicas: int, max_percent: int) -> int:
    """Pods that may be touched at once: maxPercent of replicas, rounded down, but never less than one."""
    return max(1, replicas * max_percent // 100)


# ---------------------------------------------------------------- freeze, breaker, storm


def check_freeze(ctx: GuardContext) -> GuardDecision:
    status = freeze_status(ctx.effective_policy.freeze_windows, ctx.now)
    if not status.inside:
        upcoming = [r for r in status.reasons if r.startswith("next")]
        return GuardDecision("freeze", True, "freeze: not inside any freeze window" +
                             (f" ({upcoming[0]})" if upcoming else ""))
    ends = [_readable_end(window) for window in status.active]
    retry = None if None in ends else max(ends)
    return GuardDecision("freeze", False, "freeze: " + "; ".join(r for r in status.reasons
                                                               if not r.startswith("next")), retry)


def _readable_end(window: FreezeWindow) -> datetime | None:
    """The window's end, or None when the window cannot be read (it then holds until someone fixes it)."""
    try:
        start, end = parse_time(window.start), parse_time(window.end)
    except ValueError:
        return None
    return end if end > start else None


def check_circuit_breaker(ctx: GuardContext) -> GuardDecision:
    breaker = ctx.effective_policy.circuit_breaker
    try:
        window = parse_duration(breaker.window)
    except ValueError as err:
        return GuardDecision("circuitBreaker", False, f"circuit breaker: window unreadable ({err}): treated as open")
    failures = sorted(p.last_seen for p in ctx.others
                      if p.runbook_key == ctx.runbook_key and p.failed and p.last_seen
                      and ctx.now - p.last_seen < window)
    if len(failures) < breaker.failures:
        return GuardDecision(
            "circuitBreaker", True,
            f"circuit breaker closed: {len(failures)} failed remediation(s) of {ctx.runbook_key} "
            f"in the last {breaker.window} (opens at {breaker.failures})",
        )
    closes_at = failures[len(failures) - breaker.failures] + window
    return GuardDecision(
        "circuitBreaker", False,
        f"circuit breaker open: {len(failures)} failed remediations of {ctx.runbook_key} since "
        f"{format_time(failures[0])} (limit {breaker.failures} in {breaker.window}); closes at {format_time(closes_at)}",
        closes_at,
    )


def check_storm(ctx: GuardContext) -> GuardDecision:
    storm = ctx.effective_policy.storm_holdoff
    try:
        window = parse_duration(storm.window)
    except ValueError as err:
        return GuardDecision("stormHoldoff", False, f"storm hold-off: window unreadable ({err}): holding")
    latest: dict[str, datetime] = {ctx.target_key: ctx.now}
    for past in ctx.others:
        if past.started_at and ctx.now - past.started_at < window:
            latest[past.target_key] = max(latest.get(past.target_key, past.started_at), past.started_at)
    count = len(latest)
    if count < storm.targets:
        return GuardDecision("stormHoldoff", True,
                             f"storm hold-off: {count} distinct failing target(s) in the last {storm.window} "
                             f"(holds at {storm.targets})")
    # The storm lifts once enough targets have gone quiet for a whole window.
    lifts_at = sorted(latest.values())[count - storm.targets] + window
    return GuardDecision(
        "stormHoldoff", False,
        f"storm hold-off: {count} distinct targets failing in the last {storm.window} (threshold {storm.targets}): "
        f"holding so a wide outage does not set off a remediation storm; re-check at {format_time(lifts_at)}",
        lifts_at,
    )


def check_min_healthy(ctx: GuardContext) -> GuardDecision:
    """A drain never leaves fewer healthy Nodes than minHealthy, cluster-wide (NodeHealthCheck's guard)."""
    if ctx.action != "cordonDrain":
        return GuardDecision("minHealthy", True, f"minHealthy: {ctx.action} takes no Node away")
    if ctx.nodes is None:
        return GuardDecision("minHealthy", False, "minHealthy: the cluster's Nodes are unknown: not draining")
    decision = min_healthy_decision(ctx.nodes, ctx.target.name, ctx.node_triggers, ctx.min_healthy or "51%")
    return GuardDecision("minHealthy", decision.allowed, decision.reason)


# ---------------------------------------------------------------- policy bounds


def check_bounds(ctx: GuardContext) -> GuardDecision:
    namespace = ctx.runbook.namespace
    entries = [b for b in ctx.effective_policy.bounds if bounds_apply(b, namespace)]
    # Reaching outside the Runbook's namespace needs a bounds entry that allows it: no entry, no reach.
    reach_problem = _node_problem(ctx, entries) or _cross_namespace_problem(ctx, entries)
    if reach_problem:
        return GuardDecision("bounds", False, f"bounds: {reach_problem}")
    if not entries:
        return GuardDecision("bounds", True, f"bounds: none apply to namespace {namespace!r}")
    problems = [p for p in (_action_problem(ctx, entries),
                            _replicas_problem(ctx, entries), _memory_problem(ctx, entries)) if p]
    if problems:
        return GuardDecision("bounds", False, "bounds: " + "; ".join(problems))
    return GuardDecision("bounds", True,
                         f"bounds: {ctx.action} is allowed in namespace {namespace!r} within its limits")


def bounds_apply(bounds: NamespaceBounds, namespace: str) -> bool:
    return not bounds.namespaces or any(fnmatch.fnmatchcase(namespace, glob) for glob in bounds.namespaces)


def _action_problem(ctx: GuardContext, entries: list[NamespaceBounds]) -> str | None:
    for entry in entries:
        if ctx.action not in entry.allowed_actions:
            return (f"{ctx.action} is not allowed in namespace {ctx.runbook.namespace!r} "
                    f"(bounds for {_globs(entry)} allow {', '.join(entry.allowed_actions) or 'nothing'})")
    return None


def _node_problem(ctx: GuardContext, entries: list[NamespaceBounds]) -> str | None:
    """A namespaced Runbook reaches beyond its namespace when it acts on a Node: only a cluster admin's
    policy may allow that."""
    if ctx.action != "cordonDrain" and ctx.target.namespace is not None:
        return None
    if entries and all(entry.allow_node_actions for entry in entries):
        return None
    return (f"{ctx.action} on {ctx.target.kind} {ctx.target.name} acts outside namespace "
            f"{ctx.runbook.namespace!r}; a RemediationPolicy bounds entry for it must set allowNodeActions: true")


def _cross_namespace_problem(ctx: GuardContext, entries: list[NamespaceBounds]) -> str | None:
    target_ns = ctx.target.namespace
    if target_ns is None or target_ns == ctx.runbook.namespace:
        return None
    if entries and all(entry.allow_cross_namespace for entry in entries):
        return None
    return f"target namespace {target_ns!r} is not the Runbook's {ctx.runbook.namespace!r} and cross-namespace is not allowed"


def _replicas_problem(ctx: GuardContext, entries: list[NamespaceBounds]) -> str | None:
    limits = [e.max_replicas for e in entries if e.max_replicas is not None]
    if ctx.action != "scale" or not limits:
        return None
    limit = min(limits)
    if ctx.desired_replicas is None:
        return f"scale to an unknown replica count cannot be checked against maxReplicas {limit}"
    if ctx.desired_replicas > limit:
        return f"scale to {ctx.desired_replicas} replicas exceeds maxReplicas {limit}"
    return None


def _memory_problem(ctx: GuardContext, entries: list[NamespaceBounds]) -> str | None:
    texts = [e.max_memory for e in entries if e.max_memory]
    if ctx.action != "raiseMemory" or not texts:
        return None
    try:
        limit_text = min(texts, key=parse_quantity)
        limit = parse_quantity(limit_text)
    except ValueError as err:
        return f"maxMemory unreadable ({err})"
    if ctx.desired_memory is None:
        return f"raising memory to an unknown limit cannot be checked against maxMemory {limit_text}"
    try:
        desired = parse_quantity(ctx.desired_memory)
    except ValueError as err:
        return f"desired memory unreadable ({err})"
    if desired > limit:
        return f"memory limit {ctx.desired_memory} exceeds maxMemory {limit_text}"
    return None


def check_service_account(ctx: GuardContext) -> GuardDecision:
    return service_account_decision(ctx.policy, ctx.runbook.namespace, ctx.service_account,
                                    ctx.default_service_account)


def service_account_decision(policy: RemediationPolicySpec | None, namespace: str, requested: str | None,
                             default: str | None) -> GuardDecision:
    """Which identity a Runbook may act as. The operator's tenant action account is always allowed; any other
    ServiceAccount a Runbook names must be listed in `allowedServiceAccounts` of a bounds entry that applies to
    its namespace (any one suffices: each is an explicit grant by a cluster admin). No policy: only the default."""
    if not requested or requested == default:
        who = f"ServiceAccount {default!r} (the tenant action account)" if default else \
            "the operator's own ServiceAccount (no tenant action account configured)"
        return GuardDecision("serviceAccount", True, f"serviceAccount: actions run as {who}")
    granting = [b for b in (policy.bounds if policy else []) if bounds_apply(b, namespace)
                and requested in b.allowed_service_accounts]
    if granting:
        return GuardDecision("serviceAccount", True,
                             f"serviceAccount: actions run as {requested!r}, allowed by the RemediationPolicy "
                             f"bounds for {_globs(granting[0])} (allowedServiceAccounts)")
    where = "no RemediationPolicy applies" if policy is None else \
        "no RemediationPolicy bounds entry for it lists it in allowedServiceAccounts"
    only = f"only the tenant action account {default!r} may be used" if default else \
        "no other identity may be used"
    return GuardDecision("serviceAccount", False,
                         f"serviceAccount: the Runbook's serviceAccountName {requested!r} is not allowed in "
                         f"namespace {namespace!r}: {where}; {only}")


def _globs(entry: NamespaceBounds) -> str:
    return ", ".join(entry.namespaces) if entry.namespaces else "all namespaces"


GUARDS: tuple[Callable[[GuardContext], GuardDecision], ...] = (
    check_cooldown,
    check_rate,
    check_target_concurrency,
    check_cluster_concurrency,
    check_namespace_concurrency,
    check_blast_radius,
    check_freeze,
    check_circuit_breaker,
    check_storm,
    check_min_healthy,
    check_bounds,
    check_service_account,
)
