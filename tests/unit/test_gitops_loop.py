"""A target a GitOps reconciler owns, through the real reconcile.Loop and the real controller.gitops pause code,
with the owner kept in memory (its GET and merge PATCH are the only cluster calls replaced)."""

from __future__ import annotations

import contextvars
import copy
from types import SimpleNamespace
from datetime import timedelta

import pytest

from remediator import failpoints
from remediator.api.models import GitopsPolicy, RemediationPolicySpec
from remediator.controller import gitops as gitops_ctl
from remediator.controller import reconcile
from remediator.controller.guard_facts import StepFacts
from remediator.core.engine import engine
from remediator.core.plan import gitops
from tests.unit.fake_store import ALLOW, FakeStore, loop_on
from tests.unit.test_core_engine import LADDER, SPEC

OWNER = gitops.Owner("flux", "Kustomization", "flux-system", "apps")


def merge(target: dict, patch: dict) -> dict:
    """RFC 7386 JSON merge patch, as the apiserver applies it."""
    out = copy.deepcopy(target)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict):
            out[key] = merge(out.get(key) or {}, value)
        else:
            out[key] = value
    return out


class OwnedStore(FakeStore):
    """The FakeStore, with a Flux Kustomization (and its GitRepository) owning the target."""

    def __init__(self, mode: str, **kw):
        super().__init__(SPEC, LADDER, policy=RemediationPolicySpec(gitops=GitopsPolicy(flux=mode, lease="30m")), **kw)
        self.owner = {"metadata": {"name": "apps", "namespace": "flux-system", "resourceVersion": "1",
                                   "annotations": {}},
                      "spec": {"suspend": False, "sourceRef": {"kind": "GitRepository", "name": "repo"}},
                      "status": {"lastAppliedRevision": "main@sha1:bad", "inventory": {"entries": [
                          {"id": "shop_web_apps_Deployment", "v": "v1"}]}}}
        self.source = {"status": {"artifact": {"revision": "main@sha1:bad"}}}
        self.owner_patches: list[dict] = []
        self.mode = mode

    def step_facts(self, name, spec, status, runbook, policy, now) -> StepFacts:
        self.reads["step_facts"] += 1
        state = gitops.read_owner(OWNER, self.owner, self.source, ("Deployment", "shop", "web"))
        mode, why = gitops.mode_for(OWNER, policy.gitops, None)
        return StepFacts(ALLOW.guards, gitops=gitops.Facts(state, mode, why, timedelta(minutes=30)))

    def pause(self, order, now):
        return gitops_ctl.pause(SimpleNamespace(api=None), order, now)


@pytest.fixture
def owned(monkeypatch):
    def make(mode: str) -> OwnedStore:
        store = OwnedStore(mode)

        def get(api, table, kind, namespace, name):
            return copy.deepcopy(store.owner if kind == "Kustomization" else store.source)

        def patch(api, owner, body):
            assert body["metadata"].pop("resourceVersion") == store.owner["metadata"]["resourceVersion"]
            store.owner_patches.append(body)
            store.owner = merge(store.owner, body)
            store.owner["metadata"]["resourceVersion"] = str(int(store.owner["metadata"]["resourceVersion"]) + 1)
            return store.owner

        monkeypatch.setattr(gitops_ctl, "get", get)
        monkeypatch.setattr(gitops_ctl, "patch", patch)
        return store
    return make


def tick(loop: reconcile.Loop) -> float | None:
    return contextvars.copy_context().run(loop.tick)


def test_refuse_escalates_naming_the_owner_and_writes_nothing_to_the_target(owned, monkeypatch):
    store = owned("refuse")
    assert tick(loop_on(store, monkeypatch)) is None
    assert store.status.phase == "Escalated"
    assert "Flux Kustomization flux-system/apps" in store.status.reason and "refuse" in store.status.reason
    assert store.calls == [] and store.owner_patches == []
    assert store.status.gitops.kind == "Kustomization" and store.status.gitops.mode == "refuse"


def test_ignore_acts_without_pausing_and_says_who_owns_the_target(owned, monkeypatch):
    store = owned("ignore")
    tick(loop_on(store, monkeypatch))
    assert len(store.calls) == 1 and store.owner_patches == []
    assert any(e.kind == "GitOpsOwner" and "acting anyway" in e.message for e in store.status.timeline)


def test_suspend_pauses_the_owner_before_acting_and_records_the_lease_and_what_git_still_declares(
        owned, monkeypatch):
    store = owned("suspend")
    tick(loop_on(store, monkeypatch))
    assert len(store.owner_patches) == 1 and len(store.calls) == 1
    assert store.owner["spec"]["suspend"] is True
    notes = store.owner["metadata"]["annotations"]
    assert notes[gitops.PAUSED_BY] == "shop/am-1" and notes[gitops.PAUSED_REVISION] == "main@sha1:bad"
    held = store.status.gitops
    assert held.suspended_at == "2026-11-25T12:00:00Z" and held.until == "2026-11-25T12:30:00Z"
    assert held.desired_state.startswith("Git at revision main@sha1:bad (GitRepository flux-system/repo) still "
                                         "declares replicas 1")
    assert held.revert == "in Git: Deployment/web spec.replicas: 1 → 2"
    assert any("pauses Flux Kustomization flux-system/apps" in r for r in store.status.risk.reasons)


def test_a_crash_between_the_pause_and_the_action_resumes_without_pausing_twice(owned, monkeypatch):
    store = owned("suspend")

    def hit(name: str) -> None:
        if name in failpoints.GITOPS_BOUNDARIES:
            raise SystemExit("killed")
    monkeypatch.setattr(reconcile.failpoints, "hit", hit)
    with pytest.raises(SystemExit):
        tick(loop_on(store, monkeypatch))
    assert store.owner["spec"]["suspend"] is True and store.calls == []
    assert engine.find_record(store.status, 0).phase == "Intended"

    monkeypatch.setattr(reconcile.failpoints, "hit", lambda name: None)
    store.clock += timedelta(seconds=20)
    tick(loop_on(store, monkeypatch))  # a new process
    assert len(store.owner_patches) == 1, "paused once"
    assert len(store.calls) == 1 and engine.find_record(store.status, 0).phase == "Applied"
    assert store.status.gitops.suspended_at == "2026-11-25T12:00:00Z", "the pause's own time, not the replay's"


def test_an_owner_someone_else_suspended_is_not_taken_over(owned, monkeypatch):
    store = owned("suspend")
    store.owner["spec"]["suspend"] = True
    tick(loop_on(store, monkeypatch))
    assert store.status.phase == "Escalated" and "paused by someone else" in store.status.reason
    assert store.calls == [] and store.owner_patches == []


def test_a_target_whose_labels_name_an_owner_that_does_not_list_it_is_not_paused(owned, monkeypatch):
    store = owned("suspend")
    store.owner["status"]["inventory"]["entries"] = [{"id": "team-b_api_apps_Deployment", "v": "v1"}]
    tick(loop_on(store, monkeypatch))
    assert store.status.phase == "Escalated" and "inventory does not list it" in store.status.reason
    assert store.calls == [] and store.owner_patches == []


def test_the_sweep_resumes_the_pause_of_a_deleted_remediation_from_the_watch_and_forgets_it(owned, monkeypatch):
    store = owned("suspend")
    tick(loop_on(store, monkeypatch))
    assert store.owner["spec"]["suspend"] is True
    pauses = gitops_ctl.Pauses()
    ctx = SimpleNamespace(api=None, serves=lambda ns: True)
    pauses.heard("", store.object)  # listed: a held pause
    assert gitops_ctl.sweep(ctx, pauses, store.clock) == [], "verifying: the pause protects the step"
    pauses.heard("DELETED", store.object)
    assert gitops_ctl.sweep(ctx, pauses, store.clock) == ["its Remediation was deleted"]
    assert "suspend" not in store.owner["spec"] and gitops.PAUSED_BY not in store.owner["metadata"]["annotations"]
    assert pauses.items() == []


def test_a_regression_in_the_watch_after_the_resume_marks_the_owner_and_is_escalated_naming_the_revision(
        monkeypatch):
    from datetime import datetime, timezone

    owner = {"metadata": {"name": "apps", "namespace": "flux-system", "annotations": {}},
             "spec": {"interval": "10s", "sourceRef": {"kind": "GitRepository", "name": "repo"}},
             "status": {"lastAppliedRevision": "main@sha1:good",
                        "conditions": [{"type": "Ready", "status": "True", "message": "Applied"}]}}
    source = {"status": {"artifact": {"revision": "main@sha1:good"}}}
    monkeypatch.setattr(gitops_ctl, "get", lambda api, table, kind, ns, name: copy.deepcopy(
        owner if kind == "Kustomization" else source))
    patches, writes = [], []
    monkeypatch.setattr(gitops_ctl, "patch", lambda api, o, body: patches.append(body))
    monkeypatch.setattr(gitops_ctl, "target_body", lambda ctx, kind, ns, name: {
        "metadata": {"generation": 2}, "spec": {"replicas": 2},
        "status": {"observedGeneration": 2, "updatedReplicas": 2, "availableReplicas": 0}})
    monkeypatch.setattr(gitops_ctl, "write_gitops", lambda ctx, meta, still, update, note, message, now:
                        writes.append((update, note, message)))
    body = {"metadata": {"namespace": "shop", "name": "am-1"},
            "spec": {"signal": {"source": "alertmanager", "name": "HighErrorRate", "fingerprint": "f"},
                     "runbook": {"name": "rb"}, "target": {"kind": "Deployment", "name": "web"}},
            "status": {"phase": "Succeeded", "gitops": {
                "tool": "flux", "kind": "Kustomization", "namespace": "flux-system", "name": "apps",
                "mode": "suspend", "suspendedAt": "2026-11-25T12:00:00Z", "resumedAt": "2026-11-25T12:05:00Z",
                "watchedRevision": "main@sha1:good", "watchUntil": "2026-11-25T12:05:30Z",
                "readyAt": "2026-11-25T12:05:10Z"}}}
    pauses = gitops_ctl.Pauses()
    pauses.heard("MODIFIED", body)
    assert pauses.items() == [body], "a resumed owner is still followed while its new revision is watched"
    now = datetime(2026, 11, 25, 12, 5, 20, tzinfo=timezone.utc)
    [why] = gitops_ctl.sweep(SimpleNamespace(api=None, serves=lambda ns: True), pauses, now)
    assert "revision main@sha1:good regressed after becoming Ready" in why and "available 0/2" in why
    assert patches == [{"metadata": {"annotations": {gitops.REGRESSED: "main@sha1:good"}}}]
    [(update, note, message)] = writes
    assert update["watch_outcome"] == "Regressed" and note == "GitOpsRegressed"
    assert message.startswith("escalated:") and "not remediated again at revision main@sha1:good" in message
    body["status"]["gitops"] |= {"watchOutcome": "Regressed"}
    pauses.heard("MODIFIED", body)
    assert pauses.items() == [], "the watch is over"
