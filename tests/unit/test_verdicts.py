"""Verdicts from hand-made observations: pending, passed, failed or inconclusive, with reasons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from remediator.api.models import MAX_READING_PODS, MAX_READINGS, ObjectRef, StepRecord, Verify
from remediator.verification.observations import (
    ConditionObservation,
    Observation,
    PodObservation,
    RolloutObservation,
    failing_reasons,
    rollout_progress,
)
from remediator.verification.readings import fold_pods, ready_since
from remediator.verification.verdicts import Verdict, verdict
from remediator.verification.verdicts import judge as judge_from_record

START = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
TIMEOUT = timedelta(minutes=5)
DEPLOYMENT = ObjectRef(kind="Deployment", namespace="shop", name="web")


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


def rollout(
    updated: int = 3,
    available: int = 3,
    desired: int = 3,
    replicas: int | None = None,
    generation: int = 2,
    observed: int = 2,
    conditions: tuple = (),
) -> RolloutObservation:
    return RolloutObservation(
        kind="Deployment",
        generation=generation,
        observed_generation=observed,
        desired=desired,
        replicas=updated if replicas is None else replicas,
        updated=updated,
        ready=available,
        available=available,
        unavailable=desired - available,
        conditions=conditions,
    )


def pod(
    name: str = "web-1", ready: bool = True, restarts: int = 0, uid: str | None = None, **kw
) -> PodObservation:
    return PodObservation(name=name, uid=uid or f"uid-{name}", ready=ready, restarts=restarts, **kw)


def healthy_pods(restarts: int = 0) -> tuple[PodObservation, ...]:
    return tuple(pod(f"web-{i}", restarts=restarts) for i in range(3))


def seen(
    seconds: float,
    r: RolloutObservation | None = None,
    pods: tuple = (),
    exists: bool = True,
    target: ObjectRef = DEPLOYMENT,
) -> Observation:
    return Observation(at=at(seconds), target=target, exists=exists, rollout=r, pods=pods)


def judge(
    verify: dict,
    observations: list[Observation],
    now: float,
    external: dict | None = None,
    timeout: timedelta = TIMEOUT,
) -> Verdict:
    return verdict(Verify.model_validate(verify), observations, START, timeout, at(now), external)


ROLLOUT = {"rolloutComplete": {}}
PODS_READY = {"podsReady": {"window": "1m"}}
DEADLINE = ConditionObservation(
    "Progressing",
    "False",
    "ProgressDeadlineExceeded",
    'ReplicaSet "web-2" has timed out progressing.',
    updated_at=at(30),
)


# ---------------------------------------------------------------- rolloutComplete


def test_rollout_complete_passes_with_all_replicas_updated_and_available():
    v = judge(ROLLOUT, [seen(5, rollout(updated=1, available=2)), seen(20, rollout())], now=20)
    assert v.state == "passed"
    assert v.reasons == ["rolloutComplete: successfully rolled out: 3/3 updated and available"]
    assert v.evidence[0].kind == "rollout" and v.evidence[0].value == "3 updated, 3 available of 3"
    assert v.evidence[0].at == "2025-01-01T12:00:20Z"


@pytest.mark.parametrize(
    ("r", "why"),
    [
        (rollout(observed=1), "waiting for the Deployment spec update to be observed"),
        (rollout(updated=2), "2 out of 3 new replicas have been updated"),
        (rollout(replicas=4), "1 old replicas are pending termination"),
        (rollout(available=2), "2 of 3 updated replicas are available"),
    ],
)
def test_rollout_complete_waits_as_kubectl_rollout_status_does(r, why):
    v = judge(ROLLOUT, [seen(10, r)], now=10)
    assert v.state == "pending" and v.reasons == [f"rolloutComplete: {why}"]


def test_observations_from_before_the_step_are_not_evidence():
    before = Observation(at=START - timedelta(seconds=1), target=DEPLOYMENT, exists=True, rollout=rollout())
    assert judge(ROLLOUT, [before], now=10).state == "pending"
    assert judge(ROLLOUT, [before], now=300).state == "inconclusive"
    assert judge(ROLLOUT, [], now=300).reasons == ["rolloutComplete: no observation within 5m"]


def test_a_fresh_progress_deadline_fails_at_once():
    v = judge(ROLLOUT, [seen(40, rollout(updated=1, available=2, conditions=(DEADLINE,)))], now=40)
    assert v.state == "failed"
    assert v.reasons == [
        'rolloutComplete: ProgressDeadlineExceeded: ReplicaSet "web-2" has timed out progressing.'
    ]


def test_a_progress_deadline_from_before_the_step_waits_for_the_timeout_then_fails():
    stale = ConditionObservation(
        "Progressing", "False", "ProgressDeadlineExceeded", "old", updated_at=at(-60)
    )
    stuck = rollout(updated=1, available=2, conditions=(stale,))
    assert judge(ROLLOUT, [seen(10, stuck)], now=10).state == "pending"
    v = judge(ROLLOUT, [seen(10, stuck), seen(299, stuck)], now=300)
    assert v.state == "failed"
    assert v.reasons[:2] == [
        "rolloutComplete: not complete after 5m: 1 out of 3 new replicas have been updated",
        "rolloutComplete: ProgressDeadlineExceeded: old",
    ]


def test_timeout_with_crashlooping_pods_fails_with_them_as_evidence():
    crashing = pod(
        "web-new",
        ready=False,
        restarts=5,
        waiting_reasons=("CrashLoopBackOff",),
        last_terminated_reasons=("Error",),
    )
    v = judge(ROLLOUT, [seen(290, rollout(updated=1, available=2), (*healthy_pods()[:2], crashing))], now=300)
    assert v.state == "failed"
    assert "rolloutComplete: pod web-new: CrashLoopBackOff" in v.reasons
    assert [(e.kind, e.value) for e in v.evidence][1:] == [("pod", "CrashLoopBackOff")]


def test_timeout_without_evidence_of_failure_is_inconclusive():
    v = judge(ROLLOUT, [seen(290, rollout(updated=2))], now=300)
    assert v.state == "inconclusive"
    assert v.reasons == [
        ("rolloutComplete: not complete after 5m: 2 out of 3 new replicas have been updated; no failure seen")
    ]


def test_the_checks_own_timeout_wins_over_the_steps():
    v = judge({"rolloutComplete": {"timeout": "1m"}}, [seen(50, rollout(updated=2))], now=61)
    assert v.state == "inconclusive" and "after 1m" in v.reasons[0]


def test_a_target_that_is_gone_is_inconclusive():
    v = judge({**ROLLOUT, **PODS_READY}, [seen(5, rollout()), seen(10, exists=False)], now=10)
    assert v.state == "inconclusive"
    assert "rolloutComplete: Deployment web is gone" in v.reasons
    assert v.evidence[0].detail == "Deployment web not found"


def test_a_target_that_is_gone_is_inconclusive_even_while_promql_is_pending():
    v = judge({**ROLLOUT, "promql": {"query": "up", "threshold": 1}}, [seen(10, exists=False)], now=10)
    assert v.state == "inconclusive"


def test_a_pod_has_no_rollout_to_wait_for():
    target = ObjectRef(kind="Pod", namespace="shop", name="web-1")
    v = judge(ROLLOUT, [seen(10, None, (pod(),), target=target)], now=10)
    assert v.state == "inconclusive" and v.reasons == ["rolloutComplete: Pod has no rollout to wait for"]


# ---------------------------------------------------------------- podsReady


def test_pods_ready_passes_once_observations_span_the_window():
    stable = [seen(s, rollout(), healthy_pods(restarts=1)) for s in (10, 40, 70)]
    v = judge(PODS_READY, stable, now=70)
    assert v.state == "passed"
    assert v.reasons == ["podsReady: 3 pods Ready, restarts unchanged for 1m (window 1m)"]
    assert v.evidence[0].value == "web-0=1, web-1=1, web-2=1"


def test_pods_ready_waits_while_the_window_is_not_spanned():
    v = judge(PODS_READY, [seen(10, rollout(), healthy_pods()), seen(40, rollout(), healthy_pods())], now=40)
    assert v.state == "pending" and v.reasons == ["podsReady: Ready and stable for 30s of 1m"]


def test_a_restart_inside_the_window_starts_it_again():
    observations = [
        seen(10, rollout(), healthy_pods(0)),
        seen(40, rollout(), healthy_pods(1)),
        seen(80, rollout(), healthy_pods(1)),
    ]
    kept: list = []
    for o in observations:
        kept = fold_pods(kept, o)
    assert ready_since(kept, observations[-1]) == at(40)
    assert judge(PODS_READY, observations, now=80).state == "pending"
    assert (
        judge(PODS_READY, [*observations, seen(100, rollout(), healthy_pods(1))], now=100).state == "passed"
    )


def test_a_replaced_pod_starts_the_window_again():
    replaced = (*healthy_pods()[:2], pod("web-2", uid="uid-new"))
    observations = [
        seen(0, rollout(), healthy_pods()),
        seen(50, rollout(), replaced),
        seen(70, rollout(), replaced),
    ]
    assert judge(PODS_READY, observations, now=70).state == "pending"


def test_a_pod_not_ready_breaks_the_streak():
    flapping = (*healthy_pods()[:2], pod("web-2", ready=False))
    observations = [
        seen(0, rollout(), healthy_pods()),
        seen(30, rollout(), flapping),
        seen(61, rollout(), healthy_pods()),
    ]
    v = judge(PODS_READY, observations, now=61)
    assert v.state == "pending" and v.reasons == ["podsReady: Ready and stable for 0s of 1m"]


def test_no_pods_is_no_evidence():
    observations = [seen(s, rollout(updated=0, available=0, desired=0), ()) for s in (0, 100, 299)]
    v = judge(PODS_READY, observations, now=300)
    assert v.state == "inconclusive" and v.reasons == [
        "podsReady: not stable after 5m: no pods; no failure seen"
    ]


def test_timeout_with_rising_restarts_fails():
    observations = [
        seen(0, rollout(), healthy_pods(0)),
        seen(100, rollout(), healthy_pods(2)),
        seen(260, rollout(), healthy_pods(4)),
    ]
    v = judge({"podsReady": {"window": "3m"}}, observations, now=300)
    assert v.state == "failed"
    assert "podsReady: pod web-0 restarted 4 times during the step" in v.reasons


def test_timeout_with_a_not_ready_pod_fails_and_names_why():
    oom = pod(
        "web-2",
        ready=False,
        restarts=3,
        waiting_reasons=("CrashLoopBackOff",),
        last_terminated_reasons=("OOMKilled",),
        oom_killed_containers=("app",),
    )
    v = judge(
        PODS_READY,
        [seen(10, rollout(), (*healthy_pods()[:2], oom)), seen(299, rollout(), (*healthy_pods()[:2], oom))],
        now=300,
    )
    assert v.state == "failed"
    assert v.reasons == [
        "podsReady: not stable after 5m",
        "podsReady: pod web-2: CrashLoopBackOff, OOMKilled",
    ]


def test_timeout_with_ready_pods_but_a_short_span_is_inconclusive():
    v = judge(
        {"podsReady": {"window": "10m"}},
        [seen(10, rollout(), healthy_pods()), seen(290, rollout(), healthy_pods())],
        now=300,
    )
    assert v.state == "inconclusive"
    assert v.reasons == ["podsReady: not stable after 5m: Ready and stable for 4m40s of 10m; no failure seen"]


# ---------------------------------------------------------------- external checks and combinations


def test_promql_without_a_result_is_pending_then_inconclusive():
    verify = {"promql": {"query": "rate(errors[5m])", "threshold": 0.01}}
    observations = [seen(10, rollout(), healthy_pods())]
    assert judge(verify, observations, now=10).state == "pending"
    v = judge(verify, observations, now=300)
    assert v.state == "inconclusive" and v.reasons == ["promql: no result within 5m"]


def test_external_results_are_combined_with_the_others():
    verify = {**ROLLOUT, "sloRecovered": {"slo": "checkout"}}
    ok = [seen(10, rollout())]
    passed = Verdict("passed", ["burn rate 0.4 < 1 for 2m"])
    assert judge(verify, ok, now=10, external={"sloRecovered": passed}).state == "passed"
    failed = Verdict("failed", ["still burning"])
    v = judge(verify, ok, now=10, external={"sloRecovered": failed})
    assert v.state == "failed" and v.reasons == [
        ("rolloutComplete: successfully rolled out: 3/3 updated and available"),
        "sloRecovered: still burning",
    ]


def test_one_pending_check_holds_the_step_in_pending():
    v = judge({**ROLLOUT, **PODS_READY}, [seen(10, rollout(), healthy_pods())], now=10)
    assert v.state == "pending"


def test_failed_wins_over_pending():
    v = judge(
        {**ROLLOUT, **PODS_READY},
        [seen(40, rollout(updated=1, available=2, conditions=(DEADLINE,)), healthy_pods())],
        now=40,
    )
    assert v.state == "failed"


# ---------------------------------------------------------------- observations


def test_statefulset_progress_follows_revisions_and_partitions():
    base = {
        "kind": "StatefulSet",
        "generation": 1,
        "observed_generation": 1,
        "desired": 3,
        "ready": 3,
        "updated": 3,
    }
    assert rollout_progress(RolloutObservation(**base, current_revision="a", update_revision="b")) == (
        False,
        "3 of 3 pods are at revision b",
    )
    assert rollout_progress(RolloutObservation(**base, current_revision="b", update_revision="b"))[0]
    assert rollout_progress(RolloutObservation(**{**base, "ready": 2}))[1] == "2 of 3 pods are ready"
    partitioned = RolloutObservation(
        **{**base, "updated": 1}, partition=2, current_revision="a", update_revision="b"
    )
    assert rollout_progress(partitioned)[0]


def test_daemonset_progress_counts_nodes():
    base = {"kind": "DaemonSet", "generation": 1, "observed_generation": 1, "desired": 3}
    assert (
        rollout_progress(RolloutObservation(**base, updated=2, available=3))[1]
        == "2 out of 3 new pods have been updated"
    )
    assert (
        rollout_progress(RolloutObservation(**base, updated=3, available=2))[1]
        == "2 of 3 updated pods are available"
    )
    assert rollout_progress(RolloutObservation(**base, updated=3, available=3))[0]


@pytest.mark.parametrize(
    ("p", "reasons"),
    [
        (pod(ready=True, last_terminated_reasons=("OOMKilled",)), []),
        (pod(ready=False, phase="Pending"), []),  # still starting: not a failure yet
        (pod(ready=False, phase="Pending", waiting_reasons=("ImagePullBackOff",)), ["ImagePullBackOff"]),
        (pod(ready=False, phase="Pending", waiting_reasons=("ContainerCreating",)), []),
        (pod(ready=False), ["NotReady"]),
        (pod(ready=False, phase="Failed"), ["Failed"]),
        (
            pod(ready=False, waiting_reasons=("CrashLoopBackOff",), last_terminated_reasons=("OOMKilled",)),
            ["CrashLoopBackOff", "OOMKilled"],
        ),
    ],
)
def test_failing_reasons(p, reasons):
    assert failing_reasons(p) == reasons


# ---------------------------------------------------------------- no check declared: a default that is evidence


def test_a_step_without_checks_does_not_pass_just_because_the_workload_exists():
    v = judge({}, [seen(5, rollout(updated=1, available=1), pods=(pod(ready=False),))], now=5)
    assert v.state == "pending", v.reasons


def test_a_step_without_checks_passes_once_rolled_out_and_ready_for_the_default_window():
    complete = [seen(t, rollout(), pods=healthy_pods()) for t in (5, 20, 35)]
    early = judge({}, complete[:2], now=20)
    assert early.state == "pending" and any("podsReady (default)" in r for r in early.reasons), early.reasons
    v = judge({}, complete, now=35)
    assert v.state == "passed", v.reasons
    assert any(r.startswith("rolloutComplete (default): successfully rolled out") for r in v.reasons)
    assert any(r.startswith("podsReady (default): 3 pods Ready") for r in v.reasons)


def test_a_step_without_checks_fails_when_its_pods_keep_failing_at_the_timeout():
    crashing = (pod("web-1", ready=False, phase="Running", waiting_reasons=("CrashLoopBackOff",)),)
    v = judge({}, [seen(5, rollout(available=2), pods=crashing), seen(301, rollout(available=2), pods=crashing)],
              now=301)
    assert v.state == "failed", v.reasons


def test_a_pod_step_without_checks_needs_the_pod_ready_for_the_default_window():
    target = ObjectRef(kind="Pod", namespace="shop", name="web-1")
    assert judge({}, [seen(5, pods=(pod(),), target=target)], now=5).state == "pending"
    v = judge({}, [seen(t, pods=(pod(),), target=target) for t in (5, 36)], now=36)
    assert v.state == "passed" and v.reasons[0].startswith("podsReady (default): 1 pods Ready"), v.reasons


# ---------------------------------------------------------------- readings kept in the step record


def record_after(observations: list[Observation]) -> StepRecord:
    """The step record after a loop folded `observations` tick by tick, as stored and read back (a restart)."""
    record = StepRecord(index=0, name="s", action="rollback", idempotency_key="k", phase="Applied")
    for o in observations:
        record = StepRecord.model_validate(record.model_copy(update={"readings": fold_pods(record.readings, o)})
                                           .wire())
    return record


def judge_after_restart(before: list[Observation], seen_now: Observation, now: float) -> Verdict:
    """A new operator: nothing in memory but the stored record, one fresh observation."""
    kept = fold_pods(record_after(before).readings, seen_now)
    return judge_from_record(Verify.model_validate(PODS_READY), seen_now, kept, START, TIMEOUT, at(now))


def test_a_window_begun_before_a_restart_is_judged_from_its_recorded_start():
    before = [seen(t, rollout(), healthy_pods()) for t in (5, 10, 20, 45)]
    assert judge_after_restart(before, seen(55, rollout(), healthy_pods()), 55).state == "pending"
    v = judge_after_restart(before, seen(66, rollout(), healthy_pods()), 66)
    assert v.state == "passed", v.reasons
    assert v.reasons == ["podsReady: 3 pods Ready, restarts unchanged for 1m1s (window 1m)"]


def test_a_stable_window_records_one_reading_so_it_costs_no_status_writes():
    record = record_after([seen(t, rollout(), healthy_pods()) for t in range(5, 65)])
    assert [(r.at, r.holds) for r in record.readings] == [("2025-01-01T12:00:05.000000Z", True)]
    assert record.readings[0].restarts == {}, "pods that began at zero restarts need no name"


def test_a_restart_or_a_replaced_pod_seen_after_an_operator_restart_starts_the_window_again():
    before = [seen(t, rollout(), healthy_pods()) for t in (5, 45)]
    assert judge_after_restart(before, seen(70, rollout(), healthy_pods(restarts=1)), 70).state == "pending"
    replaced = (*healthy_pods()[:2], pod("web-9"))
    assert judge_after_restart(before, seen(70, rollout(), replaced), 70).state == "pending"


def test_restarts_during_the_step_are_counted_from_the_first_recorded_count_even_past_the_bound():
    crashing = [seen(t, rollout(), (pod("web-1", restarts=2 + t // 20, ready=False),)) for t in range(0, 290, 10)]
    assert len(record_after(crashing).readings) == MAX_READINGS // 3, "older readings were dropped"
    v = judge_after_restart(crashing, seen(300, rollout(), (pod("web-1", restarts=20, ready=False),)), 300)
    assert v.state == "failed"
    assert "podsReady: pod web-1 restarted 18 times during the step" in v.reasons


def test_a_flapping_target_keeps_a_bounded_record():
    flaps = [seen(t, rollout(), (pod("web-1", ready=bool(t % 2)),)) for t in range(200)]
    assert len(record_after(flaps).readings) == MAX_READINGS // 3


def test_a_window_start_recorded_by_a_replica_whose_clock_runs_ahead_never_passes_early():
    ahead = [seen(100, rollout(), healthy_pods())]  # the other replica's clock read 100s when ours reads 30s
    assert judge_after_restart(ahead, seen(30, rollout(), healthy_pods()), 30).state == "pending"


def test_a_restart_of_the_twenty_fifth_pod_fails_the_step_from_the_record_as_from_the_whole_history():
    def pods(restarts_of_last: int) -> tuple:
        return tuple(pod(f"web-{i:02}", restarts=restarts_of_last if i == 24 else 0) for i in range(25))
    history = [seen(10, rollout(), pods(0)), seen(280, rollout(), pods(1))]
    from_history = judge(PODS_READY, [*history, seen(300, rollout(), pods(1))], now=300)
    assert from_history.state == "failed" and any("web-24 restarted 1 times" in r for r in from_history.reasons)
    v = judge_after_restart(history, seen(300, rollout(), pods(1)), 300)
    assert v.state == from_history.state, v.reasons


def test_a_pod_made_during_the_step_counts_the_restarts_it_had_when_first_seen():
    new_pod = pod("web-new", restarts=2, ready=False)
    history = [seen(10, rollout(), healthy_pods()), seen(200, rollout(), (*healthy_pods(), new_pod))]
    v = judge_after_restart(history, seen(300, rollout(), (*healthy_pods(), new_pod)), 300)
    assert v.state == "failed" and "podsReady: pod web-new restarted 2 times during the step" in v.reasons


def test_restarts_from_before_the_step_of_more_pods_than_the_record_names_are_no_failure():
    def pods(bump: int = 0, replaced: bool = False) -> tuple:
        return (*(pod(f"web-{i:02}", restarts=3 + (bump if i == 0 else 0)) for i in range(24)),
                pod("web-99") if replaced else pod("web-24", restarts=3))
    record = record_after([seen(10, rollout(), pods())])
    assert len(record.readings[0].restarts) == MAX_READING_PODS and record.readings[0].restarts_untold
    before = [seen(10, rollout(), pods()), seen(290, rollout(), pods(replaced=True))]
    v = judge_after_restart(before, seen(300, rollout(), pods(replaced=True)), 300)
    assert v.state == "inconclusive", v.reasons
    v = judge_after_restart(before, seen(300, rollout(), pods(bump=4, replaced=True)), 300)
    assert v.state == "failed" and "podsReady: pod web-00 restarted 4 times during the step" in v.reasons


def test_a_bounded_record_keeps_the_reading_that_holds_the_steps_restart_counts():
    def pods(t: int) -> tuple:
        return tuple(pod(f"web-{i:02}", restarts=3, ready=bool(t // 10 % 2)) for i in range(25))
    record = record_after([seen(t, rollout(), pods(t)) for t in range(0, 300, 10)])
    assert len(record.readings) == MAX_READINGS // 3, "older readings were dropped"
    assert record.readings[0].at == record_after([seen(0, rollout(), pods(0))]).readings[0].at
    assert record.readings[0].restarts_untold and len(record.readings[0].restarts) == MAX_READING_PODS


def test_restarts_after_a_long_spell_without_pods_count_from_the_steps_first_reading():
    spell = [seen(t, rollout(), ()) if t // 10 % 2 else seen(t, None, exists=False) for t in range(10, 250, 10)]
    crashed = (pod("web-0", restarts=4, ready=False),)
    before = [seen(5, rollout(), (pod("web-0"),)), *spell, seen(260, rollout(), crashed)]
    assert len(record_after(before).readings) == MAX_READINGS // 3, "the spell outlasted the record's bound"
    v = judge_after_restart(before, seen(300, rollout(), crashed), 300)
    assert v.state == "failed" and "podsReady: pod web-0 restarted 4 times during the step" in v.reasons, v.reasons


def test_the_kept_baseline_is_the_first_reading_that_saw_pods_not_the_first_reading():
    spell = [seen(t, rollout(), ()) if t // 10 % 2 else seen(t, None, exists=False) for t in range(20, 250, 10)]
    crashed = (pod("web-0", restarts=4, ready=False),)
    before = [seen(2, None, exists=False), seen(5, rollout(), (pod("web-0"),)), *spell, seen(260, rollout(), crashed)]
    record = record_after(before)
    assert len(record.readings) == MAX_READINGS // 3
    assert record.readings[0].at == record_after(before[:2]).readings[1].at, "the reading at 5s is kept"
    v = judge_after_restart(before, seen(300, rollout(), crashed), 300)
    assert v.state == "failed" and "podsReady: pod web-0 restarted 4 times during the step" in v.reasons, v.reasons


def test_the_restart_counts_a_step_began_with_are_taken_from_the_first_reading_that_sees_pods():
    crashed_before = (pod("web-0", restarts=3, ready=False),)
    before = [seen(10, None, exists=False), seen(20, rollout(), ()), seen(30, rollout(), crashed_before)]
    v = judge_after_restart(before, seen(300, rollout(), crashed_before), 300)
    assert v.state == "failed" and not any("restarted" in r for r in v.reasons), v.reasons


def test_restart_counts_recorded_by_a_replica_whose_clock_ran_behind_still_count_as_the_start():
    behind = [seen(-5, rollout(), (pod("web-0", restarts=3),)), seen(0, rollout(), (pod("web-0", restarts=3,
                                                                                         ready=False),))]
    v = judge_after_restart(behind, seen(300, rollout(), (pod("web-0", restarts=3, ready=False),)), 300)
    assert not any("restarted" in r for r in v.reasons), v.reasons


def test_a_record_of_the_earlier_release_that_named_pods_at_zero_counts_no_restart_of_a_pod_it_left_out():
    from remediator.api.models import Reading
    earlier = [Reading(check="pods", at="2025-01-01T12:00:10.000000Z", holds=True, pods="0" * 16,
                       restarts={f"uid-web-{i:02}": 0 if i < 10 else 3 for i in range(20)})]
    pods = (*(pod(f"web-{i:02}", restarts=0 if i < 10 else 3) for i in range(25)), pod("web-99", ready=False))
    kept = fold_pods(earlier, seen(300, rollout(), pods))
    v = judge_from_record(Verify.model_validate(PODS_READY), seen(300, rollout(), pods), kept, START, TIMEOUT,
                          at(300))
    assert not any("restarted" in r for r in v.reasons), v.reasons
