"""Prometheus metrics of the loop (served on /metrics). Conventional names, base units (seconds)."""

from __future__ import annotations

import bisect
import contextlib
import gc
import re
import time
import urllib.parse

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import HistogramMetricFamily

from ..api.models import RemediationStatus
from ..core.durations import parse_time

REMEDIATIONS = Counter("remediator_remediations_total", "Remediations that reached an outcome",
                       ["runbook", "outcome"])
TIME_TO_RECOVER = Histogram("remediator_time_to_recover_seconds", "From the signal's start to verified recovery",
                            ["runbook"], buckets=(15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 86400))
RETENTION_DELETES = Counter("remediator_retention_deletions_total",
                            "Ended Remediations the retention sweep deleted (deleted), or left because they changed "
                            "since listed (changed) or were gone already (gone)", ["result"])
RETENTION_SWEEP_SECONDS = Histogram("remediator_retention_sweep_seconds",
                                    "How long each retention sweep took, its deletes included")
HEAP_TRIMS = Histogram("remediator_heap_trim_seconds",
                       "How long each malloc_trim took: it holds the allocator's lock, so a thread that allocates "
                       "meanwhile waits", buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1))
ACTIONS = Counter("remediator_actions_total", "Action calls by action and result", ["action", "result"])
SIGNAL_TO_ACTION = Histogram("remediator_signal_to_action_seconds",
                             "From a Remediation's first plan (its first tick after ingest) to its first action applied",
                             buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300))
FIRST_READS = Counter("remediator_first_reads_total",
                      "A new Remediation's first reads, made beside its create, by what its first tick did with them: "
                      "used, or read again (another object, written since, failed, still queued, over a second old, or the "
                      "create's answer not back within a second)",
                      ["outcome"])
GUARD_DECISIONS = Counter("remediator_guard_decisions_total", "Guard decisions by guard and verdict",
                          ["guard", "verdict"])
APPROVAL_WAIT = Histogram("remediator_approval_wait_seconds",
                          "From an approval request to its decision (approved, denied, expired)", ["decision"],
                          buckets=(10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 86400))


def observe_approval(before: RemediationStatus, after: RemediationStatus) -> None:
    """Once per request: when the Remediation leaves AwaitingApproval with the request decided."""
    request = after.approval
    if before.phase != "AwaitingApproval" or after.phase == "AwaitingApproval" or request is None:
        return
    if not (request.decision and request.requested_at and request.decided_at):
        return
    waited = parse_time(request.decided_at) - parse_time(request.requested_at)
    APPROVAL_WAIT.labels(request.decision).observe(max(0.0, waited.total_seconds()))
REFUSALS = Counter("remediator_refusals_total",
                   "Refused attempts: unauthenticated or rate-limited webhook calls, forged Slack callbacks, stale votes, "
                   "signals aimed at another namespace, actions the tenant's ServiceAccount may not do",
                   ["reason"])
APISERVER_REQUESTS = Counter("remediator_apiserver_requests_total",
                             "Requests the operator's kubernetes client made to the apiserver (kopf's own watches "
                             "are not counted)", ["verb", "resource"])

API_PATH = re.compile(r"^/apis?/(?:v1|[^/]+/[^/]+)/(?P<rest>[^?]*)")


def request_labels(method: str, url: str) -> tuple[str, str]:
    """(verb, resource) of a request as RBAC names them: GET of a collection is list (watch with ?watch=),
    `namespaces/<ns>/` is scope, not resource; a subresource shows as `remediations/status`."""
    path = urllib.parse.urlsplit(url)
    found = API_PATH.match(path.path)
    parts = found.group("rest").strip("/").split("/") if found else []
    if len(parts) >= 3 and parts[0] == "namespaces":
        parts = parts[2:]
    resource = "/".join(parts[0:1] + parts[2:3]) or "other"
    method = method.upper()
    if method == "GET":
        verb = "get" if len(parts) > 1 else ("watch" if "watch=true" in path.query.lower() else "list")
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method, method.lower())
    return verb, resource


def count_requests(api):
    """Count every request `api` (a kubernetes ApiClient) sends, by verb and resource; returns `api`."""
    rest = api.rest_client
    if getattr(rest, "counted", False):
        return api
    send = rest.request

    def request(method, url, *args, **kwargs):
        APISERVER_REQUESTS.labels(*request_labels(method, url)).inc()
        return send(method, url, *args, **kwargs)

    rest.request = request
    rest.counted = True
    return api


class GarbageCollectorPauses:
    """`remediator_gc_pause_seconds{generation}`: how long each pass of Python's cyclic collector held up every
    Python thread (a full pass, generation 2, walks the whole heap). Counted in plain numbers inside the gc callback,
    which runs wherever an allocation set it off, possibly inside a metric's own non-reentrant lock: a
    prometheus_client metric observed there could deadlock, so the histogram is built at scrape time."""

    BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)

    def __init__(self) -> None:
        self.started = 0.0
        self.counts = {generation: [0] * (len(self.BUCKETS) + 1) for generation in range(3)}
        self.sums = dict.fromkeys(range(3), 0.0)

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self.started = time.perf_counter()
            return
        started, self.started = self.started, 0.0
        generation = info.get("generation")
        if not started or generation not in self.counts:  # a stop whose start came before us, or an unknown pass
            return
        pause = time.perf_counter() - started
        self.sums[generation] += pause
        self.counts[generation][bisect.bisect_left(self.BUCKETS, pause)] += 1  # the first bucket with pause <= le

    def collect(self):
        family = HistogramMetricFamily("remediator_gc_pause_seconds",
                                       "Pauses of the cyclic garbage collector, by generation (other Python threads wait)",
                                       labels=["generation"])
        for generation, counts in self.counts.items():
            cumulative, total = [], 0
            for le, count in zip((*map(str, self.BUCKETS), "+Inf"), counts):
                total += count
                cumulative.append((le, total))
            family.add_metric([str(generation)], cumulative, self.sums[generation])
        yield family


GC_PAUSES = GarbageCollectorPauses()


def time_gc_pauses() -> None:
    """Start timing the collector's passes; asking again changes nothing."""
    if GC_PAUSES not in gc.callbacks:
        gc.callbacks.append(GC_PAUSES)
    with contextlib.suppress(ValueError):  # registered already: prometheus_client refuses a duplicate series
        REGISTRY.register(GC_PAUSES)
