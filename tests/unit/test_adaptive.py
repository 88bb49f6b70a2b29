"""Adaptive ladders: what has recovered this signal goes first, within the policy's risk limits, explained."""

from __future__ import annotations

from datetime import timedelta

from remediator.api.models import (
    MAX_SIGNAL_STATS,
    MAX_SIGNAL_TYPE_LENGTH,
    MAX_STEPS,
    Approval,
    ApprovalRule,
    PlannedStep,
    RemediationPolicySpec,
    RemediationStatus,
    RunbookStatus,
    StepRecord,
)
from remediator.core.plan import adaptive, planning
from remediator.core.engine import engine
from remediator.core.report import runbook_stats
from remediator.core.plan.adaptive import StepOutcomes
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


def folded(*remediations: tuple[str, tuple[tuple[str, str, bool], ...]]) -> RunbookStatus:
    """A Runbook's status after its ended Remediations were folded: (alertname, (step, phase, applied)...)."""
    stats = RunbookStatus(signal_stats_complete=True)
    for i, (alertname, steps) in enumerate(remediations):
        spec = SPEC.model_copy(update={"signal": SPEC.signal.model_copy(update={"name": alertname})})
        outcome = RemediationStatus(phase="Escalated", finished_at="2026-11-25T10:10:00Z", steps=[
            StepRecord(index=j, name=name, action="rollback", idempotency_key=f"k{j}", phase=phase,
                       applied_at="2026-11-25T10:00:00Z" if applied else None)
            for j, (name, phase, applied) in enumerate(steps)])
        stats = runbook_stats.fold(stats, f"u{i}", f"r{i}", outcome, adaptive.signal_type(spec)) or stats
    return stats


def test_the_ladder_reads_verdicts_of_applied_steps_on_this_signal_only_from_the_runbook_status():
    stats = folded(("HighErrorRate", (("restart", "Failed", True), ("rollback", "Succeeded", True))),
                   ("HighErrorRate", (("restart", "Inconclusive", True), ("rollback", "Verifying", True))),
                   ("HighErrorRate", (("restart", "Failed", False),)),
                   ("Latency", (("restart", "Succeeded", True),)))
    assert adaptive.history(stats, SIGNAL) == {"restart": StepOutcomes(2, 0), "rollback": StepOutcomes(1, 1)}
    assert adaptive.history(stats, "alertmanager/Latency") == {"restart": StepOutcomes(1, 1)}
    assert adaptive.history(stats, "alertmanager/Unseen") == {}


def test_the_ladder_from_the_runbook_status_still_skips_the_step_that_failed_before():
    stats = folded(*[("HighErrorRate", (("restart", "Failed", True), ("rollback", "Succeeded", True)))] * 3)
    stats = RunbookStatus.model_validate(stats.wire())  # as read back from the apiserver
    ordering = adaptive.order(LADDER, adaptive.history(stats, SIGNAL), SIGNAL, ALL_UNATTENDED)
    assert ladder_names(ordering) == ["rollback", "restart"]


def test_signal_stats_keep_the_most_recently_seen_signal_types_and_steps_within_their_bounds():
    many = [(f"Alert{i}", tuple((f"step{j + half * 15}", "Failed", True) for j in range(15)))
            for i in range(40) for half in (0, 1)]  # 30 step names per signal type, as after runbook edits
    stats = folded(*many, ("Alert3", (("step0", "Succeeded", True),)))
    assert len(stats.signal_stats) == MAX_SIGNAL_STATS
    assert stats.signal_stats[-1].signal == "alertmanager/Alert3", "the type just seen moves last"
    assert all(len(s.steps) == MAX_STEPS for s in stats.signal_stats[:-1])
    assert adaptive.history(stats, "alertmanager/Alert3")["step0"] == StepOutcomes(1, 1)
    assert adaptive.history(stats, "alertmanager/Alert0") == {}, "the least recently seen type was dropped"


def test_remediations_folded_before_signal_stats_existed_are_counted_once_by_the_backfill():
    def ended(uid: str, flagged: bool, phase: str = "Escalated") -> tuple[str, str, RemediationStatus]:
        return uid, SIGNAL, RemediationStatus(phase=phase, folded_into_runbook=flagged, steps=[
            StepRecord(index=0, name="restart", action="restartRollout", idempotency_key="k", phase="Failed",
                       applied_at="2026-11-25T10:00:00Z")])

    upgraded = RunbookStatus(folded=["u1"])  # as an older operator left it: counts, but no signalStats
    outcome = ended("u9", True)[2]
    before = runbook_stats.fold(upgraded, "u9", "r9", outcome, SIGNAL)
    assert before.signal_stats == [] and before.folded == ["u1", "u9"], "left to the backfill, which lists it"
    listed = [ended("u1", False), ended("u2", True), ended("u3", False), ended("u4", True, phase="Acting"),
              ended("u9", True)]
    records = [runbook_stats.ended(*e) for e in listed]
    assert records[3] is None, "not ended: not counted"
    done = runbook_stats.backfill(before, [r for r in records if r is not None])
    assert done.signal_stats_complete
    assert adaptive.history(done, SIGNAL) == {"restart": StepOutcomes(3, 0)}, "u1 (listed as folded), u2, u9"
    after = runbook_stats.fold(done, "u10", "r10", outcome, SIGNAL)
    assert adaptive.history(after, SIGNAL) == {"restart": StepOutcomes(4, 0)}


def test_a_signal_name_too_long_for_the_status_keeps_a_distinct_bounded_key():
    long_a = SPEC.model_copy(update={"signal": SPEC.signal.model_copy(update={"name": "x" * 1000 + "a"})})
    long_b = SPEC.model_copy(update={"signal": SPEC.signal.model_copy(update={"name": "x" * 1000 + "b"})})
    keys = {adaptive.signal_type(long_a), adaptive.signal_type(long_b)}
    assert len(keys) == 2 and all(len(k) <= MAX_SIGNAL_TYPE_LENGTH for k in keys)


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


def test_an_adaptive_plan_reads_the_step_statistics_from_the_cached_runbook_not_the_apiserver():
    from types import SimpleNamespace

    from remediator.controller import caches, reconcile
    from remediator.controller.ingest import RunbookCache

    def no_read(*args):
        raise AssertionError("the plan read the Runbook from the apiserver")
    counted = runbook_stats.fold(RunbookStatus(signal_stats_complete=True), "u1", "r1", RemediationStatus(
        phase="Escalated", steps=[StepRecord(index=0, name="restart", action="restartRollout", idempotency_key="k",
                                             phase="Failed", applied_at="2026-11-25T10:00:00Z")]),
        adaptive.signal_type(SPEC))
    spec = runbook(("restart", "restartRollout", "low")).model_copy(update={"adaptive": True})
    ctx = SimpleNamespace(caches=caches.Caches(), runbooks=RunbookCache(), resources=SimpleNamespace(get=no_read))
    ctx.caches.primed.set()
    ctx.runbooks.put(SPEC.runbook.namespace, SPEC.runbook.name, 1, spec.wire(), "9", counted.wire())
    assert reconcile.adaptive_history(ctx, SPEC, RemediationStatus(phase="Pending"), spec) == {
        "restart": StepOutcomes(1, 0)}
