"""Chaos drills on real parts: SIGKILL at every step boundary for every action, the apiserver restarting and
etcd stalling mid-loop, two peered replicas fed the same deliveries, rights revoked mid-run."""

from __future__ import annotations

import concurrent.futures
import uuid

import pytest
from kubernetes import client

from e2e.cluster import control_plane
from remediator.approvals.kubernetes import cast_vote
from remediator.failpoints import BOUNDARIES
from tests.integration.test_kubernetes_approvals import APPROVERS, voters  # noqa: F401 (fixture)
from tests.integration.test_operator_loop import NO_APPROVALS, bad_rollout_incident, only_remediation, rollback_runbook
from tests.integration.test_tenancy import service_account_may
from tests.support.operator import OperatorProcess, alert, alert_payload
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TERMINAL = {"Succeeded", "Failed", "Escalated", "Skipped", "Denied"}


def action_runbook(step: dict) -> dict:
    return {"triggers": [{"alert": {"matchers": [{"name": "alertname", "value": "HighErrorRate"}]}}],
            "target": {"kind": "Deployment", "name": "{{ labels.deployment }}"},
            "steps": [{"name": "act", "risk": "low", "timeout": "60s", **step}],
            "guard": {"cooldown": "10m", "maxRunsPerHour": 5}}


def keys_on(cluster, annotation: str = "remediator.dev/action-keys") -> str:
    return (cluster.apps.read_namespaced_deployment("web", cluster.ns).metadata.annotations or {}).get(annotation, "")


def restarted_once(cluster, status):
    assert keys_on(cluster).count(status["steps"][0]["idempotencyKey"]) == 1
    assert len(cluster.revisions()) == 2, "exactly one restart: one new ReplicaSet"


def scaled_once(cluster, status):
    assert cluster.apps.read_namespaced_deployment("web", cluster.ns).spec.replicas == 3, "2 + one step, not two"


def memory_raised_once(cluster, status):
    limits = cluster.apps.read_namespaced_deployment("web", cluster.ns).spec.template.spec.containers[0] \
        .resources.limits
    assert limits["memory"] == "96Mi", "64Mi x 1.5 once, not x 2.25"


def pods_deleted_once(cluster, status):
    deleted = keys_on(cluster, "remediator.dev/deleted-pods")
    assert deleted.count(status["steps"][0]["idempotencyKey"]) == 1, deleted


ACTIONS = {
    "restartRollout": ({"action": "restartRollout", "verify": {"rolloutComplete": {}}}, None, restarted_once),
    "scale": ({"action": "scale", "scale": {"minReplicas": 1, "maxReplicas": 10, "step": 1},
               "verify": {"rolloutComplete": {}}}, None, scaled_once),
    "raiseMemory": ({"action": "raiseMemory", "raiseMemory": {"factor": 1.5, "maxLimit": "1Gi"},
                     "verify": {"rolloutComplete": {}}}, None, memory_raised_once),
    # the crash-looping pods never verify: a 20 s step ends the drill 40 s sooner; it is about acting once
    "deletePod": ({"action": "deletePod", "deletePod": {"onlyFailing": True}, "timeout": "20s"}, "crashloop",
                  pods_deleted_once),
}


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("action", ACTIONS)
def test_every_action_killed_at_every_boundary_acts_exactly_once(cluster, kubeconfig, tmp_path, action, boundary):
    step, failure, acted_once = ACTIONS[action]
    cluster.apply_policy(NO_APPROVALS)
    cluster.apply_runbook("chaos", action_runbook(step))
    cluster.deploy("web", replicas=2)
    if failure:
        cluster.bad_rollout("web", failure=failure)
        wait_for(lambda: len(cluster.revisions()) == 2, what="failing revision")
    op = OperatorProcess(kubeconfig, [cluster.ns], tmp_path, failpoints=boundary).start()
    try:
        assert op.post_alerts(alert_payload([alert(cluster.ns, "web")])).status_code == 200
        assert op.wait_killed() == -9, f"the {boundary} failpoint SIGKILLs the process"
        name = only_remediation(cluster)["metadata"]["name"]
        op.start(failpoints="")
        status = cluster.wait_phase(name, TERMINAL)["status"]
    finally:
        op.stop()
    assert len(status["steps"]) == 1 and status["steps"][0]["appliedAt"], status
    acted_once(cluster, status)


@pytest.mark.serial  # restarts the apiserver every test talks to
def test_the_loop_resumes_after_the_apiserver_restarts_and_etcd_stalls_mid_loop(cluster, operator):
    cluster.apply_policy(NO_APPROVALS)
    cluster.apply_runbook("bad-rollout", rollback_runbook(verify={"podsReady": {"window": "20s"}}))
    cluster.deploy("web", replicas=2)
    cluster.bad_rollout("web")
    wait_for(lambda: len(cluster.revisions()) == 2, what="bad revision")
    assert operator.post_alerts(alert_payload([alert(cluster.ns, "web")])).status_code == 200
    name = only_remediation(cluster)["metadata"]["name"]
    cluster.wait_phase(name, {"Verifying"})

    control_plane.restart_apiserver(down_for=3)
    wait_for(control_plane.apiserver_ready, timeout=60, what="apiserver back")
    control_plane.pause_component("etcd", 5)

    status = cluster.wait_phase(name, TERMINAL, timeout=180)["status"]
    assert status["phase"] == "Succeeded", status
    assert sorted(cluster.revisions().values()) == ["2", "3"], "exactly one rollback across the outage"
    assert operator.healthy(), "the operator survived the outage"


def test_two_peered_replicas_fed_the_same_deliveries_act_once_per_incident(cluster, kubeconfig, tmp_path):
    peering = f"chaos-{uuid.uuid4().hex[:6]}"
    cluster.custom.create_namespaced_custom_object("kopf.dev", "v1", cluster.ns, "kopfpeerings", {
        "apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": peering}})
    cluster.apply_policy(NO_APPROVALS)
    cluster.apply_runbook("bad-rollout", rollback_runbook())
    for app in ("web", "api"):
        cluster.deploy(app, replicas=2)
        cluster.bad_rollout(app)
        wait_for(lambda app=app: len(cluster.revisions(app)) == 2, what=f"{app} bad revision")
    for i in range(2):
        (tmp_path / f"r{i}").mkdir()
    replicas = [OperatorProcess(kubeconfig, [cluster.ns], tmp_path / f"r{i}",
                                extra_args=["--peering", peering, "--priority", str(100 + i)])
                for i in range(2)]
    try:
        for r in replicas:
            r.start()
        payload = alert_payload([alert(cluster.ns, "web", fingerprint="w1"), alert(cluster.ns, "api", fingerprint="a1")])
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(lambda r: r.post_alerts(payload), replicas * 3))
        assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
        names = wait_for(lambda: len(cluster.remediations()) == 2 and cluster.remediations(), what="2 incidents")
        for item in names:
            assert cluster.wait_phase(item["metadata"]["name"], TERMINAL)["status"]["phase"] == "Succeeded"
    finally:
        for r in replicas:
            r.stop()
    for app in ("web", "api"):
        assert sorted(cluster.revisions(app).values()) == ["2", "3"], f"{app} rolled back exactly once"


def test_rights_revoked_mid_run_fail_the_remediation_with_the_403_and_hide_nothing(
        cluster, kubeconfig, tmp_path, voters, kube_api):  # noqa: F811 (fixture)
    service_account_may(cluster, "deployer", ["get", "list", "watch", "patch"])
    op = OperatorProcess(kubeconfig, [cluster.ns], tmp_path, extra_args=["--action-service-account", "deployer"])
    op.start()
    try:
        name = bad_rollout_incident(cluster, op, APPROVERS)
        assert cluster.wait_phase(name, {"AwaitingApproval"})["status"]["phase"] == "AwaitingApproval"
        client.RbacAuthorizationV1Api(kube_api).delete_namespaced_role_binding("deployer", cluster.ns)
        cast_vote(voters["alice"], cluster.ns, name, "approve", "go")
        status = cluster.wait_phase(name, TERMINAL)["status"]
    finally:
        op.stop()
    assert status["phase"] == "Failed", status
    step = status["steps"][0]
    assert step["phase"] == "Failed" and "403" in step["message"] and "deployer" in step["message"], step
    assert "failed" in status["reason"] and "403" in status["reason"]
    assert sorted(cluster.revisions().values()) == ["1", "2"], "nothing half-done: the Deployment is untouched"
