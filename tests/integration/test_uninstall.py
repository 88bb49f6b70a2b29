"""Nothing stranded: open Remediations and SLOs carry no finalizer, so after `helm uninstall` their namespace can
still be deleted; objects an earlier version left with kopf's finalizer lose it when the operator sees them."""

from __future__ import annotations

import uuid

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from remediator.api.models import GROUP, KOPF_FINALIZER, VERSION
from tests.integration.conftest import CHART_RELEASE_LABEL, Cluster
from tests.integration.test_chart import (install, operator_args, operator_env, run,
                                          service_account_kubeconfig)
from tests.integration.test_kubernetes_approvals import APPROVERS
from tests.integration.test_operator_loop import bad_rollout_incident
from tests.integration.test_slo_loop import DEMO
from tests.support.operator import OperatorProcess
from tests.support.waiting import wait_for

# runs alone: chart releases: ClusterRoles, cluster-wide admission policies
pytestmark = [pytest.mark.integration, pytest.mark.serial]


def open_slo(cluster) -> str:
    body = yaml.safe_load((DEMO / "slo.yaml").read_text())
    body["metadata"]["namespace"] = cluster.ns
    cluster.custom.create_namespaced_custom_object(GROUP, VERSION, cluster.ns, "servicelevelobjectives", body)
    name = body["metadata"]["name"]
    wait_for(lambda: slo(cluster, name).get("status", {}).get("conditions"), what="the SLO evaluated")
    return name


def slo(cluster, name: str) -> dict:
    return cluster.custom.get_namespaced_custom_object(GROUP, VERSION, cluster.ns, "servicelevelobjectives", name)


def namespace_gone(core: client.CoreV1Api, name: str) -> bool:
    try:
        core.read_namespace(name)
    except ApiException as e:
        return e.status == 404
    return False


@pytest.fixture
def apps_namespace(kube_api):
    """The workloads' namespace, which the test itself deletes (the suite's `namespace` fixture would too)."""
    core = client.CoreV1Api(kube_api)
    name = f"t-uninstall-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": name, "labels": {"remediator.dev/test": "true",
                                                                 CHART_RELEASE_LABEL: "true"}}})
    yield name
    if not namespace_gone(core, name):
        core.delete_namespace(name)


@pytest.mark.slow
def test_after_helm_uninstall_a_namespace_with_an_open_remediation_and_an_slo_is_deleted_within_a_minute(
        kube_api, kubeconfig, tool, namespace, apps_namespace, crds, tmp_path):
    ops_namespace = namespace  # the chart's home; the incident lives in apps_namespace
    release = f"rm{uuid.uuid4().hex[:6]}"
    install(tool, tmp_path, release, ops_namespace, {"watchNamespaces": [apps_namespace]})
    fullname = f"{release}-remediator"
    try:
        # the chart's pods run no containers here (KWOK): its operator runs on the host, as its ServiceAccount
        args = operator_args(kube_api, ops_namespace, fullname)
        [peering] = [a.split("=", 1)[1] for a in args if a.startswith("--peering=")]
        sa_config = service_account_kubeconfig(kube_api, kubeconfig, ops_namespace, fullname, tmp_path / "sa.yaml")
        op = OperatorProcess(sa_config, [apps_namespace], tmp_path, extra_args=["--peering", peering],
                             env=operator_env(kube_api, ops_namespace, fullname)).start()
        cluster = Cluster(kube_api, apps_namespace)
        try:
            name = bad_rollout_incident(cluster, op, APPROVERS)
            assert cluster.wait_phase(name, {"AwaitingApproval", "Succeeded", "Failed"})["status"]["phase"] \
                == "AwaitingApproval"
            open_slo(cluster)
        finally:
            op.stop()
        run(tool, "helm", "uninstall", release, "--namespace", ops_namespace, "--wait")
    finally:
        run(tool, "helm", "uninstall", release, "--namespace", ops_namespace, check=False)

    core = client.CoreV1Api(kube_api)
    core.delete_namespace(apps_namespace)
    wait_for(lambda: namespace_gone(core, apps_namespace), timeout=60,
             what="the namespace deleted though no operator runs any more")


def test_kopfs_finalizer_left_by_an_earlier_version_is_removed_when_the_operator_sees_the_object(
        kube_api, kubeconfig, namespace, crds, cluster, tmp_path):
    op = OperatorProcess(kubeconfig, [namespace], tmp_path).start()
    try:
        name = bad_rollout_incident(cluster, op, APPROVERS)
        assert cluster.wait_phase(name, {"AwaitingApproval", "Succeeded", "Failed"})["status"]["phase"] \
            == "AwaitingApproval"
        slo_name = open_slo(cluster)
    finally:
        op.stop()
    # as the daemons of earlier versions left them
    finalized = {"metadata": {"finalizers": [KOPF_FINALIZER]}}
    cluster.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "remediations", name, finalized)
    cluster.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "servicelevelobjectives", slo_name,
                                                  finalized)
    op.start()
    try:
        wait_for(lambda: not cluster.remediation(name)["metadata"].get("finalizers")
                 and not slo(cluster, slo_name)["metadata"].get("finalizers"), timeout=30,
                 what="kopf's finalizer removed from both")
        assert cluster.remediation(name)["status"]["phase"] == "AwaitingApproval", "and the incident still waits"
    finally:
        op.stop()
