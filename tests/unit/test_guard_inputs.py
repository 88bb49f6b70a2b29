"""The step-facts builder the loop and `remediator simulate` share (core.guard_inputs), and core.sizing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from remediator.api.models import RemediationPolicySpec, RemediationSpec, RemediationStatus, RunbookSpec
from remediator.core.plan import guard_inputs
from remediator.core.match import policy_select
from remediator.core.plan.nodes import NodeFact
from remediator.core.plan.guard_inputs import PodFact, TargetFacts
from remediator.core.plan.sizing import Strategy, rolling_pods

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def shipped(path: str) -> dict:
    return yaml.safe_load((ROOT / path).read_text())["spec"]


STRICT = RemediationPolicySpec.model_validate(shipped("policies/production-strict.yaml"))


def observe(runbook: dict | RunbookSpec, target: TargetFacts, policy: RemediationPolicySpec | None = STRICT,
            kind: str = "Deployment", name: str = "web"):
    runbook = runbook if isinstance(runbook, RunbookSpec) else RunbookSpec.model_validate(runbook)
    namespace = None if kind == "Node" else "shop"
    spec = RemediationSpec.model_validate({
        "signal": {"source": "alertmanager", "name": "x"}, "runbook": {"name": "rb", "namespace": "shop"},
        "target": {"kind": kind, "name": name, **({"namespace": namespace} if namespace else {})}})
    found = guard_inputs.next_step(runbook, RemediationStatus(), None)
    assert found is not None
    steps, index = found
    return guard_inputs.observe_step(
        now=NOW, name="rem-1", spec=spec, runbook=runbook, steps=steps, index=index, policy=policy, history=[],
        target=target, namespace_labels={}, namespace_pods=None, dry_run="succeeded", cause_kind=None)


def decision(observed, guard: str):
    return next(d for d in observed.verdict.decisions if d.guard == guard)


# ---------------------------------------------------------------- point 1: scale and raiseMemory under bounds


def test_the_shipped_scale_out_is_checked_against_max_replicas_with_the_count_it_would_set():
    observed = observe(shipped("runbooks/high-latency-scale-out.yaml"), TargetFacts(replicas=4, strategy=Strategy()))
    assert observed.change.desired_replicas == 6
    assert decision(observed, "bounds").allowed, decision(observed, "bounds").reason
    assert observed.verdict.allowed


def test_a_scale_out_over_the_policy_max_replicas_is_clamped_as_the_action_clamps_it():
    runbook = shipped("runbooks/high-latency-scale-out.yaml")
    observed = observe(runbook, TargetFacts(replicas=9, strategy=Strategy()))
    assert observed.change.desired_replicas == 10  # 9 + 2, clamped by the step's own maxReplicas
    already = observe(runbook, TargetFacts(replicas=25, strategy=Strategy()))
    assert decision(already, "bounds").allowed, "a scale that changes nothing exceeds no bound"
    tight = STRICT.model_copy(update={"bounds": [STRICT.bounds[0].model_copy(update={"max_replicas": 5})]})
    assert observe(runbook, TargetFacts(replicas=4, strategy=Strategy()), tight).change.desired_replicas == 5


def test_the_shipped_raise_memory_is_checked_against_max_memory_with_the_limit_it_would_set():
    oom = shipped("runbooks/oomkilled-raise-memory.yaml")
    observed = observe(oom, TargetFacts(replicas=2, strategy=Strategy(), memory_limits={"app": "512Mi"}))
    assert observed.change.desired_memory == "768Mi"
    assert decision(observed, "bounds").allowed, decision(observed, "bounds").reason
    unknown = observe(oom, TargetFacts(replicas=2, strategy=Strategy()))
    assert unknown.change.desired_memory == "2Gi" and decision(unknown, "bounds").allowed  # never above maxLimit


# ---------------------------------------------------------------- point 2: cordonDrain through the loop


NODE_RUNBOOK = {"triggers": [{"alert": {"matchers": [{"name": "alertname", "value": "NodeBad"}]}}],
                "target": {"kind": "Node", "name": "{{ labels.node }}"},
                "steps": [{"name": "drain", "action": "cordonDrain", "verify": {"rolloutComplete": {}}}]}
NODE_POLICY = RemediationPolicySpec.model_validate({"bounds": [{"allowedActions": ["cordonDrain"],
                                                                 "allowNodeActions": True}]})


def test_a_drain_touches_the_pods_it_would_evict_and_can_pass_the_blast_radius_guard():
    pods = (PodFact("shop/web-1"), PodFact("shop/web-2"), PodFact("kube-system/ds-1", drain_skip="DaemonSet pod"))
    nodes = tuple(NodeFact(name, conditions={"Ready": ("True", None)}) for name in ("n1", "n2", "n3"))
    observed = observe(NODE_RUNBOOK, TargetFacts(pods=pods, nodes=nodes), NODE_POLICY, kind="Node", name="n1")
    assert observed.change.pods_touched == 2
    assert decision(observed, "blastRadius").allowed, decision(observed, "blastRadius").reason
    assert observed.verdict.allowed, observed.verdict.summary()


def test_a_drain_of_more_pods_than_max_pods_is_blocked_by_the_count():
    pods = tuple(PodFact(f"shop/web-{i}") for i in range(6))
    observed = observe(NODE_RUNBOOK, TargetFacts(pods=pods), NODE_POLICY, kind="Node", name="n1")
    assert not decision(observed, "blastRadius").allowed
    assert "touches 6 pods at once, over maxPods 5" in decision(observed, "blastRadius").reason


def test_drain_skips_what_kubectl_drain_skips():
    skip = guard_inputs.drain_skip_reason
    assert skip({"kubernetes.io/config.mirror": "x"}, "ReplicaSet", False).startswith("mirror pod")
    assert skip({}, "DaemonSet", False).startswith("DaemonSet pod")
    assert skip({}, None, False).startswith("no controller")
    assert skip({}, "ReplicaSet", False) is None


# ---------------------------------------------------------------- point 6: the real strategy and real deletions


@pytest.mark.parametrize("kind, replicas, strategy, touched", [
    ("Deployment", 4, Strategy("Recreate"), 4),
    ("Deployment", 10, Strategy("RollingUpdate", "100%", 0), 10),
    ("Deployment", 10, Strategy("RollingUpdate", "25%", "25%"), 5),  # 2 (10*25% down) + 3 (up)
    ("Deployment", 4, Strategy(), 2),  # the apiserver's default, 25%/25%
    ("Deployment", 3, Strategy("RollingUpdate", "33%", 0), 1),  # maxUnavailable rounds down
    ("Deployment", 3, Strategy("RollingUpdate", 0, "10%"), 1),  # maxSurge rounds up
    ("Deployment", 5, Strategy("RollingUpdate", 0, 0), 1),  # both 0: the controller makes it 1 unavailable
    ("Deployment", 8, Strategy("RollingUpdate", 3, 1), 4),
    ("StatefulSet", 5, Strategy(), 1),
    ("StatefulSet", 5, Strategy("OnDelete"), 0),
    ("DaemonSet", 6, Strategy("RollingUpdate", "50%"), 3),
])
def test_a_rolling_change_touches_what_the_workloads_own_strategy_lets_go_at_once(kind, replicas, strategy, touched):
    assert rolling_pods(kind, replicas, strategy)[0] == touched


def test_a_recreate_restart_of_four_pods_is_blocked_by_a_25_percent_blast_radius():
    restart = {"triggers": [{"alert": {"matchers": [{"name": "alertname", "value": "X"}]}}],
               "target": {"kind": "Deployment", "name": "web"},
               "steps": [{"name": "restart", "action": "restartRollout", "verify": {"rolloutComplete": {}}}]}
    observed = observe(restart, TargetFacts(replicas=4, strategy=Strategy("Recreate")))
    assert observed.change.pods_touched == 4 and not decision(observed, "blastRadius").allowed


DELETE_ALL = {"triggers": [{"alert": {"matchers": [{"name": "alertname", "value": "X"}]}}],
              "target": {"kind": "Deployment", "name": "web"},
              "steps": [{"name": "delete", "action": "deletePod", "deletePod": {"onlyFailing": False},
                         "verify": {"podsReady": {}}}]}


def test_with_no_policy_delete_pod_of_every_pod_is_blocked_by_the_default_guardrails():
    pods = tuple(PodFact(f"web-{i}") for i in range(4))
    observed = observe(DELETE_ALL, TargetFacts(replicas=4, strategy=Strategy(), pods=pods), policy=None)
    assert observed.change.pods_touched == 4
    assert not observed.verdict.allowed
    assert "over maxPercent 50%" in decision(observed, "blastRadius").reason


def test_with_no_policy_the_actions_get_the_default_max_pods_cap():
    assert policy_select.caps_for(None, "shop").max_pods == 5
    pods = tuple(PodFact(f"web-{i}") for i in range(20))
    observed = observe(DELETE_ALL, TargetFacts(replicas=20, strategy=Strategy(), pods=pods), policy=None)
    assert observed.change.pods_touched == 5  # the action deletes no more than the cap


def test_delete_pod_touches_only_the_failing_pods_by_default():
    only_failing = {**DELETE_ALL, "steps": [{**DELETE_ALL["steps"][0], "deletePod": {"onlyFailing": True}}]}
    pods = (PodFact("web-1", failing=True), PodFact("web-2"), PodFact("web-3"), PodFact("web-4"))
    observed = observe(only_failing, TargetFacts(replicas=4, strategy=Strategy(), pods=pods))
    assert observed.change.pods_touched == 1 and decision(observed, "blastRadius").allowed

