"""A Remediation's first tick waits for the match reasons the ingest writes right after creating it: a tick on
the creation's event would plan, meet a 409 from that write, read again and plan a second time."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from kubernetes.client.rest import ApiException

from remediator.api.models import Signal
from remediator.controller.handlers import Ticks
from remediator.controller.ingest import Intake, RunbookCache
from tests.unit.test_workqueue import drain

RUNBOOK = {"metadata": {"name": "restart", "generation": 1}, "spec": {
    "triggers": [{"alert": {"matchers": [{"name": "alertname", "value": "HighErrorRate"}]}}],
    "target": {"kind": "Deployment", "name": "web"}, "steps": [{"name": "r", "action": "restartRollout"}]}}
SIGNAL = Signal(source="alertmanager", name="HighErrorRate", fingerprint="f1", starts_at="2026-12-01T10:00:00Z",
                labels={"alertname": "HighErrorRate", "namespace": "shop"})


class Resources:
    """Records what the ingest writes; the status write fails when told to."""

    def __init__(self, intake_of, fail: bool):
        self.intake_of, self.fail = intake_of, fail
        self.created, self.waiting_while_written = [], []

    def create(self, kind, namespace, body):
        self.created.append(body["metadata"]["name"])

    def patch_status(self, kind, namespace, name, status):
        self.waiting_while_written.append((namespace, name) in self.intake_of().recording)
        if self.fail:
            raise ApiException(status=500, reason="etcd hiccup")
        return {}


def intake(fail: bool = False) -> tuple[Intake, list]:
    woken: list = []
    holder: dict = {}
    runbooks = RunbookCache()
    runbooks.replace_namespace("shop", [RUNBOOK])
    made = Intake(Resources(lambda: holder["intake"], fail), runbooks)
    made.unrecorded = lambda namespace, name: woken.append((namespace, name))
    holder["intake"] = made
    return made, woken


@pytest.mark.parametrize("fail", [False, True], ids=["written", "write-failed"])
def test_the_loop_waits_for_the_match_reasons_and_is_woken_when_they_cannot_be_written(fail):
    made, woken = intake(fail)
    result = made.firing(SIGNAL)
    assert result.outcome == "created" and made.resources.created == [result.name]
    assert made.resources.waiting_while_written == [True], "the creation's event is passed over meanwhile"
    assert made.recording == set(), "no longer once written (or not)"
    assert woken == ([("shop", result.name)] if fail else []), "no event follows a failed write: woken instead"


def test_a_remediation_whose_match_reasons_are_being_written_is_ticked_on_that_writes_event_not_its_creations():
    async def go():
        ticks = Ticks(SimpleNamespace(serves=lambda ns: ns == "shop", settings=SimpleNamespace(tick_seconds=1.0),
                                      intake=SimpleNamespace(recording={("shop", "r1")})))
        created = {"metadata": {"name": "r1", "namespace": "shop", "resourceVersion": "1"}, "spec": {}}
        ticks.seen("Remediation", "ADDED", created)
        passed_over = await drain(ticks.queue)
        ticks.seen("Remediation", "MODIFIED", {**created, "status": {"matchReasons": ["alertname matched"]}})
        return passed_over, await drain(ticks.queue), ticks.bodies[("Remediation", "shop", "r1")]
    passed_over, ticked, body = asyncio.run(go())
    assert passed_over == [] and ticked == [("Remediation", "shop", "r1")]
    assert body["status"]["matchReasons"] == ["alertname matched"], "the tick decides on the written one"


def test_waking_a_stopped_operators_loop_is_no_error_for_the_ingest_that_asks():
    loop = asyncio.new_event_loop()
    ticks = Ticks(SimpleNamespace(serves=lambda ns: True, settings=SimpleNamespace(tick_seconds=1.0)))
    ticks.loop = loop
    loop.close()
    ticks.wake("shop", "r1")  # the answer to the sender must not become a 500 while the operator stops
