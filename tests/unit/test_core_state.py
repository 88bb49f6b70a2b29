from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from remediator.api.models import TERMINAL_PHASES, RemediationStatus, StepRecord, TimelineEntry
from remediator.core.engine.state import (
    TIMELINE_LIMIT,
    TRANSITIONS,
    IllegalTransition,
    allowed_transitions,
    append_timeline,
    idempotency_key,
    note,
    remediation_name,
    time_to_recover,
    transition,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def record(index: int, phase: str = "Failed") -> StepRecord:
    return StepRecord(index=index, name=f"s{index}", action="restartRollout", idempotency_key=f"k{index}", phase=phase)


def walk(*moves: tuple[str, int | None]) -> RemediationStatus:
    status = RemediationStatus()
    for minute, (to, step) in enumerate(moves):
        status = transition(status, to, f"to {to}", at(minute), step=step)
    return status


# ---------------------------------------------------------------- the table


LEGAL = [
    ("Pending", "Planned"), ("Pending", "Skipped"), ("Planned", "Acting"), ("Planned", "AwaitingApproval"),
    ("Planned", "Skipped"), ("Planned", "Escalated"), ("AwaitingApproval", "Acting"), ("AwaitingApproval", "Denied"),
    ("AwaitingApproval", "Expired"), ("AwaitingApproval", "Escalated"), ("Acting", "Verifying"),
    ("Verifying", "Succeeded"), ("Verifying", "Acting"), ("Verifying", "Escalated"), ("Verifying", "AwaitingApproval"),
]
ILLEGAL = [
    ("Pending", "Acting"), ("Pending", "Succeeded"), ("Planned", "Verifying"), ("Planned", "Succeeded"),
    ("Acting", "Succeeded"), ("Acting", "Planned"), ("AwaitingApproval", "Verifying"), ("Verifying", "Planned"),
    ("Verifying", "Skipped"), ("Verifying", "Denied"), ("Pending", "Expired"), ("Planned", "Denied"),
]


@pytest.mark.parametrize("source, to", LEGAL)
def test_legal_moves_are_in_the_table(source, to):
    assert to in allowed_transitions(source)


@pytest.mark.parametrize("source, to", ILLEGAL)
def test_illegal_moves_are_refused_and_the_error_lists_the_legal_ones(source, to):
    status = RemediationStatus(phase=source, current_step=0)
    with pytest.raises(IllegalTransition, match=f"cannot go from {source} to {to} \\(allowed: "):
        transition(status, to, "because", T0)


@pytest.mark.parametrize("phase", sorted(TERMINAL_PHASES))
def test_terminal_phases_have_no_way_out(phase):
    assert allowed_transitions(phase) == frozenset()
    with pytest.raises(IllegalTransition, match="none: it is terminal"):
        transition(RemediationStatus(phase=phase), "Failed", "again", T0)


@pytest.mark.parametrize("phase", sorted(set(TRANSITIONS) - TERMINAL_PHASES))
def test_every_non_terminal_phase_can_be_cancelled_or_failed(phase):
    assert {"Cancelled", "Failed"} <= allowed_transitions(phase)


def test_every_phase_of_the_model_is_in_the_table():
    from typing import get_args

    from remediator.api.models import RemediationPhase
    assert set(TRANSITIONS) == set(get_args(RemediationPhase))


def test_unknown_phases_are_refused():
    with pytest.raises(IllegalTransition, match="unknown phase"):
        transition(RemediationStatus(), "Exploded", "x", T0)  # type: ignore[arg-type]


# ---------------------------------------------------------------- the ladder rules


def test_a_full_run_climbs_the_ladder_and_succeeds():
    status = walk(("Planned", None), ("Acting", 0), ("Verifying", None))
    status = status.model_copy(update={"steps": [record(0)]})
    status = transition(status, "Acting", "restart did not help", at(5), step=1)
    status = transition(status, "Verifying", "applied", at(6))
    status = transition(status, "Succeeded", "SLO recovered", at(9))
    assert status.phase == "Succeeded" and status.current_step == 1
    assert [e.kind for e in status.timeline] == ["Planned", "Acting", "Verifying", "Acting", "Verifying", "Succeeded"]
    assert status.timeline[3].message == "Verifying -> Acting (step 1): restart did not help"
    assert status.started_at == "2024-05-01T12:00:00Z" and status.finished_at == "2024-05-01T12:09:00Z"
    assert status.time_to_recover_seconds == 9 * 60


def test_entering_acting_needs_a_step():
    with pytest.raises(IllegalTransition, match="needs the step index"):
        walk(("Planned", None), ("Acting", None))


def test_climbing_to_a_step_that_already_ran_is_refused():
    status = walk(("Planned", None), ("Acting", 0), ("Verifying", None)).model_copy(update={"steps": [record(0)]})
    with pytest.raises(IllegalTransition, match="has not run yet"):
        transition(status, "Acting", "again", at(5), step=0)
    with pytest.raises(IllegalTransition, match="has not run yet"):
        transition(status, "Acting", "again", at(5))  # current_step 0 ran already
    moved = transition(status.model_copy(update={"current_step": 1}), "Acting", "next", at(5))
    assert moved.current_step == 1  # the caller may set current_step itself


def test_a_step_that_failed_to_apply_climbs_straight_to_the_next():
    status = walk(("Planned", None), ("Acting", 0)).model_copy(update={"steps": [record(0)]})
    assert transition(status, "Acting", "403 on patch", at(3), step=1).current_step == 1
    assert transition(status, "AwaitingApproval", "next step is high risk", at(3), step=1).phase == "AwaitingApproval"


def test_skipped_means_nothing_was_done():
    assert walk(("Planned", None), ("Skipped", None)).phase == "Skipped"
    acting = walk(("Planned", None), ("Acting", 0))
    assert transition(acting, "Skipped", "guard blocked before the first action", at(2)).phase == "Skipped"
    intended = acting.model_copy(update={"steps": [record(0, "Intended")]})
    with pytest.raises(IllegalTransition, match="Skipped means nothing was done"):
        transition(intended, "Skipped", "guard blocked", at(2))


def test_a_transition_needs_a_reason_and_a_known_step():
    with pytest.raises(ValueError, match="needs a reason"):
        transition(RemediationStatus(), "Planned", "  ", T0)
    with pytest.raises(IllegalTransition, match="negative"):
        transition(RemediationStatus(phase="Planned"), "Acting", "x", T0, step=-1)


# ---------------------------------------------------------------- immutability, conditions, times


def test_transition_returns_a_new_status_and_never_mutates_the_old():
    old = RemediationStatus(phase="Planned", match_reasons=["matched"])
    new = transition(old, "Acting", "go", T0, step=0)
    assert old.phase == "Planned" and old.timeline == [] and old.conditions == [] and old.current_step is None
    assert new.phase == "Acting" and new.reason == "go"
    new.match_reasons.append("x")
    assert old.match_reasons == ["matched"]


def conditions(status: RemediationStatus) -> dict[str, tuple[str, str | None]]:
    return {c.type: (c.status, c.last_transition_time) for c in status.conditions}


def test_conditions_follow_the_phase_and_keep_their_time_until_they_change():
    planned = transition(RemediationStatus(), "Planned", "plan", at(0))
    assert conditions(planned) == {"Progressing": ("True", "2024-05-01T12:00:00Z"),
                                   "AwaitingApproval": ("False", "2024-05-01T12:00:00Z"),
                                   "Recovered": ("Unknown", "2024-05-01T12:00:00Z")}
    waiting = transition(planned, "AwaitingApproval", "high risk", at(1))
    assert conditions(waiting)["AwaitingApproval"] == ("True", "2024-05-01T12:01:00Z")
    assert conditions(waiting)["Progressing"] == ("True", "2024-05-01T12:00:00Z")
    denied = transition(waiting, "Denied", "no", at(2))
    assert conditions(denied) == {"Progressing": ("False", "2024-05-01T12:02:00Z"),
                                  "AwaitingApproval": ("False", "2024-05-01T12:02:00Z"),
                                  "Recovered": ("False", "2024-05-01T12:02:00Z")}
    assert next(c for c in denied.conditions if c.type == "Recovered").message == "no"


def test_unrelated_conditions_are_kept():
    from remediator.api.models import Condition
    status = RemediationStatus(conditions=[Condition(type="Approved", status="True")])
    assert "Approved" in conditions(transition(status, "Planned", "plan", T0))


def test_time_to_recover_starts_at_the_signal_when_known():
    status = walk(("Planned", None), ("Acting", 0), ("Verifying", None))
    done = transition(status, "Succeeded", "verified", at(10), signal_starts_at="2024-05-01T11:50:00Z")
    assert done.time_to_recover_seconds == 20 * 60


def test_time_to_recover_set_by_the_caller_is_kept():
    status = walk(("Planned", None), ("Acting", 0), ("Verifying", None)).model_copy(
        update={"time_to_recover_seconds": 42.0})
    assert transition(status, "Succeeded", "verified", at(10)).time_to_recover_seconds == 42.0


@pytest.mark.parametrize("signal, started, expected", [
    ("2024-05-01T11:30:00Z", "2024-05-01T11:45:00Z", timedelta(minutes=30)),
    (None, "2024-05-01T11:45:00Z", timedelta(minutes=15)),
    ("garbage", "2024-05-01T11:45:00Z", timedelta(minutes=15)),
    ("2024-05-01T11:30:00.123456789Z", None, timedelta(minutes=29, seconds=59, microseconds=876544)),
    ("2024-05-01T12:05:00Z", None, timedelta(0)),  # a clock ahead of ours never gives a negative time
    (None, None, None),
])
def test_time_to_recover(signal, started, expected):
    assert time_to_recover(signal, started, T0) == expected


def test_failure_records_finish_but_no_time_to_recover():
    done = walk(("Planned", None), ("Failed", None))
    assert done.finished_at == "2024-05-01T12:01:00Z" and done.time_to_recover_seconds is None


# ---------------------------------------------------------------- timeline


def entry(i: int) -> TimelineEntry:
    return TimelineEntry(at=f"2024-05-01T12:00:{i % 60:02d}Z", kind="Note", message=f"n{i}")


def test_timeline_keeps_the_last_entries_and_says_how_many_were_dropped():
    timeline: list[TimelineEntry] = []
    for i in range(TIMELINE_LIMIT + 7):
        timeline = append_timeline(timeline, entry(i))
    assert len(timeline) == TIMELINE_LIMIT
    assert timeline[0].kind == "TimelineTruncated"
    assert timeline[0].message.startswith("8 earlier entries dropped")
    assert timeline[1].message == "n8" and timeline[-1].message == f"n{TIMELINE_LIMIT + 6}"


def test_timeline_under_the_limit_has_no_marker():
    timeline = [entry(i) for i in range(TIMELINE_LIMIT - 1)]
    assert append_timeline(timeline, entry(99))[0].message == "n0"


def test_a_small_limit_still_keeps_the_newest_entry():
    timeline: list[TimelineEntry] = []
    for i in range(5):
        timeline = append_timeline(timeline, entry(i), limit=2)
    assert [e.message for e in timeline] == ["4 earlier entries dropped (the timeline keeps the last 1)", "n4"]
    with pytest.raises(ValueError):
        append_timeline([], entry(0), limit=1)


def test_note_adds_a_timeline_entry_and_changes_nothing_else():
    status = walk(("Planned", None))
    noted = note(status, "Vote", "alice approved", at(3))
    assert noted.phase == status.phase and noted.conditions == status.conditions
    assert noted.timeline[-1] == TimelineEntry(at="2024-05-01T12:03:00Z", kind="Vote", message="alice approved")
    assert len(status.timeline) == 1


# ---------------------------------------------------------------- names and keys


def test_idempotency_key_is_stable_short_and_valid_as_a_label_value():
    key = idempotency_key("am-1234", 2, "restartRollout")
    assert key == idempotency_key("am-1234", 2, "restartRollout")
    assert key.startswith("restartRollout-2-") and len(key) <= 63
    assert re.fullmatch(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?", key)
    assert len({key, idempotency_key("am-1234", 3, "restartRollout"), idempotency_key("am-9999", 2, "restartRollout"),
                idempotency_key("am-1234", 2, "scale")}) == 4


@pytest.mark.parametrize("args", [("", 0, "scale"), ("am-1", -1, "scale"), ("am-1", 0, ""), ("am-1", 0, "sc ale")])
def test_idempotency_key_refuses_incomplete_input(args):
    with pytest.raises(ValueError):
        idempotency_key(*args)


def test_duplicate_deliveries_get_the_same_remediation_name():
    first = remediation_name("alertmanager", "d3adb33f", "2024-05-01T11:58:00Z", "shop")
    assert first == remediation_name("alertmanager", "d3adb33f", "2024-05-01T11:58:00Z", "shop")
    assert re.fullmatch(r"am-[0-9a-f]{20}", first)


@pytest.mark.parametrize("other", [
    ("alertmanager", "d3adb33f", "2024-05-01T13:00:00Z", "shop"),   # the alert fired again later
    ("alertmanager", "0ther", "2024-05-01T11:58:00Z", "shop"),
    ("alertmanager", "d3adb33f", "2024-05-01T11:58:00Z", "payments"),
    ("podState", "d3adb33f", "2024-05-01T11:58:00Z", "shop"),
])
def test_different_incidents_get_different_names(other):
    assert remediation_name(*other) != remediation_name("alertmanager", "d3adb33f", "2024-05-01T11:58:00Z", "shop")


@pytest.mark.parametrize("source, prefix", [("podState", "pod-"), ("sloBurn", "slo-"), ("anomaly", "anom-"),
                                            ("manual", "man-")])
def test_remediation_names_say_where_the_signal_came_from(source, prefix):
    name = remediation_name(source, "fp", None, "shop")
    assert name.startswith(prefix) and len(name) <= 63 and re.fullmatch(r"[a-z0-9-]+", name)


@pytest.mark.parametrize("args, message", [
    (("email", "fp", None, "shop"), "unknown signal source"),
    (("alertmanager", "", None, "shop"), "fingerprint"),
    (("alertmanager", "fp", None, ""), "namespace"),
])
def test_remediation_name_refuses_input_that_would_collide(args, message):
    with pytest.raises(ValueError, match=message):
        remediation_name(*args)
