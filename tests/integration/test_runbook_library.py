"""Every runbook shipped in runbooks/ does its job on the real control plane, loaded from its file."""

from __future__ import annotations

import copy
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from tests.integration.test_operator_loop import NO_APPROVALS, only_remediation
from tests.support.operator import alert, alert_payload
from tests.support.waiting import wait_for
from remediator.core.durations import format_time

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LIBRARY = Path(__file__).resolve().parents[2] / "runbooks"


def library_runbook(name: str) -> dict:
    """The file's spec, with only the waiting shortened: a verify window of seconds, not minutes."""
    spec = copy.deepcopy(yaml.safe_load((LIBRARY / f"{name}.yaml").read_text())["spec"])
    for step in spec["steps"]:
        if "podsReady" in step.get("verify", {}):
            step["verify"]["podsReady"]["window"] = "3s"
    return spec


def finished(cluster, name: str) -> dict:
    return cluster.wait_phase(name, {"Succeeded", "Failed", "Escalated", "Skipped", "Expired"}, timeout=180)["status"]


def one_pod_fails(cluster, runbook: str, failure: str) -> dict:
    """The library Runbook, a 2-replica web, one of its pods failing as `failure`: the outcome."""
    cluster.apply_policy(NO_APPROVALS)
    cluster.apply_runbook(runbook, library_runbook(runbook))
    cluster.deploy("web", replicas=2)
    pod = cluster.core.list_namespaced_pod(cluster.ns, label_selector="app=web").items[0].metadata.name
    cluster.core.patch_namespaced_pod(pod, cluster.ns, {"metadata": {"labels": {"remediator.dev/kwok-fail": failure}}})
    return finished(cluster, only_remediation(cluster)["metadata"]["name"])


def test_crashloop_restart_restarts_a_crash_looping_deployment(cluster, operator):
    status = one_pod_fails(cluster, "crashloop-restart", "crashloop")
    assert status["phase"] == "Succeeded", status["reason"]
    assert [s["action"] for s in status["steps"]] == ["restartRollout"]
    template = cluster.apps.read_namespaced_deployment("web", cluster.ns).spec.template
    assert "kubectl.kubernetes.io/restartedAt" in template.metadata.annotations


def test_bad_rollout_rollback_rolls_back_the_revision_that_raised_errors(cluster, operator):
    cluster.apply_policy(NO_APPROVALS)
    cluster.apply_runbook("bad-rollout-rollback", library_runbook("bad-rollout-rollback"))
    cluster.deploy("web", replicas=2)
    cluster.bad_rollout("web")
    wait_for(lambda: len(cluster.revisions()) == 2, what="bad revision")
    # The burn begins after the rollout, which makes the rollout its probable cause.
    began = format_time(datetime.now(timezone.utc))
    operator.post_alerts(alert_payload([alert(cluster.ns, "web", alertname="ErrorBudgetBurn", starts_at=began)]))
    status = finished(cluster, only_remediation(cluster)["metadata"]["name"])
    assert status["phase"] == "Succeeded", status["reason"]
    assert status["probableCause"]["kind"] == "rollout"
    assert [s["action"] for s in status["steps"]] == ["rollback"]
    assert sorted(cluster.revisions().values()) == ["2", "3"]


def test_high_latency_scale_out_adds_replicas_within_its_bounds(cluster, operator):
    cluster.apply_policy(NO_APPROVALS)
    cluster.apply_runbook("high-latency-scale-out", library_runbook("high-latency-scale-out"))
    cluster.deploy("web", replicas=1)
    operator.post_alerts(alert_payload([alert(cluster.ns, "web", alertname="HighLatency")]))
    status = finished(cluster, only_remediation(cluster)["metadata"]["name"])
    assert status["phase"] == "Succeeded", status["reason"]
    dep = cluster.apps.read_namespaced_deployment("web", cluster.ns)
    assert dep.spec.replicas == 3, "1 replica + step 2, within minReplicas 2 and maxReplicas 10"
    assert dep.status.available_replicas == 3


def test_oomkilled_raise_memory_raises_the_limit_by_its_factor(cluster, operator):
    status = one_pod_fails(cluster, "oomkilled-raise-memory", "oomkilled")
    assert status["phase"] == "Succeeded", status["reason"]
    container = cluster.apps.read_namespaced_deployment("web", cluster.ns).spec.template.spec.containers[0]
    assert container.resources.limits["memory"] == "96Mi", "64Mi x 1.5"
    assert container.resources.requests["memory"] == "32Mi"
