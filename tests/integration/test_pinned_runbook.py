"""A Runbook edited mid-incident does not change what runs, on the real apiserver: the plan pinned each step."""

from __future__ import annotations

import contextvars
from datetime import UTC, datetime

import pytest

from remediator.api.models import Signal
from remediator.controller import reconcile
from remediator.controller.context import OperatorContext, Settings
from tests.integration.conftest import GROUP, VERSION
from tests.integration.test_operator_loop import NO_APPROVALS
from tests.support.waiting import wait_for
from remediator.core.durations import format_time

pytestmark = pytest.mark.integration

TRIGGERS = [{"alert": {"matchers": [{"name": "alertname", "value": "HighErrorRate"}]}}]
TARGET = {"kind": "Deployment", "name": "{{ labels.deployment }}"}
ROLLBACK = {"name": "rollback", "action": "rollback", "risk": "low", "timeout": "90s",
            "verify": {"rolloutComplete": {}}}
RESTART = {"name": "restart", "action": "restartRollout", "risk": "low", "timeout": "90s",
           "verify": {"rolloutComplete": {}}}
SCALE = {"name": "scale-out", "action": "scale", "risk": "low", "scale": {"maxReplicas": 5, "step": 3}}
ONE_APPROVER = {"approval": {"rules": [{"level": lvl, "approvers": 1}
                                       for lvl in ("low", "medium", "high", "critical")]}}
NEVER = {"causeKinds": ["nodeChange"]}  # the probable cause here is never a node change: the step is skipped


def edit_runbook(cluster, steps: list[dict]) -> None:
    body = cluster.custom.get_namespaced_custom_object(GROUP, VERSION, cluster.ns, "runbooks", "pinned")
    body["spec"]["steps"] = steps
    cluster.custom.replace_namespaced_custom_object(GROUP, VERSION, cluster.ns, "runbooks", "pinned", body)


def open_incident(cluster, kube_api, fingerprint: str) -> tuple[reconcile.Loop, str]:
    ctx = OperatorContext(api=kube_api, settings=Settings(namespaces=(cluster.ns,)))
    signal = Signal(source="alertmanager", name="HighErrorRate", fingerprint=fingerprint,
                    starts_at=format_time(datetime.now(UTC)),
                    labels={"alertname": "HighErrorRate", "namespace": cluster.ns, "deployment": "web"})
    created = ctx.intake.firing(signal)
    assert created.outcome == "created", created.reasons
    return reconcile.Loop(ctx, cluster.ns, created.name), created.name


def edit_after_intent(monkeypatch, cluster, steps: list[dict]) -> None:
    """Edit the Runbook in the gap between the intent's write and the action's call."""
    def hook(boundary: str) -> None:
        if boundary == "after-intent":
            edit_runbook(cluster, steps)
    monkeypatch.setattr(reconcile.failpoints, "hit", hook)


def tick(loop: reconcile.Loop, times: int) -> None:
    for _ in range(times):
        contextvars.copy_context().run(loop.tick)


def test_a_runbook_edited_while_its_step_awaits_approval_runs_the_pinned_action_and_says_so(cluster, kube_api):
    cluster.apply_policy(ONE_APPROVER)
    cluster.apply_runbook("pinned", {"triggers": TRIGGERS, "target": TARGET, "steps": [ROLLBACK, RESTART]})
    cluster.deploy("web", replicas=2)
    good = cluster.apps.read_namespaced_deployment("web", cluster.ns).spec.template.spec.containers[0].image
    cluster.bad_rollout("web", image="registry.local/web:bad")
    wait_for(lambda: len(cluster.revisions()) == 2, what="bad revision")
    loop, name = open_incident(cluster, kube_api, "pinned-edit")
    tick(loop, 1)
    assert cluster.remediation(name)["status"]["phase"] == "AwaitingApproval"

    edit_runbook(cluster, [SCALE, RESTART])  # while the approver looks at the rollback
    obj = cluster.remediation(name)
    assert "rollback" in obj["status"]["approval"]["stepSummary"]
    obj["status"]["approval"]["decision"] = "approved"  # as the operator records a vote
    cluster.custom.replace_namespaced_custom_object_status(GROUP, VERSION, cluster.ns, "remediations", name, obj)
    tick(loop, 3)

    web = cluster.apps.read_namespaced_deployment("web", cluster.ns)
    assert web.spec.template.spec.containers[0].image == good, "the pinned rollback ran"
    assert web.spec.replicas == 2, "the scale the edit put at step 0 did not run"
    status = cluster.remediation(name)["status"]
    assert status["steps"][0]["action"] == "rollback"
    notes = [e["message"] for e in status["timeline"] if e["kind"] == "RunbookChanged"]
    assert len(notes) == 1 and "(generation 1 → 2)" in notes[0], status["timeline"]


def test_a_runbook_shortened_mid_incident_does_not_crash_the_loop_and_the_pinned_step_runs(
        cluster, kube_api, monkeypatch):
    cluster.apply_policy(NO_APPROVALS)
    cluster.apply_runbook("pinned", {"triggers": TRIGGERS, "target": TARGET,
                                     "steps": [{**ROLLBACK, "when": NEVER}, RESTART]})
    cluster.deploy("web", replicas=2)
    loop, name = open_incident(cluster, kube_api, "pinned-shortened")
    edit_after_intent(monkeypatch, cluster, [SCALE])  # step 1, about to run, no longer exists in the Runbook

    tick(loop, 3)  # plan + intent + act, then verification: none of them reads the Runbook by index
    web = cluster.apps.read_namespaced_deployment("web", cluster.ns)
    assert "kubectl.kubernetes.io/restartedAt" in (web.spec.template.metadata.annotations or {}), "pinned restart ran"
    assert web.spec.replicas == 2
    status = cluster.remediation(name)["status"]
    assert [s["index"] for s in status["steps"]] == [1] and status["steps"][0]["action"] == "restartRollout"
    assert status["phase"] in ("Verifying", "Succeeded"), status["reason"]
    assert any(e["kind"] == "RunbookChanged" for e in status["timeline"])
