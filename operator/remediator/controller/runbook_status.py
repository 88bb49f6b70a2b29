"""What an ended Remediation leaves behind: its outcome counted in its Runbook's status, and the Runbook's
escalation message posted to Slack when it ended Escalated or Failed (or refused a step while its signal
fires: core.escalation), the RemediationEscalated alert sent to Alertmanager while the incident is open and
resolved when it ends (controller.escalation), and the incident's end (restoredAt/restoredBy).

Run on every event of an ended Remediation until its status says both are done (`foldedIntoRunbook`,
`escalation`), so an operator that crashed between the terminal write and these finds them undone on restart.
Neither can happen twice: the Runbook's status lists the uids it has counted (written in the same patch as
the counts, so a crash between that patch and `foldedIntoRunbook` re-folds to a no-op), and the escalation
message carries the Remediation's uid as Slack message metadata and is looked up before posting, as approval
messages are.
"""

from __future__ import annotations

import logging

from kubernetes.client.rest import ApiException

from .. import failpoints
from ..kube import MERGE_PATCH, object_path, request_json
from ..api.models import (
    TERMINAL_PHASES,
    EscalationPost,
    RemediationSpec,
    RemediationStatus,
    RunbookSpec,
    RunbookStatus,
)
from ..approvals import messages
from ..approvals.slack import SlackUnavailable, find_request_message, post_message
from ..core import escalation
from ..core.engine import state
from ..core.plan import adaptive
from ..core.match import matching
from ..core.report import runbook_stats
from . import caches, escalation as escalation_alerts
from .context import OperatorContext
from .reconcile import load_policy, parse_time

log = logging.getLogger("remediator.runbook_status")
WRITES = 5  # tries against concurrent writers of the same status


def pending(status: dict | None, alerting: bool = False) -> bool:
    """An ended Remediation with something owed: its outcome counted in its Runbook, its incident's end
    recorded, or (with an Alertmanager) its escalation alert sent or resolved. Cheap: runs on every event."""
    status = status or {}
    if status.get("phase") not in TERMINAL_PHASES:
        return False
    if not status.get("foldedIntoRunbook"):
        return True
    if escalation.end_owed(status):
        return True
    if not alerting or not escalation.handed_over(status):
        return False
    sent = status.get("escalationAlert") or {}
    return (not sent.get("sentAt") and not status.get("restoredAt")) or \
        (bool(sent.get("sentAt")) and bool(status.get("restoredAt")) and not sent.get("resolvedAt"))


def finish(ctx: OperatorContext, namespace: str, name: str, resend: bool = False, seen: dict | None = None) -> None:
    """`resend`: also when only a re-send of the open escalation alert may be due (the re-send sweep). `seen`: the
    object as its watch event brought it, no later event having come since (handlers.fold_outcome), worked from
    instead of a read; if a write came after all, the status write answers 409 and it is read again."""
    alerting = getattr(ctx, "alertmanager", None) is not None
    for attempt in range(WRITES):
        obj = seen if attempt == 0 and seen is not None else ctx.resources.get("Remediation", name, namespace)
        if obj is None or not (pending(obj.get("status"), alerting) or
                               resend and (obj.get("status") or {}).get("phase") in TERMINAL_PHASES):
            return
        spec = RemediationSpec.model_validate(obj["spec"])
        status = RemediationStatus.model_validate(obj["status"])
        # a Remediation pointing at another namespace's Runbook was refused: it counts and escalates nowhere
        refused = matching.remediation_namespace_problem(namespace, spec) is not None
        done, message = status, None
        if not status.folded_into_runbook:
            runbook = None if refused else fold_into_runbook(ctx, spec, obj["metadata"]["uid"], name, status)
            failpoints.hit("after-runbook-fold")
            message = runbook.escalation.message if runbook else ""
            post = escalate(ctx, namespace, name, obj["metadata"]["uid"], spec, status, runbook) \
                if escalation.escalates(status) and status.escalation is None and not refused else status.escalation
            done = done.model_copy(update={"folded_into_runbook": True, "escalation": post})
        end = escalation.incident_end(done)
        if end is not None:
            failpoints.hit("before-incident-end")
            done = state.note(done.model_copy(update={"restored_at": end.restored_at, "restored_by": end.restored_by}),
                              "Restored", f"service restored ({end.why}) at {end.restored_at}",
                              parse_time(end.restored_at))
        if not refused:
            done = done.model_copy(update={
                "escalation_alert": escalation_alerts.settle_alert(ctx, namespace, name, spec, done, message)})
        if done == status:
            return
        try:
            ctx.resources.replace_status("Remediation", namespace, name, {**obj, "status": done.wire()})
            return
        except ApiException as e:
            if e.status == 404:
                return
            if e.status != 409:
                raise


def fold_into_runbook(ctx: OperatorContext, spec: RemediationSpec, uid: str, name: str,
                      outcome: RemediationStatus) -> RunbookSpec | None:
    """Count the outcome in the Runbook's status (merge patch guarded by resourceVersion; 409 -> re-read).
    The Runbook's spec, for the escalation; None when the Runbook is gone."""
    ref = spec.runbook
    for attempt in range(WRITES):
        # first from the watch-fed cache (a stale one answers 409, then read); never "gone" on its word alone
        seen = caches.runbook(ctx, ref.namespace, ref.name) if attempt == 0 else None
        body = seen if seen and seen["metadata"].get("resourceVersion") else \
            ctx.resources.get("Runbook", ref.name, ref.namespace)
        if body is None:
            return None
        new = runbook_stats.fold(RunbookStatus.model_validate(body.get("status") or {}), uid, name, outcome,
                                 adaptive.signal_type(spec))
        if new is None:
            return RunbookSpec.model_validate(body["spec"])
        try:
            request_json(ctx.api, "PATCH", object_path("Runbook", ref.namespace, ref.name) + "/status",
                         {"metadata": {"resourceVersion": body["metadata"]["resourceVersion"]}, "status": new.wire()},
                         content_type=MERGE_PATCH)
            return RunbookSpec.model_validate(body["spec"])
        except ApiException as e:
            if e.status == 404:
                return None
            if e.status != 409:
                raise
    raise RuntimeError(f"runbook {ref.namespace}/{ref.name}: status kept changing under us")


def escalate(ctx: OperatorContext, namespace: str, name: str, uid: str, spec: RemediationSpec,
             status: RemediationStatus, runbook: RunbookSpec | None) -> EscalationPost | None:
    """Post the escalation once, threaded under the approval message when there was one. Without Slack, the
    Warning Event the transition already recorded is the escalation."""
    slack = ctx.slack
    approval = status.approval
    target = escalation.slack_target(runbook, load_policy(ctx, namespace), approval)
    channel = target.channel
    if slack is None or not slack.enabled:
        return None
    if target.note:
        log.warning("escalation not posted where the Runbook asked", extra={
            "remediation": f"{namespace}/{name}", "reason": target.note, "channel": channel or "(none)"})
    if not channel:
        return None
    request_id = f"escalation-{uid}"
    try:
        found = find_request_message(slack, channel, request_id, parse_time(status.finished_at).timestamp())
        channel, ts = found or post_message(slack, channel, f"Escalated: {name}",
                                            messages.escalation_blocks(namespace, name, spec, status, runbook,
                                                                       target.note),
                                            request_id, thread_ts=target.thread_ts)
    except SlackUnavailable as e:
        log.warning("slack unavailable; the escalation is only the Warning Event",
                    extra={"remediation": f"{namespace}/{name}", "error": str(e)})
        return None
    failpoints.hit("after-escalation-post")
    return EscalationPost(slack_channel=channel, slack_ts=ts)
