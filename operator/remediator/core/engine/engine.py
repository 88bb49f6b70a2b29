"""The Remediation loop as a pure function: observed state in, next state and one effect out.

One tick of the shell (controller/reconcile.py) is: load what `needs` asks for,
`decide`, persist the returned status FIRST, perform the returned effect, and
hand what the effect did to `outcome`, which says what to persist next. An
action's intent (step record with its idempotency key, phase Intended) is
therefore durable before the call, and a restart that finds an Intended step
replays the call with the same key, which the action recognises as done.
Every decision also says when the next tick is due (`requeue_after`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from remediator.api.models import (
    RISK_LEVELS,
    Approval,
    ApprovalRule,
    Evidence,
    GitopsState,
    TERMINAL_PHASES,
    RemediationPolicySpec,
    RemediationSpec,
    RemediationStatus,
    RiskAssessment,
    RunbookSpec,
    Step,
    StepRecord,
)
from remediator.core.plan import adaptive, claims, gitops, planning, risk
from remediator.core.approve import approval
from remediator.core.match import policy_select
from remediator.core.match import reasons as match_reasons
from remediator.core.engine import state
from remediator.core.durations import iso_time, parse_duration, parse_time
from remediator.core.plan.guards import GuardVerdict

# When the next tick is due, in seconds, for what only time moves on (any write to the Remediation ticks at once).
AT_ONCE = 0.0
ACTION_POLL = 2.0  # an action in progress (e.g. a drain waiting on a PodDisruptionBudget)
PROBE_EVERY = 2.0  # verification observes the target this often, within the step's timeout
SLACK_RETRY = 30.0  # Slack unreachable: post the approval request again after this
CLAIM_RETRY = 5.0  # a replayed intent whose target another Remediation claimed meanwhile
IDLE = 300.0  # nothing is due by time (e.g. an approval with no deadline): look again after this


@dataclass(frozen=True)
class Act:
    """Claim the target for `claim_for`, then run step `index`'s action (`step` as pinned at planning) with
    idempotency key `key`, as ServiceAccount `account`, within the policy's `caps`.
    `fresh`: the intent is new in this decision (a refused claim then ends the step unrun)."""

    index: int
    key: str
    dry_run: bool = False
    fresh: bool = False
    claim_for: timedelta = timedelta(minutes=5)
    step: Step | None = None
    account: str | None = None
    caps: policy_select.Caps = policy_select.Caps()
    pause: gitops.Pause | None = None  # pause the target's GitOps owner first (keyed: once)


@dataclass(frozen=True)
class Probe:
    """Observe the target and judge step `index`'s verification."""

    index: int


@dataclass(frozen=True)
class PostApproval:
    """Post the approval request to Slack (or adopt the message a lost write already posted)."""

    channel: str


@dataclass(frozen=True)
class UpdateApproval:
    """Tell the Slack message of a decided request what came of it."""

    channel: str
    ts: str


Effect = Act | Probe | PostApproval | UpdateApproval | None


@dataclass(frozen=True)
class Needs:
    """What `decide` needs observed this tick beyond the Remediation, its Runbook and the policy."""

    step_facts: bool = False  # guards, risk input and dry run of the step about to be gated or intended
    cause: bool = False  # the probable cause: found once, persisted with the plan
    history: bool = False  # how an adaptive Runbook's steps fared before, to order the ladder
    gitops_owner: bool = False  # the paused GitOps owner's body: has it settled, may the step act?


def needs(status: RemediationStatus, runbook: RunbookSpec | None) -> Needs:
    planning_now = status.phase == "Pending"
    step_facts = status.phase in ("Pending", "Planned") or (
        status.phase == "Acting" and find_record(status, status.current_step or 0) is None)
    return Needs(
        step_facts=step_facts,
        cause=planning_now and status.probable_cause is None,
        history=planning_now and runbook is not None and runbook.adaptive,
        gitops_owner=settling(status) or (step_facts and under_pause(status)))  # read where gitops_gate runs


def under_pause(status: RemediationStatus) -> bool:
    """Our pause of the target's owner is recorded and not ended: a step climbed to acts only while it is on."""
    held = status.gitops
    return held is not None and held.mode == "suspend" and bool(held.suspended_at) and not held.resumed_at


def settling(status: RemediationStatus) -> bool:
    """The step's intent is stored and its owner paused, but the owner has not been seen settled yet: the step
    waits (ticks with a requeue, no sleep; the record survives a restart) before acting."""
    held = status.gitops
    if status.phase != "Acting" or status.current_step is None or not under_pause(status) or held.settled_at:
        return False
    record = find_record(status, status.current_step)
    return record is not None and record.phase == "Intended" and gitops.settles(gitops.Owner.of(held))


@dataclass(frozen=True)
class Acted:
    """What an Act effect did: the claim it met, then the action's result (unless the claim was refused).
    `error`: refused for good (403, 404, 422 ...); neither done nor error: in progress, same key next tick."""

    claim: claims.ClaimDecision | None = None
    done: bool = False
    replayed: bool = False
    error: str | None = None
    message: str = ""
    evidence: tuple = ()
    changes: Mapping[str, Mapping] = dataclasses.field(default_factory=dict)  # path -> {"before", "after"}
    paused_at: datetime | None = None  # the GitOps owner carries this Remediation's pause (since then)


@dataclass(frozen=True)
class Posted:
    """Where the approval request is in Slack; None fields: Slack was unavailable."""

    channel: str | None = None
    ts: str | None = None


Outcome = Acted | Posted | RemediationStatus | None  # a Probe's outcome is the judged status


@dataclass(frozen=True)
class Facts:
    """What the shell observed for this reconcile."""

    now: datetime
    runbook: RunbookSpec | None
    policy: RemediationPolicySpec | None
    guards: GuardVerdict | None = None  # for the step about to run; None before planning
    risk_input: risk.RiskInput | None = None
    planned_changes: tuple[str, ...] = ()  # what a server-side dry run of the step would change
    cause_kind: str | None = None
    step_history: Mapping[str, adaptive.StepOutcomes] | None = None  # for an adaptive Runbook, when planning
    runbook_generation: int | None = None  # the live Runbook's metadata.generation
    slack: bool = False  # Slack takes approval requests (configured)
    slack_backoff: bool = False  # ... but was unreachable a moment ago: post again after SLACK_RETRY
    runbook_problem: str | None = None  # the Runbook exists but the models refuse it (e.g. stored under an older schema)
    gitops: gitops.Facts | None = None  # the target's GitOps owner, read for the step about to act
    gitops_owner: Mapping | None = None  # the paused owner's body, read while waiting for it to settle
    match_reasons: str | None = None  # why it was made, as carried from its creation: the annotation's text


@dataclass(frozen=True)
class Decision:
    status: RemediationStatus
    effect: Effect = None
    changed: bool = True
    requeue_after: float | None = None  # seconds until the next tick is due; None: finished
    release: bool = False  # the write of `status` ends the holding of the target's claim: release it after
    stale: bool = False  # an effect's outcome that no longer applies: the Remediation moved on meanwhile


def cause_kind(status: RemediationStatus) -> str | None:
    """The persisted probable cause's kind; None (unknown) when none was found."""
    return status.probable_cause.kind if status.probable_cause else None


def ts(now: datetime) -> str:
    return iso_time(now)


def decide(name: str, spec: RemediationSpec, status: RemediationStatus, facts: Facts) -> Decision:
    """The next status and the one effect it allows, with when to tick again."""
    decision = decide_phase(name, spec, status, facts)
    if decision.effect is None:
        decision = dataclasses.replace(decision, effect=slack_effect(status, decision.status, facts))
    return finished(status, decision, facts)


def decide_phase(name: str, spec: RemediationSpec, status: RemediationStatus, facts: Facts) -> Decision:
    if status.phase in TERMINAL_PHASES:
        return Decision(status, changed=False)
    # the first write records why it was made, whatever it decides
    pending = status.phase == "Pending" and not status.match_reasons
    carried = match_reasons.from_text(facts.match_reasons) if pending else ()
    reasons_noted = bool(carried)
    if reasons_noted:
        status = status.model_copy(update={"match_reasons": list(carried)})
    deleted_noted = False
    if facts.runbook is None:
        gone = f"runbook {spec.runbook.namespace}/{spec.runbook.name} " + (
            f"is invalid: {facts.runbook_problem}" if facts.runbook_problem else "no longer exists")
        if applied_pinned_step(status):  # the action has happened: its verdict is still owed, from the pinned step
            if not any(e.kind == "RunbookDeleted" for e in status.timeline):
                status = state.note(status, "RunbookDeleted", f"{gone}: verifying the step already applied, "
                                    "then stopping", facts.now)
                deleted_noted = True
        else:  # deleting a Runbook stops its automation; a failure only if an action of it ran and failed
            # (or if there never was a plan: a Remediation naming a Runbook that is not there)
            failed = status.phase == "Pending" or any(r.phase in ("Failed", "Inconclusive") for r in status.steps)
            return Decision(state.transition(status, "Failed" if failed else "Cancelled",
                                             gone if failed else f"{gone}: stopped before acting", facts.now))
    if status.signal_resolved_at and status.phase in ("Pending", "Planned", "AwaitingApproval"):
        return Decision(state.transition(status, "Cancelled", "the signal resolved before any action",
                                         facts.now))
    if status.phase != "Pending":
        status, noted = note_runbook_change(spec, status, facts)
        index = status.current_step if status.current_step is not None else planning.next_step(status.plan, status.steps)
        if index is not None and planning.pinned_step(status.plan, index, facts.runbook) is None:
            return Decision(state.transition(status, "Escalated", f"step {index} was not pinned at planning and the "
                                             "Runbook no longer has it: nothing safe to run", facts.now))
    else:
        noted = False
    decision = PHASES[status.phase](name, spec, status, facts)
    noted = noted or deleted_noted or reasons_noted
    return dataclasses.replace(decision, changed=True) if noted and not decision.changed else decision


def applied_pinned_step(status: RemediationStatus) -> bool:
    """The current step's action is applied (or being verified) and the plan it came from is pinned."""
    if status.current_step is None or not planning.is_pinned(status.plan):
        return False
    record = find_record(status, status.current_step)
    return record is not None and record.phase in ("Applied", "Verifying")


def note_runbook_change(spec: RemediationSpec, status: RemediationStatus,
                        facts: Facts) -> tuple[RemediationStatus, bool]:
    """Say once per generation that the Runbook changed since planning; what runs stays the pinned plan."""
    planned, live = status.runbook_generation, facts.runbook_generation
    seen = status.runbook_seen_generation or planned
    if planned is None or live is None or live == seen:
        return status, False
    status = status.model_copy(update={"runbook_seen_generation": live})
    return state.note(status, "RunbookChanged", f"Runbook {spec.runbook.namespace}/{spec.runbook.name} changed "
                      f"since planning (generation {planned} → {live}): running the plan pinned at generation "
                      f"{planned}", facts.now), True


def on_pending(name: str, spec: RemediationSpec, status: RemediationStatus, facts: Facts) -> Decision:
    runbook = facts.runbook
    assert runbook is not None
    steps = planning.plan(runbook, facts.cause_kind)
    ordering = None
    if runbook.adaptive and facts.step_history is not None:
        ordering = adaptive.order(steps, facts.step_history, adaptive.signal_type(spec), unattended_levels(facts))
        steps = ordering.steps
    first = planning.next_step(steps, [])
    status = status.model_copy(update={
        "plan": steps,
        "started_at": status.started_at or ts(facts.now),
        "target_display": f"{spec.target.kind}/{spec.target.name}",
        "dry_run": bool(facts.policy and facts.policy.mode == "dryRun"),
        "runbook_generation": facts.runbook_generation,
        "runbook_seen_generation": facts.runbook_generation,
        "service_account_name": runbook.service_account_name,
    })
    if status.probable_cause is not None:
        status = state.note(status, "ProbableCause", status.probable_cause.summary, facts.now)
    if ordering is not None:
        status = state.note(status, "AdaptiveOrder", ordering.explanation, facts.now)
    status = state.transition(status, "Planned", plan_summary(steps), facts.now)
    if first is None:
        return Decision(state.transition(status, "Skipped", "every step of the ladder is skipped", facts.now))
    if ordering is not None and ordering.changed:
        return Decision(status)  # gate on the next tick, with guards and risk observed for the step now first
    return gate(name, spec, status, first, facts)


def unattended_levels(facts: Facts) -> list[str]:
    return adaptive.unattended_levels(
        {level: approval.needs_approval(approval_rule(level, facts)) for level in RISK_LEVELS})


def gate(name: str, spec: RemediationSpec, status: RemediationStatus, index: int, facts: Facts) -> Decision:
    """Guards, dry run and the approval seam in front of step `index`."""
    # The GitOps owner first: "fix it in Git" says more than a cooldown, and a returning incident after a
    # lease-end resume must be escalated, not skipped quietly.
    status, refused = gitops_gate(name, spec, status, index, facts)
    if refused is not None:
        return refused
    verdict = facts.guards
    if verdict is not None and not verdict.allowed:
        blocked = "; ".join(d.reason for d in verdict.decisions if not d.allowed)
        return Decision(state.transition(status, "Skipped", f"guard blocked: {blocked}", facts.now))
    assessed = assess(status, index, facts)
    status = status.model_copy(update={"risk": assessed, "planned_changes": list(facts.planned_changes)})
    step = status.plan[index]
    if status.dry_run:
        return Decision(state.transition(
            status, "Skipped",
            f"dry run: would {step.action} {status.target_display} (step {step.name!r}, risk {assessed.level});"
            " policy mode is dryRun, nothing was changed", facts.now))
    rule = approval_rule(assessed.level, facts)
    if approval.needs_approval(rule) and not approved_step(name, spec, status, index):
        return request_approval(name, spec, index, status, assessed, rule, facts,
                                f"risk {assessed.level} ({assessed.score}) needs {rule.approvers} approval(s)")
    status = status.model_copy(update={"current_step": index})
    # The guards and the dry run were observed for this step just now: record the intent in the same write,
    # so the action follows one status write instead of a second tick that would observe the same again.
    return on_acting(name, spec, state.transition(status, "Acting", f"step {step.name!r}: {step.action}",
                                                  facts.now), facts)


def approval_rule(level: str, facts: Facts) -> ApprovalRule:
    return approval.rule_for(level, facts.policy.approval if facts.policy else Approval())


def request_approval(name: str, spec: RemediationSpec, index: int, status: RemediationStatus,
                     assessed: RiskAssessment, rule: ApprovalRule, facts: Facts, reason: str) -> Decision:
    """Open an approval request for exactly step `index` (its action, target and params; deadline from the
    rule, an id votes must name) and wait for votes."""
    channel = facts.policy.approval.slack_channel if facts.policy else None
    digest = step_digest(spec, status, index)
    request_id = approval.request_id_for(name, index, len(status.steps), facts.now, digest)
    opened = approval.open_request(rule, assessed.level, facts.now, channel, request_id)
    status = status.model_copy(update={"approval": opened.model_copy(update={
        "step_index": index, "step_digest": digest, "step_summary": step_summary(spec, status, index)})})
    return Decision(state.transition(status, "AwaitingApproval", reason, facts.now))


def assess(status: RemediationStatus, index: int, facts: Facts) -> RiskAssessment:
    if facts.risk_input is not None:  # scored with the cause as this decision knows it: the shell may look it up
        assessed = risk.assess_risk(dataclasses.replace(facts.risk_input, probable_cause=facts.cause_kind))
    else:
        step = status.plan[index]
        assessed = risk.assess_risk(risk.RiskInput(declared=step.risk, action=step.action))
    owner = status.gitops
    if owner is not None and owner.mode == "suspend" and not owner.suspended_at and facts.gitops is not None:
        return gitops.raised(assessed, facts.gitops.state.owner)
    return assessed


def gitops_gate(name: str, spec: RemediationSpec, status: RemediationStatus, index: int,
                facts: Facts) -> tuple[RemediationStatus, Decision | None]:
    """The target's GitOps owner and the policy's mode for it: record them, and escalate when the mode (or a
    trap) says a human must act in Git instead."""
    seen, held = facts.gitops, status.gitops
    if held is not None and held.suspended_at:  # a climbed-to step under our pause: only while it is still on
        # judged on the owner we paused (read for this tick), not on the target's marks now: stripped labels or
        # a step's own mode (refuse) must not let a step act on a target the reconciler resets once resumed
        ours = gitops.Owner.of(held)
        if seen is not None and seen.mode == "ignore" and seen.state.owner == ours:
            return status, None
        paused = gitops.read_owner(ours, facts.gitops_owner)
        lost = gitops.pause_lost(paused, pause_key(spec, name), held.resumed_at)
        return status, lost and Decision(state.transition(status, "Escalated", f"GitOps: {lost}", facts.now))
    if seen is None:
        return status, None
    owner, verdict = seen.state.owner, gitops.decide(seen.state, seen.mode, seen.why, pause_key(spec, name))
    recorded = GitopsState(tool=owner.tool, kind=owner.kind, namespace=owner.namespace, name=owner.name,
                           mode=seen.mode, source=seen.state.source[:320],
                           revision=(seen.state.source_revision or seen.state.revision or None))
    status = status.model_copy(update={"gitops": recorded})
    if not verdict.allowed:
        return status, Decision(state.transition(status, "Escalated", f"GitOps: {verdict.reason}", facts.now))
    if status.gitops != recorded or not any(e.kind == "GitOpsOwner" for e in status.timeline):
        status = state.note(status, "GitOpsOwner", verdict.reason, facts.now)
    return status, None


def pause_key(spec: RemediationSpec, name: str) -> str:
    """The key of a pause this Remediation holds: its namespace (= the target's) and name."""
    return f"{spec.target.namespace or ''}/{name}"


def approved(status: RemediationStatus) -> bool:
    return bool(status.approval and status.approval.decision == "approved")


def approved_step(name: str, spec: RemediationSpec, status: RemediationStatus, index: int) -> bool:
    """An approval covers exactly the step its approvers were shown (index, action, target, params): a later
    step, of whatever risk level, needs its own. Checked against the request id, which binds them all, so it
    holds even where an older CRD pruned stepIndex/stepDigest from the status."""
    given = status.approval
    if not (approved(status) and given and given.request_id and given.requested_at):
        return False
    try:
        opened = datetime.fromisoformat(given.requested_at.replace("Z", "+00:00"))
    except ValueError:
        return False
    expected = approval.request_id_for(name, index, len(status.steps), opened, step_digest(spec, status, index))
    return given.request_id == expected


def step_wire(status: RemediationStatus, index: int) -> dict:
    step = planning.pinned_step(status.plan, index)
    if step is None:  # a plan made before pinning: the planned action is all there is
        planned = next((p for p in status.plan if p.index == index), None)
        return {"action": planned.action if planned else ""}
    return step.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"name", "when"})


def step_digest(spec: RemediationSpec, status: RemediationStatus, index: int) -> str:
    """Digest of what step `index` does: its action and params (pinned at planning) and the target."""
    seed = json.dumps({"index": index, "target": spec.target.model_dump(mode="json", by_alias=True),
                       "step": step_wire(status, index)}, sort_keys=True)
    return hashlib.sha256(seed.encode()).hexdigest()[:32]


def step_summary(spec: RemediationSpec, status: RemediationStatus, index: int) -> str:
    """What an approval of step `index` lets happen, in words for the approver."""
    wire = step_wire(status, index)
    action = wire.pop("action")
    params = {k: v for k, v in wire.items() if k not in ("risk", "timeout", "verify")}
    target = spec.target
    return (f"step {index}: {action} {target.kind}/{target.namespace or ''}/{target.name}"
            f"{' ' + json.dumps(params, sort_keys=True) if params else ''}")[:512]


def on_awaiting_approval(name, spec, status, facts) -> Decision:
    decision = status.approval.decision if status.approval else None
    if decision == "approved":
        index = planning.next_step(status.plan, status.steps)
        if index is None:
            return Decision(state.transition(status, "Skipped", "nothing left to run", facts.now))
        status = status.model_copy(update={"current_step": index})
        return Decision(state.transition(status, "Acting", "approved", facts.now))
    if decision == "denied":
        return Decision(state.transition(status, "Denied", "an approver denied the action", facts.now))
    if decision == "expired":
        return Decision(state.transition(status, "Expired", "the approval timed out", facts.now))
    if status.approval is None:
        return Decision(status, changed=False)
    rule = approval_rule(status.approval.level or (status.risk.level if status.risk else "critical"), facts)
    expired, what = approval.expire_if_due(status.approval, rule, facts.now)
    if what is None:
        return Decision(status, changed=False)
    status = status.model_copy(update={"approval": expired})
    if what.outcome == "proceed":
        index = planning.next_step(status.plan, status.steps)
        if index is not None:
            status = status.model_copy(update={"current_step": index})
            return Decision(state.transition(status, "Acting", f"approval timed out: {what.reason}", facts.now))
    final = "Escalated" if what.outcome == "escalated" else "Expired"
    return Decision(state.transition(status, final, f"approval timed out: {what.reason}", facts.now))


def on_acting(name, spec, status, facts) -> Decision:
    index = status.current_step
    assert index is not None
    record = find_record(status, index)
    step = status.plan[index]
    if record is None:
        verdict = facts.guards
        if verdict is not None and not verdict.allowed:
            blocked = "; ".join(d.reason for d in verdict.decisions if not d.allowed)
            # Skipped means "did nothing": once a step has run, a blocked climb ends the ladder instead.
            final = "Escalated" if status.steps else "Skipped"
            return Decision(state.transition(status, final,
                                             f"guard blocked right before acting: {blocked}", facts.now))
        status, refused = gitops_gate(name, spec, status, index, facts)
        if refused is not None:
            return refused
        if status.steps:  # a climbed-to step gets its own risk score and, if needed, its own approval
            assessed = assess(status, index, facts)
            status = status.model_copy(update={"risk": assessed, "planned_changes": list(facts.planned_changes)})
            rule = approval_rule(assessed.level, facts)
            if approval.needs_approval(rule) and not approved_step(name, spec, status, index):
                return request_approval(
                    name, spec, index, status, assessed, rule, facts,
                    f"step {step.name!r}: risk {assessed.level} ({assessed.score}) needs {rule.approvers} approval(s)")
        key = state.idempotency_key(name, index, step.action)
        record = StepRecord(index=index, name=step.name, action=step.action, idempotency_key=key,
                            phase="Intended", started_at=ts(facts.now))
        status = with_record(status, record)
        status = state.note(status, "Intended", f"step {step.name!r}: {step.action} (key {key})", facts.now)
        return Decision(status, effect=act(name, spec, status, index, key, facts, fresh=True))
    if record.phase == "Intended":
        if settling(status):
            return settle(name, spec, status, index, record.idempotency_key, facts)
        held = status.gitops
        if held is not None and held.mode == "suspend" and held.suspended_at and held.resumed_at:
            # the call is made again each tick (in progress, or lost to a crash): not once the pause has ended
            who = gitops.Owner.of(held).display()
            return Decision(state.transition(
                status, "Escalated", f"GitOps: the pause of {who} ended at {held.resumed_at} while step "
                f"{step.name!r} was still being applied: not calling it again, the reconciler would undo it",
                facts.now))
        return Decision(status, effect=act(name, spec, status, index, record.idempotency_key, facts), changed=False)
    return Decision(state.transition(status, "Verifying", f"step {step.name!r} applied", facts.now))


def settle(name: str, spec: RemediationSpec, status: RemediationStatus, index: int, key: str,
           facts: Facts) -> Decision:
    """Wait, with a requeue, until the paused owner has settled (core.plan.gitops.settle); then record it and
    act in the same decision. An owner no longer paused by us escalates: the step would be undone."""
    held = status.gitops
    assert held is not None and held.suspended_at
    owner = gitops.Owner.of(held)
    # the pause's reconcile request is its paused-at stamp, the same string as suspendedAt
    seen = gitops.settle(owner, facts.gitops_owner, pause_key(spec, name), held.suspended_at,
                         parse_time(held.suspended_at), facts.now)
    if seen.state == "waiting":
        if any(e.kind == "GitOpsSettling" for e in status.timeline):
            return Decision(status, changed=False, requeue_after=seen.requeue_after)
        return Decision(state.note(status, "GitOpsSettling", seen.reason, facts.now),
                        requeue_after=seen.requeue_after)
    status = status.model_copy(update={"gitops": held.model_copy(update={
        "settled_at": gitops.stamp(facts.now), "settle_reason": seen.reason[:512]})})
    if seen.state == "lost":
        # nothing ran: the step goes as if never intended, and the sweep resumes whatever is left of the pause
        status = status.model_copy(update={"steps": [r for r in status.steps if r.index != index]})
        return Decision(state.transition(status, "Escalated", f"GitOps: {seen.reason}", facts.now))
    status = state.note(status, "GitOpsSettled" if seen.state == "settled" else "GitOpsUnsettled", seen.reason,
                        facts.now)
    return Decision(status, effect=act(name, spec, status, index, key, facts))


def act(name: str, spec: RemediationSpec, status: RemediationStatus, index: int, key: str, facts: Facts,
        fresh: bool = False) -> Act:
    """The action call for step `index`, complete: the shell adds nothing to it."""
    return Act(index, key, fresh=fresh, claim_for=step_timeout(status, index, facts),
               step=planning.pinned_step(status.plan, index, facts.runbook),
               account=planning.action_identity(status.plan, facts.runbook, status.service_account_name),
               caps=policy_select.caps_for(facts.policy, spec.runbook.namespace),  # = the Remediation's
               pause=pause_for(name, spec, status, index, facts))


def pause_for(name: str, spec: RemediationSpec, status: RemediationStatus, index: int,
              facts: Facts) -> gitops.Pause | None:
    """Pause the owner before acting when the mode is suspend and no pause is recorded yet (a replay after a
    crash between the pause and its record finds the owner paused under the same key and pauses nothing)."""
    owner = status.gitops
    if owner is None or owner.mode != "suspend" or owner.suspended_at or owner.resumed_at:
        return None
    lease = parse_duration(facts.policy.gitops.lease) if facts.policy else timedelta(hours=1)
    step = status.plan[index]
    paused_owner = gitops.Owner.of(owner)
    return gitops.Pause(paused_owner, pause_key(spec, name), f"step {step.name!r} ({step.action}) of remediation "
                        f"{pause_key(spec, name)}", lease,
                        (spec.target.kind, spec.target.namespace or "", spec.target.name),
                        settle=gitops.settles(paused_owner))


def step_timeout(status: RemediationStatus, index: int, facts: Facts) -> timedelta:
    step = planning.pinned_step(status.plan, index, facts.runbook)
    return parse_duration(step.timeout) if step is not None else timedelta(minutes=5)


def on_verifying(name, spec, status, facts) -> Decision:
    assert status.current_step is not None
    return Decision(status, effect=Probe(status.current_step), changed=False)


def action_done(status: RemediationStatus, index: int, message: str, evidence: list, now: datetime,
                replayed: bool = False) -> RemediationStatus:
    """Record a completed action call: the step is Applied, verification starts."""
    record = find_record(status, index)
    assert record is not None
    record = record.model_copy(update={
        "phase": "Applied", "applied_at": ts(now),
        "result": "replayed: already applied under this key" if replayed else "applied",
        "message": message, "evidence": [*record.evidence, *evidence],
    })
    status = with_record(status, record)
    return state.transition(status, "Verifying", f"step {record.name!r} {record.result}", now)


def action_failed(status: RemediationStatus, index: int, message: str, now: datetime) -> RemediationStatus:
    """The action was refused (403, 404, 422 ...): the step fails with the apiserver's words."""
    record = find_record(status, index)
    assert record is not None
    record = record.model_copy(update={"phase": "Failed", "finished_at": ts(now), "result": "error",
                                       "message": message})
    status = with_record(status, record)
    return advance(status, now, failed_by_error=True, reason=f"step {record.name!r} failed: {message}")


def verification_judged(status: RemediationStatus, index: int, verdict_state: str, reasons: list[str],
                        evidence: list, now: datetime, signal_started: str | None) -> RemediationStatus:
    """Fold a verification verdict into the status; pending verdicts change nothing."""
    record = find_record(status, index)
    assert record is not None
    if verdict_state == "pending":
        return status
    phase = {"passed": "Succeeded", "failed": "Failed", "inconclusive": "Inconclusive"}[verdict_state]
    record = record.model_copy(update={
        "phase": phase, "finished_at": ts(now), "result": verdict_state,
        "message": "; ".join(reasons), "evidence": [*record.evidence, *evidence],
    })
    status = with_record(status, record)
    if verdict_state == "passed":
        status = status.model_copy(update={
            "time_to_recover_seconds": recovery_seconds(signal_started, status.started_at, now)})
        return state.transition(status, "Succeeded", f"verified: {'; '.join(reasons)}", now)
    return advance(status, now, failed_by_error=False,
                   reason=f"step {record.name!r} verification {verdict_state}: {'; '.join(reasons)}")


def advance(status: RemediationStatus, now: datetime, failed_by_error: bool, reason: str) -> RemediationStatus:
    """Move to the next runnable step, or end the ladder."""
    index = planning.next_step(status.plan, status.steps)
    if index is None:
        final = "Failed" if failed_by_error else "Escalated"
        return state.transition(status, final, f"{reason}; ladder exhausted", now)
    status = status.model_copy(update={"current_step": index})
    return state.transition(status, "Acting", f"{reason}; next step {status.plan[index].name!r}", now)


def recovery_seconds(signal_started: str | None, started: str | None, now: datetime) -> float | None:
    begin = signal_started or started
    if not begin:
        return None
    t0 = datetime.fromisoformat(begin.replace("Z", "+00:00"))
    return round(max(0.0, (now - t0).total_seconds()), 3)


def find_record(status: RemediationStatus, index: int) -> StepRecord | None:
    return next((r for r in status.steps if r.index == index), None)


def with_record(status: RemediationStatus, record: StepRecord) -> RemediationStatus:
    others = [r for r in status.steps if r.index != record.index]
    return status.model_copy(update={"steps": sorted([*others, record], key=lambda r: r.index)})


def plan_summary(steps) -> str:
    parts = [f"{s.name} ({s.action}, {s.risk}{', skipped: ' + s.reason if s.skip else ''})"
             for s in sorted(steps, key=planning.position)]
    return "plan: " + " → ".join(parts)


def outcome(spec: RemediationSpec, status: RemediationStatus, effect: Effect, done: Outcome,
            facts: Facts) -> Decision:
    """Fold what `effect` did into `status` (the Remediation as last read): what to persist, and when to tick
    again. Unchanged when the status no longer awaits it (recorded already, or moved on, e.g. cancelled)."""
    if isinstance(effect, Act) and isinstance(done, Acted):
        decision = acted(status, effect, done, facts.now)
    elif isinstance(effect, Probe) and isinstance(done, RemediationStatus):
        decision = Decision(done, changed=done != status)
    elif isinstance(effect, PostApproval) and isinstance(done, Posted) and done.ts and status.approval \
            and status.phase == "AwaitingApproval":
        decision = Decision(status.model_copy(update={"approval": status.approval.model_copy(
            update={"slack_channel": done.channel, "slack_ts": done.ts,
                    "slack_channel_name": status.approval.slack_channel_name or status.approval.slack_channel})}))
    else:
        decision = Decision(status, changed=False)
    if isinstance(done, Posted) and not done.ts:  # Slack is unavailable: try again after a while, not at once
        facts = dataclasses.replace(facts, slack_backoff=True)
    return finished(status, decision, facts)


def acted(status: RemediationStatus, effect: Act, done: Acted, now: datetime) -> Decision:
    if not awaits_outcome(status, effect):
        return Decision(status, changed=False, stale=True)
    before, claim = status, done.claim
    if claim is not None and not claim.granted:
        if not effect.fresh:  # a replayed intent: the claim may come back (expired, holder finished)
            return Decision(status, changed=False, requeue_after=CLAIM_RETRY)
        # the intent was new: nothing ran, so the step goes as if it had never been intended
        status = status.model_copy(update={"steps": [r for r in status.steps if r.index != effect.index]})
        final = "Escalated" if status.steps else "Skipped"
        return Decision(state.transition(status, final, f"no claim on the target right before acting: {claim.reason}",
                                         now))
    if claim is not None:
        status = status.model_copy(update={"claim": claim.record()})
    status = paused(status, effect, done)
    if done.error is not None:
        return Decision(action_failed(status, effect.index, done.error, now))
    if done.done:
        evidence = [*done.evidence, *change_evidence(done.changes, ts(now))]
        return Decision(action_done(status, effect.index, done.message, evidence, now, replayed=done.replayed))
    if effect.pause is not None and effect.pause.settle and done.paused_at is not None:
        # only paused: Flux handles the pause's reconcile request within moments unless an apply is in flight
        return Decision(status, changed=status != before, requeue_after=gitops.SETTLE_FIRST_LOOK)
    return Decision(status, changed=status != before, requeue_after=ACTION_POLL)  # in progress


def paused(status: RemediationStatus, effect: Act, done: Acted) -> RemediationStatus:
    """Record the owner's pause (when, until when) and, once the action changed the target, what Git still
    declares and the revert a human should make there."""
    owner = status.gitops
    if owner is None:
        return status
    update: dict = {}
    if done.paused_at is not None and effect.pause is not None and not owner.suspended_at:
        until = gitops.stamp(done.paused_at + effect.pause.lease)  # as the owner's annotation says it
        update |= {"suspended_at": gitops.stamp(done.paused_at), "until": until}
        status = state.note(status, "GitOpsPaused", f"paused {effect.pause.owner.display()} until {until}",
                            done.paused_at)
    if done.done and done.changes and owner.mode != "refuse" and not owner.desired_state:
        target = f"{status.target_display}"
        declared, revert = gitops.desired_state(owner.revision, owner.source or f"{owner.kind} {owner.namespace}/"
                                                f"{owner.name}", target, done.changes)
        update |= {"desired_state": declared, "revert": revert, "declared": gitops.declared_fields(done.changes)}
    return status.model_copy(update={"gitops": owner.model_copy(update=update)}) if update else status


def awaits_outcome(status: RemediationStatus, effect: Act) -> bool:
    """The status still holds the intent `effect` carried out, with no outcome recorded."""
    record = find_record(status, effect.index)
    return status.phase not in TERMINAL_PHASES and record is not None and record.phase == "Intended" \
        and record.idempotency_key == effect.key


def slack_effect(before: RemediationStatus, after: RemediationStatus, facts: Facts) -> Effect:
    """Post the approval request once per request; update its message when the request is decided."""
    request = after.approval
    if not facts.slack or request is None:
        return None
    if after.phase == "AwaitingApproval" and not request.slack_ts and request.slack_channel and \
            not facts.slack_backoff:
        return PostApproval(request.slack_channel)
    if before.phase == "AwaitingApproval" and after.phase != "AwaitingApproval" and request.slack_ts:
        return UpdateApproval(request.slack_channel or "", request.slack_ts)
    return None


def finished(before: RemediationStatus, decision: Decision, facts: Facts) -> Decision:
    """The decision with the claim's record dropped once its step is over (and whether to release the claim),
    and when the next tick is due, unless it says so already."""
    after = claims.released(decision.status)
    due = decision.requeue_after
    if due is None and after.phase not in TERMINAL_PHASES:
        due = requeue_after(after, facts)
    return dataclasses.replace(decision, status=after, requeue_after=due,
                               release=decision.changed and claims.step_over(before, after))


MAX_CHANGE_EVIDENCE = 20


def change_evidence(changes: Mapping[str, Mapping], at: str) -> list[Evidence]:
    """What the action changed on the target (e.g. the container image before and after), as evidence."""
    return [Evidence(kind="change", detail=path, value=f"{change.get('before')!r} -> {change.get('after')!r}"[:512],
                     at=at) for path, change in sorted(changes.items())][:MAX_CHANGE_EVIDENCE]


def requeue_after(status: RemediationStatus, facts: Facts) -> float | None:
    """Seconds until time alone moves `status` on: the approval deadline, the step's verification cadence."""
    phase = status.phase
    if phase in TERMINAL_PHASES:
        return None
    if phase == "AwaitingApproval":
        request = status.approval
        if request is None or request.decision is not None:
            return AT_ONCE
        owed = bool(facts.slack and request.slack_channel and not request.slack_ts)  # the Slack message
        if owed and not facts.slack_backoff:
            return AT_ONCE
        due = IDLE if not request.deadline else \
            max(0.0, (parse_time(request.deadline) - facts.now).total_seconds())
        return min(due, SLACK_RETRY) if owed else due
    if phase == "Verifying" and status.current_step is not None:
        record = find_record(status, status.current_step)
        if record is None or not record.applied_at:
            return AT_ONCE
        ends = parse_time(record.applied_at) + step_timeout(status, status.current_step, facts)
        return max(0.0, min(PROBE_EVERY, (ends - facts.now).total_seconds()))
    return AT_ONCE  # Pending, Planned, Acting: the next decision needs no waiting


PHASES = {
    "Pending": on_pending,
    "Planned": lambda name, spec, status, facts: gate(
        name, spec, status, planning.next_step(status.plan, status.steps) or 0, facts),
    "AwaitingApproval": on_awaiting_approval,
    "Acting": on_acting,
    "Verifying": on_verifying,
}
