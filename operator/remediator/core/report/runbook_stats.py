"""A Runbook's status from its Remediations' outcomes (pure: old status + one ended Remediation -> new status).

Each Remediation counts once: its uid joins a bounded list of folded uids in the same status write as the
counts, so a fold retried after a crash or a 409 finds itself there and changes nothing.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import NamedTuple

from remediator.api.models import (
    MAX_FOLDED,
    MAX_RECENT_RECOVERIES,
    MAX_SIGNAL_STATS,
    MAX_STEP_STATS,
    MAX_STEPS,
    TERMINAL_PHASES,
    LastRemediation,
    RemediationStatus,
    RunbookStatus,
    SignalStats,
    StepStats,
)
from remediator.core.plan.adaptive import verdicts
from remediator.core.durations import parse_time

STEP_SUCCEEDED = frozenset({"Succeeded"})
STEP_FAILED = frozenset({"Failed", "Inconclusive"})


def fold(old: RunbookStatus, uid: str, name: str, outcome: RemediationStatus, signal: str) -> RunbookStatus | None:
    """The Runbook status with `outcome` counted, or None when there is nothing to change (not ended yet, or
    counted already). Its applied steps are also counted under `signal` (adaptive.signal_type), for the ladder."""
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
        "step_stats": list(stats.values())[-MAX_STEP_STATS:],
        # until the sweep's backfill completes them, it counts this one too (from the list of Remediations)
        "signal_stats": fold_signal(old.signal_stats, signal, outcome) if old.signal_stats_complete
        else old.signal_stats,
        "recent_recovery_seconds": recoveries,
        "median_time_to_recover_seconds": statistics.median(recoveries) if recoveries else None,
        "folded": [*old.folded, uid][-MAX_FOLDED:],
    })


def fold_signal(old: list[SignalStats], signal: str, outcome: RemediationStatus) -> list[SignalStats]:
    """Count the applied steps' verdicts under `signal`; the signal type and the steps just seen move last, so
    the bounds drop the least recently seen first."""
    return fold_verdicts(old, signal, tuple(verdicts(outcome)))


def fold_verdicts(old: list[SignalStats], signal: str, applied: tuple[tuple[str, bool], ...]) -> list[SignalStats]:
    if not applied:
        return old
    seen = next((s for s in old if s.signal == signal), SignalStats(signal=signal))
    steps = {s.name: s for s in seen.steps}
    for name, won in applied:
        count = steps.pop(name, None) or StepStats(name=name)
        steps[name] = count.model_copy(update={"succeeded": count.succeeded + won, "failed": count.failed + (not won)})
    now = seen.model_copy(update={"steps": list(steps.values())[-MAX_STEPS:]})
    return [*(s for s in old if s.signal != signal), now][-MAX_SIGNAL_STATS:]


class Ended(NamedTuple):
    """What the backfill needs of one ended Remediation (a few hundred bytes, not its ~5 KB status): the sweep
    may hold one for each of tens of thousands."""
    uid: str
    signal: str
    finished_at: str
    flagged: bool  # status.foldedIntoRunbook
    verdicts: tuple[tuple[str, bool], ...]


def ended(uid: str, signal: str, status: RemediationStatus) -> Ended | None:
    """The backfill's record of a Remediation; None while it has not ended."""
    if status.phase not in TERMINAL_PHASES:
        return None
    return Ended(uid, signal, status.finished_at or "", status.folded_into_runbook, tuple(verdicts(status)))


def backfill(old: RunbookStatus, records: Iterable[Ended]) -> RunbookStatus:
    """signalStats from every ended Remediation of the Runbook already folded (flagged so, or its uid among
    `folded`): those folded before signalStats were kept; run once, when the status is not yet complete."""
    folded = set(old.folded)
    stats: list[SignalStats] = []
    for record in sorted(records, key=lambda e: e.finished_at):  # oldest first, as folded
        if record.flagged or record.uid in folded:
            stats = fold_verdicts(stats, record.signal, record.verdicts)
    return old.model_copy(update={"signal_stats": stats, "signal_stats_complete": True})
