"""Events are posted as plain JSON: the same document the client's models would have sent."""

import contextvars
import threading
from datetime import UTC, datetime, timedelta

from kubernetes import client

from remediator.api.models import ObjectRef, RemediationStatus
from remediator.api.models import StepRecord
from remediator.core.durations import iso_time
from remediator.core.engine import engine, state
from remediator.records import events
from remediator.records.events import INSTANCE, event_body, event_name, with_micros
from remediator.records.logs import current_remediation

NOW = datetime(2026, 12, 1, 16, 5, tzinfo=UTC)


def test_an_event_posted_as_json_is_the_document_the_client_model_would_send():
    now = datetime(2026, 12, 1, 16, 5, tzinfo=UTC)
    regarding = {"api_version": "remediator.dev/v1alpha1", "kind": "Remediation", "name": "am-1",
                 "namespace": "shop", "uid": "u-1"}
    model = client.EventsV1Event(
        metadata=client.V1ObjectMeta(name=event_name("am-1", "k", "Planned"), namespace="shop"),
        event_time=with_micros(now), reporting_controller="remediator.dev/operator",
        reporting_instance=INSTANCE[:128], action="Remediate", reason="Planned", note="n" * 2000, type="Normal",
        regarding=client.V1ObjectReference(**regarding))
    expected = client.ApiClient().sanitize_for_serialization(model)
    body = event_body("shop", regarding, "Planned", "n" * 2000, "Normal", "k", now)

    assert body == {"apiVersion": "events.k8s.io/v1", "kind": "Event", **{
        k: v for k, v in expected.items() if k not in ("apiVersion", "kind")}, "note": "n" * 1024}


def test_a_target_without_a_namespace_is_regarded_without_one():
    body = event_body("default", {"api_version": "v1", "kind": "Node", "name": "n1", "namespace": None},
                      "RemediationActing", "x", "Normal", "k", datetime(2026, 12, 1, tzinfo=UTC))
    assert body["regarding"] == {"apiVersion": "v1", "kind": "Node", "name": "n1"}


def test_an_event_posted_by_the_pool_logs_under_the_remediation_whose_tick_asked_for_it(monkeypatch):
    named, done = [], threading.Event()
    monkeypatch.setattr(events, "post", lambda *a: (named.append(current_remediation.get()), done.set()))
    before = RemediationStatus(phase="Pending")
    after = before.model_copy(update={"phase": "Acting"})

    def tick():
        current_remediation.set("shop/am-1")
        events.record_transition(None, "shop", "am-1", "u-1", ObjectRef(kind="Deployment", namespace="shop",
                                                                         name="web"), before, after, NOW)

    contextvars.copy_context().run(tick)

    assert done.wait(5) and named == ["shop/am-1"]


def intent(status: RemediationStatus, index: int, at: datetime) -> RemediationStatus:
    record = StepRecord(index=index, name=f"s{index}", action="restartRollout", idempotency_key=f"am-1.{index}",
                        phase="Intended", started_at=iso_time(at))
    return state.note(engine.with_record(status, record), "Intended", f"step s{index}", at)


def posted_names(monkeypatch, *transitions) -> list[str]:
    posted = []
    monkeypatch.setattr(events, "post", lambda api, ns, regarding, reason, note, kind, key, now: posted.append(
        event_name(regarding["name"], key, reason)))
    for before, after in transitions:
        events.record_transition(None, "shop", "am-1", "u-1", TARGET, before, after, NOW)
    events.POSTERS.submit(lambda: None).result()
    return posted


TARGET = ObjectRef(kind="Deployment", namespace="shop", name="web")
PLANNED = state.transition(RemediationStatus(), "Planned", "runbook restart matched", NOW - timedelta(seconds=1))


def test_an_intent_told_again_posts_under_the_names_it_was_first_posted_under(monkeypatch):
    pending = RemediationStatus()
    planned = state.transition(pending, "Planned", "runbook restart matched", NOW)
    acting = intent(state.transition(planned, "Acting", "step s0", NOW, step=0), 0, NOW.replace(microsecond=5))
    first = posted_names(monkeypatch, (pending, acting))

    again = posted_names(monkeypatch, (events.before_step_write(acting), acting))

    assert sorted(again) == sorted(first) and len(first) == 4, "three entries and the target's Acting"


def test_an_intent_of_a_later_step_told_again_posts_no_target_event_as_the_first_telling_did_not(monkeypatch):
    acting = state.transition(PLANNED, "Acting", "step s0", NOW, step=0)
    failed_over = state.transition(acting.model_copy(update={"steps": []}), "Acting", "s0 refused; next step s1",
                                   NOW + timedelta(seconds=3), step=1)
    later = intent(failed_over, 1, NOW + timedelta(seconds=3))
    first = posted_names(monkeypatch, (acting, later))

    again = posted_names(monkeypatch, (events.before_step_write(later), later))

    assert sorted(again) == sorted(first) and not any(name.startswith("web.") for name in again)


def test_an_actions_outcome_told_again_posts_under_the_names_it_was_first_posted_under(monkeypatch):
    acting = intent(state.transition(PLANNED, "Acting", "step s0", NOW, step=0), 0, NOW)
    verifying = engine.action_done(acting, 0, "restarted", [], NOW + timedelta(seconds=2))
    first = posted_names(monkeypatch, (acting, verifying))

    again = posted_names(monkeypatch, (events.before_step_write(verifying), verifying))

    assert sorted(again) == sorted(first) and any(name.startswith("web.") for name in first), \
        "the Verifying entry and the target's RemediationVerifying, under the same names"


def test_a_step_past_its_outcomes_write_has_nothing_to_tell_again():
    acting = intent(state.transition(PLANNED, "Acting", "step s0", NOW, step=0), 0, NOW)
    verifying = engine.action_done(acting, 0, "restarted", [], NOW + timedelta(seconds=2))
    judged = engine.verification_judged(verifying, 0, "passed", ["rolled out"], [], NOW + timedelta(seconds=9),
                                        None)
    unstamped = acting.model_copy(update={"steps": [acting.steps[0].model_copy(update={"phase": "Applied"})]})
    assert events.before_step_write(judged) is None and events.before_step_write(unstamped) is None


def test_an_outcome_of_a_climbed_step_told_again_posts_the_targets_verifying_even_within_one_second(monkeypatch):
    acting = intent(state.transition(PLANNED, "Acting", "step s0", NOW, step=0), 0, NOW)
    verifying = engine.action_done(acting, 0, "restarted", [], NOW + timedelta(seconds=2))
    climbed_at = NOW + timedelta(seconds=9)
    climbed = intent(state.transition(verifying, "Acting", "s0 not verified; next step s1", climbed_at, step=1), 1,
                     climbed_at)
    verifying_again = engine.action_done(climbed, 1, "scaled", [], climbed_at)
    first = posted_names(monkeypatch, (climbed, verifying_again))

    again = posted_names(monkeypatch, (events.before_step_write(verifying_again), verifying_again))

    assert any(name.startswith("web.") for name in first)
    assert [name for name in again if name.startswith("web.")] == [name for name in first if name.startswith("web.")]
