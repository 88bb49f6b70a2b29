"""The requester stamp, checked at create, cannot be moved afterwards: the requester stays the requester."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from remediator.approvals.kubernetes import cast_vote
from tests.integration.test_kubernetes_approvals import as_user, grant
from tests.integration.test_operator_loop import rollback_runbook
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def test_a_requester_who_rewrites_the_requested_by_stamp_after_creation_still_cannot_approve_their_own_request(
        cluster, operator, kube_api):
    cluster.apply_policy({"approval": {"rules": [
        {"level": lvl, "approvers": 1, "allowedKubernetesUsers": ["carol"], "timeout": "10m", "onTimeout": "deny"}
        for lvl in ("high", "critical")]}})
    cluster.apply_runbook("bad-rollout", rollback_runbook())
    cluster.deploy("web", replicas=2)
    cluster.bad_rollout("web")
    wait_for(lambda: len(cluster.revisions()) == 2, what="bad revision")
    # carol may create and patch Remediations (as the aggregated `edit` role allows) and vote
    grant(kube_api, cluster.ns, "requester", ["create", "get", "patch", "update"], "carol",
          resources=("remediations", "remediationapprovals"))
    carol = as_user(kube_api, "carol")
    custom = client.CustomObjectsApi(carol)
    spec = {"signal": {"source": "manual", "name": "by hand"},
            "runbook": {"name": "bad-rollout", "namespace": cluster.ns},
            "target": {"kind": "Deployment", "name": "web", "namespace": cluster.ns}}

    def create():
        try:
            return custom.create_namespaced_custom_object("remediator.dev", "v1alpha1", cluster.ns, "remediations", {
                "apiVersion": "remediator.dev/v1alpha1", "kind": "Remediation",
                "metadata": {"generateName": "man-", "annotations": {"remediator.dev/requested-by": "carol"}},
                "spec": spec})
        except ApiException:
            return None

    name = wait_for(create, what="carol's stamped Remediation")["metadata"]["name"]
    status = cluster.wait_phase(name, {"AwaitingApproval", "Succeeded", "Failed", "Skipped", "Denied"})["status"]
    assert status["phase"] == "AwaitingApproval", status
    # carol tries to move the stamp to someone else, or to remove it
    for stamp in ("mallory", None):
        with pytest.raises(ApiException) as refused:
            custom.patch_namespaced_custom_object("remediator.dev", "v1alpha1", cluster.ns, "remediations", name,
                                                  {"metadata": {"annotations": {"remediator.dev/requested-by": stamp}}})
        assert refused.value.status in (403, 422) and "cannot be changed" in refused.value.body
    vote = cast_vote(carol, cluster.ns, name, "approve", "I asked for it")
    assert vote["status"]["outcome"] == "refused-not-allowed", vote["status"]
    assert cluster.remediation(name)["status"]["phase"] == "AwaitingApproval"
