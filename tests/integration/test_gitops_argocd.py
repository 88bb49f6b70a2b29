"""A Deployment an Argo CD Application owns, against the real apiserver with Argo CD's own CRDs (the Argo CD
controller is not run: the test writes the synced revision as it would). The operator pauses automated sync
for the rollback and restores it exactly once; an Application that a parent would re-enable is refused."""

from __future__ import annotations

import subprocess

import pytest
from kubernetes import client

from remediator.core.plan import gitops
from tests.support import argocd
from tests.support.operator import OperatorProcess, alert, alert_payload
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NO_APPROVALS = {"approval": {"rules": [{"level": lvl, "approvers": 0} for lvl in ("low", "medium", "high", "critical")]}}
RUNBOOK = {
    "triggers": [{"alert": {"matchers": [{"name": "alertname", "value": "HighErrorRate"}]}}],
    "target": {"kind": "Deployment", "name": "{{ labels.deployment }}"},
    "steps": [{"name": "rollback", "action": "rollback", "risk": "medium", "timeout": "60s",
               "verify": {"rolloutComplete": {}}}],
}
AUTOMATED = {"prune": True, "selfHeal": True, "allowEmpty": False}


@pytest.fixture(scope="session")
def argocd_crds(kube_api, tool):
    for path in argocd.crd_files():
        proc = subprocess.run([tool("kubectl"), "apply", "--server-side", "--force-conflicts", "-f", str(path)],
                              capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr
    ext = client.ApiextensionsV1Api(kube_api)
    for name in ("applications.argoproj.io", "applicationsets.argoproj.io"):
        wait_for(lambda: any(c.type == "Established" and c.status == "True"
                             for c in ext.read_custom_resource_definition(name).status.conditions or []),
                 what=f"CRD {name} established")


@pytest.fixture
def gitops_operator(kubeconfig, namespace, crds, argocd_crds, tmp_path):
    op = OperatorProcess(kubeconfig, [namespace], tmp_path, extra_args=["--gitops-sweep", "1"])
    op.start()
    yield op
    op.stop()


def app(cluster) -> dict:
    return cluster.custom.get_namespaced_custom_object(*argocd.APPLICATION[:2], cluster.ns, argocd.APPLICATION[2], "web")


def owned_bad_rollout(cluster, application: dict) -> None:
    cluster.custom.create_namespaced_custom_object(*argocd.APPLICATION[:2], cluster.ns, argocd.APPLICATION[2],
                                                   application)
    cluster.deploy("web", replicas=2)
    cluster.apps.patch_namespaced_deployment("web", cluster.ns, {"metadata": {"annotations": {
        gitops.ARGO_TRACKING: argocd.tracking_id(cluster.ns, "web", cluster.ns, "web")}}})
    cluster.bad_rollout("web")
    wait_for(lambda: len(cluster.revisions()) == 2, what="the bad revision")


def incident(cluster, operator) -> dict:
    assert operator.post_alerts(alert_payload([alert(cluster.ns, "web")])).status_code == 200
    name = wait_for(cluster.remediations, what="a Remediation")[0]["metadata"]["name"]
    return cluster.wait_phase(name, {"Succeeded", "Failed", "Escalated", "Skipped"})


def test_argocd_automated_sync_is_paused_for_the_rollback_and_restored_exactly_when_git_moves_on(
        cluster, gitops_operator):
    cluster.apply_policy({**NO_APPROVALS, "gitops": {"argocd": "suspend"}})
    cluster.apply_runbook("bad-release", RUNBOOK)
    owned_bad_rollout(cluster, argocd.application("web", cluster.ns, AUTOMATED, revision="abc123"))

    done = incident(cluster, gitops_operator)
    name = done["metadata"]["name"]
    assert done["status"]["phase"] == "Succeeded", done["status"]
    paused = app(cluster)
    notes = paused["metadata"]["annotations"]
    assert "automated" not in paused["spec"]["syncPolicy"]
    assert notes[gitops.PAUSED_BY] == f"{cluster.ns}/{name}" and notes[gitops.PAUSED_REVISION] == "abc123"
    assert notes[gitops.PAUSED_UNTIL] == done["status"]["gitops"]["until"]
    assert done["status"]["gitops"]["kind"] == "Application"
    assert done["status"]["gitops"]["desiredState"].startswith("Git at revision abc123")

    # Argo CD syncs a new commit (its controller would write this): the operator restores automated sync.
    cluster.custom.patch_namespaced_custom_object(*argocd.APPLICATION[:2], cluster.ns, argocd.APPLICATION[2], "web",
                                                  {"status": {"sync": {"revision": "def456"}}})
    wait_for(lambda: "automated" in app(cluster)["spec"]["syncPolicy"], timeout=30, what="automated sync restored")
    restored = app(cluster)
    assert restored["spec"]["syncPolicy"]["automated"] == AUTOMATED
    assert not any(k in (restored["metadata"].get("annotations") or {}) for k in gitops.OUR_ANNOTATIONS)
    wait_for(lambda: (cluster.remediation(name)["status"]["gitops"].get("resumedAt")), what="the resume recorded")

    # Restored once: a user's later change to the sync policy is not overwritten by a second restore.
    cluster.custom.patch_namespaced_custom_object(*argocd.APPLICATION[:2], cluster.ns, argocd.APPLICATION[2], "web",
                                                  {"spec": {"syncPolicy": {"automated": {"selfHeal": False}}}})
    gitops_operator.stop()
    gitops_operator.start()
    assert app(cluster)["spec"]["syncPolicy"]["automated"]["selfHeal"] is False


@pytest.mark.parametrize("trap", ["applicationset", "parent-app"])
def test_an_application_a_parent_would_re_enable_is_refused_with_a_reason_naming_the_parent(
        cluster, gitops_operator, trap):
    cluster.apply_policy({**NO_APPROVALS, "gitops": {"argocd": "suspend"}})
    cluster.apply_runbook("bad-release", RUNBOOK)
    if trap == "applicationset":
        owner = cluster.custom.create_namespaced_custom_object(*argocd.APPLICATIONSET[:2], cluster.ns,
                                                               argocd.APPLICATIONSET[2],
                                                               argocd.application_set("all-web", cluster.ns))
        body = argocd.application("web", cluster.ns, AUTOMATED, owner_references=[{
            "apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet", "name": "all-web",
            "uid": owner["metadata"]["uid"], "controller": True}])
        named = f"ApplicationSet {cluster.ns}/all-web"
    else:
        body = argocd.application("web", cluster.ns, AUTOMATED, annotations={
            gitops.ARGO_TRACKING: f"{cluster.ns}_root:argoproj.io/Application:{cluster.ns}/web"})
        named = f"parent Argo CD Application {cluster.ns}/root"
    owned_bad_rollout(cluster, body)
    generation = cluster.apps.read_namespaced_deployment("web", cluster.ns).metadata.generation

    status = incident(cluster, gitops_operator)["status"]
    assert status["phase"] == "Escalated" and named in status["reason"], status
    assert app(cluster)["spec"]["syncPolicy"]["automated"] == AUTOMATED, "not paused"
    assert cluster.apps.read_namespaced_deployment("web", cluster.ns).metadata.generation == generation
