"""When the ladder is exhausted people hear it where they already listen (Slack, and Alertmanager routing to
their pager), and the incident's end is recorded: its signal resolving, or `remediator resolve` by a person."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
from e2e.monitoring import Alertmanager, Receiver
from e2e.slack_standin import SlackStandIn
from kubernetes import client
from kubernetes.client.rest import ApiException

from remediator.api.models import API_VERSION, GROUP, VERSION
from remediator.approvals.kubernetes import resolve_incident
from remediator.core.durations import format_time, parse_time
from tests.integration.test_kubernetes_approvals import as_user, grant
from tests.integration.test_operator_loop import NO_APPROVALS
from tests.integration.test_runbook_status import ESCALATING_POLICY, escalating_runbook
from tests.support.operator import OperatorProcess, alert, alert_payload
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def escalated_incident(cluster, op) -> tuple[str, dict]:
    """A bad rollout only a restart is tried on: the ladder is exhausted. (name, the firing alert)"""
    cluster.apply_policy(ESCALATING_POLICY)
    cluster.apply_runbook("bad-rollout", escalating_runbook())
    cluster.deploy("web", replicas=2)
    cluster.bad_rollout("web")
    wait_for(lambda: len(cluster.revisions()) == 2, what="bad revision")
    firing = alert(cluster.ns, "web", starts_at=format_time(datetime.now(timezone.utc) - timedelta(seconds=30)))
    assert op.post_alerts(alert_payload([firing])).status_code == 200
    name = wait_for(cluster.remediations, what="a Remediation")[0]["metadata"]["name"]
    status = cluster.wait_phase(name, {"Succeeded", "Failed", "Escalated"}, timeout=120)["status"]
    assert status["phase"] == "Escalated", status["reason"]
    return name, firing


def test_an_exhausted_ladder_pages_through_slack_and_alertmanager_and_is_resolved_when_its_signal_resolves(
        cluster, kubeconfig, namespace, crds, tmp_path):
    slack = SlackStandIn().start()
    (tmp_path / "slack-token").write_text(slack.bot_token)
    (tmp_path / "slack-signing-secret").write_text("s" * 32)
    with Receiver() as pager:
        op = OperatorProcess(kubeconfig, [namespace], tmp_path)
        alertmanager = Alertmanager(tmp_path / "alertmanager", f"{op.url}/webhooks/alertmanager", op.token_file,
                                    oncall_url=pager.url)
        op.extra_args = ["--slack-token-file", str(tmp_path / "slack-token"),
                         "--slack-signing-secret-file", str(tmp_path / "slack-signing-secret"),
                         "--slack-api-url", slack.base_url, "--alertmanager-url", alertmanager.url,
                         "--alert-resend", "2"]
        try:
            alertmanager.start()
            op.start()
            name, firing = escalated_incident(cluster, op)
            paged = wait_for(lambda: pager.alerts("firing", remediation=name), timeout=60,
                             what="the escalation alert at the on-call receiver, through Alertmanager")[0]
            assert wait_for(lambda: slack.find(lambda m: m["text"] == f"Escalated: {name}"),
                            what="the escalation in the Runbook's Slack channel")
            assert cluster.remediation(name)["status"].get("restoredAt") is None, "not over while it fires"
            first = wait_for(lambda: cluster.remediation(name)["status"].get("escalationAlert"),
                             what="the alert's sending recorded")["sentAt"]
            wait_for(lambda: cluster.remediation(name)["status"]["escalationAlert"]["sentAt"] != first,
                     what="the open alert re-sent (every 2 s here)")

            assert op.post_alerts(alert_payload([{**firing, "status": "resolved"}], "resolved")).status_code == 200
            status = wait_for(lambda: cluster.remediation(name)["status"].get("restoredAt") and
                              cluster.remediation(name)["status"], what="the incident's end recorded")
            resolved = wait_for(lambda: pager.alerts("resolved", remediation=name), timeout=60,
                                what="the escalation alert resolved at the on-call receiver")[0]
        finally:
            op.stop()
            alertmanager.stop()
            slack.stop()
    assert paged["labels"] == {"alertname": "RemediationEscalated", "namespace": cluster.ns, "remediation": name,
                               "runbook": "bad-rollout", "target": "Deployment/web", "severity": "page"}
    assert paged["annotations"]["tried"].startswith("restart (restartRollout): Failed")
    assert "ladder exhausted" in paged["annotations"]["stopped"]
    assert paged["annotations"]["message"] == "page the <!channel> web on-call"
    assert resolved["labels"] == paged["labels"] and resolved["startsAt"] == paged["startsAt"]
    assert status["restoredBy"] == "humans" and status["restoredAt"] >= status["signalResolvedAt"]
    assert status["escalationAlert"]["resolvedAt"] and "resolvedBy" not in status
    assert status["startedAt"] <= status["finishedAt"] <= status["restoredAt"]


def test_remediator_resolve_records_who_ran_it_and_a_forged_or_unauthorised_resolve_is_refused(
        cluster, operator, kube_api, kubeconfig):
    grant(kube_api, cluster.ns, "resolver", ["create", "get"], "alice")
    grant(kube_api, cluster.ns, "forger", ["create", "get"], "mallory")
    name, _ = escalated_incident(cluster, operator)
    uid = cluster.remediation(name)["metadata"]["uid"]

    def forge(api, user: str) -> ApiException:
        with pytest.raises(ApiException) as refused:
            client.CustomObjectsApi(api).create_namespaced_custom_object(
                GROUP, VERSION, cluster.ns, "remediationapprovals", {
                    "apiVersion": API_VERSION, "kind": "RemediationApproval",
                    "metadata": {"generateName": "forged-"},
                    "spec": {"remediation": name, "requestId": uid, "decision": "resolve", "reason": "trust me",
                             "user": user}})
        return refused.value
    assert forge(as_user(kube_api, "mallory"), "alice").status in (403, 422), "resolving as someone else"
    assert forge(as_user(kube_api, "eve"), "eve").status == 403, "RBAC gives eve no resolve at all"
    assert cluster.remediation(name)["status"].get("restoredAt") is None

    done = resolve_incident(as_user(kube_api, "alice"), cluster.ns, name, "scaled the database back up")
    assert done["status"]["outcome"] == "accepted", done["status"]
    status = cluster.remediation(name)["status"]
    assert status["resolvedBy"] == "kubernetes:alice" and status["restoredBy"] == "humans"
    assert status["resolutionNote"] == "scaled the database back up" and status["restoredAt"]
    assert any(e["kind"] == "Resolved" and "kubernetes:alice" in e["message"] for e in status["timeline"])
    # the same person running it again gets the operator's answer, not the apiserver's 409 on a name taken
    twice = resolve_incident(as_user(kube_api, "alice"), cluster.ns, name, "the note I meant")
    assert twice["status"]["outcome"] == "refused-already-decided", twice["status"]

    again = subprocess.run([sys.executable, "-m", "remediator", "resolve", name, "-n", cluster.ns,
                            "--note", "me too", "--kubeconfig", kubeconfig],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "already restored" in again.stdout and "kubernetes:alice" in again.stdout, \
        again.stdout + again.stderr
    assert cluster.remediation(name)["status"]["resolvedBy"] == "kubernetes:alice", "the first end stands"


CRASHLOOP_RUNBOOK = {
    "triggers": [{"podState": {"states": ["CrashLoopBackOff"]}}],
    "target": {"kind": "Deployment", "name": "{{ labels.deployment }}"},
    # deleting a pod of a bad revision brings back one that crash-loops the same way: the ladder is exhausted
    "steps": [{"name": "delete-pod", "action": "deletePod", "risk": "low", "timeout": "5s",
               "verify": {"podsReady": {"window": "1s"}}}],
}


def escalated_crash_loop_rolled_back_by_hand(cluster, runbook: dict = CRASHLOOP_RUNBOOK) -> tuple[str, datetime]:
    """An escalated crash-loop incident whose Deployment on-call then rolled back: its name, and when."""
    cluster.apply_policy(NO_APPROVALS)
    cluster.apply_runbook("crashloop", runbook)
    cluster.deploy("web", replicas=2)
    good = cluster.apps.read_namespaced_deployment("web", cluster.ns).spec.template.spec.containers[0].image
    cluster.bad_rollout("web")
    name = wait_for(cluster.remediations, what="a pod-state Remediation")[0]["metadata"]["name"]
    status = cluster.wait_phase(name, {"Succeeded", "Failed", "Escalated"}, timeout=60)["status"]
    assert status["phase"] == "Escalated", status["reason"]
    assert cluster.remediation(name)["status"].get("restoredAt") is None, "not over while its pods crash-loop"

    # what on-call does: roll back to the template that worked (kubectl rollout undo)
    fixed_at = datetime.now(timezone.utc)
    cluster.apps.patch_namespaced_deployment("web", cluster.ns, {"spec": {"template": {
        "metadata": {"labels": {"remediator.dev/kwok-fail": None}},
        "spec": {"containers": [{"name": "app", "image": good}]}}}})
    return name, fixed_at


# a Runbook may name the failing pod itself (deletePod acts on its owner): the rollback deletes that pod
POD_TARGET = {**CRASHLOOP_RUNBOOK, "target": {"kind": "Pod", "name": "{{ labels.pod }}"}}


@pytest.mark.parametrize("runbook", [CRASHLOOP_RUNBOOK, POD_TARGET], ids=["deployment", "pod"])
def test_an_escalated_crash_loop_is_restored_by_humans_once_they_roll_the_deployment_back_by_hand(
        cluster, operator, runbook):
    name, fixed_at = escalated_crash_loop_rolled_back_by_hand(cluster, runbook)
    status = wait_for(lambda: (s := cluster.remediation(name)["status"]).get("restoredAt") and s, timeout=60,
                      what="the incident's end recorded once every pod of web is healthy")
    dep = cluster.apps.read_namespaced_deployment("web", cluster.ns).status
    assert (dep.ready_replicas, dep.updated_replicas) == (2, 2)
    assert status["phase"] == "Escalated" and status["restoredBy"] == "humans", status
    assert parse_time(status["restoredAt"]) >= parse_time(status["signalResolvedAt"]) >= fixed_at
    assert "resolvedBy" not in status, "no one ran remediator resolve: the pods said it"


def test_a_pod_incident_whose_end_was_seen_just_before_a_crash_is_restored_after_the_restart(
        cluster, kubeconfig, namespace, crds, tmp_path):
    """Killed after the sweep recorded signalResolvedAt, just before runbook_status.finish writes the end (a
    failpoint there, not after the sweep's write: the watch event may run finish before that thread resumes):
    the restarted operator lists it before it is active, and must still record restoredAt when it takes over."""
    op = OperatorProcess(kubeconfig, [namespace], tmp_path, failpoints="before-incident-end").start()
    try:
        name, fixed_at = escalated_crash_loop_rolled_back_by_hand(cluster)
        assert op.wait_killed() == -9, "killed as it was about to record the end the sweep saw"
        status = cluster.remediation(name)["status"]
        assert status.get("signalResolvedAt") and status.get("restoredAt") is None, status
        op.start(failpoints="")
        status = wait_for(lambda: (s := cluster.remediation(name)["status"]).get("restoredAt") and s, timeout=45,
                          what="the incident's end recorded after the restart")
    finally:
        op.stop()
    assert status["restoredBy"] == "humans" and parse_time(status["restoredAt"]) >= fixed_at, status
