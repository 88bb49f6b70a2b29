"""An operator killed in the middle of a verification window resumes that window from the step record."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from tests.integration.test_operator_loop import NO_APPROVALS, only_remediation, rollback_runbook
from tests.support.operator import OperatorProcess, alert, alert_payload
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WINDOW = 60  # seconds of podsReady
KILL_AFTER = 45  # seconds into the window


def instant(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def all_pods_ready(cluster, replicas: int) -> bool:
    pods = [p for p in cluster.core.list_namespaced_pod(cluster.ns, label_selector="app=web").items
            if p.metadata.deletion_timestamp is None]
    return len(pods) == replicas and all(
        any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or []) for p in pods)


def test_an_operator_killed_45s_into_a_60s_pods_ready_window_verifies_60s_after_the_window_began(
        cluster, kubeconfig, tmp_path):
    cluster.apply_policy(NO_APPROVALS)
    cluster.apply_runbook("bad-rollout", rollback_runbook(verify={"podsReady": {"window": f"{WINDOW}s"}},
                                                          timeout="5m"))
    cluster.deploy("web", replicas=2)
    cluster.bad_rollout("web")
    wait_for(lambda: len(cluster.revisions()) == 2, what="bad revision")
    wait_for(lambda: not all_pods_ready(cluster, 2), what="the bad revision's pods not Ready")

    op = OperatorProcess(kubeconfig, [cluster.ns], tmp_path).start()
    try:
        assert op.post_alerts(alert_payload([alert(cluster.ns, "web")])).status_code == 200
        name = only_remediation(cluster)["metadata"]["name"]
        wait_for(lambda: all_pods_ready(cluster, 2), timeout=90, interval=0.1, what="rolled-back pods Ready")
        ready_seen = time.time()  # the window begins within a tick (0.5 s) of this
        time.sleep(max(0.0, ready_seen + KILL_AFTER - time.time()))
        op.proc.kill()
        op.proc.wait()
        killed = time.time()
        op.start()
        restarted = time.time()
        status = cluster.wait_phase(name, {"Succeeded", "Failed", "Escalated", "Inconclusive"}, timeout=180)["status"]
    finally:
        op.stop()

    step = status["steps"][0]
    verified = instant(step["finishedAt"])
    print(f"window seen ready at {ready_seen:.1f}, killed at +{killed - ready_seen:.1f}s, restarted (healthz) at "
          f"+{restarted - ready_seen:.1f}s, verified at +{verified - ready_seen:.1f}s; readings {step.get('readings')}")
    assert status["phase"] == "Succeeded", status
    # Resumed: verified when the window ends, or at once if the new process came back later than that;
    # started over, it would take a whole window after the restart (about 115 s here).
    due = max(WINDOW, restarted - ready_seen)
    assert verified - ready_seen < due + 10, \
        f"verified {verified - ready_seen:.1f}s after the pods were Ready: the window started over after the restart"
    began = [r for r in step["readings"] if r["check"] == "pods" and r["holds"]][-1]
    assert abs(instant(began["at"]) - ready_seen) < 5, "the recorded window start is when the pods became Ready"
    assert instant(began["at"]) < killed - KILL_AFTER + 5, "the window began before the kill, under the first process"
    assert WINDOW <= verified - instant(began["at"]) < due + 10
