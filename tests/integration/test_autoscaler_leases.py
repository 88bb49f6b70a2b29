"""Scaling an autoscaled workload on the real control plane: kube-controller-manager runs the real HPA controller
(sync period 3 s in e2e/cluster), which clamps replicas into [minReplicas, maxReplicas] even without metrics."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from remediator.actions import base as actions
from remediator.api.models import ObjectRef, Step
from remediator.controller import autoscalers
from remediator.controller.context import OperatorContext, Settings
from remediator.core.plan import autoscalers as leases
from tests.support import autoscaler_crds
from tests.support.operator import OperatorProcess, alert, alert_payload
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

NO_APPROVALS = {"approval": {"rules": [{"level": lvl, "approvers": 0} for lvl in ("low", "medium", "high", "critical")]},
                "bounds": [{"maxReplicas": 6}]}
SCALE = {"name": "scale-out", "action": "scale", "risk": "low", "timeout": "60s",
         "scale": {"maxReplicas": 8, "step": 2}, "verify": {"podsReady": {"window": "10s"}}}
AUTOSCALING = ("autoscaling", "v2", "horizontalpodautoscalers")


def runbook(step: dict) -> dict:
    return {"triggers": [{"alert": {"matchers": [{"name": "alertname", "value": "HighErrorRate"}]}}],
            "target": {"kind": "Deployment", "name": "{{ labels.deployment }}"}, "steps": [step]}


def hpa(cluster, min_replicas: int = 2, max_replicas: int = 3, name: str = "web") -> None:
    cluster.custom.create_namespaced_custom_object(*AUTOSCALING[:2], cluster.ns, AUTOSCALING[2], {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": name},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                 "minReplicas": min_replicas, "maxReplicas": max_replicas,
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                     "type": "Utilization", "averageUtilization": 50}}}]}})


def read_hpa(cluster, name: str = "web") -> dict:
    return cluster.custom.get_namespaced_custom_object(*AUTOSCALING[:2], cluster.ns, AUTOSCALING[2], name)


def replicas(cluster) -> int:
    return cluster.apps.read_namespaced_deployment("web", cluster.ns).spec.replicas


def events_of(cluster, name: str) -> dict[str, str]:
    return {e.reason: e.message or e.note for e in cluster.core.list_namespaced_event(
        cluster.ns, field_selector=f"involvedObject.name={name}").items}


@pytest.fixture
def leasing_operator(kubeconfig, namespace, crds, tmp_path):
    op = OperatorProcess(kubeconfig, [namespace], tmp_path, extra_args=["--autoscaler-sweep", "1"])
    op.start()
    yield op
    op.stop()


def incident(cluster, operator) -> str:
    assert operator.post_alerts(alert_payload([alert(cluster.ns, "web")])).status_code == 200
    return wait_for(cluster.remediations, what="a Remediation")[0]["metadata"]["name"]


@pytest.mark.slow
def test_the_hpa_reverts_a_plain_scale_but_the_lease_holds_the_floor_for_the_incident_and_is_restored(
        cluster, leasing_operator):
    cluster.apply_policy(NO_APPROVALS)
    cluster.apply_runbook("scale-out", runbook(SCALE))
    cluster.deploy("web", replicas=3)
    hpa(cluster)
    # Control: a direct scale above maxReplicas is undone by the HPA controller.
    cluster.apps.patch_namespaced_deployment("web", cluster.ns, {"spec": {"replicas": 5}})
    wait_for(lambda: replicas(cluster) == 3, timeout=30, what="the HPA puts a plain scale back to maxReplicas 3")

    name = incident(cluster, leasing_operator)
    wait_for(lambda: replicas(cluster) == 5, timeout=30, what="the HPA itself brings replicas to the raised floor")
    leased = read_hpa(cluster)
    assert (leased["spec"]["minReplicas"], leased["spec"]["maxReplicas"]) == (5, 5)
    assert leased["metadata"]["annotations"][leases.LEASE_REMEDIATION] == f"{cluster.ns}/{name}"
    seen = []

    def ended():  # sampled while the HPA controller keeps syncing (every 3 s) through a 10 s verification
        seen.append(replicas(cluster))
        phase = (cluster.remediation(name).get("status") or {}).get("phase")
        return phase if phase in ("Succeeded", "Failed", "Escalated") else None
    assert wait_for(ended, timeout=60, interval=0.5) == "Succeeded", cluster.remediation(name)["status"]
    assert set(seen) == {5}, f"the floor held for the whole incident: {seen}"
    status = cluster.remediation(name)["status"]
    said = json.dumps(status)
    assert "HorizontalPodAutoscaler web raised under a lease" in said, said
    assert "HorizontalPodAutoscaler/web spec.minReplicas: 2 -> 5" in said, "the planned changes name the HPA"

    wait_for(lambda: leases.LEASE_LABEL not in (read_hpa(cluster)["metadata"].get("labels") or {}), timeout=20,
             what="the lease ended")
    restored = read_hpa(cluster)
    assert (restored["spec"]["minReplicas"], restored["spec"]["maxReplicas"]) == (2, 3)
    assert not set(leases.LEASE_ANNOTATIONS) & set(restored["metadata"].get("annotations") or {})
    wait_for(lambda: replicas(cluster) == 3, timeout=30, what="the restored HPA clamps back to 3")
    assert "restored: maxReplicas 5 -> 3, minReplicas 5 -> 2" in wait_for(
        lambda: events_of(cluster, name).get("AutoscalerRestored"), what="an Event on the Remediation")


@pytest.mark.slow
def test_a_lease_left_by_a_killed_operator_is_restored_once_at_start_and_a_human_edit_is_kept(
        cluster, kube_api, kubeconfig, tmp_path):
    cluster.apply_policy(NO_APPROVALS)
    cluster.apply_runbook("scale-out", runbook(SCALE))
    for name in ("web", "api"):
        cluster.deploy(name, replicas=3)
        hpa(cluster, name=name)
    # api: raised, then the operator died and its Remediation was deleted; no process holds the lease.
    raised = actions.execute(kube_api, request(cluster, SCALE, name="api"))
    assert "raised under a lease" in raised.message and not raised.replayed
    assert actions.execute(kube_api, request(cluster, SCALE, name="api")).replayed, "keyed: a replay writes nothing"
    assert read_hpa(cluster, "api")["spec"]["minReplicas"] == 5
    operator = OperatorProcess(kubeconfig, [cluster.ns], tmp_path, extra_args=["--autoscaler-sweep", "1"]).start()
    try:
        wait_for(lambda: read_hpa(cluster, "api")["spec"]["minReplicas"] == 2, timeout=30, what="restored at start")
        # web: a human edits the HPA during the operator's lease.
        name = incident(cluster, operator)
        wait_for(lambda: read_hpa(cluster)["spec"]["minReplicas"] == 5, timeout=30, what="the raise")
        cluster.custom.patch_namespaced_custom_object(*AUTOSCALING[:2], cluster.ns, AUTOSCALING[2], "web",
                                                      {"spec": {"minReplicas": 4}})
        cluster.wait_phase(name, {"Succeeded"}, timeout=60)
        wait_for(lambda: leases.LEASE_LABEL not in (read_hpa(cluster)["metadata"].get("labels") or {}), timeout=20,
                 what="the lease ended")
    finally:
        operator.stop()
    kept = read_hpa(cluster)
    assert (kept["spec"]["minReplicas"], kept["spec"]["maxReplicas"]) == (4, 5), "the human's values stay"
    note = wait_for(lambda: events_of(cluster, name).get("AutoscalerEditKept"), what="an Event saying so")
    assert "someone changed it during the lease (minReplicas 5 -> 4); their values stay" in note

    api = read_hpa(cluster, "api")
    assert (api["spec"]["minReplicas"], api["spec"]["maxReplicas"]) == (2, 3)
    assert leases.LEASE_LABEL not in (api["metadata"].get("labels") or {})
    ctx = OperatorContext(api=kube_api, settings=Settings(namespaces=(cluster.ns,)))
    assert autoscalers.sweep(ctx) == [], "restored once: nothing left for the next sweep"
    restored = [e for e in cluster.core.list_namespaced_event(cluster.ns, field_selector="involvedObject.name=api").items
                if e.reason == "AutoscalerRestored"]
    assert len(restored) == 1 and "is gone" in (restored[0].message or restored[0].note)


# ---------------------------------------------------------------- the action and the sweep, without the loop


def request(cluster, step: dict, remediation: str = "gone-incident", key: str = "scale-0-0123456789abcdef",
            name: str = "web"):
    return actions.ActionRequest(action=step["action"], target=ObjectRef(kind="Deployment", name=name,
                                                                           namespace=cluster.ns),
                                 key=key, step=Step.model_validate(step), max_replicas=6,
                                 remediation=f"{cluster.ns}/{remediation}", remediation_uid="uid-gone")


def test_a_direct_scale_of_an_autoscaled_workload_is_refused_with_the_reason(cluster, kube_api):
    cluster.deploy("web", replicas=3)
    hpa(cluster)
    refuse = {**SCALE, "scale": {**SCALE["scale"], "autoscaler": "refuse"}}
    with pytest.raises(actions.ActionError) as refused:
        actions.execute(kube_api, request(cluster, refuse))
    assert refused.value.reason == "Autoscaled"
    assert "autoscaled by HorizontalPodAutoscaler web" in refused.value.message
    assert replicas(cluster) == 3 and read_hpa(cluster)["spec"]["minReplicas"] == 2


@pytest.fixture(scope="module")
def autoscaler_crds_installed(crds, tool):
    autoscaler_crds.install(tool("kubectl"))


def test_keda_scaled_object_gets_paused_replicas_under_a_lease_and_it_is_removed_again(
        cluster, kube_api, autoscaler_crds_installed):
    cluster.deploy("web", replicas=3)
    scaled = ("keda.sh", "v1alpha1", cluster.ns, "scaledobjects")
    cluster.custom.create_namespaced_custom_object(*scaled, {
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"name": "web"}, "maxReplicaCount": 10,
                 "triggers": [{"type": "cpu", "metricType": "Utilization", "metadata": {"value": "50"}}]}})
    result = actions.execute(kube_api, request(cluster, SCALE))
    assert "ScaledObject web raised under a lease" in result.message
    assert result.changes["ScaledObject/web pausedReplicas"] == {"before": None, "after": "5"}
    assert replicas(cluster) == 5, "the workload is scaled along with the pinned count"
    annotations = cluster.custom.get_namespaced_custom_object(*scaled, "web")["metadata"]["annotations"]
    assert annotations[leases.PAUSED_REPLICAS] == "5"
    ctx = OperatorContext(api=kube_api, settings=Settings(namespaces=(cluster.ns,)))
    assert [op for op, _ in autoscalers.sweep(ctx)] == ["restore"]
    after = cluster.custom.get_namespaced_custom_object(*scaled, "web")["metadata"].get("annotations") or {}
    assert leases.PAUSED_REPLICAS not in after and leases.LEASE_REMEDIATION not in after


def test_raise_memory_under_an_auto_mode_vpa_is_refused_and_names_its_max_allowed(
        cluster, kube_api, autoscaler_crds_installed):
    cluster.deploy("web", replicas=1)
    client.CustomObjectsApi(kube_api).create_namespaced_custom_object(
        "autoscaling.k8s.io", "v1", cluster.ns, "verticalpodautoscalers", {
            "apiVersion": "autoscaling.k8s.io/v1", "kind": "VerticalPodAutoscaler", "metadata": {"name": "web"},
            "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                     "updatePolicy": {"updateMode": "Auto"},
                     "resourcePolicy": {"containerPolicies": [{"containerName": "*",
                                                               "maxAllowed": {"memory": "512Mi"}}]}}})
    step = {"name": "more-memory", "action": "raiseMemory", "risk": "low", "raiseMemory": {"maxLimit": "1Gi"}}
    with pytest.raises(actions.ActionError) as refused:
        actions.execute(kube_api, request(cluster, step, key="raiseMemory-0-0123456789abcdef"))
    assert refused.value.reason == "AutoscaledByVPA"
    assert "VerticalPodAutoscaler web (updateMode Auto)" in refused.value.message
    assert "maxAllowed memory (now 512Mi)" in refused.value.message
    limits = cluster.apps.read_namespaced_deployment("web", cluster.ns).spec.template.spec.containers[0].resources
    assert limits.limits["memory"] == "64Mi"


def test_a_lease_shorter_than_a_minute_is_refused_by_the_apiserver_naming_the_field(cluster):
    short = {**SCALE, "scale": {**SCALE["scale"], "leaseDuration": "10s"}}
    with pytest.raises(ApiException) as refused:
        cluster.apply_runbook("too-short", runbook(short))
    assert refused.value.status == 422
    assert "spec.steps[0].scale.leaseDuration" in refused.value.body
    assert "leaseDuration must be between 1m and 7d (got 10s)" in refused.value.body


def test_forged_leases_never_make_the_sweep_read_another_namespace_and_one_bad_lease_blocks_no_other(
        cluster, kube_api):
    forged = {"remediator.dev/lease-expires": "2099-01-01T00:00:00Z",
              "remediator.dev/lease-original": '{"maxReplicas": 3, "minReplicas": 1}',
              "remediator.dev/lease-written": '{"maxReplicas": 3, "minReplicas": 2}'}
    for name, holder in (("elsewhere", "kube-system/some-remediation"), ("odd", f"{cluster.ns}/../../x"),
                         ("junk", None)):
        hpa(cluster, name=name)
        annotations = {**forged, "remediator.dev/lease-remediation": holder} if holder else \
            {"remediator.dev/lease-remediation": f"{cluster.ns}/x", "remediator.dev/lease-original": "{not json"}
        cluster.custom.patch_namespaced_custom_object(*AUTOSCALING[:2], cluster.ns, AUTOSCALING[2], name, {
            "metadata": {"labels": {leases.LEASE_LABEL: "held"}, "annotations": annotations}})
    ctx = OperatorContext(api=kube_api, settings=Settings(namespaces=(cluster.ns,)))
    done = sorted(autoscalers.sweep(ctx))
    assert [op for op, _ in done] == ["drop", "restore", "restore"], done
    assert all("is gone" in why for op, why in done if op == "restore"), "not believed: treated as gone"
    assert read_hpa(cluster, "elsewhere")["spec"]["minReplicas"] == 1  # the tenant's own values, in its own HPA
    assert autoscalers.sweep(ctx) == []
