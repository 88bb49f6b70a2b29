"""Gather what the guards need from the cluster, then let core.guards decide."""

from __future__ import annotations

import concurrent.futures
import re

from dataclasses import dataclass
from datetime import datetime, timedelta

from kubernetes import client

from ..actions import base as actions
from ..actions import drain
from ..actions.base import ActionError, Read, read_of
from ..actions.argo_rollout import read_rollout
from ..actions.kube import WORKLOAD_KINDS, pods_of_json, read_object_json
from ..kube import as_json
from ..api.models import (
    RemediationPolicySpec,
    RemediationSpec,
    RemediationStatus,
    RunbookSpec,
)
from ..core.engine import engine, state
from ..core.plan import guard_inputs, guards, planning, risk
from ..core.match import policy_select
from ..core.durations import parse_duration
from ..core.plan.guard_inputs import PodFact, TargetFacts
from ..core.plan.sizing import Strategy
from ..verification.observations import failing_reasons
from ..core.pod_health import pod_observation_of
from ..records import logs, metrics
from ..signals.changes import digest
from ..core.plan import gitops as gitops_plan
from . import caches, gitops, targets
from .context import OperatorContext


def read_target(ctx: OperatorContext, target, action: str, read: Read = None) -> TargetFacts:
    """The target's labels and, for a workload, its desired replicas, update strategy and memory limits: one
    read (`read`, when the tick made it); the pods the action would touch only for deletePod (the workload's)
    and cordonDrain (the node's)."""
    try:
        if target.kind == "Node":
            node = read_object_json(ctx.api, "Node", target.name, None)
            pods = node_pods(ctx, target.name) if action == "cordonDrain" else None
            nodes = tuple(caches.ensure(ctx).nodes.facts()) if action == "cordonDrain" else None  # minHealthy
            return TargetFacts(labels=node["metadata"].get("labels") or {}, pods=pods, nodes=nodes)
        if target.kind == "Rollout":
            return argo_rollout_facts(read_rollout(ctx.api, target.namespace or "", target.name))
        if target.kind not in ("Pod", *WORKLOAD_KINDS):
            return TargetFacts()
        found = read_of(target, read) or \
            read_object_json(ctx.api, target.kind, target.name, target.namespace or "")  # JSON: no model
    except ActionError as e:
        if e.status == 404:
            return TargetFacts()
        raise
    labels, annotations = found["metadata"].get("labels") or {}, found["metadata"].get("annotations") or {}
    if target.kind == "Pod":
        return TargetFacts(labels=labels, annotations=annotations,
                           pods=(pod_fact(found),) if action == "deletePod" else None)
    pods = tuple(pod_fact(p) for p in pods_of_json(ctx.api, found)) if action == "deletePod" else None
    return TargetFacts(replicas=workload_replicas(target.kind, found), labels=labels, annotations=annotations,
                       strategy=update_strategy(target.kind, found), memory_limits=memory_limits(found), pods=pods)


def argo_rollout_facts(rollout: dict) -> TargetFacts:
    """An Argo Rollout's replicas and strategy: a canary rolls like a Deployment (maxUnavailable/maxSurge); a
    blue-green switch brings up a whole preview ReplicaSet, counted as a Recreate-sized change."""
    spec = rollout.get("spec") or {}
    strategy = spec.get("strategy") or {}
    canary = strategy.get("canary")
    written = (Strategy(max_unavailable=canary.get("maxUnavailable"), max_surge=canary.get("maxSurge"))
               if canary is not None else Strategy(type="Recreate"))
    return TargetFacts(replicas=spec.get("replicas") if spec.get("replicas") is not None else 1,
                       labels=rollout["metadata"].get("labels") or {}, strategy=written)


# Of a workload or pod as the apiserver's JSON.
def workload_replicas(kind: str, workload: dict) -> int | None:
    if kind == "DaemonSet":
        return (workload.get("status") or {}).get("desiredNumberScheduled") if workload.get("status") else None
    replicas = (workload.get("spec") or {}).get("replicas")
    return replicas if replicas is not None else 1  # the apiserver's default


def update_strategy(kind: str, workload: dict) -> Strategy:
    spec = workload.get("spec") or {}
    written = spec.get("strategy") if kind == "Deployment" else spec.get("updateStrategy")
    if written is None:
        return Strategy()
    rolling = written.get("rollingUpdate")
    return Strategy(type=written.get("type") or "RollingUpdate",
                    max_unavailable=rolling.get("maxUnavailable") if rolling else None,
                    max_surge=rolling.get("maxSurge") if rolling else None)


def memory_limits(workload: dict) -> dict[str, str]:
    containers = (((workload.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    return {c["name"]: limits["memory"] for c in containers
            if "memory" in (limits := (c.get("resources") or {}).get("limits") or {})}


def pod_fact(pod: dict) -> PodFact:
    return PodFact(pod["metadata"]["name"], failing=bool(failing_reasons(pod_observation_of(pod))))


def node_pods(ctx: OperatorContext, node: str) -> tuple[PodFact, ...]:
    """The node's pods as the drain will classify them (the same read and the same filter)."""
    return tuple(PodFact(drain.qualified(p), drain_skip=drain.skip_reason(p)) for p in drain.pods_on(ctx.api, node))


READS = concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="guard-facts")


@dataclass(frozen=True)
class StepFacts:
    """What the shell observed about the next step: guard verdict, risk input, what a dry run would change."""

    guards: guards.GuardVerdict | None = None
    risk_input: risk.RiskInput | None = None
    planned_changes: tuple[str, ...] = ()
    gitops: gitops_plan.Facts | None = None  # the target's GitOps owner, when it has one


def step_facts(ctx: OperatorContext, name: str, spec: RemediationSpec, status: RemediationStatus,
               runbook: RunbookSpec | None, policy: RemediationPolicySpec | None, now: datetime,
               read: Read = None) -> StepFacts:
    """`read`: the target as this tick read it, if it did (its facts and its dry run start from it)."""
    if runbook is None:
        return StepFacts()
    cause_kind = engine.cause_kind(status)
    found = guard_inputs.next_step(runbook, status, cause_kind)
    if found is None:
        return StepFacts()
    steps, index = found
    step = planning.pinned_step(steps, index, runbook)
    account = planning.action_identity(status.plan, runbook, status.service_account_name)
    target = spec.target
    identity = guards.service_account_decision(policy, spec.runbook.namespace, account,
                                               ctx.settings.action_service_account)
    # The reads do not depend on each other: issue them together, so planning waits for the slowest, not the sum.
    reads = {
        "target": logs.submit_here(READS, read_target, ctx, target, steps[index].action, read),
        # never even a dry run as an identity the policy refuses: the serviceAccount guard says why
        "dry_run": logs.submit_here(READS, dry_run_step, ctx, name, spec, step, index, policy,
                                    account, read) if identity.allowed else
        _done(("failed", [f"dry run not run: {identity.reason}"])),
        "namespace_pods": logs.submit_here(READS, namespace_pods, ctx, target.namespace),
    }
    namespace_labels = labels_of_namespace(ctx, target.namespace)  # from memory: no thread to hop to
    got = {key: future.result() for key, future in reads.items()}
    dry_run, changes = got["dry_run"]
    observed = guard_inputs.observe_step(
        now=now, name=name, spec=spec, runbook=runbook, steps=steps, index=index, policy=policy,
        history=guard_history(ctx, spec, runbook, policy, now), target=got["target"],
        namespace_labels=namespace_labels, namespace_pods=got["namespace_pods"], dry_run=dry_run,
        cause_kind=cause_kind, default_service_account=ctx.settings.action_service_account,
        account=account)
    owner = gitops.read(ctx, got["target"].labels, got["target"].annotations, step, policy,  # marked targets only
                        (target.kind, target.namespace or "", target.name))
    return StepFacts(observed.verdict, observed.risk_input, tuple(changes), owner)


# Guards that hold a tenant to what the cluster admins granted: a block there is a refused attempt, counted as such.
TENANT_LIMITS = {"serviceAccount": "forbidden-identity", "bounds": "out-of-bounds"}


def count_decisions(verdict: guards.GuardVerdict | None) -> None:
    """Count the guards' decisions a tick decides on (counted where used: first reads a tick did not use are not)."""
    for decision in verdict.decisions if verdict is not None else ():
        metrics.GUARD_DECISIONS.labels(decision.guard, "allowed" if decision.allowed else "blocked").inc()
        if not decision.allowed and decision.guard in TENANT_LIMITS:
            metrics.REFUSALS.labels(TENANT_LIMITS[decision.guard]).inc()


def _done(value) -> concurrent.futures.Future:
    future: concurrent.futures.Future = concurrent.futures.Future()
    future.set_result(value)
    return future


def dry_run_step(ctx: OperatorContext, name: str, spec: RemediationSpec, step, index: int,
                 policy: RemediationPolicySpec | None, service_account: str | None = None,
                 read: Read = None) -> tuple[str, list[str]]:
    """Server-side dry run of the step, as the identity that will act (from the tick's `read` of the target,
    if given): ("succeeded"|"failed"|"unavailable", what it would change)."""
    caps = policy_select.caps_for(policy, spec.target.namespace or "")
    request = actions.ActionRequest(
        action=step.action, target=spec.target, key=state.idempotency_key(name, index, step.action), step=step,
        dry_run=True, max_replicas=caps.max_replicas, max_memory=caps.max_memory, max_pods=caps.max_pods,
        remediation=f"{spec.runbook.namespace}/{name}", read=read)
    try:
        result = ctx.run_action(spec.runbook.namespace, service_account, request)
    except actions.ActionError as e:
        return ("unavailable" if e.retryable else "failed"), [f"dry run refused: {e}"]
    return "succeeded", change_lines(result.changes)[:20]


# Where values may be secrets (env values, a last-applied-configuration annotation holding the whole spec,
# command lines): shown as digests, as the change journal does; the rest (replicas, images...) as is.
SECRET_BEARING = re.compile(r"\.env\[|\.envFrom|annotations\[|\.args\b|\.command\b")


def change_lines(changes: dict) -> list[str]:
    """A dry run's diff as lines for humans (status, Slack): `path: before -> after`, digests where secrets may be."""
    def shown(path: str, value) -> str:
        if value is None or not SECRET_BEARING.search(path):
            return repr(value)
        return f"sha256:{digest(value)}"
    return [f"{path}: {shown(path, change.get('before'))} -> {shown(path, change.get('after'))}"
            for path, change in sorted(changes.items())]


def guard_history(ctx: OperatorContext, spec: RemediationSpec, runbook: RunbookSpec,
                  policy: RemediationPolicySpec | None, now: datetime) -> list[guards.PastRemediation]:
    """From the watch-fed index: the open Remediations, the target's, and those within the longest window a
    guard looks back (a plan reads no Remediation from the apiserver)."""
    return caches.ensure(ctx).remediations.for_guards(guards.target_key(spec.target), now - look_back(policy))


def look_back(policy: RemediationPolicySpec | None) -> timedelta:
    """How far the history-counting guards look back (cooldown and rate read the target's whole history;
    an unreadable window blocks its guard without reading history)."""
    effective = policy or RemediationPolicySpec()
    windows = [guards.RATE_WINDOW, guard_inputs.RECENT_FAILURES_WINDOW]
    for written in (effective.circuit_breaker.window, effective.storm_holdoff.window):
        try:
            windows.append(parse_duration(written))
        except ValueError:
            pass
    return max(windows)


def labels_of_namespace(ctx: OperatorContext, namespace: str | None) -> dict[str, str]:
    """From the watch-fed cache; a namespace it has not seen yet (just created) is read once."""
    if not namespace:
        return {}
    labels = caches.ensure(ctx).namespaces.get(namespace)
    if labels is None:
        found = client.CoreV1Api(ctx.api).read_namespace(namespace)
        labels = ctx.caches.namespaces.fill(namespace, found.metadata.labels or {})
    return labels


def namespace_pods(ctx: OperatorContext, namespace: str | None) -> int | None:
    """How many pods the namespace has: from the probes' watch of its pods (started here, kept for the
    verification that follows), else without fetching them: one item plus the apiserver's count of the rest."""
    if not namespace:
        return None
    watched = targets.of(ctx).pods(namespace)
    if watched is not None:
        return len(watched)
    page = as_json(client.CoreV1Api(ctx.api).list_namespaced_pod, namespace, limit=1)
    remaining = (page.get("metadata") or {}).get("remainingItemCount")
    if remaining is not None or not (page.get("metadata") or {}).get("continue"):
        return len(page.get("items") or []) + (remaining or 0)
    return len(client.CoreV1Api(ctx.api).list_namespaced_pod(namespace).items)  # no count given: count them
