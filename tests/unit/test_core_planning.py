from __future__ import annotations

import pytest

from remediator.api.models import RunbookSpec, StepRecord
from remediator.core.plan.planning import ladder_status, next_step, plan


def spec(*steps: dict) -> RunbookSpec:
    return RunbookSpec.model_validate({
        "triggers": [{"alert": {"matchers": [{"name": "alertname", "value": "X"}]}}],
        "target": {"kind": "Deployment", "name": "web"},
        "steps": list(steps),
    })


RESTART = {"name": "restart", "action": "restartRollout"}
ROLLBACK = {"name": "rollback", "action": "rollback", "risk": "high", "when": {"causeKinds": ["rollout"]}}
SCALE = {"name": "scale-out", "action": "scale", "risk": "medium", "scale": {"maxReplicas": 6}}
NOT_CONFIG = {"name": "restart-unless-config", "action": "restartRollout",
              "when": {"causeKinds": ["configChange"], "negate": True}}
ONLY_NONE = {"name": "when-nothing-changed", "action": "scale", "scale": {"maxReplicas": 4},
             "when": {"causeKinds": ["none"]}}


def record(index: int, phase: str, name: str = "s") -> StepRecord:
    return StepRecord(index=index, name=name, action="restartRollout", idempotency_key=f"k{index}", phase=phase)


def test_plan_keeps_the_ladder_order_with_names_actions_and_declared_risk():
    steps = plan(spec(RESTART, SCALE), None)
    assert [(s.index, s.name, s.action, s.risk, s.skip) for s in steps] == [
        (0, "restart", "restartRollout", "low", False), (1, "scale-out", "scale", "medium", False)]
    assert steps[0].reason == "restart runs: no cause condition"


def test_rollback_is_skipped_when_the_cause_is_not_a_rollout_and_says_why():
    steps = plan(spec(ROLLBACK, RESTART), "none")
    assert steps[0].skip
    assert steps[0].reason == "rollback skipped: probable cause is none, step runs only for rollout"
    assert not steps[1].skip


def test_rollback_runs_when_the_cause_is_a_rollout():
    steps = plan(spec(ROLLBACK), "rollout")
    assert not steps[0].skip and steps[0].reason == "rollback runs: probable cause is rollout, step runs only for rollout"


@pytest.mark.parametrize("step", [ROLLBACK, NOT_CONFIG, ONLY_NONE])
def test_unknown_cause_skips_every_cause_conditioned_step_even_negated_ones(step):
    planned = plan(spec(step), None)[0]
    assert planned.skip and "probable cause is unknown" in planned.reason


@pytest.mark.parametrize("cause, skip", [("configChange", True), ("rollout", False), ("none", False)])
def test_negated_condition_runs_unless_the_cause_is_listed(cause, skip):
    planned = plan(spec(NOT_CONFIG), cause)[0]
    assert planned.skip is skip and "step runs only when the cause is not configChange" in planned.reason


def test_none_is_a_known_cause_distinct_from_unknown():
    assert not plan(spec(ONLY_NONE), "none")[0].skip
    assert plan(spec(ONLY_NONE), None)[0].skip


def test_a_when_without_cause_kinds_constrains_nothing():
    step = {"name": "restart", "action": "restartRollout", "when": {"causeKinds": []}}
    assert not plan(spec(step), None)[0].skip


def test_next_step_starts_with_the_first_runnable_step():
    steps = plan(spec(ROLLBACK, RESTART, SCALE), "none")
    assert next_step(steps, []) == 1
    assert ladder_status(steps, []).state == "notStarted"


def test_next_step_climbs_past_failed_and_skipped_steps():
    steps = plan(spec(RESTART, ROLLBACK, SCALE), "nodeChange")
    status = ladder_status(steps, [record(0, "Failed", "restart")])
    assert (status.state, status.next_index) == ("next", 2)
    assert "step 0 (restart) ended Failed: climb to step 2 (scale-out)" == status.reason


@pytest.mark.parametrize("phase", ["Intended", "Applied", "Verifying"])
def test_next_step_resumes_a_step_in_flight(phase):
    steps = plan(spec(RESTART, SCALE), None)
    assert next_step(steps, [record(0, "Failed"), record(1, phase)]) == 1
    assert ladder_status(steps, [record(0, phase)]).state == "inFlight"


def test_next_step_stops_at_a_verified_success():
    steps = plan(spec(RESTART, SCALE), None)
    status = ladder_status(steps, [record(0, "Succeeded", "restart")])
    assert status.state == "recovered" and status.next_index is None


@pytest.mark.parametrize("last", ["Failed", "Inconclusive"])
def test_ladder_is_exhausted_after_the_last_step_fails(last):
    steps = plan(spec(RESTART, SCALE), None)
    status = ladder_status(steps, [record(0, "Failed"), record(1, last)])
    assert status.state == "exhausted" and status.next_index is None and last in status.reason


def test_a_plan_with_every_step_skipped_is_exhausted_before_it_starts():
    steps = plan(spec(ROLLBACK), "configChange")
    assert next_step(steps, []) is None
    assert ladder_status(steps, []).reason == "every step is skipped: nothing to run"


def test_the_ladder_never_goes_back_to_an_earlier_step():
    steps = plan(spec(RESTART, SCALE, {**RESTART, "name": "restart-again"}), None)
    # step 0 has no record but step 1 ran: climbing continues after 1, never back to 0.
    assert next_step(steps, [record(1, "Failed")]) == 2
