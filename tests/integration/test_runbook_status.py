"""An ended Remediation is counted in its Runbook's status, and one that escalates posts the Runbook's
escalation message to Slack once."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import subprocess
from datetime import datetime

import pytest
from e2e.slack_standin import SlackStandIn

from remediator.api.models import GROUP, VERSION, seconds_text
from remediator.api.slo import ServiceLevelObjectiveStatus
from remediator.records import report
from tests.integration.test_operator_loop import NO_APPROVALS, bad_rollout_incident, only_remediation, rollback_runbook
from tests.integration.test_probable_cause import now_stamp
from tests.support.operator import alert, alert_payload
from tests.support.operator import OperatorProcess
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def seconds_between(start: str, end: str) -> float:
    return (datetime.fromisoformat(end.replace("Z", "+00:00")) -
            datetime.fromisoformat(start.replace("Z", "+00:00"))).total_seconds()


def runbook_status(cluster, name: str) -> dict:
    return cluster.custom.get_namespaced_custom_object(GROUP, VERSION, cluster.ns, "runbooks", name).get("status") or {}


def test_a_remediation_that_succeeds_updates_its_runbooks_status_and_printer_column(
        cluster, operator, tool, kubeconfig):
    name = bad_rollout_incident(cluster, operator, NO_APPROVALS)
    assert cluster.wait_phase(name, {"Succeeded", "Failed", "Escalated"})["status"]["phase"] == "Succeeded"
    status = wait_for(lambda: runbook_status(cluster, "bad-rollout").get("lastRemediation") and
                      runbook_status(cluster, "bad-rollout"), what="the Runbook's status")
    assert status["lastRemediation"]["name"] == name and status["lastRemediation"]["phase"] == "Succeeded"
    assert status["lastRemediation"]["finishedAt"]
    assert status["stepStats"] == [{"name": "rollback", "succeeded": 1, "failed": 0}]
    assert len(status["recentRecoverySeconds"]) == 1 and status["medianTimeToRecoverSeconds"] >= 0
    assert wait_for(lambda: cluster.remediation(name)["status"].get("foldedIntoRunbook"), what="marked folded")
    def kubectl_get(*extra: str) -> tuple[str, str]:
        shown = subprocess.run([tool("kubectl"), "--kubeconfig", kubeconfig, "get", "runbooks", "-n", cluster.ns,
                                *extra], capture_output=True, text=True, timeout=30, check=True).stdout
        header, row = shown.splitlines()[:2]
        return header, row

    header, row = kubectl_get()
    assert "LAST REMEDIATION" in header and "LAST OUTCOME" in header
    assert name in row and "Succeeded" in row
    header, row = kubectl_get("-o", "wide")
    assert "MEDIAN TTR" in header and seconds_text(status["medianTimeToRecoverSeconds"]) in row.split()
    assert "rollback 1/1" in row, "per-step results"


def table(cluster, plural: str, namespace: str | None = None) -> dict[str, dict[str, str]]:
    """What `kubectl get` prints, as the apiserver renders it: {object name: {column: cell}}."""
    method, url, headers, _, _ = cluster.api.param_serialize(
        "GET", f"/apis/{GROUP}/{VERSION}/namespaces/{namespace or cluster.ns}/{plural}",
        header_params={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}, auth_settings=["BearerToken"])
    response = cluster.api.call_api(method, url, header_params=headers)
    response.read()
    body = json.loads(response.data)
    assert body["kind"] == "Table"
    names = [c["name"] for c in body["columnDefinitions"]]
    return {row["object"]["metadata"]["name"]: dict(zip(names, row["cells"])) for row in body["rows"]}


@pytest.mark.slow
def test_printer_columns_and_the_report_read_the_records_the_loop_wrote(cluster, operator, kubeconfig):
    cluster.apply_policy(NO_APPROVALS)
    cluster.apply_runbook("bad-rollout", rollback_runbook())
    cluster.deploy("web", replicas=2)
    cluster.bad_rollout("web")
    wait_for(lambda: len(cluster.revisions()) == 2, what="bad revision")
    # the breach begins after the bad rollout, so the probable cause names it
    assert operator.post_alerts(alert_payload([alert(cluster.ns, "web", starts_at=now_stamp())])).status_code == 200
    name = only_remediation(cluster)["metadata"]["name"]
    done = cluster.wait_phase(name, {"Succeeded", "Failed", "Escalated"})
    assert done["status"]["phase"] == "Succeeded"
    status = done["status"]
    rows = table(cluster, "remediations")
    assert rows[name]["TTR"] == seconds_text(status["timeToRecoverSeconds"])
    assert re.fullmatch(r"([0-9]+[dhm])*[0-9]+s|[0-9]+[dhm]([0-9]+[dhms])*", rows[name]["TTR"])
    wait_for(lambda: runbook_status(cluster, "bad-rollout").get("medianTimeToRecover"), what="the Runbook's median")
    runbook = runbook_status(cluster, "bad-rollout")
    assert table(cluster, "runbooks")["bad-rollout"]["Median TTR"] == seconds_text(
        runbook["medianTimeToRecoverSeconds"])
    # an SLO's status as its evaluator writes it (the same model, the same wire form)
    slo = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ServiceLevelObjective", "metadata": {"name": "web"},
           "spec": {"service": "web", "objective": 99.9, "target": {"kind": "Deployment", "name": "web"},
                    "sli": {"goodTotal": {"good": "sum(rate(ok[{{ window }}]))", "total": "sum(rate(all[{{ window }}]))"}}}}
    cluster.custom.create_namespaced_custom_object(GROUP, VERSION, cluster.ns, "servicelevelobjectives", slo)
    # in a namespace the operator does not watch, so its own evaluation (no Prometheus here) does not race ours
    slo["metadata"]["name"] = f"web-{cluster.ns}"
    created = cluster.custom.create_namespaced_custom_object(GROUP, VERSION, "default", "servicelevelobjectives", slo)
    try:
        cluster.custom.replace_namespaced_custom_object_status(
            GROUP, VERSION, "default", "servicelevelobjectives", slo["metadata"]["name"],
            {**created, "status": ServiceLevelObjectiveStatus(error_budget_remaining=-5.50433).wire()})
        assert table(cluster, "servicelevelobjectives", "default")[slo["metadata"]["name"]]["Budget Left"] == "-550%"
    finally:
        cluster.custom.delete_namespaced_custom_object(GROUP, VERSION, "default", "servicelevelobjectives",
                                                       slo["metadata"]["name"])

    # the report over these records, recomputed by hand from them
    args = argparse.Namespace(since="1h", until=None, namespace=[cluster.ns], label=[], output="json", plot=None,
                              file=[], kubeconfig=kubeconfig, system_namespace=[], counts_namespace=None)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert report.run(args) == 0
    figures = json.loads(out.getvalue())["figures"]
    record = cluster.remediation(name)
    began = record["spec"]["signal"].get("startsAt") or record["status"]["startedAt"]
    restored = record["status"].get("restoredAt") or record["status"]["finishedAt"]
    assert figures["incidents"] == 1
    assert figures["timeToRestore"]["operator"] == {
        "count": 1, "medianSeconds": max(0.0, seconds_between(began, restored)),
        "p90Seconds": max(0.0, seconds_between(began, restored))}
    assert figures["timeToRestore"]["unresolvedIncidents"] == []
    assert figures["autoRemediated"] == {"part": 1, "whole": 1, "percent": 100.0, "shownApart": {}}
    applied = [s for s in record["status"]["steps"] if s.get("appliedAt")]
    assert figures["remediationFailureRate"]["whole"] == len(applied) == 1
    assert figures["remediationFailureRate"]["part"] == 0
    assert figures["sloCoverage"]["byNamespace"] == {cluster.ns: {"part": 1, "whole": 1, "percent": 100.0}}
    # DORA: the ReplicaSet history holds the first rollout and the bad one; the cause names the bad one
    delivery = figures["delivery"]
    assert record["status"]["probableCause"]["changes"], record["status"]["probableCause"]
    cause = record["status"]["probableCause"]["changes"][0]
    assert (cause["kind"], cause["object"]) == ("rollout", "Deployment/web")
    assert delivery["rolloutsThatDegradedService"] == [f"{cluster.ns}/Deployment/web revision {cause['revision']}"]
    assert delivery["rollouts"] == len(cluster.revisions()) and delivery["failedRollouts"] == 1


# No approvals, and the escalating Runbook's channel allowed: a policy posts a Runbook's escalation only where it lets it
ESCALATING_POLICY = {**NO_APPROVALS, "escalation": {"allowedSlackChannels": ["C0ONCALL"]}}


def escalating_runbook() -> dict:
    """Only a restart, which cannot cure a bad image: its verification fails and the ladder escalates."""
    return {**rollback_runbook(),
            "steps": [{"name": "restart", "action": "restartRollout", "risk": "low", "timeout": "5s",
                       "verify": {"rolloutComplete": {}}}],
            "escalation": {"message": "page the <!channel> web on-call", "slackChannel": "C0ONCALL"}}


def slack_operator(kubeconfig, namespace, tmp_path, **options) -> tuple[SlackStandIn, OperatorProcess]:
    """The Slack stand-in, and the operator started against it."""
    slack = SlackStandIn().start()
    (tmp_path / "slack-token").write_text(slack.bot_token)
    (tmp_path / "slack-signing-secret").write_text("s" * 32)
    return slack, OperatorProcess(kubeconfig, [namespace], tmp_path, **options, extra_args=[
        "--slack-token-file", str(tmp_path / "slack-token"),
        "--slack-signing-secret-file", str(tmp_path / "slack-signing-secret"),
        "--slack-api-url", slack.base_url]).start()


def escalation_posted(cluster, name: str) -> tuple[dict, dict]:
    """The Remediation's status once it ended Escalated, and its saved escalation message (channel, ts)."""
    status = cluster.wait_phase(name, {"Escalated", "Succeeded", "Failed", "Denied", "Expired"})["status"]
    assert status["phase"] == "Escalated", status["reason"]
    return status, wait_for(lambda: cluster.remediation(name)["status"].get("escalation"), what="escalation posted")


def test_an_escalated_remediation_posts_the_escalation_message_once_even_across_a_crash(
        cluster, kubeconfig, namespace, crds, tmp_path):
    slack, op = slack_operator(kubeconfig, namespace, tmp_path, failpoints="after-escalation-post")
    try:
        name = bad_rollout_incident(cluster, op, ESCALATING_POLICY, escalating_runbook())
        assert op.wait_killed() == -9, "killed right after posting the escalation, before saving its ts"
        assert cluster.remediation(name)["status"]["phase"] == "Escalated"
        op.start(failpoints="")
        saved = wait_for(lambda: cluster.remediation(name)["status"].get("escalation"),
                         what="the escalation's ts saved after the restart")
    finally:
        op.stop()
        slack.stop()
    posted = [(c, ts, m) for (c, ts), m in slack.messages.items() if m["text"] == f"Escalated: {name}"]
    assert len(posted) == 1, f"{len(posted)} escalation messages"
    channel, ts, message = posted[0]
    assert (channel, ts) == (saved["slackChannel"], saved["slackTs"]) and channel == "C0ONCALL"
    text = str(message["blocks"])
    assert "page the &lt;!channel&gt; web on-call" in text, "the message, escaped"
    assert "restart" in text and "Escalated" in text, "what was tried and how it ended"
    status = runbook_status(cluster, "bad-rollout")
    assert status["lastRemediation"]["phase"] == "Escalated"
    assert status["stepStats"] == [{"name": "restart", "succeeded": 0, "failed": 1}], "counted once"
    assert "recentRecoverySeconds" not in status or status["recentRecoverySeconds"] == []


@pytest.mark.parametrize("runbook_channel, approval_channel", [
    (None, "C0APPROVALS"), ("C0ELSEWHERE", "C0APPROVALS"),
    (None, "#approvals"),  # named, as the shipped policies name theirs: Slack answers the post with the id
])
def test_an_approval_that_times_out_into_escalation_is_answered_in_the_approval_messages_thread(
        cluster, kubeconfig, namespace, crds, tmp_path, runbook_channel, approval_channel):
    """A Runbook naming a channel the policy does not allow escalates in the policy's channel instead."""
    slack, op = slack_operator(kubeconfig, namespace, tmp_path)
    policy = {"approval": {"slackChannel": approval_channel, "rules": [
        {"level": lvl, "approvers": 1, "timeout": "3s", "onTimeout": "escalate"}
        for lvl in ("low", "medium", "high", "critical")]}}
    try:
        asked = {"message": "nobody answered"} | ({"slackChannel": runbook_channel} if runbook_channel else {})
        name = bad_rollout_incident(cluster, op, policy, {**rollback_runbook(), "escalation": asked})
        status, saved = escalation_posted(cluster, name)
    finally:
        op.stop()
        slack.stop()
    approval_ts = status["approval"]["slackTs"]
    channel_id = SlackStandIn.channel_id(approval_channel)
    assert status["approval"]["slackChannel"] == channel_id, "the approval message's channel as Slack answered it"
    escalation = slack.messages[(channel_id, saved["slackTs"])]
    assert saved["slackChannel"] == channel_id, "the policy's approval channel when the Runbook names none"
    assert escalation["thread_ts"] == approval_ts and escalation["reply_broadcast"] is True
    assert "nobody answered" in str(escalation["blocks"])
    assert ("not in the policy's escalation.allowedSlackChannels" in str(escalation["blocks"])) == \
        bool(runbook_channel)
    assert not any(channel == "C0ELSEWHERE" for channel, _ in slack.messages), "nothing posted where not allowed"
    assert sorted(cluster.revisions().values()) == ["1", "2"], "nothing acted"


def test_an_escalation_after_the_policy_moved_its_approval_channel_goes_there_not_into_the_old_thread(
        cluster, kubeconfig, namespace, crds, tmp_path):
    """Posted under a policy naming #approvals, which then names #moved: the escalation goes to #moved (the policy's
    channel now), not into a thread of the channel it left."""
    slack, op = slack_operator(kubeconfig, namespace, tmp_path)
    rules = [{"level": lvl, "approvers": 1, "timeout": "8s", "onTimeout": "escalate"}
             for lvl in ("low", "medium", "high", "critical")]
    try:
        name = bad_rollout_incident(cluster, op, {"approval": {"slackChannel": "#approvals", "rules": rules}},
                                    {**rollback_runbook(), "escalation": {"message": "nobody answered"}})
        approval = wait_for(lambda: ((cluster.remediation(name).get("status") or {}).get("approval") or {}).get(
            "slackTs") and cluster.remediation(name)["status"]["approval"], what="approval posted")
        cluster.custom.patch_cluster_custom_object(GROUP, VERSION, "remediationpolicies", cluster.policies[-1], {
            "spec": {"approval": {"slackChannel": "#moved"}}})
        status, saved = escalation_posted(cluster, name)
    finally:
        op.stop()
        slack.stop()
    assert approval["slackChannel"] == SlackStandIn.channel_id("#approvals")
    assert approval.get("slackChannelName") == "#approvals", "the name the request was posted to"
    assert saved["slackChannel"] == SlackStandIn.channel_id("#moved"), "posted where the policy left"
    assert slack.messages[(saved["slackChannel"], saved["slackTs"])].get("thread_ts") is None


@pytest.mark.parametrize("values", [{}, {"watchNamespaces": ["shop"]}])
def test_the_chart_lets_the_operator_patch_runbook_status_but_not_runbooks(tool, tmp_path, values):
    from tests.integration.test_chart import documents, rbac_rules, render

    rules = [rule for _, rule in rbac_rules(documents(render(tool, tmp_path, values)))
             if "remediator.dev" in rule.get("apiGroups", [])]
    assert any("runbooks/status" in r["resources"] and "patch" in r["verbs"] for r in rules)
    assert not any("runbooks" in r["resources"] and {"patch", "update"} & set(r["verbs"]) for r in rules), \
        "the operator writes a Runbook's status, never its spec"
