"""The Helm chart, proven on the real control plane: lint, strict schema validation against the apiserver's own
OpenAPI, least-privilege RBAC exercised by the real operator running as the chart's ServiceAccount, and
upgrade/uninstall leaving nothing behind.

KWOK pods run no containers, so the operator process runs here, on the host, with a kubeconfig made from a
TokenRequest for the chart's ServiceAccount: every API call it makes passes the chart's RBAC.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests
import yaml
from kubernetes import client, config, dynamic, utils
from kubernetes.client.rest import ApiException
from prometheus_client.parser import text_string_to_metric_families

from remediator.actions.base import ActionError, execute
from remediator.kube import impersonating
from tests.integration.conftest import CHART, CHART_RELEASE_LABEL, CRD_DIR
from tests.integration.test_actions import key, node, pinned, request, wait_rolled_out  # noqa: F401 (node is a fixture)
from tests.integration.test_operator_loop import NO_APPROVALS, only_remediation, rollback_runbook
from tests.support import kube_schemas
from tests.support.operator import OperatorProcess, alert, alert_payload
from tests.support.waiting import wait_for
from tests.support.workloads import deployment

# runs alone: chart releases: ClusterRoles, cluster-wide admission policies
pytestmark = [pytest.mark.integration, pytest.mark.serial]
ROOT = CHART.parents[1]

# Value sets every rendering test runs with: the default, one scoped to namespaces, one with monitoring, and
# one with every secret mounted.
VALUE_SETS = {
    "default": {},
    "watchNamespaces": {"watchNamespaces": ["shop", "payments"], "rbac": {"nodeDrain": False}},
    "serviceMonitor": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
                       "grafanaDashboard": {"enabled": True}, "prometheus": {"url": "http://prometheus:9090"},
                       "networkPolicy": {"ingressFrom": [{"namespaceSelector": {"matchLabels": {"team": "obs"}}}]}},
    "slackSecrets": {"alertmanager": {"tokenSecret": {"name": "remediator-alertmanager"}},
                     "slack": {"botTokenSecret": {"name": "remediator-slack"},
                               "signingSecret": {"name": "remediator-slack"}},
                     "peering": {"enabled": False}, "replicas": 1},
}
# No schema for the Prometheus Operator's kind on this cluster; its shape is checked below instead.
NOT_SERVED_HERE = ["ServiceMonitor"]


def run(tool, name: str, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([tool(name), *args], capture_output=True, text=True, input=input, timeout=300,
                          check=False)
    if check:
        assert proc.returncode == 0, f"{name} {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc


def values_file(tmp_path: Path, values: dict, name: str = "values") -> str:
    path = tmp_path / f"{name}-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(values))
    return str(path)


def render(tool, tmp_path: Path, values: dict, *extra: str, release: str = "rm", namespace: str = "ops") -> str:
    return run(tool, "helm", "template", release, str(CHART), "--namespace", namespace,
               "-f", values_file(tmp_path, values), *extra).stdout


def documents(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


@pytest.fixture(scope="module")
def schemas(kube_api, crds, tmp_path_factory) -> str:
    """Strict JSON schemas for every kind the apiserver serves (ours and kopf's CRDs included)."""
    directory = tmp_path_factory.mktemp("schemas")
    written = kube_schemas.write_schemas(kube_schemas.fetch_documents(kube_api), directory)
    assert "apps/deployment_v1-strict.json" in written and "remediator.dev/runbook_v1alpha1-strict.json" in written
    return str(directory / kube_schemas.LOCATION)


def kubeconform(tool, schemas: str, *inputs: str, stdin: str | None = None) -> dict:
    proc = run(tool, "kubeconform", "-strict", "-summary", "-output", "json", "-schema-location", schemas,
               "-skip", ",".join(NOT_SERVED_HERE), *(inputs or ["-"]), input=stdin, check=False)
    report = json.loads(proc.stdout)
    problems = [f"{r['filename']}: {r['kind']}/{r['name']}: {r['msg']}" for r in report["resources"]
                if r["status"] not in ("statusValid", "statusSkipped")]
    assert proc.returncode == 0 and not problems, "\n".join(problems) or proc.stderr
    return report["summary"]


# ---------------------------------------------------------------- rendering


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_chart_lints_cleanly(tool, tmp_path, values):
    run(tool, "helm", "lint", "--strict", str(CHART), "-f", values_file(tmp_path, values))


def test_values_outside_the_schema_are_refused_naming_the_field(tool, tmp_path):
    proc = run(tool, "helm", "template", "rm", str(CHART), "--set", "logFormat=xml", check=False)
    assert proc.returncode != 0 and "/logFormat" in proc.stderr
    proc = run(tool, "helm", "template", "rm", str(CHART), "--set", "replicaCount=2", check=False)
    assert proc.returncode != 0 and "replicaCount" in proc.stderr


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_rendered_chart_is_valid_against_the_apiservers_schemas(tool, tmp_path, schemas, values):
    text = render(tool, tmp_path, values, "--include-crds")
    summary = kubeconform(tool, schemas, stdin=text)
    expected = [d for d in documents(text) if d["kind"] not in NOT_SERVED_HERE]
    assert summary["valid"] == len(expected) and summary["invalid"] == summary["errors"] == 0, summary


def test_our_custom_resources_and_crds_validate_strictly(tool, schemas):
    summary = kubeconform(tool, schemas, str(CRD_DIR), str(ROOT / "runbooks"), str(ROOT / "policies"))
    assert summary["valid"] >= 7 + len(list((ROOT / "runbooks").glob("*.yaml")))


def test_strict_validation_refuses_a_field_the_schema_does_not_name(tool, tmp_path, schemas):
    docs = documents(render(tool, tmp_path, {}))
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFS"] = True
    proc = run(tool, "kubeconform", "-strict", "-schema-location", schemas, "-", input=yaml.safe_dump(deployment),
               check=False)
    assert proc.returncode != 0 and "readOnlyRootFS" in proc.stdout


def rbac_rules(docs: list[dict]) -> list[tuple[str, dict]]:
    return [(f"{d['kind']}/{d['metadata']['name']}", rule) for d in docs
            if d["kind"] in ("Role", "ClusterRole") for rule in d.get("rules") or []]


WEBHOOK_TOKEN_RULE = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"],
                      "resourceNames": ["remediator-webhook-token"]}


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_no_role_grants_a_wildcard_or_a_secret_beyond_get_on_the_tenants_webhook_token_by_name(
        tool, tmp_path, values):
    rules = rbac_rules(documents(render(tool, tmp_path, values)))
    assert rules
    for where, rule in rules:
        for field in ("verbs", "resources", "apiGroups", "resourceNames", "nonResourceURLs"):
            assert "*" not in (rule.get(field) or []), f"{where} grants * {field}: {rule}"
        if any(r.split("/")[0] == "secrets" for r in rule.get("resources") or []):
            assert rule == WEBHOOK_TOKEN_RULE, f"{where}: {rule}"
    granted = [where for where, rule in rules if rule == WEBHOOK_TOKEN_RULE]
    assert len(granted) == len(values.get("watchNamespaces") or [None]), "one per served namespace, or cluster-wide"


def test_without_a_tenant_token_secret_name_the_chart_grants_no_secret_at_all(tool, tmp_path):
    docs = documents(render(tool, tmp_path, {"alertmanager": {"tenantTokenSecret": ""}}))
    assert not [rule for _, rule in rbac_rules(docs) if "secrets" in rule.get("resources", [])]
    [container] = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"]
    assert {"name": "REMEDIATOR_TENANT_TOKEN_SECRET", "value": ""} in container["env"], \
        "the operator is told too, so it never asks for a Secret it may not read"


def test_watch_namespaces_gets_a_role_in_each_and_no_cluster_wide_workload_rights(tool, tmp_path):
    docs = documents(render(tool, tmp_path, VALUE_SETS["watchNamespaces"]))
    tenant = [d for d in docs if not d["metadata"]["name"].endswith("-rollout-counts")]  # the release's own
    roles = {d["metadata"]["namespace"] for d in tenant if d["kind"] == "Role"}
    bindings = {d["metadata"]["namespace"] for d in tenant if d["kind"] == "RoleBinding"}
    assert roles == bindings == {"shop", "payments"}
    [cluster_role] = [d for d in docs if d["kind"] == "ClusterRole"]
    cluster_resources = {r for rule in cluster_role["rules"] for r in rule["resources"]}
    assert not cluster_resources & {"deployments", "pods", "pods/eviction", "runbooks", "configmaps"}, \
        "nodeDrain off: no cluster-wide pod rights; workloads only through the namespaces' Roles"
    peerings = {d["metadata"]["namespace"] for d in docs if d["kind"] == "KopfPeering"}
    assert peerings == {"shop", "payments"}
    args = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=shop" in args and "--namespace=payments" in args and "--all-namespaces" not in args


def test_with_node_drain_the_claims_on_nodes_may_be_taken_in_the_release_namespace_only(tool, tmp_path):
    docs = documents(render(tool, tmp_path, {"watchNamespaces": ["shop"], "rbac": {"nodeDrain": True}}))
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    release = deployment["metadata"]["namespace"]
    assert f"--claims-namespace={release}" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    claims = [d for d in docs if d["kind"] == "Role" and d["metadata"]["name"].endswith("-node-claims")]
    assert [(d["metadata"]["namespace"], d["rules"]) for d in claims] == [(release, [{
        "apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update", "delete"]}])]
    assert not [d for d in documents(render(tool, tmp_path, VALUE_SETS["watchNamespaces"]))
                if d["metadata"]["name"].endswith("-node-claims")], "no node actions, no claims on nodes"


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_the_rollout_counts_may_be_written_in_the_release_namespace_only_and_nothing_more(tool, tmp_path, values):
    docs = documents(render(tool, tmp_path, values))
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    release = deployment["metadata"]["namespace"]
    assert f"--counts-namespace={release}" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    counts = [d for d in docs if d["kind"] == "Role" and d["metadata"]["name"].endswith("-rollout-counts")]
    assert [(d["metadata"]["namespace"], d["rules"]) for d in counts] == [(release, [{
        "apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "create", "update"]}])]
    [binding] = [d for d in docs if d["kind"] == "RoleBinding" and d["metadata"]["name"].endswith("-rollout-counts")]
    assert binding["metadata"]["namespace"] == release and binding["roleRef"]["name"] == counts[0]["metadata"]["name"]


def test_by_default_no_node_drain_no_configmaps_and_metrics_only_from_the_monitoring_namespace(tool, tmp_path):
    docs = documents(render(tool, tmp_path, {}))
    granted = {(group, resource, verb) for where, rule in rbac_rules(docs) for group in rule["apiGroups"]
               for resource in rule["resources"] for verb in rule["verbs"] if not where.endswith("-rollout-counts")}
    assert ("", "nodes", "patch") not in granted, "cordonDrain's rights only with rbac.nodeDrain"
    assert not {g for g in granted if g[1] == "configmaps"}, "no ConfigMaps read cluster-wide by default"
    env = {e["name"]: e.get("value") for e in next(d for d in docs if d["kind"] == "Deployment")
           ["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["REMEDIATOR_CONFIGMAP_JOURNAL"] == "false", "the operator does not watch what it may not read"
    [policy] = [d for d in docs if d["kind"] == "NetworkPolicy"]
    by_port = {rule["ports"][0]["port"]: rule.get("from") for rule in policy["spec"]["ingress"]}
    assert by_port["metrics"] == [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "monitoring"}}}], "/metrics only from the monitoring namespace"
    assert by_port["http"] is None, "the webhooks (authenticated) stay reachable"
    service_ports = {p["name"] for p in next(d for d in docs if d["kind"] == "Service")["spec"]["ports"]}
    assert service_ports == {"http", "metrics"}

    widened = documents(render(tool, tmp_path, {"rbac": {"nodeDrain": True, "configMapsClusterWide": True},
                                                "networkPolicy": {"metricsFrom": []}}))
    widened_rules = {(rule_resource, verb) for _, rule in rbac_rules(widened) for rule_resource in rule["resources"]
                     for verb in rule["verbs"]}
    assert {("nodes", "patch"), ("pods/eviction", "create"), ("configmaps", "watch")} <= widened_rules
    [policy] = [d for d in widened if d["kind"] == "NetworkPolicy"]
    assert [r["ports"][0]["port"] for r in policy["spec"]["ingress"]] == ["http"], "metricsFrom empty: nobody"


def test_impersonation_is_granted_only_in_tenant_namespaces_and_only_for_named_service_accounts(tool, tmp_path):
    docs = documents(render(tool, tmp_path, {"actions": {
        "serviceAccount": "remediator-actions", "tenantNamespaces": ["shop", "payments"],
        "allowedServiceAccounts": ["deployer"]}}))
    grants = [(d["kind"], d["metadata"].get("namespace"), rule) for d in docs if d["kind"] in ("Role", "ClusterRole")
              for rule in d["rules"] if "impersonate" in rule["verbs"]]
    assert {(kind, ns) for kind, ns, _ in grants} == {("Role", "shop"), ("Role", "payments")}
    for _, _, rule in grants:
        assert rule["resources"] == ["serviceaccounts"]
        assert rule["resourceNames"] == ["remediator-actions", "deployer"]
    fails = run(tool, "helm", "template", "rm", str(CHART), "-f", values_file(tmp_path, {
        "actions": {"serviceAccount": "remediator-actions"}}), check=False)
    assert fails.returncode != 0 and "actions.tenantNamespaces" in fails.stderr


def test_secrets_are_mounted_as_files_the_operator_is_pointed_at(tool, tmp_path):
    docs = documents(render(tool, tmp_path, VALUE_SETS["slackSecrets"]))
    pod = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    [container] = pod["containers"]
    mounted = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    secrets = {v["name"]: v["secret"] for v in pod["volumes"] if "secret" in v}
    assert {s["secretName"] for s in secrets.values()} == {"remediator-alertmanager", "remediator-slack"}
    for flag, volume in (("--alertmanager-token-file", "alertmanager-token"),
                         ("--slack-token-file", "slack-bot-token"),
                         ("--slack-signing-secret-file", "slack-signing-secret")):
        [arg] = [a for a in container["args"] if a.startswith(flag + "=")]
        [item] = secrets[volume]["items"]
        assert arg.split("=", 1)[1] == f"{mounted[volume]}/{item['path']}"
    assert "--peering=none" in container["args"]
    assert not any(d["kind"] in ("KopfPeering", "ClusterKopfPeering") for d in docs)


def test_replicas_peer_under_their_pod_names_with_priorities_of_their_own(tool, tmp_path):
    docs = documents(render(tool, tmp_path, {}))
    [container] = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"]
    pod_id = next(e for e in container["env"] if e["name"] == "POD_ID")
    assert pod_id["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    # two replicas with one priority would both freeze; without --priority each picks a random one
    assert not any(a.startswith("--priority") for a in container["args"])
    [peering] = [d for d in docs if d["kind"] == "ClusterKopfPeering"]
    assert f"--peering={peering['metadata']['name']}" in container["args"]


def test_service_monitor_scrapes_the_services_metrics_port(tool, tmp_path):
    docs = documents(render(tool, tmp_path, VALUE_SETS["serviceMonitor"]))
    [monitor] = [d for d in docs if d["kind"] == "ServiceMonitor"]
    [service] = [d for d in docs if d["kind"] == "Service"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    env = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "REMEDIATOR_PROMETHEUS_URL", "value": "http://prometheus:9090"} in env


def test_grafana_dashboard_ships_only_when_the_chart_has_the_file(tool, tmp_path):
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    (chart / "files").mkdir(exist_ok=True)
    (chart / "files" / "grafana-dashboard.json").write_text('{"title": "remediator"}')

    def dashboards(chart_dir: Path, enabled: bool) -> list[dict]:
        text = run(tool, "helm", "template", "rm", str(chart_dir), "--set", f"grafanaDashboard.enabled={enabled}").stdout
        return [d for d in documents(text) if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboard")]

    [cm] = dashboards(chart, True)
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["remediator.json"]) == {"title": "remediator"}
    assert dashboards(chart, False) == []
    (chart / "files" / "grafana-dashboard.json").unlink()
    assert dashboards(chart, True) == [], "no file, no ConfigMap, and no error"


# ---------------------------------------------------------------- on the real control plane

HOOK = "templates/tests/webhook-test.yaml"


def helm_test_script(tool, tmp_path) -> str:
    [pod] = documents(render(tool, tmp_path, {}, "--show-only", HOOK))
    return pod["spec"]["containers"][0]["args"][0]


def test_the_helm_test_pod_is_admitted_under_restricted_pod_security(kube_api, tool, namespace, tmp_path):
    restricted(kube_api, namespace)
    # a new namespace's `default` ServiceAccount comes from a controller a moment later; admission looks it up
    wait_for(lambda: has_service_account(kube_api, namespace, "default"), what="the default ServiceAccount")
    [pod] = documents(render(tool, tmp_path, {}, "--show-only", HOOK, namespace=namespace))
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    run(tool, "kubectl", "create", "--dry-run=server", "-n", namespace, "-f", "-", input=yaml.safe_dump(pod))


def has_service_account(kube_api, namespace: str, name: str) -> bool:
    try:
        client.CoreV1Api(kube_api).read_namespaced_service_account(name, namespace)
    except ApiException as e:
        if e.status == 404:
            return False
        raise
    return True


def restricted(kube_api, namespace: str) -> None:
    """Pod Security admission refuses any pod of this namespace that is not `restricted`."""
    client.CoreV1Api(kube_api).patch_namespace(namespace, {"metadata": {"labels": {
        "pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest"}}})


def install(tool, tmp_path, release: str, namespace: str, values: dict, verb: str = "install") -> None:
    run(tool, "helm", verb, release, str(CHART), "--namespace", namespace, "-f", values_file(tmp_path, values),
        "--wait", "--timeout", "120s")


def service_account_kubeconfig(kube_api, kubeconfig: str, namespace: str, sa: str, path: Path) -> str:
    """A kubeconfig whose user is the ServiceAccount, with a token from the TokenRequest API."""
    token = client.CoreV1Api(kube_api).create_namespaced_service_account_token(
        sa, namespace, {"spec": {"expirationSeconds": 3600}}).status.token
    admin = yaml.safe_load(Path(kubeconfig).read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])["context"]
    cluster = next(c for c in admin["clusters"] if c["name"] == context["cluster"])
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [cluster],
        "users": [{"name": sa, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": cluster["name"], "user": sa, "namespace": namespace}}],
    }))
    return str(path)


def forbidden(call) -> bool:
    try:
        call()
    except ApiException as e:
        return e.status == 403
    return False


@pytest.fixture(autouse=True)
def namespace_under_the_releases_policies(request):
    """The suite's admission policies name the admin as the operator; here a release's ServiceAccount is."""
    if "namespace" in request.fixturenames:
        client.CoreV1Api(request.getfixturevalue("kube_api")).patch_namespace(
            request.getfixturevalue("namespace"), {"metadata": {"labels": {CHART_RELEASE_LABEL: "true"}}})


@pytest.fixture
def ops_namespace(kube_api, namespace):
    """A second namespace, where the chart is installed (the operator's home, apart from the workloads')."""
    core = client.CoreV1Api(kube_api)
    name = f"{namespace[:55]}-ops"
    core.create_namespace({"metadata": {"name": name, "labels": {"remediator.dev/test": "true"}}})
    yield name
    core.delete_namespace(name)


def operator_args(kube_api, namespace: str, deployment: str) -> list[str]:
    return client.AppsV1Api(kube_api).read_namespaced_deployment(deployment, namespace).spec.template.spec \
        .containers[0].args


def operator_env(kube_api, namespace: str, deployment: str) -> dict[str, str]:
    """The REMEDIATOR_* settings the chart gives the operator (plain values only)."""
    container = client.AppsV1Api(kube_api).read_namespaced_deployment(deployment, namespace).spec.template.spec \
        .containers[0]
    return {e.name: e.value for e in container.env or [] if e.name.startswith("REMEDIATOR_") and e.value is not None}


def peering_record(kube_api, name: str, namespace: str | None) -> dict:
    custom = client.CustomObjectsApi(kube_api)
    if namespace:
        return custom.get_namespaced_custom_object("kopf.dev", "v1", namespace, "kopfpeerings", name)
    return custom.get_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", name)


@pytest.mark.slow
def stored_counts(kube_api, where: str, counted: str) -> dict | None:
    try:
        cm = client.CoreV1Api(kube_api).read_namespaced_config_map(f"remediator-rollouts-{counted}", where)
    except ApiException as e:
        if e.status == 404:
            return None
        raise
    return json.loads((cm.data or {}).get("counts.json") or "{}")


@pytest.mark.parametrize("scope", ["watchNamespaces", "wholeCluster"])
def test_operator_as_the_charts_service_account_closes_the_loop_and_is_refused_secrets(
        kube_api, kubeconfig, tool, namespace, ops_namespace, cluster, tmp_path, scope):
    restricted(kube_api, ops_namespace)
    token = uuid.uuid4().hex
    client.CoreV1Api(kube_api).create_namespaced_secret(ops_namespace, {
        "metadata": {"name": "am-token"}, "stringData": {"token": token}})
    release = f"rm{uuid.uuid4().hex[:6]}"
    scoped = scope == "watchNamespaces"
    install(tool, tmp_path, release, ops_namespace, {
        "watchNamespaces": [namespace] if scoped else [], "alertmanager": {"tokenSecret": {"name": "am-token"}}})
    fullname = f"{release}-remediator"
    try:
        assert client.AppsV1Api(kube_api).read_namespaced_deployment(
            fullname, ops_namespace).status.ready_replicas == 2, \
            "both replicas were admitted under the restricted Pod Security standard"
        # run it as the chart runs it: the same scope and peering, the chart's identity
        args = operator_args(kube_api, ops_namespace, fullname)
        [peering] = [a.split("=", 1)[1] for a in args if a.startswith("--peering=")]
        assert ("--all-namespaces" in args) != scoped
        assert peering_record(kube_api, peering, namespace if scoped else None)

        sa_config = service_account_kubeconfig(kube_api, kubeconfig, ops_namespace, fullname, tmp_path / "sa.yaml")
        op = OperatorProcess(sa_config, [namespace] if scoped else [], tmp_path, token=token,
                             extra_args=["--peering", peering, "--counts-flush", "1",
                                         *(a for a in args if a.startswith("--counts-namespace="))],
                             env=operator_env(kube_api, ops_namespace, fullname))
        op.start()
        try:
            cluster.apply_policy(NO_APPROVALS)
            cluster.apply_runbook("bad-rollout", rollback_runbook())
            cluster.deploy("web", replicas=2)
            cluster.bad_rollout("web")
            wait_for(lambda: len(cluster.revisions()) == 2, what="bad revision")
            # the tenant's own route: its token read from its Secret with the chart's narrow `get`
            tenant_token = uuid.uuid4().hex
            client.CoreV1Api(kube_api).create_namespaced_secret(namespace, {
                "metadata": {"name": "remediator-webhook-token"}, "stringData": {"token": tenant_token}})
            resp = requests.post(f"{op.url}/webhooks/alertmanager/{namespace}", timeout=10,
                                 json=alert_payload([alert(namespace, "web")]),
                                 headers={"Authorization": f"Bearer {tenant_token}"})
            assert resp.status_code == 200, resp.text
            name = only_remediation(cluster)["metadata"]["name"]
            status = cluster.wait_phase(name, {"Succeeded", "Failed", "Escalated", "Skipped"})["status"]
            assert status["phase"] == "Succeeded", status
            assert sorted(cluster.revisions().values()) == ["2", "3"], "rolled back once, as the chart's identity"
            counts = wait_for(lambda: stored_counts(kube_api, ops_namespace, namespace),
                              what="the rollout counts written in the release namespace, as the chart's identity")
            assert counts["workloads"]["Deployment/web"]["revision"] >= 2, counts
            hook = subprocess.run([sys.executable, "-c", helm_test_script(tool, tmp_path)], capture_output=True,
                                  text=True, timeout=60, env={**os.environ, "REMEDIATOR_URL": op.url}, check=False)
            assert hook.returncode == 0 and "webhook endpoint answers" in hook.stdout, \
                f"the `helm test` check fails against the real operator: {hook.stderr}"
            assert peering_record(kube_api, peering, namespace if scoped else None).get("status"), \
                "the operator keeps its peering record alive"
        finally:
            op.stop()
        log = op.log_path.read_text().lower()
        for refusal in ("forbidden", "not enough permissions", "could not post event", "apiserver refused",
                        "pod rescan failed", "ingest failed"):
            assert refusal not in log, op.log_tail()

        as_sa = config.new_client_from_config(config_file=sa_config)
        review = client.AuthenticationV1Api(as_sa).create_self_subject_review({})
        assert review.status.user_info.username == f"system:serviceaccount:{ops_namespace}:{fullname}"
        core = client.CoreV1Api(as_sa)
        assert forbidden(lambda: core.list_namespaced_secret(namespace)), "Secrets in another namespace"
        assert forbidden(lambda: core.read_namespaced_secret("am-token", ops_namespace)), "its own namespace's"
        assert forbidden(lambda: core.list_secret_for_all_namespaces())
        assert core.read_namespaced_secret("remediator-webhook-token", namespace).data, "the tenant's token, by name"
        assert forbidden(lambda: core.list_namespaced_secret(
            namespace, field_selector="metadata.name=remediator-webhook-token")), "get only: not even listed by name"
        client.CoreV1Api(kube_api).create_namespaced_secret(namespace, {
            "metadata": {"name": "db-password"}, "stringData": {"password": "x"}})
        assert forbidden(lambda: core.read_namespaced_secret("db-password", namespace)), "any other name"
        if scoped:
            assert forbidden(lambda: client.AppsV1Api(as_sa).list_namespaced_deployment("default")), \
                "workloads outside watchNamespaces"
    finally:
        run(tool, "helm", "uninstall", release, "--namespace", ops_namespace, "--wait", check=False)


def release_objects(kube_api, release: str, kinds: set[tuple[str, str]]) -> list[str]:
    """Every object of these (apiVersion, kind) pairs, in any namespace, carrying the release's label."""
    dyn = dynamic.DynamicClient(kube_api)
    found = []
    for api_version, kind in sorted(kinds):
        resource = dyn.resources.get(api_version=api_version, kind=kind)
        for item in resource.get(label_selector=f"app.kubernetes.io/instance={release}").items:
            found.append(f"{kind}/{item.metadata.namespace or ''}/{item.metadata.name}")
    return found


@pytest.mark.slow
def test_upgrade_and_uninstall_leave_no_orphans_and_keep_the_crds(kube_api, tool, namespace, ops_namespace, crds,
                                                                  tmp_path):
    other = ops_namespace
    release = f"rm{uuid.uuid4().hex[:6]}"
    try:
        steps = [  # each step drops something the previous one made
            ("install", {"watchNamespaces": [namespace, other], "replicas": 2}),
            ("upgrade", {"watchNamespaces": [namespace], "replicas": 1, "podDisruptionBudget": {"enabled": False},
                         "networkPolicy": {"enabled": False}}),
            ("upgrade", {"replicas": 1, "admissionPolicy": {"enabled": False}}),
        ]
        kinds: set[tuple[str, str]] = set()
        for verb, values in steps:
            install(tool, tmp_path, release, namespace, values, verb)
            made = [d for d in documents(render(tool, tmp_path, values, release=release, namespace=namespace))
                    if "helm.sh/hook" not in (d["metadata"].get("annotations") or {})]
            kinds |= {(d["apiVersion"], d["kind"]) for d in made}
            wanted = sorted(f"{d['kind']}/{d['metadata'].get('namespace', '')}/{d['metadata']['name']}" for d in made)
            assert sorted(release_objects(kube_api, release, kinds)) == wanted, f"after {verb} with {values}"

        run(tool, "helm", "uninstall", release, "--namespace", namespace, "--wait")
        assert release_objects(kube_api, release, kinds) == []
        owned = {("apps/v1", "ReplicaSet"), ("v1", "Pod")}  # what the Deployment made, collected by the GC
        wait_for(lambda: release_objects(kube_api, release, owned) == [], what="the operator's pods gone")
        ext = client.ApiextensionsV1Api(kube_api)
        for path in CRD_DIR.glob("*.yaml"):
            name = yaml.safe_load(path.read_text())["metadata"]["name"]
            assert ext.read_custom_resource_definition(name), f"CRD {name} stays after uninstall, as Helm intends"
    finally:
        run(tool, "helm", "uninstall", release, "--namespace", namespace, check=False)


def rollbacks(op: OperatorProcess) -> float:
    """Rollbacks this replica applied, from its own /metrics."""
    text = requests.get(f"{op.url}/metrics", timeout=5).text
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == "remediator_actions_total" and sample.labels.get("action") == "rollback"
               and sample.labels.get("result") == "applied")


@pytest.fixture
def two_replicas(kube_api, kubeconfig, tool, namespace, ops_namespace, tmp_path):
    """The chart installed for `namespace`; a function starting two replicas as it runs them (same identity and
    peering, POD_ID naming each peer, distinct priorities): (active, standby)."""
    release = f"rm{uuid.uuid4().hex[:6]}"
    install(tool, tmp_path, release, ops_namespace, {"watchNamespaces": [namespace]})
    fullname = f"{release}-remediator"
    args = operator_args(kube_api, ops_namespace, fullname)
    [peering] = [a.split("=", 1)[1] for a in args if a.startswith("--peering=")]
    sa_config = service_account_kubeconfig(kube_api, kubeconfig, ops_namespace, fullname, tmp_path / "sa.yaml")
    started: list[OperatorProcess] = []

    def start() -> tuple[OperatorProcess, OperatorProcess]:
        for pod, priority in (("replica-a", 200), ("replica-b", 100)):
            started.append(OperatorProcess(sa_config, [namespace], tmp_path, env={"POD_ID": pod},
                                           extra_args=["--peering", peering, "--priority", str(priority)]).start())
        wait_for(lambda: {"replica-a", "replica-b"} <= set(
            peering_record(kube_api, peering, namespace).get("status") or {}), what="both replicas peered")
        return started[0], started[1]

    yield start
    for op in started:
        op.stop()
    run(tool, "helm", "uninstall", release, "--namespace", ops_namespace, "--wait", check=False)


@pytest.mark.slow
def test_two_replicas_as_the_chart_runs_them_one_works_and_the_standby_takes_over(cluster, two_replicas):
    cluster.apply_policy(NO_APPROVALS)
    cluster.apply_runbook("bad-rollout", rollback_runbook())
    for app in ("web", "api"):
        cluster.deploy(app, replicas=1)
    active, standby = two_replicas()

    cluster.bad_rollout("web")
    wait_for(lambda: len(cluster.revisions("web")) == 2, what="bad web revision")
    # the standby still takes webhooks; the active replica runs the loop
    resp = standby.post_alerts(alert_payload([alert(cluster.ns, "web")]))
    assert resp.status_code == 200 and resp.json()["results"][0]["outcome"] == "created", resp.text
    first = only_remediation(cluster)["metadata"]["name"]
    assert cluster.wait_phase(first, {"Succeeded", "Failed", "Escalated"})["status"]["phase"] == "Succeeded"
    assert sorted(cluster.revisions("web").values()) == ["2", "3"], "rolled back exactly once"
    assert (rollbacks(active), rollbacks(standby)) == (1, 0), "the higher priority replica did it"

    active.stop()  # a clean exit leaves the peering at once
    wait_for(lambda: "resuming operations" in standby.log_path.read_text().lower().split(
        "pausing operations in favour of")[-1], what="the standby taking over")
    cluster.bad_rollout("api")
    wait_for(lambda: len(cluster.revisions("api")) == 2, what="bad api revision")
    assert standby.post_alerts(alert_payload([alert(cluster.ns, "api", fingerprint="f2")])).status_code == 200
    second = wait_for(lambda: [r["metadata"]["name"] for r in cluster.remediations()
                               if r["metadata"]["name"] != first], what="second remediation")[0]
    assert cluster.wait_phase(second, {"Succeeded", "Failed", "Escalated"})["status"]["phase"] == "Succeeded"
    assert sorted(cluster.revisions("api").values()) == ["2", "3"]
    assert rollbacks(standby) == 1, "the standby took over"


@pytest.mark.slow
def test_a_standby_replica_matches_alerts_to_runbooks_created_after_it_started(cluster, two_replicas):
    cluster.apply_policy(NO_APPROVALS)
    active, standby = two_replicas()
    cluster.apply_runbook("bad-rollout", rollback_runbook())
    wait_for(lambda: active.post_alerts(alert_payload([alert(cluster.ns, "web", fingerprint="seen")])).json()
             ["results"][0]["outcome"] != "unmatched", what="the active replica knows the new runbook")
    resp = standby.post_alerts(alert_payload([alert(cluster.ns, "web", fingerprint="late")]))
    assert resp.json()["results"][0]["outcome"] != "unmatched", resp.text


@pytest.mark.slow
def test_every_action_is_within_the_charts_rights_and_drain_needs_node_drain(
        kube_api, kubeconfig, tool, namespace, ops_namespace, node, tmp_path):  # noqa: F811 (the fixture)
    release = f"rm{uuid.uuid4().hex[:6]}"
    values = {"watchNamespaces": [namespace], "rbac": {"nodeDrain": True}}
    install(tool, tmp_path, release, ops_namespace, values)
    try:
        fullname = f"{release}-remediator"
        as_sa = config.new_client_from_config(config_file=service_account_kubeconfig(
            kube_api, kubeconfig, ops_namespace, fullname, tmp_path / "sa.yaml"))
        utils.create_from_dict(kube_api, pinned(deployment("web", replicas=2), node), namespace=namespace)
        wait_rolled_out(kube_api, namespace, "web")
        client.AppsV1Api(kube_api).patch_namespaced_deployment("web", namespace, {"spec": {"template": {
            "metadata": {"annotations": {"revision": "2"}}}}})  # a second revision for rollback to go back from
        wait_rolled_out(kube_api, namespace, "web")

        # server-side dry runs: the apiserver authorizes them exactly as the real calls, and they touch nothing
        steps = [
            request("restartRollout", namespace, "web", key(), dry_run=True),
            request("scale", namespace, "web", key(), scale={"max_replicas": 5}, dry_run=True),
            request("raiseMemory", namespace, "web", key(), raise_memory={"factor": 2, "max_limit": "1Gi"},
                    dry_run=True),
            request("rollback", namespace, "web", key(), dry_run=True),
            request("deletePod", namespace, "web", key(), dry_run=True, max_pods=1),
            request("cordonDrain", None, node, key(), kind="Node", dry_run=True),
        ]
        for step in steps:
            try:
                execute(as_sa, step)
            except ActionError as e:
                pytest.fail(f"{step.action} as the chart's ServiceAccount: {e}")

        install(tool, tmp_path, release, ops_namespace, {**values, "rbac": {"nodeDrain": False}}, "upgrade")

        def drain_refused() -> bool:
            try:
                execute(as_sa, request("cordonDrain", None, node, key(), kind="Node", dry_run=True))
            except ActionError as e:
                return e.status == 403
            return False

        wait_for(drain_refused, what="cordonDrain refused once rbac.nodeDrain is off")
        execute(as_sa, steps[0])  # the rest is untouched
    finally:
        run(tool, "helm", "uninstall", release, "--namespace", ops_namespace, "--wait", check=False)


@pytest.mark.slow
def test_with_impersonation_the_operator_may_only_read_and_acts_through_the_tenants_service_account(
        kube_api, kubeconfig, tool, namespace, ops_namespace, cluster, tmp_path):
    release = f"rm{uuid.uuid4().hex[:6]}"
    install(tool, tmp_path, release, ops_namespace, {
        "watchNamespaces": [namespace],
        "actions": {"serviceAccount": "remediator-actions", "tenantNamespaces": [namespace]}})
    fullname = f"{release}-remediator"
    try:
        env = {e.name: e.value for e in client.AppsV1Api(kube_api).read_namespaced_deployment(
            fullname, ops_namespace).spec.template.spec.containers[0].env or []}
        assert env["REMEDIATOR_ACTION_SERVICE_ACCOUNT"] == "remediator-actions"
        sa_config = service_account_kubeconfig(kube_api, kubeconfig, ops_namespace, fullname, tmp_path / "sa.yaml")
        as_operator = client.AppsV1Api(config.new_client_from_config(config_file=sa_config))
        cluster.deploy("web", replicas=2)
        assert forbidden(lambda: as_operator.patch_namespaced_deployment(
            "web", namespace, {"spec": {"replicas": 3}})), "the operator itself may not change workloads"

        op = OperatorProcess(sa_config, [namespace], tmp_path, extra_args=["--peering", "none"],
                             env={"REMEDIATOR_ACTION_SERVICE_ACCOUNT": "remediator-actions"})
        op.start()
        try:
            cluster.apply_policy(NO_APPROVALS)
            cluster.apply_runbook("bad-rollout", rollback_runbook())
            cluster.bad_rollout("web")
            wait_for(lambda: len(cluster.revisions()) == 2, what="bad revision")
            assert op.post_alerts(alert_payload([alert(namespace, "web")])).status_code == 200
            name = only_remediation(cluster)["metadata"]["name"]
            status = cluster.wait_phase(name, {"Succeeded", "Failed", "Escalated", "Skipped"})["status"]
        finally:
            op.stop()
        assert status["phase"] == "Succeeded", status
        assert sorted(cluster.revisions().values()) == ["2", "3"], "rolled back once, as remediator-actions"
    finally:
        run(tool, "helm", "uninstall", release, "--namespace", ops_namespace, "--wait", check=False)


def can(api, user: str, verb: str, resource: str, namespace: str | None = None, name: str | None = None,
        subresource: str | None = None) -> bool:
    """The apiserver's own answer (SubjectAccessReview) to: may `user` do this?"""
    attributes = {"verb": verb, "resource": resource, "namespace": namespace, "name": name,
                  "subresource": subresource, "group": ""}
    review = client.AuthorizationV1Api(api).create_subject_access_review({
        "spec": {"user": user, "groups": ["system:serviceaccounts", "system:authenticated"],
                 "resourceAttributes": {k: v for k, v in attributes.items() if v is not None}}})
    return review.status.allowed


@pytest.mark.slow
def test_the_charts_service_account_may_borrow_no_identity_read_no_configmap_and_drain_no_node_by_default(
        kube_api, kubeconfig, tool, namespace, ops_namespace, cluster, tmp_path):
    release = f"rm{uuid.uuid4().hex[:6]}"
    install(tool, tmp_path, release, ops_namespace, {
        "actions": {"serviceAccount": "remediator-actions", "tenantNamespaces": [namespace]}})
    fullname = f"{release}-remediator"
    operator = f"system:serviceaccount:{ops_namespace}:{fullname}"
    try:
        core = client.CoreV1Api(kube_api)
        core.create_namespaced_service_account(namespace, {"metadata": {"name": "ci-admin"}})
        client.RbacAuthorizationV1Api(kube_api).create_namespaced_role_binding(namespace, {
            "metadata": {"name": "ci-admin"}, "subjects": [{"kind": "ServiceAccount", "name": "ci-admin",
                                                             "namespace": namespace}],
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"}})
        cluster.deploy("web", replicas=1)

        assert can(kube_api, operator, "impersonate", "serviceaccounts", namespace, "remediator-actions")
        assert not can(kube_api, operator, "impersonate", "serviceaccounts", namespace, "ci-admin")
        assert not can(kube_api, operator, "impersonate", "serviceaccounts", ops_namespace, "remediator-actions")
        assert not can(kube_api, operator, "list", "configmaps", namespace)
        assert not can(kube_api, operator, "get", "configmaps", "kube-system", "kube-root-ca.crt")
        assert not can(kube_api, operator, "patch", "nodes", name="any")
        assert not can(kube_api, operator, "create", "pods", namespace, subresource="eviction")

        # and for real: the operator's own token, impersonating
        as_operator = config.new_client_from_config(config_file=service_account_kubeconfig(
            kube_api, kubeconfig, ops_namespace, fullname, tmp_path / "sa.yaml"))
        assert forbidden(lambda: client.AppsV1Api(impersonating(as_operator, namespace, "ci-admin"))
                         .read_namespaced_deployment("web", namespace)), "a wide tenant account is not borrowed"
        assert client.AppsV1Api(impersonating(as_operator, namespace, "remediator-actions")) \
            .read_namespaced_deployment("web", namespace).metadata.name == "web"
        assert forbidden(lambda: client.CoreV1Api(as_operator).list_namespaced_config_map(namespace))
        assert forbidden(lambda: client.CoreV1Api(as_operator).patch_node("any", {}))
    finally:
        run(tool, "helm", "uninstall", release, "--namespace", ops_namespace, "--wait", check=False)


def test_the_operator_and_tenant_accounts_may_read_revision_histories_and_abort_and_undo_argo_rollouts(
        tool, tmp_path):
    def granted(values):
        return {(group, resource, verb) for _, rule in rbac_rules(documents(render(tool, tmp_path, values)))
                for group in rule["apiGroups"] for resource in rule["resources"] for verb in rule["verbs"]}

    needed = {("apps", "controllerrevisions", "list"), ("apps", "controllerrevisions", "watch"),
              ("argoproj.io", "rollouts", "patch"), ("argoproj.io", "rollouts/status", "patch")}
    assert needed <= granted({})
    tenant = granted({"actions": {"serviceAccount": "remediator-actions", "tenantNamespaces": ["shop"]}})
    assert needed <= tenant
