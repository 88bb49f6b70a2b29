"""Rollout status of StatefulSets, DaemonSets and Argo Rollouts, as verification reads it (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from remediator.api.models import ObjectRef, RolloutCompleteCheck
from remediator.verification.observations import Observation, RolloutObservation, rollout_progress
from remediator.verification.verdicts import rollout_complete

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def rollout(kind="StatefulSet", **kw) -> RolloutObservation:
    return RolloutObservation(**{"kind": kind, "generation": 2, "observed_generation": 2, "desired": 3,
                                 "replicas": 3, "ready": 3, "available": 3, **kw})


def test_an_on_delete_statefulset_with_old_pods_is_not_complete_and_says_why():
    complete, message = rollout_progress(rollout(strategy="OnDelete", updated=1, current_revision="db-a",
                                                 update_revision="db-b"))
    assert not complete and "OnDelete" in message and "only when it is deleted" in message


def test_an_on_delete_daemonset_whose_pods_all_run_the_restored_revision_is_complete():
    assert rollout_progress(rollout("DaemonSet", strategy="OnDelete", updated=3))[0]


def test_a_partitioned_statefulset_is_complete_above_the_partition_and_says_what_is_not_checked():
    complete, message = rollout_progress(rollout(partition=2, updated=1, current_revision="db-a",
                                                 update_revision="db-b"))
    assert complete and "below ordinal 2 keep their revision and are not checked" in message
    assert not rollout_progress(rollout(partition=1, updated=1))[0]


def test_an_argo_rollout_is_complete_only_when_healthy_and_a_degraded_one_says_its_message():
    assert rollout_progress(rollout("Rollout", phase="Healthy", updated=3))[0]
    complete, message = rollout_progress(rollout("Rollout", phase="Degraded", message="RolloutAborted: aborted"))
    assert not complete and message.startswith("Degraded: RolloutAborted: aborted")
    assert not rollout_progress(rollout("Rollout", phase="Healthy", observed_generation=1))[0]


def test_the_verdict_of_an_argo_rollout_passes_on_healthy_and_stays_pending_while_progressing():
    target = ObjectRef(kind="Rollout", namespace="shop", name="web")
    seen = Observation(T0 + timedelta(seconds=5), target, True, rollout("Rollout", phase="Progressing"))
    assert rollout_complete(RolloutCompleteCheck(), seen, T0, timedelta(minutes=5), seen.at).state == "pending"
    healthy = Observation(T0 + timedelta(seconds=9), target, True, rollout("Rollout", phase="Healthy", updated=3))
    assert rollout_complete(RolloutCompleteCheck(), healthy, T0, timedelta(minutes=5), healthy.at).state == "passed"
