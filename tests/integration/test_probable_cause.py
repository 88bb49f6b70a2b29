"""Probable cause on the real control plane: the change journal names the change, the runbook follows it."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from kubernetes import client, utils

from tests.integration.test_operator_loop import NO_APPROVALS, only_remediation
from tests.integration.test_runbook_library import finished, library_runbook
from tests.integration.test_slack_approvals import TWO_SRES, slack, slack_operator  # noqa: F401 (fixtures)
from tests.support.operator import alert, alert_payload
from tests.support.waiting import wait_for
from tests.support.workloads import deployment
from remediator.core.durations import format_time

pytestmark = pytest.mark.integration


def now_stamp() -> str:
    return format_time(datetime.now(UTC))


def burn(cluster, operator) -> dict:
    """The error-rate burn on web, beginning now; the finished Remediation's status."""
    resp = operator.post_alerts(alert_payload([alert(cluster.ns, "web", alertname="ErrorBudgetBurn",
                                                     starts_at=now_stamp())]))
    assert resp.status_code == 200, resp.text
    return finished(cluster, only_remediation(cluster)["metadata"]["name"])


def with_runbook(cluster) -> None:
    cluster.apply_policy(NO_APPROVALS)
    cluster.apply_runbook("bad-rollout-rollback", library_runbook("bad-rollout-rollback"))


def test_a_bad_rollout_is_the_top_cause_and_the_conditional_rollback_is_the_step_taken(cluster, operator):
    with_runbook(cluster)
    cluster.deploy("web", replicas=2)
    cluster.bad_rollout("web", image="registry.local/web:bad")
    wait_for(lambda: len(cluster.revisions()) == 2, what="bad revision")
    status = burn(cluster, operator)
    cause = status["probableCause"]
    assert cause["kind"] == "rollout", cause
    top = cause["changes"][0]
    assert (top["object"], top["revision"], top["score"]) == ("Deployment/web", "2", 100)
    assert "image registry.local/web:1.0 → registry.local/web:bad" in top["what"]
    assert "before ErrorBudgetBurn began" in cause["summary"]
    assert status["phase"] == "Succeeded", status["reason"]
    assert [(s["name"], s["skip"]) for s in status["plan"]] == [("rollback", False), ("restart", False)]
    assert [s["action"] for s in status["steps"]] == ["rollback"]
    assert any(e["kind"] == "ProbableCause" for e in status["timeline"])
    assert sorted(cluster.revisions().values()) == ["2", "3"]

    # The burn comes back: the rollback undid revision 2, so no rollout is left to blame (rolling the
    # rollback back would bring the bad image back); the guards then hold the second run.
    first = only_remediation(cluster)["metadata"]["name"]
    operator.post_alerts(alert_payload([alert(cluster.ns, "web", alertname="ErrorBudgetBurn", fingerprint="again",
                                              starts_at=now_stamp())]))
    second = wait_for(lambda: [r for r in cluster.remediations() if r["metadata"]["name"] != first
                               and (r.get("status") or {}).get("probableCause")], what="the second incident")[0]
    assert second["status"]["probableCause"]["kind"] == "none", second["status"]["probableCause"]


def test_the_same_symptom_without_a_recent_change_skips_the_rollback_with_its_reason_and_restarts(cluster, operator):
    with_runbook(cluster)
    cluster.deploy("web", replicas=2)
    status = burn(cluster, operator)
    cause = status["probableCause"]
    assert cause["kind"] == "none" and cause["changes"] == [], cause
    assert cause["summary"].startswith("nothing changed on web or what it references in the 1h before "
                                       "ErrorBudgetBurn began")
    rollback, restart = status["plan"]
    assert rollback["skip"] and rollback["reason"] == (
        "rollback skipped: probable cause is none, step runs only for rollout")
    assert not restart["skip"]
    assert status["phase"] == "Succeeded", status["reason"]
    assert [s["action"] for s in status["steps"]] == ["restartRollout"]
    assert len(cluster.revisions()) == 2, "the restart rolled a new revision; nothing was rolled back"


def test_a_rollout_made_while_the_operator_was_down_is_still_found_from_the_replicaset_history(cluster, operator):
    with_runbook(cluster)
    operator.stop()
    cluster.deploy("web", replicas=2)
    cluster.bad_rollout("web", image="registry.local/web:bad")
    wait_for(lambda: len(cluster.revisions()) == 2, what="bad revision")
    operator.start()
    status = burn(cluster, operator)
    assert status["probableCause"]["kind"] == "rollout", status["probableCause"]
    assert status["probableCause"]["changes"][0]["revision"] == "2"
    assert [s["action"] for s in status["steps"]] == ["rollback"]
    assert "change journal rebuilt" in operator.log_path.read_text()


def test_a_secrets_value_never_appears_in_the_status_or_the_operator_log(cluster, operator):
    with_runbook(cluster)
    first, second = f"first-{uuid.uuid4().hex}", f"second-{uuid.uuid4().hex}"
    cluster.core.create_namespaced_secret(cluster.ns, client.V1Secret(
        metadata=client.V1ObjectMeta(name="web-token"), string_data={"token": first}))
    body = deployment("web", replicas=2)
    body["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "web-token", "key": "token"}}}]
    utils.create_from_dict(cluster.api, body, namespace=cluster.ns)
    wait_for(lambda: (cluster.apps.read_namespaced_deployment("web", cluster.ns).status.available_replicas or 0) == 2,
             what="web available")
    # The Secret changes, and the workload is rolled to pick it up, as Helm's checksum annotation does.
    cluster.core.patch_namespaced_secret("web-token", cluster.ns, {"stringData": {"token": second}})
    cluster.apps.patch_namespaced_deployment("web", cluster.ns, {"spec": {"template": {"metadata": {
        "annotations": {"checksum/secret": uuid.uuid4().hex}}}}})
    wait_for(lambda: len(cluster.revisions()) == 2, what="the revision that picks up the new Secret")
    status = burn(cluster, operator)
    cause = status["probableCause"]
    assert cause["kind"] == "secretChange", cause
    assert cause["changes"][0]["what"] == "Deployment/web revision 2 rolled out: annotation checksum/secret changed"
    assert [s["action"] for s in status["steps"]] == ["restartRollout"], "a Secret change is not undone by rollback"
    recorded = json.dumps(cluster.remediation(only_remediation(cluster)["metadata"]["name"]))
    log = operator.log_path.read_text()
    for value in (first, second):
        assert value not in recorded and value not in log


def test_the_slack_approval_message_names_the_probable_cause_and_its_evidence(
        cluster, slack_operator, slack):  # noqa: F811 (fixtures)
    cluster.apply_policy(TWO_SRES)
    cluster.apply_runbook("bad-rollout-rollback", library_runbook("bad-rollout-rollback"))
    cluster.deploy("web", replicas=2)
    cluster.bad_rollout("web", image="registry.local/web:bad")
    wait_for(lambda: len(cluster.revisions()) == 2, what="bad revision")
    slack_operator.post_alerts(alert_payload([alert(cluster.ns, "web", alertname="ErrorBudgetBurn",
                                                    starts_at=now_stamp())]))
    name = only_remediation(cluster)["metadata"]["name"]
    assert cluster.wait_phase(name, {"AwaitingApproval", "Skipped", "Failed"})["status"]["phase"] == \
        "AwaitingApproval"
    message = wait_for(lambda: slack.find(lambda m: name in m["text"]), what="approval message in Slack")
    text = str(message["blocks"])
    assert "Probable cause: rollout" in text
    assert ("100/100 Deployment/web revision 2 rolled out: image registry.local/web:1.0 → registry.local/web:bad"
            in text)
    assert "probable cause rollout fits rollback" in text, "the cause lowers the rollback's risk"


def test_a_changed_configmap_the_deployment_mounts_is_the_cause_and_the_restart_picks_it_up(cluster, operator):
    with_runbook(cluster)
    cluster.core.create_namespaced_config_map(cluster.ns, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="web-config"), data={"mode": "fast"}))
    body = deployment("web", replicas=2)
    body["spec"]["template"]["spec"]["volumes"] = [{"name": "cfg", "configMap": {"name": "web-config"}}]
    utils.create_from_dict(cluster.api, body, namespace=cluster.ns)
    wait_for(lambda: (cluster.apps.read_namespaced_deployment("web", cluster.ns).status.available_replicas or 0) == 2,
             what="web available")
    recorded = operator.log_path.read_text().count("change recorded")
    cluster.core.patch_namespaced_config_map("web-config", cluster.ns, {"data": {"mode": "broken"}})
    wait_for(lambda: operator.log_path.read_text().count("change recorded") > recorded, timeout=10,
             what="the change journal to see the ConfigMap change")
    status = burn(cluster, operator)
    cause = status["probableCause"]
    assert cause["kind"] == "configChange", cause
    top = cause["changes"][0]
    assert (top["object"], top["what"]) == ("ConfigMap/web-config", "ConfigMap/web-config changed keys mode")
    assert top["reasons"][0] == "+30 changed ConfigMap/web-config, which Deployment/web references"
    assert [s["action"] for s in status["steps"]] == ["restartRollout"]
