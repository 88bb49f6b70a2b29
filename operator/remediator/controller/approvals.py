"""Votes cast through Kubernetes (RemediationApproval objects) folded into the Remediation.

RBAC decided that the creator may vote at all, the admission policy that
spec.user/groups are really theirs; the approval rule of the policy decides
whether this voter counts for this risk level (core.approval). The vote is
persisted in the Remediation (resourceVersion-guarded) before the
RemediationApproval's status says what happened to it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from datetime import datetime, timezone

from kubernetes.client.rest import ApiException

from ..api.models import Approval, ApprovalRule, RemediationApprovalSpec, RemediationStatus, Vote
from ..core import approval, engine, state
from ..kube import Resources
from .context import OperatorContext

log = logging.getLogger("remediator.approvals")


def record_kubernetes_vote(ctx: OperatorContext, namespace: str, spec: RemediationApprovalSpec,
                           policy_approval) -> tuple[str, str]:
    """Apply a RemediationApproval; returns (outcome, message) for its status."""
    vote = Vote(user=spec.user, source="kubernetes", decision=spec.decision,
                at=engine.ts(datetime.now(timezone.utc)), reason=spec.reason)
    return record_vote(ctx, namespace, spec.remediation, vote, lambda rule: spec.groups, policy_approval)


def record_vote(ctx: OperatorContext, namespace: str, remediation: str, vote: Vote,
                groups_for: Callable[[ApprovalRule], Collection[str]], policy_approval) -> tuple[str, str]:
    """Fold one vote into the Remediation, persisted before this returns; (outcome, message)."""
    res: Resources = ctx.resources
    who = f"{vote.source}:{vote.user}"
    for _ in range(5):
        now = datetime.now(timezone.utc)
        obj = res.get("Remediation", remediation, namespace)
        if obj is None:
            return "refused-unknown-remediation", f"no Remediation {remediation!r} in {namespace}"
        status = RemediationStatus.model_validate(obj.get("status") or {})
        if status.phase != "AwaitingApproval" or status.approval is None:
            persist(res, obj, state.note(status, "VoteRefused", f"{who} {vote.decision}: already {status.phase}", now))
            return "refused-already-decided", f"{remediation} is {status.phase}, not waiting for approval"
        rule = approval.rule_for(status.approval.level or "critical", policy_approval)
        new_state, outcome = approval.record_vote(status.approval, vote, rule, None, now, groups_for(rule))
        if outcome.kind != "accepted":
            kind = "VoteDuplicate" if outcome.kind == "duplicate" else "VoteRefused"
            persist(res, obj, state.note(status, kind, f"{who} {vote.decision}: {outcome.reason}", now))
            return outcome.kind, outcome.reason
        updated = state.note(status.model_copy(update={"approval": new_state}), "Vote",
                             f"{who} {vote.decision}d: {outcome.reason}", now)
        if persist(res, obj, updated):
            return outcome.kind, outcome.reason
    return "refused-contended", "the Remediation kept changing; vote again"


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
    vote = Vote(user=click.user, source="slack", decision=click.decision,
                at=engine.ts(datetime.now(timezone.utc)))
    return record_vote(ctx, click.namespace, click.remediation, vote,
                       lambda rule: user_groups(slack_cfg, click.user, list(rule.allowed_slack_groups)),
                       policy.approval if policy else Approval())


def audit_refused_callback(ctx: OperatorContext, namespace: str, remediation: str, message: str) -> None:
    """Record a refused callback in the timeline of the Remediation it names, if there is one (best effort)."""
    try:
        obj = ctx.resources.get("Remediation", remediation, namespace)
    except ApiException:
        return
    if obj is None:
        return
    status = RemediationStatus.model_validate(obj.get("status") or {})
    persist(ctx.resources, obj, state.note(status, "CallbackRefused", message[:300], datetime.now(timezone.utc)))
