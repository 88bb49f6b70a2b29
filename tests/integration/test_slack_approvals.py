"""High-risk remediations wait for humans in Slack: signed clicks, policy-allowed voters, audited refusals."""

from __future__ import annotations

import time

import pytest
import requests

from e2e.slack_standin import SlackStandIn, click_body, post_click
from tests.integration.test_operator_loop import bad_rollout_incident
from tests.support.operator import OperatorProcess
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
