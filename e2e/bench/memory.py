"""Operator memory with many pods and Runbooks watched, and its growth over a soak.

    python -m e2e.bench.memory [--pods 10000] [--runbooks 1000] [--soak 3600] [--output FILE]

On the real control plane: the operator watches the whole cluster; the bench
creates `--pods` KWOK pods (bare pods, created in parallel, spread over ten
namespaces: KWOK marks them Running and Ready) and `--runbooks` Runbooks, then
samples the operator's RSS every few seconds for `--soak` seconds while a
slice of the pods churns (deleted and re-created each minute) and a
crash-looping pod keeps sending pod events. Goal: RSS <= 150 MiB and flat
(reported with the slope of a least-squares line over the soak, MiB/hour).
Prints a table and writes JSON (default e2e/bench/results/memory.json).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psutil
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from e2e.bench.signal_to_action import GROUP, VERSION, apply_crds, commit, kubeconfig
from tests.support.operator import OperatorProcess
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUTPUT = ROOT / "e2e" / "bench" / "results" / "memory.json"
NAMESPACES = 10


def pod(name: str, labels: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "mem", **(labels or {})}},
            "spec": {"containers": [{"name": "app", "image": "registry.local/mem:1"}],
                     "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}]}}


def runbook(i: int) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Runbook", "metadata": {"name": f"rb-{i:04d}"},
            "spec": {"triggers": [{"alert": {"matchers": [{"name": "alertname", "value": f"Alert{i}"}]}}],
                     "target": {"kind": "Deployment", "name": "{{ labels.deployment }}"},
                     "steps": [{"name": "restart", "action": "restartRollout"}]}}


def slope_per_hour(samples: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, MiB), in MiB per hour."""
    if len(samples) < 2:
        return None
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_m = sum(m for _, m in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    if var == 0:
        return None
    return sum((t - mean_t) * (m - mean_m) for t, m in samples) / var * 3600


def run(pods: int, runbooks: int, soak: float, interval: float) -> dict:
    api = config.new_client_from_config(config_file=kubeconfig())
    apply_crds(api)
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    tag = uuid.uuid4().hex[:6]
    namespaces = [f"mem-{tag}-{i}" for i in range(NAMESPACES)]
    for ns in namespaces:
        core.create_namespace({"metadata": {"name": ns}})
    operator = OperatorProcess(kubeconfig(), [], Path(tempfile.mkdtemp(prefix="memory-bench-")), forked=False)
    try:
        operator.start()
        proc = psutil.Process(operator.proc.pid)
        idle_rss = proc.memory_info().rss / 2**20

        def create(i: int) -> None:
            core.create_namespaced_pod(namespaces[i % NAMESPACES], pod(f"p-{i:05d}"))

        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            list(pool.map(create, range(pods)))
            list(pool.map(lambda i: custom.create_namespaced_custom_object(
                GROUP, VERSION, namespaces[0], "runbooks", runbook(i)), range(runbooks)))
        create_seconds = time.monotonic() - t0

        def running() -> bool:
            count = 0
            for ns in namespaces:  # raw JSON: ten thousand pod models would cost more than the bench measures
                items = json.loads(core.list_namespaced_pod(ns, _preload_content=False).data)["items"]
                count += sum(1 for p in items if p.get("status", {}).get("phase") == "Running")
            return count >= pods
        wait_for(running, timeout=600, interval=5, what=f"{pods} pods Running")
        core.create_namespaced_pod(namespaces[1], pod("crashing", {"remediator.dev/kwok-fail": "crashloop"}))
        loaded_rss = proc.memory_info().rss / 2**20

        samples: list[tuple[float, float]] = []
        start = time.monotonic()
        next_churn = start
        churned = 0
        while time.monotonic() - start < soak:
            if time.monotonic() >= next_churn:  # a slice of pods is replaced every minute
                for i in range(0, min(pods, 200)):
                    name, ns = f"p-{i:05d}", namespaces[i % NAMESPACES]
                    try:
                        core.delete_namespaced_pod(name, ns, grace_period_seconds=0)
                    except ApiException:
                        pass
                    churned += 1
                for i in range(0, min(pods, 200)):
                    try:
                        core.create_namespaced_pod(namespaces[i % NAMESPACES], pod(f"p-{i:05d}"))
                    except ApiException:
                        pass  # still terminating; the next round re-creates it
                next_churn += 60
            samples.append((time.monotonic() - start, proc.memory_info().rss / 2**20))
            time.sleep(interval)
        rss = [m for _, m in samples] or [loaded_rss]
        return {
            "pods": pods, "runbooks": runbooks, "namespaces": NAMESPACES, "soak_seconds": soak,
            "create_seconds": round(create_seconds, 1), "pods_churned": churned,
            "rss_mib": {"idle": round(idle_rss, 1), "loaded": round(loaded_rss, 1), "soak_min": round(min(rss), 1),
                        "soak_max": round(max(rss), 1), "soak_end": round(rss[-1], 1)},
            "growth_mib_per_hour": None if (s := slope_per_hour(samples)) is None else round(s, 2),
            "goal_mib": 150, "goal_met": max(rss) <= 150,
            "samples": [[round(t, 1), round(m, 1)] for t, m in samples],
            "commit": commit(), "measured_at": datetime.now(UTC).isoformat(),
        }
    finally:
        operator.stop()
        for ns in namespaces:
            try:
                core.delete_namespace(ns)
            except ApiException:
                pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--runbooks", type=int, default=1000)
    parser.add_argument("--soak", type=float, default=3600, help="seconds of sampling after the load is in place")
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    f = run(args.pods, args.runbooks, args.soak, args.interval)
    rss = f["rss_mib"]
    print(f"pods {f['pods']} in {f['namespaces']} namespaces, runbooks {f['runbooks']} (created in "
          f"{f['create_seconds']}s); soak {f['soak_seconds']:.0f}s, {f['pods_churned']} pods churned")
    print(f"operator RSS MiB: idle {rss['idle']}, loaded {rss['loaded']}, soak {rss['soak_min']}..{rss['soak_max']} "
          f"(end {rss['soak_end']}); goal <= {f['goal_mib']}: {'met' if f['goal_met'] else 'not met'} "
          f"(ratio {rss['soak_max'] / f['goal_mib']:.2f})")
    print(f"growth over the soak: {f['growth_mib_per_hour']} MiB/hour")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(f, indent=2) + "\n")
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
