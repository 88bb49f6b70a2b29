"""The Slack approval message as Block Kit, from a Remediation (pure: plain data in, blocks out)."""

from __future__ import annotations

import json

from ..api.models import RemediationSpec, RemediationStatus

DECIDED_TEXT = {
    "Acting": "approved, acting", "Verifying": "approved, verifying", "Succeeded": "approved, recovered",
    "Denied": "denied", "Expired": "expired without a decision", "Escalated": "escalated",
    "Cancelled": "cancelled: the signal resolved", "Failed": "failed", "Skipped": "skipped",
}


def button_value(namespace: str, name: str, decision: str) -> str:
    return json.dumps({"ns": namespace, "name": name, "decision": decision}, separators=(",", ":"))


def request_blocks(namespace: str, name: str, spec: RemediationSpec, status: RemediationStatus) -> list[dict]:
    step = status.plan[status.current_step or 0] if status.plan else None
    risk = status.risk
    approval = status.approval
    lines = [
        f"*Signal:* {spec.signal.source} `{spec.signal.name}` {spec.signal.summary}".strip(),
        f"*Runbook:* `{spec.runbook.namespace}/{spec.runbook.name}`",
        f"*Target:* `{spec.target.kind}/{spec.target.namespace or ''}/{spec.target.name}`",
    ]
    if step is not None:
        lines.append(f"*Planned action:* {step.action} (step `{step.name}`, declared risk {step.risk})")
    blocks: list[dict] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"Approval needed: {name}"[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}},
    ]
    if status.probable_cause is not None:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": cause_text(status)[:3000]}})
    if risk is not None:
        reasons = "\n".join(f"• {r}" for r in risk.reasons[:12])
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text":
                       f"*Risk {risk.level} ({risk.score}/100)*\n{reasons}"[:3000]}})
    if status.planned_changes:
        changes = "\n".join(f"• {c}"[:300] for c in status.planned_changes[:10])
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text":
                       f"*Dry run says it would change:*\n{changes}"[:3000]}})
    if approval is not None:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text":
                       f"Needs {approval.required} approval(s); expires {approval.deadline or 'never'}"}]})
    blocks.append({"type": "actions", "block_id": "remediator-vote", "elements": [
        {"type": "button", "action_id": "approve", "style": "primary",
         "text": {"type": "plain_text", "text": "Approve"}, "value": button_value(namespace, name, "approve")},
        {"type": "button", "action_id": "deny", "style": "danger",
         "text": {"type": "plain_text", "text": "Deny"}, "value": button_value(namespace, name, "deny")},
    ]})
    return blocks


def cause_text(status: RemediationStatus) -> str:
    """The probable cause and its ranked evidence (names, images and digests only: never a Secret's value)."""
    found = status.probable_cause
    assert found is not None
    lines = [f"*Probable cause: {found.kind}*", found.summary]
    lines += [f"• {c.score}/100 {c.what} at {c.at}"[:300] for c in found.changes[:5]]
    return "\n".join(lines)


def decided_blocks(name: str, status: RemediationStatus) -> list[dict]:
    votes = ", ".join(f"<@{v.user}> {v.decision}d" if v.source == "slack" else f"{v.user} {v.decision}d"
                      for v in (status.approval.votes if status.approval else []))
    text = f"*{name}*: {DECIDED_TEXT.get(status.phase, status.phase)}"
    if votes:
        text += f" ({votes})"
    return [{"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": (status.reason or "")[:300] or " "}]}]
