"""The control plane behaves as a real cluster does for what remediator relies on."""

from __future__ import annotations

import json
import subprocess
import textwrap

import pytest
from kubernetes import client, utils
from kubernetes.client.rest import ApiException

from tests.support.waiting import wait_for
from tests.support.workloads import deployment

pytestmark = pytest.mark.integration


def available_replicas(apps: client.AppsV1Api, ns: str, name: str) -> int:
    return apps.read_namespaced_deployment(name, ns).status.available_replicas or 0


def revisions(apps: client.AppsV1Api, ns: str, app: str) -> dict[str, str]:
    """ReplicaSet name -> deployment.kubernetes.io/revision annotation."""
    rss = apps.list_namespaced_replica_set(ns, label_selector=f"app={app}").items
    return {rs.metadata.name: rs.metadata.annotations.get("deployment.kubernetes.io/revision") for rs in rss}


def run_tool(tool, name: str, *args: str, input: str | None = None) -> str:
    proc = subprocess.run([tool(name), *args], capture_output=True, text=True, input=input, timeout=120)
    assert proc.returncode == 0, f"{name} {' '.join(args)} failed: {proc.stderr}"
    return proc.stdout


def test_three_kwok_nodes_are_ready(kube_api):
    nodes = client.CoreV1Api(kube_api).list_node().items
    ready = [n.metadata.name for n in nodes
             if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])]
    assert len(ready) >= 3, f"ready nodes: {ready}"


def test_deployment_of_three_replicas_becomes_available(kube_api, namespace):
    utils.create_from_dict(kube_api, deployment("web"), namespace=namespace)
    apps = client.AppsV1Api(kube_api)
    wait_for(lambda: available_replicas(apps, namespace, "web") == 3, what="3/3 available")
    pods = client.CoreV1Api(kube_api).list_namespaced_pod(namespace, label_selector="app=web").items
    assert {p.status.phase for p in pods} == {"Running"}
    assert all(p.spec.node_name for p in pods), "the scheduler placed every pod on a node"


def test_rollout_restart_and_undo_move_revisions_like_a_real_cluster(kube_api, namespace, tool):
    apps = client.AppsV1Api(kube_api)
    utils.create_from_dict(kube_api, deployment("web"), namespace=namespace)
    wait_for(lambda: available_replicas(apps, namespace, "web") == 3, what="first rollout")
    first = revisions(apps, namespace, "web")
    assert list(first.values()) == ["1"]

    run_tool(tool, "kubectl", "-n", namespace, "rollout", "restart", "deployment/web")
    wait_for(lambda: len(revisions(apps, namespace, "web")) == 2, what="a second ReplicaSet")
    run_tool(tool, "kubectl", "-n", namespace, "rollout", "status", "deployment/web", "--timeout=90s")
    second = revisions(apps, namespace, "web")
    new_rs = next(n for n in second if n not in first)
    assert second[new_rs] == "2"
    restarted_at = apps.read_namespaced_deployment("web", namespace).spec.template.metadata.annotations
    assert "kubectl.kubernetes.io/restartedAt" in restarted_at

    run_tool(tool, "kubectl", "-n", namespace, "rollout", "undo", "deployment/web")
    run_tool(tool, "kubectl", "-n", namespace, "rollout", "status", "deployment/web", "--timeout=90s")
    third = revisions(apps, namespace, "web")
    old_rs = next(iter(first))
    assert third[old_rs] == "3", "undo re-selects the first ReplicaSet under a new revision number"
    assert len(third) == 2, "undo reuses the old ReplicaSet instead of creating one"
    dep = apps.read_namespaced_deployment("web", namespace)
    assert dep.metadata.annotations["deployment.kubernetes.io/revision"] == "3"
    rs = apps.read_namespaced_replica_set(old_rs, namespace)
    assert rs.status.ready_replicas == 3


def test_deleting_a_namespace_removes_its_objects(kube_api):
    core, apps = client.CoreV1Api(kube_api), client.AppsV1Api(kube_api)
    ns = "t-ns-deletion"
    try:
        core.delete_namespace(ns)
        wait_for(lambda: not namespace_exists(core, ns), timeout=90, what="leftover namespace gone")
    except ApiException:
        pass
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    utils.create_from_dict(kube_api, deployment("doomed", replicas=2), namespace=ns)
    wait_for(lambda: available_replicas(apps, ns, "doomed") == 2, what="doomed deployment up")
    core.delete_namespace(ns)
    wait_for(lambda: not namespace_exists(core, ns), timeout=120, what="namespace finalized")
    leftover = core.list_pod_for_all_namespaces(field_selector=f"metadata.namespace={ns}").items
    assert leftover == []
    assert apps.list_replica_set_for_all_namespaces(field_selector=f"metadata.namespace={ns}").items == []


def namespace_exists(core: client.CoreV1Api, ns: str) -> bool:
    try:
        core.read_namespace(ns)
        return True
    except ApiException as e:
        if e.status == 404:
            return False
        raise


def test_garbage_collector_removes_replicasets_of_a_deleted_deployment(kube_api, namespace):
    apps = client.AppsV1Api(kube_api)
    utils.create_from_dict(kube_api, deployment("gc", replicas=1), namespace=namespace)
    wait_for(lambda: available_replicas(apps, namespace, "gc") == 1, what="gc deployment up")
    apps.delete_namespaced_deployment("gc", namespace, propagation_policy="Background")
    wait_for(lambda: not revisions(apps, namespace, "gc"), what="ReplicaSets collected")


CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.cpcheck.remediator.dev"},
    "spec": {
        "group": "cpcheck.remediator.dev",
        "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
        "scope": "Namespaced",
        "versions": [{
            "name": "v1", "served": True, "storage": True,
            "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {"spec": {
                    "type": "object",
                    "properties": {"min": {"type": "integer"}, "max": {"type": "integer"}},
                    "x-kubernetes-validations": [
                        {"rule": "self.min <= self.max", "message": "spec.min must not exceed spec.max"},
                    ],
                }},
            }},
        }],
    },
}


def test_cel_rule_rejects_a_bad_object_and_names_the_rule(kube_api, namespace):
    ext = client.ApiextensionsV1Api(kube_api)
    try:
        ext.create_custom_resource_definition(CRD)
    except ApiException as e:
        if e.status != 409:
            raise
    wait_for(lambda: any(c.type == "Established" and c.status == "True" for c in
                         ext.read_custom_resource_definition(CRD["metadata"]["name"]).status.conditions or []),
             what="CRD established")
    custom = client.CustomObjectsApi(kube_api)

    def create(spec):
        return custom.create_namespaced_custom_object(
            "cpcheck.remediator.dev", "v1", namespace, "widgets",
            {"apiVersion": "cpcheck.remediator.dev/v1", "kind": "Widget",
             "metadata": {"generateName": "w-"}, "spec": spec})

    # the CRD may be established before the apiserver's handler serves it
    wait_for(lambda: try_create(create, {"min": 1, "max": 2}), what="CRD served")
    with pytest.raises(ApiException) as err:
        create({"min": 5, "max": 2})
    assert err.value.status == 422
    assert "spec.min must not exceed spec.max" in err.value.body


def try_create(create, spec) -> bool:
    try:
        create(spec)
        return True
    except ApiException as e:
        if e.status == 404:
            return False
        raise


def test_serviceaccount_allowed_only_pods_gets_403_on_deployments(kube_api, namespace):
    core, rbac = client.CoreV1Api(kube_api), client.RbacAuthorizationV1Api(kube_api)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "pods-only"}})
    rbac.create_namespaced_role(namespace, {
        "metadata": {"name": "pods-only"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
    })
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": "pods-only"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pods-only"},
        "subjects": [{"kind": "ServiceAccount", "name": "pods-only", "namespace": namespace}],
    })
    token = core.create_namespaced_service_account_token(
        "pods-only", namespace, {"spec": {"expirationSeconds": 600}}).status.token

    cfg = client.Configuration()  # same host and CA as the admin client, the SA's token
    cfg.host = kube_api.configuration.host
    cfg.ssl_ca_cert = kube_api.configuration.ssl_ca_cert
    cfg.verify_ssl = kube_api.configuration.verify_ssl
    cfg.api_key = {"authorization": f"Bearer {token}"}
    as_sa = client.ApiClient(cfg)

    wait_for(lambda: can_list_pods(as_sa, namespace), what="RBAC binding in force")
    with pytest.raises(ApiException) as err:
        client.AppsV1Api(as_sa).list_namespaced_deployment(namespace)
    assert err.value.status == 403
    assert f"system:serviceaccount:{namespace}:pods-only" in err.value.body


def can_list_pods(api: client.ApiClient, ns: str) -> bool:
    try:
        client.CoreV1Api(api).list_namespaced_pod(ns)
        return True
    except ApiException as e:
        if e.status == 403:
            return False
        raise


def test_helm_installs_and_uninstalls_a_tiny_chart(kube_api, namespace, tool, tmp_path):
    chart = tmp_path / "tiny"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: tiny\nversion: 0.1.0\n")
    (chart / "templates" / "cm.yaml").write_text(textwrap.dedent("""\
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: {{ .Release.Name }}-cm
        data:
          greeting: hello
        """))
    core = client.CoreV1Api(kube_api)
    run_tool(tool, "helm", "install", "tiny", str(chart), "-n", namespace, "--wait", "--timeout", "60s")
    assert core.read_namespaced_config_map("tiny-cm", namespace).data == {"greeting": "hello"}
    releases = json.loads(run_tool(tool, "helm", "list", "-n", namespace, "-o", "json"))
    assert [r["name"] for r in releases] == ["tiny"]
    run_tool(tool, "helm", "uninstall", "tiny", "-n", namespace, "--wait")
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("tiny-cm", namespace)
    assert err.value.status == 404


@pytest.mark.parametrize("kind,reason", [("crashloop", "CrashLoopBackOff"), ("oomkilled", "CrashLoopBackOff"),
                                         ("imagepull", "ImagePullBackOff")])
def test_kwok_failure_stage_turns_a_ready_pod_into_a_failing_one(kube_api, namespace, kind, reason):
    core, apps = client.CoreV1Api(kube_api), client.AppsV1Api(kube_api)
    utils.create_from_dict(kube_api, deployment("web", replicas=1), namespace=namespace)
    wait_for(lambda: available_replicas(apps, namespace, "web") == 1, what="pod Ready")
    pod = core.list_namespaced_pod(namespace, label_selector="app=web").items[0]
    core.patch_namespaced_pod(pod.metadata.name, namespace,
                              {"metadata": {"labels": {"remediator.dev/kwok-fail": kind}}})

    def failing():
        p = core.read_namespaced_pod(pod.metadata.name, namespace)
        ready = next((c.status for c in p.status.conditions or [] if c.type == "Ready"), None)
        cs = (p.status.container_statuses or [None])[0]
        return ready == "False" and cs and cs.state.waiting and p

    p = wait_for(failing, what=f"{kind} reported by the apiserver")
    cs = p.status.container_statuses[0]
    assert cs.state.waiting.reason == reason
    if kind == "crashloop":
        assert cs.restart_count >= 1
    if kind == "oomkilled":
        assert cs.last_state.terminated.reason == "OOMKilled"
    dep = apps.read_namespaced_deployment("web", namespace)
    wait_for(lambda: (apps.read_namespaced_deployment("web", namespace).status.available_replicas or 0) == 0,
             what="deployment sees the pod unavailable")
    assert dep.metadata.name == "web"


def test_a_bad_rollout_labelled_in_the_template_never_becomes_ready(kube_api, namespace):
    apps = client.AppsV1Api(kube_api)
    utils.create_from_dict(kube_api, deployment("web", replicas=2), namespace=namespace)
    wait_for(lambda: available_replicas(apps, namespace, "web") == 2, what="good rollout")
    apps.patch_namespaced_deployment("web", namespace, {"spec": {"template": {
        "metadata": {"labels": {"remediator.dev/kwok-fail": "crashloop"}},
        "spec": {"containers": [{"name": "app", "image": "registry.local/web:bad"}]}}}})
    core = client.CoreV1Api(kube_api)

    def new_pods_crashlooping():
        pods = core.list_namespaced_pod(namespace, label_selector="remediator.dev/kwok-fail=crashloop").items
        return pods and all(p.status.container_statuses and p.status.container_statuses[0].state.waiting
                            and p.status.container_statuses[0].state.waiting.reason == "CrashLoopBackOff"
                            for p in pods)

    wait_for(new_pods_crashlooping, what="new pods crash-looping")
    dep = apps.read_namespaced_deployment("web", namespace)
    assert dep.status.unavailable_replicas, "the rollout is stuck, old pods keep serving"
    assert (dep.status.available_replicas or 0) >= 1
