"""The Slack approval message as Block Kit, from a Remediation (pure: plain data in, blocks out).

Everything shown comes from alerts, runbooks and workloads that tenants control, so every value put into
mrkdwn is escaped (`<!channel>` or `<https://evil|Approve>` arrive as text, not as a mention or a link);
the buttons carry the request id, so a click on an old message cannot vote on a newer request.
"""

from __future__ import annotations

import json

from ..api.models import RemediationSpec, RemediationStatus, RunbookSpec
from ..core.plan import gitops

DECIDED_TEXT = {
    "Acting": "approved, acting", "Verifying": "approved, verifying", "Succeeded": "approved, recovered",
    "Denied": "denied", "Expired": "expired without a decision", "Escalated": "escalated",
    "Cancelled": "cancelled: the signal resolved", "Failed": "failed", "Skipped": "skipped",
}


def esc(text: object) -> str:
    """Slack mrkdwn escaping: &, < and > are the only control characters (a <...> is a link or a mention)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def button_value(namespace: str, name: str, decision: str, request_id: str | None) -> str:
    return json.dumps({"ns": namespace, "name": name, "decision": decision, "req": request_id or ""},
                      separators=(",", ":"))


def request_blocks(namespace: str, name: str, spec: RemediationSpec, status: RemediationStatus) -> list[dict]:
    risk = status.risk
    approval = status.approval
    index = approval.step_index if approval and approval.step_index is not None else status.current_step or 0
    step = next((p for p in status.plan if p.index == index), None)
    request_id = approval.request_id if approval else None
    signal, target = spec.signal, spec.target
    lines = [
        f"*Signal:* {esc(signal.source)} `{esc(signal.name)}` {esc(signal.summary)}".strip(),
        f"*Runbook:* `{esc(spec.runbook.namespace)}/{esc(spec.runbook.name)}`",
        f"*Target:* `{esc(target.kind)}/{esc(target.namespace or '')}/{esc(target.name)}`",
    ]
    if step is not None:
        lines.append(f"*Planned action:* {esc(step.action)} (step `{esc(step.name)}`, declared risk {esc(step.risk)})")
    if status.gitops is not None:  # a pause of the owner is part of what is approved
        lines.append(f"*GitOps owner:* {esc(gitops.summary(status.gitops))}")
    if approval is not None and approval.step_summary:
        lines.append(f"*Approving covers exactly:* `{esc(approval.step_summary)}`; any later step asks again")
    blocks: list[dict] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"Approval needed: {name}"[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}},
    ]
    if status.probable_cause is not None:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": cause_text(status)[:3000]}})
    if risk is not None:
        reasons = "\n".join(f"• {esc(r)}" for r in risk.reasons[:12])
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text":
                       f"*Risk {risk.level} ({risk.score}/100)*\n{reasons}"[:3000]}})
    if status.planned_changes:
        changes = "\n".join(f"• {esc(c[:300])}" for c in status.planned_changes[:10])
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text":
                       f"*Dry run says it would change:*\n{changes}"[:3000]}})
    if approval is not None:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text":
                       f"Needs {approval.required} approval(s); expires {approval.deadline or 'never'}; "
                       f"request {request_id or '(none)'}"}]})
    blocks.append({"type": "actions", "block_id": "remediator-vote", "elements": [
        {"type": "button", "action_id": "approve", "style": "primary",
         "text": {"type": "plain_text", "text": "Approve"}, "value": button_value(namespace, name, "approve", request_id)},
        {"type": "button", "action_id": "deny", "style": "danger",
         "text": {"type": "plain_text", "text": "Deny"}, "value": button_value(namespace, name, "deny", request_id)},
    ]})
    return blocks


def cause_text(status: RemediationStatus) -> str:
    """The probable cause and its ranked evidence (names, images and digests only: never a Secret's value)."""
    found = status.probable_cause
    assert found is not None
    lines = [f"*Probable cause: {esc(found.kind)}*", esc(found.summary)]
    lines += [f"• {c.score}/100 {esc(c.what[:280])} at {esc(c.at)}" for c in found.changes[:5]]
    return "\n".join(lines)


def decided_blocks(name: str, status: RemediationStatus) -> list[dict]:
    # a Slack vote's user is an id Slack signed, shown as a mention; anything else is text
    votes = ", ".join(f"<@{esc(v.user)}> {v.decision}d" if v.source == "slack" else f"{esc(v.user)} {v.decision}d"
                      for v in (status.approval.votes if status.approval else []))
    text = f"*{esc(name)}*: {DECIDED_TEXT.get(status.phase, status.phase)}"
    if votes:
        text += f" ({votes})"
    return [{"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": esc((status.reason or "")[:300]) or " "}]}]


def escalation_blocks(namespace: str, name: str, spec: RemediationSpec, status: RemediationStatus,
                      runbook: RunbookSpec | None, note: str = "") -> list[dict]:
    """The Runbook's escalation message, what was tried and why it stopped (and `note`: why it is posted here)."""
    tried = "\n".join(f"• step `{esc(s.name)}` {esc(s.action)}: {esc(s.phase)} {esc(s.message[:200])}".rstrip()
                      for s in status.steps[:20]) or "• nothing was tried"
    lines = [f"*{esc(name)}* in `{esc(namespace)}` ended *{esc(status.phase)}*: {esc(status.reason[:500])}",
             f"*Runbook:* `{esc(spec.runbook.namespace)}/{esc(spec.runbook.name)}`",
             f"*Target:* `{esc(spec.target.kind)}/{esc(spec.target.name)}`"]
    message = runbook.escalation.message if runbook else ""
    blocks: list[dict] = [{"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:3000]}}]
    if message:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": esc(message)[:3000]}})
    blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"*Tried:*\n{tried}"[:3000]}})
    if note:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"Posted here: {esc(note)}"}]})
    return blocks
