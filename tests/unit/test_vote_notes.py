"""Clicks that change nothing cannot flood a Remediation's timeline: a refusal is noted once, at most ten of
them, none on an ended Remediation, and a repeated vote (a second click, a replay through another replica)
writes nothing."""

from __future__ import annotations

import copy

from remediator.api.models import Approval, ApprovalRule, Vote
from remediator.controller import approvals

WAITING = {"phase": "AwaitingApproval", "timeline": [
    {"at": "2025-03-10T12:00:00Z", "kind": "Planned", "message": "Pending -> Planned: rollback"},
    {"at": "2025-03-10T12:00:00Z", "kind": "AwaitingApproval", "message": "Planned -> AwaitingApproval: high"}],
    "approval": {"requestId": "req-1", "required": 2, "level": "high", "requestedAt": "2025-03-10T12:00:00Z",
                 "deadline": "2999-01-01T00:00:00Z"}}
POLICY = Approval(rules=[ApprovalRule(level="high", approvers=2, allowed_kubernetes_users=["alice", "bob"])])


class Remediations:
    """One Remediation, stored as the apiserver would: every status write replaces it and bumps its version."""

    def __init__(self, status: dict):
        self.object = {"metadata": {"name": "web-1", "namespace": "shop", "resourceVersion": "1"},
                       "status": copy.deepcopy(status)}
        self.writes = 0

    def get(self, kind, name, namespace):
        return copy.deepcopy(self.object)

    def replace_status(self, kind, namespace, name, body):
        self.writes += 1
        self.object = {**copy.deepcopy(body), "metadata": {
            **body["metadata"], "resourceVersion": str(int(body["metadata"]["resourceVersion"]) + 1)}}
        return copy.deepcopy(self.object)

    def kinds(self) -> list[str]:
        return [entry["kind"] for entry in self.object["status"]["timeline"]]


class Ctx:
    def __init__(self, status: dict):
        self.api = object()
        self.resources = Remediations(status)
        approvals._operator_identity[id(self.api)] = "kubernetes:the-operator"


def vote(ctx: Ctx, user: str, decision: str = "approve") -> str:
    cast = Vote(user=user, source="kubernetes", decision=decision, request_id="req-1", at="2025-03-10T12:01:00Z")
    return approvals.record_vote(ctx, "shop", "web-1", cast, lambda rule: (), POLICY)[0]


def test_a_refused_voter_clicking_sixty_times_is_noted_once():
    ctx = Ctx(WAITING)
    outcomes = {vote(ctx, "mallory") for _ in range(60)}
    assert outcomes == {"refused-not-allowed"}
    assert ctx.resources.writes == 1 and ctx.resources.kinds().count("VoteRefused") == 1


def test_refusals_of_many_voters_stop_being_noted_before_they_push_the_incidents_entries_out():
    ctx = Ctx(WAITING)
    for i in range(60):
        assert vote(ctx, f"stranger-{i}") == "refused-not-allowed"
    kinds = ctx.resources.kinds()
    assert kinds.count("VoteRefused") == 10 and kinds[:2] == ["Planned", "AwaitingApproval"], kinds


def test_a_repeated_vote_is_answered_duplicate_and_writes_nothing():
    ctx = Ctx(WAITING)
    assert vote(ctx, "alice") == "accepted"
    written = ctx.resources.writes
    assert [vote(ctx, "alice") for _ in range(5)] == ["duplicate"] * 5
    assert ctx.resources.writes == written


def test_the_deciding_vote_replayed_after_the_decision_writes_nothing():
    ctx = Ctx(WAITING)
    assert vote(ctx, "alice") == "accepted" and vote(ctx, "bob") == "accepted"
    ctx.resources.object["status"]["phase"] = "Acting"  # the loop took the decision on
    written = ctx.resources.writes
    assert vote(ctx, "bob") == "refused-already-decided"
    assert ctx.resources.writes == written
    assert vote(ctx, "carol") == "refused-already-decided"
    assert ctx.resources.writes == written + 1, "a new voter after the decision is noted, once"


def test_no_vote_is_noted_on_an_ended_remediation():
    ctx = Ctx({**WAITING, "phase": "Succeeded"})
    for user in ("alice", "mallory", "bob"):
        assert vote(ctx, user) == "refused-already-decided"
    assert ctx.resources.writes == 0
