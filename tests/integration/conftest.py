"""Fixtures for tests that run the operator against the real apiserver."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from kubernetes import client, utils
from kubernetes.client.rest import ApiException

from tests.support.operator import OperatorProcess
from tests.support.waiting import wait_for
from tests.support.workloads import bad_template_patch, deployment, workload

CHART = Path(__file__).resolve().parents[2] / "charts" / "remediator"
CRD_DIR = CHART / "crds"
ADMISSION_POLICIES = ("templates/approval-admission-policy.yaml", "templates/remediation-admission-policy.yaml")
GROUP, VERSION = "remediator.dev", "v1alpha1"
# Namespaces where a chart release under test runs the operator as its own ServiceAccount carry this label; the
# suite's own admission policies (operator = the admin identity) leave them to that release's policies.
CHART_RELEASE_LABEL = "remediator.dev/chart-release-under-test"
OUTSIDE_CHART_RELEASES = {"matchExpressions": [{"key": CHART_RELEASE_LABEL, "operator": "DoesNotExist"}]}


@pytest.fixture(scope="session")
def crds(kube_api, tool):
    """The chart's CRDs and its admission policies (rendered for a release of its own), applied
    server-side; ours Established. The tests' operator runs with the admin kubeconfig, so the policies are
    rendered with that identity as the operator's (anyone else is refused a status write)."""
    from remediator.approvals.kubernetes import whoami

    shown = [arg for template in ADMISSION_POLICIES for arg in ("--show-only", template)]
    policy = subprocess.run([tool("helm"), "template", "remediator-tests", str(CHART), "--namespace", "default",
                             "--set-string", f"admissionPolicy.operatorUsername={whoami(kube_api)[0]}",
                             "--set-json", f"admissionPolicy.namespaceSelector={json.dumps(OUTSIDE_CHART_RELEASES)}",
                             *shown], capture_output=True, text=True, timeout=60, check=False)
    assert policy.returncode == 0, policy.stderr
    for manifest, stdin in ((str(CRD_DIR), None), ("-", policy.stdout)):
        proc = subprocess.run([tool("kubectl"), "apply", "--server-side", "--force-conflicts", "-f", manifest],
                              input=stdin, capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr
    ext = client.ApiextensionsV1Api(kube_api)
    names = [f"{p}.{GROUP}" for p in ("runbooks", "remediations", "remediationpolicies")]
    for name in names:
        wait_for(lambda: any(c.type == "Established" and c.status == "True"
                             for c in ext.read_custom_resource_definition(name).status.conditions or []),
                 what=f"CRD {name} established")
    return names


class Cluster:
    """Thin helpers over the admin client for one test namespace."""

    def __init__(self, api: client.ApiClient, namespace: str):
        self.api = api
        self.ns = namespace
        self.custom = client.CustomObjectsApi(api)
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)
        self.policies: list[str] = []

    def apply_runbook(self, name: str, spec: dict) -> dict:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Runbook",
                "metadata": {"name": name, "namespace": self.ns}, "spec": spec}
        return self.custom.create_namespaced_custom_object(GROUP, VERSION, self.ns, "runbooks", body)

    def apply_policy(self, spec: dict) -> str:
        """A cluster policy scoped to this test's namespace only, as given: a test that needs wider guardrails than
        the defaults (the storm hold-off and cluster-wide concurrency count every namespace) says so in `spec`."""
        name = f"{self.ns}-policy"
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "RemediationPolicy",
                "metadata": {"name": name}, "spec": {"namespaces": [self.ns], **spec}}
        self.custom.create_cluster_custom_object(GROUP, VERSION, "remediationpolicies", body)
        self.policies.append(name)
        return name

    def remediations(self) -> list[dict]:
        return self.custom.list_namespaced_custom_object(GROUP, VERSION, self.ns, "remediations")["items"]

    def remediation(self, name: str) -> dict:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.ns, "remediations", name)

    def wait_phase(self, name: str, phases: set[str], timeout: float = 120) -> dict:
        def reached():
            obj = self.remediation(name)
            return obj if (obj.get("status") or {}).get("phase") in phases else None
        try:
            return wait_for(reached, timeout=timeout, what=f"remediation {name} in {phases}")
        except AssertionError as e:
            raise AssertionError(f"{e}\nstatus: {(self.remediation(name).get('status'))}") from None

    def deploy(self, name: str = "web", replicas: int = 3, **kw) -> None:
        utils.create_from_dict(self.api, deployment(name, replicas=replicas, **kw), namespace=self.ns)
        wait_for(lambda: (self.apps.read_namespaced_deployment(name, self.ns).status.available_replicas or 0)
                 == replicas, what=f"{name} {replicas}/{replicas} available")

    def deploy_workload(self, kind: str, name: str = "web", replicas: int = 2, **kw) -> None:
        """A StatefulSet or DaemonSet (or Deployment), waited for until every pod is Ready."""
        if kind == "Deployment":
            return self.deploy(name, replicas=replicas, **kw)
        utils.create_from_dict(self.api, workload(kind, name, replicas=replicas, **kw), namespace=self.ns)
        read = self.reader(kind)

        def ready():
            status = read(name, self.ns).status
            want = status.desired_number_scheduled if kind == "DaemonSet" else replicas
            have = status.number_ready if kind == "DaemonSet" else status.ready_replicas
            return bool(want) and have == want
        wait_for(ready, what=f"{kind} {name} ready")

    def reader(self, kind: str):
        return {"Deployment": self.apps.read_namespaced_deployment, "StatefulSet": self.apps.read_namespaced_stateful_set,
                "DaemonSet": self.apps.read_namespaced_daemon_set}[kind]

    def bad_rollout(self, name: str = "web", failure: str = "crashloop", image: str = "registry.local/web:bad",
                    kind: str = "Deployment"):
        patch = {"Deployment": self.apps.patch_namespaced_deployment,
                 "StatefulSet": self.apps.patch_namespaced_stateful_set,
                 "DaemonSet": self.apps.patch_namespaced_daemon_set}[kind]
        patch(name, self.ns, bad_template_patch(failure, image))

    def revisions(self, app: str = "web", kind: str = "Deployment") -> dict[str, str]:
        """Revision per ReplicaSet (Deployment) or ControllerRevision (StatefulSet, DaemonSet), by name."""
        if kind != "Deployment":
            crs = self.apps.list_namespaced_controller_revision(self.ns, label_selector=f"app={app}").items
            return {cr.metadata.name: str(cr.revision) for cr in crs}
        rss = self.apps.list_namespaced_replica_set(self.ns, label_selector=f"app={app}").items
        return {rs.metadata.name: rs.metadata.annotations.get("deployment.kubernetes.io/revision") for rs in rss}

    def cleanup(self) -> None:
        for name in self.policies:
            try:
                self.custom.delete_cluster_custom_object(GROUP, VERSION, "remediationpolicies", name)
            except ApiException:
                pass


@pytest.fixture
def cluster(kube_api, namespace, crds):
    c = Cluster(kube_api, namespace)
    yield c
    c.cleanup()


@pytest.fixture
def operator(kubeconfig, namespace, crds, tmp_path):
    op = OperatorProcess(kubeconfig, [namespace], tmp_path)
    op.start()
    yield op
    op.stop()


ARGO_ROLLOUTS = ("github.com/argoproj/argo-rollouts", "v1.8.3")


@pytest.fixture(scope="session")
def argo_rollouts_crd(kube_api, tool):
    """The Rollout CRD from the Argo Rollouts Go module's own manifests (pinned tag, via the Go module cache, as
    the control-plane builds get their sources). Its controller is not run: tests write Rollout status."""
    from e2e.cluster.build import go_env

    module, version = ARGO_ROLLOUTS
    got = subprocess.run(["go", "mod", "download", "-json", f"{module}@{version}"], capture_output=True, text=True,
                         timeout=600, check=False, env=go_env(), cwd=Path(__file__).parent)
    info = json.loads(got.stdout or "{}")
    assert got.returncode == 0 and not info.get("Error"), got.stderr or info
    manifest = Path(info["Dir"]) / "manifests" / "crds" / "rollout-crd.yaml"
    proc = subprocess.run([tool("kubectl"), "apply", "--server-side", "--force-conflicts", "-f", str(manifest)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    ext = client.ApiextensionsV1Api(kube_api)
    wait_for(lambda: any(c.type == "Established" and c.status == "True" for c in
                         ext.read_custom_resource_definition("rollouts.argoproj.io").status.conditions or []),
             what="the Rollout CRD established")
    return manifest
