"""core/plan/autoscalers.py: raise an HPA/ScaledObject under a lease, restore it or keep a human's edit, VPA."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from datetime import UTC, datetime, timedelta

from remediator.api.models import ScaleParams
from remediator.core.plan import autoscalers as plan

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)
HOLDER = plan.LeaseHolder("shop/web-incident", "uid-1", "scale-0-abc")


def hpa(min_replicas=2, max_replicas=3, annotations=None) -> plan.Autoscaler:
    return plan.Autoscaler("HorizontalPodAutoscaler", "web", {"minReplicas": min_replicas,
                                                              "maxReplicas": max_replicas},
                           max_replicas, annotations or {})


def scaled_object(paused=None, annotations=None) -> plan.Autoscaler:
    return plan.Autoscaler("ScaledObject", "web", {plan.PAUSED_REPLICAS: paused}, 10, annotations or {})


def leased(scaler: plan.Autoscaler, values: dict, live: dict) -> plan.Autoscaler:
    raised = plan.plan_raise(scaler, 3, ScaleParams(max_replicas=8, step=2), 8, HOLDER, LATER)
    assert raised.values == values
    kind_values = {**scaler.values, **live}
    return plan.Autoscaler(scaler.kind, scaler.name, kind_values, scaler.max_replicas, raised.annotations)


def test_scale_raises_the_hpa_floor_and_its_max_only_when_the_policy_bounds_allow():
    bounded = plan.plan_raise(hpa(), 3, ScaleParams(max_replicas=8, step=2), 6, HOLDER, LATER)
    assert bounded.values == {"minReplicas": 5, "maxReplicas": 5}
    assert "HorizontalPodAutoscaler web raised under a lease" in bounded.reason
    assert json.loads(bounded.annotations[plan.LEASE_ORIGINAL]) == {"minReplicas": 2, "maxReplicas": 3}
    assert bounded.annotations[plan.LEASE_REMEDIATION] == "shop/web-incident"
    unbounded = plan.plan_raise(hpa(), 2, ScaleParams(max_replicas=8, step=2), None, HOLDER, LATER)
    assert unbounded.values == {"minReplicas": 3, "maxReplicas": 3}
    assert "the policy sets no maxReplicas bound" in unbounded.reason


def test_a_step_that_says_refuse_fails_with_the_reason_instead_of_a_direct_scale():
    refused = plan.plan_raise(hpa(), 3, ScaleParams(max_replicas=8, autoscaler="refuse"), 8, HOLDER, LATER)
    assert refused.refused and "autoscaled by HorizontalPodAutoscaler web" in refused.reason


def test_another_remediations_lease_is_never_overwritten():
    other = plan.LeaseHolder("shop/other", "uid-2", "k")
    first = plan.plan_raise(hpa(), 3, ScaleParams(max_replicas=8, step=2), 8, other, LATER)
    second = plan.plan_raise(hpa(5, 5, first.annotations), 5, ScaleParams(max_replicas=8, step=2), 8, HOLDER, LATER)
    assert second.refused and second.held and "lease of Remediation shop/other" in second.reason


def test_a_second_raise_by_the_same_remediation_keeps_the_first_originals():
    first = plan.plan_raise(hpa(), 3, ScaleParams(max_replicas=8, step=2), 8, HOLDER, LATER)
    again = plan.plan_raise(hpa(5, 5, first.annotations), 5, ScaleParams(max_replicas=8, step=2), 8, HOLDER, LATER)
    assert again.values == {"minReplicas": 7, "maxReplicas": 7}
    assert json.loads(again.annotations[plan.LEASE_ORIGINAL]) == {"minReplicas": 2, "maxReplicas": 3}


def test_the_lease_waits_while_the_remediation_is_open_and_unexpired():
    scaler = leased(hpa(), {"minReplicas": 5, "maxReplicas": 5}, {"minReplicas": 5, "maxReplicas": 5})
    assert plan.plan_restore(scaler, "Verifying", "uid-1", NOW).op == "wait"


def test_the_hpa_is_restored_when_the_remediation_ends_or_the_lease_expires_or_it_is_gone():
    scaler = leased(hpa(), {"minReplicas": 5, "maxReplicas": 5}, {"minReplicas": 5, "maxReplicas": 5})
    for phase, uid, now, why in (("Succeeded", "uid-1", NOW, "ended (Succeeded)"),
                                 ("Verifying", "uid-1", LATER, "expired"),
                                 (None, None, NOW, "is gone"),
                                 ("Verifying", "uid-of-a-new-one", NOW, "is gone")):
        restore = plan.plan_restore(scaler, phase, uid, now)
        assert restore.op == "restore" and restore.values == {"minReplicas": 2, "maxReplicas": 3}
        assert why in restore.reason


def test_a_human_edit_during_the_lease_is_kept_and_said():
    scaler = leased(hpa(), {"minReplicas": 5, "maxReplicas": 5}, {"minReplicas": 4, "maxReplicas": 5})
    kept = plan.plan_restore(scaler, "Succeeded", "uid-1", NOW)
    assert kept.op == "keep" and kept.values is None
    assert "someone changed it during the lease (minReplicas 5 -> 4); their values stay" in kept.reason


def test_keda_paused_replicas_is_leased_and_removed_again():
    scaler = leased(scaled_object(), {plan.PAUSED_REPLICAS: "5"}, {plan.PAUSED_REPLICAS: "5"})
    restore = plan.plan_restore(scaler, "Failed", "uid-1", NOW)
    assert restore.op == "restore" and restore.values == {plan.PAUSED_REPLICAS: None}
    edited = leased(scaled_object(), {plan.PAUSED_REPLICAS: "5"}, {plan.PAUSED_REPLICAS: "9"})
    assert plan.plan_restore(edited, "Failed", "uid-1", NOW).op == "keep"


def test_forged_lease_annotations_are_dropped_without_writing_their_values():
    forged = hpa(5, 5, {plan.LEASE_REMEDIATION: "shop/x", plan.LEASE_EXPIRES: "2026-12-01T11:00:00Z",
                        plan.LEASE_ORIGINAL: json.dumps({"minReplicas": "9999999", "maxReplicas": 3}),
                        plan.LEASE_WRITTEN: json.dumps({"minReplicas": 5, "maxReplicas": 5})})
    assert plan.plan_restore(forged, None, None, NOW).op == "drop"
    assert plan.plan_restore(hpa(5, 5, {plan.LEASE_REMEDIATION: "shop/x"}), None, None, NOW).op == "drop"


def test_two_autoscalers_on_one_workload_are_refused_not_guessed():
    chosen, problem = plan.choose([hpa()], [scaled_object()])
    assert chosen is None and "2 autoscalers target the workload" in problem
    assert plan.choose([hpa()], [])[0].kind == "HorizontalPodAutoscaler"


def test_raise_memory_is_refused_under_an_active_vpa_and_names_its_max_allowed():
    vpa = plan.Vpa("web", "Auto", [{"containerName": "*", "maxAllowed": {"memory": "512Mi"}}])
    reason = plan.vpa_refusal(vpa, "app")
    assert "VerticalPodAutoscaler web (updateMode Auto)" in reason and "maxAllowed memory (now 512Mi)" in reason
    assert plan.vpa_refusal(plan.Vpa("web", "Off"), "app") is None
    assert plan.vpa_refusal(plan.Vpa("web", "Initial"), "app") is None
    assert plan.vpa_refusal(plan.Vpa("web", "Recreate", [{"containerName": "app", "mode": "Off"}]), "app") is None
    cpu_only = plan.Vpa("web", "Auto", [{"containerName": "app", "controlledResources": ["cpu"]}])
    assert plan.vpa_refusal(cpu_only, "app") is None


def test_simulate_says_a_scale_step_raises_the_hpa_under_a_lease(tmp_path, capsys):
    from remediator.cli import main

    root = Path(__file__).resolve().parents[2]
    alert = {"status": "firing", "labels": {"alertname": "HighLatency", "deployment": "api", "namespace": "shop"},
             "annotations": {}, "startsAt": "2026-11-25T11:58:00Z", "endsAt": "0001-01-01T00:00:00Z",
             "fingerprint": "f00d"}
    (tmp_path / "alert.json").write_text(json.dumps(alert))
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump({
        "apiVersion": "remediator.dev/v1alpha1", "kind": "RemediationPolicy", "metadata": {"name": "p"},
        "spec": {"bounds": [{"maxReplicas": 6}]}}))
    args = ["simulate", "--alert", str(tmp_path / "alert.json"), "--runbooks", str(root / "runbooks"),
            "--policy", str(tmp_path / "policy.yaml"), "--replicas", "3", "--now", "2026-11-25T12:00:00Z",
            "--output", "json"]
    assert main([*args, "--hpa", "2:3"]) == 0
    notes = json.loads(capsys.readouterr().out)["alerts"][0]["guards"]["notes"]
    assert any("the scale goes through the HPA, not the workload: HorizontalPodAutoscaler (given) raised under a "
               "lease until 2026-11-25T13:00:00Z: minReplicas 2 -> 5, maxReplicas 3 -> 5" in n for n in notes), notes
    assert main(args) == 0
    assert not any("HPA" in n for n in json.loads(capsys.readouterr().out)["alerts"][0]["guards"]["notes"])
