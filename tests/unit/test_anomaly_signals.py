"""Anomaly verdicts become signals confined to the Runbook's namespace, with a stable identity."""

from datetime import UTC, datetime, timedelta

from remediator.api.models import AnomalyTrigger, Trigger
from remediator.core.anomaly import anomaly
from remediator.core.match import matching
from remediator.core.anomaly.anomaly_signals import anomaly_signal, foreign_namespace, series_key

TRIGGER = AnomalyTrigger.model_validate({"query": "p95_latency_seconds", "description": "p95 latency",
                                         "minSamples": 5, "baseline": {"lookback": "1h", "step": "1m"}})
T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def firing_state():
    params = anomaly.params_from_trigger(TRIGGER)
    state, verdict = anomaly.AnomalyState(), None
    for i, value in enumerate([0.1, 0.11, 0.1, 0.09, 0.1, 0.1, 0.1, 2.0]):
        state, verdict = anomaly.step(state, value, params, T0 + timedelta(minutes=i))
    return state, verdict


def test_a_series_from_another_namespace_is_refused_with_the_reason():
    assert foreign_namespace("team-a", {"namespace": "team-b"}).startswith("series is labelled namespace='team-b'")
    assert foreign_namespace("team-a", {"namespace": "team-a"}) is None
    assert foreign_namespace("team-a", {"job": "web"}) is None


def test_the_signal_carries_the_runbook_namespace_the_query_and_the_explanation():
    state, verdict = firing_state()
    assert verdict.firing
    signal = anomaly_signal("team-a", "latency", 0, TRIGGER, {"job": "web"}, state, verdict)
    assert signal.labels == {"job": "web", "namespace": "team-a"}
    assert signal.starts_at == "2026-11-25T12:07:00Z"
    assert "MADs above" in signal.summary
    assert matching.trigger_matches(Trigger(anomaly=TRIGGER), signal).matched


def test_series_keys_differ_by_series_and_trigger_but_not_by_label_order():
    assert series_key("ns", "rb", 0, {"a": "1", "b": "2"}) == series_key("ns", "rb", 0, {"b": "2", "a": "1"})
    assert series_key("ns", "rb", 0, {"a": "1"}) != series_key("ns", "rb", 1, {"a": "1"})
    assert series_key("ns", "rb", 0, {"a": "1"}) != series_key("ns", "rb", 0, {"a": "2"})
