"""When Slack is down, approvals go through the apiserver: RBAC decides who may vote, as themselves."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from remediator.approvals.kubernetes import cast_vote
from tests.integration.test_operator_loop import bad_rollout_incident
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

APPROVERS = {"approval": {"rules": [
    {"level": lvl, "approvers": 1, "allowedKubernetesUsers": ["alice"], "timeout": "10m", "onTimeout": "deny"}
    for lvl in ("high", "critical")]}}


def as_user(admin: client.ApiClient, user: str, group: str = "sre") -> client.ApiClient:
    """An API client that the apiserver treats as `user` (admin impersonation, as kubectl --as does)."""
    api = client.ApiClient(admin.configuration)
    api.set_default_header("Impersonate-User", user)
    api.set_default_header("Impersonate-Group", group)
    return api


def grant(kube_api, namespace: str, role: str, verbs: list[str], user: str,
          resources: tuple[str, ...] = ("remediationapprovals",)) -> None:
    """`user` may do `verbs` on `resources` (and get remediations) in the namespace."""
    rbac = client.RbacAuthorizationV1Api(kube_api)
    rbac.create_namespaced_role(namespace, {
        "metadata": {"name": role},
        "rules": [{"apiGroups": ["remediator.dev"], "resources": list(resources), "verbs": verbs},
                  {"apiGroups": ["remediator.dev"], "resources": ["remediations"], "verbs": ["get"]}]})
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": role},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
        "subjects": [{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}]})


@pytest.fixture
def voters(kube_api, namespace):
    """alice may create RemediationApprovals in the namespace; bob may only read them."""
    grant(kube_api, namespace, "approver", ["create", "get"], "alice")
    grant(kube_api, namespace, "reader", ["get", "list"], "bob")
    return {"alice": as_user(kube_api, "alice"), "bob": as_user(kube_api, "bob")}


def waiting_rollback(cluster, operator) -> str:
    name = bad_rollout_incident(cluster, operator, APPROVERS)
    status = cluster.wait_phase(name, {"AwaitingApproval", "Succeeded", "Failed", "Skipped"})["status"]
    assert status["phase"] == "AwaitingApproval", status["reason"]
    assert status["approval"]["required"] == 1 and status["approval"]["deadline"]
    return name


def test_an_approval_by_a_user_rbac_allows_lets_the_rollback_run(cluster, operator, voters):
    name = waiting_rollback(cluster, operator)
    vote = cast_vote(voters["alice"], cluster.ns, name, "approve", "checked the dashboard")
    assert vote["status"]["outcome"] == "accepted", vote["status"]
    status = cluster.wait_phase(name, {"Succeeded", "Failed", "Escalated"})["status"]
    assert status["phase"] == "Succeeded"
    assert [(v["user"], v["source"], v["decision"]) for v in status["approval"]["votes"]] == [
        ("alice", "kubernetes", "approve")]
    assert sorted(cluster.revisions().values()) == ["2", "3"]


def test_a_denial_leaves_the_deployment_untouched(cluster, operator, voters):
    name = waiting_rollback(cluster, operator)
    generation = cluster.apps.read_namespaced_deployment("web", cluster.ns).metadata.generation
    assert cast_vote(voters["alice"], cluster.ns, name, "deny", "wait for the fix")["status"]["outcome"] == "accepted"
    status = cluster.wait_phase(name, {"Denied", "Succeeded", "Failed"})["status"]
    assert status["phase"] == "Denied" and status["steps"] == []
    assert cluster.apps.read_namespaced_deployment("web", cluster.ns).metadata.generation == generation
    assert sorted(cluster.revisions().values()) == ["1", "2"]


def test_a_user_rbac_does_not_allow_is_refused_by_the_apiserver(cluster, operator, voters):
    name = waiting_rollback(cluster, operator)
    with pytest.raises(ApiException) as err:
        cast_vote(voters["bob"], cluster.ns, name, "approve", "")
    assert err.value.status == 403
    assert cluster.remediation(name)["status"]["phase"] == "AwaitingApproval"


def test_voting_as_someone_else_is_refused_by_the_admission_policy(cluster, operator, voters):
    name = waiting_rollback(cluster, operator)
    custom = client.CustomObjectsApi(voters["alice"])

    def forge():
        custom.create_namespaced_custom_object("remediator.dev", "v1alpha1", cluster.ns, "remediationapprovals", {
            "apiVersion": "remediator.dev/v1alpha1", "kind": "RemediationApproval",
            "metadata": {"generateName": "forged-"},
            "spec": {"remediation": name, "requestId": "any", "decision": "approve", "user": "carol"}})

    def refused():
        try:
            forge()
        except ApiException as e:
            return e
        return None  # the policy may take a moment to load after it is created

    err = wait_for(refused, what="the admission policy refusing a forged voter")
    assert err.status in (403, 422)
    assert "must be the identity you authenticated as (alice)" in err.body
    assert cluster.remediation(name)["status"]["phase"] == "AwaitingApproval"


def test_an_approver_the_policy_does_not_name_is_recorded_and_does_not_count(cluster, operator, voters, kube_api):
    name = waiting_rollback(cluster, operator)
    rbac = client.RbacAuthorizationV1Api(kube_api)
    rbac.create_namespaced_role_binding(cluster.ns, {
        "metadata": {"name": "dave-approver"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "approver"},
        "subjects": [{"kind": "User", "name": "dave", "apiGroup": "rbac.authorization.k8s.io"}]})
    vote = cast_vote(as_user(kube_api, "dave"), cluster.ns, name, "approve", "")
    assert vote["status"]["outcome"] == "refused-not-allowed", vote["status"]
    status = cluster.remediation(name)["status"]
    assert status["phase"] == "AwaitingApproval" and status["approval"]["votes"] == []
    assert any(t["kind"] == "VoteRefused" and "dave" in t["message"] for t in status["timeline"])


def test_an_unanswered_request_expires_by_policy_and_a_late_approval_is_refused(cluster, operator, voters):
    name = bad_rollout_incident(cluster, operator, {"approval": {"rules": [
        {"level": lvl, "approvers": 1, "allowedKubernetesUsers": ["alice"], "timeout": "3s", "onTimeout": "deny"}
        for lvl in ("high", "critical")]}})
    status = cluster.wait_phase(name, {"Expired", "Succeeded", "Failed", "Skipped"})["status"]
    assert status["phase"] == "Expired" and "timed out" in status["reason"]
    late = cast_vote(voters["alice"], cluster.ns, name, "approve", "sorry, was at lunch")
    assert late["status"]["outcome"] == "refused-already-decided"
    assert sorted(cluster.revisions().values()) == ["1", "2"], "nothing acted"


# ---------------------------------------------------------------- votes bound to one request; who writes decisions

def first_approval(custom, namespace: str) -> dict:
    return custom.list_namespaced_custom_object("remediator.dev", "v1alpha1", namespace,
                                                "remediationapprovals")["items"][0]


def test_a_relabelled_old_approval_does_not_count_on_a_later_request(cluster, operator, voters, kube_api):
    from tests.integration.test_slack_approvals import ladder_runbook
    policy = {"approval": {"rules": [
        {"level": lvl, "approvers": 1, "allowedKubernetesUsers": ["alice"], "timeout": "10m"}
        for lvl in ("medium", "high", "critical")]}}
    name = bad_rollout_incident(cluster, operator, policy, runbook=ladder_runbook())
    cluster.wait_phase(name, {"AwaitingApproval"})
    first = cluster.remediation(name)["status"]["approval"]["requestId"]
    assert cast_vote(voters["alice"], cluster.ns, name, "approve", "restart it")["status"]["outcome"] == "accepted"
    wait_for(lambda: (cluster.remediation(name)["status"].get("approval") or {}).get("requestId") not in (None, first),
             timeout=120, what="the rollback's own approval request")

    custom = client.CustomObjectsApi(kube_api)
    old = first_approval(custom, cluster.ns)
    stripped = {k: None for k in old["metadata"].get("annotations") or {} if k.startswith("remediator.dev/")}
    assert stripped, "kopf's bookkeeping annotations are there to strip"
    custom.patch_namespaced_custom_object("remediator.dev", "v1alpha1", cluster.ns, "remediationapprovals",
                                          old["metadata"]["name"], {"metadata": {"annotations": stripped}})
    again = wait_for(lambda: (first_approval(custom, cluster.ns).get("status") or {}).get("outcome") == "refused-stale"
                     and first_approval(custom, cluster.ns), what="the old vote handled again, as stale")
    assert first in again["status"]["message"] or "before the request opened" in again["status"]["message"]
    status = cluster.remediation(name)["status"]
    assert status["phase"] == "AwaitingApproval" and status["approval"]["votes"] == []
    image = cluster.apps.read_namespaced_deployment("web", cluster.ns).spec.template.spec.containers[0].image
    assert image == "registry.local/web:bad", "no rollback"


def test_a_voter_cannot_edit_their_vote_after_casting_it(cluster, operator, kube_api):
    grant(kube_api, cluster.ns, "editor", ["create", "get", "list", "patch", "update"], "alice")
    alice = as_user(kube_api, "alice")
    name = waiting_rollback(cluster, operator)
    cast_vote(alice, cluster.ns, name, "deny", "not now")
    custom = client.CustomObjectsApi(alice)
    mine = first_approval(custom, cluster.ns)

    def edit():
        try:
            custom.patch_namespaced_custom_object("remediator.dev", "v1alpha1", cluster.ns, "remediationapprovals",
                                                  mine["metadata"]["name"],
                                                  {"metadata": {"annotations": {"remediator.dev/last-handled-configuration": None}}})
        except ApiException as e:
            return e
        return None

    err = wait_for(edit, what="the admission policy refusing an edited vote")
    assert err.status in (403, 422) and "a vote cannot be changed after it is cast" in err.body


def test_a_user_rbac_lets_patch_remediation_status_is_still_refused_by_admission(cluster, operator, kube_api):
    grant(kube_api, cluster.ns, "status-writer", ["get", "patch", "update"], "mallory",
          resources=("remediations", "remediations/status"))
    name = waiting_rollback(cluster, operator)
    custom = client.CustomObjectsApi(as_user(kube_api, "mallory"))

    def approve_by_hand():
        try:
            custom.patch_namespaced_custom_object_status(
                "remediator.dev", "v1alpha1", cluster.ns, "remediations", name,
                {"status": {"approval": {"decision": "approved"}}})
        except ApiException as e:
            return e
        return None

    err = wait_for(approve_by_hand, what="the admission policy refusing a status write")
    assert err.status in (403, 422) and "only the operator writes a Remediation status" in err.body, err.body
    status = cluster.remediation(name)["status"]
    assert status["phase"] == "AwaitingApproval" and status["approval"].get("decision") is None
    assert sorted(cluster.revisions().values()) == ["1", "2"], "nothing acted"


def test_the_operator_cannot_approve_the_action_it_requested(cluster, operator, kube_api):
    from remediator.approvals.kubernetes import whoami
    me = whoami(kube_api)[0]  # the tests' operator runs with this identity
    name = bad_rollout_incident(cluster, operator, {"approval": {"rules": [
        {"level": lvl, "approvers": 1, "allowedKubernetesUsers": [me], "timeout": "10m"}
        for lvl in ("high", "critical")]}})
    cluster.wait_phase(name, {"AwaitingApproval"})
    vote = cast_vote(kube_api, cluster.ns, name, "approve", "I asked for it")
    assert vote["status"]["outcome"] == "refused-not-allowed" and "requested this action" in vote["status"]["message"]
    assert cluster.remediation(name)["status"]["phase"] == "AwaitingApproval"


def test_a_person_who_creates_a_remediation_must_say_so_and_cannot_approve_it(cluster, operator, kube_api):
    grant(kube_api, cluster.ns, "requester", ["create", "get"], "carol", resources=("remediations",))
    custom = client.CustomObjectsApi(as_user(kube_api, "carol"))
    spec = {"signal": {"source": "manual", "name": "by hand"}, "runbook": {"name": "rb", "namespace": cluster.ns},
            "target": {"kind": "Deployment", "name": "web", "namespace": cluster.ns}}

    def create(annotations):
        try:
            custom.create_namespaced_custom_object("remediator.dev", "v1alpha1", cluster.ns, "remediations", {
                "apiVersion": "remediator.dev/v1alpha1", "kind": "Remediation",
                "metadata": {"generateName": "man-", "annotations": annotations}, "spec": spec})
        except ApiException as e:
            return e
        return None

    for stamp in ({}, {"remediator.dev/requested-by": "alice"}):
        err = wait_for(lambda: create(stamp), what="the admission policy refusing an unstamped request")
        assert err.status in (403, 422) and "remediator.dev/requested-by: carol" in err.body, err.body
    assert create({"remediator.dev/requested-by": "carol"}) is None


def test_a_user_rbac_lets_patch_runbook_status_cannot_rewrite_the_statistics_the_ladder_and_retention_read(
        cluster, kube_api):
    from tests.integration.test_operator_loop import rollback_runbook

    grant(kube_api, cluster.ns, "runbook-status-writer", ["get", "patch", "update"], "mallory",
          resources=("runbooks", "runbooks/status"))
    cluster.apply_runbook("bad-rollout", rollback_runbook())
    custom = client.CustomObjectsApi(as_user(kube_api, "mallory"))

    def poison():
        try:  # "rollback never works for this signal", and "everything is counted: retention may delete"
            custom.patch_namespaced_custom_object_status(
                "remediator.dev", "v1alpha1", cluster.ns, "runbooks", "bad-rollout",
                {"status": {"signalStatsComplete": True, "signalStats": [
                    {"signal": "alertmanager/HighErrorRate", "steps": [{"name": "rollback", "failed": 99}]}]}})
        except ApiException as e:
            return e
        return None

    err = wait_for(poison, what="the admission policy refusing a Runbook status write")
    assert err.status in (403, 422) and "only the operator writes a Runbook status" in err.body, err.body
    status = cluster.custom.get_namespaced_custom_object("remediator.dev", "v1alpha1", cluster.ns, "runbooks",
                                                          "bad-rollout").get("status") or {}
    assert not status.get("signalStats") and not status.get("signalStatsComplete"), status
