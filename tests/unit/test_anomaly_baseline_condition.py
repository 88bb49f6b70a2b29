"""The Runbook's AnomalyBaselineReady condition: how far each anomaly trigger's baseline has got."""

from datetime import UTC, datetime, timedelta

from remediator.core.anomaly import anomaly
from remediator.core.anomaly.anomaly_signals import TriggerBaseline, baseline_condition

NOW = datetime(2026, 12, 1, 17, 0, tzinfo=UTC)


def test_a_trigger_still_learning_holds_the_condition_false_and_says_how_many_samples_it_has():
    condition = baseline_condition([TriggerBaseline(0, "p95 latency", 10, (4, 12))], None, NOW)
    assert (condition.type, condition.status, condition.reason) == ("AnomalyBaselineReady", "False", "Learning")
    assert condition.message == "trigger 0 (p95 latency): 2 series, fewest 4 samples (ready at 10)"
    assert condition.last_transition_time == "2026-12-01T17:00:00Z"


def test_every_series_of_every_trigger_at_min_samples_makes_it_ready():
    triggers = [TriggerBaseline(0, "p95 latency", 10, (10,)), TriggerBaseline(1, "", 30, (31, 45))]
    condition = baseline_condition(triggers, None, NOW)
    assert (condition.status, condition.reason) == ("True", "Ready")
    assert condition.message == ("trigger 0 (p95 latency): 1 series, fewest 10 samples (ready at 10); "
                                 "trigger 1: 2 series, fewest 31 samples (ready at 30)")


def test_before_any_series_answered_readiness_is_unknown():
    condition = baseline_condition([TriggerBaseline(0, "errors", 10, ())], None, NOW)
    assert (condition.status, condition.reason, condition.message) == ("Unknown", "NoSeries",
                                                                       "trigger 0 (errors): no series yet")


def test_the_transition_time_moves_only_when_the_status_does():
    learning = baseline_condition([TriggerBaseline(0, "", 10, (3,))], None, NOW)
    still = baseline_condition([TriggerBaseline(0, "", 10, (7,))], learning, NOW + timedelta(seconds=8))
    ready = baseline_condition([TriggerBaseline(0, "", 10, (10,))], still, NOW + timedelta(seconds=14))
    assert still.last_transition_time == learning.last_transition_time == "2026-12-01T17:00:00Z"
    assert ready.last_transition_time == "2026-12-01T17:00:14Z"


def test_samples_learned_counts_what_the_baseline_holds_for_both_methods():
    for method in ("medianMad", "ewma"):
        params = anomaly.AnomalyParams(method=method, min_samples=5, step=timedelta(seconds=2),
                                       lookback=timedelta(minutes=2))
        state = anomaly.AnomalyState()
        for i in range(7):
            state, verdict = anomaly.step(state, 1.0 + i % 2, params, NOW + timedelta(seconds=2 * i))
        assert anomaly.samples_learned(state, params) == 7, method
