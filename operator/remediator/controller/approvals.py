"""Votes cast through Kubernetes (RemediationApproval objects) folded into the Remediation.

RBAC decided that the creator may vote at all, the admission policy that
spec.user/groups are really theirs; the approval rule of the policy decides
whether this voter counts for this risk level (core.approval). The vote is
persisted in the Remediation (resourceVersion-guarded) before the
RemediationApproval's status says what happened to it.

Every vote names the request it is for (Slack button value, RemediationApproval
spec.requestId); the operator requested the action, so its own identity never
counts as an approver.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from datetime import datetime, timezone

import kopf
from kubernetes.client.rest import ApiException

from ..api.models import Approval, ApprovalRule, RemediationApprovalSpec, RemediationStatus, Vote
from ..approvals.kubernetes import whoami
from ..core.approve import approval
from ..core.engine import engine, state
from ..core.durations import parse_time
from ..kube import Resources
from ..records.metrics import REFUSALS
from .context import OperatorContext

log = logging.getLogger("remediator.approvals")

_operator_identity: dict[int, str] = {}  # id(api client) -> "kubernetes:<username>"


def operator_identity(ctx: OperatorContext) -> str:
    """Who requests every Remediation's actions: the operator, as the apiserver knows it (asked once)."""
    key = id(ctx.api)
    if key not in _operator_identity:
        _operator_identity[key] = approval.voter_label("kubernetes", whoami(ctx.api)[0])
    return _operator_identity[key]


REQUESTED_BY = "remediator.dev/requested-by"


def requester_of(ctx: OperatorContext, obj: dict) -> str:
    """Who asked for this Remediation's actions: the creator the admission policy stamped, else the operator."""
    stamped = (obj["metadata"].get("annotations") or {}).get(REQUESTED_BY)
    return approval.voter_label("kubernetes", stamped) if stamped else operator_identity(ctx)


def record_kubernetes_vote(ctx: OperatorContext, namespace: str, spec: RemediationApprovalSpec,
                           policy_approval, created_at: str | None = None) -> tuple[str, str]:
    """Apply a RemediationApproval; returns (outcome, message) for its status, or raises kopf.TemporaryError
    when it could not be recorded (the Remediation kept changing), so kopf tries again."""
    vote = Vote(user=spec.user, source="kubernetes", decision=spec.decision, request_id=spec.request_id,
                at=engine.ts(datetime.now(timezone.utc)), reason=spec.reason)
    cast_at = parse_time(created_at) if created_at else None
    outcome, message = record_vote(ctx, namespace, spec.remediation, vote, lambda rule: spec.groups,
                                   policy_approval, cast_at)
    if outcome == "refused-contended":  # not recorded: kopf handles the object again rather than drop the vote
        raise kopf.TemporaryError(message, delay=1)
    return outcome, message


def record_vote(ctx: OperatorContext, namespace: str, remediation: str, vote: Vote,
                groups_for: Callable[[ApprovalRule], Collection[str]], policy_approval: Approval,
                cast_at: datetime | None = None) -> tuple[str, str]:
    """Fold one vote into the Remediation, persisted before this returns; (outcome, message)."""
    res: Resources = ctx.resources
    who = f"{vote.source}:{vote.user}"
    people = approval.identity_map(policy_approval.people)
    for _ in range(5):
        now = datetime.now(timezone.utc)
        obj = res.get("Remediation", remediation, namespace)
        if obj is None:
            return "refused-unknown-remediation", f"no Remediation {remediation!r} in {namespace}"
        requester = requester_of(ctx, obj)
        status = RemediationStatus.model_validate(obj.get("status") or {})
        if status.phase != "AwaitingApproval" or status.approval is None:
            note_refusal(res, obj, status, vote, f"{who} {vote.decision}: already {status.phase}", now)
            return "refused-already-decided", f"{remediation} is {status.phase}, not waiting for approval"
        rule = approval.rule_for(status.approval.level or "critical", policy_approval)
        new_state, outcome = approval.record_vote(status.approval, vote, rule, requester, now, groups_for(rule),
                                                  cast_at=cast_at, people=people)
        if outcome.kind != "accepted":
            if outcome.kind == "refused-stale":
                REFUSALS.labels("stale-vote").inc()
            if outcome.kind != "duplicate":  # a duplicate changes nothing: the vote it repeats is in the timeline
                note_refusal(res, obj, status, vote, f"{who} {vote.decision}: {outcome.reason}", now)
            return outcome.kind, outcome.reason
        updated = state.note(status.model_copy(update={"approval": new_state}), "Vote",
                             f"{who} {vote.decision}d: {outcome.reason}", now)
        if persist(res, obj, updated):
            return outcome.kind, outcome.reason
    return "refused-contended", "the Remediation kept changing; vote again"


def note_refusal(res: Resources, obj: dict, status: RemediationStatus, vote: Vote, message: str,
                 now: datetime) -> None:
    """A refused vote in the timeline, when worth it (approval.worth_noting); else, or when another write came
    first (409), in the log: the voter is answered either way."""
    noted = approval.worth_noting(status, vote, "VoteRefused", message) and \
        persist(res, obj, state.note(status, "VoteRefused", message, now))
    if not noted:
        log.info("vote refused, not noted in the timeline", extra={
            "remediation": f"{obj['metadata']['namespace']}/{obj['metadata']['name']}", "why": message[:256]})


def persist(res: Resources, obj: dict, status: RemediationStatus) -> bool:
    try:
        res.replace_status("Remediation", obj["metadata"]["namespace"], obj["metadata"]["name"],
                           {**obj, "status": status.wire()})
        return True
    except ApiException as e:
        if e.status == 409:
            return False
        raise


def record_slack_click(ctx: OperatorContext, slack_cfg, click) -> tuple[str, str]:
    from ..approvals.slack import user_groups
    from .reconcile import load_policy

    policy = load_policy(ctx, click.namespace)
    vote = Vote(user=click.user, source="slack", decision=click.decision, request_id=click.request_id,
                at=engine.ts(datetime.now(timezone.utc)))
    return record_vote(ctx, click.namespace, click.remediation, vote,
                       lambda rule: user_groups(slack_cfg, click.user, list(rule.allowed_slack_groups)),
                       policy.approval if policy else Approval())
