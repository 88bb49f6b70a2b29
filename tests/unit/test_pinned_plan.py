"""A Remediation runs the steps as they were at planning, and an approval covers exactly the step it was shown."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from remediator.api.models import (
    Approval,
    ApprovalRule,
    ObjectRef,
    RemediationPolicySpec,
    RemediationSpec,
    RemediationStatus,
    RunbookRef,
    RunbookSpec,
    Signal,
    StepRecord,
)
from remediator.core.approve import approval
from remediator.core.engine import engine
from remediator.core.plan import guard_inputs, planning
from remediator.core.plan.guard_inputs import TargetFacts
from remediator.core.plan.guards import GuardDecision, GuardVerdict
from remediator.core.plan.sizing import Strategy

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SPEC = RemediationSpec(
    signal=Signal(source="alertmanager", name="HighErrorRate", fingerprint="abc"),
    runbook=RunbookRef(name="ladder", namespace="shop"),
    target=ObjectRef(kind="Deployment", namespace="shop", name="web"),
)
ALLOW = GuardVerdict(True, [GuardDecision("cooldown", True, "cooldown: never ran")])
HIGH_NEEDS_ONE = RemediationPolicySpec(approval=Approval(rules=[
    ApprovalRule(level=level, approvers=1) for level in ("high", "critical")]))
ALL_NEED_ONE = RemediationPolicySpec(approval=Approval(rules=[
    ApprovalRule(level=level, approvers=1) for level in ("low", "medium", "high", "critical")]))


def runbook(*steps: dict, account: str | None = None) -> RunbookSpec:
    return RunbookSpec.model_validate({
        "triggers": [{"alert": {"matchers": [{"name": "alertname", "value": "HighErrorRate"}]}}],
        "target": {"kind": "Deployment", "name": "web"}, "serviceAccountName": account, "steps": list(steps)})


RESTART = {"name": "restart", "action": "restartRollout", "risk": "low"}
SCALE_TO_6 = {"name": "scale-out", "action": "scale", "risk": "low", "scale": {"maxReplicas": 6, "step": 2}}
SCALE_TO_50 = {**SCALE_TO_6, "scale": {"maxReplicas": 50, "step": 40}}


def facts(rb, generation, policy=None) -> engine.Facts:
    return engine.Facts(now=NOW, runbook=rb, policy=policy, guards=ALLOW, runbook_generation=generation)


def planned(rb, generation=1, policy=None) -> RemediationStatus:
    return engine.decide("am-1", SPEC, RemediationStatus(), facts(rb, generation, policy)).status


def observe(rb: RunbookSpec, status: RemediationStatus):
    found = guard_inputs.next_step(rb, status, None)
    if found is None:
        return None
    steps, index = found
    return guard_inputs.observe_step(
        now=NOW, name="am-1", spec=SPEC, runbook=rb, steps=steps, index=index, policy=None, history=[],
        target=TargetFacts(replicas=2, strategy=Strategy()), namespace_labels={}, namespace_pods=None,
        dry_run="succeeded", cause_kind=None)


def test_the_plan_pins_each_steps_action_params_and_identity_as_the_runbook_had_them():
    status = planned(runbook(RESTART, SCALE_TO_6, account="remediator-actions"), generation=3)
    assert status.plan[1].step is not None and status.plan[1].step.scale.max_replicas == 6
    assert status.runbook_generation == 3 and status.service_account_name == "remediator-actions"
    wire = RemediationStatus.model_validate(status.wire())  # survives the status write
    assert wire.plan[1].step.scale.max_replicas == 6


def test_the_action_identity_is_the_pinned_one_whatever_the_runbook_says_now():
    status = planned(runbook(RESTART, account="narrow"))
    assert planning.action_identity(status.plan, runbook(RESTART, account="wide"), status.service_account_name) \
        == "narrow"
    assert planning.action_identity([], runbook(RESTART, account="wide"), None) == "wide", "nothing planned yet"


def test_a_runbook_deleted_before_its_step_acts_stops_the_remediation_without_acting_and_without_a_failure():
    acting = planned(runbook(RESTART, SCALE_TO_6))
    d = engine.decide("am-1", SPEC, acting, facts(None, None))
    assert d.status.phase == "Cancelled" and d.effect is None and "no longer exists" in d.status.reason
    past = guard_inputs.past_remediation({"metadata": {"name": "am-1", "namespace": "shop"},
                                          "spec": SPEC.model_dump(mode="json", by_alias=True),
                                          "status": d.status.wire()})
    assert not past.failed, "no action ran and failed: the breaker and risk do not count it"


def test_a_runbook_deleted_while_its_applied_step_verifies_still_gets_the_verdict_from_the_pinned_step():
    acting = planned(runbook(RESTART, SCALE_TO_6))
    applied = acting.model_copy(update={"phase": "Verifying", "current_step": 0, "steps": [StepRecord(
        index=0, name=acting.plan[0].name, action=acting.plan[0].action, idempotency_key="k", phase="Applied",
        applied_at="2026-11-25T11:59:00Z")]})
    d = engine.decide("am-1", SPEC, applied, facts(None, None))
    assert d.status.phase == "Verifying", d.status.reason
    assert [e.kind for e in d.status.timeline].count("RunbookDeleted") == 1 and d.changed
    again = engine.decide("am-1", SPEC, d.status, facts(None, None))
    assert [e.kind for e in again.status.timeline].count("RunbookDeleted") == 1, "said once"


def test_params_edited_after_planning_do_not_change_what_the_guards_and_action_see():
    status = planned(runbook(SCALE_TO_6, RESTART))
    status = status.model_copy(update={"phase": "Planned", "steps": [], "current_step": None})
    edited = runbook(SCALE_TO_50, RESTART)
    observed = observe(edited, status)
    assert observed.change.desired_replicas == 4, "2 + the pinned step of 2, not the edited step of 40"
    assert planning.pinned_step(status.plan, 0, edited).scale.max_replicas == 6


def test_an_edited_runbook_is_noted_once_and_the_pinned_plan_keeps_running():
    acting = planned(runbook(RESTART, SCALE_TO_6))
    assert acting.phase == "Acting"
    reordered = runbook(SCALE_TO_50, RESTART)
    d = engine.decide("am-1", SPEC, acting, facts(reordered, 2))
    assert isinstance(d.effect, engine.Act) and d.effect.index == 0
    assert engine.find_record(d.status, 0).action == "restartRollout", "the pinned step 0, not the edited one"
    notes = [e.message for e in d.status.timeline if e.kind == "RunbookChanged"]
    assert notes == ["Runbook shop/ladder changed since planning (generation 1 → 2): running the plan pinned "
                     "at generation 1"]
    again = engine.decide("am-1", SPEC, d.status, facts(reordered, 2))
    assert [e.kind for e in again.status.timeline].count("RunbookChanged") == 1
    assert not again.changed, "the replayed intent writes nothing new"


def test_a_shortened_runbook_does_not_crash_the_guards_and_the_pinned_step_runs():
    status = planned(runbook(RESTART, SCALE_TO_6))
    verifying = engine.action_done(engine.decide("am-1", SPEC, status, facts(runbook(RESTART), 2)).status,
                                   0, "restarted", [], NOW)
    climbed = engine.verification_judged(verifying, 0, "failed", ["still failing"], [], NOW, None)
    shortened = runbook(RESTART)
    observed = observe(shortened, climbed)
    assert observed is not None and observed.action == "scale"
    d = engine.decide("am-1", SPEC, climbed, facts(shortened, 2))
    assert isinstance(d.effect, engine.Act) and d.effect.index == 1


def test_a_plan_from_before_pinning_escalates_when_the_runbook_lost_its_step():
    status = planned(runbook(RESTART, SCALE_TO_6))
    legacy = status.model_copy(update={"plan": [p.model_copy(update={"step": None}) for p in status.plan]})
    verifying = engine.action_done(engine.decide("am-1", SPEC, legacy, facts(runbook(RESTART), 1)).status,
                                   0, "restarted", [], NOW)
    climbed = engine.verification_judged(verifying, 0, "failed", ["still failing"], [], NOW, None)
    shortened = runbook(RESTART)
    assert observe(shortened, climbed) is None, "no guard read of a step that exists nowhere"
    d = engine.decide("am-1", SPEC, climbed, facts(shortened, 2))
    assert d.status.phase == "Escalated" and "no longer has it" in d.status.reason and d.effect is None


@pytest.mark.parametrize("later", ["high", "low"])
def test_an_approval_does_not_carry_to_a_later_step_of_the_same_or_lower_level(later):
    rb = runbook({**SCALE_TO_6, "risk": "high"}, {**RESTART, "risk": later})
    asked = planned(rb, policy=ALL_NEED_ONE)
    assert asked.phase == "AwaitingApproval" and asked.approval.step_index == 0
    yes = asked.model_copy(update={"approval": asked.approval.model_copy(update={"decision": "approved"})})
    acting = engine.decide("am-1", SPEC, yes, facts(rb, 1, ALL_NEED_ONE)).status
    d = engine.decide("am-1", SPEC, acting, facts(rb, 1, ALL_NEED_ONE))
    assert isinstance(d.effect, engine.Act) and d.effect.index == 0
    climbed = engine.verification_judged(engine.action_done(d.status, 0, "scaled", [], NOW), 0, "failed",
                                         ["still failing"], [], NOW, None)
    d2 = engine.decide("am-1", SPEC, climbed, facts(rb, 1, ALL_NEED_ONE))
    assert d2.status.phase == "AwaitingApproval" and d2.effect is None, d2.status.reason
    assert d2.status.approval.step_index == 1 and d2.status.approval.decision is None
    assert d2.status.approval.request_id != asked.approval.request_id


def test_the_request_names_and_binds_exactly_the_step_shown():
    asked = planned(runbook({**SCALE_TO_6, "risk": "high"}), policy=HIGH_NEEDS_ONE)
    given = asked.approval
    assert given.step_summary == 'step 0: scale Deployment/shop/web {"scale": {"autoscaler": "lease", ' \
                                 '"leaseDuration": "1h", "maxReplicas": 6, "minReplicas": 1, "step": 2}}'
    other = planned(runbook({**SCALE_TO_50, "risk": "high"}), policy=HIGH_NEEDS_ONE).approval
    assert other.step_digest != given.step_digest
    assert approval.request_id_for("am-1", 0, 0, NOW, given.step_digest) == given.request_id
    assert approval.request_id_for("am-1", 0, 0, NOW, other.step_digest) != given.request_id
    yes = asked.model_copy(update={"approval": given.model_copy(update={"decision": "approved"})})
    assert engine.approved_step("am-1", SPEC, yes, 0)
    assert not engine.approved_step("am-1", SPEC, yes, 1), "another step"
    edited = yes.model_copy(update={"plan": planned(runbook({**SCALE_TO_50, "risk": "high"})).plan})
    assert not engine.approved_step("am-1", SPEC, edited, 0), "an approval of other params covers nothing here"
    pruned = yes.model_copy(update={"approval": yes.approval.model_copy(update={"step_index": None,
                                                                                 "step_digest": None})})
    assert engine.approved_step("am-1", SPEC, pruned, 0), "the request id alone binds the step"


def test_the_slack_request_and_the_cli_vote_show_exactly_what_is_approved(monkeypatch, capsys):
    import argparse
    import json

    from remediator import kube
    from remediator.approvals import kubernetes as cli_votes
    from remediator.approvals.messages import request_blocks

    rb = runbook(RESTART, {**SCALE_TO_6, "risk": "high"})
    asked = planned(rb, policy=HIGH_NEEDS_ONE)  # step 0 is low: it acts without approval
    climbed = engine.verification_judged(engine.action_done(
        engine.decide("am-1", SPEC, asked, facts(rb, 1, HIGH_NEEDS_ONE)).status, 0, "restarted", [], NOW),
        0, "failed", ["still failing"], [], NOW, None)
    waiting = engine.decide("am-1", SPEC, climbed, facts(rb, 1, HIGH_NEEDS_ONE)).status
    assert waiting.phase == "AwaitingApproval"
    text = json.dumps(request_blocks("shop", "am-1", SPEC, waiting))
    assert "step `scale-out`" in text and "step 1: scale Deployment/shop/web" in text, text
    assert "any later step asks again" in text

    request = waiting.wire()["approval"]
    monkeypatch.setattr(kube, "load_api_client", lambda _: None)
    monkeypatch.setattr(cli_votes, "open_request", lambda *_: request)
    monkeypatch.setattr(cli_votes, "cast_vote", lambda *_, **__: {"status": {"outcome": "accepted"}})
    args = argparse.Namespace(kubeconfig=None, namespace="shop", remediation="am-1", request_id=None, reason="")
    assert cli_votes.run(args, "approve") == 0
    assert f"it covers exactly {waiting.approval.step_summary}; any later step asks again" in capsys.readouterr().out
