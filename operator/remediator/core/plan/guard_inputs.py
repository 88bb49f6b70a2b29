"""The guards' and risk's inputs for the next step, from plain facts: one builder shared by the operator's
loop (controller/guard_facts.py reads the cluster) and `remediator simulate` (the user gives the facts), so the
two cannot drift.

What the step will change is computed with the functions the actions decide with (core.sizing):
- pods touched at once (see core.guards): a rolling change (restartRollout, rollback, raiseMemory) from the
  workload's real update strategy; deletePod the pods it would delete (the failing ones, or all with
  onlyFailing: false, never more than the policy's maxPods, which has a default when no policy applies);
  cordonDrain the node's pods a drain evicts; a scale-out none.
- scale: the replicas it sets (current + step, clamped by maxReplicas and the policy cap); raiseMemory the
  limit it sets (the highest any container would get). When the current value is unknown, the most the step
  can ever set (its own maximum, clamped by the policy cap) stands in: the action never exceeds it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from remediator.api.models import (
    TERMINAL_PHASES,
    DeletePodParams,
    DrainParams,
    RemediationPolicySpec,
    RemediationSpec,
    RemediationStatus,
    RunbookSpec,
    Step,
)
from remediator.core.plan import guards, planning, risk
from remediator.core.match import policy_select
from remediator.core.durations import parse_time
from remediator.core.plan.freeze import freeze_status
from remediator.core.plan.nodes import NodeFact
from remediator.core.quantity import QuantityError, to_bytes
from remediator.core.plan.sizing import (
    Strategy,
    memory_ceiling,
    plan_limit,
    plan_replicas,
    replica_ceiling,
    rolling_pods,
)

ROLLING_ACTIONS = frozenset({"restartRollout", "rollback", "raiseMemory"})
RECENT_FAILURES_WINDOW = timedelta(hours=1)
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"


@dataclass(frozen=True)
class PodFact:
    name: str
    failing: bool = False
    drain_skip: str | None = None  # why a drain leaves this pod alone; None = a drain evicts it


@dataclass(frozen=True)
class TargetFacts:
    """What is known of the target; None = unknown."""

    replicas: int | None = None  # a workload's desired pods (DaemonSet: desiredNumberScheduled)
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)  # a GitOps owner's tracking marks
    strategy: Strategy | None = None
    memory_limits: Mapping[str, str] | None = None  # container -> memory limit in the pod template
    pods: tuple[PodFact, ...] | None = None  # the workload's pods (deletePod) or the node's (cordonDrain)
    nodes: tuple[NodeFact, ...] | None = None  # cordonDrain: every Node of the cluster (minHealthy)


@dataclass(frozen=True)
class StepChange:
    """What the step's action would change, as the guards check it, with how each number was found."""

    pods_touched: int | None
    desired_replicas: int | None = None
    desired_memory: str | None = None
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class ObservedStep:
    index: int
    step: str
    action: str
    replicas: int | None
    change: StepChange
    verdict: guards.GuardVerdict
    risk_input: risk.RiskInput


def drain_skip_reason(annotations: Mapping[str, str] | None, controller_kind: str | None,
                      terminating: bool) -> str | None:
    """Why `kubectl drain` (without --force) leaves a pod alone, or None when it evicts it."""
    if MIRROR_ANNOTATION in (annotations or {}):
        return "mirror pod (owned by the kubelet)"
    if controller_kind == "DaemonSet":
        return "DaemonSet pod (its controller ignores the cordon)"
    if controller_kind is None and not terminating:
        return "no controller would recreate it (kubectl drain refuses without --force)"
    return None


def step_change(kind: str, step: Step, target: TargetFacts, caps: policy_select.Caps) -> StepChange:
    action = step.action
    if action == "scale" and step.scale is not None:
        if target.replicas is None:
            ceiling, why = replica_ceiling(step.scale, caps.max_replicas)
            return StepChange(0, desired_replicas=ceiling, reasons=(
                f"scale: current replicas unknown; sets at most {ceiling} ({why})",))
        desired, why = plan_replicas(target.replicas, step.scale, caps.max_replicas)
        if desired <= target.replicas:  # the action changes nothing: no bound can be exceeded
            desired = replica_ceiling(step.scale, caps.max_replicas)[0]
        return StepChange(0, desired_replicas=desired, reasons=(f"scale: {why}", "a scale-out takes no pod down"))
    if action in ROLLING_ACTIONS:
        touched, why = rolling_touched(kind, target)
        if action == "raiseMemory" and step.raise_memory is not None:
            memory, memory_why = desired_memory(step, target, caps)
            return StepChange(touched, desired_memory=memory, reasons=(why, memory_why))
        return StepChange(touched, reasons=(why,))
    if action == "deletePod":
        return StepChange(*deleted_pods(step.delete_pod or DeletePodParams(), target, caps))
    if action == "cordonDrain":
        if target.pods is None:
            return StepChange(None, reasons=("the pods on the node are unknown",))
        evicted = [p for p in target.pods if p.drain_skip is None]
        return StepChange(len(evicted), reasons=(
            f"a drain evicts {len(evicted)} of the {len(target.pods)} pod(s) on the node",))
    return StepChange(None, reasons=(f"unknown how many pods {action} touches",))


def rolling_touched(kind: str, target: TargetFacts) -> tuple[int | None, str]:
    if target.replicas is None:
        return None, "replicas unknown"
    if target.strategy is None:
        return None, "update strategy unknown"
    return rolling_pods(kind, target.replicas, target.strategy)


def deleted_pods(params: DeletePodParams, target: TargetFacts,
                 caps: policy_select.Caps) -> tuple[int | None, None, None, tuple[str, ...]]:
    cap = f", capped at maxPods {caps.max_pods}" if caps.max_pods is not None else ""
    if target.pods is not None:
        chosen = [p for p in target.pods if p.failing or not params.only_failing]
        which = "failing" if params.only_failing else "(onlyFailing: false: healthy ones too)"
        count = len(chosen) if caps.max_pods is None else min(len(chosen), caps.max_pods)
        return count, None, None, (f"deletePod deletes {count} pod(s): {len(chosen)} {which} of "
                                   f"{len(target.pods)}{cap}",)
    if target.replicas is None:
        return None, None, None, ("the target's pods are unknown",)
    count = target.replicas if caps.max_pods is None else min(target.replicas, caps.max_pods)
    return count, None, None, (f"deletePod: which pods fail is unknown: counted as all {target.replicas}{cap}",)


def desired_memory(step: Step, target: TargetFacts, caps: policy_select.Caps) -> tuple[str | None, str]:
    """The highest limit the step sets on any container it may pick (the one named, else any)."""
    params = step.raise_memory
    assert params is not None
    try:
        ceiling, ceiling_why = memory_ceiling(params.max_limit, caps.max_memory)
        limits = dict(target.memory_limits or {})
        if params.container is not None:
            limits = {k: v for k, v in limits.items() if k == params.container}
        if target.memory_limits is None or not limits:
            return ceiling, f"raiseMemory: current limit unknown; sets at most {ceiling} ({ceiling_why})"
        planned = {name: plan_limit(limit, params.factor, params.max_limit, caps.max_memory)
                   for name, limit in limits.items()}
    except QuantityError as err:
        return None, f"raiseMemory: unreadable quantity ({err})"
    raised = {name: new for name, (new, _) in planned.items() if new is not None}
    if not raised:
        return None, "raiseMemory: no container's limit can rise"
    name = max(raised, key=lambda n: to_bytes(raised[n]))
    return raised[name], f"raiseMemory: container {name}: {planned[name][1]}"


def next_step(runbook: RunbookSpec, status: RemediationStatus, cause_kind: str | None) -> tuple[list, int] | None:
    """(the ladder, index of the step to gate or run now), as the engine picks it; None when nothing is next."""
    steps = status.plan or planning.plan(runbook, cause_kind)
    index = planning.next_step(steps, status.steps)
    if index is None or planning.pinned_step(steps, index, runbook) is None:
        return None  # nothing next, or a step neither pinned nor in the Runbook: the engine escalates
    return steps, index


LIVE = object()  # the identity is the live Runbook's: nothing was planned yet (offline simulation)


def observe_step(*, now: datetime, name: str, spec: RemediationSpec, runbook: RunbookSpec, steps: Sequence,
                 index: int, policy: RemediationPolicySpec | None, history: Sequence[guards.PastRemediation],
                 target: TargetFacts, namespace_labels: Mapping[str, str], namespace_pods: int | None,
                 dry_run: risk.DryRunResult, cause_kind: str | None,
                 default_service_account: str | None = None, account: str | None | object = LIVE) -> ObservedStep:
    """Guard verdict and risk input of step `index`, from what was observed (or, offline, given)."""
    planned = steps[index]
    step = planning.pinned_step(steps, planned.index, runbook)  # as planned, not as the Runbook says now
    assert step is not None, "next_step returns only steps that exist"
    caps = policy_select.caps_for(policy, spec.runbook.namespace)
    change = step_change(spec.target.kind, step, target, caps)
    touched, replicas = change.pods_touched, target.replicas
    verdict = guards.check_guards(guards.GuardContext(
        now=now, runbook=spec.runbook, guard=runbook.guard, policy=policy, target=spec.target,
        history=history, action=planned.action, target_replicas=replicas, pods_touched=touched,
        remediation_name=name, desired_replicas=change.desired_replicas, desired_memory=change.desired_memory,
        service_account=runbook.service_account_name if account is LIVE else account,
        default_service_account=default_service_account,
        nodes=target.nodes, min_healthy=(step.drain or DrainParams()).min_healthy,
        node_triggers=tuple(t.node_condition for t in runbook.triggers if t.node_condition is not None),
    ))
    freeze = freeze_status(policy.freeze_windows if policy else [], now)
    risk_input = risk.RiskInput(
        declared=planned.risk, action=planned.action, pods_touched=touched or 0, workload_replicas=replicas or 0,
        namespace_share=namespace_share(namespace_pods if touched else None, touched),
        namespace_labels=namespace_labels, target_labels=target.labels,
        recent_failures=recent_failures(history, spec, now), in_freeze_window=freeze.inside,
        next_freeze_in=freeze.next_starts_in, dry_run=dry_run, probable_cause=cause_kind,
    )
    return ObservedStep(index, planned.name, planned.action, replicas, change, verdict, risk_input)


def namespace_share(namespace_pods: int | None, touched: int | None) -> float:
    """Share of the namespace's pods the action touches at once (0 when unknown)."""
    if not namespace_pods or not touched:
        return 0.0
    return min(1.0, touched / namespace_pods)


def recent_failures(past: Iterable[guards.PastRemediation], spec: RemediationSpec, now: datetime) -> int:
    """Runs of this Runbook in the last hour whose action ran and failed (skips, denials, cancels do not count)."""
    key = f"{spec.runbook.namespace}/{spec.runbook.name}"
    return sum(1 for p in past if p.runbook_key == key and p.failed
               and (p.finished_at or p.started_at or now) >= now - RECENT_FAILURES_WINDOW)


def past_remediation(obj: Mapping[str, Any], share: Callable[[str], str] = str) -> guards.PastRemediation:
    """An exported Remediation (`kubectl get remediations -A -o json` item) as the guards see it. `share`: the
    one copy of a Runbook key, target key or phase its holder keeps (a history of 10,000 names few)."""
    metadata = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    phase = share(str(status.get("phase", "Pending")))
    started = status.get("startedAt") or metadata.get("creationTimestamp")
    finished = status.get("finishedAt")
    target = spec.get("target") or {}
    rb = spec.get("runbook") or {}
    target_key = (f"{target.get('kind')}/{target.get('namespace')}/{target.get('name')}" if target.get("namespace")
                  else f"{target.get('kind')}/{target.get('name')}")
    return guards.PastRemediation(
        name=str(metadata.get("name", "")),
        runbook_key=share(f"{rb.get('namespace', '')}/{rb.get('name', '')}"),
        target_key=share(target_key),
        phase=phase,
        started_at=parse_time(started) if started else None,
        finished_at=parse_time(finished) if finished else None,
        succeeded=(phase == "Succeeded") if phase in TERMINAL_PHASES else None,
        acted=any(s.get("phase") != "Skipped" for s in status.get("steps") or []),
        resource_version=str(metadata.get("resourceVersion") or ""),
    )
