"""Prometheus metrics of the loop (served on /metrics). Conventional names, base units (seconds)."""

from __future__ import annotations

from datetime import datetime

from prometheus_client import Counter, Histogram

from ..api.models import RemediationStatus

REMEDIATIONS = Counter("remediator_remediations_total", "Remediations that reached an outcome",
                       ["runbook", "outcome"])
TIME_TO_RECOVER = Histogram("remediator_time_to_recover_seconds", "From the signal's start to verified recovery",
                            ["runbook"], buckets=(15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 86400))
RETENTION_DELETES = Counter("remediator_retention_deletions_total",
                            "Ended Remediations the retention sweep deleted (deleted), or left because they changed "
                            "since listed (changed) or were gone already (gone)", ["result"])
ACTIONS = Counter("remediator_actions_total", "Action calls by action and result", ["action", "result"])
SIGNAL_TO_ACTION = Histogram("remediator_signal_to_action_seconds",
                             "From a Remediation's first plan (its first tick after ingest) to its first action applied",
                             buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300))
GUARD_DECISIONS = Counter("remediator_guard_decisions_total", "Guard decisions by guard and verdict",
                          ["guard", "verdict"])
APPROVAL_WAIT = Histogram("remediator_approval_wait_seconds",
                          "From an approval request to its decision (approved, denied, expired)", ["decision"],
                          buckets=(10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 86400))


def observe_approval(before: RemediationStatus, after: RemediationStatus) -> None:
    """Once per request: when the Remediation leaves AwaitingApproval with the request decided."""
    request = after.approval
    if before.phase != "AwaitingApproval" or after.phase == "AwaitingApproval" or request is None:
        return
    if not (request.decision and request.requested_at and request.decided_at):
        return
    waited = datetime.fromisoformat(request.decided_at) - datetime.fromisoformat(request.requested_at)
    APPROVAL_WAIT.labels(request.decision).observe(max(0.0, waited.total_seconds()))
REFUSALS = Counter("remediator_refusals_total",
                   "Refused attempts: unauthenticated or rate-limited webhook calls, forged Slack callbacks, stale votes, "
                   "signals aimed at another namespace, actions the tenant's ServiceAccount may not do",
                   ["reason"])
