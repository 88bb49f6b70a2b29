"""Watch-fed caches on the real apiserver: a plan reads only what must be fresh, and sees every edit and
every recent Remediation all the same. Requests are counted by the operator itself
(`remediator_apiserver_requests_total`, scraped from its /metrics)."""

from __future__ import annotations

import concurrent.futures
import time
from datetime import datetime, timedelta, timezone

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from remediator.api.models import GROUP, VERSION, ObjectRef, RemediationSpec, RunbookRef, Signal
from tests.integration.test_operator_loop import NO_APPROVALS, rollback_runbook
from tests.support.operator import OperatorProcess, alert, alert_payload
from tests.support.waiting import wait_for

# runs alone: restarts the apiserver; fills the cluster with 600 Remediations
pytestmark = [pytest.mark.integration, pytest.mark.serial]

# Reads a plan must not make: everything here is watch-fed.
CACHED = {("list", "remediations"), ("list", "remediationpolicies"), ("get", "runbooks"), ("get", "namespaces"),
          ("list", "runbooks")}


def requests_made(operator) -> dict[tuple[str, str], float]:
    text = requests.get(f"{operator.url}/metrics", timeout=5).text
    return {(s.labels["verb"], s.labels["resource"]): s.value
            for family in text_string_to_metric_families(text) if family.name == "remediator_apiserver_requests"
            for s in family.samples if s.name.endswith("_total")}


def delta(after: dict, before: dict) -> dict:
    return {key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key, 0)}


def stamp(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def terminal_remediation(cluster, name: str, target: str, finished: datetime) -> None:
    """A Failed Remediation of the `bad-rollout` Runbook whose rollback ran, as the loop leaves one."""
    spec = RemediationSpec(signal=Signal(source="manual", name="old incident"),
                           target=ObjectRef(kind="Deployment", namespace=cluster.ns, name=target),
                           runbook=RunbookRef(name="bad-rollout", namespace=cluster.ns))
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Remediation",
            "metadata": {"name": name, "namespace": cluster.ns}, "spec": spec.wire()}
    cluster.custom.create_namespaced_custom_object(GROUP, VERSION, cluster.ns, "remediations", body)
    started = finished - timedelta(minutes=2)
    cluster.custom.patch_namespaced_custom_object_status(GROUP, VERSION, cluster.ns, "remediations", name, {
        "status": {"phase": "Failed", "startedAt": stamp(started), "finishedAt": stamp(finished),
                   "steps": [{"index": 0, "name": "rollback", "action": "rollback", "idempotencyKey": f"{name}-0", "phase": "Failed"}]}})


def test_a_policy_and_runbook_edited_while_running_are_what_the_next_plan_uses(cluster, operator):
    cluster.apply_policy({"mode": "dryRun", **NO_APPROVALS})
    cluster.apply_runbook("bad-rollout", rollback_runbook())
    for name in ("web", "api"):
        cluster.deploy(name, replicas=1)
    assert operator.post_alerts(alert_payload([alert(cluster.ns, "web", fingerprint="f1")])).status_code == 200
    first = wait_for(cluster.remediations, what="the first Remediation")[0]["metadata"]["name"]
    assert cluster.wait_phase(first, {"Skipped", "Succeeded", "Failed"})["status"]["dryRun"] is True

    cluster.custom.patch_cluster_custom_object(GROUP, VERSION, "remediationpolicies", cluster.policies[0],
                                               {"spec": {"mode": "enforce"}})
    edited = rollback_runbook()
    edited["steps"][0]["name"] = "roll-back-edited"
    current = cluster.custom.get_namespaced_custom_object(GROUP, VERSION, cluster.ns, "runbooks", "bad-rollout")
    cluster.custom.replace_namespaced_custom_object(GROUP, VERSION, cluster.ns, "runbooks", "bad-rollout",
                                                    {**current, "spec": edited})
    time.sleep(1)  # a watch event's way to the operator; nothing else is waited for
    assert operator.post_alerts(alert_payload([alert(cluster.ns, "api", fingerprint="f2")])).status_code == 200
    second = wait_for(lambda: [r for r in cluster.remediations() if r["metadata"]["name"] != first],
                      what="the second Remediation")[0]["metadata"]["name"]
    status = wait_for(lambda: (cluster.remediation(second).get("status") or {}).get("steps") and
                      cluster.remediation(second)["status"], what="the second plan's first step")
    assert not status.get("dryRun"), status
    assert status["steps"][0]["name"] == "roll-back-edited", status["steps"]


def test_a_waiting_remediation_and_its_plan_read_nothing_the_caches_hold(cluster, operator):
    cluster.apply_policy({})  # default approval rules: a high-risk rollback waits for an approver
    cluster.apply_runbook("bad-rollout", rollback_runbook())
    cluster.deploy("web", replicas=1)
    before = requests_made(operator)
    assert operator.post_alerts(alert_payload([alert(cluster.ns, "web")])).status_code == 200
    name = wait_for(cluster.remediations, what="a Remediation")[0]["metadata"]["name"]
    cluster.wait_phase(name, {"AwaitingApproval"})
    planned = requests_made(operator)
    waiting = 10.0
    time.sleep(waiting)  # what a Remediation costs while it only waits
    after = requests_made(operator)
    print(f"requests of ingest + plan: {delta(planned, before)}")
    print(f"requests while waiting, per minute: "
          f"{ {k: v * 60 / waiting for k, v in delta(after, planned).items()} }")
    assert ("update", "remediations/status") in delta(planned, before), "the counter sees the plan's write"
    assert not CACHED & set(delta(planned, before)), delta(planned, before)
    assert not CACHED & set(delta(after, planned)), delta(after, planned)


def test_with_600_old_failures_in_the_cluster_the_breaker_counts_just_the_recent_ones(cluster, kubeconfig,
                                                                                         tmp_path):
    cluster.apply_policy({**NO_APPROVALS, "circuitBreaker": {"failures": 3, "window": "1h"}})
    cluster.apply_runbook("bad-rollout", rollback_runbook())
    cluster.deploy("api", replicas=1)
    now = datetime.now(timezone.utc)
    with concurrent.futures.ThreadPoolExecutor(16) as pool:  # more than one LIST page (500) to prime
        list(pool.map(lambda i: terminal_remediation(cluster, f"old-{i}", "web", now - timedelta(days=3)),
                      range(600)))
        list(pool.map(lambda i: terminal_remediation(cluster, f"recent-{i}", "web", now - timedelta(minutes=10)),
                      range(3)))
    operator = OperatorProcess(kubeconfig, [cluster.ns], tmp_path).start()
    try:
        primed = requests_made(operator)
        assert operator.post_alerts(alert_payload([alert(cluster.ns, "api")])).status_code == 200
        name = wait_for(lambda: [r for r in cluster.remediations() if not r["metadata"]["name"].startswith(
            ("old-", "recent-"))], what="the new Remediation")[0]["metadata"]["name"]
        status = cluster.wait_phase(name, {"Skipped", "Succeeded", "Failed", "Escalated"})["status"]
        assert status["phase"] == "Skipped", status
        assert "circuit breaker open: 3 failed remediations" in status["reason"], status["reason"]
        # (The Runbook's outcome statistics read each old Remediation once, apart from planning: not counted here.)
        made = delta(requests_made(operator), primed)
        assert ("update", "remediations/status") in made, "the counter sees the plan's write"
        assert not {("list", "remediations"), ("list", "remediationpolicies"), ("get", "namespaces")} & set(made), made
    finally:
        operator.stop()


def restart_apiserver() -> None:
    from e2e.cluster import control_plane

    control_plane.restart_apiserver(down_for=3)
    wait_for(control_plane.apiserver_ready, timeout=60, what="the apiserver back")


def test_a_policy_set_to_dry_run_after_the_apiserver_restarts_is_what_the_next_plan_uses(cluster, operator):
    """After a restart the apiserver reports the caches' resourceVersions as expired inside the watch stream;
    the caches must list again, not retry the dead version forever and plan from what they held."""
    cluster.apply_policy({"mode": "enforce", **NO_APPROVALS})
    cluster.apply_runbook("bad-rollout", rollback_runbook())
    cluster.deploy("web", replicas=1)
    time.sleep(1)  # the policy's watch event on its way
    restart_apiserver()
    cluster.custom.patch_cluster_custom_object(GROUP, VERSION, "remediationpolicies", cluster.policies[0],
                                               {"spec": {"mode": "dryRun"}})
    time.sleep(10)  # the watches' backoff after the outage, then a watch event's way to the operator
    assert operator.post_alerts(alert_payload([alert(cluster.ns, "web")])).status_code == 200
    name = wait_for(cluster.remediations, what="the Remediation")[0]["metadata"]["name"]
    status = cluster.wait_phase(name, {"Skipped", "Succeeded", "Failed", "Escalated"})["status"]
    assert status.get("dryRun") is True, f"planned from the policy held before the restart: {status}"
