"""The loop's own status writes, against an in-memory apiserver that answers a stale write with 409."""

from __future__ import annotations

import contextvars
import copy
from types import SimpleNamespace

import pytest
from kubernetes.client.rest import ApiException
from prometheus_client import REGISTRY

from remediator.actions.base import ActionResult, evidence
from remediator.api.models import RemediationSpec, RemediationStatus
from remediator.controller import reconcile
from remediator.controller.caches import Caches
from remediator.controller.ingest import RunbookCache
from remediator.core import claims, engine, state
from tests.unit.test_core_engine import LADDER, SPEC, drive_to_acting

IMAGE = "spec.template.spec.containers[web].image"


class FakeResources:
    """Custom objects in memory; a status write must carry the current resourceVersion, as on the apiserver."""

    def __init__(self, *objects: dict):
        self.objects = {(o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objects}
        self.reads: list[tuple[str, str | None, str]] = []

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict | None:
        self.reads.append((kind, namespace, name))
        return copy.deepcopy(self.objects.get((kind, namespace, name)))

    def list(self, kind: str, namespace: str | None = None, label_selector: str = "") -> list[dict]:
        return [copy.deepcopy(o) for (k, ns, _), o in self.objects.items()
                if k == kind and namespace in (None, ns)]

    def replace_status(self, kind: str, namespace: str, name: str, body: dict) -> dict:
        current = self.objects[(kind, namespace, name)]
        if body["metadata"]["resourceVersion"] != current["metadata"]["resourceVersion"]:
            raise ApiException(status=409, reason="Conflict")
        self.write(kind, namespace, name, status=copy.deepcopy(body["status"]))
        return copy.deepcopy(self.objects[(kind, namespace, name)])

    def write(self, kind: str, namespace: str, name: str, **fields) -> None:
        """Any write (ours or another writer's) bumps the resourceVersion."""
        current = self.objects[(kind, namespace, name)]
        version = str(int(current["metadata"]["resourceVersion"]) + 1)
        metadata = {**current["metadata"], **fields.pop("metadata", {}), "resourceVersion": version}
        self.objects[(kind, namespace, name)] = {**current, **fields, "metadata": metadata}

    def status_of(self, namespace: str, name: str) -> RemediationStatus:
        return RemediationStatus.model_validate(self.objects[("Remediation", namespace, name)]["status"])


def remediation(namespace: str, spec: RemediationSpec, status: RemediationStatus) -> dict:
    return {"apiVersion": "remediator.dev/v1alpha1", "kind": "Remediation",
            "metadata": {"name": "am-1", "namespace": namespace, "resourceVersion": "7", "uid": "u-1"},
            "spec": spec.wire(), "status": status.wire()}


def runbook_object(namespace: str) -> dict:
    return {"kind": "Runbook", "metadata": {"name": SPEC.runbook.name, "namespace": namespace,
                                            "resourceVersion": "1"}, "spec": LADDER.wire()}


@pytest.fixture
def tick_on(monkeypatch):
    posted: list = []
    monkeypatch.setattr(reconcile.events, "record_transition", lambda *args: posted.append(args))
    monkeypatch.setattr(reconcile, "labels_of_namespace", lambda ctx, namespace: {})
    # The target's claim is always free here (its Lease is tested on the apiserver).
    monkeypatch.setattr(reconcile.target_claims, "take", lambda api, target, namespace, uid, name, timeout, now:
                        claims.decide(None, uid, name, False, lease_name="l", namespace=namespace, target="t",
                                      now=now, duration=timeout))
    monkeypatch.setattr(reconcile.target_claims, "release", lambda *args: None)

    def make(resources: FakeResources, namespace: str):
        """One tick of the Loop, in a context of its own (a tick names its Remediation in the logs' context)."""
        runbooks = RunbookCache()  # what the watch would have fed
        for (kind, ns, name), obj in resources.objects.items():
            if kind == "Runbook":
                runbooks.observe("ADDED", obj)
        ctx = SimpleNamespace(resources=resources, api=None, slack=None, prometheus=None, changes=None,
                              action_api=lambda namespace, account: None, runbooks=runbooks, caches=Caches())
        ctx.caches.primed.set()
        return lambda: contextvars.copy_context().run(reconcile.Loop(ctx, namespace, "am-1").tick)
    return make


def rollback_done(on_call=lambda: None):
    def execute(api, request):
        on_call()
        return ActionResult(done=True, replayed=False, message="rolled back to revision 1",
                            evidence=[evidence("rollback", "to the template of ReplicaSet web-1", "1")],
                            changes={IMAGE: {"before": "web:2", "after": "web:1"}})
    return execute


def test_an_action_outcome_meeting_a_409_is_reapplied_on_the_fresh_object(tick_on, monkeypatch):
    acting = drive_to_acting()
    assert engine.find_record(acting, 0).phase == "Intended"
    resources = FakeResources(remediation("shop", SPEC, acting), runbook_object("shop"))
    # while the action runs, another writer (kopf's bookkeeping, a vote) updates the Remediation
    monkeypatch.setattr(reconcile.actions, "execute", rollback_done(
        lambda: resources.write("Remediation", "shop", "am-1", metadata={"annotations": {"seen": "yes"}})))

    tick_on(resources, "shop")()

    stored = resources.status_of("shop", "am-1")
    record = engine.find_record(stored, 0)
    assert stored.phase == "Verifying", stored.reason
    assert record.phase == "Applied" and record.result == "applied"
    assert [(e.kind, e.detail, e.value) for e in record.evidence if e.kind in ("rollback", "change")] == [
        ("rollback", "to the template of ReplicaSet web-1", "1"), ("change", IMAGE, "'web:2' -> 'web:1'")]
    assert resources.objects[("Remediation", "shop", "am-1")]["metadata"]["annotations"] == {"seen": "yes"}


def test_an_outcome_is_not_forced_onto_a_remediation_that_moved_on(tick_on, monkeypatch):
    acting = drive_to_acting()
    resources = FakeResources(remediation("shop", SPEC, acting), runbook_object("shop"))
    cancelled = state.transition(acting, "Cancelled", "the alert resolved", reconcile.utcnow())
    monkeypatch.setattr(reconcile.actions, "execute", rollback_done(
        lambda: resources.write("Remediation", "shop", "am-1", status=cancelled.wire())))

    assert tick_on(resources, "shop")() is True
    assert resources.status_of("shop", "am-1").phase == "Cancelled"


@pytest.mark.parametrize("field, value", [("runbook", {"name": "ladder", "namespace": "team-a"}),
                                          ("target", {"kind": "Deployment", "namespace": "team-a", "name": "web"})])
def test_a_remediation_pointing_outside_its_namespace_is_refused_with_a_reason(tick_on, monkeypatch, field, value):
    forged = RemediationSpec.model_validate({**SPEC.wire(), "runbook": {"name": "ladder", "namespace": "team-b"},
                                             "target": {"kind": "Deployment", "namespace": "team-b", "name": "web"},
                                             field: value})
    resources = FakeResources(remediation("team-b", forged, RemediationStatus()), runbook_object("team-a"),
                              runbook_object("team-b"))
    monkeypatch.setattr(reconcile.actions, "execute", lambda api, request: pytest.fail("no action may run"))
    labels = {"reason": "cross-namespace-remediation"}
    before = REGISTRY.get_sample_value("remediator_refusals_total", labels) or 0.0

    assert tick_on(resources, "team-b")() is True

    stored = resources.status_of("team-b", "am-1")
    assert stored.phase == "Failed"
    assert f"spec.{field}.namespace is 'team-a'" in stored.reason and "lives in namespace 'team-b'" in stored.reason
    assert REGISTRY.get_sample_value("remediator_refusals_total", labels) == before + 1
    assert not [r for r in resources.reads if r[1] == "team-a"], "nothing is read from the other namespace"
