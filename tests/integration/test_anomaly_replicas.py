"""Two operator replicas without peering score the same anomaly: they name one incident, one Remediation.

Prometheus here is a stand-in on a real socket whose series is a pure function of the evaluation time, so
both replicas see exactly what a real Prometheus would show them at the instants they ask about.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from remediator.controller.anomalies import AnomalyWatcher
from remediator.controller.context import OperatorContext, Settings
from remediator.signals.prometheus import Prometheus
from tests.integration.test_operator_loop import NO_APPROVALS

pytestmark = pytest.mark.integration

RUNBOOK = {
    "triggers": [{"anomaly": {"query": 'sample_latency_seconds{service="web"}', "description": "latency",
                              "baseline": {"lookback": "30s", "step": "1s"}, "minSamples": 5}}],
    "target": {"kind": "Deployment", "name": "web"},
    "steps": [{"name": "restart", "action": "restartRollout", "risk": "low"}],
}


def latency(at: float, onset: float) -> float:
    """Flat with a little deterministic noise, then ten times higher from `onset` on."""
    return 10.0 if at >= onset else 1.0 + 0.01 * (int(at) % 5)


class FakePrometheus(ThreadingHTTPServer):
    def __init__(self, onset: float):
        self.onset = onset
        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        url = urllib.parse.urlparse(self.path)
        q = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        onset, labels = self.server.onset, {"service": "web"}
        if url.path.endswith("/query_range"):
            start, end, step = float(q["start"]), float(q["end"]), float(q["step"])
            points = [[start + i * step, str(latency(start + i * step, onset))]
                      for i in range(int((end - start) / step) + 1)]
            data = {"resultType": "matrix", "result": [{"metric": labels, "values": points}]}
        else:
            at = float(q.get("time", time.time()))
            data = {"resultType": "vector", "result": [{"metric": labels, "value": [at, str(latency(at, onset))]}]}
        body = json.dumps({"status": "success", "data": data}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def replica(kube_api, namespace: str, prometheus_url: str, runbook: dict) -> AnomalyWatcher:
    """What one replica has: its own Runbook cache, intake, incident memory and anomaly state."""
    ctx = OperatorContext(api=kube_api, settings=Settings(namespaces=(namespace,)),
                          prometheus=Prometheus(prometheus_url))
    meta = runbook["metadata"]
    ctx.runbooks.put(meta["namespace"], meta["name"], meta.get("generation"), runbook["spec"])
    return AnomalyWatcher(ctx)


def run_until(watcher: AnomalyWatcher, deadline: float, stop: threading.Event) -> None:
    while time.time() < deadline and not stop.is_set():
        watcher.evaluate_due()
        time.sleep(0.1)


def test_two_replicas_without_peering_scoring_one_anomaly_make_one_remediation(cluster, kube_api):
    cluster.apply_policy(NO_APPROVALS)
    runbook = cluster.apply_runbook("latency", RUNBOOK)
    start = time.time()
    prom = FakePrometheus(onset=start + 4.5)
    serving = threading.Thread(target=prom.serve_forever, daemon=True)
    serving.start()
    stop = threading.Event()
    try:
        a, b = (replica(kube_api, cluster.ns, prom.url, runbook) for _ in range(2))
        first = threading.Thread(target=run_until, args=(a, start + 10, stop))
        first.start()
        time.sleep(1.45)  # the second replica starts at another moment of the step
        run_until(b, start + 10, stop)
        first.join()
    finally:
        stop.set()
        prom.shutdown()

    made = cluster.remediations()
    assert len(made) == 1, [(r["metadata"]["name"], r["spec"]["signal"].get("startsAt")) for r in made]
    signal = made[0]["spec"]["signal"]
    assert signal["source"] == "anomaly"
    onset = int(start + 4.5) + 1  # the first whole second at or after the onset: the grid instant that fired
    assert signal["startsAt"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(onset)), signal
