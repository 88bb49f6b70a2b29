"""The rollout counts on the real control plane: written by the operator, kept across its restart, read by
`remediator report` once the ReplicaSet history and the Remediation are gone."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.integration.test_operator_loop import only_remediation
from tests.integration.test_probable_cause import burn, with_runbook
from tests.support.operator import OperatorProcess
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def stored(cluster) -> dict:
    """The counts of the test namespace's web, as the operator stored them ({} before the first write)."""
    try:
        cm = client.CoreV1Api(cluster.api).read_namespaced_config_map(f"remediator-rollouts-{cluster.ns}", cluster.ns)
    except ApiException as e:
        if e.status == 404:
            return {}
        raise
    doc = json.loads((cm.data or {}).get("counts.json") or "{}")
    return (doc.get("workloads") or {}).get("Deployment/web") or {}


def counted(cluster, revision: int) -> dict:
    return wait_for(lambda: (lambda w: w if w.get("revision") == revision else None)(stored(cluster)),
                    what=f"revision {revision} counted")


@pytest.mark.slow
def test_rollouts_counted_before_a_restart_are_reported_once_after_their_history_and_incident_are_gone(
        cluster, kubeconfig, tmp_path):
    def start() -> OperatorProcess:
        return OperatorProcess(kubeconfig, [cluster.ns], tmp_path,
                               extra_args=["--counts-namespace", cluster.ns, "--counts-flush", "1"]).start()

    with_runbook(cluster)
    operator = start()
    try:
        cluster.deploy("web", replicas=1)  # revision 1
        cluster.bad_rollout("web", image="registry.local/web:bad")  # revision 2, the probable cause
        wait_for(lambda: len(cluster.revisions()) == 2, what="bad revision")
        status = burn(cluster, operator)  # rolled back: revision 3
        assert status["probableCause"]["changes"][0]["revision"] == "2", status["probableCause"]
        web = counted(cluster, 3)
        assert sum(web["days"].values()) == 3 and list(web["failed"]) == ["2"], web
        # the incident's record is gone (retention), and so is the history (revisionHistoryLimit: 0)
        name = only_remediation(cluster)["metadata"]["name"]
        cluster.custom.delete_namespaced_custom_object("remediator.dev", "v1alpha1", cluster.ns, "remediations", name)
        wait_for(lambda: not cluster.remediations(), what="the Remediation deleted")
    finally:
        operator.stop()
    cluster.apps.patch_namespaced_deployment("web", cluster.ns, {"spec": {"revisionHistoryLimit": 0}})
    wait_for(lambda: list(cluster.revisions().values()) == ["3"], what="the history pruned to revision 3")

    operator = start()  # primes its journal from that history: revision 3 again, counted already
    try:
        cluster.apps.patch_namespaced_deployment("web", cluster.ns, {"spec": {"template": {"metadata": {
            "annotations": {"example.com/release": "4"}}}}})  # revision 4
        web = counted(cluster, 4)
        assert sum(web["days"].values()) == 4, f"the replayed history was counted again: {web}"
    finally:
        operator.stop()

    def report(*flags: str) -> dict:
        proc = subprocess.run([sys.executable, "-m", "remediator", "report", "--kubeconfig", kubeconfig,
                               "-n", cluster.ns, "--since", "1h", "--output", "json", *flags],
                              capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)["figures"]["delivery"]

    delivery = report()
    assert (delivery["rollouts"], delivery["failedRollouts"]) == (4, 1), delivery
    assert delivery["rolloutsThatDegradedService"] == [f"{cluster.ns}/Deployment/web revision 2"]
    assert "rollout counts" in delivery["source"]
    elsewhere = report("--counts-namespace", "kube-public")  # counts are taken from the operator's namespace only
    assert (elsewhere["rollouts"], elsewhere["failedRollouts"]) == (1, 0), elsewhere  # the history: revision 4


def test_a_storm_is_one_write_a_stale_replica_merges_after_its_conflict_and_a_standby_writes_nothing(cluster):
    from datetime import UTC, datetime

    from remediator.records.rollout_counts import RolloutCounter

    now = datetime.now(UTC)
    first, second = RolloutCounter(cluster.api, cluster.ns), RolloutCounter(cluster.api, cluster.ns)
    for revision in range(1, 101):  # a rollout storm inside one period
        first.seen(cluster.ns, "Deployment/web", "u1", revision, now)
    assert first.flush() == 1 and first.pending() == set()
    second.seen(cluster.ns, "Deployment/web", "u1", 101, now)
    second.linked(cluster.ns, "Deployment/web", 101, now)
    assert second.flush() == 1
    first.seen(cluster.ns, "Deployment/web", "u1", 100, now)  # a replay, and a new one, on a stale copy
    first.seen(cluster.ns, "Deployment/web", "u1", 102, now)
    assert first.flush() == 1, "the 409 is re-read and merged, not lost"
    web = stored(cluster)
    assert (web["revision"], sum(web["days"].values()), list(web["failed"])) == (102, 102, ["101"])

    standby = RolloutCounter(cluster.api, cluster.ns)
    standby.seen(cluster.ns, "Deployment/web", "u1", 103, now)
    assert standby.flush(active=lambda: False) == 0 and stored(cluster)["revision"] == 102
    assert standby.flush() == 1 and stored(cluster)["revision"] == 103, "kept until it may write"


def test_counts_the_operator_may_not_write_are_dropped_with_a_warning_not_kept_growing(cluster, caplog):
    from datetime import UTC, datetime

    from remediator.records.rollout_counts import RolloutCounter

    counter = RolloutCounter(cluster.api, f"{cluster.ns}-missing")  # no such namespace: 404 on every write
    counter.seen(cluster.ns, "Deployment/web", "u1", 1, datetime.now(UTC))
    assert counter.flush() == 0 and counter.pending() == set()
    assert f"rollout counts of {cluster.ns} dropped: the apiserver answered 404" in caplog.text
