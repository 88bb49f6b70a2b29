from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from remediator.api.models import Guard, ObjectRef, RemediationPolicySpec, RunbookRef
from remediator.core.durations import format_time
from remediator.core.plan.guards import GuardContext, PastRemediation, check_guards, percent_allowance

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
RUNBOOK = RunbookRef(namespace="shop", name="crashloop")
TARGET = ObjectRef(kind="Deployment", namespace="shop", name="web")
RB_KEY, TARGET_KEY = "shop/crashloop", "Deployment/shop/web"


def ago(**kw) -> datetime:
    return NOW - timedelta(**kw)


def past(name: str, *, started: datetime | None = None, finished: datetime | None = None, phase: str = "Succeeded",
         succeeded: bool | None = True, acted: bool = True, runbook: str = RB_KEY, target: str = TARGET_KEY):
    return PastRemediation(name=name, runbook_key=runbook, target_key=target, phase=phase,
                           started_at=started, finished_at=finished, succeeded=succeeded, acted=acted)


def ctx(history=(), policy: dict | None = None, guard: dict | None = None, **kw) -> GuardContext:
    base = {"now": NOW, "runbook": RUNBOOK, "guard": Guard.model_validate(guard or {}),
            "policy": RemediationPolicySpec.model_validate(policy) if policy is not None else None,
            "target": TARGET, "history": list(history), "action": "restartRollout", "target_replicas": 4,
            "pods_touched": 1, "remediation_name": "am-self"}
    base.update(kw)
    return GuardContext(**base)


def decision(context: GuardContext, guard: str):
    verdict = check_guards(context)
    found = [d for d in verdict.decisions if d.guard == guard]
    assert len(found) == 1, [d.guard for d in verdict.decisions]
    return found[0]


def test_a_quiet_cluster_allows_the_action_and_every_guard_says_why():
    verdict = check_guards(ctx(policy={}))
    assert verdict.allowed and verdict.retry_at is None
    assert {d.guard for d in verdict.decisions} == {
        "cooldown", "rate", "targetConcurrency", "concurrency", "namespaceConcurrency", "blastRadius",
        "freeze", "circuitBreaker", "stormHoldoff", "minHealthy", "bounds", "serviceAccount"}
    assert all(d.reason for d in verdict.decisions)
    assert verdict.summary() == "all 12 guards allow it"


def test_no_policy_means_default_guardrails_not_none():
    verdict = check_guards(ctx(policy=None, pods_touched=6))
    assert not verdict.allowed
    assert verdict.decisions[0].guard == "policy" and "default guardrails" in verdict.decisions[0].reason
    assert "over maxPods 5" in decision(ctx(policy=None, pods_touched=6), "blastRadius").reason


# ---------------------------------------------------------------- cooldown


def test_cooldown_blocks_second_run_and_says_when_next_allowed():
    context = ctx([past("am-1", started=ago(minutes=6), finished=ago(minutes=4))], guard={"cooldown": "10m"})
    d = decision(context, "cooldown")
    assert not d.allowed
    assert d.reason == "cooldown: last run 4m ago, cooldown 10m, next allowed at 2024-05-01T12:06:00Z"
    assert d.retry_at == NOW + timedelta(minutes=6)


@pytest.mark.parametrize("finished_ago, allowed", [(timedelta(minutes=10), True), (timedelta(minutes=9, seconds=59), False)])
def test_cooldown_ends_exactly_at_its_boundary(finished_ago, allowed):
    context = ctx([past("am-1", started=NOW - finished_ago, finished=NOW - finished_ago)], guard={"cooldown": "10m"})
    assert decision(context, "cooldown").allowed is allowed


def test_cooldown_ignores_runs_that_did_not_act_other_targets_other_runbooks_and_itself():
    history = [
        past("am-skip", started=ago(minutes=1), acted=False, phase="Skipped"),
        past("am-other-target", started=ago(minutes=1), target="Deployment/shop/api"),
        past("am-other-runbook", started=ago(minutes=1), runbook="shop/latency"),
        past("am-self", started=ago(minutes=1)),
    ]
    d = decision(ctx(history), "cooldown")
    assert d.allowed and d.reason == "cooldown: no earlier run of shop/crashloop acted on Deployment/shop/web"


def test_cooldown_counts_from_the_start_of_a_run_still_in_progress():
    d = decision(ctx([past("am-1", started=ago(minutes=2), phase="Verifying", succeeded=None)]), "cooldown")
    assert not d.allowed and "last run 2m ago" in d.reason


# ---------------------------------------------------------------- rate


def test_max_runs_per_hour_blocks_and_names_when_the_oldest_leaves_the_window():
    history = [past(f"am-{i}", started=ago(minutes=m), finished=ago(minutes=m - 1)) for i, m in enumerate((50, 40, 30))]
    context = ctx(history, guard={"cooldown": "1m", "maxRunsPerHour": 3})
    d = decision(context, "rate")
    assert not d.allowed
    assert d.reason == ("rate: 3 run(s) of shop/crashloop on Deployment/shop/web in the last hour (limit 3), "
                        "next allowed at 2024-05-01T12:10:00Z")


def test_runs_older_than_an_hour_do_not_count_toward_the_rate():
    history = [past(f"am-{i}", started=ago(minutes=m)) for i, m in enumerate((60, 70, 30))]
    d = decision(ctx(history, guard={"cooldown": "1m", "maxRunsPerHour": 2}), "rate")
    assert d.allowed and "1 run(s)" in d.reason


# ---------------------------------------------------------------- concurrency


def test_another_remediation_acting_on_the_same_target_blocks():
    history = [past("am-busy", started=ago(hours=3), phase="Acting", succeeded=None, acted=False,
                    runbook="shop/other")]
    d = decision(ctx(history), "targetConcurrency")
    assert not d.allowed and "1 other remediation(s) acting on Deployment/shop/web (am-busy)" in d.reason


def test_remediations_awaiting_approval_or_finished_are_not_acting():
    history = [past("am-a", phase="AwaitingApproval", succeeded=None, acted=False),
               past("am-b", phase="Failed", succeeded=False)]
    assert decision(ctx(history), "targetConcurrency").allowed


def test_policy_caps_active_remediations_cluster_wide_and_per_namespace():
    history = [past(f"am-{i}", phase="Verifying", succeeded=None, runbook=f"ns{i % 2}/rb",
                    target=f"Deployment/ns{i % 2}/w{i}") for i in range(4)]
    history += [past("am-shop", phase="Acting", succeeded=None, target="Deployment/shop/api")]
    context = ctx(history, policy={"concurrency": {"maxActive": 5, "maxPerNamespace": 1}})
    cluster, namespace = decision(context, "concurrency"), decision(context, "namespaceConcurrency")
    assert not cluster.allowed and "5 other remediation(s) acting cluster-wide" in cluster.reason
    assert not namespace.allowed and "in namespace 'shop' (am-shop), maxPerNamespace 1" in namespace.reason
    assert check_guards(context).retry_at is None  # lifts when others finish, not at a known time


# ---------------------------------------------------------------- blast radius


@pytest.mark.parametrize("replicas, percent, touched, allowed", [
    (1, 50, 1, True),     # the only replica: one pod is always allowed, or it could never be restarted
    (2, 50, 1, True),
    (2, 50, 2, False),
    (3, 50, 1, True),     # floor(1.5) = 1
    (3, 50, 2, False),
    (10, 50, 5, True),
    (10, 50, 6, False),
    (4, 100, 4, True),
    (0, 50, 0, True),     # scaling up from zero touches nothing
])
def test_blast_radius_percent_always_allows_one_pod(replicas, percent, touched, allowed):
    context = ctx(policy={"blastRadius": {"maxPods": 10, "maxPercent": percent}},
                  target_replicas=replicas, pods_touched=touched)
    assert decision(context, "blastRadius").allowed is allowed


def test_one_replica_restart_is_allowed_and_the_reason_says_why():
    d = decision(ctx(policy={}, target_replicas=1, pods_touched=1), "blastRadius")
    assert d.allowed and "1 of 1 pod(s) at once" in d.reason and "one pod is always allowed" in d.reason


def test_blast_radius_blocks_over_max_pods_whatever_the_replicas():
    d = decision(ctx(policy={"blastRadius": {"maxPods": 3, "maxPercent": 100}}, target_replicas=20,
                     pods_touched=4, action="deletePod"), "blastRadius")
    assert not d.allowed and d.reason == "blast radius: deletePod touches 4 pods at once, over maxPods 3"


def test_unknown_pods_touched_or_unknown_workload_replicas_block():
    assert not decision(ctx(pods_touched=None), "blastRadius").allowed
    assert "replicas of Deployment/shop/web unknown" in decision(ctx(target_replicas=None), "blastRadius").reason


def test_a_node_drain_is_bounded_by_max_pods_only():
    node = ObjectRef(kind="Node", name="n1")
    d = decision(ctx(target=node, target_replicas=None, pods_touched=3, action="cordonDrain"), "blastRadius")
    assert d.allowed and "maxPercent does not apply to a Node" in d.reason


def test_percent_allowance():
    assert [percent_allowance(r, 50) for r in (0, 1, 2, 3, 4, 5)] == [1, 1, 1, 1, 2, 2]


# ---------------------------------------------------------------- freeze


FREEZE = {"freezeWindows": [{"name": "black-friday", "start": "2024-05-01T11:00:00Z", "end": "2024-05-01T13:00:00Z"}]}


@pytest.mark.parametrize("now, allowed", [
    (datetime(2024, 5, 1, 10, 59, 59, tzinfo=UTC), True),
    (datetime(2024, 5, 1, 11, 0, tzinfo=UTC), False),      # the start is inside
    (datetime(2024, 5, 1, 12, 59, 59, tzinfo=UTC), False),
    (datetime(2024, 5, 1, 13, 0, tzinfo=UTC), True),       # the end is outside
])
def test_freeze_window_boundaries(now, allowed):
    assert decision(ctx(policy=FREEZE, now=now), "freeze").allowed is allowed


def test_inside_a_freeze_window_blocks_with_its_name_until_its_end():
    d = decision(ctx(policy=FREEZE), "freeze")
    assert not d.allowed and "'black-friday'" in d.reason
    assert d.retry_at == datetime(2024, 5, 1, 13, tzinfo=UTC)


def test_an_unreadable_freeze_window_blocks_without_a_retry_time():
    policy = {"freezeWindows": [{"name": "typo", "start": "tomorrow", "end": "2024-05-01T13:00:00Z"}]}
    verdict = check_guards(ctx(policy=policy))
    assert not verdict.allowed and verdict.retry_at is None
    assert "'typo' is unreadable" in decision(ctx(policy=policy), "freeze").reason


def test_a_coming_freeze_window_is_mentioned_but_does_not_block():
    policy = {"freezeWindows": [{"name": "release", "start": "2024-05-01T12:20:00Z", "end": "2024-05-01T14:00:00Z"}]}
    d = decision(ctx(policy=policy), "freeze")
    assert d.allowed and "release" in d.reason and "20m" in d.reason


# ---------------------------------------------------------------- circuit breaker


def test_circuit_breaker_opens_after_k_failures_and_says_how_many_and_since_when():
    history = [past(f"am-{i}", started=ago(minutes=m + 5), finished=ago(minutes=m), succeeded=False, phase="Escalated",
                    target=f"Deployment/shop/w{i}") for i, m in enumerate((50, 30, 10))]
    d = decision(ctx(history, policy={"circuitBreaker": {"failures": 3, "window": "1h"}}), "circuitBreaker")
    assert not d.allowed
    assert d.reason == ("circuit breaker open: 3 failed remediations of shop/crashloop since 2024-05-01T11:10:00Z "
                        "(limit 3 in 1h); closes at 2024-05-01T12:10:00Z")
    assert d.retry_at == NOW + timedelta(minutes=10)


def test_circuit_breaker_ignores_old_failures_successes_and_other_runbooks():
    history = [past("am-old", finished=ago(minutes=61), succeeded=False),
               past("am-ok", finished=ago(minutes=5), succeeded=True),
               past("am-running", started=ago(minutes=5), succeeded=None, phase="Acting"),
               past("am-else", finished=ago(minutes=5), succeeded=False, runbook="shop/other"),
               past("am-bad", finished=ago(minutes=5), succeeded=False)]
    d = decision(ctx(history, guard={"cooldown": "0s"}, policy={"circuitBreaker": {"failures": 2}}), "circuitBreaker")
    assert d.allowed and "1 failed remediation(s)" in d.reason and "opens at 2" in d.reason


def exported(name: str, phase: str, steps: list[str], minutes_ago: int) -> dict:
    """A Remediation as `kubectl get -o json` gives it, ended `minutes_ago`, with steps in these phases."""
    at = format_time(NOW - timedelta(minutes=minutes_ago))
    return {"metadata": {"name": name, "namespace": "shop", "creationTimestamp": at},
            "spec": {"runbook": {"name": "crashloop", "namespace": "shop"},
                     "target": {"kind": "Deployment", "namespace": "shop", "name": "web"}},
            "status": {"phase": phase, "startedAt": at, "finishedAt": at,
                       "steps": [{"index": i, "name": f"s{i}", "action": "restartRollout", "idempotencyKey": "k",
                                  "phase": p} for i, p in enumerate(steps)]}}


@pytest.mark.parametrize("phase", ["Skipped", "Cancelled", "Denied", "Expired"])
def test_skips_cancels_and_denials_do_not_open_the_circuit_breaker_nor_raise_risk(phase):
    from remediator.api.models import RemediationSpec
    from remediator.core.plan.guard_inputs import past_remediation, recent_failures

    history = [past_remediation(exported(f"am-{i}", phase, [], minutes_ago=5 + i)) for i in range(3)]
    d = decision(ctx(history, guard={"cooldown": "0s"}, policy={"circuitBreaker": {"failures": 2}}), "circuitBreaker")
    assert d.allowed and "0 failed remediation(s)" in d.reason
    spec = RemediationSpec.model_validate({
        "signal": {"source": "alertmanager", "name": "x"}, "runbook": {"name": "crashloop", "namespace": "shop"},
        "target": {"kind": "Deployment", "namespace": "shop", "name": "web"}})
    assert recent_failures(history, spec, NOW) == 0


def test_only_remediations_whose_action_ran_and_failed_open_the_circuit_breaker():
    history = [past_remediation_of("am-1", "Escalated", ["Failed"], 5), past_remediation_of("am-2", "Failed", ["Failed"], 6),
               past_remediation_of("am-3", "Skipped", [], 7)]
    d = decision(ctx(history, guard={"cooldown": "0s"}, policy={"circuitBreaker": {"failures": 2}}), "circuitBreaker")
    assert not d.allowed and "2 failed remediations" in d.reason


def past_remediation_of(name: str, phase: str, steps: list[str], minutes_ago: int) -> PastRemediation:
    from remediator.core.plan.guard_inputs import past_remediation
    return past_remediation(exported(name, phase, steps, minutes_ago))


# ---------------------------------------------------------------- storm hold-off


def storm_history(targets: int, minutes_ago: int = 1):
    return [past(f"am-{i}", started=ago(minutes=minutes_ago), phase="Pending", succeeded=None, acted=False,
                 runbook=f"ns{i}/rb", target=f"Deployment/ns{i}/w") for i in range(targets)]


def test_many_distinct_targets_failing_at_once_hold_off_remediation():
    d = decision(ctx(storm_history(9), policy={"stormHoldoff": {"targets": 10, "window": "5m"}}), "stormHoldoff")
    assert not d.allowed
    assert "10 distinct targets failing in the last 5m (threshold 10)" in d.reason
    assert d.retry_at == NOW - timedelta(minutes=1) + timedelta(minutes=5)


def test_a_few_failing_targets_or_old_failures_are_not_a_storm():
    policy = {"stormHoldoff": {"targets": 10, "window": "5m"}}
    assert decision(ctx(storm_history(8), policy=policy), "stormHoldoff").allowed
    assert decision(ctx(storm_history(20, minutes_ago=5), policy=policy), "stormHoldoff").allowed


def test_repeated_failures_of_one_target_count_once_in_a_storm():
    history = [past(f"am-{i}", started=ago(seconds=i), phase="Failed", succeeded=False) for i in range(30)]
    d = decision(ctx(history, policy={"stormHoldoff": {"targets": 2}}), "stormHoldoff")
    assert d.allowed and "1 distinct failing target(s)" in d.reason


# ---------------------------------------------------------------- policy bounds


def test_an_action_not_allowed_in_the_namespace_is_blocked():
    policy = {"bounds": [{"namespaces": ["shop*"], "allowedActions": ["restartRollout", "scale"]}]}
    d = decision(ctx(policy=policy, action="rollback"), "bounds")
    assert not d.allowed and "rollback is not allowed in namespace 'shop'" in d.reason and "shop*" in d.reason


def test_bounds_for_other_namespaces_do_not_apply():
    policy = {"bounds": [{"namespaces": ["payments", "kube-*"], "allowedActions": []}]}
    d = decision(ctx(policy=policy, action="rollback"), "bounds")
    assert d.allowed and d.reason == "bounds: none apply to namespace 'shop'"


def test_the_strictest_of_several_matching_bounds_wins():
    policy = {"bounds": [{"namespaces": ["*"], "maxReplicas": 20},
                         {"namespaces": ["shop"], "maxReplicas": 8, "allowedActions": ["scale"]}]}
    assert decision(ctx(policy=policy, action="scale", desired_replicas=8), "bounds").allowed
    d = decision(ctx(policy=policy, action="scale", desired_replicas=9), "bounds")
    assert not d.allowed and "scale to 9 replicas exceeds maxReplicas 8" in d.reason
    assert not decision(ctx(policy=policy, action="scale", desired_replicas=None), "bounds").allowed
    assert not decision(ctx(policy=policy, action="restartRollout"), "bounds").allowed


def test_raise_memory_is_bounded_by_max_memory():
    policy = {"bounds": [{"maxMemory": "1Gi"}]}
    assert decision(ctx(policy=policy, action="raiseMemory", desired_memory="1024Mi"), "bounds").allowed
    d = decision(ctx(policy=policy, action="raiseMemory", desired_memory="1.5Gi"), "bounds")
    assert not d.allowed and "memory limit 1.5Gi exceeds maxMemory 1Gi" in d.reason
    assert not decision(ctx(policy=policy, action="raiseMemory"), "bounds").allowed
    assert "desired memory unreadable" in decision(ctx(policy=policy, action="raiseMemory", desired_memory="lots"),
                                                   "bounds").reason
    bad_policy = {"bounds": [{"maxMemory": "2 gigs"}]}
    assert "maxMemory unreadable" in decision(ctx(policy=bad_policy, action="raiseMemory", desired_memory="1Gi"),
                                              "bounds").reason


def test_a_target_in_another_namespace_needs_cross_namespace_permission():
    elsewhere = ObjectRef(kind="Deployment", namespace="payments", name="ledger")
    policy = {"bounds": [{}]}
    assert not decision(ctx(policy=policy, target=elsewhere), "bounds").allowed
    assert decision(ctx(policy={"bounds": [{"allowCrossNamespace": True}]}, target=elsewhere), "bounds").allowed



@pytest.mark.parametrize("policy", [None, {"bounds": []}, {"bounds": [{"namespaces": ["other-*"],
                                                                        "allowCrossNamespace": True}]}])
def test_a_target_in_another_namespace_is_blocked_when_no_bounds_entry_allows_it(policy):
    elsewhere = ObjectRef(kind="Deployment", namespace="payments", name="ledger")
    d = decision(ctx(policy=policy, target=elsewhere), "bounds")
    assert not d.allowed
    assert "target namespace 'payments' is not the Runbook's" in d.reason


# ---------------------------------------------------------------- the verdict


def test_the_verdict_retries_when_the_last_time_bound_block_lifts():
    history = [past("am-1", started=ago(minutes=5), finished=ago(minutes=5))]
    verdict = check_guards(ctx(history, policy=FREEZE, guard={"cooldown": "10m"}))
    assert not verdict.allowed
    assert {d.guard for d in verdict.blocked_by} == {"cooldown", "freeze"}
    assert verdict.retry_at == datetime(2024, 5, 1, 13, tzinfo=UTC)
    assert "cooldown:" in verdict.summary() and "freeze:" in verdict.summary()


def test_a_naive_now_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        ctx(now=datetime(2024, 5, 1, 12))


def test_the_context_is_frozen_and_copies_the_history():
    history = [past("am-1", started=ago(minutes=1))]
    context = ctx(history)
    history.clear()
    assert len(context.history) == 1
    with pytest.raises(AttributeError):
        context.now = NOW  # type: ignore[misc]
    assert replace(context, pods_touched=2).pods_touched == 2


def test_a_namespaced_runbook_may_not_drain_a_node_unless_the_cluster_policy_allows_it():
    node = ObjectRef(kind="Node", name="n1")
    drain = {"target": node, "target_replicas": None, "pods_touched": 3, "action": "cordonDrain"}
    refused = decision(ctx(policy={}, **drain), "bounds")
    assert not refused.allowed
    assert "acts outside namespace 'shop'" in refused.reason and "allowNodeActions: true" in refused.reason
    other_ns_allowance = {"bounds": [{"namespaces": ["payments"], "allowNodeActions": True}]}
    assert not decision(ctx(policy=other_ns_allowance, **drain), "bounds").allowed
    allowed = {"bounds": [{"namespaces": ["shop"], "allowNodeActions": True}]}
    assert decision(ctx(policy=allowed, **drain), "bounds").allowed


def test_node_actions_need_every_matching_bounds_entry_to_allow_them():
    node = ObjectRef(kind="Node", name="n1")
    policy = {"bounds": [{"namespaces": ["shop"], "allowNodeActions": True}, {"namespaces": ["*"]}]}
    assert not decision(ctx(policy=policy, target=node, target_replicas=None, pods_touched=1,
                            action="cordonDrain"), "bounds").allowed


def test_a_runbook_may_not_borrow_a_service_account_no_policy_allows():
    borrowed = {"service_account": "argocd-manager", "default_service_account": "remediator-actions"}
    for policy in (None, {}, {"bounds": [{"namespaces": ["payments"], "allowedServiceAccounts": ["argocd-manager"]}]}):
        refused = decision(ctx(policy=policy, **borrowed), "serviceAccount")
        assert not refused.allowed, policy
        assert "'argocd-manager' is not allowed in namespace 'shop'" in refused.reason
        assert "only the tenant action account 'remediator-actions' may be used" in refused.reason
        assert not check_guards(ctx(policy=policy, **borrowed)).allowed
    assert "no RemediationPolicy applies" in decision(ctx(policy=None, **borrowed), "serviceAccount").reason
    assert "allowedServiceAccounts" in decision(ctx(policy={}, **borrowed), "serviceAccount").reason


def test_a_service_account_listed_for_the_namespace_or_the_default_account_is_allowed():
    policy = {"bounds": [{"namespaces": ["shop"], "allowedServiceAccounts": ["deployer"]}, {"maxReplicas": 9}]}
    listed = decision(ctx(policy=policy, service_account="deployer", default_service_account="remediator-actions"),
                      "serviceAccount")
    assert listed.allowed and "allowed by the RemediationPolicy bounds for shop" in listed.reason
    for named in (None, "remediator-actions"):
        assert decision(ctx(policy=None, service_account=named, default_service_account="remediator-actions"),
                        "serviceAccount").allowed
    assert decision(ctx(policy=None), "serviceAccount").allowed  # no impersonation configured: the operator acts
    assert not decision(ctx(policy=None, service_account="ci"), "serviceAccount").allowed


def test_allowed_service_accounts_must_be_service_account_names():
    spec = RemediationPolicySpec.model_validate({"bounds": [{"allowedServiceAccounts": ["deployer"]}]})
    assert spec.bounds[0].allowed_service_accounts == ["deployer"]
    with pytest.raises(ValueError, match="pattern"):
        RemediationPolicySpec.model_validate({"bounds": [{"allowedServiceAccounts": ["system:admin"]}]})
