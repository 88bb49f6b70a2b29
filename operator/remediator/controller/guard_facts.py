"""Gather what the guards need from the cluster, then let core.guards decide."""

from __future__ import annotations

import math
from datetime import datetime

from kubernetes import client
from kubernetes.client.rest import ApiException

from ..api.models import (
    TERMINAL_PHASES,
    RemediationPolicySpec,
    RemediationSpec,
    RemediationStatus,
    RunbookSpec,
)
from ..core import guards, planning
from ..core.durations import parse_time
from ..records import metrics
from .context import OperatorContext

ROLLING = {"restartRollout", "rollback", "raiseMemory"}


def past_remediation(obj: dict) -> guards.PastRemediation:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    phase = status.get("phase", "Pending")
    started = status.get("startedAt") or obj["metadata"].get("creationTimestamp")
    finished = status.get("finishedAt")
    target = spec.get("target") or {}
    rb = spec.get("runbook") or {}
    return guards.PastRemediation(
        name=obj["metadata"]["name"],
        runbook_key=f"{rb.get('namespace', '')}/{rb.get('name', '')}",
        target_key=f"{target.get('kind')}/{target.get('namespace') or ''}/{target.get('name')}"
        if target.get("namespace") else f"{target.get('kind')}/{target.get('name')}",
        phase=phase,
        started_at=parse_time(started) if started else None,
        finished_at=parse_time(finished) if finished else None,
        succeeded=(phase == "Succeeded") if phase in TERMINAL_PHASES else None,
        acted=any(s.get("phase") != "Skipped" for s in status.get("steps") or []),
    )


def workload_replicas(api: client.ApiClient, kind: str, namespace: str, name: str) -> int | None:
    apps = client.AppsV1Api(api)
    read = {"Deployment": apps.read_namespaced_deployment,
            "StatefulSet": apps.read_namespaced_stateful_set}.get(kind)
    if read is None:
        return None
    try:
        return read(name, namespace).spec.replicas
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def pods_touched(action: str, replicas: int | None) -> int | None:
    """Pods taken down at once (see core.guards): a rolling change touches about a quarter, at least one."""
    if action == "scale":
        return 0
    if action in ROLLING:
        return None if replicas is None else max(1, math.ceil(replicas * 0.25))
    if action == "deletePod":
        return 1
    return None


def guard_verdict(ctx: OperatorContext, name: str, spec: RemediationSpec, status: RemediationStatus,
                  runbook: RunbookSpec | None, policy: RemediationPolicySpec | None,
                  now: datetime) -> guards.GuardVerdict | None:
    if runbook is None:
        return None
    steps = status.plan or planning.plan(runbook, None)
    index = planning.next_step(steps, status.steps)
    if index is None:
        return None
    action = steps[index].action
    target = spec.target
    replicas = workload_replicas(ctx.api, target.kind, target.namespace or "", target.name)
    history = [past_remediation(o) for o in ctx.resources.list("Remediation")]
    verdict = guards.check_guards(guards.GuardContext(
        now=now, runbook=spec.runbook, guard=runbook.guard, policy=policy, target=target,
        history=history, action=action, target_replicas=replicas,
        pods_touched=pods_touched(action, replicas), remediation_name=name,
    ))
    for decision in verdict.decisions:
        metrics.GUARD_DECISIONS.labels(decision.guard, "allowed" if decision.allowed else "blocked").inc()
    return verdict
