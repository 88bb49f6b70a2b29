"""A target a GitOps reconciler owns, through the real reconcile.Loop and the real controller.gitops pause code,
with the owner kept in memory (its GET and merge PATCH are the only cluster calls replaced)."""

from __future__ import annotations

import contextvars
import copy
from types import SimpleNamespace
from datetime import timedelta

import pytest

from remediator import failpoints
from remediator.actions.base import ActionError
from remediator.api.models import GitopsPolicy, RemediationPolicySpec
from remediator.controller import gitops as gitops_ctl
from remediator.controller import reconcile
from remediator.controller.guard_facts import StepFacts
from remediator.core.engine import engine
from remediator.core.durations import parse_time
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

    def __init__(self, mode: str, owner: gitops.Owner = OWNER, **kw):
        super().__init__(SPEC, LADDER, policy=RemediationPolicySpec(gitops=GitopsPolicy(flux=mode, lease="30m")), **kw)
        self.owner_ref = owner
        self.owner = {"metadata": {"name": owner.name, "namespace": owner.namespace, "resourceVersion": "1",
                                   "annotations": {}},
                      "spec": {"suspend": False, "interval": "1m", "timeout": "40s",
                               "sourceRef": {"kind": "GitRepository", "name": "repo"}},
                      "status": {"lastAppliedRevision": "main@sha1:bad", "inventory": {"entries": [
                          {"id": "shop_web_apps_Deployment", "v": "v1"}]}}}
        self.source = {"status": {"artifact": {"revision": "main@sha1:bad"}}}
        self.owner_patches: list[dict] = []
        self.mode = mode
        self.step_mode: str | None = None  # the step's own gitops mode (a per-step override the policy allows)
        self.marked = True  # the target carries its owner's labels (else no owner is found from it)

    def step_facts(self, name, spec, status, runbook, policy, now, read=None) -> StepFacts:
        self.reads["step_facts"] += 1
        if not self.marked:
            return StepFacts(ALLOW.guards)
        state = gitops.read_owner(self.owner_ref, self.owner, self.source, ("Deployment", "shop", "web"))
        mode, why = gitops.mode_for(self.owner_ref, policy.gitops, None)
        if self.step_mode:
            mode, why = self.step_mode, "the step's gitops.flux"
        return StepFacts(ALLOW.guards, gitops=gitops.Facts(state, mode, why, timedelta(minutes=30)))

    def pause(self, order, now):
        return gitops_ctl.pause(SimpleNamespace(api=None), order, now)

    def gitops_owner(self, owner):
        self.reads["gitops_owner"] = self.reads.get("gitops_owner", 0) + 1
        return copy.deepcopy(self.owner)

    def flux_handles_the_request(self) -> None:
        """What kustomize-controller does at the end of a reconcile (finalizeStatus), suspended or not."""
        self.owner["status"]["lastHandledReconcileAt"] = self.owner["metadata"]["annotations"][
            gitops.RECONCILE_REQUESTED]


@pytest.fixture
def owned(monkeypatch):
    def make(mode: str, owner: gitops.Owner = OWNER) -> OwnedStore:
        store = OwnedStore(mode, owner)

        def get(api, table, kind, namespace, name):
            return copy.deepcopy(store.owner if kind == owner.kind else store.source)

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
    loop = loop_on(store, monkeypatch)
    tick(loop)
    assert len(store.owner_patches) == 1 and store.calls == [], "paused; the step waits for Flux to settle"
    store.flux_handles_the_request()
    tick(loop)
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
    loop = loop_on(store, monkeypatch)  # a new process
    tick(loop)
    store.flux_handles_the_request()
    tick(loop)
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


def recorded_gitops_writes(monkeypatch) -> list[tuple]:
    """Where controller.gitops's status writes (update, timeline note, message) go instead of the apiserver."""
    writes: list[tuple] = []
    monkeypatch.setattr(gitops_ctl, "write_gitops", lambda ctx, meta, still, update, note, message, now:
                        writes.append((update, note, message)))
    return writes


def serve_a_ready_flux_owner(monkeypatch) -> list[dict]:
    """A Kustomization Ready at main@sha1:good, and its source, as controller.gitops reads them; returns the list
    its patches go to."""
    owner = {"metadata": {"name": "apps", "namespace": "flux-system", "annotations": {}},
             "spec": {"interval": "10s", "sourceRef": {"kind": "GitRepository", "name": "repo"}},
             "status": {"lastAppliedRevision": "main@sha1:good",
                        "conditions": [{"type": "Ready", "status": "True", "message": "Applied"}]}}
    source = {"status": {"artifact": {"revision": "main@sha1:good"}}}
    monkeypatch.setattr(gitops_ctl, "get", lambda api, table, kind, ns, name: copy.deepcopy(
        owner if kind == "Kustomization" else source))
    patches: list[dict] = []
    monkeypatch.setattr(gitops_ctl, "patch", lambda api, o, body: patches.append(body))
    return patches


def test_a_regression_in_the_watch_after_the_resume_marks_the_owner_and_is_escalated_naming_the_revision(
        monkeypatch):
    from datetime import datetime, timezone

    patches = serve_a_ready_flux_owner(monkeypatch)
    monkeypatch.setattr(gitops_ctl, "target_body", lambda ctx, kind, ns, name: {
        "metadata": {"generation": 2}, "spec": {"replicas": 2},
        "status": {"observedGeneration": 2, "updatedReplicas": 2, "availableReplicas": 0}})
    writes = recorded_gitops_writes(monkeypatch)
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


# ---------------------------------------------------------------- settling: a Flux apply in flight at the pause


def run(loop: reconcile.Loop, store: OwnedStore, seconds: float, step: float = 1.0) -> list[float | None]:
    """Tick whenever the Loop asks to, for `seconds` of the store's clock."""
    dues, until = [], store.clock + timedelta(seconds=seconds)
    while store.clock < until:
        due = tick(loop)
        dues.append(due)
        if due is None:
            break
        store.clock += timedelta(seconds=max(due, step))
    return dues


def kinds(store: OwnedStore) -> list[str]:
    return [e.kind for e in store.status.timeline]


def test_the_step_waits_for_flux_to_handle_the_pause_request_requeueing_every_few_seconds_then_acts(
        owned, monkeypatch):
    store = owned("suspend")
    loop = loop_on(store, monkeypatch)
    dues = run(loop, store, 12)
    assert store.calls == [] and engine.find_record(store.status, 0).phase == "Intended"
    assert store.owner["metadata"]["annotations"][gitops.RECONCILE_REQUESTED] == store.status.gitops.suspended_at
    assert dues[0] == gitops.SETTLE_FIRST_LOOK and all(0 < due <= gitops.SETTLE_EVERY for due in dues[1:]), dues
    assert kinds(store).count("GitOpsSettling") == 1, "noted once, not every look"
    writes = len(store.writes)
    run(loop, store, 6)
    assert len(store.writes) == writes, "waiting writes nothing"

    store.flux_handles_the_request()
    tick(loop)
    assert len(store.calls) == 1 and engine.find_record(store.status, 0).phase == "Applied"
    held = store.status.gitops
    assert held.settled_at == gitops.stamp(store.clock) and "handled the reconcile request" in held.settle_reason
    order = kinds(store)
    assert order.index("GitOpsPaused") < order.index("GitOpsSettling") < order.index("GitOpsSettled")
    assert len(store.owner_patches) == 1


def test_the_settled_time_is_persisted_before_the_action_runs(owned, monkeypatch):
    store = owned("suspend")
    loop = loop_on(store, monkeypatch)
    tick(loop)
    store.flux_handles_the_request()
    seen = []
    act = store.act
    store.act = lambda *a: (seen.append(store.status.gitops.settled_at), act(*a))[1]
    tick(loop)
    assert seen == ["2026-11-25T12:00:00Z"], "settledAt stored before the action call"


def test_when_the_bound_passes_without_the_marker_the_step_acts_anyway_and_records_why(owned, monkeypatch):
    store = owned("suspend")  # spec.timeout 40s: the bound
    loop = loop_on(store, monkeypatch)
    run(loop, store, 38)
    assert store.calls == []
    run(loop, store, 5)
    assert len(store.calls) == 1
    held = store.status.gitops
    assert "within 40s" in held.settle_reason and "acting anyway" in held.settle_reason
    assert "GitOpsUnsettled" in kinds(store) and "GitOpsSettled" not in kinds(store)
    assert parse_time(held.settled_at) - parse_time(held.suspended_at) <= timedelta(seconds=43)


def test_a_restart_mid_wait_resumes_the_wait_from_the_stored_pause_and_never_pauses_twice(owned, monkeypatch):
    store = owned("suspend")
    run(loop_on(store, monkeypatch), store, 10)
    paused_at = store.status.gitops.suspended_at
    assert store.calls == [] and len(store.owner_patches) == 1

    restarted = loop_on(store, monkeypatch)  # a new process: only the Remediation's status carries the wait
    run(restarted, store, 6)
    assert store.calls == [] and len(store.owner_patches) == 1, "still waiting, not paused again"
    assert kinds(store).count("GitOpsSettling") == 1
    run(restarted, store, 40)  # the bound counts from the stored suspendedAt, not from the restart
    assert len(store.calls) == 1 and store.status.gitops.suspended_at == paused_at
    assert parse_time(store.status.gitops.settled_at) - parse_time(paused_at) <= timedelta(seconds=43)
    assert len(store.owner_patches) == 1


def test_an_owner_resumed_by_someone_while_waiting_escalates_without_acting(owned, monkeypatch):
    store = owned("suspend")
    loop = loop_on(store, monkeypatch)
    tick(loop)
    store.owner["spec"]["suspend"] = False  # e.g. `flux resume ks apps`
    tick(loop)
    assert store.status.phase == "Escalated" and "no longer paused by this remediation" in store.status.reason
    assert store.calls == [] and engine.find_record(store.status, 0) is None


def test_a_helmrelease_is_paused_and_acted_on_at_once_without_waiting(owned, monkeypatch):
    store = owned("suspend", gitops.Owner("flux", "HelmRelease", "flux-system", "apps"))
    tick(loop_on(store, monkeypatch))
    assert len(store.owner_patches) == 1 and len(store.calls) == 1
    assert store.status.gitops.settled_at is None and "gitops_owner" not in store.reads


def test_a_fix_undone_while_held_resumes_the_owner_unfixed_and_escalates_without_remediating_again(
        owned, monkeypatch):
    store = owned("suspend")
    loop = loop_on(store, monkeypatch)
    tick(loop)
    store.flux_handles_the_request()
    run(loop, store, 600)
    assert store.status.phase == "Succeeded", store.status.reason
    assert store.status.gitops.declared == {"spec.replicas": "1"}, "Git's value of what the fix changed"
    live = {"spec": {"replicas": 2}}
    monkeypatch.setattr(gitops_ctl, "target_body", lambda ctx, kind, ns, name: copy.deepcopy(live))
    writes = recorded_gitops_writes(monkeypatch)
    pauses, ctx = gitops_ctl.Pauses(), SimpleNamespace(api=None, serves=lambda ns: True)
    pauses.heard("MODIFIED", store.object)
    assert gitops_ctl.sweep(ctx, pauses, store.clock) == [], "the fix stands: held"
    assert store.owner["spec"]["suspend"] is True

    live["spec"]["replicas"] = 1  # back at what Git declares (a reconcile we did not see coming, a human)
    [why] = gitops_ctl.sweep(ctx, pauses, store.clock)
    assert "the fix was undone" in why and "replicas 1" in why
    assert "suspend" not in store.owner["spec"], "resumed"
    assert store.owner["metadata"]["annotations"][gitops.RESUMED_UNFIXED] == "main@sha1:bad"
    [(update, note, message)] = writes
    assert note == "GitOpsUndone" and message.startswith("escalated:") and "not remediated again" in message
    assert update["resumed_at"]
    # the incident returning at that revision is escalated, not paused and remediated again
    state = gitops.read_owner(OWNER, store.owner, store.source, ("Deployment", "shop", "web"))
    verdict = gitops.decide(state, "suspend", "the policy", "shop/am-2")
    assert not verdict.allowed and "same incident is back" in verdict.reason


def test_a_target_that_cannot_be_read_while_held_still_lets_the_lease_end_resume_the_owner(owned, monkeypatch):
    from kubernetes.client.rest import ApiException

    store = owned("suspend")
    loop = loop_on(store, monkeypatch)
    tick(loop)
    store.flux_handles_the_request()
    run(loop, store, 600)
    assert store.status.phase == "Succeeded" and store.status.gitops.declared

    def forbidden(ctx, kind, ns, name):
        raise ApiException(status=403, reason="Forbidden")  # RBAC on the target withdrawn, an admission policy
    monkeypatch.setattr(gitops_ctl, "target_body", forbidden)
    writes = recorded_gitops_writes(monkeypatch)
    pauses, ctx = gitops_ctl.Pauses(), SimpleNamespace(api=None, serves=lambda ns: True)
    pauses.heard("MODIFIED", store.object)
    assert gitops_ctl.sweep(ctx, pauses, store.clock) == [], "within the lease: held"
    [why] = gitops_ctl.sweep(ctx, pauses, store.clock + timedelta(minutes=31))
    assert "the lease ended" in why and "suspend" not in store.owner["spec"], "resumed at the lease's end"
    assert [note for _, note, _ in writes] == ["GitOpsResumed"]


def rollout_remediation(gitops_status: dict) -> dict:
    return {"metadata": {"namespace": "shop", "name": "am-1"},
            "spec": {"signal": {"source": "alertmanager", "name": "HighErrorRate", "fingerprint": "f"},
                     "runbook": {"name": "rb"}, "target": {"kind": "Rollout", "name": "web"}},
            "status": {"phase": "Succeeded", "gitops": {
                "tool": "flux", "kind": "Kustomization", "namespace": "flux-system", "name": "apps",
                "mode": "suspend", "suspendedAt": "2026-11-25T12:00:00Z", **gitops_status}}}


ROLLOUT = {"metadata": {"name": "web", "namespace": "shop", "generation": 4},
           "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "app", "image": "web:bad"}]}}},
           "status": {"observedGeneration": "4", "phase": "Healthy"}}  # Argo Rollouts writes it as a string


def test_an_argo_rollout_target_is_read_while_held_so_a_fix_undone_on_it_is_told(monkeypatch):
    from datetime import datetime, timezone

    owner = {"metadata": {"name": "apps", "namespace": "flux-system", "annotations": {
                 gitops.PAUSED_BY: "shop/am-1", gitops.PAUSED_REVISION: "main@sha1:bad"}},
             "spec": {"suspend": True, "interval": "1m", "sourceRef": {"kind": "GitRepository", "name": "repo"}},
             "status": {"lastAppliedRevision": "main@sha1:bad"}}
    source = {"status": {"artifact": {"revision": "main@sha1:bad"}}}
    monkeypatch.setattr(gitops_ctl, "get", lambda api, table, kind, ns, name: copy.deepcopy(
        owner if kind == "Kustomization" else source))
    monkeypatch.setattr(gitops_ctl, "patch", lambda api, o, body: owner.update(merge(owner, body)))
    monkeypatch.setattr(gitops_ctl, "read_workload_json", lambda api, kind, name, ns: copy.deepcopy(ROLLOUT))
    writes = recorded_gitops_writes(monkeypatch)
    body = rollout_remediation({"until": "2026-11-25T13:00:00Z",
                                "declared": {"spec.template.spec.containers[app].image": "web:bad"}})
    now = datetime(2026, 11, 25, 12, 10, tzinfo=timezone.utc)
    why = gitops_ctl.hold_or_resume(SimpleNamespace(api=None), body, now)
    assert why and "the fix was undone" in why and [note for _, note, _ in writes] == ["GitOpsUndone"]


def test_the_watch_after_the_resume_judges_an_argo_rollout_target_instead_of_calling_it_gone(monkeypatch):
    from datetime import datetime, timezone

    patches = serve_a_ready_flux_owner(monkeypatch)
    monkeypatch.setattr(gitops_ctl, "read_workload_json", lambda api, kind, name, ns: copy.deepcopy(ROLLOUT))
    writes = recorded_gitops_writes(monkeypatch)
    body = rollout_remediation({"resumedAt": "2026-11-25T12:05:00Z", "watchedRevision": "main@sha1:good",
                                "watchUntil": "2026-11-25T12:05:30Z"})
    ctx = SimpleNamespace(api=None)
    gitops_ctl.hold_or_resume(ctx, body, datetime(2026, 11, 25, 12, 5, 10, tzinfo=timezone.utc))
    body["status"]["gitops"]["readyAt"] = "2026-11-25T12:05:10Z"
    why = gitops_ctl.hold_or_resume(ctx, body, datetime(2026, 11, 25, 12, 5, 31, tzinfo=timezone.utc))
    assert patches == [] and "GitOpsRegressed" not in [note for _, note, _ in writes], why
    assert why and "Ready and the target healthy" in why


@pytest.mark.parametrize("stamp", ["2099-01-01T00:00:00Z", "yesterday"])
def test_a_paused_at_annotation_edited_before_the_pause_is_recorded_neither_stops_the_loop_nor_waits_for_it(
        owned, monkeypatch, stamp):
    store = owned("suspend")

    def hit(name: str) -> None:
        if name == "after-pause":
            raise SystemExit("killed")
    monkeypatch.setattr(reconcile.failpoints, "hit", hit)
    with pytest.raises(SystemExit):
        tick(loop_on(store, monkeypatch))
    monkeypatch.setattr(reconcile.failpoints, "hit", lambda name: None)
    store.owner["metadata"]["annotations"][gitops.PAUSED_AT] = stamp  # a tenant's kubectl annotate
    loop = loop_on(store, monkeypatch)  # a new process
    run(loop, store, 60)
    assert len(store.owner_patches) == 1, "paused once"
    assert len(store.calls) == 1, "acted within the bound (40 s), not at the edited time"
    assert parse_time(store.status.gitops.suspended_at) <= store.clock


def climbed(owned, monkeypatch) -> tuple[OwnedStore, reconcile.Loop]:
    """Pause, settle, the first step refused by the apiserver: the ladder climbs with the pause held."""
    store = owned("suspend")
    loop = loop_on(store, monkeypatch)
    store.action_error = ActionError("Forbidden", "deployments.apps is forbidden", status=403)
    tick(loop)
    store.flux_handles_the_request()
    tick(loop)
    store.action_error = None
    assert engine.find_record(store.status, 0).phase == "Failed" and store.status.current_step == 1
    assert store.status.gitops.suspended_at and not store.status.gitops.resumed_at
    return store, loop


def lose_the_pause(store: OwnedStore) -> None:
    store.owner["spec"]["suspend"] = False  # `flux resume` by someone: our annotations stay


def end_the_lease(store: OwnedStore) -> None:
    """What the sweep does at the lease's end: resume the owner, and record it (another writer of the status)."""
    lose_the_pause(store)
    store.touch(status=store.status.model_copy(update={"gitops": store.status.gitops.model_copy(
        update={"resumed_at": gitops.stamp(store.clock)})}).wire())


def test_a_step_climbed_to_under_the_held_pause_acts_without_pausing_again(owned, monkeypatch):
    store, loop = climbed(owned, monkeypatch)
    tick(loop)
    assert [c.action for c in store.calls] == ["restartRollout", "scale"] and len(store.owner_patches) == 1


@pytest.mark.parametrize("how", ["resumed by someone", "our mark removed", "owner deleted", "lease ended"])
def test_a_step_climbed_to_after_the_pause_was_lost_escalates_without_acting(owned, monkeypatch, how):
    store, loop = climbed(owned, monkeypatch)
    if how == "resumed by someone":
        lose_the_pause(store)
    elif how == "our mark removed":
        store.owner["metadata"]["annotations"].pop(gitops.PAUSED_BY)
    elif how == "owner deleted":
        store.owner = None
    else:
        end_the_lease(store)
    tick(loop)
    assert store.status.phase == "Escalated", store.status.reason
    assert "GitOps:" in store.status.reason and "not acting" in store.status.reason
    assert [c.action for c in store.calls] == ["restartRollout"], "the second step never acted"


@pytest.mark.parametrize("step_mode", ["refuse", "suspend"])
def test_a_step_climbed_to_whose_own_gitops_mode_is_not_suspend_does_not_act_once_the_pause_is_lost(
        owned, monkeypatch, step_mode):
    store, loop = climbed(owned, monkeypatch)
    store.step_mode = step_mode  # the policy lets steps choose; this one says refuse
    lose_the_pause(store)
    tick(loop)
    assert store.status.phase == "Escalated", store.status.reason
    assert [c.action for c in store.calls] == ["restartRollout"], "the second step never acted"


def test_a_step_climbed_to_whose_own_gitops_mode_is_ignore_acts_even_when_the_pause_is_lost(owned, monkeypatch):
    store, loop = climbed(owned, monkeypatch)
    store.step_mode = "ignore"
    lose_the_pause(store)
    tick(loop)
    assert [c.action for c in store.calls] == ["restartRollout", "scale"]


def test_a_step_climbed_to_on_a_target_whose_owner_labels_were_removed_does_not_act_once_the_pause_is_lost(
        owned, monkeypatch):
    store, loop = climbed(owned, monkeypatch)
    store.marked = False  # someone stripped the kustomize.toolkit.fluxcd.io labels: Flux still applies it
    lose_the_pause(store)
    tick(loop)
    assert store.status.phase == "Escalated", store.status.reason
    assert "Flux Kustomization flux-system/apps" in store.status.reason
    assert [c.action for c in store.calls] == ["restartRollout"], "the second step never acted"


def test_a_step_climbed_to_on_a_target_whose_owner_labels_were_removed_acts_while_the_pause_holds(
        owned, monkeypatch):
    store, loop = climbed(owned, monkeypatch)
    store.marked = False
    tick(loop)
    assert [c.action for c in store.calls] == ["restartRollout", "scale"]


def test_an_action_in_progress_is_not_called_again_once_the_lease_ended_the_pause(owned, monkeypatch):
    store, loop = climbed(owned, monkeypatch)
    store.pending_action = True  # the second step's action is in progress: the same key is called each tick
    tick(loop)
    assert [c.action for c in store.calls] == ["restartRollout", "scale"]
    assert engine.find_record(store.status, 1).phase == "Intended"
    end_the_lease(store)
    tick(loop)
    assert store.status.phase == "Escalated", store.status.reason
    assert "GitOps:" in store.status.reason and "ended" in store.status.reason
    assert [c.action for c in store.calls] == ["restartRollout", "scale"], "not called again"


def approval_for_low_risk(store: OwnedStore) -> None:
    from remediator.api.models import Approval, ApprovalRule
    store.policy_spec = store.policy_spec.model_copy(update={"approval": Approval(rules=[
        ApprovalRule(level="low", approvers=1, allowed_kubernetes_users=["alice"])])})


def test_no_approval_is_asked_for_a_step_climbed_to_after_the_pause_was_lost(owned, monkeypatch):
    store, loop = climbed(owned, monkeypatch)
    approval_for_low_risk(store)
    lose_the_pause(store)
    tick(loop)
    assert store.status.phase == "Escalated", store.status.reason
    assert store.status.approval is None, "nobody is asked to approve a step that cannot act"


def test_a_step_approved_after_its_pause_was_lost_escalates_without_acting(owned, monkeypatch):
    store, loop = climbed(owned, monkeypatch)
    approval_for_low_risk(store)
    tick(loop)
    assert store.status.phase == "AwaitingApproval", store.status.reason
    lose_the_pause(store)  # while the approvers take their time
    given = store.status.approval.model_copy(update={"decision": "approved", "decided_at": gitops.stamp(store.clock)})
    store.touch(status=store.status.model_copy(update={"approval": given}).wire())
    tick(loop)
    tick(loop)
    assert store.status.phase == "Escalated", store.status.reason
    assert [c.action for c in store.calls] == ["restartRollout"], "the approved step never acted"


def test_a_target_relabelled_to_an_owner_the_policy_ignores_does_not_let_a_climbed_to_step_act_once_the_pause_is_lost(
        owned, monkeypatch):
    store, loop = climbed(owned, monkeypatch)
    # the Flux labels stripped and an Argo CD tracking id added: the target now names an owner in `ignore` mode,
    # while Flux, which we paused and someone resumed, still applies it
    store.owner_ref, store.step_mode = gitops.Owner("argocd", "Application", "argocd", "web"), "ignore"
    lose_the_pause(store)
    tick(loop)
    assert store.status.phase == "Escalated", store.status.reason
    assert [c.action for c in store.calls] == ["restartRollout"], "the second step never acted"
