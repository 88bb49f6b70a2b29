"""The heap's glibc calls, and the collector's freezes: what survives is out of its sight until a full collection
lifts the freeze."""

from __future__ import annotations

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


class Node:
    pass


def a_cycle() -> tuple[Node, weakref.ref]:
    node = Node()
    node.self = node  # only the cyclic collector can free it
    return node, weakref.ref(node)


def test_a_frozen_survivor_is_out_of_the_collectors_sight_until_a_full_collection_frees_it():
    try:
        node, ref = a_cycle()
        assert heap.freeze_survivors() > 0
        del node
        gc.collect()
        assert ref() is not None, "frozen: a collection does not walk it"
        heap.freeze_survivors(full=True)
        assert ref() is None, "the full collection lifted the freeze and freed the dead cycle"
    finally:
        gc.unfreeze()


def test_cyclic_garbage_made_since_the_last_freeze_is_collected_before_freezing():
    try:
        node, ref = a_cycle()
        del node
        heap.freeze_survivors()
        assert ref() is None
    finally:
        gc.unfreeze()
