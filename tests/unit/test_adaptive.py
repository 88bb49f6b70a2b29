"""Adaptive ladders: what has recovered this signal goes first, within the policy's risk limits, explained."""

from __future__ import annotations

from datetime import timedelta

from remediator.api.models import (
    Approval,
    ApprovalRule,
    PlannedStep,
    RemediationPolicySpec,
    RemediationSpec,
    RemediationStatus,
    StepRecord,
)
from remediator.core import adaptive, engine, planning
from remediator.core.adaptive import StepOutcomes
from tests.unit.test_core_engine import NOW, SPEC, facts, runbook

SIGNAL = "alertmanager/HighErrorRate"
ALL_UNATTENDED = ["low", "medium", "high", "critical"]
LADDER = [PlannedStep(index=0, name="restart", action="restartRollout", risk="low"),
          PlannedStep(index=1, name="rollback", action="rollback", risk="high")]
PROVEN_ROLLBACK = {"rollback": StepOutcomes(10, 9), "restart": StepOutcomes(9, 2)}


def ladder_names(ordering: adaptive.Ordering) -> list[str]:
    return [s.name for s in sorted(ordering.steps, key=planning.position)]


def test_the_step_that_recovered_this_signal_goes_first_and_the_remediation_says_why():
    ordering = adaptive.order(LADDER, PROVEN_ROLLBACK, SIGNAL, ALL_UNATTENDED)
    assert ladder_names(ordering) == ["rollback", "restart"] and ordering.changed
    assert ordering.explanation == ("adaptive order on alertmanager/HighErrorRate: tried rollback first: "
                                    "9/10 successes on this signal vs restart 2/9; ladder rollback → restart")
    assert [s.index for s in ordering.steps] == [0, 1], "the plan stays in runbook order; `order` says the ladder"


def test_a_step_whose_risk_needs_approval_is_never_moved_ahead():
    ordering = adaptive.order(LADDER, PROVEN_ROLLBACK, SIGNAL, ["low", "medium"])
    assert ladder_names(ordering) == ["restart", "rollback"] and not ordering.changed
    assert ordering.explanation == ("adaptive order on alertmanager/HighErrorRate: runbook order kept "
                                    "(restart 2/9, rollback 9/10); rollback kept in place: its risk needs approval")


def test_exploration_is_bounded_an_untried_step_beats_a_poor_one_but_not_a_proven_one():
    steps = [PlannedStep(index=0, name="a", action="restartRollout", risk="low"),
             PlannedStep(index=1, name="b", action="scale", risk="low")]
    assert ladder_names(adaptive.order(steps, {"a": StepOutcomes(4, 1)}, SIGNAL, ALL_UNATTENDED)) == ["b", "a"]
    assert ladder_names(adaptive.order(steps, {"a": StepOutcomes(10, 8)}, SIGNAL, ALL_UNATTENDED)) == ["a", "b"]
    assert StepOutcomes().score == 0.6  # Beta(1, 1): mean 0.5, spread capped at 0.1


def test_without_any_history_the_runbook_order_stands():
    ordering = adaptive.order(LADDER, {}, SIGNAL, ALL_UNATTENDED)
    assert ladder_names(ordering) == ["restart", "rollback"] and not ordering.changed
    assert "runbook order kept (restart untried, rollback untried)" in ordering.explanation


def test_skipped_steps_keep_their_places():
    steps = [LADDER[0], PlannedStep(index=1, name="drain", action="cordonDrain", risk="low", skip=True),
             LADDER[1].model_copy(update={"index": 2})]
    assert ladder_names(adaptive.order(steps, PROVEN_ROLLBACK, SIGNAL, ALL_UNATTENDED)) == [
        "rollback", "drain", "restart"]


def test_history_counts_verdicts_of_applied_steps_of_this_runbook_on_this_signal_only():
    def past(runbook: str, alertname: str, *steps: tuple[str, str, bool]) -> tuple[RemediationSpec, RemediationStatus]:
        spec = SPEC.model_copy(update={
            "runbook": SPEC.runbook.model_copy(update={"name": runbook}),
            "signal": SPEC.signal.model_copy(update={"name": alertname})})
        return spec, RemediationStatus(steps=[
            StepRecord(index=i, name=name, action="rollback", idempotency_key=f"k{i}", phase=phase,
                       applied_at="2026-11-25T10:00:00Z" if applied else None)
            for i, (name, phase, applied) in enumerate(steps)])

    records = [past("ladder", "HighErrorRate", ("restart", "Failed", True), ("rollback", "Succeeded", True)),
               past("ladder", "HighErrorRate", ("restart", "Inconclusive", True), ("rollback", "Verifying", True)),
               past("ladder", "HighErrorRate", ("restart", "Failed", False)),
               past("other", "HighErrorRate", ("restart", "Succeeded", True)),
               past("ladder", "Latency", ("restart", "Succeeded", True))]
    assert adaptive.history(records, "shop/ladder", SIGNAL) == {
        "restart": StepOutcomes(2, 0), "rollback": StepOutcomes(1, 1)}


def test_unattended_levels_stop_at_the_first_level_that_needs_approval():
    assert adaptive.unattended_levels({"low": False, "medium": True, "high": False}) == ["low"]
    assert adaptive.unattended_levels({}) == []


# ---------------------------------------------------------------- through the engine


ADAPTIVE = runbook(("restart", "restartRollout", "low"), ("rollback", "rollback", "high")).model_copy(
    update={"adaptive": True})
NO_APPROVALS = RemediationPolicySpec(approval=Approval(rules=[
    ApprovalRule(level=level, approvers=0) for level in ("low", "medium", "high", "critical")]))


def test_an_adaptive_runbook_plans_rollback_first_then_climbs_back_to_restart():
    with_history = facts(rb=ADAPTIVE, policy=NO_APPROVALS)
    with_history = engine.Facts(**{**vars(with_history), "step_history": PROVEN_ROLLBACK})
    planned = engine.decide("am-1", SPEC, RemediationStatus(), with_history)
    assert planned.status.phase == "Planned" and planned.effect is None, "gated next tick, for the new first step"
    note = next(t for t in planned.status.timeline if t.kind == "AdaptiveOrder")
    assert note.message.startswith("adaptive order on alertmanager/HighErrorRate: tried rollback first: 9/10")
    assert "plan: rollback (rollback, high) → restart (restartRollout, low)" in planned.status.reason

    acting = engine.decide("am-1", SPEC, planned.status, with_history).status
    assert (acting.phase, acting.current_step) == ("Acting", 1)
    intent = engine.decide("am-1", SPEC, acting, with_history)
    assert isinstance(intent.effect, engine.Act) and intent.effect.index == 1
    applied = engine.action_done(intent.status, 1, "rolled back", [], NOW)
    climbed = engine.verification_judged(applied, 1, "failed", ["still failing"], [], NOW + timedelta(minutes=1),
                                         None)
    assert (climbed.phase, climbed.current_step) == ("Acting", 0), climbed.reason
    restart = engine.decide("am-1", SPEC, climbed, with_history)
    restarted = engine.action_done(restart.status, 0, "restarted", [], NOW)
    done = engine.verification_judged(restarted, 0, "failed", ["still failing"], [], NOW + timedelta(minutes=2),
                                      None)
    assert done.phase == "Escalated" and "ladder exhausted" in done.reason


def test_an_adaptive_runbook_without_history_supplied_plans_as_written():
    planned = engine.decide("am-1", SPEC, RemediationStatus(), facts(rb=ADAPTIVE, policy=NO_APPROVALS))
    assert (planned.status.phase, planned.status.current_step) == ("Acting", 0)
    assert not any(t.kind == "AdaptiveOrder" for t in planned.status.timeline)
