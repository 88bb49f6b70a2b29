"""Approval wait is observed once per decided request; the Grafana dashboard only names metrics that exist."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

import remediator.controller.webhooks  # noqa: F401  (registers the webhook and signal counters)
from remediator.api.models import ApprovalState, RemediationStatus
from remediator.records import metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "charts" / "remediator" / "files" / "grafana-dashboard.json"


def wait_sum(decision: str) -> tuple[float, float]:
    labels = {"decision": decision}
    return (REGISTRY.get_sample_value("remediator_approval_wait_seconds_count", labels) or 0.0,
            REGISTRY.get_sample_value("remediator_approval_wait_seconds_sum", labels) or 0.0)


def awaiting(decision: str | None = None, decided_at: str | None = None) -> RemediationStatus:
    return RemediationStatus(phase="AwaitingApproval", approval=ApprovalState(
        required=1, level="high", requested_at="2026-11-25T10:00:00Z", decision=decision, decided_at=decided_at))


@pytest.mark.parametrize("decision, phase", [("approved", "Acting"), ("denied", "Denied"), ("expired", "Expired")])
def test_leaving_an_approval_observes_the_wait_under_its_decision(decision, phase):
    before = awaiting()
    after = awaiting(decision, "2026-11-25T10:02:00Z").model_copy(update={"phase": phase})
    count, total = wait_sum(decision)
    metrics.observe_approval(before, after)
    assert wait_sum(decision) == (count + 1, total + 120)


def test_a_vote_that_leaves_the_request_open_or_a_later_tick_observes_nothing():
    decided = awaiting("approved", "2026-11-25T10:02:00Z")
    count = wait_sum("approved")
    metrics.observe_approval(awaiting(), decided)  # still AwaitingApproval: the loop has not moved on yet
    acting = decided.model_copy(update={"phase": "Acting"})
    metrics.observe_approval(acting, acting.model_copy(update={"phase": "Verifying"}))
    assert wait_sum("approved") == count


SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def registered_names() -> set[str]:
    """Series names of every registered family, including labelled ones with no children yet."""
    return {family.name + suffix for family in REGISTRY.collect() for suffix in SUFFIXES.get(family.type, ("",))}


def test_every_metric_the_dashboard_queries_is_one_remediator_exports():
    dashboard = json.loads(DASHBOARD.read_text())
    queried = {name for panel in dashboard["panels"] for target in panel["targets"]
               for name in re.findall(r"\bremediator_[a-z_]+", target["expr"])}
    missing = queried - registered_names()
    assert queried and not missing, f"dashboard queries metrics nobody exports: {sorted(missing)}"


def test_the_dashboard_shows_each_loop_metric_the_issue_asks_for():
    text = DASHBOARD.read_text()
    for name in ("remediator_remediations_total", "remediator_time_to_recover_seconds_bucket",
                 "remediator_approval_wait_seconds_bucket", "remediator_actions_total",
                 "remediator_webhook_requests_total", "remediator_signal_to_action_seconds_bucket",
                 "remediator_guard_decisions_total"):
        assert name in text, name


def test_each_collector_pass_is_timed_by_generation_as_a_cumulative_histogram():
    import gc

    from remediator.records.metrics import GarbageCollectorPauses
    pauses = GarbageCollectorPauses()
    gc.callbacks.append(pauses)
    try:
        gc.collect(2)
    finally:
        gc.callbacks.remove(pauses)
    [family] = list(pauses.collect())
    full = {sample.name.rsplit("_", 1)[-1] + sample.labels.get("le", ""): sample.value
            for sample in family.samples if sample.labels["generation"] == "2"}
    assert full["count"] == 1 and full["bucket+Inf"] == 1 and 0 < full["sum"] < 10
    buckets = [sample.value for sample in family.samples
               if sample.labels["generation"] == "2" and sample.name.endswith("_bucket")]
    assert buckets == sorted(buckets), "cumulative, as Prometheus reads a histogram"


@pytest.fixture
def gc_pauses_untimed_after():
    import gc

    from remediator.records import metrics
    yield metrics
    gc.callbacks.remove(metrics.GC_PAUSES)
    REGISTRY.unregister(metrics.GC_PAUSES)


def test_timing_the_collector_pauses_twice_exports_one_series_and_one_callback(gc_pauses_untimed_after):
    import gc

    metrics = gc_pauses_untimed_after
    metrics.time_gc_pauses()
    metrics.time_gc_pauses()
    gc.collect(2)
    assert gc.callbacks.count(metrics.GC_PAUSES) == 1
    assert REGISTRY.get_sample_value("remediator_gc_pause_seconds_count", {"generation": "2"}) >= 1


def test_a_pass_whose_start_was_not_seen_or_of_an_unknown_generation_is_not_counted():
    from remediator.records.metrics import GarbageCollectorPauses
    pauses = GarbageCollectorPauses()
    pauses("stop", {"generation": 2})  # timing began mid-pass
    pauses("start", {"generation": 2})
    pauses("stop", {})
    assert pauses.sums == {0: 0.0, 1: 0.0, 2: 0.0} and not any(map(any, pauses.counts.values()))


def test_the_operator_times_the_collector_from_its_start(monkeypatch):
    import argparse

    from remediator.controller import main
    parser = argparse.ArgumentParser()
    main.add_run_arguments(parser)

    def timed() -> None:
        raise SystemExit("timing the collector")  # and stop there: nothing after it is this test's
    monkeypatch.setattr(main.heap, "limit_arenas", lambda: True)
    monkeypatch.setattr(main.metrics, "time_gc_pauses", timed)
    with pytest.raises(SystemExit, match="timing the collector"):
        main.run(parser.parse_args([]))
