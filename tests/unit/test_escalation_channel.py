"""Where an escalation is posted: a tenant's Runbook names its channel only where the policy allows it."""

from __future__ import annotations

import pytest

from remediator.api.models import RemediationPolicySpec, RemediationSpec, RemediationStatus, RunbookSpec
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
