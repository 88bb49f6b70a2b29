"""When automation stops, who hears, and when the incident is over: plain data in, plain data out.

`escalates` says whether an ended Remediation is handed to people (Escalated, Failed, and a step the guards or
the target claim refused while the signal still fires); `incident_end` says whether, and by whom, service is
restored; `alert` is the Alertmanager v2 alert (`POST /api/v2/alerts`) that pages on-call while it is open, and
the same alert with endsAt = now once it is over (Alertmanager matches alerts by their labels).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from ..api.models import ApprovalState, ObjectRef, RemediationPolicySpec, RemediationSpec, RemediationStatus, RunbookSpec
from .durations import iso_time
from .match.matching import remediation_namespace_problem
from .match.templating import dns1123_subdomain_problem

ALERTNAME = "RemediationEscalated"
# Skipped because a step was refused (core.engine: guards right before acting / at planning, the target claim);
# Skipped for any other reason (dry run, every step skipped by its condition) did nothing anyone must follow up.
REFUSED_PREFIXES = ("guard blocked", "no claim on the target")
T = TypeVar("T")
FIRST_PAGE_WITHIN = timedelta(hours=1)
MAX_ANNOTATION = 2000  # Alertmanager keeps annotations as given; on-call reads them on a phone


def handed_over(status: dict) -> bool:
    """`escalates` or a refusal whose signal has resolved since, on the wire status (cheap: every watch event)."""
    phase = status.get("phase")
    return phase in ("Escalated", "Failed") or (
        phase == "Skipped" and not status.get("dryRun") and str(status.get("reason", "")).startswith(REFUSED_PREFIXES))


@dataclass(frozen=True)
class SlackTarget:
    channel: str | None  # None: no channel to post to
    note: str = ""  # why the Runbook's own channel was not used
    thread_ts: str | None = None  # the approval message it answers, in the same channel


def slack_target(runbook: RunbookSpec | None, policy: RemediationPolicySpec | None,
                 approval: ApprovalState | None = None) -> SlackTarget:
    """Where the escalation is posted: the Runbook's channel when no policy governs the namespace or the policy
    allows it (its approval channel, or `escalation.allowedSlackChannels`), else the policy's approval channel;
    threaded under the approval message when it goes to that message's channel."""
    asked = runbook.escalation.slack_channel if runbook else None
    fallback = policy.approval.slack_channel if policy else None
    if not asked:
        target = SlackTarget(fallback)
    elif policy is None or asked == fallback or bool({asked, "*"} & set(policy.escalation.allowed_slack_channels)):
        target = SlackTarget(asked)
    else:
        target = SlackTarget(fallback, f"the Runbook's channel {asked[:80]} is not in the policy's "
                                       "escalation.allowedSlackChannels")
    return threaded(target, approval, fallback)


def threaded(target: SlackTarget, approval: ApprovalState | None, approval_channel: str | None) -> SlackTarget:
    """The approval request went to the policy's approval channel, which may be a name (`#remediations`), and
    Slack answered with the channel's id, which is what the request keeps: either names that channel. The reply
    goes to the id, where a thread and the history search (ids only) work."""
    if not (target.channel and approval and approval.slack_ts and approval.slack_channel):
        return target
    # The name the request was posted to, not the policy's name now: a policy that moved its approvals to
    # another channel (or a namespace now governed by another policy) gets the escalation in its channel, not in
    # a thread of the one it left. A request recorded before the name was kept: the policy's name now.
    named = approval.slack_channel_name if approval.slack_channel_name is not None else approval_channel
    if target.channel not in (approval.slack_channel, named):
        return target
    return dataclasses.replace(target, channel=approval.slack_channel, thread_ts=approval.slack_ts)


def escalates(status: RemediationStatus) -> str | None:
    """Why people must take over this ended incident, or None when they need not."""
    if status.phase in ("Escalated", "Failed"):
        return f"{status.phase}: {status.reason}"
    refused = status.phase == "Skipped" and not status.dry_run and status.reason.startswith(REFUSED_PREFIXES)
    if refused and not status.signal_resolved_at:
        return f"refused while the signal fires: {status.reason}"
    return None


@dataclass(frozen=True)
class IncidentEnd:
    restored_at: str
    restored_by: str  # "operator" | "humans"
    why: str


def incident_end(status: RemediationStatus) -> IncidentEnd | None:
    """The end of an ended Remediation's incident, once it is known and not yet recorded.

    The operator restored service when its own step verified (Succeeded). An incident handed to people ends
    when its signal resolves (alert resolved, SLO back within budget, the anomaly gone); a `remediator resolve`
    is recorded by its own path, with who ran it. Other ends (Cancelled, Denied, Expired, dry run, plain
    Skipped) are not the operator's nor an escalation's: they stay unrestored here, for the report to show
    apart."""
    if status.restored_at or status.phase not in ("Succeeded", "Escalated", "Failed", "Skipped"):
        return None
    if status.phase == "Succeeded" and status.finished_at:
        return IncidentEnd(status.finished_at, "operator", "its own step verified")
    if handed_over(status.wire()) and status.signal_resolved_at:
        return IncidentEnd(max(status.signal_resolved_at, status.finished_at or ""), "humans",
                           "the signal resolved after the operator handed over")
    return None


def end_owed(status: dict) -> bool:
    """An ended Remediation whose incident's end is known but not recorded yet (`incident_end` gives it): its
    step verified, or it was handed over and its signal resolved since. Cheap, on the wire status."""
    if status.get("restoredAt") is not None or status.get("phase") not in ("Succeeded", "Escalated", "Failed", "Skipped"):
        return False
    return status["phase"] == "Succeeded" or handed_over(status) and bool(status.get("signalResolvedAt"))


def awaits_healthy_pods(source: str, status: dict) -> bool:
    """A pod-state incident handed to people whose end is not known yet: it ends when the workload's pods are
    healthy again (the sweep looks), whichever way people fixed it. Cheap, on the wire status: every watch event."""
    return source == "podState" and handed_over(status) and not status.get("signalResolvedAt") and \
        not status.get("restoredAt")


# A look at a pod incident's workload costs two apiserver reads (the workload, its pods): one that stays unhealthy
# is looked at less often (every 10 s for a minute, as a fix right after the hand-over is common, then doubling,
# at most 2 min apart: an end noticed at most that late), and a sweep
# looks at no more than LOOKS_PER_SWEEP workloads, so thousands left unresolved for days cost a bounded
# 2 x 50 reads per 10 s sweep (they were 3 reads each per sweep: 300/s for 1000) and hold up no pod rescan.
FIRST_LOOK_AGAIN = 10.0
LOOKS_BEFORE_BACKING_OFF = 6
LOOK_AT_LEAST_EVERY = 120.0
LOOKS_PER_SWEEP = 50


def next_look_in(misses: int) -> float:
    """Seconds until a pod incident's workload is looked at again after `misses` looks in a row found it not
    healthy (or could not read it); 0 misses: it was healthy (its incidents are being resolved)."""
    return min(FIRST_LOOK_AGAIN * 2 ** min(max(misses - LOOKS_BEFORE_BACKING_OFF, 0), 16), LOOK_AT_LEAST_EVERY)


def looks_due(due: Mapping[T, float], now: float, budget: int = LOOKS_PER_SWEEP,
              tenant: Callable[[T], str] = lambda key: "") -> list[T]:
    """What to look at now: what is due, at most `budget`, taken in turn from each tenant (namespace), each
    one's longest overdue first (one never looked at is due at 0): a tenant with thousands of incidents waiting
    (or forged) holds up no other's; the rest waits for the next sweep."""
    queues: dict[str, list[T]] = {}
    for key, at in sorted(due.items(), key=lambda item: item[1]):
        if at <= now:
            queues.setdefault(tenant(key), []).append(key)
    chosen: list[T] = []
    for turn in range(min(budget, max((len(q) for q in queues.values()), default=0))):
        chosen += [q[turn] for q in queues.values() if turn < len(q)]
    return chosen[:budget]


# What a pod-state incident's end is looked at on: a workload and its pods, or the pod itself. Not a Node: the
# pods on it are other workloads' (and a look at them lists pods across every namespace).
POD_INCIDENT_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Rollout", "Pod")


def pod_incident_target(namespace: str, spec: RemediationSpec) -> ObjectRef | None:
    """The workload whose healthy pods end the pod-state incident of a Remediation living in `namespace`, or
    None when the sweep must not look: a spec pointing outside its namespace (one made by hand, refused: nothing
    is read there for it, as the reconcile reads nothing), a Node, a name no object can have. A target without a
    namespace is the Remediation's own namespace's (as the admission policy and the target claim read it).
    A Pod target of a workload's pod (`pod_owner`) is that workload: the rollback that fixes it deletes the pod."""
    target = spec.target
    if remediation_namespace_problem(namespace, spec) is not None or target.kind not in POD_INCIDENT_KINDS \
            or dns1123_subdomain_problem(target.name):
        return None
    kind, name = pod_owner(target.name, spec.signal.labels) if target.kind == "Pod" else (target.kind, target.name)
    return ObjectRef(kind=kind, namespace=target.namespace or namespace, name=name)


def pod_owner(pod: str, labels: Mapping[str, str]) -> tuple[str, str]:
    """The workload a pod-state signal says owns `pod` (signals.pods: the controller's kind, lower-cased, as a
    label; the pod's own labels may use those keys too, so only a name the pod's name starts with counts), else
    the Pod itself (a bare pod, or a hand-made signal)."""
    owners = [(len(labels[key]), kind, labels[key]) for kind, key in (
        ("Deployment", "deployment"), ("StatefulSet", "statefulset"), ("DaemonSet", "daemonset"))
        if labels.get(key) and pod.startswith(labels[key] + "-") and not dns1123_subdomain_problem(labels[key])]
    return max(owners)[1:] if owners else ("Pod", pod)


@dataclass(frozen=True)
class ResolveVerdict:
    allowed: bool
    reason: str


def may_resolve(status: RemediationStatus) -> ResolveVerdict:
    """A person may mark an ended, unrestored incident over; an open one is still the operator's."""
    if status.phase not in ("Succeeded", "Failed", "Escalated", "Denied", "Cancelled", "Skipped", "Expired"):
        return ResolveVerdict(False, f"still {status.phase}: the operator is working on it; it ends on its own")
    if status.restored_at:
        by = status.resolved_by or status.restored_by
        return ResolveVerdict(False, f"already restored at {status.restored_at} by {by}")
    if status.phase == "Succeeded":  # its end is being recorded: the operator's verified step restored it
        return ResolveVerdict(False, "already restored by the operator: its step verified")
    return ResolveVerdict(True, "recorded")


def alert_labels(namespace: str, name: str, spec: RemediationSpec, status: RemediationStatus) -> dict[str, str]:
    """The labels name the alert: the same labels re-sent refresh it; they never change while it is open."""
    return {"alertname": ALERTNAME, "namespace": namespace, "remediation": name,
            "runbook": spec.runbook.name,
            "target": f"{spec.target.kind}/{spec.target.name}",
            "severity": "page"}


def alert(namespace: str, name: str, spec: RemediationSpec, status: RemediationStatus, message: str,
          starts_at: str, now: datetime, resend_every: timedelta, generator_url: str = "") -> dict:
    """One alert of `POST /api/v2/alerts`. Open: endsAt three re-sends ahead, so a missed re-send or two does
    not resolve it; over (restored_at set): endsAt = now, which resolves it."""
    tried = "; ".join(f"{r.name} ({r.action}): {r.phase}" for r in status.steps) or "no step ran"
    ends = now if status.restored_at else now + 3 * resend_every
    annotations = {
        "summary": f"automation stopped on {namespace}/{name}: people must take over",
        "tried": tried,
        "stopped": escalates(status) or status.reason,
        "message": message or "(the Runbook gives no escalation message)",
    }
    if status.restored_at:
        annotations["restored"] = f"{status.restored_at} by {status.resolved_by or status.restored_by}" + (
            f": {status.resolution_note}" if status.resolution_note else "")
    body = {"labels": alert_labels(namespace, name, spec, status),
            "annotations": {k: v[:MAX_ANNOTATION] for k, v in annotations.items()},
            "startsAt": starts_at, "endsAt": iso_time(ends)}
    if generator_url:
        body["generatorURL"] = generator_url
    return body


def alert_due(status: RemediationStatus, now: datetime, resend_every: timedelta,
              parse=datetime.fromisoformat) -> str | None:
    """What the Alertmanager alert of this ended Remediation needs now: "fire" (first time or a re-send is
    due), "resolve" (it was sent and the incident is over), or None."""
    if escalates(status) is None and not status.escalation_alert:
        return None
    sent = status.escalation_alert
    if sent is not None and sent.refused:
        return None  # Alertmanager refused this alert's content: sending it again cannot help
    if status.restored_at:  # an alert Alertmanager never took has nothing to resolve
        return "resolve" if sent and sent.sent_at and not sent.resolved_at else None
    if sent is not None and not sent.sent_at:
        return "fire"  # owed since Alertmanager could not take it when the incident ended: paged however late
    if sent is None:
        # an incident that ended long ago and was never paged (e.g. before Alertmanager was configured, or
        # before an upgrade) is not paged now: that would be a storm of stale pages
        ended = parse(status.finished_at.replace("Z", "+00:00")) if status.finished_at else now
        return "fire" if now - ended <= FIRST_PAGE_WITHIN else None
    return "fire" if now - parse(sent.sent_at.replace("Z", "+00:00")) >= resend_every else None
