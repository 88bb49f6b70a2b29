"""Votes cast through Kubernetes (RemediationApproval objects) folded into the Remediation.

RBAC decided that the creator may vote at all, the admission policy that
spec.user/groups are really theirs; the approval rule of the policy decides
whether this voter counts for this risk level (core.approval). The vote is
persisted in the Remediation (resourceVersion-guarded) before the
RemediationApproval's status says what happened to it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from kubernetes.client.rest import ApiException

from ..api.models import RemediationApprovalSpec, RemediationStatus, Vote
from ..core import approval, engine, state
from ..kube import Resources
from .context import OperatorContext

log = logging.getLogger("remediator.approvals")


def record_kubernetes_vote(ctx: OperatorContext, namespace: str, spec: RemediationApprovalSpec,
                           policy_approval) -> tuple[str, str]:
    """Apply the vote; returns (outcome, message) for the RemediationApproval's status."""
    res: Resources = ctx.resources
    for _ in range(5):
        now = datetime.now(timezone.utc)
        obj = res.get("Remediation", spec.remediation, namespace)
        if obj is None:
            return "refused-unknown-remediation", f"no Remediation {spec.remediation!r} in {namespace}"
        status = RemediationStatus.model_validate(obj.get("status") or {})
        if status.phase != "AwaitingApproval" or status.approval is None:
            return "refused-already-decided", f"{spec.remediation} is {status.phase}, not waiting for approval"
        rule = approval.rule_for(status.approval.level or "critical", policy_approval)
        vote = Vote(user=spec.user, source="kubernetes", decision=spec.decision, at=engine.ts(now),
                    reason=spec.reason)
        new_state, outcome = approval.record_vote(status.approval, vote, rule, None, now, spec.groups)
        if outcome.kind not in ("accepted",):
            note = state.note(status, "VoteRefused" if outcome.kind != "duplicate" else "VoteDuplicate",
                              f"kubernetes:{spec.user} {spec.decision}: {outcome.reason}", now)
            persist(res, obj, note)
            return outcome.kind, outcome.reason
        updated = state.note(status.model_copy(update={"approval": new_state}), "Vote",
                             f"kubernetes:{spec.user} {spec.decision}d: {outcome.reason}", now)
        if persist(res, obj, updated):
            return outcome.kind, outcome.reason
    return "refused-contended", "the Remediation kept changing; create the approval again"


def persist(res: Resources, obj: dict, status: RemediationStatus) -> bool:
    try:
        res.replace_status("Remediation", obj["metadata"]["namespace"], obj["metadata"]["name"],
                           {**obj, "status": status.wire()})
        return True
    except ApiException as e:
        if e.status == 409:
            return False
        raise
