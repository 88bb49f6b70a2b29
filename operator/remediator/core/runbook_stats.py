"""A Runbook's status from its Remediations' outcomes (pure: old status + one ended Remediation -> new status).

Each Remediation counts once: its uid joins a bounded list of folded uids in the same status write as the
counts, so a fold retried after a crash or a 409 finds itself there and changes nothing.
"""

from __future__ import annotations

import statistics

from ..api.models import (
    MAX_FOLDED,
    MAX_RECENT_RECOVERIES,
    TERMINAL_PHASES,
    LastRemediation,
    RemediationStatus,
    RunbookStatus,
    StepStats,
)
from .durations import parse_time

STEP_SUCCEEDED = frozenset({"Succeeded"})
STEP_FAILED = frozenset({"Failed", "Inconclusive"})


def fold(old: RunbookStatus, uid: str, name: str, outcome: RemediationStatus) -> RunbookStatus | None:
    """The Runbook status with `outcome` counted, or None when there is nothing to change (not ended yet, or
    counted already)."""
    if outcome.phase not in TERMINAL_PHASES or uid in old.folded:
        return None
    stats = {s.name: s for s in old.step_stats}
    for record in outcome.steps:
        if record.phase in STEP_SUCCEEDED or record.phase in STEP_FAILED:
            seen = stats.get(record.name) or StepStats(name=record.name)
            won = record.phase in STEP_SUCCEEDED
            stats[record.name] = seen.model_copy(update={"succeeded": seen.succeeded + won,
                                                         "failed": seen.failed + (not won)})
    recoveries = list(old.recent_recovery_seconds)
    if outcome.phase == "Succeeded" and outcome.time_to_recover_seconds is not None:
        recoveries = [*recoveries, outcome.time_to_recover_seconds][-MAX_RECENT_RECOVERIES:]
    last = LastRemediation(name=name, phase=outcome.phase, finished_at=outcome.finished_at)
    earlier = old.last_remediation
    if earlier is not None and earlier.finished_at and outcome.finished_at and \
            parse_time(outcome.finished_at) < parse_time(earlier.finished_at):
        last = earlier  # folded late (after a restart): the newest stays the last
    return old.model_copy(update={
        "last_remediation": last,
        "step_stats": list(stats.values())[-64:],
        "recent_recovery_seconds": recoveries,
        "median_time_to_recover_seconds": statistics.median(recoveries) if recoveries else None,
        "folded": [*old.folded, uid][-MAX_FOLDED:],
    })
