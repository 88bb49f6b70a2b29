"""The anomaly watcher writes a Runbook's AnomalyBaselineReady condition sparingly: at once when readiness
changes, at most every BASELINE_REPORT_EVERY seconds while the sample count only grows, never when nothing
changed; other conditions on the Runbook are written back as they were read."""

from types import SimpleNamespace

import pytest

from remediator.api.models import AnomalyTrigger
from remediator.controller import anomalies
from remediator.controller.anomalies import AnomalyWatcher, TriggerWatch
from remediator.core.anomaly import anomaly


class FakeRunbooks:
    """The apiserver's side of `ctx.resources` for one Runbook: reads and status patches, counted."""

    def __init__(self):
        self.body = {"metadata": {"resourceVersion": "1"},
                     "status": {"conditions": [{"type": "Other", "status": "True"}]}}
        self.reads = self.writes = 0
        self.custom = SimpleNamespace(patch_namespaced_custom_object_status=self.patch)

    def get(self, kind, name, namespace=None):
        self.reads += 1
        return self.body

    def patch(self, group, version, namespace, plural, name, body):
        assert body["metadata"]["resourceVersion"] == self.body["metadata"]["resourceVersion"]
        self.writes += 1
        self.body = {"metadata": {"resourceVersion": str(self.writes + 1)}, "status": body["status"]}

    def condition(self) -> dict:
        return next(c for c in self.body["status"]["conditions"] if c["type"] == "AnomalyBaselineReady")


@pytest.fixture
def clock(monkeypatch):
    now = SimpleNamespace(t=1000.0)
    monkeypatch.setattr(anomalies.time, "monotonic", lambda: now.t)
    return now


def watcher_with(samples: int) -> tuple[AnomalyWatcher, FakeRunbooks, TriggerWatch]:
    resources = FakeRunbooks()
    watcher = AnomalyWatcher(SimpleNamespace(resources=resources))
    trigger = AnomalyTrigger(query="latency", description="p95 latency", min_samples=10)
    watch = TriggerWatch(trigger, anomaly.params_from_trigger(trigger))
    watcher.watches[("shop", "latency", 0)] = watch
    learn(watch, samples)
    return watcher, resources, watch


def learn(watch: TriggerWatch, samples: int) -> None:
    watch.series["s"] = anomaly.AnomalyState(samples=tuple((float(i), 1.0) for i in range(samples)))


def test_a_growing_baseline_is_written_at_most_every_ten_seconds_and_readiness_at_once(clock):
    watcher, runbook, watch = watcher_with(samples=3)
    watcher.report_baselines("shop", "latency")
    assert runbook.writes == 1 and runbook.condition()["status"] == "False"
    assert {"type": "Other", "status": "True"} in runbook.body["status"]["conditions"]

    learn(watch, 5)
    clock.t += 4
    watcher.report_baselines("shop", "latency")
    assert (runbook.reads, runbook.writes) == (1, 1), "a count that only grew waits for the next report"

    clock.t += 7
    watcher.report_baselines("shop", "latency")
    assert runbook.writes == 2 and "fewest 5 samples" in runbook.condition()["message"]

    learn(watch, 10)
    clock.t += 1
    watcher.report_baselines("shop", "latency")
    assert runbook.writes == 3 and runbook.condition()["status"] == "True", "readiness is written at once"
    assert {"type": "Other", "status": "True"} in runbook.body["status"]["conditions"]


def test_nothing_changed_means_no_read_and_no_write(clock):
    watcher, runbook, _ = watcher_with(samples=12)
    watcher.report_baselines("shop", "latency")
    for _ in range(5):
        clock.t += 30
        watcher.report_baselines("shop", "latency")
    assert (runbook.reads, runbook.writes) == (1, 1)
