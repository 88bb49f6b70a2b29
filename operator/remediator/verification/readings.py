"""Verification readings kept in the step record: a pure fold, no I/O.

Each tick's probe folds its reading into the record's `readings`, which the
loop persists like any other status change. A reading is kept only when it
starts a new run (of the pods: every pod Ready or not, the same pods and
restart counts; of a query: its condition holding, erroring or neither), since
a verdict needs only the start of the current run and the reading in hand. So
a stable window costs no status write until its verdict, and an operator that
restarts (or takes over) mid-window finds when the window began. Instants are
the readers' wall clocks as recorded, so another replica measures from the
same `at`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

from remediator.api.models import MAX_READING_PODS, MAX_READINGS, Reading
from remediator.core.durations import micro_time, parse_time
from remediator.verification.observations import Observation

PER_CHECK = MAX_READINGS // 3  # pods, promql, sloRecovered


def fold_pods(readings: Sequence[Reading], seen: Observation) -> list[Reading]:
    """`readings` with `seen` added when it starts a new run of the pods."""
    last = last_of(readings, "pods")
    reading = pods_reading(seen, first=not any(saw_pods(r) for r in readings))
    if last is not None and (last.gone, last.holds, last.pods) == (reading.gone, reading.holds, reading.pods):
        return list(readings)
    return bounded([*readings, reading], "pods")


def pods_reading(seen: Observation, first: bool) -> Reading:
    """The step's first reading that sees pods keeps the restart counts they began with (the baseline of
    "restarted during the step"): only those above zero, so a pod no reading names began at zero or was made
    during the step, and any restart of it counts. Past MAX_READING_PODS such pods it says so instead."""
    counts = {p.uid: p.restarts for p in seen.pods}
    began = sorted((uid, n) for uid, n in counts.items() if n > 0) if first else []
    return Reading(check="pods", at=micro_time(seen.at), gone=not seen.exists,
                   holds=seen.exists and bool(seen.pods) and all(p.ready for p in seen.pods),
                   pods=digest(counts) if seen.exists else None,
                   restarts=dict(began[:MAX_READING_PODS]), restarts_untold=len(began) > MAX_READING_PODS or None)


def digest(counts: dict[str, int]) -> str:
    text = ",".join(f"{uid}={n}" for uid, n in sorted(counts.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


NO_PODS = digest({})


def ready_since(readings: Sequence[Reading], latest: Observation | None) -> datetime | None:
    """When the pods in `latest` became all Ready with their present restart counts, if they are."""
    last = last_of(readings, "pods")
    if latest is None or last is None or not last.holds or last.pods != digest({p.uid: p.restarts
                                                                                  for p in latest.pods}):
        return None
    return parse_time(last.at)


def first_restarts(readings: Sequence[Reading]) -> dict[str, int]:
    """The restart count each pod began the step with, as recorded."""
    first: dict[str, int] = {}
    for r in readings:
        for uid, n in r.restarts.items():
            first.setdefault(uid, n)
    return first


def saw_pods(reading: Reading) -> bool:
    """A pods reading that saw pods, or the heir of one (the baseline it carries)."""
    return reading.check == "pods" and (reading.pods not in (None, NO_PODS) or bool(reading.restarts)
                                        or bool(reading.restarts_untold))


def restarts_untold(readings: Sequence[Reading]) -> bool:
    """Whether the record names only some of the pods that began the step with restarts. A record of an earlier
    release named pods at zero too, and at most MAX_READING_PODS of any: whom it left out is not known."""
    first = first_restarts(readings)
    return any(r.restarts_untold for r in readings) or 0 in first.values() or len(first) >= MAX_READING_PODS


def last_of(readings: Sequence[Reading], check: str) -> Reading | None:
    return next((r for r in reversed(readings) if r.check == check), None)


def bounded(readings: list[Reading], check: str) -> list[Reading]:
    """At most PER_CHECK readings of `check`: the oldest go (only the latest run's start judges), but never the
    first one that saw pods, which holds the restart counts the step began with (its baseline)."""
    mine = [r for r in readings if r.check == check]
    excess = len(mine) - PER_CHECK
    if excess <= 0:
        return readings
    baseline = next((r for r in mine if saw_pods(r)), None)
    gone = {id(r) for r in [r for r in mine if r is not baseline][:excess]}
    return [r for r in readings if id(r) not in gone]
