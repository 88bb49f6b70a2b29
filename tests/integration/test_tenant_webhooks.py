"""Per-namespace webhook routes, over real HTTP to the real operator on the real apiserver: a tenant's token,
kept in a Secret of its own namespace, is the only thing that starts its remediations; an alert's namespace
label binds nothing by itself."""

from __future__ import annotations

import uuid

import pytest
import requests

from tests.integration.conftest import Cluster
from tests.integration.test_operator_loop import rollback_runbook
from tests.integration.test_tenancy import refusals, team_b  # noqa: F401 (team_b is a fixture)
from tests.support.operator import OperatorProcess, alert, alert_payload
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

SECRET = "remediator-webhook-token"


def give_token(tenant: Cluster, token: str) -> str:
    """What a namespace's admins do to opt in: a Secret of the well-known name, key `token`."""
    tenant.core.create_namespaced_secret(tenant.ns, {"metadata": {"name": SECRET}, "stringData": {"token": token}})
    return token


def post(operator: OperatorProcess, path: str, token: str, alerts: list[dict]) -> requests.Response:
    return requests.post(f"{operator.url}/webhooks/alertmanager{path}", json=alert_payload(alerts), timeout=10,
                         headers={"Authorization": f"Bearer {token}"})


def unlabelled(deployment: str, **kw) -> dict:
    """An alert as a tenant's own Alertmanager sends it: no namespace label, the path says."""
    body = alert("-", deployment, **kw)
    del body["labels"]["namespace"]
    return body


@pytest.fixture
def tenants(cluster, team_b):  # noqa: F811 (the fixture)
    """Two tenants, each with the rollback Runbook and a Deployment it could act on (in dry run)."""
    for tenant in (cluster, team_b):
        tenant.apply_policy({"mode": "dryRun"})
        tenant.apply_runbook("bad-rollout", rollback_runbook())
    yield cluster, team_b
    team_b.cleanup()


@pytest.fixture
def tenant_operator(kubeconfig, namespace, team_b, crds, tmp_path):  # noqa: F811 (the fixture)
    op = OperatorProcess(kubeconfig, [namespace, team_b.ns], tmp_path)
    op.start()
    yield op
    op.stop()


def test_a_tenants_own_token_on_its_own_path_creates_its_remediation_from_an_unlabelled_alert(
        tenants, tenant_operator):
    team_a, _ = tenants
    token = give_token(team_a, uuid.uuid4().hex)
    resp = post(tenant_operator, f"/{team_a.ns}", token, [unlabelled("web")])
    assert resp.status_code == 200, resp.text
    [result] = resp.json()["results"]
    assert result["outcome"] == "created", result
    [made] = team_a.remediations()
    assert made["metadata"]["name"] == result["remediation"]
    assert made["spec"]["signal"]["labels"]["namespace"] == team_a.ns, "the path's namespace, recorded"


def test_tenant_bs_token_cannot_create_a_remediation_in_tenant_a_by_any_route(tenants, tenant_operator):
    team_a, team_b = tenants  # noqa: F811
    give_token(team_a, uuid.uuid4().hex)
    b_token = give_token(team_b, uuid.uuid4().hex)
    before = {r: refusals(tenant_operator, r) for r in
              ("unauthenticated-webhook", "namespace-mismatch", "shared-token-for-tenant")}

    wrong_token = post(tenant_operator, f"/{team_a.ns}", b_token, [alert(team_a.ns, "web")])
    assert wrong_token.status_code == 401, wrong_token.text

    wrong_label = post(tenant_operator, f"/{team_b.ns}", b_token, [alert(team_a.ns, "web", fingerprint="aimed")])
    assert wrong_label.status_code == 400, wrong_label.text
    [refused] = wrong_label.json()["results"]
    assert refused["outcome"] == "refused" and refused["remediation"] is None
    assert f"'{team_a.ns}'" in refused["reasons"][0] and f"'{team_b.ns}'" in refused["reasons"][0]

    shared = tenant_operator.post_alerts(alert_payload([alert(team_a.ns, "web", fingerprint="shared")]))
    assert shared.status_code == 400, shared.text
    assert f"/webhooks/alertmanager/{team_a.ns}" in shared.json()["results"][0]["reasons"][0]

    assert team_a.remediations() == [] and team_b.remediations() == []
    for reason, count in before.items():
        assert refusals(tenant_operator, reason) >= count + 1, reason


def test_a_delivery_mixing_own_and_foreign_alerts_creates_only_the_own_one_and_says_why_for_the_other(
        tenants, tenant_operator):
    team_a, team_b = tenants  # noqa: F811
    b_token = give_token(team_b, uuid.uuid4().hex)
    resp = post(tenant_operator, f"/{team_b.ns}", b_token,
                [alert(team_b.ns, "web", fingerprint="own"), alert(team_a.ns, "web", fingerprint="foreign")])
    assert resp.status_code == 200, resp.text
    own, foreign = resp.json()["results"]
    assert own["outcome"] == "created" and foreign["outcome"] == "refused", resp.json()
    assert len(team_b.remediations()) == 1 and team_a.remediations() == []


def test_the_shared_route_still_serves_a_namespace_until_it_takes_a_token_of_its_own(tenants, tenant_operator):
    team_a, _ = tenants
    first = tenant_operator.post_alerts(alert_payload([alert(team_a.ns, "web", fingerprint="before")]))
    assert first.status_code == 200 and first.json()["results"][0]["outcome"] == "created", first.text
    give_token(team_a, uuid.uuid4().hex)
    # probed with an alert no Runbook matches, so nothing is created while the operator's cache catches up
    wait_for(lambda: tenant_operator.post_alerts(alert_payload([alert(team_a.ns, "web", alertname="Probe")]))
             .status_code == 400, timeout=15, what="the shared token refused once the namespace opted in (10 s cache)")
    after = tenant_operator.post_alerts(alert_payload([alert(team_a.ns, "api", fingerprint="after")]))
    assert after.status_code == 400 and after.json()["results"][0]["outcome"] == "refused", after.text
    assert len(team_a.remediations()) == 1


def test_a_token_rotated_in_the_secret_takes_effect_and_the_old_one_stops_working(tenants, tenant_operator):
    team_a, _ = tenants
    old = give_token(team_a, uuid.uuid4().hex)
    assert post(tenant_operator, f"/{team_a.ns}", old, [unlabelled("web", fingerprint="one")]).status_code == 200
    new = uuid.uuid4().hex
    team_a.core.patch_namespaced_secret(SECRET, team_a.ns, {"stringData": {"token": new}})
    wait_for(lambda: post(tenant_operator, f"/{team_a.ns}", new, [unlabelled("web", fingerprint="two")])
             .status_code == 200, timeout=15, interval=1.5,  # a wrong token is a stranger: 1/s, burst 10
             what="the rotated token accepted (10 s cache)")
    assert post(tenant_operator, f"/{team_a.ns}", old, [unlabelled("web", fingerprint="three")]).status_code == 401


def test_a_namespace_without_a_token_secret_or_not_served_is_refused_on_its_own_path(
        kube_api, tenants, tenant_operator):
    team_a, _ = tenants
    assert post(tenant_operator, f"/{team_a.ns}", "anything", [unlabelled("web")]).status_code == 401
    assert post(tenant_operator, f"/{team_a.ns}", "", [unlabelled("web")]).status_code == 401
    other = Cluster(kube_api, "default")
    assert post(tenant_operator, f"/{other.ns}", "anything", [unlabelled("web")]).status_code == 401
    assert post(tenant_operator, "/Not_A_Namespace", "anything", [unlabelled("web")]).status_code == 404
    assert team_a.remediations() == []
