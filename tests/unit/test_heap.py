import platform

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


def test_a_frozen_start_up_heap_is_out_of_full_collections_and_later_garbage_is_still_collected():
    import gc
    import weakref

    class Node:
        pass

    startup = Node()
    freed = weakref.ref(startup)
    try:
        assert heap.freeze_startup_heap() > 0
        assert not any(o is startup for o in gc.get_objects()), "a full collection would still walk it"
        del startup
        assert freed() is None, "a frozen object no longer referenced was kept"
        later = Node()
        later.me = later
        cycle = weakref.ref(later)
        del later
        gc.collect()
        assert cycle() is None, "a cycle made after the freeze was not collected"
    finally:
        gc.unfreeze()
