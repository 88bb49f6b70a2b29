"""The loop engine walks a Remediation from Pending to an outcome, one persisted decision at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from remediator.api.models import (
    Approval,
    ApprovalRule,
    ApprovalState,
    ObjectRef,
    RemediationPolicySpec,
    RemediationSpec,
    RemediationStatus,
    RunbookRef,
    RunbookSpec,
    Signal,
)
from remediator.core.engine import engine
from remediator.core.plan import risk
from remediator.core.plan.guards import GuardDecision, GuardVerdict

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

SPEC = RemediationSpec(
    signal=Signal(source="alertmanager", name="HighErrorRate", fingerprint="abc",
                  starts_at="2026-11-25T11:58:00Z", labels={"namespace": "shop", "deployment": "web"}),
    runbook=RunbookRef(name="ladder", namespace="shop"),
    target=ObjectRef(kind="Deployment", namespace="shop", name="web"),
)


def runbook(*steps: tuple[str, str, str]) -> RunbookSpec:
    return RunbookSpec.model_validate({
        "triggers": [{"alert": {"matchers": [{"name": "alertname", "value": "HighErrorRate"}]}}],
        "target": {"kind": "Deployment", "name": "web"},
        "steps": [{"name": n, "action": a, "risk": r} for n, a, r in steps],
    })


LADDER = runbook(("restart", "restartRollout", "low"), ("scale-out", "scale", "low"))
ALLOW = GuardVerdict(True, [GuardDecision("cooldown", True, "cooldown: never ran")])


def facts(rb=LADDER, policy=None, guards=ALLOW, now=NOW) -> engine.Facts:
    return engine.Facts(now=now, runbook=rb, policy=policy, guards=guards)


def drive_to_acting(rb=LADDER) -> RemediationStatus:
    d = engine.decide("am-1", SPEC, RemediationStatus(), facts(rb))
    assert d.status.phase == "Acting", d.status.reason
    return d.status


def approved_and_acting() -> tuple[RemediationStatus, engine.Facts]:
    """Acting after an approval: the guards are observed again on the next tick, before the intent."""
    asked, rb, policy = awaiting()
    votes = asked.approval.model_copy(update={"decision": "approved"})
    acting = engine.decide("am-1", SPEC, asked.model_copy(update={"approval": votes}), facts(rb, policy))
    assert acting.status.phase == "Acting" and acting.effect is None
    return acting.status, facts(rb, policy)


def test_low_risk_plan_goes_straight_to_acting_with_the_plan_recorded():
    status = drive_to_acting()
    assert [s.name for s in status.plan] == ["restart", "scale-out"]
    assert status.current_step == 0
    assert status.risk is not None and status.risk.level == "low"
    assert status.target_display == "Deployment/web"


def test_intent_with_its_key_is_persisted_before_the_action_is_asked_for():
    d = engine.decide("am-1", SPEC, *approved_and_acting())
    assert isinstance(d.effect, engine.Act)
    record = engine.find_record(d.status, 0)
    assert record.phase == "Intended" and record.idempotency_key == d.effect.key
    assert d.changed, "the intent must be written before the effect runs"


def test_a_plan_that_passes_its_gate_records_the_intent_in_the_same_write_as_the_plan():
    d = engine.decide("am-1", SPEC, RemediationStatus(), facts())
    assert d.changed and isinstance(d.effect, engine.Act)
    record = engine.find_record(d.status, 0)
    assert record.phase == "Intended" and record.idempotency_key == d.effect.key
    assert [t.kind for t in d.status.timeline] == ["Planned", "Acting", "Intended"]


def test_a_restart_that_finds_an_intended_step_replays_the_same_key_without_a_new_write():
    acting, observed = approved_and_acting()
    intended = engine.decide("am-1", SPEC, acting, observed)
    again = engine.decide("am-1", SPEC, intended.status, observed)
    assert (again.effect.index, again.effect.key) == (intended.effect.index, intended.effect.key)
    assert intended.effect.fresh and not again.effect.fresh
    assert not again.changed


def test_guard_blocking_at_plan_time_skips_and_says_why():
    blocked = GuardVerdict(False, [GuardDecision("cooldown", False, "cooldown: last run 4m ago, cooldown 10m")])
    d = engine.decide("am-1", SPEC, RemediationStatus(), facts(guards=blocked))
    assert d.status.phase == "Skipped"
    assert "cooldown: last run 4m ago" in d.status.reason
    assert d.effect is None


def test_dry_run_policy_records_what_it_would_do_and_acts_on_nothing():
    d = engine.decide("am-1", SPEC, RemediationStatus(), facts(policy=RemediationPolicySpec(mode="dryRun")))
    assert d.status.phase == "Skipped" and d.status.dry_run
    assert "would restartRollout Deployment/web" in d.status.reason
    assert d.effect is None and d.status.steps == []


def test_high_risk_step_waits_for_approval_and_denial_ends_it_untouched():
    rb = runbook(("rollback", "rollback", "high"))
    policy = RemediationPolicySpec(approval=Approval(rules=[ApprovalRule(level="high", approvers=1)]))
    d = engine.decide("am-1", SPEC, RemediationStatus(), facts(rb, policy))
    assert d.status.phase == "AwaitingApproval"
    denied = d.status.model_copy(update={"approval": ApprovalState(decision="denied")})
    d2 = engine.decide("am-1", SPEC, denied, facts(rb, policy))
    assert d2.status.phase == "Denied" and d2.effect is None and d2.status.steps == []


def test_failed_verification_climbs_the_ladder_and_exhaustion_escalates():
    acting = engine.decide("am-1", SPEC, drive_to_acting(), facts()).status
    verifying = engine.action_done(acting, 0, "restarted", [], NOW)
    assert verifying.phase == "Verifying"
    next_step = engine.verification_judged(verifying, 0, "failed", ["pods crash-looping"], [], NOW, None)
    assert next_step.phase == "Acting" and next_step.current_step == 1
    acting2 = engine.decide("am-1", SPEC, next_step, facts()).status
    verifying2 = engine.action_done(acting2, 1, "rolled back", [], NOW)
    done = engine.verification_judged(verifying2, 1, "inconclusive", ["target gone"], [], NOW, None)
    assert done.phase == "Escalated"
    assert "ladder exhausted" in done.reason


def test_verified_success_records_time_to_recover_from_the_signal_start():
    acting = engine.decide("am-1", SPEC, drive_to_acting(), facts()).status
    verifying = engine.action_done(acting, 0, "restarted", [], NOW)
    later = NOW + timedelta(seconds=30)
    done = engine.verification_judged(verifying, 0, "passed", ["3/3 available"], [], later,
                                      SPEC.signal.starts_at)
    assert done.phase == "Succeeded"
    assert done.time_to_recover_seconds == 150.0


def test_pending_verification_changes_nothing():
    acting = engine.decide("am-1", SPEC, drive_to_acting(), facts()).status
    verifying = engine.action_done(acting, 0, "restarted", [], NOW)
    assert engine.verification_judged(verifying, 0, "pending", [], [], NOW, None) == verifying


def test_refused_action_fails_with_the_apiservers_words_when_no_step_is_left():
    rb = runbook(("rollback", "rollback", "low"))
    acting = engine.decide("am-1", SPEC, engine.decide("am-1", SPEC, RemediationStatus(), facts(rb)).status,
                           facts(rb)).status
    failed = engine.action_failed(acting, 0, "Forbidden (403): deployments.apps is forbidden", NOW)
    assert failed.phase == "Failed"
    assert "403" in failed.reason


def test_resolved_signal_cancels_a_remediation_that_has_not_acted():
    status = RemediationStatus(signal_resolved_at="2026-11-25T11:59:00Z")
    d = engine.decide("am-1", SPEC, status, facts())
    assert d.status.phase == "Cancelled"


def test_deleted_runbook_fails_the_remediation_with_its_name():
    d = engine.decide("am-1", SPEC, RemediationStatus(), facts(rb=None))
    assert d.status.phase == "Failed" and "shop/ladder" in d.status.reason


def test_a_climb_to_a_riskier_step_asks_for_its_own_approval():
    rb = runbook(("restart", "restartRollout", "low"), ("rollback", "rollback", "high"))
    policy = RemediationPolicySpec(approval=Approval(rules=[ApprovalRule(level="high", approvers=1)]))
    acting = engine.decide("am-1", SPEC, engine.decide("am-1", SPEC, RemediationStatus(), facts(rb, policy)).status,
                           facts(rb, policy)).status
    verifying = engine.action_done(acting, 0, "restarted", [], NOW)
    climbed = engine.verification_judged(verifying, 0, "failed", ["still crash-looping"], [], NOW, None)
    d = engine.decide("am-1", SPEC, climbed, facts(rb, policy))
    assert d.status.phase == "AwaitingApproval" and d.effect is None
    assert d.status.risk.level in ("high", "critical")


def test_a_guard_blocking_a_climb_after_a_step_ran_escalates_instead_of_skipping():
    acting = engine.decide("am-1", SPEC, drive_to_acting(), facts()).status
    climbed = engine.verification_judged(engine.action_done(acting, 0, "restarted", [], NOW), 0, "failed",
                                         ["still failing"], [], NOW, None)
    blocked = GuardVerdict(False, [GuardDecision("freeze", False, "freeze window 'release' is in force")])
    d = engine.decide("am-1", SPEC, climbed, facts(guards=blocked))
    assert d.status.phase == "Escalated" and "freeze window" in d.status.reason


def awaiting(on_timeout="deny", timeout="10m"):
    rb = runbook(("scale-out", "scale", "high"))  # scores 65: high, not pushed to critical
    policy = RemediationPolicySpec(approval=Approval(rules=[
        ApprovalRule(level=lvl, approvers=1, timeout=timeout, on_timeout=on_timeout if lvl != "critical" else "deny")
        for lvl in ("high", "critical")]))
    d = engine.decide("am-1", SPEC, RemediationStatus(), facts(rb, policy))
    assert d.status.phase == "AwaitingApproval"
    return d.status, rb, policy


def test_waiting_for_approval_opens_a_request_with_a_deadline_from_the_rule():
    status, _, _ = awaiting(timeout="10m")
    assert status.approval.required == 1 and status.approval.decision is None
    assert status.approval.deadline == "2026-11-25T12:10:00Z"


def test_an_unanswered_request_expires_at_its_deadline_and_acts_on_nothing():
    status, rb, policy = awaiting()
    before = engine.decide("am-1", SPEC, status, facts(rb, policy, now=NOW + timedelta(minutes=9)))
    assert not before.changed
    after = engine.decide("am-1", SPEC, status, facts(rb, policy, now=NOW + timedelta(minutes=10)))
    assert after.status.phase == "Expired" and after.effect is None and after.status.steps == []
    assert after.status.approval.decision == "expired"


def test_an_escalating_timeout_escalates_instead_of_expiring():
    status, rb, policy = awaiting(on_timeout="escalate")
    assert status.risk.level == "high"
    after = engine.decide("am-1", SPEC, status, facts(rb, policy, now=NOW + timedelta(hours=1)))
    assert after.status.phase == "Escalated" and after.status.steps == []


def test_the_persisted_probable_cause_plans_the_ladder_and_is_noted_in_the_timeline():
    from remediator.api.models import ProbableCause

    rb = RunbookSpec.model_validate({
        "triggers": [{"alert": {"matchers": [{"name": "alertname", "value": "HighErrorRate"}]}}],
        "target": {"kind": "Deployment", "name": "web"},
        "steps": [{"name": "rollback", "action": "rollback", "when": {"causeKinds": ["rollout"]}},
                  {"name": "restart", "action": "restartRollout"}]})
    found = RemediationStatus(probable_cause=ProbableCause(kind="none", summary="nothing changed on web"))
    d = engine.decide("am-1", SPEC, found, engine.Facts(now=NOW, runbook=rb, policy=None, guards=ALLOW,
                                                        cause_kind=engine.cause_kind(found)))
    assert [s.skip for s in d.status.plan] == [True, False] and d.status.current_step == 1
    assert ("ProbableCause", "nothing changed on web") in [(e.kind, e.message) for e in d.status.timeline]
    assert d.status.probable_cause == found.probable_cause


def test_guards_are_needed_only_before_a_step_is_gated_or_intended():
    pending, intent = RemediationStatus(), engine.decide("am-1", SPEC, RemediationStatus(), facts()).status
    applied = engine.action_done(intent, 0, "restarted", [], NOW)
    climbed = intent.model_copy(update={"current_step": 1})  # Acting on a step with no record yet
    assert [engine.needs(s, LADDER).step_facts for s in (pending, intent, applied, climbed)] == \
        [True, False, False, True]


def test_the_cause_and_an_adaptive_runbooks_history_are_needed_only_to_plan():
    adaptive = LADDER.model_copy(update={"adaptive": True})
    planned = drive_to_acting()
    assert engine.needs(RemediationStatus(), adaptive) == engine.Needs(step_facts=True, cause=True, history=True)
    assert not engine.needs(RemediationStatus(), LADDER).history
    assert engine.needs(planned, adaptive) == engine.Needs()


def test_the_risk_is_scored_with_the_cause_the_decision_knows_not_the_one_the_reads_saw():
    rb = runbook(("rollback", "rollback", "low"))
    unknown = risk.RiskInput(declared="low", action="rollback", dry_run="succeeded")  # read before the cause was
    known = engine.decide("am-1", SPEC, RemediationStatus(), engine.Facts(
        now=NOW, runbook=rb, policy=None, guards=ALLOW, risk_input=unknown, cause_kind="rollout"))
    assert any("probable cause rollout fits rollback" in r for r in known.status.risk.reasons), \
        known.status.risk.reasons
