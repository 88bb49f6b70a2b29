"""Probes: one look at a target on the cluster, returned as plain observations.

The edge of verification (it reads the apiserver); the verdicts that judge the
observations are pure (`verdicts`). A probe never raises for a missing target:
"gone" is an observation too (`exists=False`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import quote

from kubernetes import client

from remediator.actions.base import ActionError
from remediator.actions.drain import EVICTS_ANNOTATION, recorded_evicts
from remediator.actions.argo_rollout import read_rollout
from remediator.actions.kube import WORKLOAD_KINDS, call, label_selector_text
from remediator.kube import read_workload_json, request_json
from remediator.core.durations import parse_time
from remediator.api.models import ObjectRef
from remediator.core.pod_health import PodObservation, match_labels, pod_observation, pod_observation_of, selects
from remediator.verification.observations import (
    ConditionObservation,
    Observation,
    RolloutObservation,
)


class Watched(Protocol):
    """Watch-fed copies of workloads and pods (controller/targets.TargetWatches); None: ask the apiserver."""

    def workload(self, kind: str, namespace: str, name: str, key: str | None) -> dict | None: ...

    def pods(self, namespace: str, labels: Mapping[str, str] | None = None) -> list[dict] | None: ...


def observe(api: client.ApiClient, target: ObjectRef, at: datetime | None = None, watched: Watched | None = None,
            key: str | None = None) -> Observation:
    """The target's rollout and pods as they are now (Pod: the pod itself; Node: its conditions, the pods on it
    and the pods that may have replaced those a drain evicted). `watched`: copies to read instead of the
    apiserver where they are as new as the step's action (`key`)."""
    at = at or datetime.now(UTC)
    try:
        if target.kind == "Rollout":
            return observe_argo_rollout(api, target, at, watched)
        if target.kind in WORKLOAD_KINDS:
            workload = (watched.workload(target.kind, target.namespace or "", target.name, key) if watched else None) \
                or call(read_workload_json, api, target.kind, target.name, target.namespace or "")
            selected = selected_pods(api, target.namespace or "", (workload.get("spec") or {}).get("selector") or {},
                                     watched)
            return Observation(at, target, True, rollout_observation(target.kind, workload), selected)
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
    return {name.partition("/")[0] for name in recorded_evicts(recorded)[1]}


def selected_pods(api: client.ApiClient, namespace: str, selector: dict,
                  watched: Watched | None) -> tuple[PodObservation, ...]:
    """The pods a selector selects, not the ones already being deleted: from the watched copies when there are
    some, else one LIST. An empty selector selects none (it would select every pod in the namespace)."""
    text = label_selector_text(selector)
    if not text:
        return ()
    listed = watched.pods(namespace, match_labels(selector)) if watched else None
    if listed is None:
        listed = call(request_json, api, "GET", f"/api/v1/namespaces/{quote(namespace, safe='')}/pods",
                      query=[("labelSelector", text)])["items"]
    return tuple(pod_observation_of(p) for p in listed
                 if not (p.get("metadata") or {}).get("deletionTimestamp")
                 and selects(selector, (p.get("metadata") or {}).get("labels") or {}))


def observe_argo_rollout(api: client.ApiClient, target: ObjectRef, at: datetime,
                         watched: Watched | None = None) -> Observation:
    """An Argo Rollout from its status (phase, message, replica counts, conditions) and the pods it selects."""
    rollout = read_rollout(api, target.namespace or "", target.name)
    spec, status, meta = rollout.get("spec") or {}, rollout.get("status") or {}, rollout["metadata"]
    observed = str(status.get("observedGeneration") or "0")  # a string in the Rollout CRD
    desired = spec.get("replicas") if spec.get("replicas") is not None else 1
    rollout_seen = RolloutObservation(
        kind="Rollout", generation=meta.get("generation") or 0,
        observed_generation=int(observed) if observed.isdigit() else 0, desired=desired,
        replicas=status.get("replicas") or 0, updated=status.get("updatedReplicas") or 0,
        ready=status.get("readyReplicas") or 0, available=status.get("availableReplicas") or 0,
        paused=bool(spec.get("paused")), conditions=conditions_of(status), phase=status.get("phase") or "",
        message=status.get("message") or "")
    return Observation(at, target, True, rollout_seen,
                       selected_pods(api, meta["namespace"], spec.get("selector") or {}, watched))


def conditions_of(status: dict) -> tuple[ConditionObservation, ...]:
    return tuple(ConditionObservation(
        type=c.get("type", ""), status=c.get("status", ""), reason=c.get("reason") or "",
        message=c.get("message") or "",
        updated_at=parse_time(stamp) if (stamp := c.get("lastUpdateTime") or c.get("lastTransitionTime")) else None)
        for c in status.get("conditions") or [])


def pods_on_node(api: client.ApiClient, node: str) -> list[Any]:
    pods = call(
        client.CoreV1Api(api).list_pod_for_all_namespaces, field_selector=f"spec.nodeName={node}"
    ).items
    return [p for p in pods if p.metadata.deletion_timestamp is None]


def rollout_observation(kind: str, workload: dict) -> RolloutObservation:
    """A Deployment, StatefulSet or DaemonSet (as the apiserver's JSON) as a RolloutObservation."""
    spec, status, meta = workload.get("spec") or {}, workload.get("status") or {}, workload.get("metadata") or {}
    strategy = spec.get("updateStrategy") or {}
    common = {
        "kind": kind,
        "generation": meta.get("generation") or 0,
        "observed_generation": status.get("observedGeneration") or 0,
        "conditions": conditions_of(status),
    }
    if kind == "DaemonSet":
        return RolloutObservation(
            **common,
            strategy=strategy.get("type") or "RollingUpdate",
            desired=status.get("desiredNumberScheduled") or 0,
            replicas=status.get("currentNumberScheduled") or 0,
            updated=status.get("updatedNumberScheduled") or 0,
            ready=status.get("numberReady") or 0,
            available=status.get("numberAvailable") or 0,
            unavailable=status.get("numberUnavailable") or 0,
        )
    desired = spec["replicas"] if spec.get("replicas") is not None else 1
    available = status.get("availableReplicas") or 0
    extra: dict[str, Any] = {}
    if kind == "StatefulSet":
        extra = {
            "current_revision": status.get("currentRevision"),
            "update_revision": status.get("updateRevision"),
            "partition": (strategy.get("rollingUpdate") or {}).get("partition") or 0,
            "strategy": strategy.get("type") or "RollingUpdate",
        }
    else:
        extra = {"paused": bool(spec.get("paused"))}
    return RolloutObservation(
        **common,
        desired=desired,
        replicas=status.get("replicas") or 0,
        updated=status.get("updatedReplicas") or 0,
        ready=status.get("readyReplicas") or 0,
        available=available,
        unavailable=status.get("unavailableReplicas") or max(desired - available, 0),
        **extra,
    )
