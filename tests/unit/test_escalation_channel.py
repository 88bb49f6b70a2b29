"""Where an escalation is posted: a tenant's Runbook names its channel only where the policy allows it."""

from __future__ import annotations

import pytest

from remediator.api.models import (ApprovalState, RemediationPolicySpec, RemediationSpec, RemediationStatus,
                                   RunbookSpec)
from remediator.approvals.messages import escalation_blocks
from remediator.core.escalation import slack_target

RUNBOOK = {"triggers": [{"alert": {"matchers": [{"name": "alertname", "value": "X"}]}}],
           "target": {"kind": "Deployment", "name": "web"}, "steps": [{"name": "r", "action": "restartRollout"}]}


def runbook(channel: str | None) -> RunbookSpec:
    return RunbookSpec.model_validate({**RUNBOOK, "escalation": {"message": "m"} | (
        {"slackChannel": channel} if channel else {})})


def policy(allowed: list[str] | None = None, channel: str | None = "C0APPROVALS") -> RemediationPolicySpec:
    return RemediationPolicySpec.model_validate({"approval": {"slackChannel": channel} if channel else {},
                                                 "escalation": {"allowedSlackChannels": allowed or []}})


@pytest.mark.parametrize("asked, governing, posted", [
    ("C0ONCALL", None, "C0ONCALL"),  # no policy governs the namespace: nobody restricted it
    ("C0ONCALL", policy(["C0ONCALL"]), "C0ONCALL"),
    ("C0ONCALL", policy(["*"]), "C0ONCALL"),
    ("C0APPROVALS", policy(), "C0APPROVALS"),  # the policy's own channel is always allowed
    (None, policy(), "C0APPROVALS"),
    (None, None, None),
])
def test_a_runbooks_channel_is_used_where_no_policy_governs_or_the_policy_allows_it(asked, governing, posted):
    target = slack_target(runbook(asked), governing)
    assert (target.channel, target.note) == (posted, "")


def test_a_runbook_naming_a_channel_the_policy_does_not_allow_escalates_in_the_policys_channel_and_says_why():
    target = slack_target(runbook("C0EXECUTIVES"), policy(["C0ONCALL"]))
    assert target.channel == "C0APPROVALS"
    assert "C0EXECUTIVES is not in the policy's escalation.allowedSlackChannels" in target.note
    spec = RemediationSpec.model_validate({
        "signal": {"source": "manual", "name": "x"}, "runbook": {"name": "rb", "namespace": "shop"},
        "target": {"kind": "Deployment", "name": "web", "namespace": "shop"}})
    blocks = escalation_blocks("shop", "r-1", spec, RemediationStatus(phase="Escalated"), runbook("C0EXECUTIVES"),
                               target.note)
    assert "allowedSlackChannels" in str(blocks[-1])


def test_a_runbook_naming_a_channel_where_the_policy_has_none_posts_nowhere():
    target = slack_target(runbook("C0EXECUTIVES"), policy(channel=None))
    assert target.channel is None and "not in the policy's" in target.note


@pytest.mark.parametrize("asked", [
    "c0oncall",  # a channel *named* like the listed id (Slack names are lower case): lower-casing would allow it
    "#C0ONCALL", " C0ONCALL", "C0ONCALL ", "C0ONCALL\u200b", "C0\u039fNCALL",  # prefix, spaces, zero-width, Greek O
    "c0approvals", "<!channel>", "*", "C0ONCALL,C0EXECUTIVES",
])
def test_a_runbooks_channel_differing_from_an_allowed_one_in_any_way_is_not_used(asked):
    target = slack_target(runbook(asked), policy(["C0ONCALL"]))
    assert target.channel == "C0APPROVALS" and target.note


def test_the_note_naming_a_refused_channel_cannot_mention_or_link_anyone():
    asked = "<!channel> <@U0BOSS> <https://evil.example|approve here>"
    target = slack_target(runbook(asked), policy(["C0ONCALL"]))
    spec = RemediationSpec.model_validate({
        "signal": {"source": "manual", "name": "x"}, "runbook": {"name": "rb", "namespace": "shop"},
        "target": {"kind": "Deployment", "name": "web", "namespace": "shop"}})
    blocks = escalation_blocks("shop", "r-1", spec, RemediationStatus(phase="Escalated"), runbook(asked),
                               target.note)
    shown = blocks[-1]["elements"][0]["text"]
    assert "<" not in shown and ">" not in shown and len(shown) < 200


def answered(channel: str = "C0APPROVALS") -> ApprovalState:
    """An approval request as the loop keeps it once posted: Slack's channel id and the message's ts."""
    return ApprovalState(required=1, level="high", slack_channel=channel, slack_ts="1700000000.000100")


@pytest.mark.parametrize("approval_channel", ["C0APPROVALS", "#remediations", "remediations"])
def test_an_escalation_in_the_approval_messages_channel_is_threaded_under_it_however_the_policy_names_it(
        approval_channel):
    target = slack_target(runbook(None), policy(channel=approval_channel), answered())
    assert (target.channel, target.thread_ts) == ("C0APPROVALS", "1700000000.000100")


def test_an_escalation_refused_its_runbooks_channel_is_threaded_under_the_approval_in_the_policys_channel():
    target = slack_target(runbook("#executives"), policy(channel="#remediations"), answered())
    assert (target.channel, target.thread_ts) == ("C0APPROVALS", "1700000000.000100") and target.note


@pytest.mark.parametrize("approval", [None, ApprovalState(required=1, level="high", slack_channel="#remediations")],
                         ids=["no-approval", "never-posted"])
def test_an_escalation_with_no_posted_approval_message_starts_its_own_thread(approval):
    target = slack_target(runbook(None), policy(channel="#remediations"), approval)
    assert (target.channel, target.thread_ts) == ("#remediations", None)


def test_an_escalation_in_another_channel_than_the_approvals_is_not_threaded_there():
    target = slack_target(runbook("#oncall"), policy(["#oncall"], channel="#remediations"), answered())
    assert (target.channel, target.thread_ts) == ("#oncall", None)


def posted(policy_channel: str, slack_id: str = "C0OLDAPPROVALS") -> ApprovalState:
    """An approval request opened under a policy naming `policy_channel`, then posted, as the engine records it."""
    from datetime import datetime, timezone

    from remediator.core.engine import engine

    opened = ApprovalState(required=1, level="high", slack_channel=policy_channel, request_id="r",
                           deadline="2026-12-02T01:00:00Z")
    status = RemediationStatus.model_validate({"phase": "AwaitingApproval"}).model_copy(update={"approval": opened})
    facts = engine.Facts(now=datetime(2026, 12, 2, tzinfo=timezone.utc), runbook=None, policy=None, guards=None,
                         slack=True)
    decision = engine.outcome(None, status, engine.PostApproval(policy_channel),
                              engine.Posted(slack_id, "1700000000.000100"), facts)
    return decision.status.approval


@pytest.mark.parametrize("asked", [None, "#executives"], ids=["runbook-names-none", "runbook-refused"])
def test_an_escalation_after_the_policy_moved_its_approval_channel_goes_to_the_new_one_not_the_old_thread(asked):
    """Posted under a policy naming #old-approvals; the policy now names #remediations: the escalation belongs
    there. Threading it under the old message posted it in the channel the policy moved away from."""
    target = slack_target(runbook(asked), policy(channel="#remediations"), posted("#old-approvals"))
    assert (target.channel, target.thread_ts) == ("#remediations", None)


def test_an_escalation_under_an_approval_posted_to_the_policys_named_channel_is_still_threaded():
    target = slack_target(runbook(None), policy(channel="#remediations"), posted("#remediations"))
    assert (target.channel, target.thread_ts) == ("C0OLDAPPROVALS", "1700000000.000100")
