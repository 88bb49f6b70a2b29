"""GitOps owners: detection, the policy's mode, the pause/resume patches and the hold decision (pure)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from remediator.api.models import GitopsPolicy, RiskAssessment, StepGitops
from remediator.core.plan import gitops

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
KEY = "shop/web-rollback-1"
FLUX = gitops.Owner("flux", "Kustomization", "flux-system", "apps")
ARGO = gitops.Owner("argocd", "Application", "argocd", "web")


def kustomization(suspend=False, annotations=None, labels=None, managed=None, applied="main@sha1:aaa"):
    return {"metadata": {"name": "apps", "namespace": "flux-system", "resourceVersion": "7",
                         "annotations": annotations or {}, "labels": labels or {}, "managedFields": managed or []},
            "spec": {"interval": "10s", "suspend": suspend,
                     "sourceRef": {"kind": "GitRepository", "name": "repo"}},
            "status": {"lastAppliedRevision": applied}}


def repo(revision="main@sha1:aaa"):
    return {"status": {"artifact": {"revision": revision}}}


def application(automated=None, annotations=None, owner_refs=None, labels=None):
    sync = {"automated": automated} if automated is not None else {}
    return {"metadata": {"name": "web", "namespace": "argocd", "resourceVersion": "3",
                         "annotations": annotations or {}, "labels": labels or {}, "ownerReferences": owner_refs or []},
            "spec": {"source": {"repoURL": "https://git.example/web.git"}, "syncPolicy": sync},
            "status": {"sync": {"revision": "abc123"}}}


def test_flux_kustomize_labels_name_the_kustomization():
    labels = {"kustomize.toolkit.fluxcd.io/name": "apps", "kustomize.toolkit.fluxcd.io/namespace": "flux-system"}
    assert gitops.owner_of(labels, {}) == FLUX


def test_flux_helm_labels_name_the_helmrelease():
    labels = {"helm.toolkit.fluxcd.io/name": "web", "helm.toolkit.fluxcd.io/namespace": "shop"}
    assert gitops.owner_of(labels, {}) == gitops.Owner("flux", "HelmRelease", "shop", "web")


def test_argocd_tracking_id_names_the_application_in_argocd_or_in_its_own_namespace():
    plain = {gitops.ARGO_TRACKING: "web:apps/Deployment:shop/web"}
    anywhere = {gitops.ARGO_TRACKING: "team-a_web:apps/Deployment:shop/web"}
    assert gitops.owner_of({}, plain) == ARGO
    assert gitops.owner_of({}, anywhere) == gitops.Owner("argocd", "Application", "team-a", "web")


def test_argocd_instance_label_counts_only_when_configured():
    labels = {"app.kubernetes.io/instance": "web"}
    assert gitops.owner_of(labels, {}) is None
    assert gitops.owner_of(labels, {}, "app.kubernetes.io/instance", "cd") == \
        gitops.Owner("argocd", "Application", "cd", "web")


def test_a_target_without_marks_has_no_owner():
    assert gitops.owner_of({"app": "web"}, {"note": "x"}) is None


def test_default_mode_is_refuse_and_refuse_names_the_owner():
    state = gitops.read_owner(FLUX, kustomization(), repo())
    mode, why = gitops.mode_for(FLUX, GitopsPolicy(), None)
    verdict = gitops.decide(state, mode, why, KEY)
    assert mode == "refuse" and not verdict.allowed
    assert "Flux Kustomization flux-system/apps" in verdict.reason and "main@sha1:aaa" in verdict.reason


def test_no_policy_at_all_refuses():
    assert gitops.mode_for(ARGO, None, None)[0] == "refuse"


def test_a_step_override_counts_only_where_the_policy_allows_it():
    step = StepGitops(flux="ignore")
    assert gitops.mode_for(FLUX, GitopsPolicy(flux="suspend"), step)[0] == "suspend"
    mode, why = gitops.mode_for(FLUX, GitopsPolicy(flux="suspend", allow_step_override=True), step)
    assert mode == "ignore" and "step" in why


def test_ignore_acts_and_says_so():
    verdict = gitops.decide(gitops.read_owner(FLUX, kustomization(), repo()), "ignore", "policy", KEY)
    assert verdict.allowed and not verdict.suspend and "acting anyway" in verdict.reason


def test_suspend_pauses_a_healthy_owner():
    verdict = gitops.decide(gitops.read_owner(FLUX, kustomization(), repo()), "suspend", "policy", KEY)
    assert verdict.allowed and verdict.suspend


def test_suspend_refuses_an_owner_that_does_not_exist():
    verdict = gitops.decide(gitops.read_owner(FLUX, None), "suspend", "policy", KEY)
    assert not verdict.allowed and "does not exist" in verdict.reason


def test_suspend_refuses_an_owner_someone_else_suspended():
    verdict = gitops.decide(gitops.read_owner(FLUX, kustomization(suspend=True), repo()), "suspend", "p", KEY)
    assert not verdict.allowed and "someone else" in verdict.reason


def test_suspend_refuses_an_owner_another_remediation_paused():
    body = kustomization(suspend=True, annotations={gitops.PAUSED_BY: "shop/other"})
    verdict = gitops.decide(gitops.read_owner(FLUX, body, repo()), "suspend", "p", KEY)
    assert not verdict.allowed and "shop/other" in verdict.reason


def test_a_parent_kustomization_that_declares_suspend_is_a_trap_named_in_the_refusal():
    labels = {"kustomize.toolkit.fluxcd.io/name": "flux-system", "kustomize.toolkit.fluxcd.io/namespace": "flux-system"}
    managed = [{"manager": "kustomize-controller", "fieldsV1": {"f:spec": {"f:suspend": {}, "f:interval": {}}}}]
    verdict = gitops.decide(gitops.read_owner(FLUX, kustomization(labels=labels, managed=managed), repo()),
                            "suspend", "p", KEY)
    assert not verdict.allowed and "parent Flux Kustomization flux-system/flux-system" in verdict.reason


def test_a_parent_kustomization_that_does_not_declare_suspend_leaves_the_pause_alone():
    labels = {"kustomize.toolkit.fluxcd.io/name": "flux-system", "kustomize.toolkit.fluxcd.io/namespace": "flux-system"}
    managed = [{"manager": "kustomize-controller", "fieldsV1": {"f:spec": {"f:interval": {}}}}]
    verdict = gitops.decide(gitops.read_owner(FLUX, kustomization(labels=labels, managed=managed), repo()),
                            "suspend", "p", KEY)
    assert verdict.suspend


def test_an_applicationset_owner_reference_is_a_trap_named_in_the_refusal():
    body = application({"selfHeal": True}, owner_refs=[{"kind": "ApplicationSet", "name": "all-web"}])
    verdict = gitops.decide(gitops.read_owner(ARGO, body), "suspend", "p", KEY)
    assert not verdict.allowed and "ApplicationSet argocd/all-web" in verdict.reason


def test_an_app_of_apps_parent_is_a_trap_named_in_the_refusal():
    body = application({"selfHeal": True}, annotations={gitops.ARGO_TRACKING: "root:argoproj.io/Application:argocd/web"})
    verdict = gitops.decide(gitops.read_owner(ARGO, body), "suspend", "p", KEY)
    assert not verdict.allowed and "parent Argo CD Application argocd/root" in verdict.reason


def test_flux_pause_sets_suspend_with_who_why_when_until_and_the_revision():
    state = gitops.read_owner(FLUX, kustomization(), repo())
    patch = gitops.suspend_patch(state, KEY, "step rollback", NOW, timedelta(minutes=30), "7")
    notes = patch["metadata"]["annotations"]
    assert patch["spec"] == {"suspend": True} and patch["metadata"]["resourceVersion"] == "7"
    assert notes[gitops.PAUSED_BY] == KEY and notes[gitops.PAUSED_WHY] == "step rollback"
    assert notes[gitops.PAUSED_AT] == "2026-01-01T12:00:00Z" and notes[gitops.PAUSED_UNTIL] == "2026-01-01T12:30:00Z"
    assert notes[gitops.PAUSED_REVISION] == "main@sha1:aaa"


def test_pausing_twice_under_the_same_key_writes_nothing():
    body = kustomization(suspend=True, annotations={gitops.PAUSED_BY: KEY})
    assert gitops.suspend_patch(gitops.read_owner(FLUX, body, repo()), KEY, "x", NOW, timedelta(1)) is None


def test_argocd_pause_removes_automated_and_keeps_the_original_for_the_resume():
    automated = {"prune": True, "selfHeal": True}
    state = gitops.read_owner(ARGO, application(automated))
    patch = gitops.suspend_patch(state, KEY, "why", NOW, timedelta(hours=1))
    assert patch["spec"] == {"syncPolicy": {"automated": None}}
    kept = patch["metadata"]["annotations"][gitops.ORIGINAL_SYNC]
    paused = application(None, annotations={gitops.PAUSED_BY: KEY, gitops.ORIGINAL_SYNC: kept})
    resumed = gitops.resume_patch(gitops.read_owner(ARGO, paused), KEY, unfixed=False)
    assert resumed["spec"] == {"syncPolicy": {"automated": automated}}
    assert all(resumed["metadata"]["annotations"][k] is None for k in gitops.OUR_ANNOTATIONS)
    assert json.loads(kept) == automated


def test_resume_writes_nothing_when_our_pause_is_gone_so_the_original_is_restored_once():
    assert gitops.resume_patch(gitops.read_owner(FLUX, kustomization(), repo()), KEY, unfixed=False) is None


def test_a_resume_at_lease_end_marks_the_owner_with_the_unfixed_revision():
    body = kustomization(suspend=True, annotations={gitops.PAUSED_BY: KEY, gitops.PAUSED_REVISION: "main@sha1:bad"})
    patch = gitops.resume_patch(gitops.read_owner(FLUX, body, repo("main@sha1:bad")), KEY, unfixed=True)
    assert patch["spec"] == {"suspend": None}
    assert patch["metadata"]["annotations"][gitops.RESUMED_UNFIXED] == "main@sha1:bad"


def test_the_same_incident_after_a_lease_end_resume_is_escalated_not_paused_again():
    body = kustomization(annotations={gitops.RESUMED_UNFIXED: "main@sha1:bad"})
    verdict = gitops.decide(gitops.read_owner(FLUX, body, repo("main@sha1:bad")), "suspend", "p", KEY)
    assert not verdict.allowed and "same incident is back" in verdict.reason
    moved_on = gitops.decide(gitops.read_owner(FLUX, body, repo("main@sha1:new")), "suspend", "p", KEY)
    assert moved_on.suspend


def paused(revision="main@sha1:bad"):
    return kustomization(suspend=True, annotations={gitops.PAUSED_BY: KEY, gitops.PAUSED_REVISION: "main@sha1:bad"}), \
        repo(revision)


def test_the_pause_holds_while_git_is_unchanged_and_the_lease_runs():
    body, source = paused()
    held = gitops.hold(gitops.read_owner(FLUX, body, source), KEY, NOW + timedelta(minutes=5), NOW, "Succeeded")
    assert not held.resume


def test_git_moving_past_the_paused_revision_resumes_as_fixed():
    body, source = paused("main@sha1:good")
    held = gitops.hold(gitops.read_owner(FLUX, body, source), KEY, NOW + timedelta(minutes=5), NOW, "Succeeded")
    assert held.resume and not held.unfixed and "main@sha1:good" in held.reason


def test_the_lease_ending_with_git_unchanged_resumes_as_unfixed():
    body, source = paused()
    held = gitops.hold(gitops.read_owner(FLUX, body, source), KEY, NOW, NOW, "Succeeded")
    assert held.resume and held.unfixed


def test_a_remediation_that_ended_without_a_fix_resumes_at_once():
    body, source = paused()
    held = gitops.hold(gitops.read_owner(FLUX, body, source), KEY, NOW + timedelta(hours=1), NOW, "Escalated")
    assert held.resume and not held.unfixed and "Escalated" in held.reason


def test_desired_state_says_what_git_declares_and_the_exact_revert():
    changes = {"spec.template.spec.containers[web].image": {"before": "web:1.1-bad", "after": "web:1.0"},
               "metadata.annotations[x]": {"before": "1", "after": "2"}}
    declared, revert = gitops.desired_state("main@sha1:bad", "GitRepository flux-system/repo", "Deployment/web",
                                            changes)
    assert declared == "Git at revision main@sha1:bad (GitRepository flux-system/repo) still declares image web:1.1-bad"
    assert revert == "in Git: Deployment/web spec.template.spec.containers[web].image: web:1.1-bad → web:1.0"


def test_a_pause_raises_the_risk_score_and_says_why():
    before = RiskAssessment(score=20, level="low", reasons=["+20 declared", "score 20 -> low (band 0-29)"])
    after = gitops.raised(before, FLUX)
    assert after.score == 35 and any("pauses Flux Kustomization flux-system/apps" in r for r in after.reasons)
    assert after.reasons[-1].startswith("score 35 ->")


FLUX_LABELS = ("--target-label", "kustomize.toolkit.fluxcd.io/name=apps",
               "--target-label", "kustomize.toolkit.fluxcd.io/namespace=flux-system")


def test_simulate_names_the_flux_owner_and_escalates_under_the_default_refuse(tmp_path, capsys):
    from tests.unit.test_simulate import DEFAULT_POLICY, NOW, RUNBOOKS, alert, payload
    from remediator.cli import main

    body = tmp_path / "alert.json"
    body.write_text(json.dumps(payload(alert(alertname="HighLatency", deployment="api"))))
    assert main(["simulate", "--alert", str(body), "--now", NOW, "--output", "json", "--runbooks", RUNBOOKS,
                 "--policy", DEFAULT_POLICY, "--replicas", "3", *FLUX_LABELS]) == 0
    sim = json.loads(capsys.readouterr().out)["alerts"][0]
    assert sim["gitops"] == "Flux Kustomization flux-system/apps, mode refuse"
    assert sim["phase"] == "Escalated" and "Flux Kustomization flux-system/apps" in sim["phaseReason"]


def test_the_approval_message_shows_the_owner_and_the_pause(tmp_path):
    from remediator.api.models import GitopsState, RemediationStatus
    from remediator.approvals.messages import request_blocks
    from tests.unit.test_core_engine import SPEC

    status = RemediationStatus(gitops=GitopsState(tool="flux", kind="Kustomization", namespace="flux-system",
                                                  name="apps", mode="suspend", revision="main@sha1:bad"))
    text = "\n".join(b["text"]["text"] for b in request_blocks("shop", "r1", SPEC, status) if b.get("text"))
    assert "*GitOps owner:* Flux Kustomization flux-system/apps, mode suspend, Git revision main@sha1:bad: paused " \
           "while the step acts" in text


TARGET = ("Deployment", "shop", "web")


def test_a_flux_owner_whose_inventory_does_not_list_the_target_is_not_paused():
    body = kustomization()
    body["status"]["inventory"] = {"entries": [{"id": "other_web_apps_Deployment", "v": "v1"}]}
    verdict = gitops.decide(gitops.read_owner(FLUX, body, repo(), TARGET), "suspend", "p", KEY)
    assert not verdict.allowed and "inventory does not list it" in verdict.reason
    body["status"]["inventory"]["entries"].append({"id": "shop_web_apps_Deployment", "v": "v1"})
    assert gitops.decide(gitops.read_owner(FLUX, body, repo(), TARGET), "suspend", "p", KEY).suspend


def test_an_argocd_owner_whose_resources_do_not_list_the_target_is_not_paused():
    body = application({"selfHeal": True})
    body["status"]["resources"] = [{"kind": "Deployment", "namespace": "shop", "name": "api"}]
    assert not gitops.decide(gitops.read_owner(ARGO, body, None, TARGET), "suspend", "p", KEY).allowed
    body["status"]["resources"].append({"group": "apps", "kind": "Deployment", "namespace": "shop", "name": "web"})
    assert gitops.decide(gitops.read_owner(ARGO, body, None, TARGET), "suspend", "p", KEY).suspend


def test_a_hand_edited_kept_sync_policy_does_not_break_reading_the_owner():
    body = application(None, annotations={gitops.PAUSED_BY: KEY, gitops.ORIGINAL_SYNC: "{not json"})
    state = gitops.read_owner(ARGO, body)
    assert state.original_automated is None
    assert gitops.resume_patch(state, KEY, unfixed=False)["spec"] == {"syncPolicy": {"automated": {}}}


# After the resume on the revision Git moved to: the watch (pure decision).
NEW = "main@sha1:bbb"
UNTIL = NOW + timedelta(seconds=30)
HEALTHY = (True, "Deployment 2/2 available")


def watched(applied=NEW, ready="True", message="Applied revision", annotations=None):
    body = kustomization(applied=applied, annotations=annotations)
    body["status"]["conditions"] = [{"type": "Ready", "status": ready, "message": message}]
    return gitops.read_owner(FLUX, body, repo(NEW))


def deployment_status(replicas=2, updated=2, available=2, generation=3, observed=3, progressing=None):
    conditions = [{"type": "Progressing", **progressing}] if progressing else []
    return {"metadata": {"generation": generation}, "spec": {"replicas": replicas},
            "status": {"observedGeneration": observed, "updatedReplicas": updated, "availableReplicas": available,
                       "conditions": conditions}}


def test_git_moving_on_resumes_and_names_the_revision_to_watch():
    state = gitops.read_owner(FLUX, kustomization(annotations={gitops.PAUSED_BY: KEY,
                                                               gitops.PAUSED_REVISION: "main@sha1:aaa"}), repo(NEW))
    assert gitops.hold(state, KEY, NOW + timedelta(hours=1), NOW, "Succeeded").moved_to == NEW


def test_the_watch_window_is_two_intervals_and_one_apply_timeout_never_under_thirty_seconds():
    body = kustomization()
    body["spec"] |= {"interval": "1m", "timeout": "2m"}
    assert gitops.watch_window(gitops.read_owner(FLUX, body, repo())) == timedelta(minutes=4)
    assert gitops.watch_window(watched()) == timedelta(seconds=30)  # 10s interval: 2*10 + 10 = 30


def test_the_new_revision_ready_with_a_healthy_target_is_recorded_then_healthy_only_at_window_end():
    first = gitops.after_resume(watched(), NEW, HEALTHY, None, UNTIL, NOW)
    assert first.ready_now and first.outcome is None
    assert gitops.after_resume(watched(), NEW, HEALTHY, NOW, UNTIL, UNTIL - timedelta(seconds=1)).outcome is None
    last = gitops.after_resume(watched(), NEW, HEALTHY, NOW, UNTIL, UNTIL)
    assert last.outcome == "Healthy" and NEW in last.reason


def test_still_applying_the_old_revision_or_rolling_out_is_not_yet_a_regression():
    assert gitops.after_resume(watched(applied="main@sha1:aaa"), NEW, HEALTHY, None, UNTIL, NOW) == gitops.Watch()
    rolling = gitops.workload_health("Deployment", deployment_status(updated=1, available=1))
    assert rolling == (False, "Deployment replicas updated 1/2, available 1/2")
    assert gitops.after_resume(watched(), NEW, rolling, None, UNTIL, NOW) == gitops.Watch()


def test_a_target_unhealthy_after_the_new_revision_was_ready_is_a_regression_naming_the_revision():
    down = gitops.workload_health("Deployment", deployment_status(available=0))
    seen = gitops.after_resume(watched(), NEW, down, NOW, UNTIL, NOW + timedelta(seconds=5))
    assert seen.outcome == "Regressed" and NEW in seen.reason and "available 0/2" in seen.reason


def test_the_new_revision_never_ready_by_the_window_end_is_a_regression():
    stalled = gitops.workload_health("Deployment", deployment_status(
        available=1, progressing={"status": "False", "reason": "ProgressDeadlineExceeded"}))
    assert stalled[0] is False and "ProgressDeadlineExceeded" in stalled[1]
    seen = gitops.after_resume(watched(), NEW, stalled, None, UNTIL, UNTIL)
    assert seen.outcome == "Regressed" and f"revision {NEW} did not become Ready" in seen.reason


def test_flux_not_ready_at_the_new_revision_is_a_regression_at_once():
    seen = gitops.after_resume(watched(ready="False", message="health check failed"), NEW, HEALTHY, None, UNTIL,
                               NOW)
    assert seen.outcome == "Regressed" and "health check failed" in seen.reason and NEW in seen.reason


def test_a_revision_that_regressed_after_a_resume_is_escalated_not_paused_again():
    state = watched(annotations={gitops.REGRESSED: NEW})
    verdict = gitops.decide(state, "suspend", "the policy's gitops.flux", KEY)
    assert not verdict.allowed and f"regressed at revision {NEW}" in verdict.reason
    moved_on = gitops.read_owner(FLUX, kustomization(annotations={gitops.REGRESSED: NEW}), repo("main@sha1:ccc"))
    assert gitops.decide(moved_on, "suspend", "the policy's gitops.flux", KEY).suspend


def test_argocd_health_is_the_applications_readiness_in_the_watch():
    body = application(automated={"selfHeal": True})
    for health, ready in (("Healthy", True), ("Degraded", False), ("Progressing", None)):
        body["status"]["health"] = {"status": health}
        assert gitops.read_owner(ARGO, body).ready is ready


def test_a_helmrelease_is_paused_and_resumed_through_its_spec_suspend_like_a_kustomization():
    helm = gitops.Owner("flux", "HelmRelease", "shop", "web")
    body = {"metadata": {"name": "web", "namespace": "shop", "annotations": {}},
            "spec": {"interval": "5m", "chart": {"spec": {"chart": "web", "sourceRef": {"kind": "HelmRepository",
                                                                                         "name": "charts"}}}},
            "status": {}}
    state = gitops.read_owner(helm, body)
    assert gitops.decide(state, "suspend", "the policy's gitops.flux", KEY).suspend
    paused = gitops.suspend_patch(state, KEY, "why", NOW, timedelta(hours=1))
    assert paused["spec"] == {"suspend": True} and paused["metadata"]["annotations"][gitops.PAUSED_BY] == KEY
    body["spec"]["suspend"] = True
    body["metadata"]["annotations"] = paused["metadata"]["annotations"]
    assert gitops.resume_patch(gitops.read_owner(helm, body), KEY, unfixed=False)["spec"] == {"suspend": None}


# ---------------------------------------------------------------- settling: a Flux apply in flight at the pause

PAUSED = "2026-01-01T12:00:00Z"  # the pause's paused-at stamp = its reconcile request


def paused_kustomization(handled=None, timeout=None, interval="1m", key=KEY, suspend=True):
    body = kustomization(suspend=suspend, annotations={gitops.PAUSED_BY: key, gitops.RECONCILE_REQUESTED: PAUSED})
    body["spec"]["interval"] = interval
    if timeout:
        body["spec"]["timeout"] = timeout
    if handled:
        body["status"]["lastHandledReconcileAt"] = handled
    return body


def test_the_flux_pause_requests_a_reconcile_stamped_with_the_pause_time_in_the_same_write():
    state = gitops.read_owner(FLUX, kustomization(), repo())
    patch = gitops.suspend_patch(state, KEY, "why", NOW, timedelta(hours=1))
    notes = patch["metadata"]["annotations"]
    assert patch["spec"] == {"suspend": True}
    assert notes[gitops.RECONCILE_REQUESTED] == notes[gitops.PAUSED_AT] == gitops.stamp(NOW) == PAUSED
    argo = gitops.suspend_patch(gitops.read_owner(ARGO, application(automated={"prune": True})), KEY, "why", NOW,
                                timedelta(hours=1))
    assert gitops.RECONCILE_REQUESTED not in argo["metadata"]["annotations"]


def test_settled_once_the_kustomization_handled_the_pause_request():
    seen = gitops.settle(FLUX, paused_kustomization(handled=PAUSED), KEY, PAUSED, NOW, NOW + timedelta(seconds=4))
    assert seen.state == "settled" and PAUSED in seen.reason and seen.requeue_after is None


def test_a_later_request_handled_also_settles_it_but_an_older_one_does_not():
    body = paused_kustomization(handled="2026-01-01T12:00:03.123456789Z")
    body["metadata"]["annotations"][gitops.RECONCILE_REQUESTED] = "2026-01-01T12:00:03.123456789Z"  # over ours
    later = gitops.settle(FLUX, body, KEY, PAUSED, NOW, NOW + timedelta(seconds=4))
    older = gitops.settle(FLUX, paused_kustomization(handled="2026-01-01T11:40:00Z"), KEY, PAUSED, NOW,
                          NOW + timedelta(seconds=4))
    odd = gitops.settle(FLUX, paused_kustomization(handled="by-hand"), KEY, PAUSED, NOW, NOW + timedelta(seconds=4))
    assert later.state == "settled"
    assert older.state == "waiting" and odd.state == "waiting"


def test_an_older_marker_waits_with_a_requeue_of_a_few_seconds_naming_the_deadline():
    seen = gitops.settle(FLUX, paused_kustomization(handled="2026-01-01T11:40:00Z", timeout="30s"), KEY, PAUSED,
                         NOW, NOW + timedelta(seconds=5))
    assert seen.state == "waiting" and seen.requeue_after == gitops.SETTLE_EVERY
    assert "until 2026-01-01T12:00:30Z" in seen.reason
    near = gitops.settle(FLUX, paused_kustomization(timeout="30s"), KEY, PAUSED, NOW, NOW + timedelta(seconds=29))
    assert near.state == "waiting" and near.requeue_after == 1.0, "never sleeps past the bound"


def test_the_bound_is_the_kustomizations_timeout_when_set():
    body = paused_kustomization(timeout="20s", interval="10m")
    assert gitops.settle(FLUX, body, KEY, PAUSED, NOW, NOW + timedelta(seconds=19)).state == "waiting"
    passed = gitops.settle(FLUX, body, KEY, PAUSED, NOW, NOW + timedelta(seconds=20))
    assert passed.state == "unsettled" and "within 20s" in passed.reason and "acting anyway" in passed.reason


def test_without_a_timeout_the_bound_is_the_interval_plus_15_seconds():
    body = paused_kustomization(interval="30s")
    assert gitops.settle_bound(body["spec"]) == timedelta(seconds=45)
    assert gitops.settle(FLUX, body, KEY, PAUSED, NOW, NOW + timedelta(seconds=44)).state == "waiting"
    assert gitops.settle(FLUX, body, KEY, PAUSED, NOW, NOW + timedelta(seconds=45)).state == "unsettled"


def test_the_bound_is_capped_at_two_minutes():
    assert gitops.settle_bound(paused_kustomization(timeout="10m")["spec"]) == timedelta(minutes=2)
    assert gitops.settle_bound(paused_kustomization(interval="1h")["spec"]) == timedelta(minutes=2)
    assert gitops.settle(FLUX, paused_kustomization(interval="1h"), KEY, PAUSED, NOW,
                         NOW + timedelta(minutes=2)).state == "unsettled"


def test_a_helmrelease_and_an_argocd_application_are_not_waited_on():
    helm = gitops.Owner("flux", "HelmRelease", "shop", "web")
    assert not gitops.settles(helm) and not gitops.settles(ARGO) and gitops.settles(FLUX)
    assert gitops.settle(helm, None, KEY, PAUSED, NOW, NOW).state == "settled"
    assert gitops.settle(ARGO, application(), KEY, PAUSED, NOW, NOW).state == "settled"


def test_a_pause_lost_while_waiting_is_not_acted_on():
    resumed = gitops.settle(FLUX, paused_kustomization(suspend=False), KEY, PAUSED, NOW, NOW)
    taken = gitops.settle(FLUX, paused_kustomization(key="shop/other"), KEY, PAUSED, NOW, NOW)
    gone = gitops.settle(FLUX, None, KEY, PAUSED, NOW, NOW)
    assert resumed.state == taken.state == gone.state == "lost"
    assert "no longer paused by this remediation" in resumed.reason and "gone" in gone.reason


def test_the_fix_is_undone_when_every_declared_field_is_back_at_gits_value():
    changes = {"spec.template.spec.containers[app].image": {"before": "web:bad", "after": "web:good"},
               "spec.replicas": {"before": 2, "after": 3}, "metadata.annotations[x]": {"before": "a", "after": "b"}}
    declared = gitops.declared_fields(changes)
    assert declared == {"spec.replicas": "2", "spec.template.spec.containers[app].image": "web:bad"}
    back = {"spec.replicas": 2, "spec.template.spec.containers[app].image": "web:bad"}
    assert "image web:bad" in gitops.undone(declared, back)
    assert gitops.undone(declared, {**back, "spec.replicas": 3}) is None, "part of the fix still stands"
    assert gitops.undone({}, back) is None and gitops.undone(declared, None) is None


def test_the_hold_resumes_unfixed_and_says_undone_when_the_fix_was_undone_and_keeps_it_otherwise():
    state = gitops.read_owner(FLUX, kustomization(annotations={gitops.PAUSED_BY: KEY,
                                                               gitops.PAUSED_REVISION: "main@sha1:aaa"}), repo())
    declared = {"spec.template.spec.containers[app].image": "web:bad"}
    until = NOW + timedelta(minutes=10)
    undone = gitops.hold(state, KEY, until, NOW, "Succeeded", declared,
                         {"spec.template.spec.containers[app].image": "web:bad"})
    assert undone.resume and undone.unfixed and undone.undone and "undone" in undone.reason
    kept = gitops.hold(state, KEY, until, NOW, "Succeeded", declared,
                       {"spec.template.spec.containers[app].image": "web:good"})
    assert not kept.resume


def test_a_handled_request_from_before_the_pause_never_settles_it_even_if_its_time_is_later():
    # a laptop clock ahead, or a tenant's `reconcile.fluxcd.io/requestedAt: 2099-...`: Flux copied it to
    # lastHandledReconcileAt before the pause, and the pause's own request (in the annotation) is not handled yet
    for before in ("2099-01-01T00:00:00Z", "2026-01-01T12:00:00.500Z", "2026-01-01T12:01:00Z"):
        seen = gitops.settle(FLUX, paused_kustomization(handled=before), KEY, PAUSED, NOW, NOW + timedelta(seconds=4))
        assert seen.state == "waiting", before


def test_a_later_request_written_over_the_pauses_settles_it_once_handled():
    body = paused_kustomization(handled="2026-01-01T12:00:03.123456789Z")
    body["metadata"]["annotations"][gitops.RECONCILE_REQUESTED] = "2026-01-01T12:00:03.123456789Z"  # flux reconcile
    assert gitops.settle(FLUX, body, KEY, PAUSED, NOW, NOW + timedelta(seconds=4)).state == "settled"
    body["status"]["lastHandledReconcileAt"] = "2026-01-01T11:59:00Z"
    assert gitops.settle(FLUX, body, KEY, PAUSED, NOW, NOW + timedelta(seconds=4)).state == "waiting"


def test_a_fix_undone_is_told_even_when_gits_value_is_longer_than_a_stored_field():
    from remediator.api.models import GitopsState

    args = [f"--flag-{i}=some-long-value-{i}" for i in range(20)]  # a JVM's or a proxy's args run long
    changes = {"spec.template.spec.containers[app].args": {"before": args, "after": args[:1]},
               "spec.template.spec.containers[app].image": {"before": "web:bad", "after": "web:good"}}
    held = GitopsState(tool="flux", kind="Kustomization", namespace="flux-system", name="apps", mode="suspend",
                       declared=gitops.declared_fields(changes))
    back = {"spec.template.spec.containers[app].args": args, "spec.template.spec.containers[app].image": "web:bad"}
    assert gitops.undone(held.declared, back) is not None, "stored as kept: a cut value never matches again"
    assert gitops.undone(held.declared, {**back, "spec.template.spec.containers[app].args": args[:1]}) is None


def test_a_target_kind_without_a_rollout_status_is_not_judged_gone_after_the_resume():
    assert gitops.workload_health("Pod", {}) == (True, "Pod: no rollout to judge"), "a Pod target is not read"
    assert gitops.workload_health("Rollout", {"status": {"observedGeneration": "4"}, "metadata": {"generation": 4}})[0]
    assert gitops.workload_health("Rollout", None) == (False, "Rollout is gone")
    assert gitops.workload_health("Deployment", None) == (False, "Deployment is gone")


def test_a_request_dated_ahead_of_now_does_not_settle_it_even_when_written_over_the_pauses():
    # a tenant writes back, over the pause's request, the 2099 request Flux handled before the pause
    body = paused_kustomization(handled="2099-01-01T00:00:00Z")
    body["metadata"]["annotations"][gitops.RECONCILE_REQUESTED] = "2099-01-01T00:00:00Z"
    assert gitops.settle(FLUX, body, KEY, PAUSED, NOW, NOW + timedelta(seconds=4)).state == "waiting"
    assert gitops.settle(FLUX, body, KEY, PAUSED, NOW, NOW + timedelta(minutes=5)).state == "unsettled"
