"""High-risk remediations wait for humans in Slack: signed clicks, policy-allowed voters, audited refusals."""

from __future__ import annotations

import json
import time

import pytest
import requests
from e2e.slack_standin import SlackStandIn, click_body, post_click

from remediator.approvals.kubernetes import cast_vote
from tests.integration.test_operator_loop import bad_rollout_incident, rollback_runbook
from tests.support.operator import OperatorProcess, alert, alert_payload
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TWO_SRES = {"approval": {"slackChannel": "#remediations", "rules": [
    {"level": lvl, "approvers": 2, "allowedSlackGroups": ["S0SRE"], "timeout": "10m", "onTimeout": "deny"}
    for lvl in ("high", "critical")]}}


@pytest.fixture
def slack():
    standin = SlackStandIn(user_groups={"S0SRE": ["U_ALICE", "U_BOB"]}).start()
    yield standin
    standin.stop()


@pytest.fixture
def slack_operator(kubeconfig, namespace, crds, tmp_path, slack):
    (tmp_path / "slack-token").write_text(slack.bot_token)
    (tmp_path / "slack-signing-secret").write_text(SECRET)
    op = OperatorProcess(kubeconfig, [namespace], tmp_path, extra_args=[
        "--slack-token-file", str(tmp_path / "slack-token"),
        "--slack-signing-secret-file", str(tmp_path / "slack-signing-secret"),
        "--slack-api-url", slack.base_url])
    op.start()
    yield op
    op.stop()


def waiting_in_slack(cluster, operator, slack) -> tuple[str, dict]:
    name = bad_rollout_incident(cluster, operator, TWO_SRES)
    assert cluster.wait_phase(name, {"AwaitingApproval", "Skipped", "Failed"})["status"]["phase"] == \
        "AwaitingApproval"
    message = wait_for(lambda: slack.find(lambda m: name in m["text"]), what="approval message in Slack")
    text = str(message["blocks"])
    assert "rollback" in text and "Risk" in text and "Approve" in text and "Deny" in text
    assert "Dry run says it would change" in text and "registry.local/web:1.0" in text, "the rollback's diff"
    assert "server-side dry run succeeded" in text
    return name, message


def click(operator, message, action, user, **kw):
    return post_click(f"{operator.url}/webhooks/slack/interactions", SECRET, click_body(message, action, user), **kw)


def votes(cluster, name) -> list[tuple[str, str]]:
    approval = cluster.remediation(name)["status"].get("approval") or {}
    return [(v["user"], v["decision"]) for v in approval.get("votes", [])]


def test_a_critical_rollback_waits_for_two_approvers_then_runs_and_the_message_is_updated(
        cluster, slack_operator, slack):
    name, message = waiting_in_slack(cluster, slack_operator, slack)
    assert click(slack_operator, message, "approve", "U_ALICE").status_code == 200
    again = click(slack_operator, message, "approve", "U_ALICE")
    assert again.status_code == 200 and again.json()["outcome"] == "duplicate"
    assert votes(cluster, name) == [("U_ALICE", "approve")], "one person counts once"
    assert cluster.remediation(name)["status"]["phase"] == "AwaitingApproval"
    assert sorted(cluster.revisions().values()) == ["1", "2"], "nothing acts on one approval"

    assert click(slack_operator, message, "approve", "U_BOB").status_code == 200
    status = cluster.wait_phase(name, {"Succeeded", "Failed", "Escalated"})["status"]
    assert status["phase"] == "Succeeded"
    assert sorted(cluster.revisions().values()) == ["2", "3"]
    updated = wait_for(lambda: slack.find(lambda m: m.get("updated") and name in m["text"]),
                       what="message updated")
    assert "approved" in str(updated["blocks"]) and "U_BOB" in str(updated["blocks"])


def test_forged_and_stale_callbacks_get_401_are_counted_write_nothing_and_nothing_acts(
        cluster, slack_operator, slack):
    name, message = waiting_in_slack(cluster, slack_operator, slack)
    forged = click(slack_operator, message, "approve", "U_ALICE", signature="v0=" + "0" * 64)
    stale = click(slack_operator, message, "approve", "U_ALICE", timestamp=int(time.time()) - 600)
    assert (forged.status_code, stale.status_code) == (401, 401)
    status = cluster.remediation(name)["status"]
    assert status["phase"] == "AwaitingApproval" and votes(cluster, name) == []
    assert not [t for t in status["timeline"] if t["kind"] == "CallbackRefused"], "strangers write nothing"
    metrics = requests.get(f"{slack_operator.url}/metrics", timeout=10).text
    assert 'remediator_refusals_total{reason="forged-slack-callback"} 2.0' in metrics


def test_a_replayed_callback_casts_no_second_vote(cluster, slack_operator, slack):
    name, message = waiting_in_slack(cluster, slack_operator, slack)
    body, ts = click_body(message, "approve", "U_ALICE"), int(time.time())
    url = f"{slack_operator.url}/webhooks/slack/interactions"
    assert post_click(url, SECRET, body, timestamp=ts).json()["outcome"] == "accepted"
    replay = post_click(url, SECRET, body, timestamp=ts)
    assert replay.status_code == 200 and replay.json()["outcome"] == "replay"
    assert votes(cluster, name) == [("U_ALICE", "approve")]


def test_a_user_the_policy_does_not_allow_gets_403_and_no_vote(cluster, slack_operator, slack):
    name, message = waiting_in_slack(cluster, slack_operator, slack)
    resp = click(slack_operator, message, "approve", "U_MALLORY")
    assert resp.status_code == 403
    assert votes(cluster, name) == []
    assert any(t["kind"] == "VoteRefused" and "U_MALLORY" in t["message"]
               for t in cluster.remediation(name)["status"]["timeline"])


def test_a_denial_ends_it_untouched_and_a_later_approval_gets_409(cluster, slack_operator, slack):
    name, message = waiting_in_slack(cluster, slack_operator, slack)
    assert click(slack_operator, message, "deny", "U_ALICE").status_code == 200
    assert cluster.wait_phase(name, {"Denied", "Succeeded"})["status"]["phase"] == "Denied"
    late = click(slack_operator, message, "approve", "U_BOB")
    assert late.status_code == 409
    assert sorted(cluster.revisions().values()) == ["1", "2"], "the Deployment is untouched"


def test_a_bad_callback_body_gets_400_not_500(cluster, slack_operator):
    url = f"{slack_operator.url}/webhooks/slack/interactions"
    for body in ("payload=%7Bnot-json", "nothing=here", "payload=" + "%7B%7D"):
        assert post_click(url, SECRET, body).status_code == 400


# ---------------------------------------------------------------- votes bound to one request, people counted once

LADDER_POLICY = {"approval": {"slackChannel": "#remediations", "rules": [
    {"level": lvl, "approvers": 1, "allowedSlackUsers": ["U_ALICE", "U_BOB"], "timeout": "10m", "onTimeout": "deny"}
    for lvl in ("medium", "high", "critical")]}}


def ladder_runbook() -> dict:
    """A restart that cannot fix a bad rollout (its verification times out), then a riskier rollback."""
    runbook = rollback_runbook()
    runbook["steps"] = [
        {"name": "restart", "action": "restartRollout", "risk": "medium", "timeout": "10s",
         "verify": {"rolloutComplete": {}}},
        {"name": "rollback", "action": "rollback", "risk": "critical", "timeout": "90s",
         "verify": {"rolloutComplete": {}}},
    ]
    return runbook


def refusals(operator, reason: str) -> float:
    metrics = requests.get(f"{operator.url}/metrics", timeout=5).text
    line = next((ln for ln in metrics.splitlines()
                 if ln.startswith(f'remediator_refusals_total{{reason="{reason}"}}')), None)
    return float(line.split()[-1]) if line else 0.0


def test_a_stale_button_from_an_earlier_request_is_refused_and_the_deployment_untouched(
        cluster, slack_operator, slack):
    name = bad_rollout_incident(cluster, slack_operator, LADDER_POLICY, runbook=ladder_runbook())
    first = wait_for(lambda: slack.find(lambda m: name in m["text"]), what="the restart's approval message")
    first_request = cluster.remediation(name)["status"]["approval"]["requestId"]
    assert first_request in json.dumps(first["blocks"]), "the buttons carry the request id"
    assert click(slack_operator, first, "approve", "U_ALICE").json()["outcome"] == "accepted"

    def second_request():
        approval = cluster.remediation(name)["status"].get("approval") or {}
        return approval if approval.get("requestId") not in (None, first_request) else None
    second = wait_for(second_request, timeout=120, what="the rollback's own approval request")
    assert cluster.remediation(name)["status"]["phase"] == "AwaitingApproval"

    before = refusals(slack_operator, "stale-vote")
    stale = click(slack_operator, first, "approve", "U_BOB")  # the old message, still on someone's screen
    assert stale.status_code == 409 and stale.json()["outcome"] == "refused-stale", stale.text
    assert refusals(slack_operator, "stale-vote") == before + 1
    status = cluster.remediation(name)["status"]
    assert status["phase"] == "AwaitingApproval"
    assert status["approval"]["requestId"] == second["requestId"] and status["approval"]["votes"] == []
    time.sleep(2)
    image = cluster.apps.read_namespaced_deployment("web", cluster.ns).spec.template.spec.containers[0].image
    assert image == "registry.local/web:bad", "no rollback on a stale vote"


def test_a_crash_between_posting_and_saving_the_ts_posts_no_second_message(
        cluster, kubeconfig, namespace, crds, tmp_path, slack):
    (tmp_path / "slack-token").write_text(slack.bot_token)
    (tmp_path / "slack-signing-secret").write_text(SECRET)
    channel = "C0APPROVALS"  # a channel id: conversations.history takes ids, not #names
    op = OperatorProcess(kubeconfig, [namespace], tmp_path, failpoints="after-slack-post", extra_args=[
        "--slack-token-file", str(tmp_path / "slack-token"),
        "--slack-signing-secret-file", str(tmp_path / "slack-signing-secret"),
        "--slack-api-url", slack.base_url]).start()
    try:
        name = bad_rollout_incident(cluster, op, {"approval": {**TWO_SRES["approval"], "slackChannel": channel}})
        assert op.wait_killed() == -9, "killed right after chat.postMessage"
        op.start(failpoints="")
        stored = wait_for(lambda: (cluster.remediation(name)["status"].get("approval") or {}).get("slackTs"),
                          what="the message's ts saved after the restart")
        time.sleep(2)  # a few more ticks: nothing more is posted
    finally:
        op.stop()
    posted = [args for method, args in slack.calls if method == "chat.postMessage"]
    assert len(posted) == 1, f"{len(posted)} messages posted"
    assert any(method == "conversations.history" for method, _ in slack.calls)
    assert [ts for (c, ts), m in slack.messages.items() if name in m["text"]] == [stored]


@pytest.fixture
def slack_and_kubectl_voters(kube_api, namespace):
    from tests.integration.test_kubernetes_approvals import as_user, grant
    grant(kube_api, namespace, "approver", ["create", "get"], "alice")
    return {"alice": as_user(kube_api, "alice")}


def test_the_same_person_on_slack_and_kubectl_counts_once(cluster, slack_operator, slack, slack_and_kubectl_voters):
    policy = {"approval": {"slackChannel": "#remediations",
                           "people": [{"name": "alice", "slack": "U_ALICE", "kubernetes": "alice"}],
                           "rules": [{"level": lvl, "approvers": 2, "allowedSlackUsers": ["U_ALICE", "U_BOB"],
                                      "allowedKubernetesUsers": ["alice"], "timeout": "10m"}
                                     for lvl in ("high", "critical")]}}
    name = bad_rollout_incident(cluster, slack_operator, policy)
    message = wait_for(lambda: slack.find(lambda m: name in m["text"]), what="approval message in Slack")
    assert click(slack_operator, message, "approve", "U_ALICE").json()["outcome"] == "accepted"
    again = cast_vote(slack_and_kubectl_voters["alice"], cluster.ns, name, "approve", "me again, from kubectl")
    assert again["status"]["outcome"] == "duplicate", again["status"]
    status = cluster.remediation(name)["status"]
    assert status["phase"] == "AwaitingApproval" and len(status["approval"]["votes"]) == 1
    assert sorted(cluster.revisions().values()) == ["1", "2"], "one person is not two approvers"
    assert click(slack_operator, message, "approve", "U_BOB").json()["outcome"] == "accepted"
    assert cluster.wait_phase(name, {"Succeeded", "Failed", "Escalated"})["status"]["phase"] == "Succeeded"


# ---------------------------------------------------------------- what reaches humans

def test_mrkdwn_in_an_alert_reaches_slack_as_text_not_as_a_mention_or_a_link(cluster, slack_operator, slack):
    cluster.apply_policy(TWO_SRES)
    runbook = rollback_runbook()
    runbook["triggers"] = [{"alert": {"matchers": [{"name": "team", "value": "<!channel>"}]}}]
    cluster.apply_runbook("bad-rollout", runbook)
    cluster.deploy("web", replicas=2)
    cluster.bad_rollout("web")
    wait_for(lambda: len(cluster.revisions()) == 2, what="bad revision")
    hostile = alert(cluster.ns, "web", alertname="<!channel>", team="<!channel>")
    hostile["annotations"]["summary"] = "<!here> click <https://evil.example|Approve>"
    assert slack_operator.post_alerts(alert_payload([hostile])).status_code == 200
    message = wait_for(lambda: slack.find(lambda m: "Approval needed" in m["text"]), what="approval message")
    text = json.dumps(message["blocks"])
    assert "&lt;!channel&gt;" in text and "&lt;https://evil.example|Approve&gt;" in text
    assert "<!channel>" not in text and "<!here>" not in text and "<https://evil" not in text


def test_an_env_secret_change_reaches_slack_and_status_only_as_a_digest(cluster, slack_operator, slack):
    cluster.apply_policy(TWO_SRES)
    cluster.apply_runbook("bad-rollout", rollback_runbook())
    cluster.deploy("web", replicas=2)
    patch = {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "env": [{"name": "DB_PASSWORD", "value": "old-hunter2"}]}]}}}}
    cluster.apps.patch_namespaced_deployment("web", cluster.ns, patch)
    wait_for(lambda: len(cluster.revisions()) == 2, what="revision with the old password")
    cluster.apps.patch_namespaced_deployment("web", cluster.ns, {"spec": {"template": {
        "metadata": {"labels": {"remediator.dev/kwok-fail": "crashloop"}},
        "spec": {"containers": [{"name": "app", "image": "registry.local/web:bad",
                                 "env": [{"name": "DB_PASSWORD", "value": "new-hunter2"}]}]}}}})
    wait_for(lambda: len(cluster.revisions()) == 3, what="bad revision with the new password")
    assert slack_operator.post_alerts(alert_payload([alert(cluster.ns, "web")])).status_code == 200
    message = wait_for(lambda: slack.find(lambda m: "Approval needed" in m["text"]), what="approval message")
    name = cluster.remediations()[0]["metadata"]["name"]
    planned = cluster.remediation(name)["status"]["plannedChanges"]
    text = json.dumps(message["blocks"]) + json.dumps(planned)
    assert "env[DB_PASSWORD].value: sha256:" in text and "registry.local/web:bad" in text
    assert "hunter2" not in text


def test_a_posted_request_message_is_found_again_by_its_request_id_through_the_real_sdk(slack, tmp_path):
    from remediator.approvals.slack import SlackConfig, find_request_message, post_message
    from remediator.secrets import FileSecret

    (tmp_path / "token").write_text(slack.bot_token)
    cfg = SlackConfig(FileSecret(str(tmp_path / "token")), FileSecret(None), slack.base_url)
    since = time.time()
    channel, ts = post_message(cfg, "#approvals", "Approval needed: x", [], "req-1")
    assert channel.startswith("C") and channel != "#approvals", "Slack answers with the channel id"
    for i in range(3):
        post_message(cfg, channel, f"other {i}", [], f"req-other-{i}")
    assert find_request_message(cfg, channel, "req-1", since) == (channel, ts)
    assert find_request_message(cfg, channel, "req-2", since) is None
    assert find_request_message(cfg, "#approvals", "req-1", since) is None, "history takes ids, not #names"
