"""Probes: one look at a target on the cluster, returned as plain observations.

The edge of verification (it reads the apiserver); the verdicts that judge the
observations are pure (`verdicts`). A probe never raises for a missing target:
"gone" is an observation too (`exists=False`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from remediator.actions.base import ActionError
from remediator.actions.drain import EVICTS_ANNOTATION
from remediator.actions.argo_rollout import read_rollout
from remediator.actions.kube import WORKLOAD_KINDS, call, label_selector_text, pods_of, read_workload
from remediator.core.durations import parse_time
from remediator.api.models import ObjectRef
from remediator.core.pod_health import pod_observation
from remediator.verification.observations import (
    ConditionObservation,
    Observation,
    RolloutObservation,
)


def observe(api: client.ApiClient, target: ObjectRef, at: datetime | None = None) -> Observation:
    """The target's rollout and pods as they are now (Pod: the pod itself; Node: its conditions, the pods on it
    and the pods that may have replaced those a drain evicted)."""
    at = at or datetime.now(UTC)
    try:
        if target.kind == "Rollout":
            return observe_argo_rollout(api, target, at)
        if target.kind in WORKLOAD_KINDS:
            workload = read_workload(api, target)
            pods = tuple(pod_observation(p) for p in pods_of(api, workload))
            return Observation(at, target, True, rollout_observation(target.kind, workload), pods)
        if target.kind == "Pod":
            pod = call(client.CoreV1Api(api).read_namespaced_pod, target.name, target.namespace)
            return Observation(at, target, True, None, (pod_observation(pod),))
        return observe_node(api, target, at)
    except ActionError as e:
        if e.status == 404:
            return Observation(at, target, False)
        raise


def observe_node(api: client.ApiClient, target: ObjectRef, at: datetime) -> Observation:
    """A Node's conditions, the pods on it and, once a drain recorded what it evicts, the pods that may replace
    them: one pod LIST (the evicted pods' namespace, or the cluster's Running pods when they span several)."""
    core = client.CoreV1Api(api)
    node = call(core.read_node, target.name)
    conditions = {c.type: c.status for c in node.status.conditions or []} if node.status else {}
    namespaces = evicted_namespaces((node.metadata.annotations or {}).get(EVICTS_ANNOTATION, ""))
    if not namespaces:
        on = tuple(pod_observation(p) for p in pods_on_node(api, target.name))
        return Observation(at, target, True, None, on, conditions)
    if len(namespaces) == 1:
        listed = call(core.list_namespaced_pod, namespaces.pop()).items
    else:
        # Pending too (a replacement that cannot be scheduled holds the verdict back) and Succeeded (a Job's
        # replacement that ran to the end)
        listed = call(core.list_pod_for_all_namespaces, field_selector="status.phase!=Failed").items
    seen = [pod_observation(p) for p in listed if p.metadata.deletion_timestamp is None]
    return Observation(at, target, True, None, tuple(p for p in seen if p.node == target.name), conditions,
                       tuple(p for p in seen if p.node != target.name))


def evicted_namespaces(recorded: str) -> set[str]:
    try:
        pods = json.loads(recorded.partition(" ")[2] or "{}")
    except ValueError:
        return set()
    return {name.partition("/")[0] for name in pods} if isinstance(pods, dict) else set()


def observe_argo_rollout(api: client.ApiClient, target: ObjectRef, at: datetime) -> Observation:
    """An Argo Rollout from its status (phase, message, replica counts, conditions) and the pods it selects."""
    rollout = read_rollout(api, target.namespace or "", target.name)
    spec, status, meta = rollout.get("spec") or {}, rollout.get("status") or {}, rollout["metadata"]
    selector = label_selector_text(spec.get("selector") or {})
    listed = call(client.CoreV1Api(api).list_namespaced_pod, meta["namespace"], label_selector=selector).items \
        if selector else []
    observed = str(status.get("observedGeneration") or "0")  # a string in the Rollout CRD
    desired = spec.get("replicas") if spec.get("replicas") is not None else 1
    conditions = tuple(ConditionObservation(
        type=c.get("type", ""), status=c.get("status", ""), reason=c.get("reason") or "",
        message=c.get("message") or "", updated_at=parse_time(c["lastUpdateTime"]) if c.get("lastUpdateTime")
        else None) for c in status.get("conditions") or [])
    rollout_seen = RolloutObservation(
        kind="Rollout", generation=meta.get("generation") or 0,
        observed_generation=int(observed) if observed.isdigit() else 0, desired=desired,
        replicas=status.get("replicas") or 0, updated=status.get("updatedReplicas") or 0,
        ready=status.get("readyReplicas") or 0, available=status.get("availableReplicas") or 0,
        paused=bool(spec.get("paused")), conditions=conditions, phase=status.get("phase") or "",
        message=status.get("message") or "")
    pods = tuple(pod_observation(p) for p in listed if p.metadata.deletion_timestamp is None)
    return Observation(at, target, True, rollout_seen, pods)


def pods_on_node(api: client.ApiClient, node: str) -> list[Any]:
    pods = call(
        client.CoreV1Api(api).list_pod_for_all_namespaces, field_selector=f"spec.nodeName={node}"
    ).items
    return [p for p in pods if p.metadata.deletion_timestamp is None]


def rollout_observation(kind: str, workload: Any) -> RolloutObservation:
    spec, status, meta = workload.spec, workload.status, workload.metadata
    conditions = tuple(condition_observation(c) for c in (status.conditions or []))
    common = {
        "kind": kind,
        "generation": meta.generation or 0,
        "observed_generation": status.observed_generation or 0,
        "conditions": conditions,
    }
    if kind == "DaemonSet":
        return RolloutObservation(
            **common,
            strategy=spec.update_strategy.type if spec.update_strategy else "RollingUpdate",
            desired=status.desired_number_scheduled or 0,
            replicas=status.current_number_scheduled or 0,
            updated=status.updated_number_scheduled or 0,
            ready=status.number_ready or 0,
            available=status.number_available or 0,
            unavailable=status.number_unavailable or 0,
        )
    desired = spec.replicas if spec.replicas is not None else 1
    available = status.available_replicas or 0
    extra: dict[str, Any] = {}
    if kind == "StatefulSet":
        rolling = spec.update_strategy.rolling_update if spec.update_strategy else None
        extra = {
            "current_revision": status.current_revision,
            "update_revision": status.update_revision,
            "partition": (rolling.partition or 0) if rolling else 0,
            "strategy": spec.update_strategy.type if spec.update_strategy else "RollingUpdate",
        }
    else:
        extra = {"paused": bool(spec.paused)}
    return RolloutObservation(
        **common,
        desired=desired,
        replicas=status.replicas or 0,
        updated=status.updated_replicas or 0,
        ready=status.ready_replicas or 0,
        available=available,
        unavailable=getattr(status, "unavailable_replicas", None) or max(desired - available, 0),
        **extra,
    )


def condition_observation(c: Any) -> ConditionObservation:
    updated = getattr(c, "last_update_time", None) or getattr(c, "last_transition_time", None)
    return ConditionObservation(
        type=c.type, status=c.status, reason=c.reason or "", message=c.message or "", updated_at=updated
    )
