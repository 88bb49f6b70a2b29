"""An Argo Rollout as a target, on the real apiserver with the Rollout CRD from Argo's own manifests.

The Argo Rollouts controller is not run here: the test plays its part (it writes the Rollout's
ReplicaSets and status as the controller would); the real ReplicaSet controller and KWOK run their pods.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from kubernetes import client

from remediator.actions import execute
from remediator.actions.argo_rollout import GROUP, PLURAL, VERSION
from remediator.actions.base import recorded_keys
from remediator.api.models import ObjectRef, RolloutCompleteCheck
from remediator.verification.probes import observe
from remediator.verification.verdicts import rollout_complete
from tests.integration.test_actions import key, request
from tests.support.waiting import wait_for
from tests.support.workloads import bad_template_patch, deployment

pytestmark = pytest.mark.integration

GOOD, BAD = "aaa111", "bbb222"


def template(image_patch: dict | None = None) -> dict:
    tpl = deployment("web")["spec"]["template"]
    if image_patch:
        bad = image_patch["spec"]["template"]
        tpl = {"metadata": {"labels": {**tpl["metadata"]["labels"], **bad["metadata"]["labels"]}},
               "spec": {"containers": [{**tpl["spec"]["containers"][0], **bad["spec"]["containers"][0]}]}}
    return tpl


def with_hash(tpl: dict, pod_hash: str) -> dict:
    return {**tpl, "metadata": {"labels": {**tpl["metadata"]["labels"], "rollouts-pod-template-hash": pod_hash}}}


def replica_set(rollout: dict, revision: int, pod_hash: str, tpl: dict, replicas: int) -> dict:
    """A ReplicaSet as the Rollouts controller makes it: owned by the Rollout, numbered, hash-labelled."""
    labels = {"app": "web", "rollouts-pod-template-hash": pod_hash}
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": f"web-{pod_hash}", "labels": labels,
                         "annotations": {"rollout.argoproj.io/revision": str(revision)},
                         "ownerReferences": [{"apiVersion": f"{GROUP}/{VERSION}", "kind": "Rollout", "name": "web",
                                              "uid": rollout["metadata"]["uid"], "controller": True,
                                              "blockOwnerDeletion": True}]},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": with_hash(tpl, pod_hash)}}


def write_status(objects: client.CustomObjectsApi, ns: str, status: dict) -> dict:
    """What the Rollouts controller would write."""
    return objects.patch_namespaced_custom_object_status(GROUP, VERSION, ns, PLURAL, "web", {"status": status},
                                                         _content_type="application/merge-patch+json")


@pytest.fixture
def bad_canary(kube_api, namespace, argo_rollouts_crd):
    """A Rollout whose revision 2 (crash-looping canary) is mid-rollout over a stable revision 1."""
    objects, apps = client.CustomObjectsApi(kube_api), client.AppsV1Api(kube_api)
    rollout = objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "Rollout", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": template(),
                 "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}}}})
    apps.create_namespaced_replica_set(namespace, replica_set(rollout, 1, GOOD, template(), 2))
    bad = template(bad_template_patch())
    objects.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "web", {"spec": {"template": bad}},
                                           _content_type="application/merge-patch+json")
    apps.create_namespaced_replica_set(namespace, replica_set(rollout, 2, BAD, bad, 1))
    write_status(objects, namespace, {"phase": "Progressing", "message": "more replicas need to be updated",
                                      "currentPodHash": BAD, "stableRS": GOOD, "replicas": 3, "updatedReplicas": 1,
                                      "availableReplicas": 2, "readyReplicas": 2})
    return objects


def test_rollback_aborts_the_rollout_and_restores_the_stable_template_once(kube_api, namespace, bad_canary):
    objects = bad_canary
    k = key()

    result = execute(kube_api, request("rollback", namespace, "web", k, kind="Rollout"))

    rollout = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "web")
    assert rollout["status"]["abort"] is True, "aborted through the status subresource, as the plugin does"
    stable = kube_api.sanitize_for_serialization(
        client.AppsV1Api(kube_api).read_namespaced_replica_set(f"web-{GOOD}", namespace).spec.template)
    del stable["metadata"]["labels"]["rollouts-pod-template-hash"]
    assert rollout["spec"]["template"] == stable, "revision 1's template, without its hash label"
    assert "revision 1 (ReplicaSet web-aaa111)" in result.message
    assert result.changes["spec.template.spec.containers[app].image"] == {
        "before": "registry.local/web:bad", "after": "registry.local/web:1.0"}
    state = rollout["metadata"]["resourceVersion"]

    again = execute(kube_api, request("rollback", namespace, "web", k, kind="Rollout"))

    assert again.replayed
    after = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "web")
    assert after["metadata"]["resourceVersion"] == state and recorded_keys(after["metadata"]["annotations"]) == [k]


def test_verification_reads_the_rollouts_phase_and_its_pods(kube_api, namespace, bad_canary):
    objects = bad_canary
    target = ObjectRef(kind="Rollout", namespace=namespace, name="web")
    started = datetime.now(UTC) - timedelta(seconds=1)
    execute(kube_api, request("rollback", namespace, "web", key(), kind="Rollout"))
    seen = observe(kube_api, target)
    verdict = rollout_complete(RolloutCompleteCheck(), seen, started, timedelta(minutes=5), datetime.now(UTC))
    assert verdict.state == "pending" and "spec update to be observed" in verdict.reasons[0]

    # the controller's part: the canary scaled away, the stable revision healthy at the new generation
    client.AppsV1Api(kube_api).patch_namespaced_replica_set(f"web-{BAD}", namespace, {"spec": {"replicas": 0}})
    generation = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "web")["metadata"]["generation"]
    write_status(objects, namespace, {"phase": "Healthy", "message": None, "abort": False, "currentPodHash": GOOD,
                                      "observedGeneration": str(generation), "replicas": 2, "updatedReplicas": 2,
                                      "availableReplicas": 2, "readyReplicas": 2})
    healthy = wait_for(lambda: (o := observe(kube_api, target)) and len(o.pods) == 2 and all(p.ready for p in o.pods)
                       and o, what="only the stable pods, Ready")
    verdict = rollout_complete(RolloutCompleteCheck(), healthy, started, timedelta(minutes=5), datetime.now(UTC))
    assert verdict.state == "passed", verdict


@pytest.mark.slow
def test_an_alert_on_a_bad_canary_aborts_undoes_and_is_verified_on_the_rollouts_status(
        kube_api, namespace, bad_canary, cluster, operator):
    from tests.integration.test_operator_loop import NO_APPROVALS, only_remediation, rollback_runbook
    from tests.support.operator import alert, alert_payload

    objects = bad_canary
    cluster.apply_policy(NO_APPROVALS)
    cluster.apply_runbook("bad-canary", rollback_runbook(kind="Rollout"))
    from remediator.core.durations import format_time

    # the breach begins now, after the bad revision: the journal must blame that revision
    started = format_time(datetime.now(UTC))
    assert operator.post_alerts(alert_payload([alert(namespace, "web", starts_at=started)])).status_code == 200
    name = only_remediation(cluster)["metadata"]["name"]

    def undone():
        rollout = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "web")
        return rollout["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.local/web:1.0" and rollout
    rollout = wait_for(undone, what="the Rollout undone by the operator")
    assert rollout["status"]["abort"] is True
    client.AppsV1Api(kube_api).patch_namespaced_replica_set(f"web-{BAD}", namespace, {"spec": {"replicas": 0}})
    write_status(objects, namespace, {"phase": "Healthy", "abort": False, "currentPodHash": GOOD,
                                      "observedGeneration": str(rollout["metadata"]["generation"]), "replicas": 2,
                                      "updatedReplicas": 2, "availableReplicas": 2, "readyReplicas": 2})

    status = cluster.wait_phase(name, {"Succeeded", "Failed", "Escalated", "Skipped"})["status"]
    assert status["phase"] == "Succeeded", status
    assert status["probableCause"]["changes"][0]["object"] == "Rollout/web"
    assert "revision 2 rolled out" in status["probableCause"]["changes"][0]["what"]
