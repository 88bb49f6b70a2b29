"""Caches stopped by the suite after each test (conftest's in_process_watches_end_with_the_test) and at exit."""

from __future__ import annotations

import json
import logging
import threading
from types import SimpleNamespace

from remediator.controller import caches


def fake_feed(lists: list, watched: threading.Event):
    def lister(watch=False, **kwargs):
        if not watch:
            lists.append(kwargs)
            return SimpleNamespace(data=json.dumps({"metadata": {"resourceVersion": "5"},
                                                    "items": [{"metadata": {"name": "p"}}]}))
        watched.set()
        raise ConnectionError("no watch in a unit test")
    return caches.Feed("things", lister, lambda items: None, lambda *_: None)


def test_caches_the_suite_stopped_after_a_test_are_primed_and_followed_again_by_their_next_reader(monkeypatch):
    """A context that outlives one test (module- or session-scoped, or an operator run in-process across tests):
    the suite stops its watch threads after the first test; its next reader must not read a cache frozen then."""
    lists: list = []
    watched = threading.Event()
    monkeypatch.setattr(caches, "feeds", lambda ctx: [fake_feed(lists, watched)])
    ctx = SimpleNamespace(caches=caches.Caches())
    caches.ensure(ctx)
    assert watched.wait(5) and len(lists) == 1
    caches.park_all()  # the suite, after a test (conftest)
    watched.clear()
    caches.ensure(ctx)  # the next test reads it
    assert len(lists) == 2, "read as the first test left it: nothing re-listed"
    assert watched.wait(5), "no watch follows it any more"
    assert any(t.is_alive() for t in ctx.caches.threads)
    caches.stop_all()


def test_a_relist_failing_once_its_caches_are_stopped_logs_nothing(caplog):
    """Quiet once stopped, like the watch itself: a daemon thread writing to stderr while the interpreter exits
    aborts it."""
    stopped = threading.Event()

    def lister(**kwargs):
        stopped.set()  # stopped while the LIST is under way; the LIST then fails (the connection pool closed)
        raise ConnectionError("pool closed")
    feed = caches.Feed("things", lister, lambda items: None, lambda *_: None)
    with caplog.at_level(logging.WARNING, logger="remediator.caches"):
        feed._relist(stopped)
    assert not caplog.records, [r.getMessage() for r in caplog.records]


def test_probe_watches_of_a_context_dropped_before_the_suite_stops_them_are_stopped_too(monkeypatch):
    """A test that only probed (targets.of, no caches.start) and let its context go: the watch threads hold
    nothing of its Caches, so the WeakSet forgot it, and neither the suite nor the exit stopped its watches."""
    import gc

    from remediator.controller import targets

    pod = {"metadata": {"name": "web-1", "namespace": "shop"}, "status": {"phase": "Running"}}
    watching = threading.Event()

    def lister(api, kind, namespace):
        def call(watch=False, **kwargs):
            if not watch:
                return SimpleNamespace(data=json.dumps({"metadata": {"resourceVersion": "7"}, "items": [pod]}))
            watching.set()
            raise ConnectionError("no watch in a unit test")
        return call
    monkeypatch.setattr(targets, "lister", lister)
    ctx = SimpleNamespace(api=None, caches=caches.Caches())
    watches = targets.of(ctx)
    assert watches.pods("shop") is not None and watching.wait(5)
    namespace = watches._namespaces["shop"]
    del ctx, watches
    gc.collect()
    caches.park_all()  # the suite, after the test
    assert namespace.stopped.is_set(), "its watch thread runs on, for the rest of the session"
