"""The actions on a real apiserver: each changes the cluster as kubectl would, a replay with the
same key changes nothing, a dry run changes nothing, and refusals carry the apiserver's answer."""

from __future__ import annotations

import copy
import json
import re
import uuid

import pytest
from kubernetes import client, utils
from kubernetes.client.exceptions import ApiException

from remediator import kube
from remediator.actions import ActionError, ActionRequest, execute
from remediator.actions.base import DELETED_PODS_ANNOTATION, KEYS_ANNOTATION, recorded_keys
from remediator.actions.restart import RESTARTED_AT
from remediator.actions.rollback import REVISION, template_without_hash
from remediator.api.models import ObjectRef, Step
from remediator.verification.observations import failing_reasons, rollout_progress
from remediator.verification.probes import observe
from tests.support.waiting import wait_for
from tests.support.workloads import deployment

pytestmark = pytest.mark.integration

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)$")


# ---------------------------------------------------------------- helpers


def request(
    action: str, namespace: str | None, name: str, key: str, kind: str = "Deployment", **options
) -> ActionRequest:
    params = {k: options.pop(k) for k in ("scale", "raise_memory", "drain", "delete_pod") if k in options}
    return ActionRequest(
        action=action,
        target=ObjectRef(kind=kind, namespace=namespace, name=name),
        key=key,
        step=Step(name="step", action=action, **params),
        **options,
    )


def deploy(api: client.ApiClient, namespace: str, name: str = "web", replicas: int = 3, **kw) -> dict:
    manifest = deployment(name, replicas=replicas, **kw)
    utils.create_from_dict(api, manifest, namespace=namespace)
    wait_rolled_out(api, namespace, name)
    return manifest


def wait_rolled_out(api: client.ApiClient, namespace: str, name: str) -> None:
    """kubectl rollout status, through our own probe: it is what verification will see."""
    target = ObjectRef(kind="Deployment", namespace=namespace, name=name)
    wait_for(lambda: rollout_progress(observe(api, target).rollout)[0], timeout=90, what=f"{name} rolled out")


def read(api: client.ApiClient, namespace: str, name: str = "web") -> client.V1Deployment:
    return client.AppsV1Api(api).read_namespaced_deployment(name, namespace)


def revisions(api: client.ApiClient, namespace: str, app: str = "web") -> dict[str, int]:
    """ReplicaSet name -> revision."""
    rss = client.AppsV1Api(api).list_namespaced_replica_set(namespace, label_selector=f"app={app}").items
    return {rs.metadata.name: int(rs.metadata.annotations[REVISION]) for rs in rss}


def pods(api: client.ApiClient, namespace: str, selector: str = "app=web") -> list[client.V1Pod]:
    return [
        p
        for p in client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=selector).items
        if p.metadata.deletion_timestamp is None
    ]


def uids(api: client.ApiClient, namespace: str, selector: str = "app=web") -> set[str]:
    return {p.metadata.uid for p in pods(api, namespace, selector)}


def mark_failing(api: client.ApiClient, namespace: str, pod: str, how: str = "crashloop") -> None:
    client.CoreV1Api(api).patch_namespaced_pod(
        pod, namespace, {"metadata": {"labels": {"remediator.dev/kwok-fail": how}}}
    )


def waiting_reason(api: client.ApiClient, namespace: str, pod: str) -> str | None:
    status = client.CoreV1Api(api).read_namespaced_pod(pod, namespace).status
    for c in status.container_statuses or []:
        if c.state and c.state.waiting:
            return c.state.waiting.reason
    return None


def set_image(api: client.ApiClient, namespace: str, image: str, name: str = "web") -> None:
    client.AppsV1Api(api).patch_namespaced_deployment(
        name, namespace, {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}}
    )


def memory_of(dep: client.V1Deployment) -> tuple[str, str]:
    resources = dep.spec.template.spec.containers[0].resources
    return resources.limits["memory"], resources.requests["memory"]


def key() -> str:
    return f"rem-{uuid.uuid4().hex[:8]}.step-0"


# ---------------------------------------------------------------- restartRollout


def test_restart_rolls_every_pod_through_a_new_replica_set_and_a_replay_does_not(kube_api, namespace):
    deploy(kube_api, namespace, replicas=2)
    k = key()

    result = execute(kube_api, request("restartRollout", namespace, "web", k))

    assert result.done and not result.replayed
    dep = read(kube_api, namespace)
    stamp = dep.spec.template.metadata.annotations[RESTARTED_AT]
    assert RFC3339.match(stamp), stamp
    assert recorded_keys(dep.metadata.annotations) == [k]
    assert list(result.changes) == [f"spec.template.metadata.annotations[{RESTARTED_AT}]"]
    wait_for(lambda: sorted(revisions(kube_api, namespace).values()) == [1, 2], what="a second ReplicaSet")
    wait_rolled_out(kube_api, namespace, "web")
    generation, rs_before = read(kube_api, namespace).metadata.generation, revisions(kube_api, namespace)

    again = execute(kube_api, request("restartRollout", namespace, "web", k))

    assert again.replayed and again.done and again.changes == {}
    assert read(kube_api, namespace).metadata.generation == generation
    assert read(kube_api, namespace).spec.template.metadata.annotations[RESTARTED_AT] == stamp
    assert revisions(kube_api, namespace) == rs_before


def test_a_restart_handed_a_read_older_than_another_actions_write_rereads_and_keeps_both_keys(kube_api, namespace):
    deploy(kube_api, namespace, replicas=1)
    stale = kube.request_json(kube_api, "GET", f"/apis/apps/v1/namespaces/{namespace}/deployments/web")
    theirs, ours = key(), key()
    execute(kube_api, request("restartRollout", namespace, "web", theirs))  # another step acts meanwhile

    result = execute(kube_api, request("restartRollout", namespace, "web", ours, read=stale))

    assert result.done and not result.replayed
    assert recorded_keys(read(kube_api, namespace).metadata.annotations) == [theirs, ours], \
        "the stale read's keys would have dropped theirs: its resourceVersion refused the write, and it read again"


def test_dry_runs_report_the_change_and_change_nothing(kube_api, namespace):
    deploy(kube_api, namespace, replicas=2)
    before = read(kube_api, namespace)
    dry = {"dry_run": True}

    restart = execute(kube_api, request("restartRollout", namespace, "web", key(), **dry))
    scale = execute(kube_api, request("scale", namespace, "web", key(), scale={"max_replicas": 5}, **dry))
    memory = execute(
        kube_api,
        request(
            "raiseMemory", namespace, "web", key(), raise_memory={"factor": 2, "max_limit": "1Gi"}, **dry
        ),
    )

    assert f"spec.template.metadata.annotations[{RESTARTED_AT}]" in restart.changes
    assert scale.changes == {"spec.replicas": {"before": 2, "after": 3}}
    assert memory.changes == {
        "spec.template.spec.containers[app].resources.limits.memory": {"before": "64Mi", "after": "128Mi"}
    }
    after = read(kube_api, namespace)
    assert after.metadata.resource_version == before.metadata.resource_version
    assert KEYS_ANNOTATION not in (after.metadata.annotations or {})
    assert list(revisions(kube_api, namespace).values()) == [1], "no new ReplicaSet"


def test_restart_rolls_a_statefulset_and_the_probe_follows_its_revisions(kube_api, namespace):
    manifest = deployment("db", replicas=2)
    manifest["kind"], manifest["spec"]["serviceName"] = "StatefulSet", "db"
    for field in ("strategy", "revisionHistoryLimit"):
        manifest["spec"].pop(field)
    utils.create_from_dict(kube_api, manifest, namespace=namespace)
    target = ObjectRef(kind="StatefulSet", namespace=namespace, name="db")
    wait_for(lambda: rollout_progress(observe(kube_api, target).rollout)[0], timeout=90, what="db ready")
    first = observe(kube_api, target).rollout.update_revision

    result = execute(kube_api, request("restartRollout", namespace, "db", key(), kind="StatefulSet"))

    assert result.done and f"spec.template.metadata.annotations[{RESTARTED_AT}]" in result.changes
    rolled = wait_for(
        lambda: (
            (o := observe(kube_api, target)).rollout.update_revision != first
            and rollout_progress(o.rollout)[0]
            and o
        ),
        timeout=90,
        what="every pod at the new revision",
    )
    assert rolled.rollout.current_revision == rolled.rollout.update_revision
    assert all(p.ready for p in rolled.pods) and len(rolled.pods) == 2


class WritesFirst(client.ApiClient):
    """A real concurrent writer: before our first PATCH reaches the apiserver, `write` changes the target."""

    def __init__(self, configuration, write):
        super().__init__(configuration)
        self.write, self.written = write, False

    def call_api(self, method, url, *args, **kwargs):
        if method == "PATCH" and not self.written:
            self.written = True
            self.write()
        return super().call_api(method, url, *args, **kwargs)


def test_a_concurrent_write_makes_the_action_re_read_and_re_decide(kube_api, namespace):
    deploy(kube_api, namespace, replicas=2)
    apps = client.AppsV1Api(kube_api)
    racing = WritesFirst(
        kube_api.configuration,
        lambda: apps.patch_namespaced_deployment("web", namespace, {"spec": {"replicas": 5}}),
    )

    result = execute(racing, request("scale", namespace, "web", key(), scale={"max_replicas": 10}))

    assert racing.written
    assert read(kube_api, namespace).spec.replicas == 6, "decided again from 5, not written blind from 2"
    assert "5 +1 -> 6" in result.message


# ---------------------------------------------------------------- scale


def test_scale_adds_replicas_within_the_step_and_policy_bounds(kube_api, namespace):
    deploy(kube_api, namespace, replicas=2)
    k = key()

    result = execute(
        kube_api, request("scale", namespace, "web", k, scale={"max_replicas": 10, "step": 5}, max_replicas=4)
    )

    assert result.done and "policy cap 4" in result.message
    assert read(kube_api, namespace).spec.replicas == 4
    assert execute(
        kube_api, request("scale", namespace, "web", k, scale={"max_replicas": 10, "step": 5})
    ).replayed
    assert read(kube_api, namespace).spec.replicas == 4, "a replay does not scale again"

    at_bound = execute(kube_api, request("scale", namespace, "web", key(), scale={"max_replicas": 4}))

    assert at_bound.changes == {} and "already at 4" in at_bound.message
    wait_for(lambda: read(kube_api, namespace).status.available_replicas == 4, what="4 available")


# ---------------------------------------------------------------- rollback


def test_rollback_restores_the_previous_template_under_a_new_revision(kube_api, namespace):
    deploy(kube_api, namespace, replicas=2, image="registry.local/web:1.0")
    first_rs = next(iter(revisions(kube_api, namespace)))
    set_image(kube_api, namespace, "registry.local/web:2.0")
    wait_for(lambda: len(revisions(kube_api, namespace)) == 2, what="revision 2")
    wait_rolled_out(kube_api, namespace, "web")

    dry = execute(kube_api, request("rollback", namespace, "web", key(), dry_run=True))
    assert dry.changes["spec.template.spec.containers[app].image"] == {
        "before": "registry.local/web:2.0",
        "after": "registry.local/web:1.0",
    }
    assert read(kube_api, namespace).spec.template.spec.containers[0].image == "registry.local/web:2.0"

    k = key()
    result = execute(kube_api, request("rollback", namespace, "web", k))

    assert result.done and not result.replayed and "revision 1" in result.message
    old = client.AppsV1Api(kube_api).read_namespaced_replica_set(first_rs, namespace)
    dep = read(kube_api, namespace)
    assert kube_api.sanitize_for_serialization(dep.spec.template) == template_without_hash(
        kube_api.sanitize_for_serialization(old.spec.template)
    )
    wait_for(lambda: read(kube_api, namespace).metadata.annotations.get(REVISION) == "3", what="revision 3")
    assert revisions(kube_api, namespace)[first_rs] == 3, "the old ReplicaSet is re-selected, as kubectl does"
    wait_rolled_out(kube_api, namespace, "web")
    state = (read(kube_api, namespace).metadata.generation, revisions(kube_api, namespace))

    again = execute(kube_api, request("rollback", namespace, "web", k))

    assert again.replayed
    assert (read(kube_api, namespace).metadata.generation, revisions(kube_api, namespace)) == state
    assert read(kube_api, namespace).metadata.annotations[REVISION] == "3"
    assert recorded_keys(read(kube_api, namespace).metadata.annotations)[-1] == k


def test_rollback_without_a_previous_revision_fails_clearly(kube_api, namespace):
    deploy(kube_api, namespace, replicas=1)

    with pytest.raises(ActionError) as err:
        execute(kube_api, request("rollback", namespace, "web", key()))

    assert err.value.reason == "NoPreviousRevision" and not err.value.retryable
    assert "no rollout history" in err.value.message
    assert KEYS_ANNOTATION not in (read(kube_api, namespace).metadata.annotations or {})


# ---------------------------------------------------------------- deletePod


def test_delete_pod_deletes_only_failing_pods_never_more_than_asked(kube_api, namespace):
    deploy(kube_api, namespace, replicas=4)
    names = sorted(p.metadata.name for p in pods(kube_api, namespace))
    failing, healthy = names[:2], names[2:]
    for name in failing:
        mark_failing(kube_api, namespace, name)
    wait_for(
        lambda: all(waiting_reason(kube_api, namespace, n) == "CrashLoopBackOff" for n in failing),
        what="two pods in CrashLoopBackOff",
    )
    healthy_uids = {p.metadata.uid for p in pods(kube_api, namespace) if p.metadata.name in healthy}

    dry = execute(kube_api, request("deletePod", namespace, "web", key(), dry_run=True, max_pods=1))
    assert list(dry.changes) == [f"pod[{failing[0]}]"]
    assert len(pods(kube_api, namespace)) == 4, "a dry run deletes nothing"
    assert KEYS_ANNOTATION not in (read(kube_api, namespace).metadata.annotations or {})

    k = key()
    result = execute(kube_api, request("deletePod", namespace, "web", k, max_pods=1))

    assert result.done and not result.replayed
    assert list(result.changes) == [f"pod[{failing[0]}]"], "the first failing pod, and only one"
    assert "CrashLoopBackOff" in result.changes[f"pod[{failing[0]}]"]["before"]
    assert "1 more left by the cap" in result.message
    annotations = read(kube_api, namespace).metadata.annotations
    assert recorded_keys(annotations) == [k] and k in annotations[DELETED_PODS_ANNOTATION]
    wait_for(
        lambda: failing[0] not in {p.metadata.name for p in pods(kube_api, namespace)}, what="pod deleted"
    )
    wait_for(lambda: len(pods(kube_api, namespace)) == 4, what="the ReplicaSet replaced it")
    present = uids(kube_api, namespace)
    assert healthy_uids <= present, "healthy pods are untouched"

    again = execute(kube_api, request("deletePod", namespace, "web", k, max_pods=1))

    assert again.replayed and again.changes == {}
    assert uids(kube_api, namespace) == present, (
        "a replay deletes nothing new, not even the other failing pod"
    )
    assert failing[1] in {p.metadata.name for p in pods(kube_api, namespace)}


def test_delete_pod_on_a_pod_target_records_on_its_deployment(kube_api, namespace):
    deploy(kube_api, namespace, replicas=2)
    victim = pods(kube_api, namespace)[0]
    mark_failing(kube_api, namespace, victim.metadata.name, "notready")
    wait_for(
        lambda: (
            failing_reasons(
                observe(kube_api, ObjectRef(kind="Pod", namespace=namespace, name=victim.metadata.name)).pods[
                    0
                ]
            )
            == ["NotReady"]
        ),
        what="NotReady",
    )
    k = key()

    result = execute(kube_api, request("deletePod", namespace, victim.metadata.name, k, kind="Pod"))

    assert list(result.changes) == [f"pod[{victim.metadata.name}]"]
    assert victim.metadata.uid in read(kube_api, namespace).metadata.annotations[DELETED_PODS_ANNOTATION]
    wait_for(lambda: victim.metadata.uid not in uids(kube_api, namespace), what="victim gone")


# ---------------------------------------------------------------- raiseMemory


def test_raise_memory_raises_the_limit_within_caps_and_rolls_out(kube_api, namespace):
    deploy(kube_api, namespace, replicas=2)  # limit 64Mi, request 32Mi
    k = key()
    params = {"factor": 1.5, "max_limit": "80Mi"}

    result = execute(kube_api, request("raiseMemory", namespace, "web", k, raise_memory=params))

    assert result.done and "capped at the maxLimit 80Mi" in result.message
    assert memory_of(read(kube_api, namespace)) == ("80Mi", "32Mi")
    wait_for(lambda: len(revisions(kube_api, namespace)) == 2, what="a new ReplicaSet for the new limit")
    assert execute(kube_api, request("raiseMemory", namespace, "web", k, raise_memory=params)).replayed
    assert memory_of(read(kube_api, namespace)) == ("80Mi", "32Mi")

    capped = execute(
        kube_api,
        request(
            "raiseMemory",
            namespace,
            "web",
            key(),
            raise_memory={"factor": 2, "max_limit": "1Gi"},
            max_memory="72Mi",
        ),
    )

    assert capped.changes == {} and "policy cap 72Mi" in capped.message
    assert memory_of(read(kube_api, namespace)) == ("80Mi", "32Mi"), "a cap never lowers a limit"


def test_raise_memory_changes_only_the_named_container(kube_api, namespace):
    manifest = deployment("web", replicas=1)
    sidecar = {
        "name": "sidecar",
        "image": "registry.local/proxy:1",
        "resources": {"requests": {"memory": "16Mi"}, "limits": {"memory": "48Mi"}},
    }
    manifest["spec"]["template"]["spec"]["containers"].insert(0, sidecar)
    utils.create_from_dict(kube_api, manifest, namespace=namespace)
    wait_rolled_out(kube_api, namespace, "web")

    result = execute(
        kube_api,
        request(
            "raiseMemory",
            namespace,
            "web",
            key(),
            raise_memory={"factor": 2, "max_limit": "1Gi", "container": "app"},
        ),
    )

    limits = {
        c.name: c.resources.limits["memory"] for c in read(kube_api, namespace).spec.template.spec.containers
    }
    assert limits == {"sidecar": "48Mi", "app": "128Mi"}, result.message


def test_raise_memory_refuses_an_unknown_container(kube_api, namespace):
    deploy(kube_api, namespace, replicas=1)
    with pytest.raises(ActionError) as err:
        execute(
            kube_api,
            request(
                "raiseMemory", namespace, "web", key(), raise_memory={"max_limit": "1Gi", "container": "nope"}
            ),
        )
    assert err.value.reason == "NoSuchContainer" and "containers: app" in err.value.message


# ---------------------------------------------------------------- refusals


def test_a_serviceaccount_without_patch_rights_gets_the_apiservers_403(kube_api, namespace):
    deploy(kube_api, namespace, replicas=1)
    rbac = client.RbacAuthorizationV1Api(kube_api)
    client.CoreV1Api(kube_api).create_namespaced_service_account(namespace, {"metadata": {"name": "reader"}})
    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": "reader"},
            "rules": [
                {
                    "apiGroups": ["apps"],
                    "resources": ["deployments", "replicasets"],
                    "verbs": ["get", "list"],
                },
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
                # a scale looks for an autoscaler that owns the replicas before it writes them
                {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": ["get", "list"]},
                {"apiGroups": ["keda.sh"], "resources": ["scaledobjects"], "verbs": ["get", "list"]},
            ],
        },
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "reader"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
        },
    )
    as_reader = client.ApiClient(
        kube_api.configuration,
        header_name="Impersonate-User",
        header_value=f"system:serviceaccount:{namespace}:reader",
    )
    wait_for(lambda: can_read_deployment(as_reader, namespace), what="RBAC binding in force")
    before = read(kube_api, namespace).metadata.resource_version

    for action, params in (("restartRollout", {}), ("scale", {"scale": {"max_replicas": 3}})):
        with pytest.raises(ActionError) as err:
            execute(as_reader, request(action, namespace, "web", key(), **params))
        assert err.value.status == 403 and not err.value.retryable
        assert (
            f'User "system:serviceaccount:{namespace}:reader" cannot patch resource "deployments"'
            in err.value.message
        )
    assert read(kube_api, namespace).metadata.resource_version == before


def can_read_deployment(api: client.ApiClient, namespace: str) -> bool:
    try:
        client.AppsV1Api(api).read_namespaced_deployment("web", namespace)
        return True
    except ApiException as e:
        if e.status == 403:
            return False
        raise


def test_a_request_that_cannot_be_applied_is_refused_before_any_call(kube_api):
    with pytest.raises(ActionError) as err:
        execute(kube_api, request("restartRollout", None, "web", key()))
    assert err.value.reason == "InvalidRequest" and "namespace must be set" in err.value.message
    with pytest.raises(ActionError) as err:
        execute(kube_api, request("restartRollout", "default", "web", "two,keys"))
    assert err.value.reason == "InvalidRequest"


def test_a_missing_target_is_a_404_action_error(kube_api, namespace):
    with pytest.raises(ActionError) as err:
        execute(kube_api, request("restartRollout", namespace, "nope", key()))
    assert err.value.status == 404 and 'deployments.apps "nope" not found' in err.value.message


def test_an_unreachable_apiserver_is_retried_then_reported_as_retryable(kube_api, namespace):
    cfg = copy.deepcopy(kube_api.configuration)
    cfg.host = "https://127.0.0.1:9"  # the discard port: nothing listens, the connection is refused
    cfg.retries = 0  # count our attempts, not urllib3's
    attempts = CountsCalls(cfg)

    with pytest.raises(ActionError) as err:
        execute(attempts, request("restartRollout", namespace, "web", key()))

    assert err.value.reason == "Unavailable" and err.value.retryable and err.value.status is None
    assert attempts.calls == kube.ATTEMPTS, "the one retry policy's attempts, with backoff, then give up"


class CountsCalls(client.ApiClient):
    def __init__(self, configuration):
        super().__init__(configuration)
        self.calls = 0

    def call_api(self, *args, **kwargs):
        self.calls += 1
        return super().call_api(*args, **kwargs)


def test_only_the_last_ten_keys_are_kept(kube_api, namespace):
    deploy(kube_api, namespace, replicas=1)  # no failing pod: each deletePod only records its key
    keys = [f"rem-keys.step-{i}" for i in range(12)]
    for k in keys:
        assert execute(kube_api, request("deletePod", namespace, "web", k)).changes == {}

    annotations = read(kube_api, namespace).metadata.annotations
    assert recorded_keys(annotations) == keys[2:]
    assert sorted(json.loads(annotations[DELETED_PODS_ANNOTATION])) == sorted(keys[2:])
    assert execute(kube_api, request("deletePod", namespace, "web", keys[-1])).replayed
    assert not execute(kube_api, request("deletePod", namespace, "web", keys[0])).replayed, "forgotten"


# ---------------------------------------------------------------- cordonDrain

TAINT = "remediator.dev/test-node"


@pytest.fixture
def node(kube_api):
    """A KWOK node of this test's own, tainted so nothing else lands on it (shared nodes stay untouched)."""
    name = f"t-drain-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(kube_api)
    core.create_node(
        {
            "metadata": {
                "name": name,
                "annotations": {"kwok.x-k8s.io/node": "fake"},
                "labels": {"kubernetes.io/hostname": name, "type": "kwok"},
            },
            "spec": {"taints": [{"key": TAINT, "value": name, "effect": "NoSchedule"}]},
            "status": {
                "allocatable": {"cpu": "32", "memory": "64Gi", "pods": "110"},
                "capacity": {"cpu": "32", "memory": "64Gi", "pods": "110"},
            },
        }
    )
    wait_for(
        lambda: any(
            c.type == "Ready" and c.status == "True" for c in core.read_node(name).status.conditions or []
        ),
        what=f"node {name} Ready",
    )
    yield name
    core.delete_node(name)


def pinned(manifest: dict, node: str) -> dict:
    spec = manifest["spec"]["template"]["spec"]
    spec["nodeSelector"] = {"kubernetes.io/hostname": node}
    spec["tolerations"] = [{"key": TAINT, "operator": "Exists"}]
    return manifest


def pods_on(api: client.ApiClient, node: str) -> dict[str, str]:
    """name -> phase of the live pods on a node."""
    listed = client.CoreV1Api(api).list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}").items
    return {p.metadata.name: p.status.phase for p in listed if p.metadata.deletion_timestamp is None}


def create_daemon_set_and_unmanaged_pods(api: client.ApiClient, namespace: str, node: str) -> None:
    core = client.CoreV1Api(api)
    agent = pinned(
        {
            "spec": {
                "template": {
                    "metadata": {"labels": {"app": "agent"}},
                    "spec": {"containers": [{"name": "agent", "image": "registry.local/agent:1"}]},
                }
            }
        },
        node,
    )
    utils.create_from_dict(
        api,
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "agent"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}}, **agent["spec"]},
        },
        namespace=namespace,
    )
    bare = {
        "nodeName": node,
        "tolerations": [{"operator": "Exists"}],
        "containers": [{"name": "c", "image": "registry.local/static:1"}],
    }
    # a mirror pod as the kubelet makes it: the mirror annotation, owned by the Node
    owner = {
        "apiVersion": "v1",
        "kind": "Node",
        "name": node,
        "uid": core.read_node(node).metadata.uid,
        "controller": True,
    }
    core.create_namespaced_pod(
        namespace,
        {
            "metadata": {
                "name": "static-web",
                "annotations": {"kubernetes.io/config.mirror": "checksum"},
                "ownerReferences": [owner],
            },
            "spec": bare,
        },
    )
    core.create_namespaced_pod(namespace, {"metadata": {"name": "bare"}, "spec": bare})


def test_drain_cordons_evicts_and_skips_daemonset_mirror_and_unmanaged_pods(kube_api, namespace, node):
    utils.create_from_dict(kube_api, pinned(deployment("web", replicas=2), node), namespace=namespace)
    create_daemon_set_and_unmanaged_pods(kube_api, namespace, node)
    wait_rolled_out(kube_api, namespace, "web")
    wait_for(
        lambda: len([p for p, phase in pods_on(kube_api, node).items() if phase == "Running"]) == 5,
        what="2 web pods, the agent, the mirror pod and the bare pod running",
    )
    web = {p.metadata.name for p in pods(kube_api, namespace)}
    k = key()

    result = execute(kube_api, request("cordonDrain", None, node, k, kind="Node", drain={"timeout": "60s"}))

    assert result.done and not result.replayed, result.message
    assert result.changes["spec.unschedulable"] == {"before": None, "after": True}
    assert {c for c in result.changes if c.startswith("pod[")} == {f"pod[{namespace}/{n}]" for n in web}
    left = set(pods_on(kube_api, node))
    assert not left & web, "the Deployment's pods were evicted"
    assert any(n.startswith("agent-") for n in left) and {"static-web", "bare"} <= left
    assert {e.detail.split(" skipped")[0] for e in result.evidence if e.kind == "pod"} == {
        f"{namespace}/static-web",
        f"{namespace}/bare",
        *(f"{namespace}/{n}" for n in left if n.startswith("agent-")),
    }
    assert client.CoreV1Api(kube_api).read_node(node).spec.unschedulable
    assert k in recorded_keys(client.CoreV1Api(kube_api).read_node(node).metadata.annotations)

    agent = observe(kube_api, ObjectRef(kind="DaemonSet", namespace=namespace, name="agent"))
    assert agent.rollout.desired == 1 and rollout_progress(agent.rollout)[0], "the agent stays on the node"

    again = execute(kube_api, request("cordonDrain", None, node, k, kind="Node", drain={"timeout": "10s"}))

    assert again.replayed and again.done


def test_drain_respects_a_pod_disruption_budget_and_a_replay_continues(kube_api, namespace, node):
    utils.create_from_dict(kube_api, pinned(deployment("web", replicas=2), node), namespace=namespace)
    wait_rolled_out(kube_api, namespace, "web")
    policy = client.PolicyV1Api(kube_api)
    policy.create_namespaced_pod_disruption_budget(
        namespace,
        {
            "metadata": {"name": "web"},
            "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
        },
    )
    wait_for(
        lambda: policy.read_namespaced_pod_disruption_budget("web", namespace).status.observed_generation,
        what="the disruption controller saw the PDB",
    )
    web = uids(kube_api, namespace)

    dry = execute(kube_api, request("cordonDrain", None, node, key(), kind="Node", dry_run=True))
    assert not dry.done and "would not fully drain" in dry.message
    assert not client.CoreV1Api(kube_api).read_node(node).spec.unschedulable, "a dry run does not cordon"

    k = key()
    blocked = execute(kube_api, request("cordonDrain", None, node, k, kind="Node", drain={"timeout": "3s"}))

    assert not blocked.done and not blocked.replayed
    assert "call again with the same key" in blocked.message
    assert any("disruption budget" in e.detail for e in blocked.evidence), blocked.evidence
    assert uids(kube_api, namespace) == web, "a refused eviction is never forced"
    assert client.CoreV1Api(kube_api).read_node(node).spec.unschedulable

    policy.delete_namespaced_pod_disruption_budget("web", namespace)
    resumed = execute(kube_api, request("cordonDrain", None, node, k, kind="Node", drain={"timeout": "60s"}))

    assert resumed.replayed and resumed.done, resumed.message
    assert not web & {p.metadata.uid for p in pods(kube_api, namespace) if p.spec.node_name == node}, (
        "both pods evicted once the budget allowed it"
    )


def test_a_replay_of_a_drain_stops_when_someone_uncordoned_the_node(kube_api, namespace, node):
    k = key()
    assert execute(kube_api, request("cordonDrain", None, node, k, kind="Node")).done
    client.CoreV1Api(kube_api).patch_node(node, {"spec": {"unschedulable": False}})

    with pytest.raises(ActionError) as err:
        execute(kube_api, request("cordonDrain", None, node, k, kind="Node"))

    assert err.value.reason == "Uncordoned"
    assert not client.CoreV1Api(kube_api).read_node(node).spec.unschedulable


# ---------------------------------------------------------------- probes


def test_probes_see_rollout_progress_and_failing_pods(kube_api, namespace):
    deploy(kube_api, namespace, replicas=2)
    target = ObjectRef(kind="Deployment", namespace=namespace, name="web")
    seen = observe(kube_api, target)
    assert seen.exists and rollout_progress(seen.rollout) == (
        True,
        "successfully rolled out: 2/2 updated and available",
    )
    assert all(p.ready and p.restarts == 0 for p in seen.pods) and len(seen.pods) == 2

    mark_failing(kube_api, namespace, seen.pods[0].name, "oomkilled")
    crashing = wait_for(
        lambda: next(
            (p for p in observe(kube_api, target).pods if p.name == seen.pods[0].name and p.restarts), None
        ),
        what="OOMKilled",
    )
    assert crashing.waiting_reasons == ("CrashLoopBackOff",) and crashing.oom_killed_containers == ("app",)
    assert failing_reasons(crashing) == ["CrashLoopBackOff", "OOMKilled"]

    set_image(kube_api, namespace, "registry.local/web:2.0")
    client.AppsV1Api(kube_api).patch_namespaced_deployment(
        "web",
        namespace,
        {"spec": {"template": {"metadata": {"labels": {"remediator.dev/kwok-fail": "imagepull"}}}}},
    )
    stuck = wait_for(
        lambda: (o := observe(kube_api, target)).rollout.updated >= 1 and o, what="a stuck rollout"
    )
    assert rollout_progress(stuck.rollout)[0] is False

    client.AppsV1Api(kube_api).delete_namespaced_deployment("web", namespace)
    wait_for(lambda: not observe(kube_api, target).exists, what="target gone")
