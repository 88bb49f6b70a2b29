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
