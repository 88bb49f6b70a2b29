"""The sample service's metrics, driven by what its Deployment really runs.

KWOK pods run no containers, so this exporter plays the service: it watches
the Deployment's pods on the apiserver and turns them into request, error and
latency counters that Prometheus scrapes. Each Ready pod serves
`--rps-per-pod` requests per second with the error ratio and latency its own
pod spec asks for:

    image tag containing "bad"       50 % errors, 800 ms
    env SAMPLE_ERROR_RATIO=0.2       that error ratio (overrides the tag)
    env SAMPLE_LATENCY_MS=300        that latency

Traffic is `replicas x rps-per-pod`; the share that finds no Ready pod fails
with 503. So a bad rollout burns the SLO as its new pods become Ready, and a
rollback heals it as they are replaced: the signal follows the cluster.

    python -m e2e.sample_service --namespace demo --deployment web --port 9101
"""

from __future__ import annotations

import argparse
import threading
import time
from dataclasses import dataclass

from kubernetes import client, config
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

BAD_ERROR_RATIO = 0.5
BAD_LATENCY_S = 0.8
GOOD_LATENCY_S = 0.05
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass(frozen=True)
class PodBehaviour:
    error_ratio: float
    latency_s: float


def behaviour(pod_spec: client.V1PodSpec) -> PodBehaviour:
    """What one pod's spec makes it do (first container decides)."""
    container = pod_spec.containers[0]
    env = {e.name: e.value for e in container.env or [] if e.value is not None}
    bad = "bad" in (container.image or "").rsplit(":", 1)[-1]
    error_ratio = float(env.get("SAMPLE_ERROR_RATIO", BAD_ERROR_RATIO if bad else 0.0))
    latency = float(env["SAMPLE_LATENCY_MS"]) / 1000 if "SAMPLE_LATENCY_MS" in env else (
        BAD_LATENCY_S if bad else GOOD_LATENCY_S)
    return PodBehaviour(min(max(error_ratio, 0.0), 1.0), latency)


def is_ready(pod: client.V1Pod) -> bool:
    return pod.metadata.deletion_timestamp is None and any(
        c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


class SampleService:
    def __init__(self, api: client.ApiClient, namespace: str, deployment: str, rps_per_pod: float = 20.0,
                 registry: CollectorRegistry | None = None):
        self.apps, self.core = client.AppsV1Api(api), client.CoreV1Api(api)
        self.namespace, self.deployment, self.rps_per_pod = namespace, deployment, rps_per_pod
        self.registry = registry or CollectorRegistry()
        labels = ["namespace", "service", "code"]
        self.requests = Counter("sample_http_requests", "Requests served by the sample service", labels,
                                registry=self.registry)
        self.latency = Histogram("sample_http_request_duration_seconds", "Request latency of the sample service",
                                 ["namespace", "service"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.pods: list[PodBehaviour] = []
        self.desired = 0
        self._stop = threading.Event()

    def observe(self) -> None:
        """Re-read the Deployment and its Ready pods."""
        dep = self.apps.read_namespaced_deployment(self.deployment, self.namespace)
        selector = ",".join(f"{k}={v}" for k, v in (dep.spec.selector.match_labels or {}).items())
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=selector).items
        self.desired = dep.spec.replicas or 0
        self.pods = [behaviour(p.spec) for p in pods if is_ready(p)]

    def serve(self, seconds: float) -> None:
        """Count `seconds` worth of traffic as the pods seen last would serve it."""
        ids = {"namespace": self.namespace, "service": self.deployment}
        offered = max(self.desired, len(self.pods)) * self.rps_per_pod * seconds
        served = len(self.pods) * self.rps_per_pod * seconds
        for pod in self.pods:
            share = self.rps_per_pod * seconds
            self.requests.labels(**ids, code="500").inc(share * pod.error_ratio)
            self.requests.labels(**ids, code="200").inc(share * (1 - pod.error_ratio))
            for _ in range(max(1, round(share))):
                self.latency.labels(**ids).observe(pod.latency_s)
        self.requests.labels(**ids, code="503").inc(max(offered - served, 0.0))

    def run(self, tick: float = 0.25) -> None:
        last = time.monotonic()
        while not self._stop.is_set():
            try:
                self.observe()
            except Exception:  # the apiserver restarting: keep serving what was seen last
                pass
            now = time.monotonic()
            self.serve(now - last)
            last = now
            self._stop.wait(tick)

    def stop(self) -> None:
        self._stop.set()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--deployment", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rps-per-pod", type=float, default=20.0)
    parser.add_argument("--kubeconfig", default=None)
    args = parser.parse_args()
    service = SampleService(config.new_client_from_config(config_file=args.kubeconfig), args.namespace,
                            args.deployment, args.rps_per_pod)
    start_http_server(args.port, addr="127.0.0.1", registry=service.registry)
    service.run()


if __name__ == "__main__":
    main()
