"""Prometheus metrics of the loop (served on /metrics). Conventional names, base units (seconds)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REMEDIATIONS = Counter("remediator_remediations_total", "Remediations that reached an outcome",
                       ["runbook", "outcome"])
TIME_TO_RECOVER = Histogram("remediator_time_to_recover_seconds", "From the signal's start to verified recovery",
                            ["runbook"], buckets=(15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 86400))
ACTIONS = Counter("remediator_actions_total", "Action calls by action and result", ["action", "result"])
SIGNAL_TO_ACTION = Histogram("remediator_signal_to_action_seconds",
                             "From a Remediation's first plan (its first tick after ingest) to its first action applied",
                             buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300))
GUARD_DECISIONS = Counter("remediator_guard_decisions_total", "Guard decisions by guard and verdict",
                          ["guard", "verdict"])
REFUSALS = Counter("remediator_refusals_total",
                   "Refused attempts: unauthenticated or rate-limited webhook calls, forged Slack callbacks, "
                   "signals aimed at another namespace, actions the tenant's ServiceAccount may not do",
                   ["reason"])
