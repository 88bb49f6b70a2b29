"""Approval policy (core/approve/approval.py): rules, who may vote, tallies, timeouts, the vote state machine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from remediator.api.models import Approval, ApprovalRule, ApprovalState, Person, Vote
from remediator.core.approve.approval import (
    Voter,
    choose_rule,
    expire_if_due,
    expiry_decision,
    identity_map,
    may_vote,
    needs_approval,
    on_expiry,
    open_request,
    parse_duration,
    record_vote,
    request_id_for,
    rule_for,
    tally,
)

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)

HIGH = ApprovalRule(
    level="high", approvers=1, allowed_slack_users=["U_ALICE", "U_BOB"], allowed_slack_groups=["S_SRE"],
    allowed_kubernetes_users=["alice"], allowed_kubernetes_groups=["sre"], timeout="30m",
)
CRITICAL = HIGH.model_copy(update={"level": "critical", "approvers": 2})


REQUEST = request_id_for("web-x1", 0, 0, NOW)


def vote(user: str, decision: str = "approve", source: str = "slack", reason: str = "",
         request_id: str = REQUEST) -> Vote:
    return Vote(user=user, source=source, decision=decision, at="2025-03-10T12:01:00Z", reason=reason,
                request_id=request_id)


def pending(rule: ApprovalRule = HIGH, level: str | None = None) -> ApprovalState:
    return open_request(rule, level or rule.level, NOW, request_id=REQUEST)


# ---------------------------------------------------------------- which rule


def test_a_configured_rule_is_used_for_its_level():
    approval = Approval(rules=[HIGH, CRITICAL])
    assert rule_for("high", approval) == HIGH
    assert rule_for("critical", approval) == CRITICAL
    assert not choose_rule("high", approval).defaulted


@pytest.mark.parametrize("level, approvers", [("low", 0), ("medium", 0), ("high", 1), ("critical", 2)])
def test_a_missing_rule_defaults_safely_by_level(level, approvers):
    choice = choose_rule(level, Approval())
    assert choice.defaulted
    assert (choice.rule.level, choice.rule.approvers, choice.rule.on_timeout) == (level, approvers, "deny")
    assert f"no approval rule for {level} risk" in choice.reasons[0]


def test_the_default_critical_rule_is_the_two_person_rule_and_says_nobody_is_listed_yet():
    reason = choose_rule("critical", Approval()).reasons[0]
    assert "2 approvers (two-person rule)" in reason
    assert "lists no one who may approve" in reason


def test_of_several_rules_for_one_level_the_strictest_is_used():
    loose = HIGH.model_copy(update={"approvers": 1})
    strict = HIGH.model_copy(update={"approvers": 3})
    choice = choose_rule("high", Approval(rules=[loose, strict]))
    assert choice.rule.approvers == 3
    assert "2 rules for high risk; using the strictest" in choice.reasons


@pytest.mark.parametrize("approvers, needed", [(0, False), (1, True), (2, True)])
def test_approval_is_needed_when_the_rule_asks_for_approvers(approvers, needed):
    assert needs_approval(HIGH.model_copy(update={"approvers": approvers})) is needed


# ---------------------------------------------------------------- who may vote


@pytest.mark.parametrize(
    "voter, requester, allowed, why",
    [
        (Voter("U_ALICE", "slack"), None, True, "slack:U_ALICE is an allowed Slack user for high risk"),
        (Voter("U_CAROL", "slack", {"S_SRE"}), None, True, "is in allowed Slack group S_SRE"),
        (Voter("alice", "kubernetes"), None, True, "kubernetes:alice is an allowed Kubernetes user"),
        (Voter("dave", "kubernetes", {"system:authenticated", "sre"}), None, True, "allowed Kubernetes group sre"),
        (Voter("U_CAROL", "slack", {"S_OTHER"}), None, False, "is not an allowed Slack user or group member"),
        # allow-lists are per source: a Kubernetes username is not a Slack user, and the other way round
        (Voter("alice", "slack"), None, False, "is not an allowed Slack user"),
        (Voter("U_ALICE", "kubernetes"), None, False, "is not an allowed Kubernetes user"),
        (Voter("U_ALICE", "slack"), "U_ALICE", False, "requested this action and cannot vote on it"),
        (Voter("U_ALICE", "slack"), "slack:U_ALICE", False, "requested this action"),
        (Voter("alice", "kubernetes"), "kubernetes:alice", False, "requested this action"),
        (Voter("U_ALICE", "slack"), "kubernetes:U_ALICE", True, "allowed Slack user"),
        (Voter("", "slack"), None, False, "anonymous"),
    ],
)
def test_who_may_vote(voter, requester, allowed, why):
    ok, reason = may_vote(HIGH, voter, requester)
    assert ok is allowed
    assert why in reason


def test_a_rule_that_requires_approvers_but_lists_no_one_allows_nobody():
    empty = ApprovalRule(level="high", approvers=1)
    for voter in (Voter("U_ALICE", "slack"), Voter("admin", "kubernetes", {"system:masters"})):
        ok, reason = may_vote(empty, voter, None)
        assert not ok
        assert "lists no one: nobody may approve" in reason


def test_a_rule_listing_only_slack_approvers_refuses_kubernetes_votes():
    slack_only = ApprovalRule(level="high", approvers=1, allowed_slack_users=["U_ALICE"])
    ok, reason = may_vote(slack_only, Voter("alice", "kubernetes"), None)
    assert not ok
    assert reason == "the high rule lists no Kubernetes approvers"


def test_no_votes_are_taken_when_no_approval_is_needed():
    ok, reason = may_vote(ApprovalRule(level="low"), Voter("U_ALICE", "slack"), None)
    assert not ok
    assert "needs no approval" in reason


# ---------------------------------------------------------------- tally


def test_requester_never_counts_as_their_own_approver():
    result = tally(HIGH, [vote("U_ALICE")], requester="U_ALICE")
    assert (result.decision, result.approvals, result.needed) == ("pending", 0, 1)
    assert any("requested this action" in r for r in result.reasons)
    assert tally(HIGH, [vote("U_ALICE"), vote("U_BOB")], requester="U_ALICE").decision == "approved"


def test_critical_rollback_needs_two_distinct_approvers():
    rule = rule_for("critical", Approval(rules=[CRITICAL]))
    same_twice = tally(rule, [vote("U_ALICE"), vote("U_ALICE")], requester=None)
    assert (same_twice.decision, same_twice.approvals, same_twice.needed) == ("pending", 1, 2)
    assert "slack:U_ALICE already approved; counted once" in same_twice.reasons
    two = tally(rule, [vote("U_ALICE"), vote("U_BOB")], requester=None)
    assert (two.decision, two.approvals) == ("approved", 2)


def test_one_allowed_deny_denies():
    result = tally(CRITICAL, [vote("U_ALICE"), vote("U_BOB", "deny", reason="peak traffic")], requester=None)
    assert (result.decision, result.approvals) == ("denied", 1)
    assert "denied by slack:U_BOB: peak traffic" in result.reasons


def test_a_deny_from_someone_not_allowed_is_ignored():
    result = tally(HIGH, [vote("U_MALLORY", "deny"), vote("U_ALICE")], requester=None)
    assert result.decision == "approved"
    assert any(r.startswith("ignored deny from slack:U_MALLORY") for r in result.reasons)


def test_the_first_decision_stands_in_a_tally():
    assert tally(HIGH, [vote("U_ALICE"), vote("U_BOB", "deny")], requester=None).decision == "approved"


def test_group_members_count_when_their_groups_are_given():
    votes = [vote("U_CAROL")]
    assert tally(HIGH, votes, requester=None).decision == "pending"
    assert tally(HIGH, votes, requester=None, groups={("slack", "U_CAROL"): ["S_SRE"]}).decision == "approved"


def test_the_same_name_on_two_sources_counts_as_two_voters_when_no_person_links_them():
    # (source, user) is the identity unless the policy's people say otherwise.
    rule = CRITICAL.model_copy(update={"allowed_slack_users": ["alice"]})
    result = tally(rule, [vote("alice", source="slack"), vote("alice", source="kubernetes")], requester=None)
    assert (result.decision, result.approvals) == ("approved", 2)


ALICE_EVERYWHERE = identity_map([Person(name="alice", slack="U_ALICE", kubernetes="alice")])


def test_one_person_on_slack_and_kubernetes_counts_once_in_a_tally():
    result = tally(CRITICAL, [vote("U_ALICE"), vote("alice", source="kubernetes")], requester=None,
                   people=ALICE_EVERYWHERE)
    assert (result.decision, result.approvals) == ("pending", 1)
    assert "alice (kubernetes:alice) already approved; counted once" in result.reasons


def test_one_person_voting_again_from_their_other_identity_is_a_duplicate():
    state, _ = record_vote(pending(CRITICAL), vote("U_ALICE"), CRITICAL, None, NOW, people=ALICE_EVERYWHERE)
    again, outcome = record_vote(state, vote("alice", source="kubernetes"), CRITICAL, None, NOW,
                                 people=ALICE_EVERYWHERE)
    assert outcome.kind == "duplicate" and again == state and again.decision is None
    state, outcome = record_vote(state, vote("U_BOB"), CRITICAL, None, NOW, people=ALICE_EVERYWHERE)
    assert (outcome.kind, state.decision) == ("accepted", "approved")


def test_the_requester_cannot_vote_through_another_identity_of_the_same_person():
    _, outcome = record_vote(pending(), vote("U_ALICE"), HIGH, "kubernetes:alice", NOW, people=ALICE_EVERYWHERE)
    assert outcome.kind == "refused-not-allowed" and "requested this action" in outcome.reason


def test_the_operator_as_requester_cannot_approve_as_itself():
    rule = HIGH.model_copy(update={"allowed_kubernetes_users": ["system:serviceaccount:ops:remediator"]})
    _, outcome = record_vote(pending(rule), vote("system:serviceaccount:ops:remediator", source="kubernetes"),
                             rule, "kubernetes:system:serviceaccount:ops:remediator", NOW)
    assert outcome.kind == "refused-not-allowed" and "requested this action" in outcome.reason


def test_a_tally_without_enough_approvals_is_pending_and_says_how_many_are_missing():
    result = tally(CRITICAL, [vote("U_ALICE")], requester=None)
    assert result.decision == "pending"
    assert result.reasons[-1] == "waiting for 1 more approval (1/2)"


def test_a_rule_without_approvers_is_approved_without_votes():
    result = tally(ApprovalRule(level="medium"), [], requester=None)
    assert (result.decision, result.needed) == ("approved", 0)


# ---------------------------------------------------------------- timeouts


@pytest.mark.parametrize(
    "on_timeout, level, outcome",
    [
        ("deny", "low", "denied"),
        ("deny", "critical", "denied"),
        ("escalate", "low", "escalated"),
        ("escalate", "critical", "escalated"),
        ("proceed", "low", "proceed"),
        ("proceed", "medium", "proceed"),
        ("proceed", "high", "denied"),
        ("proceed", "critical", "denied"),
    ],
)
def test_what_a_timeout_means(on_timeout, level, outcome):
    rule = HIGH.model_copy(update={"on_timeout": on_timeout})
    assert on_expiry(rule, level) == outcome


def test_proceed_on_timeout_for_high_risk_is_treated_as_deny_with_a_reason():
    reason = expiry_decision(HIGH.model_copy(update={"on_timeout": "proceed"}), "high").reason
    assert "not honoured for high risk, treated as deny" in reason


# ---------------------------------------------------------------- the request's state


def test_opening_a_request_sets_the_deadline_from_the_rule_timeout():
    state = open_request(HIGH.model_copy(update={"timeout": "1h30m"}), "high", NOW, slack_channel="#ops")
    assert state.required == 1
    assert state.level == "high"
    assert state.requested_at == "2025-03-10T12:00:00Z"
    assert state.deadline == "2025-03-10T13:30:00Z"
    assert state.decision is None
    assert state.slack_channel == "#ops"


def test_a_request_that_needs_no_approval_is_approved_on_the_spot():
    state = open_request(ApprovalRule(level="low"), "low", NOW)
    assert (state.decision, state.decided_at, state.deadline) == ("approved", "2025-03-10T12:00:00Z", None)


def test_an_accepted_vote_returns_a_new_state_and_leaves_the_old_one_alone():
    before = pending(CRITICAL)
    snapshot = before.model_dump()
    after, outcome = record_vote(before, vote("U_ALICE"), CRITICAL, None, NOW)
    assert outcome.kind == "accepted"
    assert outcome.tally.decision == "pending"
    assert after is not before
    assert [v.user for v in after.votes] == ["U_ALICE"]
    assert before.model_dump() == snapshot


def test_the_vote_that_reaches_the_count_decides_the_request():
    state, _ = record_vote(pending(CRITICAL), vote("U_ALICE"), CRITICAL, None, NOW)
    state, outcome = record_vote(state, vote("alice", source="kubernetes"), CRITICAL, None, NOW)
    assert outcome.kind == "accepted"
    assert (state.decision, state.decided_at) == ("approved", "2025-03-10T12:00:00Z")


def test_a_second_identical_vote_is_a_duplicate_and_counted_once():
    state, _ = record_vote(pending(CRITICAL), vote("U_ALICE"), CRITICAL, None, NOW)
    again, outcome = record_vote(state, vote("U_ALICE"), CRITICAL, None, NOW)
    assert outcome.kind == "duplicate"
    assert again == state
    assert again.decision is None


def test_a_voter_who_approved_may_still_deny():
    state, _ = record_vote(pending(CRITICAL), vote("U_ALICE"), CRITICAL, None, NOW)
    state, outcome = record_vote(state, vote("U_ALICE", "deny"), CRITICAL, None, NOW)
    assert outcome.kind == "accepted"
    assert state.decision == "denied"


def test_a_vote_from_someone_not_allowed_is_refused_and_not_stored():
    before = pending()
    after, outcome = record_vote(before, vote("U_MALLORY"), HIGH, None, NOW)
    assert outcome.kind == "refused-not-allowed"
    assert after == before


def test_a_vote_for_another_request_is_refused_as_stale_and_not_stored():
    before = pending()
    older = request_id_for("web-x1", 0, 0, NOW - timedelta(minutes=5))
    after, outcome = record_vote(before, vote("U_ALICE", request_id=older), HIGH, None, NOW)
    assert outcome.kind == "refused-stale" and older in outcome.reason
    assert after == before
    assert record_vote(before, vote("U_ALICE", request_id=""), HIGH, None, NOW)[1].kind == "refused-stale"


def test_a_vote_cast_before_the_request_opened_never_counts_even_with_its_id():
    before = pending()
    _, outcome = record_vote(before, vote("U_ALICE"), HIGH, None, NOW, cast_at=NOW - timedelta(seconds=1))
    assert outcome.kind == "refused-stale" and "before the request opened" in outcome.reason
    assert record_vote(before, vote("U_ALICE"), HIGH, None, NOW, cast_at=NOW)[1].kind == "accepted"


def test_a_request_without_an_id_takes_no_votes():
    legacy = pending().model_copy(update={"request_id": None})
    assert record_vote(legacy, vote("U_ALICE"), HIGH, None, NOW)[1].kind == "refused-stale"


def test_each_step_attempt_gets_its_own_request_id():
    ids = {request_id_for("web-x1", 0, 0, NOW), request_id_for("web-x1", 1, 1, NOW),
           request_id_for("web-x1", 1, 1, NOW + timedelta(seconds=1)), request_id_for("web-x2", 0, 0, NOW)}
    assert len(ids) == 4
    assert request_id_for("web-x1", 0, 0, NOW) == request_id_for("web-x1", 0, 0, NOW), "deterministic"


def test_the_requester_s_vote_is_refused():
    _, outcome = record_vote(pending(), vote("U_ALICE"), HIGH, "slack:U_ALICE", NOW)
    assert outcome.kind == "refused-not-allowed"


def test_a_group_member_s_vote_is_accepted_when_the_edge_passes_their_groups():
    state, outcome = record_vote(pending(), vote("U_CAROL"), HIGH, None, NOW, groups=["S_SRE"])
    assert outcome.kind == "accepted"
    assert state.decision == "approved"


@pytest.mark.parametrize("decision", ["approved", "denied", "expired"])
def test_a_decided_request_takes_no_more_votes(decision):
    decided = pending().model_copy(update={"decision": decision, "decided_at": "2025-03-10T12:05:00Z"})
    after, outcome = record_vote(decided, vote("U_BOB", "deny"), HIGH, None, NOW)
    assert outcome.kind == "refused-already-decided"
    assert decision in outcome.reason
    assert after == decided


def test_approval_after_expiry_is_refused():
    state = pending()  # deadline 12:30Z
    _, just_before = record_vote(state, vote("U_ALICE"), HIGH, None, NOW + timedelta(minutes=29, seconds=59))
    assert just_before.kind == "accepted"
    after, at_deadline = record_vote(state, vote("U_ALICE"), HIGH, None, NOW + timedelta(minutes=30))
    assert at_deadline.kind == "refused-expired"
    assert "closed at 2025-03-10T12:30:00Z" in at_deadline.reason
    assert after == state


def test_a_request_with_an_unreadable_deadline_counts_as_expired():
    state = pending().model_copy(update={"deadline": "soon"})
    assert record_vote(state, vote("U_ALICE"), HIGH, None, NOW)[1].kind == "refused-expired"


def test_a_policy_edit_raises_but_never_lowers_what_a_pending_request_needs():
    state = pending(HIGH)  # opened needing 1
    tightened, outcome = record_vote(state, vote("U_ALICE"), CRITICAL.model_copy(update={"level": "high"}), None, NOW)
    assert (tightened.decision, tightened.required, outcome.tally.needed) == (None, 2, 2)
    # the policy goes back to 1 approver: the request still needs its 2
    decided, _ = record_vote(tightened, vote("U_BOB"), HIGH, None, NOW)
    assert (decided.decision, decided.required) == ("approved", 2)


def test_expire_if_due_marks_a_pending_request_expired_with_what_the_timeout_means():
    rule = HIGH.model_copy(update={"on_timeout": "escalate"})
    state = pending(rule)
    unchanged, nothing = expire_if_due(state, rule, NOW + timedelta(minutes=29))
    assert (unchanged, nothing) == (state, None)
    expired, decision = expire_if_due(state, rule, NOW + timedelta(minutes=30))
    assert (expired.decision, expired.decided_at) == ("expired", "2025-03-10T12:30:00Z")
    assert decision.outcome == "escalated"
    assert state.decision is None


def test_expire_if_due_leaves_a_decided_request_alone():
    approved = pending().model_copy(update={"decision": "approved", "decided_at": "2025-03-10T12:01:00Z"})
    assert expire_if_due(approved, HIGH, NOW + timedelta(days=1)) == (approved, None)


def test_the_clock_must_be_timezone_aware():
    with pytest.raises(ValueError):
        record_vote(pending(), vote("U_ALICE"), HIGH, None, datetime(2025, 3, 10, 12, 0))


@pytest.mark.parametrize(
    "text, delta",
    [("30s", timedelta(seconds=30)), ("5m", timedelta(minutes=5)), ("1h30m", timedelta(hours=1, minutes=30)),
     ("7d", timedelta(days=7)), ("2w", timedelta(weeks=2)), ("1500ms", timedelta(milliseconds=1500))],
)
def test_crd_durations_are_parsed(text, delta):
    assert parse_duration(text) == delta


@pytest.mark.parametrize("text", ["", "5", "m", "5 m", "1h-2m", "1y"])
def test_malformed_durations_are_refused(text):
    with pytest.raises(ValueError):
        parse_duration(text)
