"""Verdicts of the PromQL checks (`promql`, `sloRecovered`). Pure: readings and times in.

A check passes when its condition held in every reading of an unbroken run
that has lasted `for`. Missing data and an unreachable Prometheus break the
run and can never pass; when the step times out they make the verdict
inconclusive (nothing is known), while data that shows the condition not
holding makes it failed.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from remediator.api.models import MAX_READING_DETAIL, MAX_READING_TEXT, Evidence, Reading
from remediator.core.durations import format_duration, iso_time, micro_time, parse_time
from remediator.verification.readings import bounded, last_of
from remediator.verification.verdicts import Verdict

COMPARE = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
           "==": operator.eq, "!=": operator.ne}


@dataclass(frozen=True)
class QueryReading:
    """One look at a check's query. `value` None: no data; `error` set: Prometheus could not answer."""

    at: datetime
    value: float | None
    detail: str  # the query (or queries) and what came back, for evidence and reasons
    error: str = ""


def condition_holds(reading: QueryReading, op: str, threshold: float) -> bool:
    return not reading.error and reading.value is not None and COMPARE[op](reading.value, threshold)


def query_verdict(readings: Sequence[QueryReading], op: str, threshold: float, hold_for: timedelta,
                  started: datetime, timeout: timedelta, now: datetime, what: str) -> Verdict:
    """`what` names the condition in reasons, e.g. "error ratio < 0.01"."""
    since = [r for r in readings if r.at >= started]
    streak: list[QueryReading] = []
    for r in since:
        streak = streak + [r] if condition_holds(r, op, threshold) else []
    held = (streak[-1].at - streak[0].at) if streak else timedelta(0)
    if streak and held >= hold_for:
        return Verdict("passed", [f"{what} held for {format_duration(held)} (needed {format_duration(hold_for)})"],
                       _evidence(streak[0], "held from") + _evidence(streak[-1], "held until"))
    last = since[-1] if since else None
    timed_out = now - started >= timeout
    if not timed_out:
        return Verdict("pending", [_progress(last, what, bool(streak), held, hold_for)])
    if last is None:
        return Verdict("inconclusive", [f"no reading of {what} within {format_duration(timeout)}"])
    if last.error:
        down = _first_of_trailing(since, lambda r: bool(r.error))
        return Verdict("inconclusive",
                       [f"cannot tell whether {what}: Prometheus has not answered since "
                        f"{iso_time(down.at)} ({last.error})"], _evidence(last, "last attempt"))
    if last.value is None:
        return Verdict("inconclusive", [f"cannot tell whether {what}: no data ({last.detail})"],
                       _evidence(last, "no data"))
    if streak:
        return Verdict("failed", [f"{what} held only {format_duration(held)} of the {format_duration(hold_for)} "
                                  f"needed before the {format_duration(timeout)} timeout"],
                       _evidence(last, "last reading"))
    return Verdict("failed", [f"{what} does not hold after {format_duration(timeout)}: {last.detail}"],
                   _evidence(last, "last reading"))


def fold_query(readings: Sequence[Reading], check: str, reading: QueryReading, op: str,
               threshold: float) -> list[Reading]:
    """`readings` with a query's `reading` added when it starts a new run (holding, erroring or neither). Only
    that run's start keeps its detail (the evidence "held from"); of earlier runs a verdict reads no detail."""
    last = last_of(readings, check)
    if last is not None and query_kind(as_query(last), op, threshold) == query_kind(reading, op, threshold):
        return list(readings)
    kept = Reading(check=check, at=micro_time(reading.at), holds=condition_holds(reading, op, threshold),
                   value=reading.value, detail=reading.detail[:MAX_READING_DETAIL] or None,
                   error=reading.error[:MAX_READING_TEXT] or None)
    earlier = [r.model_copy(update={"detail": None}) if r.check == check else r for r in readings]
    return bounded([*earlier, kept], check)


def query_history(readings: Sequence[Reading], check: str, current: QueryReading) -> list[QueryReading]:
    """The run starts kept for `check`, then the reading in hand: what `query_verdict` judges."""
    history = [as_query(r) for r in readings if r.check == check]
    return history if history and history[-1].at == current.at else [*history, current]


def query_kind(reading: QueryReading, op: str, threshold: float) -> str:
    return "holds" if condition_holds(reading, op, threshold) else "error" if reading.error else "other"


def as_query(r: Reading) -> QueryReading:
    return QueryReading(parse_time(r.at), r.value, r.detail or "", r.error or "")


def _progress(last: QueryReading | None, what: str, holding: bool, held: timedelta, hold_for: timedelta) -> str:
    if last is None:
        return f"waiting for a first reading of {what}"
    if last.error:
        return f"Prometheus did not answer ({last.error}); waiting"
    state = "holds" if holding else "does not hold yet"
    return f"{what} {state} ({last.detail}); held {format_duration(held)} of {format_duration(hold_for)}"


def _first_of_trailing(readings: Sequence[QueryReading], pred) -> QueryReading:
    first = readings[-1]
    for r in reversed(readings):
        if not pred(r):
            break
        first = r
    return first


def _evidence(r: QueryReading, label: str) -> list[Evidence]:
    value = None if r.value is None else f"{r.value:.6g}"
    detail = f"{label}: {r.error or r.detail}"
    return [Evidence(kind="promql", detail=detail[:1000], value=value, at=iso_time(r.at))]


