"""The Prometheus client over a real socket: tenant queries leave confined to their namespace, and answers
are bounded in series and bytes."""

from __future__ import annotations

import threading
import urllib.parse
from http.server import ThreadingHTTPServer

import pytest

from remediator.records.metrics import REFUSALS
from remediator.signals.prometheus import Prometheus, QueryRefused
from tests.support.http_stub import QuietHandler, answer_json


class StandIn:
    """A local HTTP server answering /api/v1/query with `series` vector samples (plus `padding` bytes)."""

    def __init__(self, series: int = 1, padding: int = 0):
        self.queries: list[str] = []
        stand_in = self

        class Handler(QuietHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                params = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                stand_in.queries.append(params["query"][0])
                result = [{"metric": {"namespace": "shop", "pod": f"p{i}"}, "value": [0, "1"]} for i in range(series)]
                answer_json(self, {"status": "success", "data": {"resultType": "vector", "result": result},
                                   "padding": "x" * padding})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stand_in():
    servers = []

    def make(**kw) -> StandIn:
        servers.append(StandIn(**kw))
        return servers[-1]
    yield make
    for server in servers:
        server.close()


def test_a_tenant_query_reaches_prometheus_confined_to_its_namespace(stand_in):
    server = stand_in()
    assert Prometheus(server.url).value('sum(rate(errors{job="web"}[5m]))', namespace="shop") == 1.0
    assert server.queries == ['sum(rate(errors{job="web",namespace="shop"}[5m]))']


def test_a_query_naming_another_namespace_is_never_sent(stand_in):
    server = stand_in()
    prom = Prometheus(server.url)
    before = refused("query-outside-namespace")
    with pytest.raises(QueryRefused, match="reads namespace 'payments'"):
        prom.instant('errors{namespace="payments"}', namespace="shop")
    with pytest.raises(QueryRefused, match="with =~"):
        prom.range('errors{namespace=~".+"}', *_window(), 60, namespace="shop")
    assert server.queries == []
    assert refused("query-outside-namespace") == before + 2, "each counted as a refused attempt"


def test_the_operators_own_queries_are_sent_as_written(stand_in):
    server = stand_in()
    Prometheus(server.url).instant("up")
    assert server.queries == ["up"]


def test_an_answer_with_more_series_than_the_limit_is_refused(stand_in):
    server = stand_in(series=50)
    before = refused("query-too-large")
    with pytest.raises(QueryRefused, match="returns 50 series, over the limit of 10"):
        Prometheus(server.url, max_series=10).instant("errors", namespace="shop")
    assert len(Prometheus(server.url, max_series=50).instant("errors", namespace="shop")) == 50
    assert refused("query-too-large") == before + 1


def test_an_answer_over_the_byte_limit_is_refused(stand_in):
    server = stand_in(padding=200_000)
    with pytest.raises(QueryRefused, match="over the limit of 100000 bytes"):
        Prometheus(server.url, max_bytes=100_000).instant("errors", namespace="shop")


def refused(reason: str) -> float:
    return REFUSALS.labels(reason)._value.get()


def _window():
    from datetime import UTC, datetime, timedelta
    end = datetime(2024, 5, 1, tzinfo=UTC)
    return end - timedelta(hours=1), end
