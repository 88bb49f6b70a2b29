"""Figures for the loop's speed: Alertmanager webhook -> the action's PATCH applied, next to a raw PATCH.

    python -m e2e.bench.signal_to_action [--incidents N] [--rate PER_SECOND] [--tick SECONDS]
        [--history N] [--waiting W] [--wait-window SECONDS] [--output FILE]

On the real local control plane (reused, or started as the tests do; KUBECONFIG
wins when set) and the real operator process (tests/support/operator.py), in
one throw-away namespace:

- N Deployments of 1 replica each, a low-risk `restartRollout` Runbook and a
  RemediationPolicy for that namespace only, with no approvals (below critical) and guards
  wide enough not to block: maxRunsPerHour, concurrency and circuit breaker
  high, and **stormHoldoff.targets set above N** — otherwise the storm
  hold-off (rightly) holds once 10 distinct targets fail within 5 minutes;
- for each incident i, paced at --rate: a raw PATCH of Deployment i (the
  same change the action makes: `kubectl.kubernetes.io/restartedAt` on the
  pod template plus one metadata annotation, as a strategic merge patch)
  then, half a period later, one Alertmanager webhook POST naming
  Deployment i;
- "applied" is seen from the apiserver's side: a watch on the namespace's
  Deployments records when the raw PATCH's marker, and when the operator's
  `remediator.dev/action-keys` annotation, first appear. Both latencies are
  send -> watch event, taken with one monotonic clock in this process, so the
  watch's own delay is in both. A watch on Remediations splits the operator's
  time into ingest (POST -> Remediation seen), plan (-> phase Acting) and act
  (-> PATCH seen).

Reports p50/p90/p99/max of each, and the ratio of p99s (goal: the operator's
p99 within 5x the raw PATCH's; reported, not asserted).

With --history N (default 10,000), N terminal Remediations (~4.6 KB each, as the
operator leaves them) are then added to the namespace and the same round runs
again with fresh Deployments (the operator is stopped while they are added,
then started: it starts in a cluster with history): the p99 ratio of the two rounds (goal <= 1.2) and
the operator's RSS (goal <= 150 MiB) say whether history slows the loop. With
--waiting W (default 20), the operator's own apiserver request counter
(`remediator_apiserver_requests_total` on its /metrics) is read over
--wait-window seconds idle, then with W Remediations awaiting an approval
nobody gives, then with W more in a podsReady verification window that
outlasts the count: each difference per Remediation per minute (goal <= 1).

The default rate, 1 incident/s, is one the operator sustains on a 2-core
machine shared with a control plane: it measures latency, not queueing. At 2
or 4 incidents/s it falls behind (open Remediations pile up, the webhook
answers in seconds) and the figures then measure its capacity instead; the
senders run in thread pools so the offered rate holds either way. Prints a table and
writes JSON (default e2e/bench/results/signal_to_action.json). Each round also
reports the operator's apiserver requests per incident, by verb and resource
(its `remediator_apiserver_requests_total`): with CPU per incident, a figure a
loaded machine hardly moves. The namespace and the policy are deleted at the
end, whatever happens.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import functools
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import requests
import urllib3
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.watch.watch import iter_resp_lines
from tests.support.operator import OperatorProcess, alert_payload
from tests.support.waiting import wait_for
from tests.support.workloads import deployment

from remediator.core.durations import format_time
from remediator.api.models import RemediationStatus, StepRecord, TimelineEntry
from remediator.api.validation import validate_document

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).with_name("results")
CRD_DIR = ROOT / "charts" / "remediator" / "crds"
GROUP, VERSION = "remediator.dev", "v1alpha1"
KEYS_ANNOTATION = "remediator.dev/action-keys"  # what the operator's action stamps (remediator.actions.base)
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
RAW_MARKER = "bench.remediator.dev/raw-patch"  # what the raw PATCH stamps besides restartedAt
ALERTNAME = "BenchRestart"
WAIT_ALERTNAME = "BenchWait"
VERIFY_ALERTNAME = "BenchVerify"
REQUESTS_METRIC = "remediator_apiserver_requests_total"
TERMINAL = {"Succeeded", "Failed", "Escalated", "Denied", "Cancelled", "Skipped", "Expired"}
LEVELS = ("low", "medium", "high", "critical")


def runbook_spec() -> dict:
    return {
        "description": "benchmark: restart the Deployment the alert names",
        "triggers": [{"alert": {"matchers": [{"name": "alertname", "value": ALERTNAME}]}}],
        "target": {"kind": "Deployment", "name": "{{ labels.deployment }}"},
        "steps": [{"name": "restart", "action": "restartRollout", "risk": "low", "timeout": "2m",
                   "verify": {"rolloutComplete": {}}}],
        "guard": {"cooldown": "1s", "maxRunsPerHour": 1000, "maxConcurrentPerTarget": 5},
    }


def policy_spec(namespace: str, incidents: int) -> dict:
    return {
        "mode": "enforce",
        "namespaces": [namespace],
        "approval": {"rules": [{"level": level, "approvers": 1 if level == "critical" else 0}
                              for level in LEVELS]},
        "blastRadius": {"maxPods": 100, "maxPercent": 100},
        "concurrency": {"maxActive": 10 * incidents + 100, "maxPerNamespace": 10 * incidents + 100},
        "circuitBreaker": {"failures": 10 * incidents + 100, "window": "1h"},
        # Every incident is a distinct failing target: the default hold-off (10 in 5m) would hold them all.
        "stormHoldoff": {"targets": 10 * incidents + 100, "window": "5m"},
    }


# ---------------------------------------------------------------- statistics


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(seconds: list[float]) -> dict:
    ms = [s * 1000 for s in seconds]
    out = {"n": len(ms)}
    for name, p in (("p50", 50), ("p90", 90), ("p99", 99)):
        value = percentile(ms, p)
        out[f"{name}_ms"] = None if value is None else round(value, 1)
    out["max_ms"] = round(max(ms), 1) if ms else None
    out["mean_ms"] = round(sum(ms) / len(ms), 1) if ms else None
    return out


# ---------------------------------------------------------------- watches, raw JSON (no model deserialisation)


class Recorder:
    """Watch events stamped with this process's monotonic clock, first occurrence per key."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: dict[tuple[str, str], float] = {}
        self.phases: dict[str, str] = {}  # remediation -> latest phase
        self.targets: dict[str, str] = {}  # remediation -> deployment
        self.errors: list[str] = []
        self.open: set[str] = set()  # Remediations not yet terminal
        self.peak_open = 0

    def first(self, kind: str, key: str, at: float) -> None:
        with self.lock:
            self.seen.setdefault((kind, key), at)

    def get(self, kind: str, key: str) -> float | None:
        with self.lock:
            return self.seen.get((kind, key))


def watch(list_call, resource_version: str, on_event, stop: threading.Event, recorder: Recorder) -> None:
    """Follow a watch (`list_call(**params)`) from `resource_version` until `stop`, resuming after timeouts."""
    rv = resource_version
    while not stop.is_set():
        try:
            resp = list_call(watch=True, resource_version=rv, allow_watch_bookmarks=True, timeout_seconds=30,
                             _preload_content=False)
            try:
                for line in iter_resp_lines(resp):
                    at = time.monotonic()
                    event = json.loads(line)
                    obj = event.get("object") or {}
                    if event.get("type") == "ERROR":
                        raise RuntimeError(f"watch error: {obj.get('message')}")
                    rv = (obj.get("metadata") or {}).get("resourceVersion", rv)
                    if event.get("type") in ("ADDED", "MODIFIED"):
                        on_event(obj, at)
                    if stop.is_set():
                        break
            finally:
                resp.release_conn()
        except Exception as e:  # noqa: BLE001 - recorded and retried; the figures say how many were lost
            if stop.is_set():
                return
            recorder.errors.append(f"{type(e).__name__}: {e}")
            time.sleep(0.5)


def deployment_event(recorder: Recorder, expected_raw: dict[str, str]):
    def on_event(obj: dict, at: float) -> None:
        name = obj["metadata"]["name"]
        annotations = obj["metadata"].get("annotations") or {}
        if annotations.get(KEYS_ANNOTATION):
            recorder.first("action", name, at)
        marker = expected_raw.get(name)
        if marker and annotations.get(RAW_MARKER) == marker:
            recorder.first("raw", name, at)
    return on_event


def remediation_event(recorder: Recorder):
    def on_event(obj: dict, at: float) -> None:
        name = obj["metadata"]["name"]
        target = ((obj.get("spec") or {}).get("target") or {}).get("name", "")
        phase = (obj.get("status") or {}).get("phase") or "Pending"
        with recorder.lock:
            recorder.targets[name] = target
            recorder.phases[name] = phase
            if phase in TERMINAL:
                recorder.open.discard(name)
            else:
                recorder.open.add(name)
                recorder.peak_open = max(recorder.peak_open, len(recorder.open))
        recorder.first("created", target, at)
        if phase in ("Acting", "Verifying"):
            recorder.first("acting", target, at)
    return on_event


# ---------------------------------------------------------------- the cluster


def kubeconfig() -> str:
    given = os.environ.get("KUBECONFIG")
    if given:
        return given
    from e2e.cluster import control_plane

    path = control_plane.up()
    os.environ["KUBECONFIG"] = str(path)
    os.environ["PATH"] = f"{control_plane.tools_dir()}{os.pathsep}{os.environ['PATH']}"
    return str(path)


def apply_crds(api: client.ApiClient) -> None:
    proc = subprocess.run(["kubectl", "apply", "--server-side", "--force-conflicts", "-f", str(CRD_DIR)],
                          capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"applying the CRDs failed: {proc.stderr}")
    ext = client.ApiextensionsV1Api(api)
    for plural in ("runbooks", "remediations", "remediationpolicies"):
        wait_for(lambda p=plural: any(c.type == "Established" and c.status == "True" for c in
                                      ext.read_custom_resource_definition(f"{p}.{GROUP}").status.conditions or []),
                 what=f"CRD {plural}.{GROUP} established")


def checked(kind: str, name: str, spec: dict) -> dict:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": {"name": name}, "spec": spec}
    problems = validate_document(body)
    if problems:
        raise SystemExit(f"the bench's own {kind} is invalid: {'; '.join(map(str, problems))}")
    return body


def create_deployments(api: client.ApiClient, namespace: str, names: list[str]) -> None:
    apps = client.AppsV1Api(api)
    for name in names:
        apps.create_namespaced_deployment(namespace, deployment(name, replicas=1))

    def available() -> bool:
        items = apps.list_namespaced_deployment(namespace).items
        wanted = set(names)  # the namespace holds the earlier rounds' Deployments too
        return sum(1 for d in items if d.metadata.name in wanted and (d.status.available_replicas or 0) >= 1) \
            == len(names)

    wait_for(available, timeout=60 + len(names), interval=1.0, what=f"{len(names)} Deployments available")


# ---------------------------------------------------------------- the run


def run(incidents: int, rate: float, tick: float, settle: float, history: int = 0, waiting: int = 0,
        wait_window: float = 60.0, control: bool = False) -> dict:
    """Round "empty" (the cluster as found); with `control`, the same round again after the operator restarted
    into the same cluster (how far apart two p99s fall with no history: the noise the history ratio sits in);
    with `history`, the same round again after that many terminal Remediations were added; with `waiting`, the
    apiserver requests the operator makes per Remediation that only waits for an approval. One operator
    process a round, so the figures sit side by side."""
    started = time.monotonic()
    path = kubeconfig()
    api = config.new_client_from_config(config_file=path)
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    apply_crds(api)
    namespace = f"bench-s2a-{uuid.uuid4().hex[:6]}"
    policy_name = f"{namespace}-policy"
    operator: OperatorProcess | None = None
    workdir = Path(tempfile.mkdtemp(prefix="bench-s2a-"))
    succeeded = False
    try:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(
            name=namespace, labels={"remediator.dev/bench": "signal-to-action"})))
        custom.create_cluster_custom_object(GROUP, VERSION, "remediationpolicies",
                                            checked("RemediationPolicy", policy_name,
                                                    policy_spec(namespace, incidents)))
        for name, spec in (("bench-restart", runbook_spec()), ("bench-wait", waiting_runbook_spec()),
                           ("bench-verify", verifying_runbook_spec(wait_window))):
            runbook = checked("Runbook", name, spec)
            runbook["metadata"]["namespace"] = namespace
            custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "runbooks", runbook)

        operator = OperatorProcess(path, [namespace], workdir, extra_args=["--tick", str(tick)], forked=False)
        operator.start()
        operator_process = psutil.Process(operator.proc.pid)
        # The operator learns Runbooks from its watch: wait until it matches (a probe alert that names no Deployment).
        wait_for(lambda: knows_runbook(operator, namespace), timeout=60, what="the operator to know the Runbook")

        rounds = {"empty": measure_round(api, operator, operator_process, namespace, "r1", incidents, rate, settle)}
        if control:
            operator.stop()
            operator_process, _ = start_matching(operator, namespace)
            rounds["control"] = measure_round(api, operator, operator_process, namespace, "r1c", incidents, rate,
                                              settle)
        if history:
            # Added while the operator is stopped (a created Remediation is Pending until its status is
            # written, and a running operator would start on it), then started again: it primes with them.
            operator.stop()
            t0 = time.monotonic()
            added = add_history(custom, namespace, history)
            history_seconds = time.monotonic() - t0
            operator_process, ready_seconds = start_matching(operator, namespace)
            rounds["history"] = measure_round(api, operator, operator_process, namespace, "r2", incidents, rate,
                                              settle)
            rounds["history"].update(history_added=added, history_seconds=round(history_seconds, 1),
                                     operator_start_to_matching_seconds=round(ready_seconds, 1))
        waiting_figures = measure_waiting(api, operator, namespace, waiting, wait_window) if waiting else None
        figures = {
            "when": format_time(datetime.now(UTC)),
            "incidents": incidents,
            "rate_per_second": rate,
            "operator_tick_seconds": tick,
            **rounds["empty"],
            "rounds": rounds,
            "goal": "signal_to_action p99 <= 5x raw_patch p99 (reported, not asserted)",
            "goal_met": None if rounds["empty"]["ratio_p99"] is None else rounds["empty"]["ratio_p99"] <= 5.0,
            "history": None if not history else {
                "terminal_remediations": history,
                "p99_ratio_to_empty": ratio_of(rounds["history"]["signal_to_action"]["p99_ms"],
                                               rounds["empty"]["signal_to_action"]["p99_ms"]),
                "goal": "p99 with history <= 1.2x p99 empty, operator RSS <= 150 MiB",
            },
            "control": None if not control else {
                "p99_ratio_to_empty": ratio_of(rounds["control"]["signal_to_action"]["p99_ms"],
                                               rounds["empty"]["signal_to_action"]["p99_ms"]),
                "what": "the same round with no history, the operator restarted as for the history round",
            },
            "waiting": waiting_figures,
            "operator_rss_mib_at_end": round(operator_process.memory_info().rss / 2**20, 1),
            "setup": {
                "replicas_each": 1,
                "runbook": "restartRollout, declared risk low, verify rolloutComplete",
                "policy": ("no approvals below critical; blastRadius maxPods 100 / maxPercent 100; concurrency, "
                           "circuit breaker and maxRunsPerHour far above the incident count; stormHoldoff.targets "
                           f"{10 * incidents + 100} so {incidents} failing targets in 5m are not held off "
                           "(the default holds at 10)"),
                "measure": ("send (monotonic clock, this process) -> first watch event carrying the change; "
                            "raw PATCH = strategic merge of restartedAt + one annotation on the same Deployment, "
                            "sent half a period before the incident's webhook"),
                "history": ("terminal Remediations (Succeeded, folded into the Runbook, finished 1-20 days ago) "
                            "created in the bench namespace while the operator is stopped; then it starts again"),
            },
            "commit": commit(),
            "host": {"cpus": os.cpu_count(), "python": platform.python_version(),
                     "loadavg_1m_at_end": round(os.getloadavg()[0], 2)},
            "wall_seconds": round(time.monotonic() - started, 1),
        }
        succeeded = True
        return figures
    finally:
        if operator is not None:
            operator.stop()
        if succeeded:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"the operator's log is kept in {workdir}", file=sys.stderr)
        for delete in (lambda: custom.delete_cluster_custom_object(GROUP, VERSION, "remediationpolicies",
                                                                   policy_name),
                       lambda: core.delete_namespace(namespace, propagation_policy="Background")):
            try:
                delete()
            except ApiException as e:
                if e.status != 404:
                    print(f"cleanup: {e.status} {e.reason}", file=sys.stderr)


def start_matching(operator: OperatorProcess, namespace: str) -> tuple[psutil.Process, float]:
    """Start the (stopped) operator: its new process once it matches again, and the seconds from its start to
    then."""
    t0 = time.monotonic()
    operator.start()
    wait_for(lambda: knows_runbook(operator, namespace), timeout=120, what="the operator to know the Runbook")
    return psutil.Process(operator.proc.pid), time.monotonic() - t0


def ratio_of(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def measure_round(api: client.ApiClient, operator: OperatorProcess, operator_process: psutil.Process,
                  namespace: str, prefix: str, incidents: int, rate: float, settle: float) -> dict:
    """`incidents` fresh Deployments; for each, a raw PATCH then the webhook naming it, paced at `rate`."""
    apps, custom = client.AppsV1Api(api), client.CustomObjectsApi(api)
    names = [f"{prefix}-web-{i:04d}" for i in range(incidents)]
    t0 = time.monotonic()
    create_deployments(api, namespace, names)
    setup_seconds = time.monotonic() - t0
    stop = threading.Event()
    recorder = Recorder()
    cluster_remediations = count_remediations(custom)
    expected_raw: dict[str, str] = {}
    deploy_rv = apps.list_namespaced_deployment(namespace, limit=1).metadata.resource_version
    rem_rv = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "remediations", limit=1)["metadata"][
        "resourceVersion"]
    threads = [
        threading.Thread(target=watch, daemon=True, args=(
            functools.partial(apps.list_namespaced_deployment, namespace), deploy_rv,
            deployment_event(recorder, expected_raw), stop, recorder)),
        threading.Thread(target=watch, daemon=True, args=(
            functools.partial(custom.list_namespaced_custom_object, GROUP, VERSION, namespace, "remediations"),
            rem_rv, remediation_event(recorder), stop, recorder)),
    ]
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # both watches open before the first send

    cpu_before = sum(operator_process.cpu_times()[:2])
    requests_before = requests_by_kind(operator)
    gc_before, sweeps_before, trims_before = gc_full_passes(operator), retention_sweeps(operator), heap_trims(operator)
    served_before = apiserver_service_times(api)
    raw_sent: dict[str, float] = {}
    raw_rtt: list[float] = []
    post_sent: dict[str, float] = {}
    post_rtt: list[float] = []
    post_codes: dict[str, int] = {}
    sessions = threading.local()

    def raw_patch(name: str, marker: str) -> None:
        body = {"metadata": {"annotations": {RAW_MARKER: marker}},
                "spec": {"template": {"metadata": {"annotations": {
                    RESTARTED_AT: format_time(datetime.now(UTC))}}}}}
        raw_sent[name] = time.monotonic()
        apps.patch_namespaced_deployment(name, namespace, body)
        raw_rtt.append(time.monotonic() - raw_sent[name])

    def post(name: str, i: int) -> None:
        if not hasattr(sessions, "session"):
            sessions.session = requests.Session()
        payload = alert_payload([bench_alert(namespace, name, i)])
        post_sent[name] = time.monotonic()
        resp = sessions.session.post(f"{operator.url}/webhooks/alertmanager", json=payload, timeout=60,
                                     headers={"Authorization": f"Bearer {operator.token}"})
        post_rtt.append(time.monotonic() - post_sent[name])
        with recorder.lock:
            post_codes[str(resp.status_code)] = post_codes.get(str(resp.status_code), 0) + 1

    # Senders run in pools, as Alertmanager's notifications and other clients would: a slow answer
    # must not hold back the next send, or the offered rate would drop to what the operator absorbs.
    period = 1.0 / rate
    begin = time.monotonic()
    with (concurrent.futures.ThreadPoolExecutor(8, thread_name_prefix="raw") as raw_pool,
          concurrent.futures.ThreadPoolExecutor(32, thread_name_prefix="post") as post_pool):
        sends = []
        for i, name in enumerate(names):
            due = begin + i * period
            time.sleep(max(0.0, due - time.monotonic()))
            expected_raw[name] = f"{i}-{uuid.uuid4().hex[:8]}"
            sends.append(raw_pool.submit(raw_patch, name, expected_raw[name]))
            time.sleep(max(0.0, due + period / 2 - time.monotonic()))
            sends.append(post_pool.submit(post, name, i))
        offered_seconds = time.monotonic() - begin
        for sent in sends:
            sent.result()  # a send that raised fails the run, loudly
    send_seconds = time.monotonic() - begin

    def all_seen() -> bool:
        return all(recorder.get("action", n) is not None and recorder.get("raw", n) is not None for n in names)

    try:
        wait_for(all_seen, timeout=settle, interval=0.5, what="every action PATCH seen")
    except AssertionError:
        pass  # the figures count what was missed

    def all_done() -> bool:
        with recorder.lock:
            phases = [recorder.phases.get(r) for r, t in recorder.targets.items() if t in raw_sent]
        return len(phases) >= len(names) and all(p in TERMINAL for p in phases)

    try:
        wait_for(all_done, timeout=settle, interval=1.0, what="every Remediation finished")
    except AssertionError:
        pass
    stop.set()
    operator_cpu = sum(operator_process.cpu_times()[:2]) - cpu_before
    requests_per_incident = per_incident(requests_before, requests_by_kind(operator), incidents)
    gc_after, sweeps_after, trims_after = gc_full_passes(operator), retention_sweeps(operator), heap_trims(operator)
    served_after = apiserver_service_times(api)

    def deltas(start: dict[str, float], kind: str, since: str | None = None) -> list[float]:
        out = []
        for n in names:
            begin_at = start.get(n) if since is None else recorder.get(since, n)
            end_at = recorder.get(kind, n)
            if begin_at is not None and end_at is not None:
                out.append(end_at - begin_at)
        return out

    signal_to_action = deltas(post_sent, "action")
    slowest = slowest_incidents(names, post_sent, raw_sent, recorder)
    raw_patched = deltas(raw_sent, "raw")
    with recorder.lock:
        phases: dict[str, int] = {}
        for r, t in recorder.targets.items():
            if t in raw_sent:
                phases[recorder.phases[r]] = phases.get(recorder.phases[r], 0) + 1
    s2a, raw = summary(signal_to_action), summary(raw_patched)
    return {
        "signal_to_action": s2a,
        "raw_patch": raw,
        "ratio_p99": ratio_of(s2a["p99_ms"], raw["p99_ms"]),
        "ratio_p50": ratio_of(s2a["p50_ms"], raw["p50_ms"]),
        "breakdown": {
            "ingest_post_to_remediation_seen": summary(deltas(post_sent, "created")),
            "plan_remediation_seen_to_acting": summary(deltas({}, "acting", since="created")),
            "act_acting_to_patch_seen": summary(deltas({}, "action", since="acting")),
        },
        "slowest": slowest,
        "apiserver_path_service_ms": path_service(served_before, served_after),
        "webhook_post_rtt": summary(post_rtt),
        "raw_patch_rtt": summary(raw_rtt),
        "webhook_codes": post_codes,
        "missed": {"action": incidents - len(signal_to_action), "raw": incidents - len(raw_patched)},
        "remediation_phases": phases,
        # Before the round: what the operator's guards had to consider (its own namespace's and others').
        "cluster_remediations_at_start": cluster_remediations,
        "peak_open_remediations": recorder.peak_open,
        "operator_cpu_seconds": round(operator_cpu, 1),
        "operator_cpu_ms_per_incident": round(1000 * operator_cpu / incidents, 1),
        "operator_rss_mib": round(operator_process.memory_info().rss / 2**20, 1),
        "operator_gc_full_passes": passes_between(gc_before, gc_after),
        "operator_heap_trims": passes_between(trims_before, trims_after),
        "operator_retention_sweeps": None if sweeps_before is None or sweeps_after is None else {
            "count": int(sweeps_after["count"] - sweeps_before["count"]),
            "seconds": round(sweeps_after["seconds"] - sweeps_before["seconds"], 3)},
        "apiserver_requests_per_incident": round(sum(requests_per_incident.values()), 2),
        "apiserver_requests_per_incident_by_kind": requests_per_incident,
        "watch_errors": recorder.errors[:10],
        "deployments_setup_seconds": round(setup_seconds, 1),
        "offered_seconds": round(offered_seconds, 1),
        "offered_rate_per_second": round(incidents / offered_seconds, 2) if offered_seconds else None,
        "send_seconds": round(send_seconds, 1),
    }


def slowest_incidents(names: list[str], post_sent: dict[str, float], raw_sent: dict[str, float],
                      recorder: Recorder, count: int = 5) -> list[dict]:
    """The slowest incidents, each split by stage, beside the raw PATCH sent half a period before it: which stage
    a tail comes from, and whether the apiserver was slow for both at that moment."""
    def ms(begin: float | None, end: float | None) -> float | None:
        return None if begin is None or end is None else round(1000 * (end - begin), 1)

    rows = []
    for name in names:
        total = ms(post_sent.get(name), recorder.get("action", name))
        if total is not None:
            rows.append({"incident": name, "signal_to_action_ms": total, "sent_monotonic": post_sent[name],
                         "ingest_ms": ms(post_sent.get(name), recorder.get("created", name)),
                         "plan_ms": ms(recorder.get("created", name), recorder.get("acting", name)),
                         "act_ms": ms(recorder.get("acting", name), recorder.get("action", name)),
                         "raw_patch_ms": ms(raw_sent.get(name), recorder.get("raw", name))})
    return sorted(rows, key=lambda row: row["signal_to_action_ms"], reverse=True)[:count]


# The kinds of call on the path from a signal to its action, as the apiserver's request histogram names them
# (verb, resource, subresource, dry_run). Its means cover every such call of the round, not only the path's: the
# status writes after the action too (more of them, and larger), the bench's raw PATCHes (the same call as the
# action), the probes' reads.
PATH_CALLS = {"create": ("POST", "remediations", "", ""), "read": ("GET", "deployments", "", ""),
              "dry_run": ("PATCH", "deployments", "", "All"), "status_write": ("PUT", "remediations", "status", ""),
              "patch": ("PATCH", "deployments", "", "")}
SERVICE_METRIC = "apiserver_request_duration_seconds"


def apiserver_service_times(api: client.ApiClient) -> dict[tuple, list[float]] | None:
    """The apiserver's own time serving each kind of call so far, from its /metrics; None, said on stderr, where
    they cannot be read (an identity granted no nonResourceURLs /metrics, an apiserver that does not answer)."""
    try:
        serialized = api.param_serialize(method="GET", resource_path="/metrics", header_params={"Accept": "text/plain"},
                                          auth_settings=["BearerToken"])
        response = api.call_api(*serialized)
        text = response.read().decode("utf-8", "replace")
    except (ApiException, OSError, urllib3.exceptions.HTTPError) as e:
        print(f"apiserver /metrics not readable: {e}", file=sys.stderr)
        return None
    if response.status != 200:
        print(f"apiserver /metrics not readable: HTTP {response.status}: {text[:200]}", file=sys.stderr)
        return None
    return service_times_of(text)


def service_times_of(text: str) -> dict[tuple, list[float]]:
    """(verb, resource, subresource, dry_run) -> [seconds, count] of SERVICE_METRIC, summed over its other labels."""
    out: dict[tuple, list[float]] = {}
    for slot, series in enumerate((SERVICE_METRIC + "_sum", SERVICE_METRIC + "_count")):
        for labels, value in samples(text, series):
            key = tuple(labels.get(k, "") for k in ("verb", "resource", "subresource", "dry_run"))
            out.setdefault(key, [0.0, 0.0])[slot] += value
    return out


def samples(text: str, series: str) -> Iterator[tuple[dict[str, str], float]]:
    """The labels and value of each sample of `series` in Prometheus' text format."""
    for line in text.splitlines():
        if line.startswith(series + "{"):
            yield dict(re.findall(r'(\w+)="([^"]*)"', line[len(series):line.rindex("}")])), \
                float(line.rsplit(" ", 1)[1])


def path_service(before: dict | None, after: dict | None) -> dict | None:
    """The round's mean server-side ms of each kind of call on the path (None: none made, or the counters went
    back, as after an apiserver restart), and `floor`: one incident's chain at those means (the slowest of the
    create and the first reads beside it, read and dry run; then a status write, then a patch)."""
    if before is None or after is None:
        return None
    means = {}
    for stage, key in PATH_CALLS.items():
        seconds, count = (a - b for a, b in zip(after.get(key, [0.0, 0.0]), before.get(key, [0.0, 0.0])))
        means[stage] = round(1000 * seconds / count, 1) if count > 0 and seconds >= 0 else None
    if any(v is None for v in means.values()):
        return {**means, "floor": None}
    return {**means, "floor": round(max(means["create"], means["read"], means["dry_run"]) + means["status_write"]
                                    + means["patch"], 1)}


def count_remediations(custom: client.CustomObjectsApi) -> int:
    """All Remediations in the cluster, counted without fetching them: one item plus the apiserver's count."""
    page = custom.list_cluster_custom_object(GROUP, VERSION, "remediations", limit=1)
    meta = page.get("metadata") or {}
    if meta.get("remainingItemCount") is not None or not meta.get("continue"):
        return len(page.get("items") or []) + (meta.get("remainingItemCount") or 0)
    return len(custom.list_cluster_custom_object(GROUP, VERSION, "remediations")["items"])


def history_remediation(namespace: str, i: int) -> tuple[dict, dict]:
    """A terminal Remediation as the operator leaves one (body, status): restarted, verified, counted in the
    Runbook already, finished 1 to 20 days ago."""
    finished = datetime.now(UTC) - timedelta(days=1 + i % 20, seconds=i)
    started = finished - timedelta(seconds=40)
    at = [format_time(t) for t in (started, finished)]
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Remediation",
            "metadata": {"name": f"history-{i:06d}", "namespace": namespace,
                         "labels": {"remediator.dev/runbook": "bench-restart"}},
            "spec": {"runbook": {"name": "bench-restart", "namespace": namespace},
                     "target": {"kind": "Deployment", "name": f"old-web-{i % 500:04d}", "namespace": namespace},
                     "signal": {"source": "alertmanager", "name": ALERTNAME, "fingerprint": f"old-{i:06d}",
                                "startsAt": at[0],
                                "labels": {"alertname": ALERTNAME, "namespace": namespace,
                                           "deployment": f"old-web-{i % 500:04d}", "severity": "page"}}}}
    status = RemediationStatus(
        phase="Succeeded", started_at=at[0], finished_at=at[1], current_step=0, folded_into_runbook=True,
        time_to_recover_seconds=40.0, restored_at=at[1], restored_by="operator",  # nothing owed: no write at start
        steps=[StepRecord(index=0, name="restart", action="restartRollout", phase="Succeeded",
                          idempotency_key=f"history-{i:06d}-0-restartRollout", started_at=at[0], applied_at=at[0],
                          finished_at=at[1], message="restarted")],
        match_reasons=[f"alertname={ALERTNAME} matched trigger 0 of Runbook {namespace}/bench-restart"],
        # about the size of a real one (~4.7 KB): the guards' and the report's cost grows with the bytes
        timeline=[TimelineEntry(at=at[0], kind=kind, message=f"{kind}: {'history padding ' * 12}")
                  for kind in ("Matched", "Planned", "GuardsPassed", "RiskScored", "Intended", "Acting",
                               "Applied", "Verifying", "Observed", "Verified", "Succeeded", "Restored")]).wire()
    return body, status


def add_history(custom: client.CustomObjectsApi, namespace: str, count: int) -> int:
    """Create `count` terminal Remediations (create, then a status write: status is a subresource)."""
    def one(i: int) -> bool:
        body, status = history_remediation(namespace, i)
        try:
            created = custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "remediations", body)
            custom.replace_namespaced_custom_object_status(
                GROUP, VERSION, namespace, "remediations", body["metadata"]["name"], {**created, "status": status})
        except ApiException as e:
            print(f"history {i}: {e.status} {e.reason}: {(e.body or '')[:300]}", file=sys.stderr)
            return False
        return True

    with concurrent.futures.ThreadPoolExecutor(16, thread_name_prefix="history") as pool:
        return sum(pool.map(one, range(count)))


def waiting_runbook_spec() -> dict:
    """A step every policy rule sends to a human: the Remediations it opens only wait."""
    return {
        "description": "benchmark: a critical step that waits for an approval nobody gives",
        "triggers": [{"alert": {"matchers": [{"name": "alertname", "value": WAIT_ALERTNAME}]}}],
        "target": {"kind": "Deployment", "name": "{{ labels.deployment }}"},
        "steps": [{"name": "restart", "action": "restartRollout", "risk": "critical", "timeout": "2m",
                   "verify": {"rolloutComplete": {}}}],
        "guard": {"cooldown": "1s", "maxRunsPerHour": 1000, "maxConcurrentPerTarget": 5},
    }


def verifying_runbook_spec(window: float) -> dict:
    """A step that acts at once, then verifies for two minutes longer than a request count spans: the Remediations
    it opens only wait for their podsReady window to pass."""
    return {
        "description": "benchmark: a restart whose verification window outlasts the request count",
        "triggers": [{"alert": {"matchers": [{"name": "alertname", "value": VERIFY_ALERTNAME}]}}],
        "target": {"kind": "Deployment", "name": "{{ labels.deployment }}"},
        "steps": [{"name": "restart", "action": "restartRollout", "risk": "low", "timeout": "30m",
                   "verify": {"podsReady": {"window": f"{math.ceil(window) + 120}s"}}}],
        "guard": {"cooldown": "1s", "maxRunsPerHour": 1000, "maxConcurrentPerTarget": 5},
    }


def apiserver_requests(operator: OperatorProcess) -> float | None:
    """The operator's own count of its apiserver requests (its /metrics), or None when it exports none."""
    counts = requests_by_kind(operator)
    return sum(counts.values()) if counts else None


def requests_by_kind(operator: OperatorProcess) -> dict[str, float]:
    """The operator's apiserver requests so far, by "verb resource" (its /metrics)."""
    text = requests.get(f"{operator.url}/metrics", timeout=10).text
    out: dict[str, float] = {}
    for labels, value in samples(text, REQUESTS_METRIC):
        key = f"{labels.get('verb', '?')} {labels.get('resource', '?')}"
        out[key] = out.get(key, 0.0) + value
    return out


def gc_full_passes(operator: OperatorProcess) -> dict[str, float] | None:
    """The operator's full collector passes so far (its /metrics): how many, their total seconds, how many took
    over 25 ms (each holds up every Python thread, so one inside an incident's few ms shows in the tail).
    None when the operator does not time them (a checkout before `remediator_gc_pause_seconds`)."""
    count, seconds, quick = metric_values(operator, *(f'remediator_gc_pause_seconds_{series}' for series in (
        'count{generation="2"}', 'sum{generation="2"}', 'bucket{generation="2",le="0.025"}')))
    if count is None or seconds is None or quick is None:
        return None
    return {"count": count, "seconds": seconds, "over_25ms": count - quick}


def retention_sweeps(operator: OperatorProcess) -> dict[str, float] | None:
    """The operator's retention sweeps so far and their total seconds (one falls into a round a minute after
    start: the history round's); None when the operator does not time them (a checkout before the metric)."""
    count, seconds = metric_values(operator, "remediator_retention_sweep_seconds_count",
                                   "remediator_retention_sweep_seconds_sum")
    return None if count is None or seconds is None else {"count": count, "seconds": seconds}


def heap_trims(operator: OperatorProcess) -> dict[str, float] | None:
    """The operator's malloc_trims so far (every 10 s; each holds the allocator's lock): how many, their total
    seconds, how many took over 10 ms. None when the operator does not time them."""
    count, seconds, quick = metric_values(operator, "remediator_heap_trim_seconds_count",
                                          "remediator_heap_trim_seconds_sum",
                                          'remediator_heap_trim_seconds_bucket{le="0.01"}')
    if count is None or seconds is None or quick is None:
        return None
    return {"count": count, "seconds": seconds, "over_10ms": count - quick}


def metric_values(operator: OperatorProcess, *series: str) -> list[float | None]:
    """The value of each of `series` (name{labels}) on the operator's /metrics, None for one it does not export."""
    text = requests.get(f"{operator.url}/metrics", timeout=10).text
    found = (re.search(rf'^{re.escape(one)} (\S+)$', text, re.MULTILINE) for one in series)
    return [float(match.group(1)) if match else None for match in found]


def passes_between(before: dict[str, float] | None, after: dict[str, float] | None) -> dict | None:
    if before is None or after is None:
        return None
    count = after["count"] - before["count"]
    return {"count": int(count), "mean_ms": round(1000 * (after["seconds"] - before["seconds"]) / max(1.0, count), 1),
            **{key: int(after[key] - before[key]) for key in after if key.startswith("over_")}}


def per_incident(before: dict[str, float], after: dict[str, float], incidents: int) -> dict[str, float]:
    """Requests per incident by "verb resource", most first; watches left out (long-lived, not per incident)."""
    out = {key: round((after[key] - before.get(key, 0.0)) / incidents, 2) for key in after
           if not key.startswith("watch ") and after[key] > before.get(key, 0.0)}
    return dict(sorted(out.items(), key=lambda item: -item[1]))


def measure_waiting(api: client.ApiClient, operator: OperatorProcess, namespace: str, count: int,
                    window: float) -> dict:
    """Requests per waiting Remediation per minute: the operator's request count over `window` seconds with
    nothing open, then with `count` Remediations awaiting approval, then with `count` more in their verification
    window; each difference from the count before, per Remediation."""
    idle_start = apiserver_requests(operator)
    if idle_start is None:
        return {"error": f"the operator exports no {REQUESTS_METRIC}"}
    time.sleep(window)
    idle = apiserver_requests(operator) - idle_start
    busy = requests_while_open(api, operator, namespace, "wait", WAIT_ALERTNAME, "AwaitingApproval", count, window)
    # The approval waiters stay open: they are this count's baseline.
    verifying = requests_while_open(api, operator, namespace, "verify", VERIFY_ALERTNAME, "Verifying", count, window)
    per_minute = 60.0 / window
    return {"waiting_remediations": count, "window_seconds": window,
            "operator_requests_idle_per_minute": round(idle * per_minute, 1),
            "operator_requests_waiting_per_minute": round(busy * per_minute, 1),
            "requests_per_waiting_remediation_per_minute": round(max(0.0, busy - idle) * per_minute / count, 2),
            "operator_requests_verifying_per_minute": round(verifying * per_minute, 1),
            "requests_per_verifying_remediation_per_minute": round(
                max(0.0, verifying - busy) * per_minute / count, 2),
            "goal": "<= 1 request per waiting Remediation per minute (approval or verification window)"}


def requests_while_open(api: client.ApiClient, operator: OperatorProcess, namespace: str, kind: str,
                        alertname: str, phase: str, count: int, window: float) -> float:
    """`count` incidents of `alertname` on fresh Deployments; once all their Remediations are in `phase`, the
    operator's apiserver requests over `window` seconds."""
    names = [f"{kind}-web-{i:04d}" for i in range(count)]
    create_deployments(api, namespace, names)
    custom = client.CustomObjectsApi(api)
    base = {"wait": 500000, "verify": 600000}[kind]
    resp = operator.post_alerts(alert_payload([
        {**bench_alert(namespace, name, base + i), "labels": {
            "alertname": alertname, "namespace": namespace, "deployment": name, "severity": "page"}}
        for i, name in enumerate(names)]))
    resp.raise_for_status()

    def all_in_phase() -> bool:
        items = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "remediations",
                                                     label_selector=f"remediator.dev/runbook=bench-{kind}")["items"]
        return sum((o.get("status") or {}).get("phase") == phase for o in items) >= count

    wait_for(all_in_phase, timeout=120, interval=1.0, what=f"{count} Remediations in {phase}")
    time.sleep(10)  # past the writes that enter the phase (a Slack post; the rollout's first readings)
    start = apiserver_requests(operator)
    time.sleep(window)
    return apiserver_requests(operator) - start


def commit() -> str:
    """The checkout measured: `git describe --always --dirty`, or "unknown"."""
    try:
        proc = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10, check=False)
    except OSError:
        return "unknown"
    return proc.stdout.strip() or "unknown"


def bench_alert(namespace: str, name: str, i: int) -> dict:
    now = format_time(datetime.now(UTC))
    return {"status": "firing",
            "labels": {"alertname": ALERTNAME, "namespace": namespace, "deployment": name, "severity": "page"},
            "annotations": {"summary": f"bench incident {i}"}, "startsAt": now,
            "endsAt": "0001-01-01T00:00:00Z", "fingerprint": f"bench-{i:06d}",
            "generatorURL": "http://bench.local"}


def knows_runbook(operator: OperatorProcess, namespace: str) -> bool:
    resp = operator.post_alerts(alert_payload([probe_alert(namespace)]))
    return resp.ok and resp.json()["results"][0]["outcome"] in ("created", "duplicate")


def probe_alert(namespace: str) -> dict:
    """Matches the Runbook and targets a Deployment that does not exist: its action fails, harmlessly."""
    return bench_alert(namespace, "probe-absent", 999999)


def print_table(figures: dict) -> None:
    for label, round_ in figures["rounds"].items():
        print(f"round: {label} ({round_['cluster_remediations_at_start']} Remediations in the cluster at its start)")
        print_round(round_)
        print()
    if figures.get("control"):
        print(f"control, no history, operator restarted: p99 / p99 empty: {figures['control']['p99_ratio_to_empty']}"
              "  (how far two rounds' p99s fall apart by themselves)")
    if figures["history"]:
        print(f"p99 with {figures['history']['terminal_remediations']} terminal Remediations / p99 empty: "
              f"{figures['history']['p99_ratio_to_empty']}  (goal <= 1.2); operator RSS at end "
              f"{figures['operator_rss_mib_at_end']} MiB (goal <= 150)")
    waiting = figures["waiting"]
    if waiting and "error" not in waiting:
        print(f"apiserver requests per waiting Remediation per minute: "
              f"{waiting['requests_per_waiting_remediation_per_minute']} (goal <= 1; {waiting['waiting_remediations']}"
              f" waiting, {waiting['operator_requests_waiting_per_minute']}/min with them, "
              f"{waiting['operator_requests_idle_per_minute']}/min idle); per Remediation in its verification "
              f"window: {waiting['requests_per_verifying_remediation_per_minute']} (as many more verifying, "
              f"{waiting['operator_requests_verifying_per_minute']}/min with both)")
    elif waiting:
        print(f"apiserver requests per waiting Remediation: not measured ({waiting['error']})")
    print(f"incidents {figures['incidents']} per round at {figures['rate_per_second']}/s, operator tick "
          f"{figures['operator_tick_seconds']}s; wall {figures['wall_seconds']}s; load average at end "
          f"{figures['host']['loadavg_1m_at_end']}")


def print_round(r: dict) -> None:
    rows = [("signal -> action PATCH seen", r["signal_to_action"]),
            ("raw PATCH -> seen", r["raw_patch"]),
            ("  ingest: POST -> Remediation seen", r["breakdown"]["ingest_post_to_remediation_seen"]),
            ("  plan: Remediation -> Acting", r["breakdown"]["plan_remediation_seen_to_acting"]),
            ("  act: Acting -> PATCH seen", r["breakdown"]["act_acting_to_patch_seen"]),
            ("webhook POST round trip", r["webhook_post_rtt"]),
            ("raw PATCH round trip", r["raw_patch_rtt"])]
    width = max(len(row[0]) for row in rows)
    print(f"{'':<{width}}  {'n':>4}  {'p50 ms':>8}  {'p90 ms':>8}  {'p99 ms':>8}  {'max ms':>8}")
    for label, s in rows:
        cells = [f"{s[k]:>8.1f}" if s[k] is not None else f"{'-':>8}" for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms")]
        print(f"{label:<{width}}  {s['n']:>4}  {'  '.join(cells)}")
    print("slowest incidents (ms): " + "; ".join(
        f"{row['signal_to_action_ms']} = ingest {row['ingest_ms']} + plan {row['plan_ms']} + act {row['act_ms']}"
        f" (raw PATCH {row['raw_patch_ms']})" for row in r["slowest"]))
    print(f"p99 ratio (signal->action / raw PATCH): {r['ratio_p99']}  (goal <= 5: "
          f"{'met' if r['ratio_p99'] is not None and r['ratio_p99'] <= 5 else 'not met'});  p50 ratio: "
          f"{r['ratio_p50']}")
    served = r.get("apiserver_path_service_ms")
    if served and served["floor"] is not None:
        print(f"apiserver's own mean ms per call of the round (server side; every such call, not only the path's): "
              f"create {served['create']}, read {served['read']}, dry run {served['dry_run']}, status write "
              f"{served['status_write']}, Deployment PATCH {served['patch']}; the path's chain at these means "
              f"{served['floor']} ms, of the {r['signal_to_action']['mean_ms']} ms mean signal -> action")
    elif served:
        print(f"apiserver's own times: a kind of call on the path was not seen in the round: {served}")
    else:
        print("apiserver's own times: not measured (its /metrics not readable)")
    print(f"offered {r['offered_rate_per_second']}/s; missed {r['missed']}; phases {r['remediation_phases']}; "
          f"webhook codes {r['webhook_codes']}")
    passes = r["operator_gc_full_passes"]
    gc_line = f"full GC passes {passes['count']} (mean {passes['mean_ms']} ms, {passes['over_25ms']} over 25 ms)" \
        if passes else "full GC passes not timed by this operator"
    trims = r.get("operator_heap_trims")
    if trims:
        gc_line += f"; heap trims {trims['count']} (mean {trims['mean_ms']} ms, {trims['over_10ms']} over 10 ms)"
    sweeps = r.get("operator_retention_sweeps")
    sweep_line = f"retention sweeps {sweeps['count']} ({sweeps['seconds']} s in all)" if sweeps else \
        "retention sweeps not timed by this operator"
    print(f"operator CPU {r['operator_cpu_seconds']}s ({r['operator_cpu_ms_per_incident']} ms per incident, goal "
          f"<= 100); RSS {r['operator_rss_mib']} MiB; peak open Remediations {r['peak_open_remediations']}; {gc_line}; "
          f"{sweep_line}")
    print(f"operator apiserver requests per incident {r['apiserver_requests_per_incident']}: "
          + ", ".join(f"{k} {v}" for k, v in r["apiserver_requests_per_incident_by_kind"].items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.bench.signal_to_action", description=__doc__.split("\n")[0])
    parser.add_argument("--incidents", type=int, default=200, help="incidents, one Deployment each (default 200)")
    parser.add_argument("--rate", type=float, default=1.0,
                        help="incidents offered per second (default 1; see the module doc for why)")
    parser.add_argument("--tick", type=float, default=0.5,
                        help="the operator's --tick (default 0.5, as tests/support/operator.py runs it)")
    parser.add_argument("--settle", type=float, default=120.0,
                        help="seconds to wait after the last send for the PATCHes and the verifications")
    parser.add_argument("--history", type=int, default=10000,
                        help="terminal Remediations added before a second round (default 10000; 0: no second round)")
    parser.add_argument("--waiting", type=int, default=20,
                        help="Remediations left awaiting approval to count requests per waiting one (default 20; 0: "
                             "not measured)")
    parser.add_argument("--wait-window", type=float, default=60.0, help="seconds each request count spans")
    parser.add_argument("--control", action="store_true",
                        help="before the history round, the same round with no history after a restart of the "
                             "operator: the noise floor of the history ratio, in the same run")
    parser.add_argument("--output", type=Path, default=RESULTS / "signal_to_action.json")
    args = parser.parse_args(argv)
    if args.incidents < 1 or args.rate <= 0:
        parser.error("--incidents must be >= 1 and --rate > 0")
    figures = run(args.incidents, args.rate, args.tick, args.settle, args.history, args.waiting,
                  args.wait_window, args.control)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(figures, indent=2) + "\n")
    print_table(figures)
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
