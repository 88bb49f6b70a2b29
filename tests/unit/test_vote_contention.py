"""A vote that cannot be stored because the Remediation keeps changing is tried again, never dropped."""

from __future__ import annotations

from datetime import UTC, datetime

import kopf
import pytest
from kubernetes.client.rest import ApiException

from remediator.api.models import Approval, ApprovalRule, RemediationApprovalSpec
from remediator.controller import approvals
from remediator.core.durations import format_time


class AlwaysChanging:
    """Resources whose Remediation is always written by someone else first (every status write: 409)."""

    def __init__(self):
        self.writes = 0

    def get(self, kind, name, namespace):
        return {"metadata": {"name": name, "namespace": namespace}, "status": {
            "phase": "AwaitingApproval", "approval": {"requestId": "req-1", "required": 1, "level": "high",
                                                      "requestedAt": "2025-03-10T12:00:00Z",
                                                      "deadline": "2999-01-01T00:00:00Z"}}}

    def replace_status(self, kind, namespace, name, body):
        self.writes += 1
        raise ApiException(status=409, reason="Conflict")


class Ctx:
    def __init__(self):
        self.api = object()
        self.resources = AlwaysChanging()


def test_a_kubernetes_vote_that_keeps_conflicting_is_retried_by_kopf_not_dropped():
    ctx = Ctx()
    approvals._operator_identity[id(ctx.api)] = "kubernetes:the-operator"
    policy = Approval(rules=[ApprovalRule(level="high", approvers=1, allowed_kubernetes_users=["alice"])])
    vote = RemediationApprovalSpec(remediation="web-1", request_id="req-1", decision="approve", user="alice")
    created = format_time(datetime(2025, 3, 10, 12, 1, tzinfo=UTC))
    with pytest.raises(kopf.TemporaryError):
        approvals.record_kubernetes_vote(ctx, "shop", vote, policy, created)
    assert ctx.resources.writes == 5


def test_the_requester_is_the_creator_the_admission_policy_stamped_else_the_operator():
    ctx = Ctx()
    approvals._operator_identity[id(ctx.api)] = "kubernetes:the-operator"
    stamped = {"metadata": {"annotations": {"remediator.dev/requested-by": "carol"}}}
    assert approvals.requester_of(ctx, stamped) == "kubernetes:carol"
    assert approvals.requester_of(ctx, {"metadata": {}}) == "kubernetes:the-operator"
