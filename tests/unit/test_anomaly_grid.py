"""Anomaly evaluations land on the trigger's step grid, so every replica names the same onset."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from remediator.core.anomaly.anomaly_signals import grid_instant

STEP = timedelta(minutes=5)


def test_replicas_evaluating_at_different_moments_of_one_step_pick_the_same_instant():
    moments = [datetime(2026, 12, 1, 12, 5, 20, tzinfo=UTC), datetime(2026, 12, 1, 12, 9, 59, tzinfo=UTC)]
    assert {grid_instant(m, STEP) for m in moments} == {datetime(2026, 12, 1, 12, 5, tzinfo=UTC)}


def test_a_grid_instant_is_evaluated_only_once_its_samples_have_had_time_to_arrive():
    just_after = datetime(2026, 12, 1, 12, 5, 10, tzinfo=UTC)  # 10 s after 12:05, under the 15 s settle
    assert grid_instant(just_after, STEP) == datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert grid_instant(datetime(2026, 12, 1, 12, 0, 1, 600000, tzinfo=UTC), timedelta(seconds=2)) == \
        datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC), "half a step of settling for short steps"
