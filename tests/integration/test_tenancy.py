"""The operator is never a confused deputy: namespaces confine Runbooks, tenants' RBAC bounds actions,
and nobody who can reach a webhook can steer it or drown it."""

from __future__ import annotations

import concurrent.futures
import uuid

import pytest
import requests
from kubernetes import client

from tests.integration.conftest import Cluster
from tests.integration.test_operator_loop import NO_APPROVALS, only_remediation, rollback_runbook
from tests.support.operator import OperatorProcess, alert, alert_payload
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def team_b(kube_api, namespace):
    """A second tenant namespace, beside the test's own (team A)."""
    name = f"{namespace[:50]}-b"
    core = client.CoreV1Api(kube_api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield Cluster(kube_api, name)
    core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture
def two_tenant_operator(kubeconfig, namespace, team_b, crds, tmp_path):
    op = OperatorProcess(kubeconfig, [namespace, team_b.ns], tmp_path)
    op.start()
    yield op
    op.stop()


def refusals(operator, reason: str) -> float:
    for line in requests.get(f"{operator.url}/metrics", timeout=5).text.splitlines():
        if line.startswith(f'remediator_refusals_total{{reason="{reason}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_team_a_runbook_does_nothing_in_team_b_for_an_alert_labelled_team_b_and_says_why(
        cluster, team_b, two_tenant_operator):
    cluster.apply_policy(NO_APPROVALS)
    cluster.apply_runbook("bad-rollout", rollback_runbook())
    cluster.deploy("web", replicas=1)
    team_b.deploy("web", replicas=1)
    team_b.bad_rollout("web")
    wait_for(lambda: len(team_b.revisions()) == 2, what="team-b's bad revision")

    resp = two_tenant_operator.post_alerts(alert_payload([alert(team_b.ns, "web")]))
    assert resp.status_code == 200, resp.text
    result = resp.json()["results"][0]
    assert result["outcome"] == "unmatched" and result["remediation"] is None
    assert any(f"Runbook {cluster.ns}/bad-rollout" in r and f"acts only in namespace '{cluster.ns}'" in r
               and f"about '{team_b.ns}'" in r for r in result["reasons"]), result["reasons"]
    assert refusals(two_tenant_operator, "cross-namespace-signal") >= 1
    assert cluster.remediations() == [] and team_b.remediations() == []
    assert sorted(team_b.revisions().values()) == ["1", "2"], "team-b's Deployment is untouched"


def service_account_may(cluster: Cluster, name: str, deployment_verbs: list[str]) -> None:
    """A ServiceAccount with a Role over Deployments (the given verbs) and ReplicaSets (read)."""
    rbac = client.RbacAuthorizationV1Api(cluster.api)
    cluster.core.create_namespaced_service_account(cluster.ns, {"metadata": {"name": name}})
    rbac.create_namespaced_role(cluster.ns, {"metadata": {"name": name}, "rules": [
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": deployment_verbs},
        {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["get", "list", "watch"]}]})
    rbac.create_namespaced_role_binding(cluster.ns, {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": cluster.ns}]})


def rollback_as(cluster: Cluster, operator, account: str, deployment_verbs: list[str],
                allowed: bool = True) -> dict:
    """A bad rollout whose rollback Runbook acts as `account`, which may do `deployment_verbs`: the outcome.
    `allowed`: the RemediationPolicy lists the account in allowedServiceAccounts."""
    service_account_may(cluster, account, deployment_verbs)
    cluster.apply_policy({**NO_APPROVALS, "bounds": [{"allowedServiceAccounts": [account] if allowed else []}]})
    cluster.apply_runbook("bad-rollout", {**rollback_runbook(), "serviceAccountName": account})
    cluster.deploy("web", replicas=2)
    cluster.bad_rollout("web")
    wait_for(lambda: len(cluster.revisions()) == 2, what="bad revision")
    assert operator.post_alerts(alert_payload([alert(cluster.ns, "web")])).status_code == 200
    name = only_remediation(cluster)["metadata"]["name"]
    return cluster.wait_phase(name, {"Succeeded", "Failed", "Escalated", "Skipped"})["status"]


def test_a_runbook_naming_a_service_account_the_policy_does_not_allow_is_refused_before_acting(
        cluster, operator):
    status = rollback_as(cluster, operator, "ci-deployer", ["get", "list", "watch", "patch", "update"],
                         allowed=False)
    assert status["phase"] != "Succeeded" and not status.get("steps"), status
    said = " ".join([status.get("reason", ""), *(e["message"] for e in status.get("timeline", []))])
    assert "serviceAccountName 'ci-deployer' is not allowed" in said and "allowedServiceAccounts" in said, status
    assert not any("dry run refused" in c for c in status.get("plannedChanges", [])), \
        "not even a dry run as the borrowed identity"
    assert sorted(cluster.revisions().values()) == ["1", "2"], "the Deployment is untouched"
    assert refusals(operator, "forbidden-identity") >= 1, "counted as a refused attempt"


def test_a_runbook_whose_service_account_may_not_patch_deployments_gets_the_403_and_nothing_changes(
        cluster, operator):
    status = rollback_as(cluster, operator, "read-only", ["get", "list", "watch"])
    assert status["phase"] == "Failed", status
    step = status["steps"][0]
    assert step["phase"] == "Failed" and "403" in step["message"], step
    assert f"system:serviceaccount:{cluster.ns}:read-only" in step["message"], "the apiserver's own words"
    assert any("dry run refused" in c and "403" in c for c in status.get("plannedChanges", [])), status
    assert sorted(cluster.revisions().values()) == ["1", "2"], "the Deployment is untouched"


def test_a_runbook_whose_service_account_may_patch_deployments_acts_through_it(cluster, operator):
    assert rollback_as(cluster, operator, "deployer", ["get", "list", "watch", "patch", "update"])["phase"] == \
        "Succeeded"
    assert sorted(cluster.revisions().values()) == ["2", "3"]


def test_oversized_and_flooding_webhook_requests_get_413_and_429_while_alertmanager_gets_through(cluster, operator):
    cluster.apply_policy({"mode": "dryRun"})
    cluster.apply_runbook("bad-rollout", rollback_runbook())
    cluster.deploy("web", replicas=1)
    url = f"{operator.url}/webhooks/alertmanager"

    oversized = requests.post(url, data=b"{" + b" " * (2 << 20) + b"}", timeout=30,
                              headers={"Authorization": f"Bearer {operator.token}",
                                       "Content-Type": "application/json"})
    assert oversized.status_code == 413

    def stranger(_):
        return requests.post(url, json={"alerts": []}, headers={"Authorization": "Bearer guess"}, timeout=10)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        flood = list(pool.map(stranger, range(60)))
        legit = operator.post_alerts(alert_payload([alert(cluster.ns, "web", fingerprint=uuid.uuid4().hex[:8])]))
    codes = [r.status_code for r in flood]
    assert set(codes) <= {401, 429} and codes.count(429) >= 40, codes
    assert all(r.headers.get("Retry-After") for r in flood if r.status_code == 429)
    assert legit.status_code == 200 and legit.json()["results"][0]["outcome"] == "created", legit.text
    assert refusals(operator, "rate-limited") >= 40 and refusals(operator, "unauthenticated-webhook") >= 1
