"""The operator process closes the loop on the real control plane: signal -> act -> verify -> record."""

from __future__ import annotations

import concurrent.futures
import time
from datetime import datetime, timezone

import pytest
import requests

from tests.support.operator import alert, alert_payload
from tests.support.waiting import wait_for
from remediator.core.durations import format_time

pytestmark = pytest.mark.integration

# Approval gates are their own issue: these tests' policy lets every level act alone.
NO_APPROVALS = {"approval": {"rules": [{"level": lvl, "approvers": 0}
                                       for lvl in ("low", "medium", "high", "critical")]}}


def rollback_runbook(verify=None, cooldown="10m", timeout="90s", kind="Deployment") -> dict:
    return {
        "triggers": [{"alert": {"matchers": [{"name": "alertname", "value": "HighErrorRate"}]}}],
        "target": {"kind": kind, "name": "{{ labels.deployment }}"},
        "steps": [{"name": "rollback", "action": "rollback", "risk": "high", "timeout": timeout,
                   "verify": verify if verify is not None else {"rolloutComplete": {}}}],
        "guard": {"cooldown": cooldown, "maxRunsPerHour": 5},
    }


def bad_rollout_incident(cluster, operator, policy: dict, runbook: dict | None = None, replicas: int = 2) -> str:
    """A Deployment whose new revision crash-loops, the rollback runbook, and the alert: the incident's name."""
    cluster.apply_policy(policy)
    cluster.apply_runbook("bad-rollout", runbook or rollback_runbook())
    cluster.deploy("web", replicas=replicas)
    cluster.bad_rollout("web")
    wait_for(lambda: len(cluster.revisions()) == 2, what="bad revision")
    assert operator.post_alerts(alert_payload([alert(cluster.ns, "web")])).status_code == 200
    return only_remediation(cluster)["metadata"]["name"]


def only_remediation(cluster) -> dict:
    items = wait_for(cluster.remediations, what="a Remediation")
    assert len(items) == 1, [i["metadata"]["name"] for i in items]
    return items[0]


def test_bad_rollout_alert_rolls_back_and_is_verified(cluster, operator):
    cluster.apply_policy(NO_APPROVALS)
    cluster.apply_runbook("bad-rollout", rollback_runbook())
    cluster.deploy("web")
    good_image = cluster.apps.read_namespaced_deployment("web", cluster.ns).spec.template.spec.containers[0].image
    cluster.bad_rollout("web")
    wait_for(lambda: len(cluster.revisions()) == 2, what="bad revision rolled out")

    resp = operator.post_alerts(alert_payload([alert(cluster.ns, "web")]))
    assert resp.status_code == 200, resp.text
    assert resp.json()["results"][0]["outcome"] == "created"
    name = only_remediation(cluster)["metadata"]["name"]

    done = cluster.wait_phase(name, {"Succeeded", "Failed", "Escalated", "Skipped"})
    status = done["status"]
    assert status["phase"] == "Succeeded", status
    assert status["steps"][0]["action"] == "rollback" and status["steps"][0]["phase"] == "Succeeded"
    assert status["risk"]["reasons"], "the risk score carries its reasons"
    assert status["timeToRecoverSeconds"] > 0
    dep = cluster.apps.read_namespaced_deployment("web", cluster.ns)
    assert dep.spec.template.spec.containers[0].image == good_image
    assert "remediator.dev/kwok-fail" not in (dep.spec.template.metadata.labels or {})
    assert sorted(cluster.revisions().values()) == ["2", "3"], "exactly one rollback: revision 1 became 3"
    reasons = wait_for(lambda: {e.reason for e in cluster.core.list_namespaced_event(
        cluster.ns, field_selector="involvedObject.name=web").items} >= {"RemediationActing", "RemediationSucceeded"}
        and {e.reason for e in cluster.core.list_namespaced_event(
            cluster.ns, field_selector=f"involvedObject.name={name}").items}, what="Events on target and record")
    assert {"Planned", "Acting", "Verifying", "Succeeded"} <= reasons


def test_duplicate_deliveries_make_one_remediation(cluster, operator):
    cluster.apply_policy({"mode": "dryRun"})
    cluster.apply_runbook("bad-rollout", rollback_runbook())
    cluster.deploy("web", replicas=1)
    payload = alert_payload([alert(cluster.ns, "web", fingerprint="dup1")])
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: operator.post_alerts(payload).status_code, range(16)))
    assert codes == [200] * 16
    assert len(cluster.remediations()) == 1


def test_dry_run_policy_records_what_it_would_do_and_touches_nothing(cluster, operator):
    cluster.apply_policy({"mode": "dryRun", **NO_APPROVALS})
    cluster.apply_runbook("bad-rollout", rollback_runbook())
    cluster.deploy("web", replicas=2)
    cluster.bad_rollout("web")
    wait_for(lambda: len(cluster.revisions()) == 2, what="bad revision")
    before = cluster.apps.read_namespaced_deployment("web", cluster.ns).metadata.generation
    operator.post_alerts(alert_payload([alert(cluster.ns, "web")]))
    name = only_remediation(cluster)["metadata"]["name"]
    status = cluster.wait_phase(name, {"Skipped", "Succeeded", "Failed"})["status"]
    assert status["phase"] == "Skipped" and status["dryRun"] is True
    assert "would rollback Deployment/web" in status["reason"]
    assert cluster.apps.read_namespaced_deployment("web", cluster.ns).metadata.generation == before
    assert sorted(cluster.revisions().values()) == ["1", "2"]


def test_cooldown_blocks_a_second_run_and_says_so(cluster, operator):
    cluster.apply_policy(NO_APPROVALS)
    cluster.apply_runbook("bad-rollout", rollback_runbook(cooldown="30m"))
    cluster.deploy("web", replicas=2)
    cluster.bad_rollout("web")
    wait_for(lambda: len(cluster.revisions()) == 2, what="bad revision")
    operator.post_alerts(alert_payload([alert(cluster.ns, "web", fingerprint="a1",
                                              starts_at="2026-11-25T01:00:00Z")]))
    first = only_remediation(cluster)["metadata"]["name"]
    assert cluster.wait_phase(first, {"Succeeded", "Failed", "Escalated"})["status"]["phase"] == "Succeeded"

    time.sleep(1)  # the alert fires again, after the fix (startsAt has whole seconds)
    refired = format_time(datetime.now(timezone.utc))
    operator.post_alerts(alert_payload([alert(cluster.ns, "web", fingerprint="a1", starts_at=refired)]))
    second = wait_for(lambda: [r for r in cluster.remediations() if r["metadata"]["name"] != first],
                      what="second remediation")[0]["metadata"]["name"]
    status = cluster.wait_phase(second, {"Skipped", "Succeeded", "Failed"})["status"]
    assert status["phase"] == "Skipped"
    assert "cooldown" in status["reason"]
    assert sorted(cluster.revisions().values()) == ["2", "3"], "no second rollback"


def test_a_ladder_escalates_from_restart_to_rollback(cluster, operator):
    cluster.apply_policy(NO_APPROVALS)
    cluster.apply_runbook("ladder", {
        "triggers": [{"alert": {"matchers": [{"name": "alertname", "value": "HighErrorRate"}]}}],
        "target": {"kind": "Deployment", "name": "{{ labels.deployment }}"},
        "steps": [
            {"name": "restart", "action": "restartRollout", "risk": "low", "timeout": "15s",
             "verify": {"rolloutComplete": {}}},
            {"name": "rollback", "action": "rollback", "risk": "medium", "timeout": "90s",
             "verify": {"rolloutComplete": {}}},
        ],
    })
    cluster.deploy("web", replicas=2)
    cluster.bad_rollout("web")
    wait_for(lambda: len(cluster.revisions()) == 2, what="bad revision")
    operator.post_alerts(alert_payload([alert(cluster.ns, "web")]))
    name = only_remediation(cluster)["metadata"]["name"]
    status = cluster.wait_phase(name, {"Succeeded", "Failed", "Escalated"}, timeout=180)["status"]
    assert [s["name"] for s in status["steps"]] == ["restart", "rollback"]
    assert status["steps"][0]["phase"] in ("Failed", "Inconclusive")
    assert status["phase"] == "Succeeded", "\n".join(f"{t['kind']}: {t['message']}" for t in status["timeline"])


def test_crashlooping_pods_trigger_the_restart_runbook(cluster, operator):
    cluster.apply_policy(NO_APPROVALS)
    cluster.apply_runbook("crashloop", {
        "triggers": [{"podState": {"states": ["CrashLoopBackOff"]}}],
        "target": {"kind": "Deployment", "name": "{{ labels.deployment }}"},
        "steps": [{"name": "restart", "action": "restartRollout", "risk": "low", "timeout": "60s",
                   "verify": {"rolloutComplete": {}, "podsReady": {"window": "3s"}}}],
    })
    cluster.deploy("web", replicas=2)
    pod = cluster.core.list_namespaced_pod(cluster.ns, label_selector="app=web").items[0]
    cluster.core.patch_namespaced_pod(pod.metadata.name, cluster.ns,
                                      {"metadata": {"labels": {"remediator.dev/kwok-fail": "crashloop"}}})
    name = only_remediation(cluster)["metadata"]["name"]
    assert name.startswith("pod-")
    status = cluster.wait_phase(name, {"Succeeded", "Failed", "Escalated"})["status"]
    assert status["phase"] == "Succeeded", status
    dep = cluster.apps.read_namespaced_deployment("web", cluster.ns)
    assert "kubectl.kubernetes.io/restartedAt" in dep.spec.template.metadata.annotations


def test_webhook_refuses_missing_tokens_and_malformed_bodies(cluster, operator):
    ok = alert_payload([alert(cluster.ns, "web")])
    assert operator.post_alerts(ok, token="").status_code == 401
    assert operator.post_alerts(ok, token="wrong").status_code == 401
    bad = operator.post_alerts({"version": "4", "status": "firing", "alerts": "nope"})
    assert bad.status_code == 400 and "alerts" in bad.json()["error"]
    assert cluster.remediations() == []


def test_a_pod_not_ready_past_its_grace_period_is_deleted_and_replaced(cluster, operator):
    cluster.apply_policy(NO_APPROVALS)
    cluster.apply_runbook("stuck-pod", {
        "triggers": [{"podState": {"states": ["NotReady"], "gracePeriod": "5s"}}],
        "target": {"kind": "Deployment", "name": "{{ labels.deployment }}"},
        "steps": [{"name": "delete-stuck-pod", "action": "deletePod", "risk": "low", "timeout": "60s",
                   "verify": {"rolloutComplete": {}, "podsReady": {"window": "3s"}}}],
    })
    cluster.deploy("web", replicas=3)
    stuck = cluster.core.list_namespaced_pod(cluster.ns, label_selector="app=web").items[0].metadata.name
    cluster.core.patch_namespaced_pod(stuck, cluster.ns,
                                      {"metadata": {"labels": {"remediator.dev/kwok-fail": "notready"}}})
    name = only_remediation(cluster)["metadata"]["name"]
    status = cluster.wait_phase(name, {"Succeeded", "Failed", "Escalated", "Skipped"})["status"]
    assert status["phase"] == "Succeeded", status["reason"]
    pods = [p.metadata.name for p in cluster.core.list_namespaced_pod(cluster.ns, label_selector="app=web").items
            if not p.metadata.deletion_timestamp]
    assert stuck not in pods and len(pods) == 3


def test_metrics_count_the_outcome_the_action_and_the_guards(cluster, operator):
    import requests

    cluster.apply_policy(NO_APPROVALS)
    cluster.apply_runbook("bad-rollout", rollback_runbook())
    cluster.deploy("web", replicas=1)
    cluster.bad_rollout("web")
    wait_for(lambda: len(cluster.revisions()) == 2, what="bad revision")
    operator.post_alerts(alert_payload([alert(cluster.ns, "web")]))
    name = only_remediation(cluster)["metadata"]["name"]
    assert cluster.wait_phase(name, {"Succeeded", "Failed", "Escalated"})["status"]["phase"] == "Succeeded"
    outcome = 'remediator_remediations_total{outcome="Succeeded",runbook="bad-rollout"} 1.0'
    # counted just after the status write the test saw, so it may lag that read by a moment
    text = wait_for(lambda: next((t for t in [requests.get(f"{operator.url}/metrics", timeout=5).text]
                                  if outcome in t), ""), timeout=10, what="the outcome counted")
    assert 'remediator_actions_total{action="rollback",result="applied"} 1.0' in text
    assert 'remediator_webhook_requests_total{code="200",endpoint="alertmanager"} 1.0' in text
    assert 'remediator_guard_decisions_total{guard="cooldown",verdict="allowed"}' in text
    # its first tick decided on the reads made beside the create (the create's answer is the object it met)
    assert 'remediator_first_reads_total{outcome="used"} 1.0' in text
    assert "remediator_time_to_recover_seconds_count" in text
    assert "remediator_signal_to_action_seconds_count 1.0" in text


def test_a_resolved_alert_after_the_loop_ended_is_still_recorded(cluster, operator):
    cluster.apply_policy({"mode": "dryRun"})
    cluster.apply_runbook("bad-rollout", rollback_runbook())
    cluster.deploy("web", replicas=1)
    firing = alert(cluster.ns, "web", fingerprint="res1", starts_at="2026-01-01T00:00:00Z")
    assert operator.post_alerts(alert_payload([firing])).status_code == 200
    name = only_remediation(cluster)["metadata"]["name"]
    ended = cluster.wait_phase(name, {"Succeeded", "Skipped", "Failed", "Escalated"})
    assert not ended["status"].get("signalResolvedAt")

    resolved = {**firing, "status": "resolved", "endsAt": "2026-01-01T00:05:00Z"}
    resp = operator.post_alerts(alert_payload([resolved], status="resolved"))
    assert resp.status_code == 200 and resp.json()["results"][0]["outcome"] == "resolved", resp.text
    status = cluster.remediation(name)["status"]
    assert status["signalResolvedAt"] and status["phase"] == ended["status"]["phase"]


def test_a_second_alert_about_the_same_target_joins_the_open_incident(cluster, operator):
    cluster.apply_policy({"mode": "dryRun"})
    cluster.apply_runbook("bad-rollout", {**rollback_runbook(), "triggers": [
        {"alert": {"matchers": [{"name": "alertname", "op": "=~", "value": "HighErrorRate|HighLatency"}]}}]})
    cluster.deploy("web", replicas=1)
    cluster.apps.patch_namespaced_deployment("web", cluster.ns, {"spec": {"paused": True}})  # keep it open
    first = operator.post_alerts(alert_payload([alert(cluster.ns, "web", fingerprint="aaa1")]))
    name = first.json()["results"][0]["remediation"]
    second = operator.post_alerts(alert_payload([alert(cluster.ns, "web", alertname="HighLatency",
                                                       fingerprint="bbb2")]))
    result = second.json()["results"][0]
    assert (result["outcome"], result["remediation"]) == ("correlated", name), result
    assert "joins the open incident" in result["reasons"][0]
    assert [r["metadata"]["name"] for r in cluster.remediations()] == [name]


def test_sigterm_stops_the_operator_without_waiting_out_kopfs_five_seconds_for_unfinished_tasks(
        cluster, kubeconfig, tmp_path):
    """kopf gives tasks started after it 5 s to end on their own before it cancels them (a rolling update of the
    operator, and every test's teardown, waited that out); the operator ends its own loops first. A stop that
    meets kopf re-reading the API groups (another test's CRD change) waits out kopf's retries: tried again."""
    from tests.support.operator import OperatorProcess

    took = []
    for attempt in range(3):
        (tmp_path / str(attempt)).mkdir()
        op = OperatorProcess(kubeconfig, [cluster.ns], tmp_path / str(attempt), forked=False).start()  # the command
        scraper = requests.Session()  # as Prometheus scrapes: the connection is kept alive between scrapes
        try:
            wait_for(lambda: "open work listed" in op.log_tail(), what="the tick workers running")
            assert scraper.get(f"{op.url}/metrics", timeout=10).ok
            began = time.monotonic()
            op.proc.terminate()
            assert op.proc.wait(timeout=30) == 0, op.log_tail()
            took.append(time.monotonic() - began)
        finally:
            op.stop()
            scraper.close()
        if took[-1] < 4.5:
            return
    pytest.fail(f"stopped in {', '.join(f'{t:.1f}' for t in took)} s; last log:\n{op.log_tail()}")
