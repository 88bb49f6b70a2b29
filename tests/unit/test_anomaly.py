"""Anomaly scoring as a state machine (core/anomaly/anomaly.py), on seeded synthetic series."""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from remediator.api.models import AnomalyTrigger
from remediator.core.anomaly.anomaly import (
    AnomalyParams,
    AnomalyState,
    AnomalyVerdict,
    params_from_trigger,
    state_from_json,
    state_to_json,
    step,
)

T0 = datetime(2024, 3, 4, 0, 0, tzinfo=UTC)
STEP = timedelta(minutes=5)
DAY = 288  # samples a day at a 5 minute step
METHODS = ["medianMad", "ewma"]


def params(**fields) -> AnomalyParams:
    fields.setdefault("lookback", timedelta(days=1))
    return AnomalyParams(**fields)


def run(values, p: AnomalyParams, *, change_at: datetime | None = None, state: AnomalyState | None = None,
        start: int = 0) -> tuple[AnomalyState, list[AnomalyVerdict]]:
    """Feed values one per step (sample i at T0 + i steps); return the last state and every verdict."""
    state = state or AnomalyState()
    verdicts = []
    for i, value in enumerate(values, start=start):
        state, verdict = step(state, value, p, T0 + i * p.step, change_at)
        verdicts.append(verdict)
    return state, verdicts


def noise(n: int, seed: int, mean: float = 10.0, sigma: float = 1.0) -> list[float]:
    rng = random.Random(seed)
    return [rng.gauss(mean, sigma) for _ in range(n)]


def fired_at(verdicts) -> list[int]:
    return [i for i, v in enumerate(verdicts) if v.transition == "fired"]


def cycles(verdicts) -> int:
    return sum(v.transition == "fired" for v in verdicts)


# ---------------------------------------------------------------- no false alarms, real alarms


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("seed", [1, 2])
def test_pure_noise_never_fires_over_ten_thousand_samples(method, seed):
    _, verdicts = run(noise(10_000, seed), params(method=method))
    assert fired_at(verdicts) == []
    assert max(abs(v.score) for v in verdicts if v.score is not None) < 6


@pytest.mark.parametrize("method", METHODS)
def test_a_real_spike_fires_on_the_sample_it_happens(method):
    values = noise(400, seed=3)
    values[300] += 20
    _, verdicts = run(values, params(method=method))
    assert fired_at(verdicts) == [300]
    assert verdicts[300].firing and verdicts[300].status == "firing"
    assert verdicts[301].transition == "cleared"


@pytest.mark.parametrize("method", METHODS)
def test_a_sustained_rise_with_a_for_duration_fires_once_the_duration_has_passed(method):
    values = noise(300, seed=4) + noise(10, seed=5, mean=30)
    _, verdicts = run(values, params(method=method, for_=timedelta(minutes=10)))
    assert [v.status for v in verdicts[300:303]] == ["pending", "pending", "firing"]
    assert fired_at(verdicts) == [302]
    assert "waiting 10m before firing" in verdicts[300].explanation


@pytest.mark.parametrize("method", METHODS)
def test_a_spike_does_not_widen_the_baseline_and_hide_the_next_one(method):
    values = noise(400, seed=33)
    values[300] += 50
    values[305] += 8
    _, verdicts = run(values, params(method=method))
    assert fired_at(verdicts) == [300, 305]
    assert verdicts[305].scale == pytest.approx(verdicts[299].scale, rel=0.05)


def test_a_spike_shorter_than_for_never_fires():
    values = noise(300, seed=6)
    values[250] += 30
    values[251] += 30
    _, verdicts = run(values, params(for_=timedelta(minutes=15)))
    assert fired_at(verdicts) == []


@pytest.mark.parametrize("method", METHODS)
def test_a_value_hovering_around_the_threshold_fires_and_clears_at_most_once(method):
    rng = random.Random(7)
    warmup = noise(DAY, seed=8)
    _, verdicts = run(warmup, params(method=method))
    spread = verdicts[-1].scale
    hover_high = [10 + spread * (6 + rng.uniform(-0.6, 0.6)) for _ in range(60)]
    hover_low = [10 + spread * (3 + rng.uniform(-0.6, 0.6)) for _ in range(60)]
    _, verdicts = run(warmup + hover_high + hover_low + hover_high[:20], params(method=method))
    assert cycles(verdicts) == 1
    assert sum(v.transition == "cleared" for v in verdicts) == 1
    assert verdicts[DAY + 60].transition == "cleared"  # only once the value comes down to the clear threshold


def test_hysteresis_keeps_firing_between_the_clear_and_fire_thresholds():
    values = noise(DAY, seed=9)
    _, warm = run(values, params())
    above = [warm[-1].baseline + warm[-1].scale * k for k in (7, 5, 4, 3.5, 2)]
    _, verdicts = run(values + above, params())
    statuses = [v.status for v in verdicts[-5:]]
    assert statuses == ["firing", "firing", "firing", "firing", "ok"]
    assert verdicts[-1].transition == "cleared"


# ---------------------------------------------------------------- direction, learning, floors, gaps


@pytest.mark.parametrize("direction, delta, fires", [
    ("up", +20, True), ("up", -20, False), ("down", -20, True), ("down", +20, False),
    ("both", +20, True), ("both", -20, True),
])
def test_direction_decides_which_side_fires(direction, delta, fires):
    values = noise(200, seed=10)
    values[-1] += delta
    _, verdicts = run(values, params(direction=direction))
    assert verdicts[-1].firing is fires
    assert verdicts[-1].explanation.endswith(f"direction {direction})")


def test_nothing_is_judged_before_min_samples():
    values = noise(29, seed=11) + [1000.0]
    _, verdicts = run(values, params(min_samples=30))
    assert all(v.status == "learning" for v in verdicts)
    assert verdicts[-1].explanation == ("learning the baseline of value: 30 of 30 samples so far; "
                                        "1000 is not judged")
    _, verdicts = run(noise(30, seed=11) + [1000.0], params(min_samples=30))
    assert verdicts[-1].firing


def test_a_flat_series_uses_the_scale_floor_instead_of_dividing_by_zero():
    p = params(min_scale=0.5, description="errors per second")
    _, verdicts = run([0.0] * 100 + [1.0, 4.0], p)
    assert verdicts[-2].score == pytest.approx(2.0)
    assert not verdicts[-2].firing
    assert verdicts[-1].score == pytest.approx(8.0) and verdicts[-1].firing
    assert any("nearly flat" in note for note in verdicts[-1].notes)


def test_a_flat_series_with_no_absolute_floor_uses_a_share_of_its_level():
    _, verdicts = run([200.0] * 100 + [203.0, 220.0], params())
    assert verdicts[-2].scale == pytest.approx(2.0)  # 1% of 200
    assert verdicts[-2].score == pytest.approx(1.5)
    assert verdicts[-1].firing


def test_a_mostly_idle_series_falls_back_to_the_mean_absolute_deviation():
    values = [0.0, 0.0, 0.0, 5.0] * 50 + [6.0]
    _, verdicts = run(values, params(min_scale=0.01))
    assert verdicts[-1].scale == pytest.approx(1.25 * 1.2533, rel=0.02)
    assert not verdicts[-1].firing


@pytest.mark.parametrize("gap", [None, math.nan, math.inf, "12"])
def test_a_missing_sample_is_no_data_and_neither_clears_nor_fires(gap):
    values = noise(200, seed=12)
    values[150] += 30
    p = params(for_=timedelta(0))
    state, _ = run(values[:151], p)
    assert state.firing
    state, verdict = step(state, gap, p, T0 + 151 * STEP)
    assert (verdict.status, verdict.firing, verdict.transition) == ("noData", True, None)
    assert "still firing: a gap is not a recovery" in verdict.explanation


def test_a_gap_restarts_the_wait_for_the_for_duration():
    p = params(for_=timedelta(minutes=10))
    values = noise(200, seed=13) + [30.0, None, 30.0, 30.0, 30.0]
    _, verdicts = run(values, p)
    assert [v.status for v in verdicts[200:]] == ["pending", "noData", "pending", "pending", "firing"]
    assert "the wait for 'for' restarts" in verdicts[201].explanation


def test_a_sample_that_is_not_newer_than_the_last_one_is_ignored():
    p = params()
    state, _ = run(noise(100, seed=14), p)
    again, verdict = step(state, 5000.0, p, T0 + 99 * STEP)
    assert again == state
    assert "not newer than the last one" in verdict.explanation and not verdict.firing


# ---------------------------------------------------------------- explanations


def test_the_explanation_says_value_distance_and_baseline_in_words():
    p = params(lookback=timedelta(days=7), description="p95 latency", unit="ms")
    values = noise(100, seed=15, mean=120, sigma=10)
    values[-1] = 820
    _, verdicts = run(values, p)
    text = verdicts[-1].explanation
    assert text.startswith("p95 latency 820 ms is ")
    assert " MADs above its 7-day baseline of 1" in text
    assert text.endswith(": anomalous (fires at 6, clears under 3, direction up)")


def test_ewma_explanations_speak_in_sigmas():
    values = noise(100, seed=16)
    values[-1] = -5
    _, verdicts = run(values, params(method="ewma", direction="both"))
    assert " sigmas below its 1-day EWMA baseline of 9.9" in verdicts[-1].explanation


# ---------------------------------------------------------------- daily seasonality


def daily_sine(days: int, seed: int, amplitude: float = 20.0) -> list[float]:
    rng = random.Random(seed)
    return [30 + amplitude * math.sin(2 * math.pi * i / DAY) + rng.gauss(0, 1) for i in range(days * DAY)]


@pytest.mark.parametrize("method", METHODS)
def test_with_seasonality_a_spike_small_against_the_daily_swing_is_caught(method):
    values = daily_sine(6, seed=17)
    spike = 5 * DAY + 216  # the daily trough, 18:00 UTC
    values[spike] += 15
    _, verdicts = run(values, params(method=method, lookback=timedelta(days=7), daily_seasonality=True))
    assert fired_at(verdicts) == [spike]
    assert "for this time of day (18:00" in verdicts[spike].explanation


@pytest.mark.parametrize("method", METHODS)
def test_without_seasonality_the_daily_swing_hides_the_same_spike_but_never_fires_either(method):
    values = daily_sine(6, seed=17)
    values[5 * DAY + 216] += 15
    _, verdicts = run(values, params(method=method, lookback=timedelta(days=7)))
    assert fired_at(verdicts) == []


def test_seasonality_falls_back_to_the_whole_lookback_until_a_time_of_day_has_enough_samples():
    _, verdicts = run(daily_sine(1, seed=18), params(lookback=timedelta(days=7), daily_seasonality=True))
    assert "only 12 samples at this time of day" in verdicts[-1].notes[0]
    assert "for this time of day" not in verdicts[-1].explanation


@pytest.mark.parametrize("method", METHODS)
def test_a_daily_cycle_with_seasonality_never_fires_over_a_week(method):
    _, verdicts = run(daily_sine(7, seed=19), params(method=method, lookback=timedelta(days=7),
                                                     daily_seasonality=True))
    assert fired_at(verdicts) == []


# ---------------------------------------------------------------- baseline drift after a change


@pytest.mark.parametrize("method", METHODS)
def test_after_a_declared_change_a_new_level_is_relearned_instead_of_firing_forever(method):
    p = params(method=method, relearn_after=12)
    values = noise(400, seed=20) + noise(300, seed=21, mean=60)
    change = T0 + 400 * STEP - timedelta(minutes=1)
    _, verdicts = run(values, p, change_at=change)
    assert fired_at(verdicts) == [400]  # the regression is flagged first: that is what a rollback is for
    relearned = verdicts[411]
    assert relearned.transition == "cleared" and not relearned.firing
    assert relearned.explanation.startswith("baseline re-learned: value sat at about 60")
    assert "for 12 evaluations after the change at 2024-03-05T09:19:00Z" in relearned.explanation
    assert relearned.notes == (relearned.explanation,)
    assert all(not v.firing for v in verdicts[411:])
    assert verdicts[-1].status == "ok" and verdicts[-1].baseline == pytest.approx(60, abs=1)


def test_the_median_relearn_drops_exactly_the_pre_change_samples():
    values = noise(400, seed=22) + noise(20, seed=23, mean=60)
    change = T0 + 400 * STEP
    state, verdicts = run(values, params(relearn_after=12), change_at=change)
    assert "dropped 277 pre-change samples" in verdicts[411].explanation  # 289 in the 1-day lookback, 12 kept
    assert all(t >= change.timestamp() for t, _ in state.samples)


def test_without_a_declared_change_a_median_baseline_follows_a_new_level_once_it_fills_half_the_lookback():
    values = noise(400, seed=24) + noise(300, seed=25, mean=60)
    _, verdicts = run(values, params())
    assert fired_at(verdicts) == [400]
    assert all(v.firing for v in verdicts[400:540])
    assert [i for i, v in enumerate(verdicts) if v.transition == "cleared"] == [544]  # 145 of 289 samples


def test_without_a_declared_change_an_ewma_baseline_keeps_firing_on_a_new_level():
    values = noise(400, seed=24) + noise(300, seed=25, mean=60)
    _, verdicts = run(values, params(method="ewma"))
    assert fired_at(verdicts) == [400]
    assert all(v.firing for v in verdicts[400:])


def test_a_change_whose_series_returns_to_normal_is_not_relearned():
    values = noise(400, seed=26) + noise(6, seed=27, mean=60) + noise(100, seed=28)
    _, verdicts = run(values, params(relearn_after=12), change_at=T0 + 400 * STEP)
    assert all("re-learned" not in v.explanation for v in verdicts)
    assert verdicts[-1].baseline == pytest.approx(10, abs=1)


def test_a_change_before_the_samples_at_a_new_level_is_only_relearned_once():
    p = params(relearn_after=5)
    values = noise(300, seed=29) + noise(100, seed=30, mean=60)
    _, verdicts = run(values, p, change_at=T0 + 300 * STEP)
    assert sum("re-learned" in v.explanation for v in verdicts) == 1


# ---------------------------------------------------------------- persistence and parameters


@pytest.mark.parametrize("method", METHODS)
def test_the_state_survives_a_json_round_trip_and_resumes_identically(method):
    p = params(method=method, daily_seasonality=True, for_=timedelta(minutes=10))
    values = daily_sine(2, seed=31) + [500.0]
    state, _ = run(values, p)
    saved = json.loads(json.dumps(state_to_json(state), allow_nan=False))
    restored = state_from_json(saved)
    assert restored == state
    after = T0 + len(values) * STEP
    assert step(restored, 501.0, p, after) == step(state, 501.0, p, after)


def test_an_unknown_state_version_is_refused():
    with pytest.raises(ValueError, match="unknown anomaly state version"):
        state_from_json({"version": 99})


def test_the_median_history_is_bounded_by_the_lookback():
    state, _ = run(noise(1000, seed=32), params(lookback=timedelta(hours=6)))
    assert len(state.samples) == 73  # 6h / 5m, both ends included


@pytest.mark.parametrize("fields, problem", [
    ({"threshold": 3, "clear_threshold": 4}, "clearThreshold <= threshold"),
    ({"min_samples": 2}, "minSamples must be at least 3"),
    ({"ewma_alpha": 0}, "ewmaAlpha"),
    ({"step": timedelta(0)}, "step"),
    ({"season_bucket": timedelta(hours=13)}, "seasonBucket"),
    ({"direction": "sideways"}, "direction"),
    ({"relearn_after": 0}, "relearnAfter"),
])
def test_parameters_that_make_no_sense_are_refused_with_a_reason(fields, problem):
    with pytest.raises(ValueError, match=problem):
        AnomalyParams(**fields)


def test_parameters_come_from_a_runbook_anomaly_trigger():
    trigger = AnomalyTrigger.model_validate({
        "query": "histogram_quantile(0.95, ...)", "description": "p95 latency", "unit": "ms",
        "baseline": {"method": "ewma", "lookback": "3d", "step": "1m", "dailySeasonality": True},
        "threshold": 5, "clearThreshold": 2, "direction": "both", "minSamples": 60, "for": "2m",
    })
    p = params_from_trigger(trigger, min_scale=5.0)
    assert (p.method, p.lookback, p.step, p.daily_seasonality) == ("ewma", timedelta(days=3), timedelta(minutes=1),
                                                                   True)
    assert (p.threshold, p.clear_threshold, p.direction, p.min_samples, p.for_) == (
        5, 2, "both", 60, timedelta(minutes=2))
    assert (p.description, p.unit, p.min_scale) == ("p95 latency", "ms", 5.0)


def test_naive_times_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        step(AnomalyState(), 1.0, params(), datetime(2024, 1, 1))
