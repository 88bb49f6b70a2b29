"""A small client of the Prometheus HTTP API (`/api/v1/query`, `/api/v1/query_range`).

Three outcomes, kept apart because they mean different things to a verdict:
a value; no data (the query matched no series: the service may be idle); and
`PrometheusUnavailable` (no answer, 5xx, a broken body): nothing can be
concluded, so callers record "inconclusive", never success. A query Prometheus
rejects (400/422) is `PrometheusQueryError`: a mistake in a Runbook or SLO,
reported with Prometheus's own message.

Tenants write most of these queries (anomaly triggers, `verify.promql`,
SLO good/total) while the operator asks with its own credentials: given the
tenant's `namespace`, a query is confined to it first (core.promql_scope) or
not sent at all (`QueryRefused`). Every answer is bounded: over `max_bytes`
read or `max_series` series, the query is refused, so one Runbook cannot make
the operator hold a whole Prometheus in memory.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime

from ..core.match import promql_scope
from ..records.metrics import REFUSALS
from ..secrets import FileSecret

MAX_SERIES = 500  # series in one answer; a trigger meant "one series per target"
MAX_BYTES = 8 << 20  # bytes of one answer


class PrometheusUnavailable(Exception):
    """No usable answer: connection refused, timeout, 5xx or a body that is not the API's JSON."""


class PrometheusQueryError(Exception):
    """Prometheus understood the request and refused the query (bad PromQL, bad range)."""


class QueryRefused(PrometheusQueryError):
    """Not sent, or its answer not used: it reaches outside the tenant's namespace or is too big."""


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    points: tuple[tuple[float, float], ...]  # (unix seconds, value), oldest first


@dataclass
class Prometheus:
    url: str
    timeout: float = 5.0
    bearer_token: FileSecret | None = None
    max_series: int = MAX_SERIES
    max_bytes: int = MAX_BYTES

    def instant(self, query: str, at: datetime | None = None, namespace: str | None = None) -> list[Sample]:
        """`namespace`: the tenant's; the query is confined to it (or refused) before it is sent."""
        query = scoped(query, namespace)
        params = {"query": query}
        if at is not None:
            params["time"] = f"{at.timestamp():.3f}"
        data = self._get("query", params)
        if data.get("resultType") == "scalar":
            return [Sample({}, _number(data["result"][1]))]
        if data.get("resultType") != "vector":
            raise PrometheusQueryError(f"query returns a {data.get('resultType')}, not an instant vector: {query}")
        return [Sample(dict(item.get("metric") or {}), _number(item["value"][1]))
                for item in self._bounded(data["result"], query)]

    def value(self, query: str, at: datetime | None = None, namespace: str | None = None) -> float | None:
        """The query's single value; None when it matched nothing (or gave NaN, e.g. 0/0 with no traffic)."""
        samples = [s for s in self.instant(query, at, namespace) if not math.isnan(s.value)]
        if len(samples) > 1:
            raise PrometheusQueryError(
                f"query returns {len(samples)} series where one number is needed; aggregate it, "
                f"e.g. sum(...): {query}")
        return samples[0].value if samples else None

    def range(self, query: str, start: datetime, end: datetime, step_seconds: float,
              namespace: str | None = None) -> list[Series]:
        query = scoped(query, namespace)
        data = self._get("query_range", {"query": query, "start": f"{start.timestamp():.3f}",
                                         "end": f"{end.timestamp():.3f}", "step": f"{step_seconds:g}"})
        return [Series(dict(item.get("metric") or {}),
                       tuple((float(t), _number(v)) for t, v in item.get("values") or []))
                for item in self._bounded(data.get("result") or [], query)]

    def _bounded(self, result: list, query: str) -> list:
        if len(result) > self.max_series:
            REFUSALS.labels("query-too-large").inc()
            raise QueryRefused(f"query returns {len(result)} series, over the limit of {self.max_series}; "
                               f"aggregate or filter it: {query[:200]}")
        return result

    def _get(self, endpoint: str, params: dict[str, str]) -> dict:
        url = f"{self.url.rstrip('/')}/api/v1/{endpoint}?{urllib.parse.urlencode(params)}"
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        token = self.bearer_token.value() if self.bearer_token else None
        if token:
            request.add_header("Authorization", f"Bearer {token.decode()}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = response.read(self.max_bytes + 1)  # never more than the limit in memory
            if len(body) > self.max_bytes:
                REFUSALS.labels("query-too-large").inc()
                raise QueryRefused(f"Prometheus's answer is over the limit of {self.max_bytes} bytes; "
                                   f"narrow the query: {params.get('query', '')[:200]}")
        except urllib.error.HTTPError as e:
            body = e.read()
            if e.code in (400, 422):
                raise PrometheusQueryError(_error_text(body) or f"HTTP {e.code}") from None
            raise PrometheusUnavailable(f"Prometheus answered HTTP {e.code}: {_error_text(body)}") from None
        except (OSError, urllib.error.URLError) as e:  # refused, unreachable, timed out
            raise PrometheusUnavailable(f"Prometheus at {self.url} is unreachable: {_reason(e)}") from None
        try:
            payload = json.loads(body)
        except ValueError:
            raise PrometheusUnavailable("Prometheus answered with a body that is not JSON") from None
        if not isinstance(payload, dict) or payload.get("status") != "success" or "data" not in payload:
            raise PrometheusUnavailable(f"Prometheus answered without data: {_error_text(body)}")
        return payload["data"]


def scoped(query: str, namespace: str | None) -> str:
    if namespace is None:  # the operator's own query
        return query
    result = promql_scope.scope(query, namespace)
    if result.query is None:
        REFUSALS.labels("query-outside-namespace").inc()
        raise QueryRefused(f"not sent: {result.reason}")
    return result.query


def _number(text: str) -> float:
    return float(text)  # Prometheus sends "NaN", "+Inf", "-Inf" and decimals as strings; float() takes them all


def _error_text(body: bytes) -> str:
    try:
        payload = json.loads(body)
        return str(payload.get("error") or payload.get("status") or "")[:300]
    except ValueError:
        return body[:200].decode(errors="replace")


def _reason(e: BaseException) -> str:
    return str(getattr(e, "reason", None) or e)
