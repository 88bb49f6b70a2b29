"""The per-target claim, decided from the Lease as read: who may act on a target, and why not."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from remediator.api.models import RemediationStatus
from remediator.core.plan import claims
from remediator.core.engine import engine
from tests.unit.test_core_engine import NOW, SPEC, facts

DURATION = timedelta(minutes=6)


def decide(lease, me="uid-b", holder_live=True, now=NOW):
    return claims.decide(lease, me, "am-b", holder_live, lease_name="remediator-target-deployment-web",
                         namespace="shop", target="Deployment/web", now=now, duration=DURATION)


def held_by_a(renewed=NOW - timedelta(minutes=1), duration=DURATION):
    return claims.LeaseView(holder="uid-a", holder_name="am-a", renewed_at=renewed, duration=duration)


def test_an_unclaimed_target_is_claimed_by_creating_its_lease():
    d = decide(None)
    assert d.granted and d.op == "create"
    assert d.holder == "uid-b" and d.expires_at == NOW + DURATION


def test_a_claim_held_by_another_open_remediation_is_refused_with_the_holders_name_and_expiry():
    d = decide(held_by_a())
    assert not d.granted and d.op == "held"
    assert "am-a" in d.reason and "uid-a" in d.reason and "2026-11-25T12:05:00Z" in d.reason


def test_our_own_claim_is_renewed_after_a_restart():
    d = decide(dataclasses.replace(held_by_a(), holder="uid-b"))
    assert d.granted and d.op == "renew" and d.expires_at == NOW + DURATION


def test_an_expired_claim_is_taken_over_when_its_operator_died():
    d = decide(held_by_a(renewed=NOW - DURATION - timedelta(seconds=1)))
    assert d.granted and d.op == "takeover" and "expired" in d.reason and d.transitions == 1


def test_a_claim_whose_holder_finished_is_taken_over_before_it_expires():
    d = decide(held_by_a(), holder_live=False)
    assert d.granted and d.op == "takeover" and "finished or gone" in d.reason


def test_the_lease_written_names_the_holder_and_carries_the_resource_version_read():
    body = claims.lease_body(decide(None), "Deployment/web", "42")
    assert body["metadata"]["resourceVersion"] == "42"
    assert body["metadata"]["annotations"][claims.HOLDER_ANNOTATION] == "am-b"
    assert body["spec"]["holderIdentity"] == "uid-b" and body["spec"]["leaseDurationSeconds"] == 360
    view = claims.lease_view(body)
    assert view.holder == "uid-b" and view.expires_at == NOW + DURATION


def test_lease_names_stay_valid_for_long_target_names_and_differ_per_target():
    long_a, long_b = claims.lease_name("Deployment", "x" * 250 + "a"), claims.lease_name("Deployment", "x" * 250 + "b")
    assert len(long_a) <= 63 and long_a != long_b and long_a.startswith("remediator-target-deployment-")
    assert claims.lease_name("StatefulSet", "db") == "remediator-target-statefulset-db"


def test_a_held_claim_blocks_a_new_intent_unrun_and_the_status_names_the_holder():
    intent = engine.decide("am-b", SPEC, RemediationStatus(), facts())
    assert isinstance(intent.effect, engine.Act) and intent.effect.fresh
    d = engine.outcome(SPEC, intent.status, intent.effect, engine.Acted(claim=decide(held_by_a())), facts())
    assert d.effect is None and d.status.phase == "Skipped" and d.status.claim is None
    assert d.status.steps == [], "no step ran"
    assert "claimed by Remediation am-a" in d.status.reason


def test_a_held_claim_keeps_a_replayed_intent_waiting_for_it():
    intent = engine.decide("am-b", SPEC, RemediationStatus(), facts())
    replay = engine.decide("am-b", SPEC, intent.status, facts())
    d = engine.outcome(SPEC, intent.status, replay.effect, engine.Acted(claim=decide(held_by_a())), facts())
    assert not d.changed and d.requeue_after == engine.CLAIM_RETRY


def test_a_granted_claim_is_recorded_with_the_actions_outcome_and_dropped_when_the_step_ends():
    intent = engine.decide("am-b", SPEC, RemediationStatus(), facts())
    d = engine.outcome(SPEC, intent.status, intent.effect, engine.Acted(claim=decide(None)), facts())
    assert d.status.phase == "Acting" and d.changed and d.requeue_after == engine.ACTION_POLL  # in progress
    assert d.status.claim is not None and d.status.claim.holder == "uid-b"
    assert claims.released(d.status) == d.status  # Acting: still held
    done = engine.action_done(d.status, 0, "restarted", [], NOW)
    assert claims.released(done).claim is not None  # Verifying: still held
    finished = done.model_copy(update={"phase": "Succeeded"})
    assert claims.released(finished).claim is None
    assert not claims.step_over(d.status, done) and claims.step_over(done, claims.released(finished))
    assert claims.step_over(done.model_copy(update={"claim": None}), claims.released(finished)), \
        "released by the phase, even when the claim's record was lost"


def test_lease_times_are_written_as_microtime():
    assert claims.micro_time(datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)) == "2026-01-02T03:04:05.000006Z"
    assert claims.micro_time(datetime(2026, 1, 2, 3, 4, tzinfo=UTC)) == "2026-01-02T03:04:00.000000Z", \
        "a whole-minute instant keeps its six digits (an Event's eventTime is refused without them)"


def test_a_lease_is_owned_by_its_holder_so_deleting_the_remediation_mid_step_deletes_it():
    [owner] = claims.lease_body(decide(None), "Deployment/web", None)["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("Remediation", "am-b", "uid-b")


def test_a_remediation_that_ends_without_acting_releases_a_claim_it_may_have_taken_without_a_record():
    planned = RemediationStatus.model_validate({"phase": "Planned"})
    assert claims.step_over(planned, planned.model_copy(update={"phase": "Cancelled"}))
    assert not claims.step_over(planned, planned.model_copy(update={"phase": "AwaitingApproval"}))
