"""A new Remediation carries why it was made from its creation (an annotation the loop's first status write
copies to `status.matchReasons`): the intake writes nothing more, and the creation's own event ticks it, however
the create was answered."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest
from kubernetes.client.rest import ApiException

from remediator.api.models import Signal
from remediator.controller.handlers import Ticks
from remediator.controller.ingest import Intake, RunbookCache
from remediator.core.match import reasons
from tests.unit.test_workqueue import drain

RUNBOOK = {"metadata": {"name": "restart", "generation": 1}, "spec": {
    "triggers": [{"alert": {"matchers": [{"name": "alertname", "value": "HighErrorRate"}]}}],
    "target": {"kind": "Deployment", "name": "web"}, "steps": [{"name": "r", "action": "restartRollout"}]}}
SIGNAL = Signal(source="alertmanager", name="HighErrorRate", fingerprint="f1", starts_at="2026-12-01T10:00:00Z",
                labels={"alertname": "HighErrorRate", "namespace": "shop"})


class Apiserver:
    """The apiserver and the watch in one: a create that goes through delivers the creation's event (before the
    create call returns, as a watch may) whatever the client then sees of the answer. Any other write fails the
    test: the intake makes one."""

    def __init__(self, deliver, create_answer: BaseException | None = None):
        self.deliver, self.create_answer = deliver, create_answer
        self.created: list[dict] = []

    def create(self, kind, namespace, body):
        self.created.append(body)
        stored = {**body, "metadata": {**body["metadata"], "resourceVersion": "1"}}
        self.deliver("ADDED", stored)
        if self.create_answer is not None:
            raise self.create_answer
        return stored

    def list(self, kind, namespace):
        return []


def fire(create_answer=None, signal: Signal = SIGNAL, watch: bool = True) -> tuple[object, list, Apiserver]:
    """Ingest the signal with the given answer; what the ingest returned (or raised), what the queue ticks, and
    what was written. `watch`: the creation's watch event reaches the queue (else only the create's answer)."""
    async def go():
        runbooks = RunbookCache()
        runbooks.replace_namespace("shop", [RUNBOOK])
        ticks = Ticks(SimpleNamespace(serves=lambda ns: ns == "shop", settings=SimpleNamespace(tick_seconds=1.0)))
        apiserver = Apiserver(lambda kind, body: ticks.seen("Remediation", kind, body) if watch else None,
                              create_answer)
        intake = Intake(apiserver, runbooks)
        intake.created_listeners.append(lambda body: ticks.seen("Remediation", "ADDED", body))
        try:
            result = intake.firing(signal)
        except BaseException as e:  # noqa: BLE001
            result = e
        return result, await drain(ticks.queue), apiserver
    return asyncio.run(go())


def test_the_remediation_is_created_with_its_match_reasons_in_one_write_and_ticked_on_that_event():
    result, ticked, apiserver = fire()
    assert result.outcome == "created" and ticked == [("Remediation", "shop", result.name)]
    [body] = apiserver.created
    carried = reasons.from_text(body["metadata"]["annotations"][reasons.ANNOTATION])
    assert carried[0].startswith("Runbook shop/restart matches") and carried[-1] == "target is Deployment/shop/web"


def test_a_created_remediation_is_ticked_from_the_creates_answer_before_its_watch_event_comes():
    result, ticked, _ = fire(watch=False)
    assert result.outcome == "created" and ticked == [("Remediation", "shop", result.name)]


def test_what_of_a_huge_signal_was_cut_is_among_the_reasons_and_the_annotation_stays_bounded():
    huge = SIGNAL.model_copy(update={"labels": {**SIGNAL.labels, **{f"l{i}": "v" * 9000 for i in range(200)}}})
    result, _, apiserver = fire(signal=huge)
    text = apiserver.created[0]["metadata"]["annotations"][reasons.ANNOTATION]
    carried = json.loads(text)
    assert any(r.startswith("signal stored in part: kept 32 of") for r in carried)
    assert len(carried) <= reasons.MAX_REASONS and len(text) < reasons.MAX_REASONS * (reasons.MAX_REASON_CHARS + 8)


@pytest.mark.parametrize("answer", [
    ApiException(status=409, reason="AlreadyExists"),  # the create's retry after the first went through, or
    ApiException(status=504, reason="Timeout"),  # another replica's; went through, answered late
    TimeoutError("read timed out"),
], ids=["409", "504-after-commit", "timeout-after-commit"])
def test_a_create_that_went_through_but_answered_an_error_is_ticked_all_the_same(answer):
    result, ticked, apiserver = fire(create_answer=answer)
    assert ticked == [("Remediation", "shop", apiserver.created[0]["metadata"]["name"])], result


@pytest.mark.parametrize("text", ['{"not": "a list"}', "[1, 2]", "not json", '["ok", 3]', None, "[" * 5000,
                                  json.dumps(["x" * 1000] * 100)],
                         ids=["object", "numbers", "garbage", "mixed", "absent", "nested-deeper-than-the-parser",
                              "longer-than-the-intake-writes"])
def test_an_annotation_not_as_the_intake_writes_it_gives_no_reasons(text):
    assert reasons.from_text(text) == ()


def test_reasons_read_back_are_bounded_whatever_the_annotation_holds():
    edited = json.dumps(["x" * 600] * 90)
    read = reasons.from_text(edited)
    assert len(read) == reasons.MAX_REASONS and {len(r) for r in read} == {reasons.MAX_REASON_CHARS}


def test_the_operator_hands_each_remediation_its_intake_creates_to_the_tick_queue():
    import kopf

    from remediator import kube
    from remediator.controller import handlers
    from remediator.controller.context import OperatorContext, Settings
    ctx = OperatorContext(api=kube.ApiClient(), settings=Settings())
    ticks = Ticks(ctx)
    seen = []
    ticks.seen = lambda kind, event, body: seen.append((kind, event, body["metadata"]["name"]))
    handlers.register(kopf.OperatorRegistry(), ctx, ticks)

    for listener in ctx.intake.created_listeners:
        listener({"metadata": {"name": "am-1", "namespace": "shop", "resourceVersion": "1"}, "spec": {}})

    assert seen == [("Remediation", "ADDED", "am-1")]
