"""caches.Feed reads the watch stream itself (one json.loads per line): what it does with every kind of line, how
it tracks the resourceVersion, and that the connection is released on every way out."""

from __future__ import annotations

import json
import logging
import threading
import time

import pytest
from kubernetes.client.rest import ApiException

from remediator.controller import targets
from remediator.controller.caches import Feed


def event(kind: str, name: str, version: str) -> dict:
    return {"type": kind, "object": {"metadata": {"name": name, "resourceVersion": version}}}


class Response:
    """A 200 watch response: raw chunks (lines, or parts of lines), then the end of the stream or an error."""

    status = 200

    def __init__(self, *chunks: bytes, then: BaseException | None = None, on_chunk=None):
        self.chunks, self.then, self.on_chunk = chunks, then, on_chunk
        self.closed = self.released = False

    def stream(self, amt=None, decode_content=False):
        for chunk in self.chunks:
            if self.on_chunk:
                self.on_chunk()
            yield chunk
        if self.then is not None:
            raise self.then

    def close(self):
        self.closed = True

    def release_conn(self):
        self.released = True


def line(e: dict) -> bytes:
    return json.dumps(e).encode() + b"\n"


def feed_of(response: Response, feed_class=Feed, **extra):
    seen: list = []
    asked: list = []

    def lister(watch=False, **kwargs):
        asked.append(kwargs)
        return response
    feed = feed_class("things", lister, lambda items: None, lambda kind, obj: seen.append((kind, obj["metadata"]["name"])),
                      resource_version="10", **extra)
    return feed, seen, asked


def test_a_bookmark_moves_the_version_on_and_is_not_an_object():
    response = Response(line(event("ADDED", "a", "11")), line({"type": "BOOKMARK", "object": {
        "kind": "Thing", "metadata": {"resourceVersion": "20"}}}))
    feed, seen, asked = feed_of(response)
    feed._watch_once(threading.Event())
    assert seen == [("ADDED", "a")] and feed.resource_version == "20"
    assert asked[0]["resource_version"] == "10" and asked[0]["allow_watch_bookmarks"] is True
    assert response.closed and response.released


@pytest.mark.parametrize("code", [500, 403, None])
def test_an_error_event_other_than_410_raises_with_its_code_and_keeps_the_version_of_the_last_event(code):
    status = {"kind": "Status", "status": "Failure", "reason": "InternalError", "message": "boom"}
    if code is not None:
        status["code"] = code
    response = Response(line(event("ADDED", "a", "11")), line({"type": "ERROR", "object": status}),
                        line(event("ADDED", "b", "12")))
    feed, seen, _ = feed_of(response)
    with pytest.raises(ApiException) as raised:
        feed._watch_once(threading.Event())
    assert raised.value.status == code and seen == [("ADDED", "a")] and feed.resource_version == "11"
    assert response.closed and response.released


@pytest.mark.parametrize("bad", [b'{"type": "ADDED", "object": {"metad', b"<html>502 Bad Gateway</html>"],
                         ids=["cut-json", "not-json"])
def test_an_undecodable_line_fails_the_watch_where_it_was_so_the_next_one_resumes_before_it(bad):
    response = Response(line(event("ADDED", "a", "11")), bad + b"\n", line(event("ADDED", "b", "12")))
    feed, seen, _ = feed_of(response)
    with pytest.raises(ValueError):
        feed._watch_once(threading.Event())
    assert seen == [("ADDED", "a")] and feed.resource_version == "11"
    assert response.closed and response.released


def test_a_line_split_across_chunks_and_a_last_line_cut_by_the_end_of_the_stream():
    whole = line(event("MODIFIED", "a", "11"))
    response = Response(whole[:7], whole[7:], line(event("ADDED", "b", "12"))[:-9])  # the last one never ends
    feed, seen, _ = feed_of(response)
    feed._watch_once(threading.Event())
    assert seen == [("MODIFIED", "a")] and feed.resource_version == "11", "the cut event is watched again"


def test_a_blank_line_between_events_is_passed_over_not_a_failed_watch():
    """A keep-alive newline (some proxies in front of the apiserver send them) is no event; failing the watch on it
    backed off up to 30 s each time, delaying every event behind it."""
    response = Response(line(event("ADDED", "a", "11")), b"\n", b"  \r\n", line(event("ADDED", "b", "12")))
    feed, seen, _ = feed_of(response)
    feed._watch_once(threading.Event())
    assert seen == [("ADDED", "a"), ("ADDED", "b")] and feed.resource_version == "12"


def test_a_watch_stopped_mid_stream_returns_at_the_next_line_and_releases_the_connection():
    stopped = threading.Event()
    response = Response(line(event("ADDED", "a", "11")), line(event("ADDED", "b", "12")))
    response.on_chunk = lambda: stopped.set() if response.chunks and len(seen) == 1 else None
    feed, seen, _ = feed_of(response)
    feed._watch_once(stopped)
    assert seen == [("ADDED", "a")] and response.closed and response.released


def test_a_stream_broken_mid_way_releases_the_connection_and_marks_the_probe_copies_not_live():
    held = targets.Objects(targets.compact_pod)
    response = Response(line(event("ADDED", "a", "11")), then=ConnectionResetError("reset by peer"))
    feed, seen, _ = feed_of(response, targets.WatchedFeed, objects=held)
    with pytest.raises(ConnectionResetError):
        feed._watch_once(threading.Event())
    assert held.live is False and feed.resource_version == "11" and response.closed and response.released


def test_an_expired_version_inside_the_stream_marks_the_probe_copies_not_live_until_listed_again():
    held = targets.Objects(targets.compact_pod)
    gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}}
    feed, _, _ = feed_of(Response(line(gone)), targets.WatchedFeed, objects=held)
    with pytest.raises(ApiException):
        feed._watch_once(threading.Event())
    assert held.live is False


def test_a_watch_that_ends_at_once_with_nothing_is_not_reopened_in_a_tight_loop(caplog):
    """A 200 that ends before any event (an apiserver shutting down, a proxy cutting watches): re-opened at once,
    every time, it spun a core and sent the apiserver a watch per millisecond."""
    stopped = threading.Event()
    opened = []

    def lister(watch=False, **kwargs):
        opened.append(time.monotonic())
        return Response()
    feed = Feed("things", lister, lambda items: None, lambda *_: None, resource_version="10")
    thread = threading.Thread(target=feed.follow, args=(stopped,), daemon=True)
    with caplog.at_level(logging.WARNING, logger="remediator.caches"):
        thread.start()
        time.sleep(1.5)
        stopped.set()
        thread.join(5)
    assert len(opened) <= 5, f"{len(opened)} watches in 1.5 s"


def test_probe_copies_are_not_live_while_a_watch_that_ended_at_once_waits_to_be_reopened():
    """Nothing is watched during that pause: the copies may miss changes, so probes read the apiserver."""
    held = targets.Objects(targets.compact_pod)
    stopped = threading.Event()

    def lister(watch=False, **kwargs):
        if len(opened) == 1:
            stopped.set()
        opened.append(1)
        return Response()
    opened: list = []
    feed = targets.WatchedFeed("pods/shop", lister, held.replace, held.observe, objects=held)
    feed.follow(stopped)
    assert held.live is False
