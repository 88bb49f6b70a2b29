"""The Loop keeps its verification readings in the step record: a new Loop (a restarted operator) resumes the
window, and a stable window costs no status write until its verdict."""

from __future__ import annotations

import contextvars
from datetime import timedelta

from remediator.api.models import RunbookSpec
from remediator.core.engine import engine
from tests.unit.fake_store import FakeStore, loop_on
from tests.unit.test_core_engine import SPEC

WINDOW_60S = RunbookSpec.model_validate({
    "triggers": [{"alert": {"matchers": [{"name": "alertname", "value": "HighErrorRate"}]}}],
    "target": {"kind": "Deployment", "name": "web"},
    "steps": [{"name": "rollback", "action": "rollback", "risk": "low", "timeout": "5m",
               "verify": {"podsReady": {"window": "60s"}}}],
})


def test_a_new_loop_resumes_the_pods_ready_window_from_the_step_record_and_waiting_writes_nothing(monkeypatch):
    store = FakeStore(SPEC, WINDOW_60S)
    t0 = store.clock

    def tick() -> None:  # every tick a new Loop, as after a restart: nothing kept in memory
        contextvars.copy_context().run(loop_on(store, monkeypatch).tick)

    tick()  # plans and acts: Verifying from t0
    store.clock = t0 + timedelta(seconds=1)
    tick()  # the first reading
    began = engine.find_record(store.status, 0).readings
    assert [(r.at, r.holds) for r in began] == [("2026-11-25T12:00:01.000000Z", True)]
    written = len(store.writes)
    for second in range(2, 46):
        store.clock = t0 + timedelta(seconds=second)
        tick()
    assert len(store.writes) == written, "a stable window writes nothing while it waits"

    store.clock = t0 + timedelta(seconds=55)
    tick()
    assert store.status.phase == "Verifying"
    store.clock = t0 + timedelta(seconds=61)
    tick()
    assert store.status.phase == "Succeeded", store.status.reason
    assert "restarts unchanged for 1m" in store.status.reason
    assert engine.find_record(store.status, 0).finished_at == "2026-11-25T12:01:01Z"
