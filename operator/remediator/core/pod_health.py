"""Is a pod failing, and why: read from a pod as the apiserver returns it (the client's V1Pod, or anything
shaped like it), as plain data.

Pure: it only reads attributes. The actions that pick pods by health (deletePod's failing pods, raiseMemory's
OOM-killed containers) read it here, so they need nothing from verification, which reads the cluster through
the actions' client calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Mapping
from typing import Any

# Waiting reasons the kubelet reports for a container that will not start by itself.
FAILING_WAITING_REASONS = frozenset(
    {
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)


@dataclass(frozen=True)
class PodObservation:
    name: str
    uid: str
    ready: bool
    phase: str = "Running"
    restarts: int = 0
    waiting_reasons: tuple[str, ...] = ()
    last_terminated_reasons: tuple[str, ...] = ()
    oom_killed_containers: tuple[str, ...] = ()
    node: str | None = None
    namespace: str = ""
    owner: str | None = None  # its controller, "Kind/name" (what replaces it when it is evicted)
    deployment: str | None = None  # the Deployment whose ReplicaSet owns it (a rollout replaces the ReplicaSet)


def pod_observation(pod: Any) -> PodObservation:
    statuses = (pod.status.container_statuses or []) + (pod.status.init_container_statuses or [])
    waiting = tuple(
        s.state.waiting.reason for s in statuses if s.state and s.state.waiting and s.state.waiting.reason
    )
    terminated = [(s.name, _last_termination(s)) for s in statuses]
    ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
    return PodObservation(
        name=pod.metadata.name,
        uid=pod.metadata.uid,
        ready=ready,
        phase=pod.status.phase or "Unknown",
        restarts=sum(s.restart_count or 0 for s in statuses),
        waiting_reasons=waiting,
        last_terminated_reasons=tuple(reason for _, reason in terminated if reason),
        oom_killed_containers=tuple(name for name, reason in terminated if reason == "OOMKilled"),
        node=pod.spec.node_name,
        namespace=getattr(pod.metadata, "namespace", None) or "",
        owner=controller_of(pod),
        deployment=deployment_of(pod),
    )


def controller_of(pod: Any) -> str | None:
    """The pod's controller owner reference as "Kind/name", or None for a bare pod."""
    owner = next((o for o in getattr(pod.metadata, "owner_references", None) or [] if o.controller), None)
    return f"{owner.kind}/{owner.name}" if owner else None


def pod_observation_of(pod: Mapping) -> PodObservation:
    """`pod_observation` of a pod as the apiserver's JSON (what the probes' watch holds: no client model)."""
    status = pod.get("status") or {}
    statuses = (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or [])
    waiting = tuple(reason for s in statuses if (reason := ((s.get("state") or {}).get("waiting") or {}).get("reason")))
    terminated = [(s.get("name", ""), _last_termination_of(s)) for s in statuses]
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    meta = pod.get("metadata") or {}
    owner = next((f"{o.get('kind')}/{o.get('name')}" for o in meta.get("ownerReferences") or []
                  if o.get("controller")), None)
    return PodObservation(
        name=meta.get("name", ""),
        uid=meta.get("uid", ""),
        ready=ready,
        phase=status.get("phase") or "Unknown",
        restarts=sum(s.get("restartCount") or 0 for s in statuses),
        waiting_reasons=waiting,
        last_terminated_reasons=tuple(reason for _, reason in terminated if reason),
        oom_killed_containers=tuple(name for name, reason in terminated if reason == "OOMKilled"),
        node=(pod.get("spec") or {}).get("nodeName"),
        namespace=meta.get("namespace") or "",
        owner=owner,
        deployment=deployment_named(owner, meta.get("labels") or {}),
    )


def _last_termination_of(status: Mapping) -> str | None:
    for state in (status.get("state"), status.get("lastState")):
        reason = ((state or {}).get("terminated") or {}).get("reason")
        if reason:
            return reason
    return None


def match_labels(selector: Mapping) -> dict[str, str]:
    """A LabelSelector's matchLabels: what any pod it selects carries (what a label index narrows by)."""
    match = selector.get("matchLabels")
    return match if isinstance(match, dict) else {}


def selects(selector: Mapping, labels: Mapping[str, str]) -> bool:
    """Whether a LabelSelector (as JSON) selects these labels; an empty selector selects nothing here (a
    workload's empty selector would select every pod, which the apiserver refuses for apps/v1 anyway)."""
    match, expressions = selector.get("matchLabels") or {}, selector.get("matchExpressions") or []
    if not match and not expressions:
        return False
    if any(labels.get(k) != v for k, v in match.items()):
        return False
    for req in expressions:
        key, op, values = req.get("key"), req.get("operator"), req.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):  # the apiserver would refuse it: select none
            return False
    return True


def deployment_of(pod: Any) -> str | None:
    return deployment_named(controller_of(pod), getattr(pod.metadata, "labels", None) or {})


def deployment_named(owner: str | None, labels: Mapping[str, str]) -> str | None:
    """The Deployment's name when the pod's controller is one of its ReplicaSets ("<deployment>-<pod-template-hash>",
    the hash also on the pod), else None."""
    kind, _, name = (owner or "").partition("/")
    template_hash = labels.get("pod-template-hash")
    if kind != "ReplicaSet" or not template_hash or not name.endswith(f"-{template_hash}"):
        return None
    return name[: -len(template_hash) - 1]


def failing_reasons(pod: PodObservation) -> list[str]:
    """Why a pod counts as failing; empty when it is Ready or merely starting (Pending, no error yet)."""
    if pod.ready:
        return []
    reasons = [r for r in pod.waiting_reasons if r in FAILING_WAITING_REASONS]
    reasons += [r for r in pod.last_terminated_reasons if r == "OOMKilled" and r not in reasons]
    if pod.phase == "Failed":
        reasons.append("Failed")
    if not reasons and pod.phase == "Running":
        reasons.append("NotReady")
    return reasons


def is_failing(pod: PodObservation) -> bool:
    return bool(failing_reasons(pod))


def _last_termination(status: Any) -> str | None:
    """The reason of a container's current or last termination (OOMKilled, Error …)."""
    for state in (status.state, status.last_state):
        if state and state.terminated and state.terminated.reason:
            return state.terminated.reason
    return None
