"""SLO burn drives the loop, with a real Prometheus and Alertmanager and the sample service's metrics.

The sample service (e2e/sample_service.py) turns the Deployment's Ready pods into request counters, so
a bad rollout burns the SLO for real and a rollback heals it. Windows are scaled by the SLO's own
`windowScale` (e2e/demo/slo.yaml), never by a test-only code path.
"""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml
from e2e.monitoring import Alertmanager, Prometheus, free_port

from remediator.core.durations import parse_time
from tests.integration.conftest import GROUP, VERSION
from tests.integration.test_operator_loop import NO_APPROVALS, only_remediation
from tests.support.operator import OperatorProcess
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DEMO = Path(__file__).resolve().parents[2] / "e2e" / "demo"
BAD_IMAGE = "registry.local/web:1.1-bad"


def demo_resource(name: str) -> dict:
    return yaml.safe_load((DEMO / name).read_text())


class SampleService:
    def __init__(self, kubeconfig: str, namespace: str, workdir: Path):
        self.port = free_port()
        self.log = open(workdir / "sample-service.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "e2e.sample_service", "--namespace", namespace, "--deployment", "web",
             "--port", str(self.port), "--kubeconfig", kubeconfig], stdout=self.log, stderr=subprocess.STDOUT)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def service(cluster, kubeconfig, tmp_path):
    cluster.deploy("web", replicas=3)
    svc = SampleService(kubeconfig, cluster.ns, tmp_path)
    yield svc
    svc.stop()


@pytest.fixture
def prometheus(service, tmp_path, cluster):
    prom = Prometheus(tmp_path / "prometheus", targets=[service.target])
    prom.start()
    prom.wait_for_series(f'sample_http_requests_total{{namespace="{cluster.ns}",code="200"}}')
    yield prom
    prom.stop()


@pytest.fixture
def slo_operator(kubeconfig, namespace, crds, tmp_path, prometheus):
    op = OperatorProcess(kubeconfig, [namespace], tmp_path, extra_args=["--prometheus-url", prometheus.url])
    op.start()
    yield op
    op.stop()


def apply(cluster, body: dict, plural: str) -> dict:
    body = {**body, "metadata": {**body["metadata"], "namespace": cluster.ns}}
    return cluster.custom.create_namespaced_custom_object(GROUP, VERSION, cluster.ns, plural, body)


def slo_condition(cluster, kind: str = "Breaching") -> dict | None:
    slo = cluster.custom.get_namespaced_custom_object(GROUP, VERSION, cluster.ns, "servicelevelobjectives",
                                                      "web-availability")
    return next((c for c in (slo.get("status") or {}).get("conditions", []) if c["type"] == kind), None)


def roll_out_bad_image(cluster) -> None:
    cluster.apps.patch_namespaced_deployment("web", cluster.ns, {"spec": {"template": {"spec": {
        "containers": [{"name": "app", "image": BAD_IMAGE}]}}}})


def image(cluster) -> str:
    return cluster.apps.read_namespaced_deployment("web", cluster.ns).spec.template.spec.containers[0].image


def test_bad_rollout_burns_the_slo_and_the_rollback_is_verified_by_its_recovery(cluster, slo_operator):
    cluster.apply_policy(NO_APPROVALS)
    apply(cluster, demo_resource("runbook.yaml"), "runbooks")
    apply(cluster, demo_resource("slo.yaml"), "servicelevelobjectives")
    wait_for(lambda: (slo_condition(cluster) or {}).get("status") == "False", timeout=60,
             what="SLO evaluated within budget before the rollout")
    good_image = image(cluster)

    roll_out_bad_image(cluster)
    breach = wait_for(lambda: (c := slo_condition(cluster)) and c["reason"] == "PageBurnRate" and c, timeout=90,
                      what="SLO burning at page severity")  # the ticket pair (threshold 1x) fires first
    assert breach["status"] == "True" and "burn" in breach["message"]

    remediation = only_remediation(cluster)
    assert remediation["spec"]["signal"]["source"] == "sloBurn"
    assert remediation["spec"]["target"] == {"kind": "Deployment", "name": "web", "namespace": cluster.ns}
    status = cluster.wait_phase(remediation["metadata"]["name"], {"Succeeded", "Failed", "Escalated"},
                                timeout=180)["status"]
    assert status["phase"] == "Succeeded", status
    assert any("web-availability" in reason for reason in status["matchReasons"]), status["matchReasons"]
    step = status["steps"][0]
    assert step["action"] == "rollback" and step["phase"] == "Succeeded"
    promql = [e for e in step["evidence"] if e["kind"] == "promql"]
    assert promql and all("sample_http_requests_total" in e["detail"] for e in promql), step["evidence"]
    assert all(e["value"] is not None and float(e["value"]) < 1 for e in promql)
    assert image(cluster) == good_image
    # The page burn is over; the slower ticket pair (3d/6h scaled to 36m/3m) may still fire for minutes.
    wait_for(lambda: (slo_condition(cluster) or {}).get("reason") != "PageBurnRate", timeout=60,
             what="page burn over")
    events = cluster.core.list_namespaced_event(cluster.ns, field_selector="involvedObject.name=web-availability")
    assert {"BreachingFalse", "BreachingTrue"} <= {e.reason for e in events.items}


def test_prometheus_gone_mid_verification_is_inconclusive_and_the_remediation_says_so(
        cluster, slo_operator, prometheus):
    cluster.apply_policy(NO_APPROVALS)
    runbook = demo_resource("runbook.yaml")
    step = runbook["spec"]["steps"][0]
    step["timeout"] = "30s"
    step["verify"] = {"sloRecovered": {"slo": "web-availability", "for": "10m"}}  # cannot pass in 30 s
    apply(cluster, runbook, "runbooks")
    apply(cluster, demo_resource("slo.yaml"), "servicelevelobjectives")
    wait_for(lambda: (slo_condition(cluster) or {}).get("status") == "False", timeout=60, what="SLO evaluated")

    roll_out_bad_image(cluster)
    wait_for(cluster.remediations, timeout=90, what="a Remediation")
    name = only_remediation(cluster)["metadata"]["name"]
    cluster.wait_phase(name, {"Verifying"}, timeout=90)
    prometheus.stop()

    status = cluster.wait_phase(name, {"Succeeded", "Failed", "Escalated"}, timeout=90)["status"]
    assert status["phase"] == "Escalated", status
    record = status["steps"][0]
    assert record["phase"] == "Inconclusive" and record["result"] == "inconclusive"
    assert "Prometheus has not answered" in record["message"], record["message"]
    assert "inconclusive" in status["reason"] and "Prometheus" in status["reason"]
    unknown = wait_for(lambda: (c := slo_condition(cluster)) and c["status"] == "Unknown" and c, timeout=30,
                       what="SLO status says Prometheus is unavailable")
    assert unknown["reason"] == "PrometheusUnavailable"


def test_alertmanager_delivers_prometheus_slo_alerts_to_the_receiver_with_bearer_auth(
        cluster, kubeconfig, namespace, crds, service, tmp_path):
    rules = tmp_path / "slo-rules.yaml"
    slo_file = tmp_path / "slo.yaml"
    slo_file.write_text(yaml.safe_dump(demo_resource("slo.yaml")))
    out = subprocess.run([sys.executable, "-m", "remediator", "slo", "rules", "-f", str(slo_file), "-n", cluster.ns],
                         capture_output=True, text=True, check=True)
    rules.write_text(out.stdout)
    op = OperatorProcess(kubeconfig, [namespace], tmp_path)
    alertmanager = Alertmanager(tmp_path / "alertmanager", f"{op.url}/webhooks/alertmanager", op.token_file)
    prom = Prometheus(tmp_path / "prometheus", targets=[service.target], rule_files=[rules],
                      alertmanager=alertmanager.url)
    try:
        op.start()
        alertmanager.start()
        prom.start()
        cluster.apply_policy({"mode": "dryRun"})
        cluster.apply_runbook("slo-alert", {
            "triggers": [{"alert": {"matchers": [{"name": "alertname", "value": "SLOErrorBudgetBurn"},
                                                 {"name": "slo_name", "value": "web-availability"},
                                                 {"name": "severity", "value": "page"}]}}],
            "target": {"kind": "Deployment", "name": "{{ labels.deployment }}"},
            "steps": [{"name": "rollback", "action": "rollback", "risk": "high"}],
        })
        prom.wait_for_series(f'slo:sli_error:ratio_rate30s{{slo_namespace="{cluster.ns}"}}')
        roll_out_bad_image(cluster)

        remediation = wait_for(cluster.remediations, timeout=120, what="a Remediation from Alertmanager")[0]
        signal = remediation["spec"]["signal"]
        assert signal["source"] == "alertmanager" and signal["name"] == "SLOErrorBudgetBurn"
        assert signal["labels"]["slo_name"] == "web-availability" and signal["labels"]["severity"] == "page"
        assert remediation["spec"]["target"]["name"] == "web"
        assert "burning its error budget" in signal["summary"]
    finally:
        prom.stop()
        alertmanager.stop()
        op.stop()


def wait_for_baseline(cluster, runbook: str, samples: int, timeout: float = 120) -> dict:
    """The Runbook's AnomalyBaselineReady condition once it is True with at least `samples` in every series."""
    def learned():
        status = cluster.custom.get_namespaced_custom_object(GROUP, VERSION, cluster.ns, "runbooks", runbook)
        condition = next((c for c in (status.get("status") or {}).get("conditions") or []
                          if c["type"] == "AnomalyBaselineReady"), {})
        fewest = re.search(r"fewest (\d+) samples", condition.get("message", ""))
        return condition if condition.get("status") == "True" and fewest and int(fewest[1]) >= samples else None
    return wait_for(learned, timeout=timeout, interval=1, what=f"the baseline of {runbook} at {samples} samples")


def latency_query(namespace: str) -> str:
    return ("histogram_quantile(0.95, sum by (le) (rate(sample_http_request_duration_seconds_bucket"
            f'{{namespace="{namespace}",service="web"}}[10s])))')


def test_latency_anomaly_after_a_bad_rollout_rolls_back_and_promql_verifies_the_recovery(cluster, slo_operator):
    cluster.apply_policy(NO_APPROVALS)
    query = latency_query(cluster.ns)
    cluster.apply_runbook("latency-anomaly", {
        "triggers": [{"anomaly": {"query": query, "description": "p95 latency", "unit": "s",
                                  "baseline": {"lookback": "2m", "step": "2s"}, "minSamples": 10,
                                  "threshold": 6, "clearThreshold": 3}}],
        "target": {"kind": "Deployment", "name": "web"},
        "steps": [{"name": "rollback", "action": "rollback", "risk": "high", "timeout": "2m",
                   "verify": {"promql": {"query": query, "op": "<", "threshold": 0.2, "for": "10s"}}}],
    })
    wait_for_baseline(cluster, "latency-anomaly", samples=10)  # learned from the healthy service
    assert not cluster.remediations(), "a healthy, flat series must not fire"

    roll_out_bad_image(cluster)
    remediation = wait_for(cluster.remediations, timeout=90, what="an anomaly Remediation")[0]
    signal = remediation["spec"]["signal"]
    assert signal["source"] == "anomaly" and signal["name"] == "p95 latency"
    assert "above its" in signal["summary"] and "baseline" in signal["summary"], signal["summary"]
    status = cluster.wait_phase(remediation["metadata"]["name"], {"Succeeded", "Failed", "Escalated"},
                                timeout=180)["status"]
    assert status["phase"] == "Succeeded", status
    evidence = [e for e in status["steps"][0]["evidence"] if e["kind"] == "promql"]
    assert evidence and all(float(e["value"]) < 0.2 for e in evidence), evidence
    assert "histogram_quantile" in evidence[0]["detail"]


def test_a_latency_level_that_stays_after_a_deliberate_rollout_is_relearned_and_the_remediation_says_so(
        cluster, slo_operator):
    cluster.apply_policy({"mode": "dryRun"})
    query = latency_query(cluster.ns)
    cluster.apply_runbook("latency-anomaly", {
        "triggers": [{"anomaly": {"query": query, "description": "p95 latency", "unit": "s",
                                  "baseline": {"lookback": "2m", "step": "2s"}, "minSamples": 10}}],
        "target": {"kind": "Deployment", "name": "web"},
        "steps": [{"name": "rollback", "action": "rollback", "risk": "high"}],
    })
    # Enough healthy samples that the robust baseline does not drift up to the new level by itself
    # before the 12 evaluations after which a shift that follows a change is re-learned.
    wait_for_baseline(cluster, "latency-anomaly", samples=30)
    cluster.apps.patch_namespaced_deployment("web", cluster.ns, {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "env": [{"name": "SAMPLE_LATENCY_MS", "value": "300"}]}]}}}})  # slower, on purpose

    remediation = wait_for(cluster.remediations, timeout=60, what="the shift fires first")[0]
    name = remediation["metadata"]["name"]

    def relearned():
        status = cluster.remediation(name).get("status") or {}
        return status.get("signalResolvedAt") and [t for t in status.get("timeline", [])
                                                   if t["kind"] == "SignalResolved"]
    entry = wait_for(relearned, timeout=120, what="the baseline re-learned and the signal resolved")[0]
    assert entry["message"].startswith("baseline re-learned: p95 latency sat at about"), entry
    assert "after the change at" in entry["message"]
    events = cluster.core.list_namespaced_event(cluster.ns, field_selector="involvedObject.name=latency-anomaly")
    assert "BaselineRelearned" in {e.reason for e in events.items}
    assert len(cluster.remediations()) == 1, "the new level does not fire again"


def test_an_escalated_slo_burn_is_restored_by_humans_once_their_rollback_brings_the_burn_back_within_budget(
        cluster, slo_operator):
    cluster.apply_policy(NO_APPROVALS)
    runbook = demo_resource("runbook.yaml")
    # a restart keeps the bad image: the burn goes on, the verification fails and the ladder is exhausted
    runbook["spec"]["steps"] = [{"name": "restart", "action": "restartRollout", "risk": "low", "timeout": "10s",
                                 "verify": {"sloRecovered": {"slo": "web-availability", "for": "5s"}}}]
    apply(cluster, runbook, "runbooks")
    apply(cluster, demo_resource("slo.yaml"), "servicelevelobjectives")
    wait_for(lambda: (slo_condition(cluster) or {}).get("status") == "False", timeout=60,
             what="SLO evaluated within budget before the rollout")
    good_image = image(cluster)

    roll_out_bad_image(cluster)
    name = wait_for(cluster.remediations, timeout=90, what="an sloBurn Remediation")[0]["metadata"]["name"]
    status = cluster.wait_phase(name, {"Succeeded", "Failed", "Escalated"}, timeout=120)["status"]
    assert status["phase"] == "Escalated", status["reason"]
    assert cluster.remediation(name)["status"].get("restoredAt") is None, "not over while the SLO burns"

    fixed_at = datetime.now(timezone.utc)
    cluster.apps.patch_namespaced_deployment("web", cluster.ns, {"spec": {"template": {"spec": {
        "containers": [{"name": "app", "image": good_image}]}}}})  # what on-call does: back to what worked
    status = wait_for(lambda: (s := cluster.remediation(name)["status"]).get("restoredAt") and s, timeout=90,
                      what="the incident's end recorded once the page burn is over")
    assert status["phase"] == "Escalated" and status["restoredBy"] == "humans", status
    assert parse_time(status["restoredAt"]) >= parse_time(status["signalResolvedAt"]) >= fixed_at
    assert "resolvedBy" not in status, "no one ran remediator resolve: the SLO said it"
    assert len(cluster.remediations()) == 1
