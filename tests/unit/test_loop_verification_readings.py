"""The Loop keeps its verification readings in the step record: a new Loop (a restarted operator) resumes the
window, and a stable window costs no status write until its verdict."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from remediator.api.models import RunbookSpec
from remediator.controller import reconcile
from remediator.core import engine
from remediator.verification.observations import Observation, PodObservation
from tests.unit.test_core_engine import SPEC, drive_to_acting
from tests.unit.test_loop_writes import FakeResources, remediation, rollback_done, tick_on  # noqa: F401

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
WINDOW_60S = RunbookSpec.model_validate({
    "triggers": [{"alert": {"matchers": [{"name": "alertname", "value": "HighErrorRate"}]}}],
    "target": {"kind": "Deployment", "name": "web"},
    "steps": [{"name": "rollback", "action": "rollback", "risk": "low", "timeout": "5m",
               "verify": {"podsReady": {"window": "60s"}}}],
})


def test_a_new_loop_resumes_the_pods_ready_window_from_the_step_record_and_waiting_writes_nothing(
        tick_on, monkeypatch):  # noqa: F811
    clock = [T0]
    monkeypatch.setattr(reconcile, "utcnow", lambda: clock[0])
    monkeypatch.setattr(reconcile.actions, "execute", rollback_done())
    ready = tuple(PodObservation(name=f"web-{i}", uid=f"uid-{i}", ready=True) for i in range(2))
    monkeypatch.setattr(reconcile.probes, "observe", lambda api, target: Observation(clock[0], target, True, None,
                                                                                      ready))
    resources = FakeResources(remediation("shop", SPEC, drive_to_acting(WINDOW_60S)), {
        "kind": "Runbook", "metadata": {"name": SPEC.runbook.name, "namespace": "shop", "resourceVersion": "1"},
        "spec": WINDOW_60S.wire()})

    def version() -> str:
        return resources.objects[("Remediation", "shop", "am-1")]["metadata"]["resourceVersion"]

    tick = tick_on(resources, "shop")  # every tick a new Loop, as after a restart: nothing kept in memory
    tick()  # acts: Verifying from T0
    clock[0] = T0 + timedelta(seconds=1)
    tick()
    began = engine.find_record(resources.status_of("shop", "am-1"), 0).readings
    assert [(r.at, r.holds) for r in began] == [("2026-11-25T12:00:01.000000Z", True)]
    written = version()
    for second in range(2, 46):
        clock[0] = T0 + timedelta(seconds=second)
        tick()
    assert version() == written, "a stable window writes nothing while it waits"

    clock[0] = T0 + timedelta(seconds=55)
    tick()
    assert resources.status_of("shop", "am-1").phase == "Verifying"
    clock[0] = T0 + timedelta(seconds=61)
    tick()
    stored = resources.status_of("shop", "am-1")
    assert stored.phase == "Succeeded", stored.reason
    assert "restarts unchanged for 1m" in stored.reason
    assert engine.find_record(stored, 0).finished_at == "2026-11-25T12:01:01Z"
