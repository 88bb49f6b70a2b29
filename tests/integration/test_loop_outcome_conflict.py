"""An action's outcome survives a concurrent write to its Remediation (409), on the real apiserver."""

from __future__ import annotations

import contextvars
from datetime import UTC, datetime

import pytest

from remediator.api.models import Signal
from remediator.controller import reconcile
from remediator.controller.context import OperatorContext, Settings
from tests.integration.conftest import GROUP, VERSION
from tests.integration.test_operator_loop import NO_APPROVALS, rollback_runbook
from tests.support.waiting import wait_for
from remediator.core.durations import format_time

pytestmark = pytest.mark.integration


def test_a_rollback_recorded_after_a_concurrent_write_keeps_what_it_changed(cluster, kube_api, monkeypatch):
    cluster.apply_policy(NO_APPROVALS)
    cluster.apply_runbook("bad-rollout", rollback_runbook())
    cluster.deploy("web", replicas=2)
    good = cluster.apps.read_namespaced_deployment("web", cluster.ns).spec.template.spec.containers[0].image
    cluster.bad_rollout("web", image="registry.local/web:bad")
    wait_for(lambda: len(cluster.revisions()) == 2, what="bad revision")

    ctx = OperatorContext(api=kube_api, settings=Settings(namespaces=(cluster.ns,)))
    signal = Signal(source="alertmanager", name="HighErrorRate", fingerprint="conflict-1",
                    starts_at=format_time(datetime.now(UTC)),
                    labels={"alertname": "HighErrorRate", "namespace": cluster.ns, "deployment": "web"})
    created = ctx.intake.firing(signal)
    assert created.outcome == "created", created.reasons

    def another_writer(boundary: str) -> None:  # kopf's bookkeeping, a vote: anything bumps resourceVersion
        if boundary == "after-action":
            cluster.custom.patch_namespaced_custom_object(GROUP, VERSION, cluster.ns, "remediations", created.name,
                                                          {"metadata": {"annotations": {"touched": "yes"}}})
    monkeypatch.setattr(reconcile.failpoints, "hit", another_writer)

    loop = reconcile.Loop(ctx, cluster.ns, created.name)
    for _ in range(10):
        contextvars.copy_context().run(loop.tick)
        step = ((cluster.remediation(created.name).get("status") or {}).get("steps") or [{}])[0]
        if step.get("phase") not in (None, "Intended"):
            break
    assert step.get("phase") == "Applied", step
    assert step["result"] == "applied", "recorded as done by this call, not as a replay that forgot its changes"
    changes = {e["detail"]: e["value"] for e in step["evidence"] if e["kind"] == "change"}
    assert changes.get("spec.template.spec.containers[app].image") == f"'registry.local/web:bad' -> '{good}'", \
        step["evidence"]
    assert cluster.remediation(created.name)["metadata"]["annotations"]["touched"] == "yes"
