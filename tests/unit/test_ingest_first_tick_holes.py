"""Orderings in which a new Remediation's creation event is passed over (its key is in `Intake.recording`) and no
match reasons' write follows to tick it: each must still end in a tick, or the incident waits for an event that
never comes (no requeue is scheduled for a Remediation that was never ticked)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from kubernetes.client.rest import ApiException

from remediator.controller.handlers import Ticks
from remediator.controller.ingest import Intake, RunbookCache
from tests.unit.test_ingest_first_tick import RUNBOOK, SIGNAL
from tests.unit.test_workqueue import drain


class Apiserver:
    """The apiserver and the watch in one: a create that goes through delivers the creation's event (before the
    create call returns, as a watch may) whatever the client then sees of the answer."""

    def __init__(self, deliver, create_answer: BaseException | None = None, patch_answer=None):
        self.deliver, self.create_answer, self.patch_answer = deliver, create_answer, patch_answer
        self.created = []

    def create(self, kind, namespace, body):
        self.created.append(body["metadata"]["name"])
        self.deliver("ADDED", {**body, "metadata": {**body["metadata"], "resourceVersion": "1"}})
        if self.create_answer is not None:
            raise self.create_answer

    def patch_status(self, kind, namespace, name, status):
        if self.patch_answer is not None:
            raise self.patch_answer
        return {}

    def list(self, kind, namespace):
        return []


def fire(create_answer=None, patch_answer=None, between=None) -> tuple[object, list, Intake]:
    """Ingest SIGNAL with the given answers; what the ingest returned (or raised) and what the queue ticks."""
    async def go():
        runbooks = RunbookCache()
        runbooks.replace_namespace("shop", [RUNBOOK])
        intake = Intake(None, runbooks)
        ticks = Ticks(SimpleNamespace(serves=lambda ns: ns == "shop", settings=SimpleNamespace(tick_seconds=1.0),
                                      intake=intake))
        ticks.loop = asyncio.get_running_loop()
        intake.unrecorded = ticks.wake
        intake.resources = Apiserver(lambda kind, body: ticks.seen("Remediation", kind, body), create_answer,
                                     patch_answer)
        if between is not None:
            between(intake)
        try:
            result = intake.firing(SIGNAL)
        except BaseException as e:  # noqa: BLE001
            result = e
        await asyncio.sleep(0)  # what was handed to the loop from "another thread"
        return result, await drain(ticks.queue), intake
    return asyncio.run(go())


@pytest.mark.parametrize("answer", [
    ApiException(status=409, reason="AlreadyExists"),  # the create's retry, after the first one went through
    ApiException(status=504, reason="Timeout"),  # went through, answered late: retries exhausted
    TimeoutError("read timed out"),
], ids=["retried-409", "504-after-commit", "timeout-after-commit"])
def test_a_create_that_went_through_but_answered_an_error_still_ticks_the_remediation(answer):
    result, ticked, intake = fire(create_answer=answer)
    assert ticked, f"{result}: the creation's event was passed over and nothing ticks the Remediation"
    assert intake.recording == set()


def test_a_remediation_another_replica_created_meanwhile_is_ticked_here_too():
    """Both replicas take the same alert (two Alertmanagers): the other one creates first and dies (or its
    status write fails) before writing the match reasons; here the create meets 409 while its event was
    passed over."""
    result, ticked, _ = fire(create_answer=ApiException(status=409, reason="AlreadyExists"))
    assert getattr(result, "outcome", None) == "duplicate"
    assert ticked == [("Remediation", "shop", result.name)]


def test_an_error_between_the_create_and_the_status_write_leaves_nothing_recorded_and_ticks():
    def failing_open(intake):
        def opened(key, name):
            raise RuntimeError("bookkeeping failed")
        intake.incidents.opened = opened
    result, ticked, intake = fire(between=failing_open)
    assert isinstance(result, RuntimeError)
    assert intake.recording == set(), "left recorded, every later event without match reasons is passed over"
    assert ticked, "created, never ticked"


@pytest.mark.parametrize("answer", [ApiException(status=404, reason="NotFound"), ConnectionError("reset")],
                         ids=["404", "connection-error"])
def test_a_status_write_that_fails_any_way_wakes_the_loop(answer):
    result, ticked, intake = fire(patch_answer=answer)
    assert ticked and intake.recording == set()
