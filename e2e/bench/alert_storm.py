"""Alert storm: thousands of Alertmanager alerts about a hundred services, delivered several times each.

    python -m e2e.bench.alert_storm [--services 100] [--alerts-per-service 20] [--deliveries 5]
                                    [--batch 10] [--senders 16] [--output FILE]

On the real control plane and the real operator process, in a throw-away
namespace: one Deployment per service, a low-risk restart Runbook and a policy
wide enough not to hold (storm hold-off above the service count). Each service
gets `alerts-per-service` distinct alerts (different alertnames and
fingerprints, as several rules fire about one outage), each delivered
`deliveries` times, as Alertmanager re-sends; payloads carry `batch` alerts of
one service, sent in shuffled order from `senders` threads as fast as the
operator answers. Default: 100 x 20 x 5 = 10,000 alerts.

Prints and writes (default e2e/bench/results/alert_storm.json): the ingest
rate (alerts per second, goal >= 1,000 on 2 cores), webhook latency
p50/p99, HTTP codes (goal: no 5xx), the number of Remediations (goal: exactly
one per service: the rest are duplicates or correlated into the open
incident) and duplicate actions (goal 0: each Deployment restarted once,
checked from its ReplicaSets and its idempotency keys). Reported, not asserted.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import random
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import psutil
import requests
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from e2e.bench.signal_to_action import (
    GROUP,
    VERSION,
    apply_crds,
    checked,
    commit,
    create_deployments,
    kubeconfig,
    policy_spec,
    summary,
)
from tests.support.operator import OperatorProcess, alert_payload
from tests.support.waiting import wait_for
from remediator.core.durations import format_time

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUTPUT = ROOT / "e2e" / "bench" / "results" / "alert_storm.json"


def storm_runbook() -> dict:
    return {"description": "alert storm: restart the service the alerts name",
            "triggers": [{"alert": {"matchers": [{"name": "alertname", "op": "=~", "value": "Storm.*"}]}}],
            "target": {"kind": "Deployment", "name": "{{ labels.deployment }}"},
            "steps": [{"name": "restart", "action": "restartRollout", "risk": "low", "timeout": "2m",
                       "verify": {"rolloutComplete": {}}}],
            "guard": {"cooldown": "30m", "maxRunsPerHour": 5}}


def storm_alert(namespace: str, service: str, k: int, starts_at: str) -> dict:
    return {"status": "firing",
            "labels": {"alertname": f"Storm{k:02d}", "namespace": namespace, "deployment": service,
                       "severity": "page", "instance": f"{service}-{k}"},
            "annotations": {"summary": f"storm alert {k} on {service}"}, "startsAt": starts_at,
            "endsAt": "0001-01-01T00:00:00Z", "fingerprint": f"{service}-{k:04d}", "generatorURL": "http://bench"}


def payloads(namespace: str, services: list[str], per_service: int, deliveries: int, batch: int) -> list[dict]:
    starts_at = format_time(datetime.now(UTC))
    out = []
    for service in services:
        alerts = [storm_alert(namespace, service, k, starts_at) for k in range(per_service)]
        for _ in range(deliveries):
            out += [alert_payload(alerts[i:i + batch]) for i in range(0, len(alerts), batch)]
    random.Random(7).shuffle(out)
    return out


def run(services: int, per_service: int, deliveries: int, batch: int, senders: int) -> dict:
    api = config.new_client_from_config(config_file=kubeconfig())
    apply_crds(api)
    core, custom, apps = client.CoreV1Api(api), client.CustomObjectsApi(api), client.AppsV1Api(api)
    namespace = f"storm-{uuid.uuid4().hex[:6]}"
    policy = f"{namespace}-policy"
    core.create_namespace({"metadata": {"name": namespace}})
    names = [f"svc-{i:03d}" for i in range(services)]
    workdir = Path(tempfile.mkdtemp(prefix="alert-storm-"))
    operator = OperatorProcess(kubeconfig(), [namespace], workdir,
                               extra_args=["--webhook-rate", "100000", "--webhook-burst", "100000"], forked=False)
    try:
        custom.create_cluster_custom_object(GROUP, VERSION, "remediationpolicies",
                                            checked("RemediationPolicy", policy, policy_spec(namespace, services)))
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "runbooks",
                                               {**checked("Runbook", "storm", storm_runbook()),
                                                "metadata": {"name": "storm", "namespace": namespace}})
        create_deployments(api, namespace, names)
        operator.start()
        bodies = payloads(namespace, names, per_service, deliveries, batch)
        alerts_sent = sum(len(b["alerts"]) for b in bodies)
        session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=senders)
        session.mount("http://", adapter)
        url = f"{operator.url}/webhooks/alertmanager"
        headers = {"Authorization": f"Bearer {operator.token}"}

        def send(body: dict) -> tuple[int, float, list[str]]:
            t0 = time.monotonic()
            try:
                resp = session.post(url, json=body, headers=headers, timeout=60)
            except requests.RequestException:
                return 0, time.monotonic() - t0, []
            outcomes = [r["outcome"] for r in resp.json().get("results", [])] if resp.ok else []
            return resp.status_code, time.monotonic() - t0, outcomes

        proc = psutil.Process(operator.proc.pid)
        cpu0 = proc.cpu_times()
        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(senders) as pool:
            results = list(pool.map(send, bodies))
        elapsed = time.monotonic() - t0
        cpu1 = proc.cpu_times()
        rss_mib = proc.memory_info().rss / 2**20

        def remediations() -> list[dict]:
            return custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "remediations")["items"]

        def settled() -> bool:
            items = remediations()
            return all((i.get("status") or {}).get("phase") in ("Succeeded", "Failed", "Escalated", "Skipped")
                       for i in items)
        wait_for(settled, timeout=300, interval=2, what="every Remediation finished")
        items = remediations()
        per_target = Counter(i["spec"]["target"]["name"] for i in items)
        replica_sets = Counter(rs.metadata.labels.get("app") for rs in
                               apps.list_namespaced_replica_set(namespace).items)
        restarted_twice = sorted(n for n in names if replica_sets.get(n, 0) > 2)
        keys = {d.metadata.name: (d.metadata.annotations or {}).get("remediator.dev/action-keys", "")
                for d in apps.list_namespaced_deployment(namespace).items}
        codes = Counter(str(code) for code, _, _ in results)
        figures = {
            "services": services, "alerts_per_service": per_service, "deliveries_per_alert": deliveries,
            "alerts_per_payload": batch, "senders": senders, "payloads": len(bodies), "alerts_sent": alerts_sent,
            "send_seconds": round(elapsed, 2), "ingest_alerts_per_second": round(alerts_sent / elapsed, 1),
            "goal_alerts_per_second": 1000, "webhook_latency": summary([s for _, s, _ in results]),
            "webhook_codes": dict(codes), "http_5xx": sum(v for k, v in codes.items() if k.startswith("5") or k == "0"),
            "outcomes": dict(Counter(o for _, _, outs in results for o in outs)),
            "remediations": len(items), "remediations_goal": services,
            "targets_with_more_than_one_remediation": sorted(t for t, n in per_target.items() if n > 1),
            "phases": dict(Counter((i.get("status") or {}).get("phase") for i in items)),
            "duplicate_actions": len(restarted_twice), "restarted_twice": restarted_twice,
            "targets_restarted": sum(1 for n in names if replica_sets.get(n, 0) == 2),
            "deployments_with_keys": sum(1 for v in keys.values() if v),
            "operator_cpu_seconds_sending": round((cpu1.user + cpu1.system) - (cpu0.user + cpu0.system), 2),
            "operator_rss_mib_after_storm": round(rss_mib, 1),
            "commit": commit(), "measured_at": datetime.now(UTC).isoformat(), "cpus": psutil.cpu_count(),
        }
        return figures
    finally:
        operator.stop()
        try:
            custom.delete_cluster_custom_object(GROUP, VERSION, "remediationpolicies", policy)
        except ApiException:
            pass
        core.delete_namespace(namespace)


def print_table(f: dict) -> None:
    lat = f["webhook_latency"]
    rows = [
        ("alerts sent (payloads)", f"{f['alerts_sent']} ({f['payloads']} x {f['alerts_per_payload']})"),
        ("ingest rate", f"{f['ingest_alerts_per_second']} alerts/s  (goal >= {f['goal_alerts_per_second']}; "
                        f"ratio {f['ingest_alerts_per_second'] / f['goal_alerts_per_second']:.2f})"),
        ("webhook latency p50 / p99 / max", f"{lat['p50_ms']} / {lat['p99_ms']} / {lat['max_ms']} ms"),
        ("HTTP codes", f"{f['webhook_codes']}  (5xx or no answer: {f['http_5xx']})"),
        ("outcomes", str(f["outcomes"])),
        ("Remediations", f"{f['remediations']}  (goal exactly {f['remediations_goal']})"),
        ("phases", str(f["phases"])),
        ("duplicate actions", f"{f['duplicate_actions']}  (targets restarted once: {f['targets_restarted']})"),
        ("operator CPU while sending", f"{f['operator_cpu_seconds_sending']} s over {f['send_seconds']} s"),
        ("operator RSS after the storm", f"{f['operator_rss_mib_after_storm']} MiB"),
    ]
    width = max(len(r[0]) for r in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", type=int, default=100)
    parser.add_argument("--alerts-per-service", type=int, default=20)
    parser.add_argument("--deliveries", type=int, default=5)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--senders", type=int, default=16)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    figures = run(args.services, args.alerts_per_service, args.deliveries, args.batch, args.senders)
    print_table(figures)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\nwritten to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
