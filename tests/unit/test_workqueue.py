"""The work queue that drives Remediation ticks and SLO evaluations (controller/workqueue.py)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from remediator.controller.workqueue import WorkQueue, work


def run(coro, debug: bool = False):
    return asyncio.run(asyncio.wait_for(coro, 10), debug=debug)


async def drain(queue: WorkQueue) -> list:
    keys = []
    while len(queue):
        key = await queue.get()
        keys.append(key)
        queue.done(key)
    return keys


def test_a_key_added_many_times_while_waiting_is_processed_once():
    async def go():
        q = WorkQueue()
        for key in ("a", "b", "a", "a", "b"):
            q.add(key)
        return await drain(q)
    assert run(go()) == ["a", "b"]


def test_a_key_added_while_processed_is_not_handed_out_again_until_done_then_it_is():
    async def go():
        q = WorkQueue()
        q.add("a")
        key = await q.get()
        q.add("a")
        assert len(q) == 0, "never to a second worker while the first processes it"
        q.done(key)
        assert len(q) == 1, "processed again after, since it changed meanwhile"
        return await drain(q)
    assert run(go()) == ["a"]


def test_delayed_adds_coalesce_to_the_earliest_due_time():
    async def go():
        q = WorkQueue()
        q.add_after("a", 30)
        q.add_after("a", 0.05)
        q.add_after("a", 10)
        assert q.due_in("a") < 0.1
        started = time.monotonic()
        key = await q.get()
        q.done(key)
        waited = time.monotonic() - started
        await asyncio.sleep(0.1)
        return key, waited, len(q)
    key, waited, left = run(go())
    assert key == "a" and 0.03 < waited < 1, waited
    assert left == 0, "the later delays were folded into the earliest, not left to fire again"


def test_a_key_added_by_an_event_is_taken_before_keys_whose_delay_ran_out():
    async def go():
        q = WorkQueue()
        for key in ("probe-1", "probe-2"):
            q.add_after(key, 0.01)
        await asyncio.sleep(0.05)  # both delays ran out: they wait in the queue
        q.add("new-incident")
        q.add_after("at-once", 0)
        return await drain(q)
    assert run(go()) == ["new-incident", "at-once", "probe-1", "probe-2"]


def test_a_timed_key_added_again_by_an_event_is_queued_once():
    async def go():
        q = WorkQueue()
        q.add_after("a", 0.01)
        await asyncio.sleep(0.05)
        q.add("a")
        q.remove("b")
        return await drain(q)
    assert run(go()) == ["a"]


def test_taking_a_key_drops_its_pending_delay_so_the_processing_sets_the_next():
    async def go():
        q = WorkQueue()
        q.add_after("a", 0.2)
        q.add("a")  # an event: at once
        key = await q.get()
        q.done(key)
        await asyncio.sleep(0.3)
        return q.due_in("a"), len(q)
    assert run(go()) == (None, 0)


def test_removing_a_key_cancels_what_was_due_for_it():
    async def go():
        q = WorkQueue()
        q.add_after("gone", 0.05)
        q.add("gone2")
        q.remove("gone")
        q.remove("gone2")
        await asyncio.sleep(0.1)
        return len(q)
    assert run(go()) == 0


def test_failures_back_off_exponentially_per_key_and_a_success_starts_over():
    async def go():
        q = WorkQueue(base_delay=1, max_delay=5)
        delays = [q.add_rate_limited("a") for _ in range(5)]
        q.forget("a")
        return delays, q.add_rate_limited("a"), q.add_rate_limited("b")
    assert run(go()) == ([1, 2, 4, 5, 5], 1, 1)


def process_recording(results: dict, log: list, lock: threading.Lock, busy: set, overlaps: list, pause=0.02):
    def process(key):
        with lock:
            if key in busy:
                overlaps.append(key)
            busy.add(key)
            log.append(key)
        time.sleep(pause)
        with lock:
            busy.discard(key)
        outcome = results[key].pop(0) if results[key] else None
        if isinstance(outcome, Exception):
            raise outcome
        return outcome
    return process


async def run_workers(q: WorkQueue, process, until, workers=4, active=lambda: True, timeout=5.0):
    task = asyncio.create_task(work(q, process, workers=workers, active=active, idle=0.01))
    deadline = time.monotonic() + timeout
    while not until() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_workers_never_process_one_key_twice_at_once_even_when_events_keep_coming():
    log, busy, overlaps, lock = [], set(), [], threading.Lock()
    results = {k: [0.0] * 5 for k in "abc"}

    async def go():
        q = WorkQueue()
        process = process_recording(results, log, lock, busy, overlaps)

        async def events():
            for _ in range(50):
                for k in "abc":
                    q.add(k)
                await asyncio.sleep(0.002)
        feeder = asyncio.create_task(events())
        await run_workers(q, process, lambda: feeder.done() and all(not r for r in results.values()), workers=8)
    run(go())
    assert overlaps == []
    assert sorted(set(log)) == ["a", "b", "c"] and len(log) >= 15


def test_an_error_is_retried_with_backoff_not_dropped_and_none_finishes_the_key():
    log, busy, overlaps, lock = [], set(), [], threading.Lock()
    results = {"a": [RuntimeError("apiserver 503"), RuntimeError("again"), None]}
    times: list[float] = []

    async def go():
        q = WorkQueue(base_delay=0.05, max_delay=1)
        q.add("a")
        process = process_recording(results, log, lock, busy, overlaps, pause=0)

        def timed(key):
            times.append(time.monotonic())
            return process(key)
        await run_workers(q, timed, lambda: not results["a"])
        await asyncio.sleep(0.2)
        return len(q), q.due_in("a")
    assert run(go()) == (0, None), "finished: nothing more is due"
    assert log == ["a", "a", "a"]
    assert times[1] - times[0] >= 0.04 and times[2] - times[1] >= 0.09, "the second retry waits twice as long"


def test_the_returned_delay_schedules_the_next_processing():
    stamps: list[float] = []

    async def go():
        q = WorkQueue()
        q.add("a")

        def process(key):
            stamps.append(time.monotonic())
            return 0.2 if len(stamps) < 2 else None
        await run_workers(q, process, lambda: len(stamps) >= 2)
    run(go())
    assert 0.15 < stamps[1] - stamps[0] < 1


def test_a_standby_takes_no_key_and_works_them_once_active():
    processed: list = []
    active = threading.Event()

    async def go():
        q = WorkQueue()
        q.add("a")
        task = asyncio.create_task(work(q, lambda k: processed.append(k), workers=2, active=active.is_set,
                                        idle=0.01))
        await asyncio.sleep(0.2)
        before = list(processed)
        active.set()
        for _ in range(100):
            if processed:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        return before
    assert run(go()) == []
    assert processed == ["a"]


def ticks_for(namespaces=("shop",)):
    from types import SimpleNamespace

    from remediator.controller.handlers import Ticks
    ctx = SimpleNamespace(serves=lambda ns: ns in namespaces, settings=SimpleNamespace(tick_seconds=1.0))
    return Ticks(ctx)


def body(name, namespace="shop", phase=None, generation=1):
    return {"metadata": {"name": name, "namespace": namespace, "generation": generation},
            "status": {"phase": phase} if phase else {}}


def test_every_event_on_an_open_remediation_queues_a_tick_and_a_terminal_or_deleted_one_leaves():
    async def go():
        ticks = ticks_for()
        ticks.seen("Remediation", None, body("r1", phase="AwaitingApproval"))
        ticks.seen("Remediation", "MODIFIED", body("r2", phase="Acting"))
        ticks.seen("Remediation", "MODIFIED", body("elsewhere", namespace="other"))
        queued = await drain(ticks.queue)
        ticks.seen("Remediation", "MODIFIED", body("r1", phase="AwaitingApproval"))  # e.g. a vote
        again = await drain(ticks.queue)
        ticks.queue.add_after(("Remediation", "shop", "r1"), 5)
        ticks.seen("Remediation", "MODIFIED", body("r1", phase="Succeeded"))
        ticks.queue.add_after(("Remediation", "shop", "r2"), 5)
        ticks.seen("Remediation", "DELETED", body("r2", phase="Acting"))
        return queued, again, ticks.queue.due_in(("Remediation", "shop", "r1")), \
            ticks.queue.due_in(("Remediation", "shop", "r2"))
    queued, again, r1_due, r2_due = run(go())
    assert queued == [("Remediation", "shop", "r1"), ("Remediation", "shop", "r2")]
    assert again == [("Remediation", "shop", "r1")]
    assert (r1_due, r2_due) == (None, None)


def test_the_echo_of_a_loops_own_status_write_queues_no_tick_and_another_writers_event_does():
    from types import SimpleNamespace

    key = ("Remediation", "shop", "r1")

    def watched(version):
        return {**body("r1", phase="Verifying"), "spec": {}, "metadata": {
            "name": "r1", "namespace": "shop", "resourceVersion": version}}

    async def go():
        ticks = ticks_for()
        ticks.loops[key] = SimpleNamespace(wrote=lambda version: version == "8")  # the loop wrote version 8
        ticks.seen("Remediation", "MODIFIED", watched("8"))  # what the loop just wrote, back from the watch
        echo = await drain(ticks.queue)
        ticks.seen("Remediation", "MODIFIED", watched("9"))  # e.g. the signal resolved: ingest wrote
        return echo, await drain(ticks.queue), ticks.bodies[key]["metadata"]["resourceVersion"]
    echo, other, kept = run(go())
    assert echo == [], "the tick that wrote it scheduled the next one already"
    assert other == [key] and kept == "9"


def test_a_version_a_loop_already_had_queues_no_tick_and_an_older_copy_does_not_replace_the_newer():
    from types import SimpleNamespace

    key = ("Remediation", "shop", "r1")

    def watched(version):
        return {**body("r1"), "spec": {}, "metadata": {"name": "r1", "namespace": "shop", "resourceVersion": version}}

    async def go():
        ticks = ticks_for()
        ticks.seen("Remediation", "ADDED", watched("7"))  # the create's answer, handed over by the intake
        first = await drain(ticks.queue)
        ticks.loops[key] = SimpleNamespace(wrote=lambda version: False)  # its first tick runs
        ticks.seen("Remediation", "ADDED", watched("7"))  # the creation's watch event, a hop later
        ticks.seen("Remediation", "ADDED", watched("6"))  # an older copy (not one a watch sends, but say)
        known = await drain(ticks.queue)
        ticks.seen("Remediation", "MODIFIED", watched("9"))
        return first, known, await drain(ticks.queue), ticks.bodies[key]["metadata"]["resourceVersion"]
    first, known, newer, kept = run(go())
    assert first == [key] and known == [] and newer == [key] and kept == "9"


def test_an_slo_is_evaluated_again_at_once_on_a_spec_change_not_on_its_own_status_write():
    async def go():
        ticks = ticks_for()
        ticks.seen("ServiceLevelObjective", None, body("slo"))
        first = await drain(ticks.queue)
        ticks.seen("ServiceLevelObjective", "MODIFIED", body("slo"))  # the evaluation's status write
        status_only = await drain(ticks.queue)
        ticks.seen("ServiceLevelObjective", "MODIFIED", body("slo", generation=2))
        return first, status_only, await drain(ticks.queue)
    first, status_only, edited = run(go())
    assert first == edited == [("ServiceLevelObjective", "shop", "slo")]
    assert status_only == []


class FakeLoop:
    def __init__(self, done=False, moved_on=False, slack_retry_at=0.0):
        self.done, self.moved_on, self.slack_retry_at = done, moved_on, slack_retry_at

    def tick(self):
        return self.done


def in_seconds(seconds: float) -> str:
    from datetime import datetime, timedelta, timezone
    return (datetime.now(timezone.utc) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def test_a_replica_becoming_active_queues_every_open_remediation_and_slo_and_standing_by_forgets_its_work():
    from types import SimpleNamespace

    from remediator.controller.handlers import Ticks
    objects = {"Remediation": [body("open", phase="AwaitingApproval"), body("done", phase="Succeeded"),
                               body("elsewhere", namespace="other", phase="Acting")],
               "ServiceLevelObjective": [body("slo")]}
    listed: list = []

    def list_(kind, namespace=None):
        listed.append((kind, namespace))
        return [o for o in objects[kind] if namespace in (None, o["metadata"]["namespace"])]
    from remediator.controller.caches import Caches
    caches = Caches()  # what a replica knows of the Remediations: the caches' watch, not a LIST of them all
    caches.remediations.replace([{**o, "spec": {"runbook": {"name": "rb", "namespace": o["metadata"]["namespace"]},
                                                "target": {"kind": "Deployment", "name": "web"}}}
                                 for o in objects["Remediation"]])
    caches.primed.set()
    ctx = SimpleNamespace(serves=lambda ns: ns == "shop", resources=SimpleNamespace(list=list_), caches=caches,
                          settings=SimpleNamespace(tick_seconds=1.0, namespaces=("shop",)))
    ticks = Ticks(ctx)
    processed: list = []
    ticks.process = lambda key: processed.append(key)  # finished at once
    active = threading.Event()

    async def go():
        runner = asyncio.create_task(ticks.run(active.is_set, workers=2, every=0.01))
        await asyncio.sleep(0.1)
        assert processed == [] and listed == [], "a standby neither lists nor works"
        active.set()
        for _ in range(200):
            if len(processed) == 2:
                break
            await asyncio.sleep(0.01)
        active.clear()
        ticks.queue.add_after(("Remediation", "shop", "open"), 30)
        ticks.loops[("Remediation", "shop", "open")] = object()
        await asyncio.sleep(0.1)
        runner.cancel()
        return ticks.queue.due_in(("Remediation", "shop", "open")), dict(ticks.loops)
    due, loops = run(go())
    assert sorted(processed) == [("Remediation", "shop", "open"), ("ServiceLevelObjective", "shop", "slo")]
    assert listed == [("ServiceLevelObjective", "shop")], "SLOs per served namespace; Remediations from the caches"
    assert (due, loops) == (None, {}), "standing by: the other replica owns the work now"


def test_an_event_from_one_of_kopfs_executor_threads_reaches_the_queue_on_its_own_loop():
    ticks = ticks_for()
    ticks.ctx.resources = type("R", (), {"list": staticmethod(lambda kind, namespace=None: [])})()
    ticks.ctx.settings.namespaces = ("shop",)
    processed = threading.Event()
    ticks.process = lambda key: processed.set()

    async def go():
        runner = asyncio.create_task(ticks.run(lambda: True, workers=1, every=0.01))
        await asyncio.sleep(0.05)
        await asyncio.to_thread(ticks.seen, "Remediation", "MODIFIED", body("r1", phase="AwaitingApproval"))
        for _ in range(100):
            if processed.is_set():
                break
            await asyncio.sleep(0.01)
        runner.cancel()
    run(go(), debug=True)  # debug: a non-thread-safe call on the loop from another thread raises
    assert processed.is_set()
