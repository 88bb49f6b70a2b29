import asyncio
import gc
import platform
import weakref

import pytest

from remediator.controller import heap


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the calls exist on glibc only")
def test_on_glibc_the_arena_cap_is_accepted():
    assert heap.limit_arenas(2) is True


def test_on_another_libc_the_heap_calls_are_skipped(monkeypatch):
    monkeypatch.setattr(heap.platform, "libc_ver", lambda: ("", ""))
    assert heap.glibc() is None
    assert heap.limit_arenas(2) is False
    assert heap.trim() is False


@pytest.fixture
def unfrozen_after():
    yield
    gc.unfreeze()


def test_what_start_up_built_is_frozen_so_a_full_collector_pass_no_longer_walks_it(unfrozen_after):
    start_up = [{"primed": i} for i in range(1_000)]  # e.g. a primed cache
    heap.freeze_startup()
    came_after = [{"event": i} for i in range(10)]
    walked = {id(o) for o in gc.get_objects()}
    assert id(start_up) not in walked and id(start_up[0]) not in walked
    assert id(came_after) in walked and gc.get_freeze_count() >= len(start_up)


def test_start_up_garbage_is_collected_before_the_freeze_not_kept_for_good(unfrozen_after):
    cycle: list = []
    cycle.append(cycle)
    dropped = weakref.ref(Holder(cycle))  # garbage only a collection frees
    del cycle
    heap.freeze_startup()
    assert dropped() is None


class Holder:
    def __init__(self, value):
        self.value, self.me = value, self


def test_the_operator_freezes_once_its_caches_are_primed_and_before_its_webhooks_listen(monkeypatch):
    from remediator import kube
    from remediator.controller import app
    from remediator.controller.context import OperatorContext, Settings
    order: list[str] = []
    monkeypatch.setattr(app.caches, "start", lambda ctx: order.append("primed") or 0)
    monkeypatch.setattr(app.heap, "freeze_startup", lambda: order.append("frozen") or 0)

    class Site:
        def __init__(self, runner, host, port):
            pass

        async def start(self):
            order.append("listening")

    monkeypatch.setattr(app.web, "TCPSite", Site)

    async def start_and_stop():
        runner = await app.serve_http(OperatorContext(api=kube.ApiClient(), settings=Settings()))
        await runner.cleanup()
    asyncio.run(start_and_stop())
    assert order[:3] == ["primed", "frozen", "listening"]


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the calls exist on glibc only")
def test_each_heap_trim_is_timed_because_allocating_threads_wait_for_it():
    from prometheus_client import REGISTRY
    before = REGISTRY.get_sample_value("remediator_heap_trim_seconds_count") or 0.0
    heap.trim()
    assert REGISTRY.get_sample_value("remediator_heap_trim_seconds_count") == before + 1
