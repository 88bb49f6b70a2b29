"""The real reconcile.Loop, driven through whole lifecycles on an in-memory Store: no apiserver, no subprocess."""

from __future__ import annotations

import contextvars
import copy
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from prometheus_client import REGISTRY

from remediator.actions.base import ActionError
from remediator.api.models import Approval, ApprovalRule, ProbableCause, RemediationPolicySpec, RemediationSpec, \
    RemediationStatus, RunbookSpec
from remediator.controller import reconcile
from remediator.core.engine import engine, state
from remediator.core.match import reasons as match_reasons
from remediator.records import logs
from tests.unit.fake_store import FakeStore, loop_on
from tests.unit.test_core_engine import LADDER, SPEC, runbook

HIGH = runbook(("scale-out", "scale", "high"))  # scores 65: high


def approvals(timeout: str = "10m", channel: str | None = None) -> RemediationPolicySpec:
    return RemediationPolicySpec(approval=Approval(slack_channel=channel, rules=[
        ApprovalRule(level=level, approvers=1, timeout=timeout) for level in ("high", "critical")]))


def tick(loop: reconcile.Loop) -> float | None:
    return contextvars.copy_context().run(loop.tick)


def crash_at(monkeypatch, boundary: str) -> None:
    def hit(name: str) -> None:
        if name == boundary:
            raise SystemExit(f"killed at {name}")
    monkeypatch.setattr(reconcile.failpoints, "hit", hit)


def test_an_alert_is_planned_acted_on_verified_and_succeeds_through_the_real_loop(monkeypatch):
    store = FakeStore(SPEC, LADDER)
    loop = loop_on(store, monkeypatch)

    assert tick(loop) == engine.PROBE_EVERY  # plan + intent in one write, the action, its outcome
    assert store.status.phase == "Verifying" and engine.find_record(store.status, 0).phase == "Applied"
    assert [w.phase for w in store.writes] == ["Acting", "Verifying"]
    assert len(store.calls) == 1 and store.applied == [store.calls[0].key]
    assert tick(loop) == engine.PROBE_EVERY  # pods ready, but not yet for the 30 s window
    store.clock += timedelta(seconds=31)
    assert tick(loop) is None
    assert store.status.phase == "Succeeded", store.status.reason
    assert len(store.calls) == 1 and store.holder is None, "acted once; the claim released with the step"
    assert store.transitions[-1] == ("Verifying", "Succeeded")


def test_a_ticks_events_are_told_once_its_action_is_done_not_beside_it(monkeypatch):
    store = FakeStore(SPEC, LADDER)
    loop = loop_on(store, monkeypatch)
    told_when_acting = []
    act = store.act
    monkeypatch.setattr(store, "act", lambda *a: (told_when_acting.append(list(store.transitions)), act(*a))[1])

    tick(loop)

    assert told_when_acting == [[]], "nothing posted while the action's PATCH is on its way"
    assert store.transitions == [("Pending", "Acting"), ("Acting", "Verifying")]


def test_an_action_that_raises_still_tells_the_transition_its_intent_stored(monkeypatch):
    store = FakeStore(SPEC, LADDER)
    store.action_error = ActionError("ServiceUnavailable", "etcdserver: leader changed", status=503, retryable=True)
    loop = loop_on(store, monkeypatch)

    with pytest.raises(ActionError):
        tick(loop)

    assert store.status.phase == "Acting" and store.transitions == [("Pending", "Acting")]


def test_an_operator_resuming_an_action_the_last_one_died_in_tells_that_intents_events(monkeypatch):
    store = FakeStore(SPEC, LADDER)
    act, transition, killed = store.act, store.transition, []

    def dies(*_):
        killed.append(True)
        raise SystemExit("SIGKILL during the action")
    monkeypatch.setattr(store, "act", dies)
    monkeypatch.setattr(store, "transition", lambda *a: None if killed else transition(*a))  # no finally runs
    with pytest.raises(SystemExit):
        tick(loop_on(store, monkeypatch))
    assert store.transitions == [] and engine.find_record(store.status, 0).phase == "Intended"
    monkeypatch.setattr(store, "act", act)
    monkeypatch.setattr(store, "transition", transition)
    resumed = loop_on(store, monkeypatch)

    tick(resumed)
    tick(resumed)

    assert store.transitions[:2] == [("Pending", "Acting"), ("Acting", "Verifying")]
    assert [t for t in store.transitions if t[1] == "Acting"] == [("Pending", "Acting")], "told again once"


def test_an_operator_resuming_a_remediation_past_its_intent_tells_its_intent_nothing_again(monkeypatch):
    store = FakeStore(SPEC, LADDER)
    tick(loop_on(store, monkeypatch))
    told = list(store.transitions)
    resumed = loop_on(store, monkeypatch)

    tick(resumed)

    assert store.transitions[:len(told)] == told and ("Pending", "Acting") not in store.transitions[len(told):]


def test_an_operator_resuming_a_verification_tells_the_write_of_the_actions_outcome_again(monkeypatch):
    store = FakeStore(SPEC, LADDER)
    tick(loop_on(store, monkeypatch))
    assert store.status.phase == "Verifying" and store.transitions[-1][1] == "Verifying"
    store.transitions.clear()  # killed before its Events were posted

    tick(loop_on(store, monkeypatch))

    assert [t for t in store.transitions if t[1] == "Verifying" and t[0] != "Verifying"], \
        "the outcome's Events were lost for good"


def test_a_write_that_ends_the_remediation_is_told_at_once_not_held_for_the_end_of_the_tick(monkeypatch):
    store = FakeStore(SPEC, LADDER)
    store.runbook_body["spec"] = {**store.runbook_body["spec"], "steps": [{"name": "no-action"}]}
    told_at_the_failpoint = []
    monkeypatch.setattr(reconcile.failpoints, "hit", lambda name: told_at_the_failpoint.append(
        list(store.transitions)) if name == "after-plan" else None)

    tick(loop_on(store, monkeypatch))

    assert store.status.phase in ("Failed", "Escalated")
    assert told_at_the_failpoint == [[("Pending", store.status.phase)]], "a SIGKILL there would lose nothing"


def test_a_409_on_the_plan_write_rereads_at_once_and_writes_and_acts_only_once(monkeypatch):
    store = FakeStore(SPEC, LADDER)
    store.refuse_next_writes = 1
    loop = loop_on(store, monkeypatch)

    assert tick(loop) == 0, "another writer was first: decide again at once"
    assert store.writes == [] and store.calls == []
    tick(loop)
    assert [t.kind for t in store.status.timeline].count("Intended") == 1
    assert len(store.calls) == 1


def test_an_action_outcome_meeting_a_409_is_reapplied_on_the_fresh_object(monkeypatch):
    store = FakeStore(SPEC, LADDER)
    loop = loop_on(store, monkeypatch)
    # while the action runs, another writer (a vote, an annotation) updates the Remediation
    monkeypatch.setattr(reconcile.failpoints, "hit", lambda name: name == "after-action" and store.touch(
        metadata={"annotations": {"seen": "yes"}}))

    tick(loop)

    record = engine.find_record(store.status, 0)
    assert store.status.phase == "Verifying" and record.phase == "Applied" and record.result == "applied"
    assert [(e.kind, e.detail) for e in record.evidence] == [("change", "spec.replicas")]
    assert store.object["metadata"]["annotations"] == {"seen": "yes"}


def test_an_outcome_is_not_forced_onto_a_remediation_that_moved_on(monkeypatch):
    store = FakeStore(SPEC, LADDER)
    loop = loop_on(store, monkeypatch)

    def cancel(name: str) -> None:
        if name == "after-action":
            store.touch(status=state.transition(store.status, "Cancelled", "the alert resolved", store.clock).wire())
    monkeypatch.setattr(reconcile.failpoints, "hit", cancel)

    assert tick(loop) is None, "finished: cancelled meanwhile"
    assert store.status.phase == "Cancelled" and engine.find_record(store.status, 0).phase == "Intended"


@pytest.mark.parametrize("boundary, calls", [("after-intent", 1), ("after-action", 2)])
def test_a_crash_after_the_intent_write_replays_the_keyed_action_and_changes_the_target_once(
        monkeypatch, boundary, calls):
    store = FakeStore(SPEC, LADDER)
    crash_at(monkeypatch, boundary)
    with pytest.raises(SystemExit):
        tick(loop_on(store, monkeypatch))
    assert engine.find_record(store.status, 0).phase == "Intended"

    monkeypatch.setattr(reconcile.failpoints, "hit", lambda name: None)
    restarted = loop_on(store, monkeypatch)  # a new process: nothing remembered but the Remediation
    tick(restarted)

    assert len(store.calls) == calls and {c.key for c in store.calls} == {store.applied[0]}
    assert len(store.applied) == 1
    record = engine.find_record(store.status, 0)
    assert record.phase == "Applied"
    assert record.result == ("applied" if calls == 1 else "replayed: already applied under this key")


def test_waiting_for_an_approval_is_due_again_at_its_deadline_not_every_second(monkeypatch):
    store = FakeStore(SPEC, HIGH, policy=approvals("10m"))
    loop = loop_on(store, monkeypatch)

    assert tick(loop) == 600.0
    assert store.status.phase == "AwaitingApproval" and store.calls == []
    store.clock += timedelta(minutes=4)
    assert tick(loop) == 360.0
    assert store.reads["step_facts"] == 1, "waiting observes no guards"
    store.clock += timedelta(minutes=6)
    assert tick(loop) is None
    assert store.status.phase == "Expired" and store.calls == []


def test_an_approval_request_is_posted_to_slack_once_and_its_message_updated_when_decided(monkeypatch):
    store = FakeStore(SPEC, HIGH, policy=approvals("10m", channel="#ops"))
    store.slack_enabled = True
    loop = loop_on(store, monkeypatch)

    assert tick(loop) == 600.0, "the request is written, then posted in the same tick"
    assert store.status.approval.slack_ts and store.slack_posts == [store.status.approval.request_id]
    tick(loop)
    assert len(store.slack_posts) == 1
    store.touch(status=store.status.model_copy(update={"approval": store.status.approval.model_copy(
        update={"decision": "denied"})}).wire())
    assert tick(loop) is None
    assert store.status.phase == "Denied" and store.slack_updates == ["am-1: Denied"]


def test_slack_being_down_retries_the_post_after_the_backoff_not_at_once(monkeypatch):
    store = FakeStore(SPEC, HIGH, policy=approvals("10m", channel="#ops"))
    store.slack_enabled = store.slack_down = True
    loop = loop_on(store, monkeypatch)

    assert tick(loop) == engine.SLACK_RETRY
    assert store.status.phase == "AwaitingApproval" and not store.status.approval.slack_ts
    store.slack_down = False
    assert tick(loop) == engine.SLACK_RETRY, "backing off: nothing posted until the backoff is over"
    assert store.slack_posts == []
    monkeypatch.setattr(reconcile.time, "monotonic", lambda: 10**9)  # the backoff is over
    tick(loop)
    assert len(store.slack_posts) == 1 and store.status.approval.slack_ts


def test_an_action_still_in_progress_is_called_again_with_the_same_key_after_the_poll_interval(monkeypatch):
    store = FakeStore(SPEC, LADDER)
    store.pending_action = True
    loop = loop_on(store, monkeypatch)

    assert tick(loop) == engine.ACTION_POLL
    assert tick(loop) == engine.ACTION_POLL
    store.pending_action = False
    assert tick(loop) == engine.PROBE_EVERY
    assert len({c.key for c in store.calls}) == 1 and len(store.calls) == 3
    assert store.status.claim is not None and store.status.claim.holder == "uid-am-1"


def test_a_target_claimed_by_another_remediation_skips_the_new_step_and_runs_nothing(monkeypatch):
    store = FakeStore(SPEC, LADDER)
    store.holder = "uid-other"
    loop = loop_on(store, monkeypatch)

    assert tick(loop) is None
    assert store.status.phase == "Skipped" and "claimed by Remediation other" in store.status.reason
    assert store.calls == [] and store.status.steps == []


def test_a_refused_action_fails_the_step_with_the_apiservers_words_and_climbs_the_ladder(monkeypatch):
    store = FakeStore(SPEC, LADDER)
    store.action_error = ActionError("Forbidden", "deployments.apps is forbidden", status=403)
    loop = loop_on(store, monkeypatch)

    assert tick(loop) == 0, "the next step is due at once"
    assert engine.find_record(store.status, 0).phase == "Failed"
    assert store.status.phase == "Acting" and store.status.current_step == 1


def test_the_probable_cause_and_adaptive_history_are_read_only_when_planning(monkeypatch):
    adaptive = RunbookSpec.model_validate({**LADDER.wire(), "adaptive": True})
    store = FakeStore(SPEC, adaptive)
    loop = loop_on(store, monkeypatch)
    tick(loop)
    tick(loop)
    assert store.reads["probable_cause"] == 1 and store.reads["history"] == 1
    assert store.reads["step_facts"] == 1 and store.reads["runbook"] == 2


def test_a_planning_tick_reads_the_target_once_for_the_cause_the_step_facts_and_the_action(monkeypatch):
    store = FakeStore(SPEC, LADDER)
    tick(loop_on(store, monkeypatch))
    assert store.reads["target"] == 1
    assert store.given_reads == {"step_facts": [store.target_body], "probable_cause": [store.target_body]}
    assert [c.read for c in store.calls] == [store.target_body], "the action starts from the same read"


def test_the_step_facts_are_gathered_while_the_targets_read_is_on_its_way(monkeypatch):
    store = FakeStore(SPEC, LADDER)
    read_back, gathering = threading.Event(), []
    read, gather = store.target, store.step_facts

    def slow_read(ref):
        assert read_back.wait(5), "the step facts never started"
        return read(ref)

    def step_facts(*args):
        gathering.append(not read_back.is_set())
        read_back.set()
        return gather(*args)
    monkeypatch.setattr(store, "target", slow_read)
    monkeypatch.setattr(store, "step_facts", step_facts)

    tick(loop_on(store, monkeypatch))

    assert gathering == [True], "the dry run among them need not wait for the read"
    assert [c.read for c in store.calls] == [store.target_body], "the action starts from that read"


def test_a_tick_that_only_verifies_does_not_read_the_target(monkeypatch):
    store = FakeStore(SPEC, LADDER)
    loop = loop_on(store, monkeypatch)
    tick(loop)
    tick(loop)
    assert store.reads["target"] == 1 and len(store.calls) == 1


def carrying(store: FakeStore, text: str) -> FakeStore:
    store.object["metadata"]["annotations"] = {match_reasons.ANNOTATION: text}
    return store


def test_the_first_write_records_the_match_reasons_carried_from_the_creation(monkeypatch):
    store = carrying(FakeStore(SPEC, LADDER), '["Runbook shop/restart matches", "target is Deployment/shop/web"]')
    tick(loop_on(store, monkeypatch))
    assert [w.match_reasons for w in store.writes] == [["Runbook shop/restart matches",
                                                        "target is Deployment/shop/web"]] * 2


def test_a_remediation_ended_by_its_first_decision_still_records_why_it_was_made(monkeypatch):
    store = carrying(FakeStore(SPEC, None), '["Runbook shop/restart matches"]')  # the Runbook deleted meanwhile
    tick(loop_on(store, monkeypatch))
    assert store.status.phase == "Failed" and store.status.match_reasons == ["Runbook shop/restart matches"]


@pytest.mark.parametrize("annotated_at", ["creation", "verification"])
def test_an_annotation_nested_deeper_than_the_parser_goes_is_ignored_not_a_wedged_loop(monkeypatch, annotated_at):
    store = FakeStore(SPEC, LADDER)
    loop = loop_on(store, monkeypatch)
    if annotated_at == "verification":
        tick(loop)
    carrying(store, "[" * 5000)
    assert tick(loop) == engine.PROBE_EVERY and store.status.phase == "Verifying"
    assert store.status.match_reasons == []


def test_match_reasons_already_recorded_are_not_replaced_by_an_edited_annotation(monkeypatch):
    store = carrying(FakeStore(SPEC, LADDER, status=RemediationStatus(match_reasons=["as matched"])), '["edited"]')
    tick(loop_on(store, monkeypatch))
    assert store.status.match_reasons == ["as matched"]


def test_a_history_is_not_read_for_a_runbook_that_is_not_adaptive(monkeypatch):
    store = FakeStore(SPEC, LADDER)
    tick(loop_on(store, monkeypatch))
    assert store.reads["history"] == 0


def test_verification_is_due_no_later_than_the_steps_timeout(monkeypatch):
    short = RunbookSpec.model_validate({**LADDER.wire(), "steps": [
        {"name": "restart", "action": "restartRollout", "risk": "low", "timeout": "60s"}]})
    store = FakeStore(SPEC, short)
    store.ready = False
    loop = loop_on(store, monkeypatch)
    tick(loop)
    store.clock += timedelta(seconds=59, milliseconds=500)
    assert tick(loop) == 0.5
    store.clock += timedelta(seconds=1)
    assert tick(loop) is None and store.status.phase in ("Failed", "Escalated", "Inconclusive")


def test_a_finished_or_deleted_remediation_needs_no_further_tick(monkeypatch):
    store = FakeStore(SPEC, LADDER)
    loop = loop_on(store, monkeypatch)
    store.object = None
    assert tick(loop) is None and store.writes == []


@pytest.mark.parametrize("field, value", [("runbook", {"name": "ladder", "namespace": "team-a"}),
                                          ("target", {"kind": "Deployment", "namespace": "team-a", "name": "web"})])
def test_a_remediation_pointing_outside_its_namespace_is_refused_with_a_reason(monkeypatch, field, value):
    forged = RemediationSpec.model_validate({**SPEC.wire(), "runbook": {"name": "ladder", "namespace": "team-b"},
                                             "target": {"kind": "Deployment", "namespace": "team-b", "name": "web"},
                                             field: value})
    store = FakeStore(forged, LADDER, namespace="team-b")
    labels = {"reason": "cross-namespace-remediation"}
    before = REGISTRY.get_sample_value("remediator_refusals_total", labels) or 0.0

    assert tick(loop_on(store, monkeypatch)) is None

    assert store.status.phase == "Failed"
    assert f"spec.{field}.namespace is 'team-a'" in store.status.reason
    assert "lives in namespace 'team-b'" in store.status.reason
    assert REGISTRY.get_sample_value("remediator_refusals_total", labels) == before + 1
    assert store.reads["runbook"] == store.reads["policy"] == 0 and store.calls == [], "nothing read for it"
    assert store.transitions == [], "no Event names the other namespace's objects"


def test_a_runbook_the_models_reject_ends_the_remediation_with_a_reason_instead_of_failing_every_tick(monkeypatch):
    # e.g. stored under an older CRD schema: the apiserver does not revalidate it, the cache keeps it for the loop
    store = FakeStore(SPEC, LADDER)
    store.runbook_body["spec"] = {**store.runbook_body["spec"], "steps": [{"name": "no-action"}]}
    loop = loop_on(store, monkeypatch)
    assert tick(loop) is None
    assert store.status.phase in ("Failed", "Escalated") and "invalid" in store.status.reason, store.status.reason


def watched(store: FakeStore) -> dict:
    """The Remediation as the operator's watch would deliver it: a copy of what is stored now."""
    return copy.deepcopy(store.object)


def test_a_watched_remediation_is_ticked_without_reading_it_from_the_apiserver(monkeypatch):
    store = FakeStore(SPEC, LADDER)
    loop = loop_on(store, monkeypatch)
    created = watched(store)

    assert contextvars.copy_context().run(loop.tick, created) == engine.PROBE_EVERY
    assert store.reads["remediation"] == 0 and [w.phase for w in store.writes] == ["Acting", "Verifying"]
    assert loop.wrote("2") and loop.wrote("3") and not loop.wrote("1"), "its own writes' echoes are known"
    # The watch delivers our own writes late: the older copy must not undo what this Loop wrote since.
    assert contextvars.copy_context().run(loop.tick, created) == engine.PROBE_EVERY
    store.clock += timedelta(seconds=31)
    assert contextvars.copy_context().run(loop.tick, created) is None
    assert store.status.phase == "Succeeded" and store.reads["remediation"] == 0
    assert len(store.calls) == 1, "acted once"


def test_a_newer_watched_copy_from_another_writer_is_what_the_tick_decides_on(monkeypatch):
    store = FakeStore(SPEC, LADDER)
    loop = loop_on(store, monkeypatch)
    contextvars.copy_context().run(loop.tick, watched(store))
    store.touch(status={**store.object["status"], "signalResolvedAt": "2026-11-25T12:00:05Z"})  # e.g. ingest

    contextvars.copy_context().run(loop.tick, watched(store))
    assert store.reads["remediation"] == 0
    assert store.writes[-1].signal_resolved_at == "2026-11-25T12:00:05Z", "written on top of the newer copy"


def test_a_409_makes_the_next_tick_read_the_remediation_from_the_apiserver(monkeypatch):
    store = FakeStore(SPEC, LADDER)
    loop = loop_on(store, monkeypatch)
    stale = watched(store)
    store.touch()  # another writer, not yet delivered by the watch

    assert contextvars.copy_context().run(loop.tick, stale) == 0, "refused (409): decide again at once"
    assert store.writes == [] and store.reads["remediation"] == 0
    assert contextvars.copy_context().run(loop.tick, stale) == engine.PROBE_EVERY
    assert store.reads["remediation"] == 1 and len(store.calls) == 1


class Beside:
    """Two store calls that each wait (briefly) for the other to have started: True when they overlapped."""

    def __init__(self):
        self.started = {"first": threading.Event(), "second": threading.Event()}
        self.overlapped: list[bool] = []

    def wrap(self, call, me: str, other: str):
        def waiting(*args, **kwargs):
            self.started[me].set()
            self.overlapped.append(self.started[other].wait(timeout=1.0))
            return call(*args, **kwargs)
        return waiting


def test_the_cause_is_looked_up_beside_the_step_facts_when_no_step_depends_on_it(monkeypatch):
    store = FakeStore(SPEC, LADDER)
    beside = Beside()
    monkeypatch.setattr(store, "probable_cause", beside.wrap(
        lambda *a: ProbableCause(kind="rollout", summary="web rolled out"), "first", "second"))
    monkeypatch.setattr(store, "step_facts", beside.wrap(store.step_facts, "second", "first"))

    tick(loop_on(store, monkeypatch))

    assert beside.overlapped == [True, True]
    assert store.writes[0].probable_cause.kind == "rollout", "the cause found beside is persisted with the plan"


def test_the_claim_is_taken_beside_the_write_of_the_intent_and_the_action_waits_for_both(monkeypatch):
    store = FakeStore(SPEC, LADDER)
    beside, order = Beside(), []
    monkeypatch.setattr(store, "claim", beside.wrap(store.claim, "first", "second"))
    monkeypatch.setattr(store, "write_status", beside.wrap(store.write_status, "second", "first"))
    real_act = store.act
    monkeypatch.setattr(store, "act", lambda *a: order.append((store.holder, len(store.writes))) or real_act(*a))

    tick(loop_on(store, monkeypatch))

    assert beside.overlapped[:2] == [True, True]
    assert order == [(f"uid-{store.name}", 1)], "acted once, with the claim held and the intent stored"


def claims_in_order(monkeypatch):
    """The claims' pool with one worker: once a no-op submitted after them has run, every claim taken has too."""
    pool = ThreadPoolExecutor(max_workers=1)
    monkeypatch.setattr(reconcile, "CLAIMS", pool)
    return lambda: pool.submit(lambda: None).result()


def test_a_claim_taken_beside_an_intent_write_that_failed_is_given_back(monkeypatch):
    store = FakeStore(SPEC, LADDER)
    claimed = claims_in_order(monkeypatch)
    monkeypatch.setattr(store, "write_status", lambda body: (_ for _ in ()).throw(RuntimeError("500 after retries")))
    with pytest.raises(RuntimeError):
        tick(loop_on(store, monkeypatch))
    claimed()
    assert store.holder is None and store.calls == []


def test_a_claim_left_by_a_crash_before_the_intent_write_is_released_when_the_replan_waits_for_approval(monkeypatch):
    store = FakeStore(SPEC, LADDER, policy=every_level_needs_approval())
    store.holder = f"uid-{store.name}"  # taken beside the intent write, then the operator was killed
    tick(loop_on(store, monkeypatch))
    assert store.status.phase == "AwaitingApproval" and store.holder is None


def test_a_claim_held_before_a_refused_intent_write_is_kept(monkeypatch):
    store = FakeStore(SPEC, LADDER)
    store.holder = f"uid-{store.name}"  # this Remediation's, from an earlier tick
    store.refuse_next_writes = 1
    tick(loop_on(store, monkeypatch))
    assert store.holder == f"uid-{store.name}"


def test_a_runbook_whose_steps_depend_on_the_cause_reads_the_step_facts_with_the_cause_known(monkeypatch):
    when = RunbookSpec.model_validate({**LADDER.wire(), "steps": [
        {"name": "rollback", "action": "rollback", "risk": "low", "when": {"causeKinds": ["rollout"]}},
        {"name": "restart", "action": "restartRollout", "risk": "low"}]})
    store = FakeStore(SPEC, when)
    monkeypatch.setattr(store, "probable_cause", lambda *a: ProbableCause(kind="rollout", summary="rolled out"))
    seen = []
    monkeypatch.setattr(store, "step_facts", lambda name, spec, status, *a: seen.append(status.probable_cause)
                        or store.facts)

    tick(loop_on(store, monkeypatch))

    assert [c.kind for c in seen] == ["rollout"]
    assert store.calls[0].action == "rollback"


def test_a_line_logged_by_a_lookup_beside_the_step_facts_names_the_remediation(monkeypatch):
    store = FakeStore(SPEC, LADDER)
    named = []
    monkeypatch.setattr(store, "probable_cause", lambda *a: named.append(logs.current_remediation.get()))

    tick(loop_on(store, monkeypatch))

    assert named == ["shop/am-1"]


def every_level_needs_approval() -> RemediationPolicySpec:
    return RemediationPolicySpec(approval=Approval(rules=[
        ApprovalRule(level=level, approvers=1, timeout="2h") for level in ("low", "medium", "high", "critical")]))


def test_a_refused_intent_write_leaves_no_claim_for_a_remediation_that_then_waits_for_approval(monkeypatch):
    store = FakeStore(SPEC, LADDER)
    store.refuse_next_writes = 1  # another writer first (a vote, a resolved signal)
    claimed = claims_in_order(monkeypatch)
    loop = loop_on(store, monkeypatch)
    assert tick(loop) == 0 and store.calls == []
    claimed()
    assert store.holder is None, "the claim taken beside the refused write is given back"
    store.policy_spec = every_level_needs_approval()  # tightened meanwhile

    tick(loop)

    assert store.status.phase == "AwaitingApproval"
    assert store.holder is None, "a Remediation waiting for approval holds no claim: others may act on the target"
