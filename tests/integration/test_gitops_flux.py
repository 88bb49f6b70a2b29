"""A Deployment Flux owns, on the real control plane with the real Flux controllers and a loopback Git server:
the operator's policy per owner (ignore, suspend, refuse), the pause's lease, and no fight with Git."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest
import yaml

from remediator.core.durations import format_time, parse_time
from remediator.core.plan import gitops
from tests.support.admission_gate import AdmissionGate, cluster_role
from tests.support.flux import KUSTOMIZE
from tests.support.operator import OperatorProcess, alert, alert_payload
from tests.support.waiting import wait_for
from tests.support.workloads import deployment

pytestmark = [pytest.mark.integration, pytest.mark.slow]

INTERVAL = 5  # seconds: the Kustomization's and the GitRepository's
GOOD, BAD, FIXED = "registry.local/web:1.0", "registry.local/web:1.1-bad", "registry.local/web:1.2"
NO_APPROVALS = {"approval": {"rules": [{"level": lvl, "approvers": 0} for lvl in ("low", "medium", "high", "critical")]}}
RUNBOOK = {
    "triggers": [{"alert": {"matchers": [{"name": "alertname", "value": "HighErrorRate"}]}}],
    "target": {"kind": "Deployment", "name": "{{ labels.deployment }}"},
    "steps": [{"name": "rollback", "action": "rollback", "risk": "medium", "timeout": "90s",
               "verify": {"rolloutComplete": {}}}],
    "guard": {"cooldown": "1s", "maxRunsPerHour": 10},
}


@pytest.fixture
def gitops_operator(kubeconfig, namespace, crds, tmp_path):
    op = OperatorProcess(kubeconfig, [namespace], tmp_path, extra_args=["--gitops-sweep", "1"])
    op.start()
    yield op
    op.stop()


def image(cluster) -> str:
    return cluster.apps.read_namespaced_deployment("web", cluster.ns).spec.template.spec.containers[0].image


def kustomization(cluster) -> dict:
    return cluster.custom.get_namespaced_custom_object(*KUSTOMIZE[:2], cluster.ns, KUSTOMIZE[2], "web")


def commit(repo, img: str, note: str) -> str:
    return repo.commit({"app/web.yaml": yaml.safe_dump(deployment("web", replicas=2, image=img))}, note)


def bad_release(flux, cluster, kube_api):
    """web 1.0 then 1.1-bad committed to Git, and Flux applying each: the Deployment has two revisions."""
    repo = flux.create_repo(cluster.ns)
    commit(repo, GOOD, "web 1.0")
    flux.apply(kube_api, cluster.ns, "web", repo, path="./app", interval=f"{INTERVAL}s")
    wait_for(lambda: flux.applied_revision(kube_api, cluster.ns, "web") == repo.flux_revision(), timeout=90,
             what="Flux applying web 1.0")
    wait_for(lambda: (cluster.apps.read_namespaced_deployment("web", cluster.ns).status.available_replicas or 0) == 2,
             what="web 1.0 available")
    bad = commit(repo, BAD, "web 1.1 (bad)")
    wait_for(lambda: image(cluster) == BAD, timeout=6 * INTERVAL, what="Flux applying the bad commit")
    wait_for(lambda: len(cluster.revisions()) == 2, what="the bad revision rolled out")
    return repo, f"main@sha1:{bad}"


def incident(cluster, operator, fingerprint="f1") -> str:
    """The alert reaches the operator's webhook: the new Remediation's name."""
    seen = {r["metadata"]["name"] for r in cluster.remediations()}
    starts = format_time(datetime.now(timezone.utc))
    assert operator.post_alerts(alert_payload([alert(cluster.ns, "web", fingerprint=fingerprint,
                                                     starts_at=starts)])).status_code == 200
    return wait_for(lambda: [r["metadata"]["name"] for r in cluster.remediations()
                             if r["metadata"]["name"] not in seen], what="a new Remediation")[0]


def ended(cluster, name) -> dict:
    return cluster.wait_phase(name, {"Succeeded", "Failed", "Escalated", "Skipped", "Cancelled"}, timeout=120)["status"]


def test_with_ignore_flux_reverts_the_operators_rollback_within_its_interval(flux, kube_api, cluster,
                                                                              gitops_operator):
    cluster.apply_policy({**NO_APPROVALS, "gitops": {"flux": "ignore"}})
    cluster.apply_runbook("bad-release", RUNBOOK)
    bad_release(flux, cluster, kube_api)
    name = incident(cluster, gitops_operator)
    wait_for(lambda: image(cluster) == GOOD, timeout=60, what="the operator's rollback")
    rolled_back = time.monotonic()
    wait_for(lambda: image(cluster) == BAD, timeout=6 * INTERVAL, what="Flux undoing the rollback")
    # one interval, plus the source's own fetch interval, jitter and a loaded 2-core machine's slack
    assert time.monotonic() - rolled_back <= 2 * INTERVAL + 10
    status = cluster.remediation(name)["status"]
    assert status["gitops"]["mode"] == "ignore" and status["gitops"]["kind"] == "Kustomization"
    assert gitops.PAUSED_BY not in (kustomization(cluster)["metadata"].get("annotations") or {})
    assert not kustomization(cluster)["spec"].get("suspend")


def test_refuse_escalates_naming_the_kustomization_and_writes_nothing_to_the_deployment(
        flux, kube_api, cluster, gitops_operator):
    cluster.apply_policy(NO_APPROVALS)  # gitops unset: refuse
    cluster.apply_runbook("bad-release", RUNBOOK)
    bad_release(flux, cluster, kube_api)
    before = cluster.apps.read_namespaced_deployment("web", cluster.ns).metadata
    status = ended(cluster, incident(cluster, gitops_operator))
    assert status["phase"] == "Escalated", status
    assert f"Flux Kustomization {cluster.ns}/web" in status["reason"] and "refuse" in status["reason"]
    after = cluster.apps.read_namespaced_deployment("web", cluster.ns).metadata
    assert (after.generation, after.annotations) == (before.generation, before.annotations), "no write to the target"
    assert not kustomization(cluster)["spec"].get("suspend")


def test_suspend_pauses_flux_holds_the_rollback_until_a_good_commit_then_resumes_with_no_second_incident(
        flux, kube_api, cluster, gitops_operator):
    cluster.apply_policy({**NO_APPROVALS, "gitops": {"flux": "suspend", "lease": "10m"}})
    cluster.apply_runbook("bad-release", RUNBOOK)
    repo, bad_revision = bad_release(flux, cluster, kube_api)
    name = incident(cluster, gitops_operator)

    status = ended(cluster, name)
    assert status["phase"] == "Succeeded", status
    paused = kustomization(cluster)
    notes = paused["metadata"]["annotations"]
    assert paused["spec"]["suspend"] is True
    assert notes[gitops.PAUSED_BY] == f"{cluster.ns}/{name}" and name in notes[gitops.PAUSED_WHY]
    assert notes[gitops.PAUSED_UNTIL] == status["gitops"]["until"] and notes[gitops.PAUSED_REVISION] == bad_revision
    held = status["gitops"]
    assert held["desiredState"] == (f"Git at revision {bad_revision} (GitRepository {cluster.ns}/web) still declares "
                                    f"image {BAD}")
    assert held["revert"] == f"in Git: Deployment/web spec.template.spec.containers[app].image: {BAD} → {GOOD}"
    assert any("pauses Flux Kustomization" in r for r in status["risk"]["reasons"])

    fixed_at = time.monotonic()  # the rollback holds while Flux is paused: twice its interval
    while time.monotonic() - fixed_at < 2 * INTERVAL + 1:
        assert image(cluster) == GOOD
        time.sleep(0.5)

    held_revisions = cluster.revisions()
    good = commit(repo, FIXED, "web 1.2 (the fix, in Git)")
    wait_for(lambda: not kustomization(cluster)["spec"].get("suspend"), timeout=30, what="the operator resuming Flux")
    assert not any(k in (kustomization(cluster)["metadata"].get("annotations") or {}) for k in gitops.OUR_ANNOTATIONS)
    wait_for(lambda: image(cluster) == FIXED, timeout=6 * INTERVAL, what="Flux applying the good commit")
    wait_for(lambda: flux.applied_revision(kube_api, cluster.ns, "web") == f"main@sha1:{good}", timeout=30,
             what="the Kustomization at the good revision")
    resumed = cluster.remediation(name)["status"]["gitops"]
    assert resumed["resumedAt"] and "Git moved" in resumed["resumeReason"]
    # then the new revision is watched: Ready with the target healthy, and still so at the window's end
    assert resumed["watchedRevision"] == f"main@sha1:{good}" and resumed["watchUntil"] > resumed["resumedAt"]
    watched = wait_for(lambda: (g := cluster.remediation(name)["status"]["gitops"]).get("watchOutcome") and g,
                       timeout=90, what="the watch of the good revision ending")
    assert watched["watchOutcome"] == "Healthy", watched["watchReason"]
    assert watched["resumedAt"] <= watched["readyAt"] <= watched["watchUntil"] and good in watched["watchReason"]
    # Resuming only once the source has the good commit: Flux never re-applied 1.1-bad (or 1.0) on the way, which
    # would have brought an old ReplicaSet back under a new revision number.
    assert {rs: rev for rs, rev in cluster.revisions().items() if rs in held_revisions} == held_revisions
    assert [r["metadata"]["name"] for r in cluster.remediations()] == [name], "no second incident"


def test_a_lease_ending_with_git_still_bad_resumes_flux_and_the_returning_incident_is_escalated(
        flux, kube_api, cluster, gitops_operator):
    cluster.apply_policy({**NO_APPROVALS, "gitops": {"flux": "suspend", "lease": "15s"}})
    cluster.apply_runbook("bad-release", RUNBOOK)
    _, bad_revision = bad_release(flux, cluster, kube_api)
    first = incident(cluster, gitops_operator)
    assert ended(cluster, first)["phase"] == "Succeeded"

    wait_for(lambda: not kustomization(cluster)["spec"].get("suspend"), timeout=45, what="resumed at lease end")
    assert kustomization(cluster)["metadata"]["annotations"][gitops.RESUMED_UNFIXED] == bad_revision
    # the owner is resumed first, then the resume is recorded (a crash between resumes nothing twice)
    held = wait_for(lambda: (g := cluster.remediation(first)["status"]["gitops"]).get("resumedAt") and g,
                    timeout=30, what="the resume recorded on the Remediation")
    assert held["resumedAt"] >= held["until"], "held for the whole lease"
    reason = held["resumeReason"]
    assert "lease ended" in reason and "revert in Git" in reason and BAD in reason
    wait_for(lambda: image(cluster) == BAD, timeout=4 * INTERVAL, what="Flux re-applying Git's bad image")
    revisions = cluster.revisions()

    second = incident(cluster, gitops_operator, fingerprint="f2")
    status = ended(cluster, second)
    assert status["phase"] == "Escalated" and "same incident is back" in status["reason"], status
    assert cluster.revisions() == revisions and image(cluster) == BAD, "not remediated again"
    assert not kustomization(cluster)["spec"].get("suspend"), "not paused again"


# ---------------------------------------------------------------- a Flux apply in flight at the pause (issue #18)


@pytest.fixture
def gate(kube_api, cluster, tmp_path):
    """An admission webhook that can hold the first request of Flux's next reconcile (tests/support/admission_gate)."""
    from kubernetes import client

    held = AdmissionGate(tmp_path)
    held.install(kube_api, f"gate-{cluster.ns}")
    yield held
    held.close(kube_api)
    try:
        client.RbacAuthorizationV1Api(kube_api).delete_cluster_role(f"gate-{cluster.ns}")
    except client.ApiException as e:
        if e.status != 404:
            raise


def commit_gated(repo, cluster, img: str, note: str) -> str:
    """web at `img`, and the ClusterRole Flux dry-runs (through the gate) before it looks at web."""
    return repo.commit({"app/web.yaml": yaml.safe_dump(deployment("web", replicas=2, image=img)),
                        "app/gate.yaml": yaml.safe_dump(cluster_role(f"gate-{cluster.ns}"))}, note)


def gated_release(flux, cluster, kube_api, gate, good: bool = True):
    """As bad_release (web 1.0, then 1.1-bad; `good=False`: 1.1-bad only), with the gate's ClusterRole in the
    Kustomization, and the gate seen answering Flux's reconciles."""
    repo = flux.create_repo(cluster.ns)
    commits = [(GOOD, "web 1.0"), (BAD, "web 1.1 (bad)")] if good else [(BAD, "web 1.1 (bad)")]
    commit_gated(repo, cluster, *commits[0])
    flux.apply(kube_api, cluster.ns, "web", repo, path="./app", interval=f"{INTERVAL}s")
    wait_for(lambda: flux.applied_revision(kube_api, cluster.ns, "web") == repo.flux_revision(), timeout=90,
             what=f"Flux applying {commits[0][1]}")
    if good:
        wait_for(lambda: (cluster.apps.read_namespaced_deployment("web", cluster.ns).status.available_replicas
                          or 0) == 2, what="web 1.0 available")
        commit_gated(repo, cluster, *commits[1])
        wait_for(lambda: image(cluster) == BAD, timeout=6 * INTERVAL, what="Flux applying the bad commit")
        wait_for(lambda: len(cluster.revisions()) == 2, what="the bad revision rolled out")
    seen = len(gate.requests)
    wait_for(lambda: len(gate.requests) > seen, timeout=6 * INTERVAL, what="the gate seeing a Flux reconcile")
    return repo


def hold_a_reconcile(gate) -> None:
    """Flux's next reconcile is held at its first dry run: in flight, before it has read the Deployment."""
    gate.arm()
    assert gate.held.wait(4 * INTERVAL), "no Flux reconcile reached the gate"


def handled(cluster) -> str | None:
    return (kustomization(cluster).get("status") or {}).get("lastHandledReconcileAt")


def test_a_rollback_written_while_a_flux_apply_is_in_flight_is_undone_although_the_kustomization_is_suspended(
        flux, kube_api, cluster, gate):
    """The race, with no operator: what the pause alone (suspend + a reconcile request) does not prevent."""
    gated_release(flux, cluster, kube_api, gate, good=False)
    hold_a_reconcile(gate)
    marker = gitops.stamp(datetime.now(timezone.utc))
    cluster.custom.patch_namespaced_custom_object(*KUSTOMIZE[:2], cluster.ns, KUSTOMIZE[2], "web", {
        "metadata": {"annotations": {gitops.RECONCILE_REQUESTED: marker}}, "spec": {"suspend": True}})
    cluster.apps.patch_namespaced_deployment("web", cluster.ns, {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": GOOD}]}}}})  # the fix, written right after the pause
    assert image(cluster) == GOOD
    gate.release()

    def undone_then_handled():
        seen = handled(cluster)  # read first: once it is our marker, the apply in flight has finished
        return image(cluster) == BAD and seen == marker and seen
    wait_for(undone_then_handled, timeout=30, what="Flux's apply in flight undoing the fix, then the request handled")
    assert kustomization(cluster)["spec"]["suspend"] is True, "undone while the Kustomization shows suspended"


def test_suspend_waits_for_the_flux_apply_in_flight_at_the_pause_before_rolling_back(
        flux, kube_api, cluster, gate, gitops_operator):
    cluster.apply_policy({**NO_APPROVALS, "gitops": {"flux": "suspend", "lease": "10m"}})
    cluster.apply_runbook("bad-release", RUNBOOK)
    gated_release(flux, cluster, kube_api, gate)
    hold_a_reconcile(gate)
    name = incident(cluster, gitops_operator)

    paused = wait_for(lambda: (g := (cluster.remediation(name).get("status") or {}).get("gitops") or {})
                      .get("suspendedAt") and g, timeout=30, what="the operator pausing the Kustomization")
    marker = paused["suspendedAt"]
    assert kustomization(cluster)["metadata"]["annotations"][gitops.RECONCILE_REQUESTED] == marker
    held_for = time.monotonic()
    while time.monotonic() - held_for < 6:  # Flux's apply is in flight (held): the operator paused, and waits
        assert image(cluster) == BAD, "the operator acted while Flux was still applying"
        assert handled(cluster) != marker
        time.sleep(0.5)
    status = cluster.remediation(name)["status"]
    assert status["phase"] == "Acting" and not status["gitops"].get("settledAt")
    assert any(e["kind"] == "GitOpsSettling" for e in status["timeline"])
    gate.release()

    def rolled_back():
        fixed = image(cluster) == GOOD  # read first: a rollback seen means the marker was handled before it
        if fixed:
            assert handled(cluster) == marker, "rolled back before Flux handled the pause's reconcile request"
        return fixed
    wait_for(rolled_back, timeout=30, what="the operator's rollback once Flux settled")
    status = ended(cluster, name)
    assert status["phase"] == "Succeeded", status
    held = status["gitops"]
    assert parse_time(held["settledAt"]) >= parse_time(held["suspendedAt"])
    assert "handled the reconcile request" in held["settleReason"]
    kinds = [e["kind"] for e in status["timeline"]]
    assert kinds.index("GitOpsPaused") < kinds.index("GitOpsSettling") < kinds.index("GitOpsSettled")
    assert parse_time(status["steps"][0]["appliedAt"]) >= parse_time(held["settledAt"])
    assert held["declared"] == {"spec.template.spec.containers[app].image": BAD}

    fixed_at = time.monotonic()  # and it stays rolled back: nothing in flight is left to undo it
    while time.monotonic() - fixed_at < 2 * INTERVAL + 1:
        assert image(cluster) == GOOD
        time.sleep(0.5)
    assert kustomization(cluster)["spec"]["suspend"] is True
