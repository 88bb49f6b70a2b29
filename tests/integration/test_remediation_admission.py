"""The apiserver refuses a Remediation made by hand that points outside its own namespace."""

from __future__ import annotations

import pytest
from kubernetes.client.rest import ApiException

from tests.integration.conftest import GROUP, VERSION

pytestmark = pytest.mark.integration


def remediation(namespace: str, runbook_namespace: str, target: dict) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Remediation", "metadata": {"generateName": "hand-"},
            "spec": {"signal": {"source": "manual", "name": "by-hand"},
                     "runbook": {"name": "errors", "namespace": runbook_namespace}, "target": target}}


def create(cluster, body: dict) -> dict:
    return cluster.custom.create_namespaced_custom_object(GROUP, VERSION, cluster.ns, "remediations", body)


@pytest.mark.parametrize("runbook_ns, target_ns, field", [
    ("team-a", None, "spec.runbook.namespace"),
    (None, "team-a", "spec.target.namespace"),
])
def test_a_remediation_naming_another_namespace_is_rejected_at_create(cluster, runbook_ns, target_ns, field):
    target = {"kind": "Deployment", "namespace": target_ns or cluster.ns, "name": "web"}
    with pytest.raises(ApiException) as refused:
        create(cluster, remediation(cluster.ns, runbook_ns or cluster.ns, target))
    assert refused.value.status == 422, refused.value.body
    assert f"{field} must be the namespace of the Remediation ({cluster.ns}), not team-a" in refused.value.body
    assert cluster.remediations() == []


@pytest.mark.parametrize("target", [{"kind": "Deployment", "namespace": None, "name": "web"},
                                    {"kind": "Node", "name": "node-1"}])
def test_a_remediation_of_its_own_namespace_is_accepted(cluster, target):
    if "namespace" in target:
        target = {**target, "namespace": cluster.ns}
    created = create(cluster, remediation(cluster.ns, cluster.ns, target))
    assert created["spec"]["runbook"]["namespace"] == cluster.ns
