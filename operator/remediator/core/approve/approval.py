"""Approval policy: which rule applies, who may vote, how votes add up, what a timeout means.

Pure: policy, votes and `now` in; decisions with human-readable reasons out.
Nothing here sends a Slack message or patches a status: the edges
(approvals/slack, the CLI, the controller) call these and persist the result.

Choices, all on the side of safety:

- **Missing rule.** A policy without a rule for a level gets a default:
  low and medium need no approval, high needs 1 approver, critical needs 2
  (the two-person rule). The default lists no approvers, so — see next point —
  nobody can approve and the request times out to a deny until the policy
  says who may approve. `choose_rule` says so in its reasons.
- **Empty allow-lists.** A rule that requires approvers but lists no one
  allows *nobody*: an approval that anyone could give is no gate. A rule that
  lists only Slack approvers refuses Kubernetes votes, and the other way round.
- **The requester never votes on their own action**, neither to approve nor to
  deny (denying one's own request is a cancel, which is not a vote). A voter
  is the requester when `requester` equals their id or `source:id`, or names
  an identity of the same person. Remediations are requested by the operator,
  so its own identity never counts as an approver.
- **One person counts once.** The policy's `approval.people` maps a person to
  their Slack and Kubernetes identities; votes are counted per person, and an
  identity no person claims is a person of its own (`source:id`).
- **A vote is bound to one request.** Each request has an id (step, attempt,
  time); a vote carrying another id, or cast before the request opened, is
  refused as stale: it was meant for something else.
- **Deny wins.** Any allowed deny while the request is pending denies it,
  including a deny from someone who approved earlier (a change of mind
  towards safety is honoured; towards approval it is not).
- **Decided is final.** Once approved, denied or expired, a request takes no
  more votes (the caller answers 409). A policy edit may raise but never
  lower the number of approvals a pending request needs.
- **Timeouts.** `onTimeout: proceed` is honoured only for low and medium
  risk; for high and critical it is treated as a deny.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Literal

from remediator.api.models import (TERMINAL_PHASES, Approval, ApprovalRule, ApprovalState, Person, RemediationStatus,
                                   RiskLevel, Vote)
from remediator.core.durations import format_time, parse_duration, parse_time
from remediator.core.plan.freeze import require_aware

VoterSource = Literal["slack", "kubernetes"]
TallyDecision = Literal["approved", "denied", "pending"]
ExpiryOutcome = Literal["denied", "escalated", "proceed"]
VoteOutcomeKind = Literal[
    "accepted", "duplicate", "refused-not-allowed", "refused-already-decided", "refused-expired", "refused-stale"
]
VoterKey = tuple[str, str]  # (source, user)
People = Mapping[VoterKey, str]  # (source, user) -> the person they belong to

DEFAULT_APPROVERS: Mapping[str, int] = MappingProxyType({"low": 0, "medium": 0, "high": 1, "critical": 2})
PROCEED_ON_TIMEOUT_LEVELS: frozenset[str] = frozenset({"low", "medium"})

_SOURCE_TITLE = MappingProxyType({"slack": "Slack", "kubernetes": "Kubernetes"})


@dataclass(frozen=True)
class Voter:
    """Who is voting, as the edge authenticated them (Slack user id, or the Kubernetes username)."""

    id: str
    source: VoterSource
    groups: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", frozenset(self.groups))


@dataclass(frozen=True)
class RuleChoice:
    rule: ApprovalRule
    defaulted: bool
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Tally:
    decision: TallyDecision
    approvals: int
    needed: int
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class ExpiryDecision:
    outcome: ExpiryOutcome
    reason: str


@dataclass(frozen=True)
class VoteOutcome:
    kind: VoteOutcomeKind
    reason: str
    tally: Tally | None = None  # the count after an accepted vote


# ---------------------------------------------------------------- which rule


def rule_for(level: RiskLevel, approval: Approval) -> ApprovalRule:
    return choose_rule(level, approval).rule


def choose_rule(level: RiskLevel, approval: Approval) -> RuleChoice:
    candidates = [rule for rule in approval.rules if rule.level == level]
    if not candidates:
        rule = default_rule(level)
        return RuleChoice(rule, True, (default_rule_reason(rule),))
    # Several rules for one level is a policy mistake; the one asking for most approvers is the safe reading.
    rule = max(candidates, key=lambda r: r.approvers)
    reasons = [f"approval rule for {level} risk: {describe_rule(rule)}"]
    if len(candidates) > 1:
        reasons.append(f"{len(candidates)} rules for {level} risk; using the strictest")
    return RuleChoice(rule, False, tuple(reasons))


def default_rule(level: RiskLevel) -> ApprovalRule:
    return ApprovalRule(level=level, approvers=DEFAULT_APPROVERS[level])


def default_rule_reason(rule: ApprovalRule) -> str:
    if rule.approvers == 0:
        return f"no approval rule for {rule.level} risk in the policy: defaulting to no approval needed"
    two_person = " (two-person rule)" if rule.approvers >= 2 else ""
    return (
        f"no approval rule for {rule.level} risk in the policy: defaulting to {rule.approvers} "
        f"approver{'s' if rule.approvers > 1 else ''}{two_person}; the default lists no one who may approve, "
        f"so the request will time out to {rule.on_timeout} until the policy names approvers"
    )


def describe_rule(rule: ApprovalRule) -> str:
    if rule.approvers == 0:
        return "no approval needed"
    return f"{rule.approvers} approver{'s' if rule.approvers > 1 else ''}, timeout {rule.timeout} -> {rule.on_timeout}"


def needs_approval(rule: ApprovalRule) -> bool:
    return rule.approvers > 0


# ---------------------------------------------------------------- who may vote


def may_vote(rule: ApprovalRule, voter: Voter, requester: str | None, people: People | None = None
             ) -> tuple[bool, str]:
    who = voter_label(voter.source, voter.id)
    if not needs_approval(rule):
        return False, f"{rule.level} risk needs no approval, so no votes are taken"
    if not voter.id:
        return False, "an anonymous voter cannot approve or deny"
    if is_requester(voter, requester, people):
        return False, f"{who} requested this action and cannot vote on it"
    users, groups = allow_lists(rule, voter.source)
    if not users and not groups:
        if not lists_anyone(rule):
            return False, (
                f"the {rule.level} rule requires {rule.approvers} approver(s) but lists no one: "
                "nobody may approve until the policy names approvers"
            )
        return False, f"the {rule.level} rule lists no {_SOURCE_TITLE[voter.source]} approvers"
    if voter.id in users:
        return True, f"{who} is an allowed {_SOURCE_TITLE[voter.source]} user for {rule.level} risk"
    shared = sorted(voter.groups.intersection(groups))
    if shared:
        return True, f"{who} is in allowed {_SOURCE_TITLE[voter.source]} group {shared[0]} for {rule.level} risk"
    return False, f"{who} is not an allowed {_SOURCE_TITLE[voter.source]} user or group member for {rule.level} risk"


def allow_lists(rule: ApprovalRule, source: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if source == "slack":
        return tuple(rule.allowed_slack_users), tuple(rule.allowed_slack_groups)
    return tuple(rule.allowed_kubernetes_users), tuple(rule.allowed_kubernetes_groups)


def lists_anyone(rule: ApprovalRule) -> bool:
    return any(any(allow_lists(rule, source)) for source in _SOURCE_TITLE)


def is_requester(voter: Voter, requester: str | None, people: People | None = None) -> bool:
    if not requester:
        return False
    if requester in (voter.id, voter_label(voter.source, voter.id)):
        return True
    source, _, user = requester.partition(":")
    return bool(user) and person_of(source, user, people) == person_of(voter.source, voter.id, people)


def identity_map(people: Iterable[Person]) -> dict[VoterKey, str]:
    """(source, user) -> person, from the policy's `approval.people`."""
    found: dict[VoterKey, str] = {}
    for person in people:
        for source, user in (("slack", person.slack), ("kubernetes", person.kubernetes)):
            if user:
                found[(source, user)] = f"person:{person.name}"
    return found


def person_of(source: str, user: str, people: People | None) -> str:
    """Who an identity is: the person the policy maps it to, else the identity itself."""
    return (people or {}).get((source, user)) or voter_label(source, user)


def voter_label(source: str, user: str) -> str:
    return f"{source}:{user}"


def describe_voter(source: str, user: str, people: People | None) -> str:
    person = (people or {}).get((source, user))
    label = voter_label(source, user)
    return f"{person.removeprefix('person:')} ({label})" if person else label


# ---------------------------------------------------------------- counting


def tally(
    rule: ApprovalRule,
    votes: Iterable[Vote],
    requester: str | None,
    groups: Mapping[VoterKey, Collection[str]] | None = None,
    people: People | None = None,
) -> Tally:
    """Count votes in order; the first decision reached stands (later votes do not change it).

    Each vote is checked with `may_vote`; `groups` gives the voters' group
    memberships keyed by (source, user), needed when the rule allows groups.
    """
    if not needs_approval(rule):
        return Tally("approved", 0, 0, (f"{rule.level} risk needs no approval",))
    groups = groups or {}
    eligible: list[Vote] = []
    ignored: list[str] = []
    for vote in votes:
        voter = Voter(vote.user, vote.source, frozenset(groups.get((vote.source, vote.user), ())))
        allowed, why = may_vote(rule, voter, requester, people)
        if allowed:
            eligible.append(vote)
        else:
            ignored.append(f"ignored {vote.decision} from {voter_label(vote.source, vote.user)}: {why}")
    counted = count_votes(rule.approvers, eligible, people)
    return Tally(counted.decision, counted.approvals, counted.needed, tuple(ignored) + counted.reasons)


def count_votes(needed: int, eligible: Iterable[Vote], people: People | None = None) -> Tally:
    """Fold already-screened votes: deny wins, each person approves once, whichever identity they use."""
    approvers: list[str] = []
    reasons: list[str] = []
    for vote in eligible:
        key = person_of(vote.source, vote.user, people)
        who = describe_voter(vote.source, vote.user, people)
        if vote.decision == "deny":
            comment = f": {vote.reason}" if vote.reason else ""
            reasons.append(f"denied by {who}{comment}")
            return Tally("denied", len(approvers), needed, tuple(reasons))
        if key in approvers:
            reasons.append(f"{who} already approved; counted once")
            continue
        approvers.append(key)
        reasons.append(f"approved by {who} ({len(approvers)}/{needed})")
        if len(approvers) >= needed:
            return Tally("approved", len(approvers), needed, tuple(reasons))
    missing = needed - len(approvers)
    reasons.append(f"waiting for {missing} more approval{'s' if missing > 1 else ''} ({len(approvers)}/{needed})")
    return Tally("pending", len(approvers), needed, tuple(reasons))


# ---------------------------------------------------------------- timeouts


def on_expiry(rule: ApprovalRule, level: RiskLevel) -> ExpiryOutcome:
    return expiry_decision(rule, level).outcome


def expiry_decision(rule: ApprovalRule, level: RiskLevel) -> ExpiryDecision:
    if rule.on_timeout == "escalate":
        return ExpiryDecision("escalated", f"approval timed out after {rule.timeout}: escalating")
    if rule.on_timeout == "proceed":
        if level in PROCEED_ON_TIMEOUT_LEVELS:
            return ExpiryDecision("proceed", f"approval timed out after {rule.timeout}: proceeding ({level} risk)")
        return ExpiryDecision(
            "denied",
            f"approval timed out after {rule.timeout}: onTimeout proceed is not honoured for {level} risk, "
            "treated as deny",
        )
    return ExpiryDecision("denied", f"approval timed out after {rule.timeout}: denied")


# ---------------------------------------------------------------- the request's state


def open_request(
    rule: ApprovalRule, level: RiskLevel, now: datetime, slack_channel: str | None = None, request_id: str | None = None
) -> ApprovalState:
    """A new request; one that needs no approval is approved on the spot."""
    at = format_time(now)
    if not needs_approval(rule):
        return ApprovalState(
            required=0, level=level, requested_at=at, decided_at=at, decision="approved", slack_channel=slack_channel,
            request_id=request_id,
        )
    deadline = format_time(now + parse_duration(rule.timeout))
    return ApprovalState(
        required=rule.approvers, level=level, requested_at=at, deadline=deadline, slack_channel=slack_channel,
        request_id=request_id,
    )


def request_id_for(remediation: str, step_index: int, attempt: int, now: datetime, step_digest: str = "") -> str:
    """The id of one approval request: the Remediation, the step, how many steps ran before, the time opened,
    and the digest of the step's action, target and params.

    A vote names it, so a vote (a Slack button, a RemediationApproval) is for this request and no other, and
    so for exactly the step the approver was shown.
    """
    seed = f"{remediation}|{step_index}|{attempt}|{format_time(now)}|{step_digest}"
    return hashlib.sha256(seed.encode()).hexdigest()[:16]


def stale_reason(state: ApprovalState, vote: Vote, cast_at: datetime | None) -> str | None:
    """Why a vote is not for the open request, or None when it is."""
    if not state.request_id or vote.request_id != state.request_id:
        return (f"the vote is for request {vote.request_id or '(none)'}, but the open request is "
                f"{state.request_id or '(none)'}: vote on the current message")
    if cast_at is not None and state.requested_at:
        try:
            opened = parse_time(state.requested_at)
        except ValueError:
            return "the request has an unreadable opening time"
        if cast_at < opened:
            return f"the vote was cast at {format_time(cast_at)}, before the request opened at {state.requested_at}"
    return None


def is_expired(state: ApprovalState, now: datetime) -> bool:
    if state.deadline is None:
        return False
    try:
        deadline = parse_time(state.deadline)
    except ValueError:
        return True  # an unreadable deadline must not keep a request open forever
    return now >= deadline


def expire_if_due(
    state: ApprovalState, rule: ApprovalRule, now: datetime
) -> tuple[ApprovalState, ExpiryDecision | None]:
    """Mark a pending request expired once its deadline passed, with what the timeout means."""
    require_aware(now)
    if state.decision is not None or not is_expired(state, now):
        return state, None
    expired = state.model_copy(update={"decision": "expired", "decided_at": format_time(now)})
    return expired, expiry_decision(rule, state.level or rule.level)


def record_vote(
    state: ApprovalState,
    vote: Vote,
    rule: ApprovalRule,
    requester: str | None,
    now: datetime,
    groups: Collection[str] = (),
    *,
    cast_at: datetime | None = None,
    people: People | None = None,
) -> tuple[ApprovalState, VoteOutcome]:
    """Apply one vote; returns a new state (the given one is never modified) and what happened.

    `groups` are the voter's group memberships as the edge resolved them; `cast_at` is when the vote was
    made (a RemediationApproval's creation time), when the edge knows it; `people` maps identities to persons.
    Only accepted votes are stored, so the stored votes are the eligible ones.
    """
    require_aware(now)
    who = describe_voter(vote.source, vote.user, people)
    stale = stale_reason(state, vote, cast_at)
    if stale:
        return state, VoteOutcome("refused-stale", stale)
    if state.decision is not None:
        return state, VoteOutcome(
            "refused-already-decided", f"this request was already {state.decision} at {state.decided_at}"
        )
    if is_expired(state, now):
        return state, VoteOutcome("refused-expired", f"the approval window closed at {state.deadline}")
    needed = max(state.required, rule.approvers)
    effective = rule if needed == rule.approvers else rule.model_copy(update={"approvers": needed})
    allowed, why = may_vote(effective, Voter(vote.user, vote.source, frozenset(groups)), requester, people)
    if not allowed:
        return state, VoteOutcome("refused-not-allowed", why)
    person = person_of(vote.source, vote.user, people)
    earlier = [v for v in state.votes if person_of(v.source, v.user, people) == person]
    if any(v.decision == vote.decision for v in earlier):
        return state, VoteOutcome("duplicate", f"{who} already voted {vote.decision}; counted once")
    votes = [*state.votes, vote]
    counted = count_votes(needed, votes, people)
    update: dict = {"votes": votes, "required": needed}
    if counted.decision != "pending":
        update |= {"decision": counted.decision, "decided_at": format_time(now)}
    return state.model_copy(update=update), VoteOutcome("accepted", why, counted)


VOTE_NOTES = 10  # refused votes noted in one Remediation's timeline; past that they are counted and logged only


def worth_noting(status: RemediationStatus, vote: Vote, kind: str, message: str) -> bool:
    """Whether a vote that changed nothing goes into the timeline as `kind`/`message`. Not on an ended
    Remediation (its record is final); not a vote already counted (the same click again, or replayed through
    another replica); not the same words twice; and not past VOTE_NOTES of a kind, so that clicks on an old
    message cannot flood the incident's own entries out of the bounded timeline."""
    if status.phase in TERMINAL_PHASES:
        return False
    counted = status.approval.votes if status.approval is not None else ()
    if any((v.source, v.user, v.decision, v.request_id) == (vote.source, vote.user, vote.decision, vote.request_id)
           for v in counted):
        return False
    same_kind = [entry for entry in status.timeline if entry.kind == kind]
    return len(same_kind) < VOTE_NOTES and not any(entry.message == message for entry in same_kind)
