"""After real incidents on the control plane, `remediator report` says what the Remediation records say,
and the operator's traces and metrics tell the same story."""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
import threading
from http.server import ThreadingHTTPServer

import pytest
import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from prometheus_client.parser import text_string_to_metric_families

from remediator.approvals.kubernetes import cast_vote
from remediator.core.durations import parse_time
from remediator.records.tracing import root_span_id_for, trace_id_for
from tests.integration.test_kubernetes_approvals import voters  # noqa: F401 -- a fixture this test uses
from tests.support.http_stub import QuietHandler, answer
from tests.support.operator import OperatorProcess, alert, alert_payload
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

TERMINAL = {"Succeeded", "Failed", "Escalated", "Denied", "Cancelled", "Skipped", "Expired"}
POLICY = {"approval": {"rules": [
    {"level": "low", "approvers": 0}, {"level": "medium", "approvers": 0},
    *({"level": lvl, "approvers": 1, "allowedKubernetesUsers": ["alice"], "timeout": "10m", "onTimeout": "deny"}
      for lvl in ("high", "critical"))]}}


class OtlpReceiver:
    """A minimal OTLP/HTTP trace receiver: keeps every span the operator exports."""

    def __init__(self):
        self.spans: list = []
        receiver = self

        class Handler(QuietHandler):
            def do_POST(self):  # the name http.server calls
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = ExportTraceServiceRequest.FromString(body)
                receiver.spans += [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
                answer(self, ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def trace(self, uid: str) -> list:
        wanted = trace_id_for(uid).to_bytes(16, "big")
        return [s for s in self.spans if s.trace_id == wanted]

    def close(self):
        self.server.shutdown()


@pytest.fixture
def traced_operator(kubeconfig, namespace, crds, tmp_path):
    receiver = OtlpReceiver()
    op = OperatorProcess(kubeconfig, [namespace], tmp_path, env={
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "200",
        "OTEL_SERVICE_NAME": "remediator-test"})
    op.start()
    yield op, receiver
    op.stop()
    receiver.close()


def runbook(alertname: str, step: dict) -> dict:
    return {"triggers": [{"alert": {"matchers": [{"name": "alertname", "value": alertname}]}}],
            "target": {"kind": "Deployment", "name": "{{ labels.deployment }}"},
            "steps": [step], "guard": {"cooldown": "10m", "maxRunsPerHour": 5}}


def attributes(span) -> dict:
    out = {}
    for kv in span.attributes:
        value = kv.value
        kind = value.WhichOneof("value")
        out[kv.key] = [v.string_value for v in value.array_value.values] if kind == "array_value" \
            else getattr(value, kind)
    return out


def seconds_between(start: str, end: str) -> float:
    return (parse_time(end) - parse_time(start)).total_seconds()


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(0.9 * len(ordered)) - 1]


def metric(text: str, name: str, labels: dict) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def test_report_traces_and_metrics_match_the_remediation_records(
        cluster, traced_operator, voters, kubeconfig, tmp_path):  # noqa: F811 -- voters is the imported fixture
    operator, receiver = traced_operator
    cluster.apply_policy(POLICY)
    # 1: a slow API is restarted, no human involved. 2: a bad rollout is rolled back once alice approves.
    # 3: a crash-looping database is restarted, which does not help: verification fails, the ladder ends.
    cluster.apply_runbook("restart-api", runbook("ApiSlow", {
        "name": "restart", "action": "restartRollout", "risk": "low", "verify": {"rolloutComplete": {}}}))
    cluster.apply_runbook("bad-rollout", runbook("HighErrorRate", {
        "name": "rollback", "action": "rollback", "risk": "high", "verify": {"rolloutComplete": {}}}))
    cluster.apply_runbook("restart-db", runbook("DbDown", {
        "name": "restart", "action": "restartRollout", "risk": "low", "timeout": "10s",
        "verify": {"podsReady": {"window": "3s"}}}))
    for name in ("api", "web", "db"):
        cluster.deploy(name, replicas=2)
    cluster.custom.create_namespaced_custom_object("remediator.dev", "v1alpha1", cluster.ns,
                                                   "servicelevelobjectives", {
        "apiVersion": "remediator.dev/v1alpha1", "kind": "ServiceLevelObjective", "metadata": {"name": "web"},
        "spec": {"service": "web", "target": {"kind": "Deployment", "name": "web"}, "objective": 99.9,
                 "sli": {"goodTotal": {
                     "good": 'sum(rate(http_requests_total{code!~"5..",service="{{ service }}"}[{{ window }}]))',
                     "total": 'sum(rate(http_requests_total{service="{{ service }}"}[{{ window }}]))'}}}})
    cluster.bad_rollout("web")
    cluster.bad_rollout("db", image="registry.local/db:bad")
    wait_for(lambda: len(cluster.revisions("web")) == 2 and len(cluster.revisions("db")) == 2, what="bad revisions")

    alerts = [alert(cluster.ns, "api", "ApiSlow", fingerprint="api1"),
              alert(cluster.ns, "web", "HighErrorRate", fingerprint="web1"),
              alert(cluster.ns, "db", "DbDown", fingerprint="db1")]
    resp = operator.post_alerts(alert_payload(alerts))
    assert resp.status_code == 200, resp.text
    names = {r["remediation"]: a["labels"]["deployment"] for r, a in zip(resp.json()["results"], alerts)}
    by_target = {target: name for name, target in names.items()}

    waiting = cluster.wait_phase(by_target["web"], {"AwaitingApproval"} | TERMINAL)["status"]
    assert waiting["phase"] == "AwaitingApproval", waiting["reason"]
    assert cast_vote(voters["alice"], cluster.ns, by_target["web"], "approve", "seen it")["status"]["outcome"] \
        == "accepted"
    final = {target: cluster.wait_phase(name, TERMINAL)["status"] for target, name in by_target.items()}
    assert {t: s["phase"] for t, s in final.items()} == {"api": "Succeeded", "web": "Succeeded", "db": "Escalated"}

    # The report, from the cluster, through the real command.
    proc = subprocess.run([sys.executable, "-m", "remediator", "report", "--kubeconfig", kubeconfig,
                           "-n", cluster.ns, "--since", "1h", "--output", "json",
                           "--plot", str(tmp_path / "report.png")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout)["figures"]

    # The same figures, computed here from the records.
    objects = cluster.remediations()
    records = [r["status"] for r in objects]
    # time to restore: restored (Succeeded: finishedAt) - the signal's start; the escalated one is unresolved
    recovered = [max(0.0, seconds_between(r["spec"]["signal"].get("startsAt") or r["status"]["startedAt"],
                                          r["status"].get("restoredAt") or r["status"]["finishedAt"]))
                 for r in objects if r["status"]["phase"] == "Succeeded"]
    humans = [s for s in records if (s.get("approval") or {}).get("required", 0) > 0]
    applied = [step for s in records for step in s["steps"] if step.get("appliedAt")]
    waits = [seconds_between(s["approval"]["requestedAt"], s["approval"]["decidedAt"]) for s in humans]
    assert figures["incidents"] == len(records) == 3 and figures["open"] == 0
    assert figures["outcomes"] == {"Escalated": 1, "Succeeded": 2}
    assert figures["timeToRestore"]["operator"] == {"count": 2, "medianSeconds": statistics.median(recovered),
                                                    "p90Seconds": p90(recovered)}
    if not final["db"].get("restoredBy"):
        assert figures["timeToRestore"]["unresolvedIncidents"] == [f"{cluster.ns}/{by_target['db']}"]
        assert figures["timeToRestore"]["every"]["count"] == 3 and figures["timeToRestore"]["every"]["lowerBound"]
    assert figures["autoRemediated"] == {"part": 1, "whole": 3, "percent": 33.33, "shownApart": {}}
    assert figures["neededApproval"] == {"part": len(humans), "whole": 3, "percent": 33.33}
    failed = [step for step in applied if step["phase"] != "Succeeded"]
    assert figures["remediationFailureRate"] == {"part": len(failed), "whole": len(applied),
                                                 "percent": round(100 * len(failed) / len(applied), 2),
                                                 "didNotRestore": len(failed), "followedByWorseSignal": 0}
    assert (len(failed), len(applied)) == (1, 3)
    assert figures["approvalLatency"] == {"count": 1, "medianSeconds": waits[0], "p90Seconds": waits[0]}
    assert figures["sloCoverage"] == {"part": 1, "whole": 3, "percent": 33.33, "systemNamespacesExcluded": [],
                                      "byNamespace": {cluster.ns: {"part": 1, "whole": 3, "percent": 33.33}}}
    assert {r["runbook"]: r["successRate"]["percent"] for r in figures["runbooks"]} == {
        f"{cluster.ns}/restart-api": 100.0, f"{cluster.ns}/bad-rollout": 100.0, f"{cluster.ns}/restart-db": 0.0}
    assert (tmp_path / "report.png").read_bytes()[:4] == b"\x89PNG"

    # The trace of the approved rollback: one root, every stage under it, the gate held then passed.
    uid = cluster.remediation(by_target["web"])["metadata"]["uid"]
    def finished_trace():
        spans = receiver.trace(uid)
        return spans if any(s.name == "remediation" for s in spans) else None

    spans = wait_for(finished_trace, what="the rollback's root span exported")
    root_id = root_span_id_for(uid).to_bytes(8, "big")
    root = next(s for s in spans if s.name == "remediation")
    assert root.span_id == root_id and root.parent_span_id == b""
    assert all(s.parent_span_id == root_id for s in spans if s is not root)
    assert sorted({s.name for s in spans}) == ["act", "gate", "match", "plan", "remediation", "verify"]
    assert [attributes(s)["verdict"] for s in spans if s.name == "gate"][:2] == ["AwaitingApproval", "Acting"]
    act = next(attributes(s) for s in spans if s.name == "act")
    assert (act["action"], act["step"], act["target"]) == ("rollback", "rollback", f"Deployment/{cluster.ns}/web")
    assert attributes(root)["outcome"] == "Succeeded"
    db = wait_for(lambda: [s for s in receiver.trace(cluster.remediation(by_target["db"])["metadata"]["uid"])
                           if s.name == "verify"], what="the database's verify span")
    assert attributes(db[0])["verdict"] == "failed"

    # The metrics the same process exported.
    text = requests.get(f"{operator.url}/metrics", timeout=5).text
    assert metric(text, "remediator_remediations_total", {"runbook": "restart-api", "outcome": "Succeeded"}) == 1
    assert metric(text, "remediator_remediations_total", {"runbook": "restart-db", "outcome": "Escalated"}) == 1
    assert metric(text, "remediator_approval_wait_seconds_count", {"decision": "approved"}) == 1
    assert metric(text, "remediator_actions_total", {"action": "rollback", "result": "applied"}) == 1
    assert metric(text, "remediator_actions_total", {"action": "restartRollout", "result": "applied"}) == 2
    assert metric(text, "remediator_time_to_recover_seconds_count", {"runbook": "bad-rollout"}) == 1
    assert metric(text, "remediator_webhook_requests_total", {"endpoint": "alertmanager", "code": "200"}) == 1
