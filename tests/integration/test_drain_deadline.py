"""A drain blocked by a PodDisruptionBudget ends when its step's timeout has passed, naming the budget
(on a real apiserver: the Eviction API, the disruption controller, a KWOK node of the test's own)."""

from __future__ import annotations

import pytest
from kubernetes import client, utils

from remediator.actions import ActionError, ActionRequest, execute
from remediator.actions.drain import DRAIN_STARTED_ANNOTATION
from remediator.api.models import DrainParams, ObjectRef, Step
from tests.integration.test_actions import key, node, pinned, uids, wait_rolled_out  # noqa: F401 (node: fixture)
from tests.support.waiting import wait_for
from tests.support.workloads import deployment

pytestmark = [pytest.mark.integration, pytest.mark.serial]  # runs alone: Nodes: minHealthy counts every Node


def test_a_drain_blocked_by_a_pod_disruption_budget_fails_at_the_step_timeout_naming_the_budget(
        kube_api, namespace, node):  # noqa: F811
    utils.create_from_dict(kube_api, pinned(deployment("web", replicas=2), node), namespace=namespace)
    wait_rolled_out(kube_api, namespace, "web")
    policy = client.PolicyV1Api(kube_api)
    policy.create_namespaced_pod_disruption_budget(
        namespace, {"metadata": {"name": "web"}, "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}})
    wait_for(lambda: policy.read_namespaced_pod_disruption_budget("web", namespace).status.observed_generation,
             what="the disruption controller saw the PDB")
    web = uids(kube_api, namespace)
    request = ActionRequest(action="cordonDrain", target=ObjectRef(kind="Node", name=node), key=key(),
                            step=Step(name="drain", action="cordonDrain", timeout="5s", drain=DrainParams(timeout="2s")))

    first = execute(kube_api, request)

    assert not first.done, "within the step's timeout a blocked drain is continued on the next call"
    blocked = [e.detail for e in first.evidence if e.kind == "pod"]
    assert blocked and all(f"blocked by PodDisruptionBudget {namespace}/web" in d for d in blocked), blocked
    assert client.CoreV1Api(kube_api).read_node(node).metadata.annotations[DRAIN_STARTED_ANNOTATION].startswith(
        request.key + " ")

    with pytest.raises(ActionError) as ended:
        for _ in range(5):  # each call waits at most the drain's 2s; the step's 5s end the drain
            execute(kube_api, request)

    assert ended.value.reason == "DrainTimedOut" and not ended.value.retryable
    assert "not finished within the step's timeout 5s" in ended.value.message
    assert f"blocked by PodDisruptionBudget {namespace}/web" in ended.value.message
    assert uids(kube_api, namespace) == web, "a refused eviction is never forced"
