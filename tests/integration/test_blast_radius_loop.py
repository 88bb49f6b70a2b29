"""The loop's blast radius is what the action would really do: the workload's own update strategy, the pods
deletePod would delete; the default guardrails hold when the policy sets none."""

from __future__ import annotations

import pytest
from kubernetes import utils

from tests.integration.test_operator_loop import NO_APPROVALS, only_remediation
from tests.support.operator import alert, alert_payload
from tests.support.workloads import deployment

pytestmark = pytest.mark.integration


def one_step(action: str, **params) -> dict:
    return {"triggers": [{"alert": {"matchers": [{"name": "alertname", "value": "HighErrorRate"}]}}],
            "target": {"kind": "Deployment", "name": "{{ labels.deployment }}"},
            "steps": [{"name": "fix", "action": action, "risk": "low", "timeout": "30s",
                       "verify": {"rolloutComplete": {}}, **params}]}


def outcome(cluster, operator) -> dict:
    operator.post_alerts(alert_payload([alert(cluster.ns, "web")]))
    return cluster.wait_phase(only_remediation(cluster)["metadata"]["name"],
                              {"Succeeded", "Failed", "Escalated", "Skipped"})["status"]


def test_deleting_every_pod_of_a_workload_is_refused_by_the_default_blast_radius(cluster, operator):
    cluster.apply_policy(NO_APPROVALS)  # no blastRadius set: the defaults, maxPods 5 and maxPercent 50
    cluster.apply_runbook("delete-all", one_step("deletePod", deletePod={"onlyFailing": False}))
    cluster.deploy("web", replicas=4)
    before = {p.metadata.uid for p in cluster.core.list_namespaced_pod(cluster.ns, label_selector="app=web").items}

    status = outcome(cluster, operator)

    assert status["phase"] == "Skipped" and not status.get("steps"), status
    assert "deletePod touches 4 of 4 pod(s) at once, over maxPercent 50%" in status["reason"], status["reason"]
    after = {p.metadata.uid for p in cluster.core.list_namespaced_pod(cluster.ns, label_selector="app=web").items}
    assert before == after


def test_a_recreate_workload_restart_counts_every_pod(cluster, operator):
    cluster.apply_policy({**NO_APPROVALS, "blastRadius": {"maxPods": 10, "maxPercent": 50}})
    cluster.apply_runbook("restart", one_step("restartRollout"))
    manifest = deployment("web", replicas=4)
    manifest["spec"]["strategy"] = {"type": "Recreate"}
    utils.create_from_dict(cluster.api, manifest, namespace=cluster.ns)

    status = outcome(cluster, operator)

    assert status["phase"] == "Skipped", status
    assert "restartRollout touches 4 of 4 pod(s) at once, over maxPercent 50%" in status["reason"], status["reason"]
