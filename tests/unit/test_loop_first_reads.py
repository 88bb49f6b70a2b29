"""A new Remediation's first reads (target, cause, step facts with the dry run) go out beside the intake's create,
and its first tick decides on them; they are used only for the very object the create made, as it made it."""

from __future__ import annotations

import contextlib
import contextvars
import copy
import threading
from datetime import timedelta
from types import SimpleNamespace

import pytest
from kubernetes.client.rest import ApiException
from prometheus_client import REGISTRY

from remediator.api.models import ObjectRef
from remediator.controller import handlers, reconcile
from remediator.controller.guard_facts import StepFacts
from remediator.controller.handlers import Ticks
from remediator.controller.ingest import Intake, RunbookCache
from remediator.core.plan.guards import GuardDecision, GuardVerdict
from tests.unit.fake_store import FakeStore, loop_on
from tests.unit.test_core_engine import LADDER, SPEC
from tests.unit.test_ingest_first_tick import RUNBOOK, SIGNAL
from tests.unit.test_loop import tick


def tick_on(loop: reconcile.Loop, seen: dict) -> float | None:
    """A tick on the object as the watch (or the create's answer) handed it over; its log context its own."""
    return contextvars.copy_context().run(loop.tick, seen)


def creating(store: FakeStore) -> tuple[dict, dict]:
    """(the body the intake sends, the object the apiserver makes of it)."""
    made = copy.deepcopy(store.object)
    made.pop("status")  # a CRD with a status subresource drops it on create
    store.object = copy.deepcopy(made)
    body = copy.deepcopy(made)
    for field in ("uid", "resourceVersion", "creationTimestamp"):
        body["metadata"].pop(field)
    return body, made


def first_reads_done(monkeypatch):
    """A Loop on a fresh store whose first reads are done; (store, loop, the object created, the answer to give)."""
    store = FakeStore(SPEC, LADDER)
    loop = loop_on(store, monkeypatch)
    body, made = creating(store)
    answer = loop.prefetch(body)
    loop.first_reads.result(timeout=5)
    return store, loop, made, answer


def test_the_first_ticks_reads_go_out_before_the_create_answers_and_the_tick_reads_nothing_again(monkeypatch):
    store, loop, made, answer = first_reads_done(monkeypatch)
    assert store.reads["target"] == 1 and store.reads["step_facts"] == 1, "read while the create is on its way"
    answer(made)
    tick_reads = dict(store.reads)
    tick_on(loop, made)

    assert store.reads == tick_reads, "the first tick decided on the reads made beside the create"
    assert store.status.phase == "Verifying" and len(store.calls) == 1
    assert [c.read for c in store.calls] == [store.target_body], "the action starts from the same read"


@pytest.mark.parametrize("answered", ["nothing-created", "another-uid", "written-since"])
def test_first_reads_are_not_used_for_an_object_the_create_did_not_make_as_it_is(monkeypatch, answered):
    store, loop, made, answer = first_reads_done(monkeypatch)
    if answered == "nothing-created":  # e.g. a 409: another replica's object of that name
        answer(None)
    elif answered == "another-uid":
        answer({**made, "metadata": {**made["metadata"], "uid": "uid-of-a-deleted-one"}})
    else:
        answer(made)
        made = {**made, "metadata": {**made["metadata"], "resourceVersion": "2"}}
        store.object = copy.deepcopy(made)

    tick_on(loop, made)

    assert store.reads["target"] == 2 and store.reads["step_facts"] == 2, "the tick read for itself"
    assert store.status.phase == "Verifying" and len(store.calls) == 1


def test_first_reads_that_failed_are_read_again_by_the_tick_which_then_acts(monkeypatch):
    store = FakeStore(SPEC, LADDER)
    loop = loop_on(store, monkeypatch)
    body, made = creating(store)
    failing, read = threading.Event(), store.target

    def target(ref):
        if not failing.is_set():
            failing.set()
            raise ConnectionError("apiserver went away")
        return read(ref)
    monkeypatch.setattr(store, "target", target)
    loop.prefetch(body)(made)
    assert isinstance(loop.first_reads.exception(timeout=5), ConnectionError)

    tick_on(loop, made)

    assert failing.is_set() and store.status.phase == "Verifying" and len(store.calls) == 1


@contextlib.contextmanager
def first_reads_pool_busy():
    """Every worker of the first reads' pool busy meanwhile: first reads started now stay queued."""
    gate = threading.Event()
    busy = [reconcile.FIRST_READS.submit(gate.wait, 5) for _ in range(reconcile.FIRST_READS._max_workers)]
    try:
        yield
    finally:
        gate.set()
        for f in busy:
            f.result()


def test_a_tick_does_not_wait_for_first_reads_still_queued_behind_others(monkeypatch):
    store = FakeStore(SPEC, LADDER)
    loop = loop_on(store, monkeypatch)
    body, made = creating(store)
    with first_reads_pool_busy():
        loop.prefetch(body)(made)
        tick_on(loop, made)
        assert store.status.phase == "Verifying" and store.reads["target"] == 1, "read by the tick, not queued"


def test_a_spec_pointing_outside_its_namespace_is_not_read_for_before_its_first_tick_refuses_it(monkeypatch):
    forged = SPEC.model_copy(update={"target": ObjectRef(kind="Deployment", name="db", namespace="bank")})
    store = FakeStore(forged, LADDER)
    loop = loop_on(store, monkeypatch)
    body, made = creating(store)

    loop.prefetch(body)(made)
    tick(loop)

    assert loop.first_reads is None and store.reads["target"] == store.reads["step_facts"] == 0
    assert store.status.phase == "Failed" and "refused" in store.status.reason


class Apiserver:
    def __init__(self, answer: BaseException | None = None):
        self.answer = answer

    def create(self, kind, namespace, body):
        if self.answer is not None:
            raise self.answer
        return {**body, "metadata": {**body["metadata"], "uid": "u1", "resourceVersion": "1"}}

    def list(self, kind, namespace):
        return []


def intake_with(apiserver: Apiserver) -> tuple[Intake, list]:
    runbooks = RunbookCache()
    runbooks.replace_namespace("shop", [RUNBOOK])
    intake, told = Intake(apiserver, runbooks), []

    def creating(body):
        told.append(("creating", body["metadata"]["name"], len(told)))
        return lambda created: told.append(("answered", created and created["metadata"]["uid"]))
    intake.creating_listeners.append(creating)
    return intake, told


@pytest.mark.parametrize("answer, outcome", [
    (None, "created"), (ApiException(status=409, reason="AlreadyExists"), "duplicate"),
    (ApiException(status=500, reason="etcd"), ApiException)])
def test_the_intake_tells_of_each_create_before_it_goes_out_and_then_of_its_answer(answer, outcome):
    intake, told = intake_with(Apiserver(answer))
    try:
        result = intake.firing(SIGNAL).outcome
    except ApiException as e:
        result = type(e)

    assert result == outcome
    assert [t[0] for t in told] == ["creating", "answered"]
    assert told[1][1] == ("u1" if answer is None else None)


def ticks_on(active: bool) -> Ticks:
    ticks = Ticks(SimpleNamespace(serves=lambda ns: True, settings=SimpleNamespace(tick_seconds=1.0)))
    ticks.active = lambda: active
    return ticks


def test_a_standby_replica_starts_no_first_reads_as_it_will_not_tick(monkeypatch):
    body = {"metadata": {"name": "am-1", "namespace": "shop"}, "spec": SPEC.wire()}
    ticks = ticks_on(active=False)
    ticks.creating(body)(None)
    assert ticks.loops == {}


def test_a_create_that_made_nothing_leaves_no_loop_behind(monkeypatch):
    body = {"metadata": {"name": "am-1", "namespace": "shop"}, "spec": SPEC.wire()}
    ticks = ticks_on(active=True)
    monkeypatch.setattr(reconcile.Loop, "load", lambda self, *a: (a[2], None, None))

    answer = ticks.creating(body)
    assert list(ticks.loops) == [("Remediation", "shop", "am-1")]
    answer(None)

    assert ticks.loops == {}


def test_an_existing_loop_gets_no_first_reads_as_its_object_exists(monkeypatch):
    body = {"metadata": {"name": "am-1", "namespace": "shop"}, "spec": SPEC.wire()}
    ticks = ticks_on(active=True)
    working = reconcile.Loop(ticks.ctx, "shop", "am-1")
    ticks.loops[("Remediation", "shop", "am-1")] = working

    ticks.creating(body)(None)

    assert working.first_reads is None and ticks.loops[("Remediation", "shop", "am-1")] is working


def test_the_operator_tells_its_tick_queue_of_each_create_before_it_goes_out():
    import kopf

    from remediator import kube
    from remediator.controller import handlers
    from remediator.controller.context import OperatorContext, Settings
    ctx = OperatorContext(api=kube.ApiClient(), settings=Settings())
    ticks = Ticks(ctx)
    handlers.register(kopf.OperatorRegistry(), ctx, ticks)
    assert ctx.intake.creating_listeners == [ticks.creating]


def test_first_reads_that_cannot_start_do_not_fail_the_intake():
    intake, told = intake_with(Apiserver())

    def broken(body):
        raise RuntimeError("can't start new thread")
    intake.creating_listeners.insert(0, broken)

    assert intake.firing(SIGNAL).outcome == "created"
    assert [t[0] for t in told] == ["creating", "answered"], "the other listeners are told all the same"


def test_an_alert_resent_about_an_incident_ended_under_its_name_starts_no_first_reads():
    intake, told = intake_with(Apiserver(ApiException(status=409, reason="AlreadyExists")))
    intake.incidents.handled_by = lambda key, starts_at: ended_name()  # it ended; its alert still fires

    assert intake.firing(SIGNAL).outcome == "duplicate"
    assert told == [], "the create answers 409: nothing to read for"


def ended_name() -> str:
    from remediator.core.engine import state
    return state.remediation_name(SIGNAL.source, SIGNAL.fingerprint, SIGNAL.starts_at, "shop")


def ticks_on_store(store: FakeStore, monkeypatch) -> Ticks:
    ticks = ticks_on(active=True)
    real = reconcile.Loop
    monkeypatch.setattr(reconcile, "utcnow", lambda: store.clock)
    monkeypatch.setattr(handlers.reconcile, "Loop", lambda ctx, ns, name: real(ctx, ns, name, store=store))
    return ticks


def test_two_deliveries_creating_one_name_start_one_set_of_first_reads(monkeypatch):
    store = FakeStore(SPEC, LADDER)
    ticks = ticks_on_store(store, monkeypatch)
    body, made = creating(store)
    other = copy.deepcopy(body)
    other["spec"]["target"]["name"] = "payments"

    class Racing(dict):
        def __contains__(self, key):  # a look-then-insert would let both through: each looked before the other
            return False
    ticks.loops = Racing()
    first = ticks.creating(body)
    second = ticks.creating(other)  # its create will answer 409
    [loop] = ticks.loops.values()
    first(made)
    tick_on(loop, made)
    second(None)

    assert [(c.target.name, c.read["metadata"]["name"]) for c in store.calls] == [("web", "web")]
    assert store.reads["target"] == 1


def test_a_failed_create_drops_its_first_reads_still_queued(monkeypatch):
    store = FakeStore(SPEC, LADDER)
    ticks = ticks_on_store(store, monkeypatch)
    body, _ = creating(store)
    with first_reads_pool_busy():
        answer = ticks.creating(body)
        [loop] = ticks.loops.values()
        queued = loop.first_reads
        answer(None)
    assert queued.cancelled() and ticks.loops == {}
    assert store.reads["target"] == store.reads["step_facts"] == 0, "nothing read for a Remediation never made"


def test_first_reads_are_not_started_past_the_bound_in_flight(monkeypatch):
    store = FakeStore(SPEC, LADDER)
    loop = loop_on(store, monkeypatch)
    body, made = creating(store)
    monkeypatch.setattr(reconcile, "FIRST_READS_IN_FLIGHT", threading.BoundedSemaphore(1))
    reconcile.FIRST_READS_IN_FLIGHT.acquire()

    loop.prefetch(body)(made)

    assert loop.first_reads is None
    tick_on(loop, made)
    assert store.reads["target"] == 1 and len(store.calls) == 1


def test_first_reads_grown_old_while_the_tick_waited_are_read_again(monkeypatch):
    store = FakeStore(SPEC, LADDER)
    loop = loop_on(store, monkeypatch)
    body, made = creating(store)
    loop.prefetch(body)(made)
    loop.first_reads.result(timeout=5)
    monkeypatch.setattr(reconcile, "FIRST_READS_FRESH", -1.0)  # the queue was backed up
    store.clock += timedelta(minutes=10)
    store.facts = StepFacts(guards=GuardVerdict(False, [GuardDecision("cooldown", False, "cooldown: ran 10s ago")]))

    tick_on(loop, made)

    assert store.reads["step_facts"] == 2 and store.calls == [], "decided on fresh guards: blocked"


def guard_count() -> float:
    return REGISTRY.get_sample_value("remediator_guard_decisions_total",
                                     {"guard": "cooldown", "verdict": "allowed"}) or 0.0


@pytest.mark.parametrize("used", [True, False], ids=["used", "read-again"])
def test_guard_decisions_are_counted_once_for_the_facts_a_tick_decides_on(monkeypatch, used):
    store = FakeStore(SPEC, LADDER)
    loop = loop_on(store, monkeypatch)
    body, made = creating(store)
    before = guard_count()
    loop.prefetch(body)(made if used else {**made, "metadata": {**made["metadata"], "uid": "uid-of-another"}})
    loop.first_reads.result(timeout=5)

    tick_on(loop, made)

    assert guard_count() - before == 1


def test_a_tick_on_the_watched_object_waits_for_the_creates_answer_and_uses_the_first_reads(monkeypatch):
    store, loop, made, answer = first_reads_done(monkeypatch)
    before = REGISTRY.get_sample_value("remediator_first_reads_total", {"outcome": "used"}) or 0.0

    ticking = threading.Thread(target=tick_on, args=(loop, made))  # the watch's ADDED came first
    ticking.start()
    ticking.join(0.1)
    assert ticking.is_alive(), "waits for the answer rather than reading again"
    answer(made)
    ticking.join(5)

    assert store.reads["target"] == 1 and len(store.calls) == 1
    assert REGISTRY.get_sample_value("remediator_first_reads_total", {"outcome": "used"}) == before + 1


def test_first_reads_that_cannot_start_for_a_create_that_fails_leave_no_loop_behind(monkeypatch):
    store = FakeStore(SPEC, LADDER)
    ticks = ticks_on_store(store, monkeypatch)
    intake, _ = intake_with(Apiserver(ApiException(status=500, reason="etcd")))
    intake.creating_listeners[:] = [ticks.creating]

    def no_thread(pool, fn, *args):
        raise RuntimeError("can't start new thread")
    monkeypatch.setattr(reconcile.logs, "submit_here", no_thread)

    with pytest.raises(ApiException):
        intake.firing(SIGNAL)
    assert ticks.loops == {}, "a later delivery of that name starts its first reads again"


def test_an_answer_that_raises_is_logged_and_the_others_still_hear_theirs():
    intake, told = intake_with(Apiserver())

    def raising(body):
        def answer(created):
            raise RuntimeError("boom")
        return answer
    intake.creating_listeners.insert(0, raising)

    assert intake.firing(SIGNAL).outcome == "created"
    assert [t[0] for t in told] == ["creating", "answered"]


def test_a_failed_creates_answer_keeps_the_loop_a_tick_has_taken_up(monkeypatch):
    store = FakeStore(SPEC, LADDER)
    loop_class = reconcile.Loop
    ticks = ticks_on_store(store, monkeypatch)
    body, made = creating(store)
    answer = ticks.creating(body)
    key = ("Remediation", "shop", made["metadata"]["name"])
    ticks.bodies[key] = made  # the object exists after all: the watch brought it, and a worker ticks it
    current = loop_class.current

    def answered_meanwhile(self, seen):
        answer(None)  # the create's retry answers 409 (its first attempt went through) as the tick starts
        return current(self, seen)
    monkeypatch.setattr(loop_class, "current", answered_meanwhile)

    assert contextvars.copy_context().run(ticks.process, key) is not None
    assert ticks.loops[key].last is not None, "the Loop that wrote is kept, with what it wrote"
