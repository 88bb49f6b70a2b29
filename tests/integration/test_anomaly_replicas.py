"""Two operator replicas without peering score the same anomaly: they name one incident, one Remediation.

Prometheus here is a stand-in on a real socket whose series is a pure function of the evaluation time, so
both replicas see exactly what a real Prometheus would show them at the instants they ask about.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from http.server import ThreadingHTTPServer

import pytest

from remediator.controller.anomalies import AnomalyWatcher
from remediator.controller.context import OperatorContext, Settings
from remediator.signals.prometheus import Prometheus
from tests.integration.test_operator_loop import NO_APPROVALS
from tests.support.http_stub import QuietHandler, answer_json
from tests.support.operator import OperatorProcess
from tests.support.waiting import wait_for

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
        self.queries = 0  # how many evaluations this Prometheus answered
        super().__init__(("127.0.0.1", 0), Handler)

    def __enter__(self):
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(QuietHandler):
    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        q = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        onset, labels = self.server.onset, {"service": "web"}
        self.server.queries += 1
        if url.path.endswith("/query_range"):
            start, end, step = float(q["start"]), float(q["end"]), float(q["step"])
            points = [[start + i * step, str(latency(start + i * step, onset))]
                      for i in range(int((end - start) / step) + 1)]
            data = {"resultType": "matrix", "result": [{"metric": labels, "values": points}]}
        else:
            at = float(q.get("time", time.time()))
            data = {"resultType": "vector", "result": [{"metric": labels, "value": [at, str(latency(at, onset))]}]}
        answer_json(self, {"status": "success", "data": data})


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
    stop = threading.Event()
    with FakePrometheus(onset=start + 4.5) as prom:
        a, b = (replica(kube_api, cluster.ns, prom.url, runbook) for _ in range(2))
        first = threading.Thread(target=run_until, args=(a, start + 10, stop))
        first.start()
        time.sleep(1.45)  # the second replica starts at another moment of the step
        run_until(b, start + 10, stop)
        first.join()

    made = cluster.remediations()
    assert len(made) == 1, [(r["metadata"]["name"], r["spec"]["signal"].get("startsAt")) for r in made]
    signal = made[0]["spec"]["signal"]
    assert signal["source"] == "anomaly"
    onset = int(start + 4.5) + 1  # the first whole second at or after the onset: the grid instant that fired
    assert signal["startsAt"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(onset)), signal


PEERING = "remediator-ha-test"


LIFETIME = 60  # kopf's peering lifetime (its default)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["exits", "is-killed"])
def test_only_the_active_replica_scores_anomalies_and_the_standby_takes_over_when_it_leaves(
        cluster, kubeconfig, tmp_path, how):
    cluster.custom.create_namespaced_custom_object("kopf.dev", "v1", cluster.ns, "kopfpeerings", {
        "apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": PEERING}})
    cluster.apply_runbook("latency", RUNBOOK)
    far = time.time() + 3600  # no anomaly: this test counts who asks Prometheus
    with FakePrometheus(far) as prom_a, FakePrometheus(far) as prom_b:
        replicas = [OperatorProcess(kubeconfig, [cluster.ns], tmp_path, env={"POD_ID": pod}, extra_args=[
            "--peering", PEERING, "--priority", str(priority), "--prometheus-url", prom.url]).start()
            for pod, priority, prom in (("replica-a", 200, prom_a), ("replica-b", 100, prom_b))]
        active = replicas[0]
        try:
            wait_for(lambda: prom_a.queries > 0, timeout=60, what="the active replica scoring the trigger")
            time.sleep(5)
            assert prom_b.queries == 0, "the standby asks Prometheus nothing"
            assert {"replica-a", "replica-b"} <= set(cluster.custom.get_namespaced_custom_object(
                "kopf.dev", "v1", cluster.ns, "kopfpeerings", PEERING).get("status") or {})

            if how == "exits":
                active.stop()  # a clean exit leaves the peering at once
            else:
                active.proc.kill()  # its record stays until it is stale: lastseen + lifetime
            left = time.monotonic()
            wait_for(lambda: prom_b.queries > 0, timeout=LIFETIME + 30, what="the standby taking over")
            took = time.monotonic() - left
            assert took < (10 if how == "exits" else LIFETIME + 5), f"took over after {took:.1f}s"
            print(f"standby took over the anomaly watch {took:.1f}s after the active replica {how}")
        finally:
            for op in replicas:
                op.stop()
