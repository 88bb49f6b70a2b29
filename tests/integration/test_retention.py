"""Ended Remediations are deleted after their policy's retention, once folded into their Runbook's status; the
adaptive ladder, which reads that status, still knows what failed before."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from remediator.api.models import GROUP, KOPF_FINALIZER, VERSION
from tests.integration.conftest import CHART_RELEASE_LABEL
from remediator.controller import caches, retention
from remediator.controller.context import OperatorContext, Settings
from remediator.core.report.retention import Verdict
from remediator.kube import load_api_client
from remediator.records import metrics
from tests.integration.test_adaptive_ladder import ADAPTIVE, past_incident, rollback_goes_first
from tests.integration.test_chart import install, run, service_account_kubeconfig
from tests.integration.test_operator_loop import NO_APPROVALS, rollback_runbook
from tests.integration.test_runbook_status import runbook_status
from tests.support.operator import OperatorProcess
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def ended(cluster, name: str, phase: str = "Succeeded", days_ago: float = 2, folded: bool = True,
          finalizers: tuple[str, ...] = ()) -> dict:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Remediation",
            "metadata": {"name": name, "finalizers": list(finalizers)},
            "spec": {"signal": {"source": "alertmanager", "name": "HighErrorRate"},
                     "runbook": {"name": "web", "namespace": cluster.ns},
                     "target": {"kind": "Deployment", "namespace": cluster.ns, "name": "web"}}}
    created = cluster.custom.create_namespaced_custom_object(GROUP, VERSION, cluster.ns, "remediations", body)
    at = (datetime.now(UTC) - timedelta(days=days_ago)).isoformat().replace("+00:00", "Z")
    created["status"] = {"phase": phase, "foldedIntoRunbook": folded,
                         **({"startedAt": at, "finishedAt": at} if phase != "Acting" else {"startedAt": at})}
    return cluster.custom.replace_namespaced_custom_object_status(GROUP, VERSION, cluster.ns, "remediations", name,
                                                                  created)


def names(cluster) -> set[str]:
    return {r["metadata"]["name"] for r in cluster.remediations()}


def test_a_sweep_deletes_ended_folded_remediations_past_retention_and_keeps_unfolded_recent_and_open_ones(
        cluster, kube_api, monkeypatch):
    monkeypatch.setattr(caches, "PAGE", 2)  # the index is primed from several pages, each continued from the last
    cluster.apply_policy({"retention": {"terminalRemediations": "1d"}})
    for i in range(4):
        ended(cluster, f"old-{i}", phase=("Succeeded", "Escalated", "Denied", "Failed")[i])
    ended(cluster, "unfolded", folded=False)
    ended(cluster, "recent", days_ago=0.5)
    ended(cluster, "open", phase="Acting")
    ctx = OperatorContext(api=kube_api, settings=Settings(namespaces=(cluster.ns,)))
    counted = metrics.RETENTION_DELETES.labels("deleted")._value.get()
    assert retention.sweep(ctx, [cluster.ns]) == {"deleted": 4}
    assert names(cluster) == {"unfolded", "recent", "open"}
    assert metrics.RETENTION_DELETES.labels("deleted")._value.get() == counted + 4


def test_the_apiserver_refuses_a_retention_under_an_hour_naming_the_field(cluster):
    with pytest.raises(ApiException) as refused:
        cluster.apply_policy({"retention": {"terminalRemediations": "30m"}})
    assert refused.value.status == 422
    assert "spec.retention.terminalRemediations: Invalid value" in refused.value.body
    assert "terminalRemediations must be at least 1h (got 30m)" in refused.value.body


def test_a_remediation_that_changed_since_the_index_saw_it_is_not_deleted(cluster, kube_api):
    listed = ended(cluster, "changed")["metadata"]
    cluster.custom.patch_namespaced_custom_object(GROUP, VERSION, cluster.ns, "remediations", "changed",
                                                  {"metadata": {"labels": {"touched": "yes"}}})
    ctx = OperatorContext(api=kube_api, settings=Settings(namespaces=(cluster.ns,)))
    stale = Verdict(cluster.ns, "changed", listed["resourceVersion"], True, "test")
    assert retention.delete(ctx, stale) == "changed"
    assert names(cluster) == {"changed"}
    seen = ended(cluster, "recreated")["metadata"]
    cluster.custom.delete_namespaced_custom_object(GROUP, VERSION, cluster.ns, "remediations", "recreated")
    assert retention.delete(ctx, Verdict(cluster.ns, "recreated", seen["resourceVersion"], True, "test")) == "gone"
    ended(cluster, "recreated", days_ago=0.5)  # the same name again: a new object, a new version
    assert retention.delete(ctx, Verdict(cluster.ns, "recreated", seen["resourceVersion"], True, "test")) == "changed"
    assert names(cluster) == {"changed", "recreated"}


def test_the_operator_deletes_old_incidents_once_folded_and_the_ladder_still_skips_the_step_that_failed(
        cluster, kubeconfig, tmp_path):
    cluster.apply_policy({**NO_APPROVALS, "retention": {"terminalRemediations": "1h"}})
    cluster.apply_runbook("adaptive", ADAPTIVE)
    for i in range(3):
        past_incident(cluster, f"past-{i}", restart="Failed", rollback="Succeeded")
    ended(cluster, "recent", days_ago=0.01, folded=False)  # 15 minutes ago: kept, though folded meanwhile
    ended(cluster, "finalized", days_ago=2, finalizers=(KOPF_FINALIZER,))  # as the operator creates them
    op = OperatorProcess(kubeconfig, [cluster.ns], tmp_path, extra_args=["--retention-sweep", "1"]).start()
    try:
        wait_for(lambda: names(cluster) == {"recent"}, what="the past incidents folded, then deleted")
        assert cluster.remediation("recent")["status"]["foldedIntoRunbook"]
        assert runbook_status(cluster, "adaptive")["signalStats"] == [{"signal": "alertmanager/HighErrorRate", "steps": [
            {"name": "restart", "succeeded": 0, "failed": 3}, {"name": "rollback", "succeeded": 3, "failed": 0}]}]
        rollback_goes_first(cluster, op)
    finally:
        op.stop()


def test_incidents_an_older_operator_folded_are_counted_before_they_are_deleted_and_the_ladder_keeps_them(
        cluster, kubeconfig, tmp_path):
    cluster.apply_policy({**NO_APPROVALS, "retention": {"terminalRemediations": "1h"}})
    cluster.apply_runbook("adaptive", ADAPTIVE)
    uids = []
    for i in range(3):
        past_incident(cluster, f"past-{i}", restart="Failed", rollback="Succeeded")
        obj = cluster.remediation(f"past-{i}")
        obj["status"]["foldedIntoRunbook"] = True  # folded, as an operator without signalStats did
        cluster.custom.replace_namespaced_custom_object_status(GROUP, VERSION, cluster.ns, "remediations",
                                                               f"past-{i}", obj)
        uids.append(obj["metadata"]["uid"])
    cluster.custom.patch_namespaced_custom_object_status(GROUP, VERSION, cluster.ns, "runbooks", "adaptive", {
        "status": {"folded": uids, "stepStats": [{"name": "restart", "succeeded": 0, "failed": 3},
                                                 {"name": "rollback", "succeeded": 3, "failed": 0}]}})
    op = OperatorProcess(kubeconfig, [cluster.ns], tmp_path, extra_args=["--retention-sweep", "1"]).start()
    try:
        wait_for(lambda: not cluster.remediations(), what="the past incidents counted, then deleted")
        status = runbook_status(cluster, "adaptive")
        assert status["signalStatsComplete"] and status["signalStats"][0]["steps"] == [
            {"name": "restart", "succeeded": 0, "failed": 3}, {"name": "rollback", "succeeded": 3, "failed": 0}]
        rollback_goes_first(cluster, op)
    finally:
        op.stop()


@pytest.fixture
def home(kube_api, namespace):
    """Where the chart is installed, apart from the Remediations' namespace."""
    core = client.CoreV1Api(kube_api)
    name = f"{namespace[:55]}-ops"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


@pytest.mark.parametrize("scope", ["watchNamespaces", "wholeCluster"])
@pytest.mark.serial  # a chart release: ClusterRoles, cluster-wide admission policies
def test_the_charts_service_account_may_sweep_in_both_scopes(kube_api, kubeconfig, tool, cluster, home,
                                                             tmp_path, scope):
    ops_namespace = home
    scoped = scope == "watchNamespaces"
    release = f"rm{uuid.uuid4().hex[:6]}"
    # the chart's operator writes here: the suite's admission policies (made for the admin's operator) step aside
    kube_api_core = client.CoreV1Api(kube_api)
    kube_api_core.patch_namespace(cluster.ns, {"metadata": {"labels": {CHART_RELEASE_LABEL: "true"}}})
    cluster.apply_policy({"retention": {"terminalRemediations": "1d"}})
    cluster.apply_runbook("web", {**rollback_runbook(), "guard": {"cooldown": "3d"}})
    ended(cluster, "old", days_ago=2, phase="Failed")  # past the retention, not past its Runbook's cooldown
    ended(cluster, "older", days_ago=4)
    # RBAC is what is under test: the release's admission policies would outlive its uninstall by a moment and
    # refuse the next test's Remediations, made by the admin
    install(tool, tmp_path, release, ops_namespace, {"watchNamespaces": [cluster.ns] if scoped else [],
                                                     "admissionPolicy": {"enabled": False}})
    try:
        sa_config = service_account_kubeconfig(kube_api, kubeconfig, ops_namespace, f"{release}-remediator",
                                               tmp_path / "sa.yaml")
        ctx = OperatorContext(api=load_api_client(sa_config),
                              settings=Settings(namespaces=(cluster.ns,) if scoped else ()))
        assert retention.sweep(ctx, [cluster.ns] if scoped else None) == {"deleted": 1}
        assert names(cluster) == {"old"}
    finally:
        run(tool, "helm", "uninstall", release, "--namespace", ops_namespace, "--wait")
