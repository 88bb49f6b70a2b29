"""An adaptive Runbook reads its past Remediations and tries first what recovered this signal before."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.integration.test_operator_loop import NO_APPROVALS
from tests.support.operator import OperatorProcess, alert, alert_payload
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

GROUP, VERSION = "remediator.dev", "v1alpha1"


def days_ago(days: float) -> str:
    """Past incidents inside the default 30-day retention: a fixed date would age out of it and the retention
    sweep would delete them under the test."""
    return (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def past_incident(cluster, name: str, restart: str, rollback: str | None) -> None:
    """A closed Remediation of the same runbook and signal, as the operator would have recorded it."""
    steps = [{"index": 0, "name": "restart", "action": "restartRollout", "idempotencyKey": f"{name}-0",
              "phase": restart, "appliedAt": days_ago(1)}]
    if rollback:
        steps.append({"index": 1, "name": "rollback", "action": "rollback", "idempotencyKey": f"{name}-1",
                      "phase": rollback, "appliedAt": days_ago(0.99)})
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Remediation", "metadata": {"name": name},
            "spec": {"signal": {"source": "alertmanager", "name": "HighErrorRate"},
                     "runbook": {"name": "adaptive", "namespace": cluster.ns},
                     "target": {"kind": "Deployment", "namespace": cluster.ns, "name": "web"}}}
    created = cluster.custom.create_namespaced_custom_object(GROUP, VERSION, cluster.ns, "remediations", body)
    created["status"] = {"phase": "Succeeded" if "Succeeded" in (restart, rollback) else "Escalated",
                         "startedAt": days_ago(1), "finishedAt": days_ago(0.98), "steps": steps}
    cluster.custom.replace_namespaced_custom_object_status(GROUP, VERSION, cluster.ns, "remediations", name, created)


ADAPTIVE = {
    "adaptive": True,
    "triggers": [{"alert": {"matchers": [{"name": "alertname", "value": "HighErrorRate"}]}}],
    "target": {"kind": "Deployment", "name": "{{ labels.deployment }}"},
    "steps": [{"name": "restart", "action": "restartRollout", "risk": "low", "verify": {"rolloutComplete": {}}},
              {"name": "rollback", "action": "rollback", "risk": "high", "verify": {"rolloutComplete": {}}}]}


@pytest.fixture
def seeded_operator(cluster, kubeconfig, tmp_path):
    """Past incidents recorded first, then the operator: it must never take them for open ones, and it folds
    them into the Runbook's status, where the ladder reads them."""
    cluster.apply_policy(NO_APPROVALS)
    cluster.apply_runbook("adaptive", ADAPTIVE)
    for i in range(3):
        past_incident(cluster, f"past-{i}", restart="Failed", rollback="Succeeded")
    op = OperatorProcess(kubeconfig, [cluster.ns], tmp_path, extra_args=["--retention-sweep", "1"])
    op.start()
    wait_for(lambda: all((r.get("status") or {}).get("foldedIntoRunbook") for r in cluster.remediations()),
             what="the past incidents folded into the Runbook's status")
    wait_for(lambda: (cluster.custom.get_namespaced_custom_object(GROUP, VERSION, cluster.ns, "runbooks", "adaptive")
                      .get("status") or {}).get("signalStatsComplete"), what="the Runbook's signalStats complete")
    yield op
    op.stop()


def rollback_goes_first(cluster, operator) -> None:
    cluster.deploy("web", replicas=2)
    cluster.bad_rollout("web")
    wait_for(lambda: len(cluster.revisions()) == 2, what="bad revision")
    assert operator.post_alerts(alert_payload([alert(cluster.ns, "web", fingerprint="new")])).status_code == 200
    name = wait_for(lambda: [r for r in cluster.remediations() if r["spec"]["signal"].get("fingerprint") == "new"],
                    what="the new Remediation")[0]["metadata"]["name"]
    status = cluster.wait_phase(name, {"Succeeded", "Failed", "Escalated", "Skipped"})["status"]
    assert status["phase"] == "Succeeded", status["reason"]
    assert [s["name"] for s in status["steps"]] == ["rollback"], "restart was never tried"
    note = next(t["message"] for t in status["timeline"] if t["kind"] == "AdaptiveOrder")
    assert note.startswith("adaptive order on alertmanager/HighErrorRate: tried rollback first: "
                           "3/3 successes on this signal vs restart 0/3")
    assert sorted(cluster.revisions().values()) == ["2", "3"], "exactly one rollback"


def test_rollback_goes_first_when_it_is_what_recovered_this_alert_before(cluster, seeded_operator):
    rollback_goes_first(cluster, seeded_operator)


def test_the_ladder_still_skips_the_step_that_failed_before_after_those_remediations_are_deleted(
        cluster, seeded_operator):
    for r in cluster.remediations():
        cluster.custom.delete_namespaced_custom_object(GROUP, VERSION, cluster.ns, "remediations",
                                                       r["metadata"]["name"])
    wait_for(lambda: not cluster.remediations(), what="the past incidents gone")
    rollback_goes_first(cluster, seeded_operator)
