"""Pod states that are signals: CrashLoopBackOff, OOMKilled, ImagePullBackOff, not Ready past a grace period.

`pod_signals` is pure (a pod as a dict in, signals out). One incident per
workload, state and pod-template revision: every failing pod of one bad
ReplicaSet yields the same fingerprint, so they dedupe into one Remediation.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from ..api.models import Signal
from ..core.durations import parse_time

WAITING_STATES = {"CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull"}


def owner_workload(pod: dict) -> tuple[str, str] | None:
    """(kind, name) of the workload owning the pod, following a ReplicaSet to its Deployment by name."""
    meta = pod.get("metadata") or {}
    for ref in meta.get("ownerReferences") or []:
        if not ref.get("controller"):
            continue
        if ref.get("kind") == "ReplicaSet":
            template_hash = (meta.get("labels") or {}).get("pod-template-hash")
            name = ref.get("name", "")
            if template_hash and name.endswith("-" + template_hash):
                return "Deployment", name[: -len(template_hash) - 1]
            return "ReplicaSet", name
        return ref.get("kind", ""), ref.get("name", "")
    return None


def failing_states(pod: dict, now: datetime, not_ready_grace: timedelta) -> list[tuple[str, str, str | None]]:
    """(state, detail, since) for each way the pod is failing."""
    status = pod.get("status") or {}
    found: list[tuple[str, str, str | None]] = []
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    since = ready.get("lastTransitionTime") if ready and ready.get("status") == "False" else None
    for cs in status.get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        last = (cs.get("lastState") or {}).get("terminated") or {}
        name = cs.get("name", "")
        if last.get("reason") == "OOMKilled":
            found.append(("OOMKilled", f"container {name} was OOMKilled (restarts {cs.get('restartCount', 0)})",
                          last.get("finishedAt") or since))
        if waiting.get("reason") == "CrashLoopBackOff":
            found.append(("CrashLoopBackOff", f"container {name} in CrashLoopBackOff "
                                              f"(restarts {cs.get('restartCount', 0)})", since))
        elif waiting.get("reason") in ("ImagePullBackOff", "ErrImagePull"):
            found.append(("ImagePullBackOff", f"container {name}: {waiting.get('message', waiting['reason'])}",
                          since))
    if not found and since and status.get("phase") == "Running":
        if now - parse_time(since) >= not_ready_grace:
            found.append(("NotReady", f"not Ready since {since}", since))
    return found


def not_ready_seconds(pod: dict, now: datetime) -> int | None:
    """How long the pod has been not Ready, or None when it is Ready (or has no Ready condition)."""
    ready = next((c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), None)
    if not ready or ready.get("status") != "False" or not ready.get("lastTransitionTime"):
        return None
    return max(0, int((now - parse_time(ready["lastTransitionTime"])).total_seconds()))


def restarts(pod: dict) -> int:
    return max((cs.get("restartCount", 0) for cs in (pod.get("status") or {}).get("containerStatuses") or []),
               default=0)


def recovered(previous: dict, still_failing: list[dict], now: datetime) -> list[Signal]:
    """The signals of a pod that was failing and is healthy again that no other failing pod still raises (one
    incident covers every pod of a revision: it is over when none of them fails any more). A deleted pod is
    not a recovery: its ReplicaSet may start another that fails the same way."""
    others = {s.fingerprint for pod in still_failing for s in pod_signals(pod, now)}
    return [s for s in pod_signals(previous, now) if s.fingerprint not in others]


def pod_signals(pod: dict, now: datetime, not_ready_grace: timedelta = timedelta(0)) -> list[Signal]:
    """Signals for a failing pod. NotReady carries `notReadySeconds`, so each runbook applies its own grace."""
    meta = pod.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return []
    owner = owner_workload(pod)
    namespace = meta.get("namespace", "")
    pod_labels = dict(meta.get("labels") or {})
    template_hash = pod_labels.get("pod-template-hash", "")
    out = []
    for state, detail, since in failing_states(pod, now, not_ready_grace):
        workload = f"{owner[0]}/{owner[1]}" if owner else f"Pod/{meta.get('name', '')}"
        incident = f"{namespace}\n{workload}\n{state}\n{template_hash or meta.get('uid', '')}"
        labels = {**pod_labels, "namespace": namespace, "pod": meta.get("name", ""), "state": state,
                  "restarts": str(restarts(pod))}
        if state == "NotReady":
            labels["notReadySeconds"] = str(not_ready_seconds(pod, now) or 0)
        if owner:
            labels[owner[0].lower()] = owner[1]
        out.append(Signal(
            source="podState", name=state,
            fingerprint=hashlib.sha256(incident.encode()).hexdigest()[:16],
            starts_at=None, labels=labels, summary=detail,
            annotations={"since": since or ""},
        ))
    return out
