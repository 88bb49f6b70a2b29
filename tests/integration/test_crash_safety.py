"""SIGKILL at every step boundary: the operator resumes, acts exactly once, and reaches the outcome.

For each kind the rollback knows: a Deployment (ReplicaSet history), a StatefulSet and a DaemonSet
(ControllerRevision history), each with a bad revision whose pods crash-loop on KWOK."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from remediator.api.models import PHASES
from remediator.core.durations import format_time
from remediator.failpoints import BOUNDARIES
from tests.integration.test_operator_loop import NO_APPROVALS, only_remediation, rollback_runbook
from tests.support.operator import OperatorProcess, alert, alert_payload
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.parametrize("kind", ("Deployment", "StatefulSet", "DaemonSet"))
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_operator_killed_at_a_boundary_rolls_back_exactly_once(cluster, kubeconfig, tmp_path, boundary, kind):
    cluster.apply_policy(NO_APPROVALS)
    cluster.apply_runbook("bad-rollout", rollback_runbook(kind=kind))
    cluster.deploy_workload(kind, "web", replicas=2)
    cluster.bad_rollout("web", kind=kind)
    wait_for(lambda: len(cluster.revisions(kind=kind)) == 2, what="bad revision")

    op = OperatorProcess(kubeconfig, [cluster.ns], tmp_path, failpoints=boundary).start()
    try:
        # the breach begins now, after the bad revision: the journal must blame that revision
        delivered = op.post_alerts(alert_payload([alert(cluster.ns, "web", starts_at=format_time(
            datetime.now(timezone.utc)))]))
        assert delivered.status_code == 200 and delivered.json()["results"][0]["outcome"] == "created", \
            delivered.text
        assert op.wait_killed() == -9, f"the {boundary} failpoint SIGKILLs the process"
        name = only_remediation(cluster)["metadata"]["name"]
        op.start(failpoints="")
        status = cluster.wait_phase(name, {"Succeeded", "Failed", "Escalated", "Skipped"})["status"]
    finally:
        op.stop()
    assert status["phase"] == "Succeeded", status
    assert sorted(cluster.revisions(kind=kind).values()) == ["2", "3"], "exactly one rollback"
    assert len(status["steps"]) == 1
    [blamed, *_] = status["probableCause"]["changes"]
    assert (blamed["object"], blamed["kind"], blamed["revision"]) == (f"{kind}/web", "rollout", "2"), "the journal"
    target = cluster.reader(kind)("web", cluster.ns)
    assert target.spec.template.spec.containers[0].image == "registry.local/web:1.0"
    keys = target.metadata.annotations.get("remediator.dev/action-keys", "")
    assert keys.count(status["steps"][0]["idempotencyKey"]) == 1
    # the Events the killed operator held back are told by the one that resumed it, none twice
    moves = {(entry["kind"], entry["message"]) for entry in status["timeline"] if entry["kind"] in PHASES}
    wait_for(lambda: {(e.reason, e.message) for e in events_on(cluster, name)} >= moves,
             what="an Event for each phase in the timeline")
    on_target = [e.reason for e in events_on(cluster, "web")]
    assert on_target.count("RemediationActing") == 1 and on_target.count("RemediationVerifying") == 1, on_target


def events_on(cluster, name: str) -> list:
    return [e for e in cluster.core.list_namespaced_event(cluster.ns, field_selector=f"involvedObject.name={name}").items
            if e.reporting_component == "remediator.dev/operator"]
