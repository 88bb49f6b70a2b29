"""rollback of StatefulSets and DaemonSets through their ControllerRevisions, on the real controllers
(kube-controller-manager) with KWOK pods and nodes: `kubectl rollout undo` semantics, keyed."""

from __future__ import annotations

import pytest

from remediator.actions import ActionError, execute
from remediator.actions.base import KEYS_ANNOTATION, recorded_keys
from remediator.api.models import ObjectRef
from remediator.verification.observations import rollout_progress
from remediator.verification.probes import observe
from tests.integration.test_actions import key, request
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

KINDS = ("StatefulSet", "DaemonSet")


def image_of(cluster, kind: str) -> str:
    return cluster.reader(kind)("web", cluster.ns).spec.template.spec.containers[0].image


@pytest.mark.parametrize("kind", KINDS)
def test_rollback_restores_the_previous_controller_revision_once_and_the_rollout_completes(cluster, kind):
    cluster.deploy_workload(kind)
    cluster.bad_rollout(kind=kind)
    wait_for(lambda: len(cluster.revisions(kind=kind)) == 2, what="the bad revision")
    (good_name, _), = [(n, r) for n, r in cluster.revisions(kind=kind).items() if r == "1"]

    dry = execute(cluster.api, request("rollback", cluster.ns, "web", key(), kind=kind, dry_run=True))
    assert dry.changes["spec.template.spec.containers[app].image"] == {
        "before": "registry.local/web:bad", "after": "registry.local/web:1.0"}
    assert image_of(cluster, kind) == "registry.local/web:bad"

    k = key()
    result = execute(cluster.api, request("rollback", cluster.ns, "web", k, kind=kind))

    assert result.done and not result.replayed and f"revision 1 (ControllerRevision {good_name})" in result.message
    workload = cluster.reader(kind)("web", cluster.ns)
    assert workload.spec.template.spec.containers[0].image == "registry.local/web:1.0"
    assert "remediator.dev/kwok-fail" not in workload.spec.template.metadata.labels
    # the controller re-uses the old ControllerRevision under a new number, as after `kubectl rollout undo`
    wait_for(lambda: cluster.revisions(kind=kind).get(good_name) == "3", what="revision 1 re-used as 3")
    target = ObjectRef(kind=kind, namespace=cluster.ns, name="web")
    done = wait_for(lambda: (o := observe(cluster.api, target)) and rollout_progress(o.rollout)[0] and o,
                    timeout=90, what="rolled back")
    assert done.pods and all(p.ready for p in done.pods)
    state = (cluster.reader(kind)("web", cluster.ns).metadata.generation, cluster.revisions(kind=kind))

    again = execute(cluster.api, request("rollback", cluster.ns, "web", k, kind=kind))

    assert again.replayed
    assert (cluster.reader(kind)("web", cluster.ns).metadata.generation, cluster.revisions(kind=kind)) == state
    assert recorded_keys(cluster.reader(kind)("web", cluster.ns).metadata.annotations)[-1] == k


@pytest.mark.parametrize("kind", KINDS)
def test_rollback_without_an_earlier_controller_revision_fails_clearly(cluster, kind):
    cluster.deploy_workload(kind, replicas=1)
    wait_for(lambda: len(cluster.revisions(kind=kind)) == 1, what="the first revision")

    with pytest.raises(ActionError) as err:
        execute(cluster.api, request("rollback", cluster.ns, "web", key(), kind=kind))

    assert err.value.reason == "NoPreviousRevision" and "1 ControllerRevision(s)" in err.value.message
    assert KEYS_ANNOTATION not in (cluster.reader(kind)("web", cluster.ns).metadata.annotations or {})


def test_an_on_delete_statefulset_is_rolled_back_in_its_template_and_says_its_pods_wait(cluster):
    cluster.deploy_workload("StatefulSet", replicas=1, on_delete=True)
    cluster.bad_rollout(kind="StatefulSet")
    wait_for(lambda: len(cluster.revisions(kind="StatefulSet")) == 2, what="the bad revision")

    result = execute(cluster.api, request("rollback", cluster.ns, "web", key(), kind="StatefulSet"))

    assert image_of(cluster, "StatefulSet") == "registry.local/web:1.0"
    assert "OnDelete" in result.message and "only when it is deleted" in result.evidence[0].detail


def test_a_statefulset_rollback_replayed_after_a_crash_before_its_pod_deletes_still_unsticks_the_rollout(cluster):
    from remediator.actions.rollback import previous_controller_revision, revision_template

    cluster.deploy_workload("StatefulSet")
    cluster.bad_rollout(kind="StatefulSet")
    target = ObjectRef(kind="StatefulSet", namespace=cluster.ns, name="web")
    wait_for(lambda: any(not p.ready for p in observe(cluster.api, target).pods), what="a bad pod failing")
    sts = cluster.reader("StatefulSet")("web", cluster.ns)
    _, previous = previous_controller_revision(cluster.api, "StatefulSet", sts)
    k = key()
    # the crash: the keyed patch was written, the process died before deleting the stuck pod
    cluster.apps.patch_namespaced_stateful_set("web", cluster.ns, [
        {"op": "replace", "path": "/spec/template", "value": revision_template(previous)},
        {"op": "add", "path": "/metadata/annotations", "value": {KEYS_ANNOTATION: k}}],
        _content_type="application/json-patch+json")

    again = execute(cluster.api, request("rollback", cluster.ns, "web", k, kind="StatefulSet"))

    assert again.replayed and "never became Ready" in again.message
    wait_for(lambda: (o := observe(cluster.api, target)) and rollout_progress(o.rollout)[0]
             and all(p.ready for p in o.pods), timeout=90, what="the rollout completed at the restored revision")
