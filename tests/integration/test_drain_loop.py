"""cordonDrain through the operator's loop (not only `execute`): its blast radius is the pods a drain evicts,
and a PodDisruptionBudget that never lets go ends the step at its timeout, naming the budget."""

from __future__ import annotations

import pytest
from kubernetes import client, utils

from tests.integration.test_actions import node, pinned, uids, wait_rolled_out  # noqa: F401 (node: fixture)
from tests.integration.test_operator_loop import NO_APPROVALS, only_remediation
from tests.support.operator import alert, alert_payload
from tests.support.waiting import wait_for
from tests.support.workloads import deployment

pytestmark = [pytest.mark.integration, pytest.mark.serial]  # runs alone: Nodes: minHealthy counts every Node


def test_a_drain_runbook_runs_through_the_loop_and_a_budget_that_never_lets_go_fails_it_by_name(
        cluster, operator, node):  # noqa: F811
    cluster.apply_policy({**NO_APPROVALS, "bounds": [{"allowedActions": ["cordonDrain"], "allowNodeActions": True}]})
    cluster.apply_runbook("bad-node", {
        "triggers": [{"alert": {"matchers": [{"name": "alertname", "value": "NodeBad"}]}}],
        "target": {"kind": "Node", "name": "{{ labels.node }}"},
        "steps": [{"name": "drain", "action": "cordonDrain", "risk": "low", "timeout": "8s",
                   "drain": {"timeout": "2s"}}],
    })
    utils.create_from_dict(cluster.api, pinned(deployment("web", replicas=2), node), namespace=cluster.ns)
    wait_rolled_out(cluster.api, cluster.ns, "web")
    policy = client.PolicyV1Api(cluster.api)
    policy.create_namespaced_pod_disruption_budget(
        cluster.ns, {"metadata": {"name": "web"}, "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}})
    wait_for(lambda: policy.read_namespaced_pod_disruption_budget("web", cluster.ns).status.observed_generation,
             what="the disruption controller saw the PDB")
    web = uids(cluster.api, cluster.ns)

    resp = operator.post_alerts(alert_payload([alert(cluster.ns, "web", alertname="NodeBad", node=node)]))
    assert resp.status_code == 200, resp.text
    name = only_remediation(cluster)["metadata"]["name"]

    done = cluster.wait_phase(name, {"Succeeded", "Failed", "Escalated", "Skipped"}, timeout=90)
    status = done["status"]
    assert status["steps"], f"the drain ran through the loop, not skipped by a guard: {status['reason']}"
    step = status["steps"][0]
    assert status["phase"] == "Failed" and step["phase"] == "Failed", status
    assert f"blocked by PodDisruptionBudget {cluster.ns}/web" in step["message"], step
    assert "not finished within the step's timeout 8s" in step["message"]
    assert client.CoreV1Api(cluster.api).read_node(node).spec.unschedulable
    assert uids(cluster.api, cluster.ns) == web, "a refused eviction is never forced"
