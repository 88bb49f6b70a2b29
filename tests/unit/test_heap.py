"""The collector's freezes: what survives is out of its sight until a full collection lifts the freeze."""

from __future__ import annotations

import gc
import weakref

from remediator.controller import heap


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
