"""Alertmanager edge: the RemediationEscalated alert, sent while an escalated incident is open and resolved
when it ends (core.escalation decides what and when), and `remediator resolve` folded into the Remediation.

Alertmanager identifies an alert by its labels, so sending the same alert again is a refresh, never a second
page: a crash between a send and the status write that records it re-sends harmlessly. An open alert is
re-sent every `resend` (its endsAt lies three re-sends ahead, so Alertmanager keeps it firing); the keys of
Remediations whose alert is open are kept from the Remediation watch, so the re-send sweep reads only those.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from kubernetes.client.rest import ApiException
from pydantic import ValidationError
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from ..api.models import EscalationAlert, ObjectRef, RemediationApprovalSpec, RemediationSpec, RemediationStatus
from ..core import escalation
from ..core.durations import iso_time
from ..core.engine import state
from ..secrets import FileSecret
from . import chores

log = logging.getLogger("remediator.escalation")
TIMEOUT = 5.0


class AlertmanagerUnavailable(RuntimeError):
    """No answer, a timeout or a 5xx after the retries (transient), or a refusal; the next event or sweep tries
    again."""

    def __init__(self, message: str, transient: bool = False, refused: bool = False):
        super().__init__(message)
        self.transient = transient
        self.refused = refused  # this alert's content was refused: sending it again cannot help


CONTENT_REFUSED = frozenset({400, 413, 422})
MAX_REFUSAL = 512  # the status field's maxLength


def transient(e: BaseException) -> bool:
    if isinstance(e, urllib.error.HTTPError):
        return e.code >= 500 or e.code == 429
    return isinstance(e, (urllib.error.URLError, TimeoutError, ConnectionError))


class Alertmanager:
    """`POST {url}/api/v2/alerts`, retried (tenacity) only on 5xx, connection errors and timeouts."""

    def __init__(self, url: str, bearer_token: FileSecret | None = None, attempts: int = 3, pause: float = 30.0):
        self.url = url.rstrip("/") + "/api/v2/alerts"
        self.token = bearer_token or FileSecret(None)
        self.attempts = attempts
        # after the retries failed, sends fail at once for `pause` seconds: a silent Alertmanager costs one
        # send's timeouts, not every send's (the sweep and the two chore threads would queue behind it)
        self.pause = pause
        self._paused_until = 0.0

    def send(self, alerts: list[dict]) -> None:
        if time.monotonic() < self._paused_until:
            raise AlertmanagerUnavailable("Alertmanager paused after failing; the sweep tries again", transient=True)
        try:
            self._send(alerts)
        except AlertmanagerUnavailable as e:
            if e.transient:
                self._paused_until = time.monotonic() + self.pause
            raise

    def _send(self, alerts: list[dict]) -> None:
        body = json.dumps(alerts).encode()
        headers = {"Content-Type": "application/json"}
        token = self.token.value()
        if token:
            headers["Authorization"] = f"Bearer {token.decode()}"

        def post() -> None:
            req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:  # noqa: S310  the configured URL
                resp.read()

        try:
            for attempt in Retrying(retry=retry_if_exception(transient), stop=stop_after_attempt(self.attempts),
                                    wait=wait_random_exponential(multiplier=0.2, max=2), reraise=True):
                with attempt:
                    post()
        except urllib.error.HTTPError as e:
            if e.code >= 500 or e.code == 429:
                raise AlertmanagerUnavailable(f"Alertmanager answered {e.code}", transient=True) from None
            # 400/413/422: this alert is wrong and stays wrong, so it is not owed any more (the Event and Slack
            # still say it); 401/403/404 are the operator's settings, fixed by a human: the page stays owed
            raise AlertmanagerUnavailable(f"Alertmanager refused the alert ({e.code}): "
                                          f"{e.read()[:300].decode(errors='replace')}",
                                          refused=e.code in CONTENT_REFUSED) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
            raise AlertmanagerUnavailable(f"Alertmanager unreachable: {e}", transient=True) from None


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def settle_alert(ctx, namespace: str, name: str, spec: RemediationSpec, status: RemediationStatus,
                 message: str | None) -> EscalationAlert | None:
    """Send what the alert needs now (fire, re-send or resolve); the alert state to persist. Without an
    Alertmanager, or when it cannot be reached, the state is unchanged (the sweep tries again)."""
    am: Alertmanager | None = getattr(ctx, "alertmanager", None)
    resend = timedelta(seconds=ctx.settings.alert_resend_seconds)
    now = now_utc()
    due = escalation.alert_due(status, now, resend)
    if am is None or due is None:
        return status.escalation_alert
    sent = status.escalation_alert or EscalationAlert(starts_at=status.finished_at or iso_time(now))
    if message is None:  # a re-send: the Runbook's message from the cache; gone -> said so
        body = ctx.caches and _runbook_spec(ctx, spec)
        message = ((body or {}).get("escalation") or {}).get("message", "")
    alert = escalation.alert(namespace, name, spec, status, message, sent.starts_at, now, resend)
    try:
        am.send([alert])
    except AlertmanagerUnavailable as e:
        log.warning("could not send the escalation alert", extra={"remediation": f"{namespace}/{name}",
                                                                  "error": str(e)})
        if e.refused:  # recorded, so neither the sweep nor a restart sends it again
            return sent.model_copy(update={"refused": str(e)[:MAX_REFUSAL]})
        # a page owed is recorded, so one Alertmanager outage longer than FIRST_PAGE_WITHIN loses none
        return sent if due == "fire" else status.escalation_alert
    if due == "resolve":
        return sent.model_copy(update={"resolved_at": iso_time(now)})
    return sent.model_copy(update={"sent_at": iso_time(now)})


def _runbook_spec(ctx, spec: RemediationSpec) -> dict | None:
    from . import caches

    found = caches.runbook(ctx, spec.runbook.namespace, spec.runbook.name)
    return (found or {}).get("spec")


class OpenAlerts:
    """Keys of Remediations whose escalation alert is open (or owed), from their watch events."""

    def __init__(self) -> None:
        self._keys: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def observe(self, event_type: str, body: dict) -> None:
        meta = body.get("metadata") or {}
        key = (meta.get("namespace", ""), meta.get("name", ""))
        status = body.get("status") or {}
        sent = status.get("escalationAlert") or {}
        owed = event_type != "DELETED" and escalation.handed_over(status) and not sent.get("refused") and (
            (not status.get("restoredAt") and status.get("foldedIntoRunbook")) or
            (sent.get("sentAt") and not sent.get("resolvedAt")))
        with self._lock:
            (self._keys.add if owed else self._keys.discard)(key)

    def keys(self) -> list[tuple[str, str]]:
        with self._lock:
            return sorted(self._keys)


class AwaitingHealthyPods:
    """Ended pod-state Remediations handed to people whose end is not known yet (core.escalation
    `awaits_healthy_pods`), with the workload each is looked at on (`pod_incident_target`; the spec is
    immutable, so the watched copy's is the one), from their watch events; and when each workload is due to be
    looked at again (`next_look_in`). The pod sweep reads only these workloads, each once for all its incidents,
    and no Remediation: a status that changed since (resolved, deleted) comes by the watch."""

    def __init__(self) -> None:
        self._targets: dict[tuple[str, str], ObjectRef] = {}
        self._looks: dict[tuple[str, str, str], tuple[float, int]] = {}  # workload -> (due, misses in a row)
        self._lock = threading.Lock()

    def observe(self, event_type: str, body: dict) -> None:
        meta = body.get("metadata") or {}
        key = (meta.get("namespace", ""), meta.get("name", ""))
        source = ((body.get("spec") or {}).get("signal") or {}).get("source", "")
        waiting = event_type != "DELETED" and escalation.awaits_healthy_pods(source, body.get("status") or {})
        target = pod_incident_target(key[0], body.get("spec")) if waiting else None
        with self._lock:
            if target is None:
                self._targets.pop(key, None)
            else:
                self._targets[key] = target

    def discard(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._targets.pop(key, None)

    def keys(self) -> list[tuple[str, str]]:
        with self._lock:
            return sorted(self._targets)

    def due(self, now: float, budget: int = escalation.LOOKS_PER_SWEEP) -> list[tuple[ObjectRef, list[tuple[str, str]]]]:
        """The workloads to look at now (`looks_due`), each with the Remediations it would end."""
        with self._lock:
            waiting: dict[tuple[str, str, str], list[tuple[str, str]]] = {}
            refs = {}
            for key, target in sorted(self._targets.items()):
                workload = (target.kind, target.namespace or "", target.name)
                waiting.setdefault(workload, []).append(key)
                refs[workload] = target
            self._looks = {w: look for w, look in self._looks.items() if w in waiting}  # none kept for nothing
            chosen = escalation.looks_due({w: self._looks.get(w, (0.0, 0))[0] for w in waiting}, now, budget,
                                          tenant=lambda workload: workload[1])
            return [(refs[w], waiting[w]) for w in chosen]

    def looked(self, target: ObjectRef, healthy: bool, now: float) -> None:
        workload = (target.kind, target.namespace or "", target.name)
        with self._lock:
            misses = 0 if healthy else self._looks.get(workload, (0.0, 0))[1] + 1
            self._looks[workload] = (now + escalation.next_look_in(misses), misses)


def pod_incident_target(namespace: str, spec: object) -> ObjectRef | None:
    """core.escalation `pod_incident_target` of a spec as the wire has it; None for one that is not a spec."""
    try:
        return escalation.pod_incident_target(namespace, RemediationSpec.model_validate(spec))
    except ValidationError:
        return None


async def resend_periodically(ctx, active: Callable[[], bool], settle: Callable[[object, str, str], None]) -> None:
    """Re-send every open alert before Alertmanager would time it out; only on the active replica."""
    def resend_all() -> None:
        if getattr(ctx, "alertmanager", None) is None:
            return
        for namespace, name in ctx.open_alerts.keys():
            try:
                settle(ctx, namespace, name)
            except Exception as e:  # noqa: BLE001  one Remediation's failure holds up no other; next sweep
                log.warning("could not re-send the escalation alert", extra={
                    "remediation": f"{namespace}/{name}", "error": str(e)})

    await chores.every(ctx.settings.alert_resend_seconds, active, resend_all, "escalation re-send")


# ---------------------------------------------------------------- `remediator resolve`


def record_resolution(ctx, namespace: str, spec: RemediationApprovalSpec) -> tuple[str, str]:
    """A RemediationApproval with decision "resolve": the admission policy checked that spec.user is its
    creator; RBAC that they may create one. Persisted (resourceVersion-guarded) before this returns."""
    who = f"kubernetes:{spec.user}"
    for _ in range(5):
        obj = ctx.resources.get("Remediation", spec.remediation, namespace)
        if obj is None:
            return "refused-unknown-remediation", f"no Remediation {spec.remediation!r} in {namespace}"
        if spec.request_id != obj["metadata"]["uid"]:
            return "refused-stale", (f"requestId {spec.request_id!r} is not this Remediation's uid: it names "
                                     "another incident of the same name")
        status = RemediationStatus.model_validate(obj.get("status") or {})
        if status.restored_at and (status.resolved_by, status.resolution_note) == (who, spec.reason):
            # this very resolution, recorded before a crash kept its outcome from the RemediationApproval
            return "accepted", f"resolved by {who}"
        verdict = escalation.may_resolve(status)
        if not verdict.allowed:
            return "refused-already-decided", verdict.reason
        now = now_utc()
        note = spec.reason or "(no note)"
        updated = state.note(status.model_copy(update={
            "restored_at": iso_time(now), "restored_by": "humans", "resolved_by": who,
            "resolution_note": spec.reason}), "Resolved", f"{who} resolved it: {note}", now)
        try:
            ctx.resources.replace_status("Remediation", namespace, spec.remediation,
                                         {**obj, "status": updated.wire()})
            return "accepted", f"resolved by {who}"
        except ApiException as e:
            if e.status != 409:
                raise
    return "refused-contended", "the Remediation kept changing; resolve again"
