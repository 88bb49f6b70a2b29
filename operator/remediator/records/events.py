"""Kubernetes Events for each decision, on the Remediation and on its target (`kubectl describe` shows them).

Events are a courtesy copy of the status timeline, never the record: a
failure to post one is logged and the loop goes on. They are posted by a
small pool of their own, right after the status write they tell of; those of
a write that stores an intent once its action is done (posted beside it, they
slowed its PATCH on the apiserver). Names are deterministic per timeline entry
and per phase entered, so a replayed tick posts nothing twice, and an operator
that resumes a step tells its last write again (`before_step_write`: the
intent's, whose action the last operator may have died in, or the action's
outcome's, whose Events it may have died before posting): what was posted
answers 409.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import logging
import os
from datetime import datetime

from kubernetes import client
from kubernetes.client.rest import ApiException

from ..api.models import API_VERSION, PHASES, ObjectRef, RemediationStatus
from ..core.durations import format_time, parse_time
from ..kube import call_retrying, request_json
from . import logs

log = logging.getLogger("remediator.events")

WARNING_PHASES = {"Failed", "Escalated", "Denied", "Expired"}
TARGET_API_VERSIONS = {"Deployment": "apps/v1", "StatefulSet": "apps/v1", "DaemonSet": "apps/v1",
                       "Pod": "v1", "Node": "v1", "Rollout": "argoproj.io/v1alpha1"}
INSTANCE = os.environ.get("HOSTNAME", "remediator")
POSTERS = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="events")


def event_name(obj_name: str, *parts: str) -> str:
    digest = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]
    return f"{obj_name[:200]}.{digest}"


def with_micros(at: datetime) -> datetime:
    """The client writes eventTime with isoformat, which drops a zero microsecond part (a whole-second instant,
    e.g. an anomaly's grid instant), and the apiserver then refuses the MicroTime: keep one microsecond."""
    return at if at.microsecond else at.replace(microsecond=1)


def event_body(namespace: str, regarding: dict, reason: str, note: str, event_type: str, key: str,
               now: datetime) -> dict:
    """The events.k8s.io/v1 Event as the apiserver's JSON: built as a dict, not a client model, since turning a
    model back into JSON costs more CPU than the rest of posting it, for each of several Events per incident."""
    return {
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": event_name(regarding["name"], key, reason), "namespace": namespace},
        "eventTime": with_micros(now).isoformat(), "reportingController": "remediator.dev/operator",
        "reportingInstance": INSTANCE[:128], "action": "Remediate", "reason": reason[:128], "note": note[:1024],
        "type": event_type,
        "regarding": {REGARDING_FIELDS[k]: v for k, v in regarding.items() if v is not None},
    }


# `regarding` is given with the client's attribute names: the wire names of an ObjectReference
REGARDING_FIELDS = {"api_version": "apiVersion", "kind": "kind", "name": "name", "namespace": "namespace",
                    "uid": "uid"}


def post(api: client.ApiClient, namespace: str, regarding: dict, reason: str, note: str, event_type: str,
         key: str, now: datetime) -> None:
    body = event_body(namespace, regarding, reason, note, event_type, key, now)
    try:
        call_retrying(request_json, api, "POST", f"/apis/events.k8s.io/v1/namespaces/{namespace}/events", body)
    except ApiException as e:
        if e.status != 409:  # 409: already posted by an earlier try of this tick
            log.warning("could not post event", extra={"reason": reason, "status": e.status})
    except Exception as e:  # noqa: BLE001  e.g. the apiserver unreachable: the status still holds the record
        log.warning("could not post event", extra={"reason": reason, "error": str(e)})


def record_transition(api: client.ApiClient, namespace: str, name: str, uid: str | None, target: ObjectRef,
                      before: RemediationStatus, after: RemediationStatus, now: datetime) -> None:
    """An Event on the Remediation per new timeline entry, and one on the target per phase change."""
    regarding = {"api_version": API_VERSION, "kind": "Remediation", "name": name, "namespace": namespace,
                 "uid": uid}
    for entry in (e for e in after.timeline if e not in before.timeline):
        event_type = "Warning" if entry.kind in WARNING_PHASES else "Normal"
        logs.submit_here(POSTERS, post, api, namespace, regarding, entry.kind, entry.message, event_type,
                         f"{entry.at}:{entry.message}", now)
    if before.phase == after.phase:
        return
    event_type = "Warning" if after.phase in WARNING_PHASES else "Normal"
    logs.submit_here(POSTERS, post, api, target.namespace or namespace,
                     {"api_version": TARGET_API_VERSIONS.get(target.kind, "v1"), "kind": target.kind,
                      "name": target.name, "namespace": target.namespace},
                     f"Remediation{after.phase}", f"{name}: {after.reason or after.phase}", event_type,
                     f"{name}:{after.phase}:{after.current_step}:{entered_at(after)}", now)


def entered_at(status: RemediationStatus) -> str:
    """When the status entered its phase: its last transition's timeline entry (kind: the phase it moved to)."""
    return next((entry.at for entry in reversed(status.timeline) if entry.kind == status.phase), "")


def before_step_write(status: RemediationStatus) -> RemediationStatus | None:
    """The status as it was before the loop's last write of a step, while that write may have lost its Events
    with an operator killed right after it: the write that stored the intent while the step is only Intended
    (its Events wait for the action), or the one that stored the action's outcome while the step is Applied
    (its Events are posted in the background). None otherwise. That write's entries are the ones stamped when
    it was made (one decision, one instant; the timeline stamps to the second)."""
    intended = next((r for r in status.steps if r.phase == "Intended"), None)
    applied = next((r for r in status.steps if r.index == status.current_step and r.phase == "Applied"), None)
    made = intended.started_at if intended is not None else applied.applied_at if applied is not None else None
    if not made:
        return None
    stamped = format_time(parse_time(made))
    earlier = [entry for entry in status.timeline if entry.at != stamped]
    if len(earlier) == len(status.timeline):
        return None  # trimmed away, or written by an earlier version: nothing to tell by name
    # an outcome is only ever written from Acting: the entries before that second may end at an earlier step's
    # Verifying when the climb, the intent and the outcome fell in one second
    phase = "Acting" if intended is None else \
        next((entry.kind for entry in reversed(earlier) if entry.kind in PHASES), "Pending")
    return status.model_copy(update={"timeline": earlier, "phase": phase})
