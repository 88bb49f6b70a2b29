"""The shipped scale-out and raise-memory Runbooks act under the shipped production-strict policy's guardrails
(blast radius, bounds with maxReplicas/maxMemory, circuit breaker) instead of being skipped as "unknown"."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from tests.integration.test_operator_loop import NO_APPROVALS, only_remediation
from tests.integration.test_runbook_library import finished, library_runbook
from tests.support.operator import alert, alert_payload

# runs alone: production-strict allows 3 acting cluster-wide
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.serial]

STRICT = yaml.safe_load((Path(__file__).resolve().parents[2] / "policies" / "production-strict.yaml").read_text())


def strict_without_approvers() -> dict:
    """production-strict as shipped, scoped to the test's namespace; its approvers are the approval tests' concern."""
    spec = copy.deepcopy(STRICT["spec"])
    spec.pop("namespaceSelector")
    return {**spec, **NO_APPROVALS}


def test_the_scale_out_runbook_passes_production_strict_bounds_with_the_count_it_sets(cluster, operator):
    cluster.apply_policy(strict_without_approvers())
    cluster.apply_runbook("high-latency-scale-out", library_runbook("high-latency-scale-out"))
    cluster.deploy("web", replicas=1)
    operator.post_alerts(alert_payload([alert(cluster.ns, "web", alertname="HighLatency")]))
    status = finished(cluster, only_remediation(cluster)["metadata"]["name"])
    assert status["phase"] == "Succeeded", status["reason"]
    assert cluster.apps.read_namespaced_deployment("web", cluster.ns).spec.replicas == 3


def test_the_raise_memory_runbook_passes_production_strict_bounds_with_the_limit_it_sets(cluster, operator):
    cluster.apply_policy(strict_without_approvers())
    cluster.apply_runbook("oomkilled-raise-memory", library_runbook("oomkilled-raise-memory"))
    cluster.deploy("web", replicas=2)
    pod = cluster.core.list_namespaced_pod(cluster.ns, label_selector="app=web").items[0].metadata.name
    cluster.core.patch_namespaced_pod(pod, cluster.ns, {"metadata": {"labels": {"remediator.dev/kwok-fail": "oomkilled"}}})
    status = finished(cluster, only_remediation(cluster)["metadata"]["name"])
    assert status["phase"] == "Succeeded", status["reason"]
    container = cluster.apps.read_namespaced_deployment("web", cluster.ns).spec.template.spec.containers[0]
    assert container.resources.limits["memory"] == "96Mi"
