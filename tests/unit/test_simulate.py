"""`remediator simulate`: what the operator would do with an alert, decided offline from the real library files."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from remediator.api.models import RemediationSpec
from remediator.cli import main
from remediator.core.report import simulation
from remediator.core.plan.guard_inputs import recent_failures

ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = str(ROOT / "runbooks")
POLICIES = str(ROOT / "policies")
DEFAULT_POLICY = str(ROOT / "policies" / "default.yaml")
NOW = "2026-11-25T12:00:00Z"


def alert(alertname: str = "HighErrorRate", deployment: str | None = "web", namespace: str | None = "shop",
          status: str = "firing", fingerprint: str = "f00d", starts_at: str = "2026-11-25T11:58:00Z") -> dict:
    labels = {"alertname": alertname, "severity": "page"}
    if deployment is not None:
        labels["deployment"] = deployment
    if namespace is not None:
        labels["namespace"] = namespace
    return {"status": status, "labels": labels, "annotations": {"summary": f"{alertname} on {deployment}"},
            "startsAt": starts_at, "endsAt": "0001-01-01T00:00:00Z", "fingerprint": fingerprint}


def payload(*alerts: dict, status: str = "firing") -> dict:
    return {"version": "4", "status": status, "receiver": "remediator", "groupKey": "{}:{}",
            "truncatedAlerts": 0, "externalURL": "http://alertmanager.local", "alerts": list(alerts)}


def remediation_export(name: str, runbook: str, deployment: str, phase: str, started: str,
                       finished: str | None = None, acted: bool = True, namespace: str = "shop") -> dict:
    status = {"phase": phase, "startedAt": started,
              "steps": [{"index": 0, "name": "s", "action": "rollback", "idempotencyKey": "k",
                         "phase": "Succeeded" if acted else "Skipped"}]}
    if finished:
        status["finishedAt"] = finished
    return {"apiVersion": "remediator.dev/v1alpha1", "kind": "Remediation",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": started},
            "spec": {"signal": {"source": "alertmanager", "name": "HighErrorRate"},
                     "runbook": {"name": runbook, "namespace": namespace},
                     "target": {"kind": "Deployment", "namespace": namespace, "name": deployment}},
            "status": status}


ROLLOUT = [{"kind": "rollout", "object": "Deployment/web", "namespace": "shop", "at": "2026-11-25T11:54:20Z",
            "revision": "7", "what": "Deployment/web revision 7 rolled out: image web:1.4 → web:1.5"}]


@pytest.fixture
def write(tmp_path):
    def write(name: str, content) -> str:
        path = tmp_path / name
        if isinstance(content, str):
            path.write_text(content)
        elif name.endswith(".json"):
            path.write_text(json.dumps(content))
        else:
            path.write_text(yaml.safe_dump_all(content))
        return str(path)
    return write


@pytest.fixture
def simulate(write, capsys):
    """Run the command as a user would; returns the JSON report (exit code 0 asserted)."""
    def run(body, *args: str) -> dict:
        code = main(["simulate", "--alert", write("alert.json", body), "--now", NOW, "--output", "json", *args])
        out = capsys.readouterr().out
        assert code == 0, out
        return json.loads(out)
    return run


def only(report: dict) -> dict:
    assert len(report["alerts"]) == 1, report["alerts"]
    return report["alerts"][0]


# ---------------------------------------------------------------- matching and target


def test_the_bad_rollout_alert_picks_the_rollback_runbook_and_explains_every_other_candidate(simulate):
    sim = only(simulate(payload(alert()), "--runbooks", RUNBOOKS, "--replicas", "4"))
    assert sim["runbook"] == "shop/bad-rollout-rollback"
    candidates = {c["runbook"]: c for c in sim["match"]["candidates"]}
    assert set(candidates) == {"shop/bad-rollout-rollback", "shop/crashloop-restart", "shop/high-latency-scale-out",
                               "shop/oomkilled-raise-memory", "shop/node-notready-cordon-drain"}
    assert candidates["shop/bad-rollout-rollback"]["chosen"]
    assert "alert matchers" in candidates["shop/bad-rollout-rollback"]["reason"]
    assert "podState trigger does not take alertmanager signals" in candidates["shop/crashloop-restart"]["reason"]
    assert "alertname='HighLatency' fails" in candidates["shop/high-latency-scale-out"]["reason"]


def test_the_target_is_rendered_from_the_alert_labels_in_the_runbooks_namespace(simulate):
    sim = only(simulate(payload(alert(deployment="checkout")), "--runbooks", RUNBOOKS, "--replicas", "2"))
    assert sim["target"] == "Deployment/shop/checkout"
    assert sim["remediation"].startswith("shop/am-")


def test_runbooks_placed_in_another_namespace_do_not_take_the_alert_and_say_why(simulate):
    sim = only(simulate(payload(alert()), "--runbooks", RUNBOOKS, "--namespace", "payments"))
    assert sim["outcome"] == "unmatched" and sim["runbook"] is None
    assert all("lives in namespace 'payments'" in c["reason"] for c in sim["match"]["candidates"])


def test_an_alert_no_runbook_matches_does_nothing_with_every_candidates_reason(simulate):
    sim = only(simulate(payload(alert(alertname="DiskFull")), "--runbooks", RUNBOOKS))
    assert sim["outcome"] == "unmatched"
    assert "no Runbook matches" in sim["summary"]
    assert len(sim["match"]["candidates"]) == 5 and not any(c["chosen"] for c in sim["match"]["candidates"])
    assert sim["plan"] == [] and sim["guards"] is None


def test_an_alert_without_a_namespace_label_is_ignored_as_the_operator_would(simulate):
    sim = only(simulate(payload(alert(namespace=None)), "--runbooks", RUNBOOKS))
    assert sim["outcome"] == "unmatched" and "no namespace label" in sim["summary"]


# ---------------------------------------------------------------- plan, risk, approval


def test_a_declared_high_rollback_after_a_rollout_scores_high_and_needs_an_approver_under_the_default_policy(
        simulate, write):
    sim = only(simulate(payload(alert()), "--runbooks", RUNBOOKS, "--policy", DEFAULT_POLICY, "--replicas", "4",
                        "--changes", write("changes.json", ROLLOUT)))
    assert [(s["name"], s["skip"]) for s in sim["plan"]] == [("rollback", False), ("restart", False)]
    # 4 replicas, the default RollingUpdate 25%/25%: 1 unavailable + 1 surge = 2 pods at once (+5, half of them)
    assert sim["risk"]["level"] == "high" and sim["risk"]["score"] == 70
    assert "+60 declared step risk high (base)" in sim["risk"]["reasons"]
    assert "-10 probable cause rollout fits rollback" in sim["risk"]["reasons"]
    assert sim["approval"]["approvers"] == 1 and sim["approval"]["needed"] is True
    assert sim["outcome"] == "awaitApproval" and sim["phase"] == "AwaitingApproval"


def test_the_rollback_of_the_library_is_skipped_when_nothing_changed_and_the_restart_is_planned(simulate, write):
    sim = only(simulate(payload(alert()), "--runbooks", RUNBOOKS, "--policy", DEFAULT_POLICY, "--replicas", "4",
                        "--changes", write("changes.json", [])))
    assert sim["probableCause"]["kind"] == "none"
    rollback, restart = sim["plan"]
    assert rollback["skip"] and rollback["reason"] == (
        "rollback skipped: probable cause is none, step runs only for rollout")
    assert not restart["skip"] and sim["risk"]["step"] == "restart"


def test_the_probable_cause_is_ranked_from_the_changes_given_with_its_evidence(simulate, write):
    config = {"kind": "configChange", "object": "ConfigMap/web-config", "at": "2026-11-25T11:57:00Z"}
    unrelated = {"kind": "configChange", "object": "ConfigMap/other", "at": "2026-11-25T11:57:30Z"}
    sim = only(simulate(payload(alert()), "--runbooks", RUNBOOKS, "--replicas", "4", "--reference",
                        "ConfigMap/web-config", "--changes", write("changes.json", [*ROLLOUT, config, unrelated])))
    found = sim["probableCause"]
    assert found["kind"] == "rollout" and found["breachStart"] == "2026-11-25T11:58:00Z"
    assert [(c["object"], c["score"]) for c in found["changes"]] == [("Deployment/web", 100),
                                                                     ("ConfigMap/web-config", 80)]
    assert found["summary"].startswith("Deployment/web revision 7 rolled out: image web:1.4 → web:1.5, 3m40s "
                                       "before HighErrorRate began")
    assert found["ignored"] == ["1 change(s) touched neither Deployment/web nor what it references"]


def test_a_change_without_its_time_is_refused_naming_the_entry_and_field(write, capsys):
    code = main(["simulate", "--alert", write("a.json", payload(alert())), "--runbooks", RUNBOOKS,
                 "--changes", write("c.json", [{"kind": "rollout", "object": "Deployment/web"}])])
    assert code == 1
    assert capsys.readouterr().err.strip().endswith("c.json: changes[0].at: required")


def test_a_low_risk_scale_out_acts_alone_when_the_guards_allow_it(simulate):
    sim = only(simulate(payload(alert(alertname="HighLatency", deployment="api")), "--runbooks", RUNBOOKS,
                        "--policy", DEFAULT_POLICY, "--replicas", "3"))
    assert sim["runbook"] == "shop/high-latency-scale-out"
    assert sim["risk"]["level"] == "low"
    assert sim["approval"]["needed"] is False and sim["approval"]["defaulted"] is True
    assert sim["guards"]["allowed"] is True and sim["guards"]["podsTouched"] == 0
    assert sim["outcome"] == "act" and "would scale Deployment/shop/api" in sim["summary"]


def test_a_server_dry_run_that_succeeds_scores_the_rollback_high_as_in_the_cluster(simulate, write):
    rolled_out = write("changes.json", ROLLOUT)
    offline = only(simulate(payload(alert()), "--runbooks", RUNBOOKS, "--policy", DEFAULT_POLICY, "--replicas", "4",
                            "--changes", rolled_out))
    assert "+5 no server-side dry run of this action: its effect is less certain" in offline["risk"]["reasons"]
    assert any("cannot run offline" in n for n in offline["risk"]["notes"])
    succeeded = only(simulate(payload(alert()), "--runbooks", RUNBOOKS, "--policy", DEFAULT_POLICY,
                              "--replicas", "4", "--server-dry-run", "succeeded", "--changes", rolled_out))
    assert (offline["risk"]["score"], succeeded["risk"]["score"], succeeded["risk"]["level"]) == (70, 60, "high")
    assert succeeded["approval"]["approvers"] == 1
    assert "risk high (60) needs 1 approval(s)" in succeeded["summary"]


def test_cluster_facts_given_on_the_command_line_are_scored_as_the_operator_scores_them(simulate):
    sim = only(simulate(payload(alert(alertname="HighLatency", deployment="api")), "--runbooks", RUNBOOKS,
                        "--policy", POLICIES, "--replicas", "1", "--namespace-pods", "2",
                        "--namespace-label", "environment=production",
                        "--target-label", "remediator.dev/criticality=high"))
    reasons = sim["risk"]["reasons"]
    assert "+15 production namespace (environment=production)" in reasons
    assert "+10 target criticality high (remediator.dev/criticality)" in reasons
    assert sim["policy"]["name"] == "production-strict"
    assert sim["risk"]["notes"] == [sim["risk"]["notes"][0]], "only the dry run is left unknown"


def test_the_only_replica_of_a_restarted_workload_adds_blast_radius_points(simulate, write):
    restart = yaml.safe_load((ROOT / "runbooks" / "crashloop-restart.yaml").read_text())
    restart["spec"]["triggers"] = [{"alert": {"matchers": [{"name": "alertname", "value": "HighErrorRate"}]}}]
    sim = only(simulate(payload(alert()), "--runbooks", write("restart.yaml", [restart]), "--replicas", "1",
                        "--namespace-pods", "1"))
    assert "+25 blast radius: the workload's only replica +10, 100% of the namespace's pods +15" in \
        sim["risk"]["reasons"]


def test_failed_runs_in_the_history_raise_the_risk(simulate, write):
    history = [remediation_export(f"am-{i}", "bad-rollout-rollback", f"other-{i}", "Failed", "2026-11-25T11:20:00Z",
                                  "2026-11-25T11:30:00Z") for i in range(2)]
    sim = only(simulate(payload(alert()), "--runbooks", RUNBOOKS, "--replicas", "4",
                        "--history", write("history.json", history)))
    assert "+10 2 recent failures of this runbook" in sim["risk"]["reasons"]


def test_steps_tied_to_a_cause_are_skipped_because_the_operator_does_not_know_the_cause(simulate, write):
    ladder = yaml.safe_load((ROOT / "runbooks" / "crashloop-restart.yaml").read_text())
    ladder["metadata"]["name"] = "error-ladder"
    ladder["spec"]["triggers"] = [{"alert": {"matchers": [{"name": "alertname", "value": "HighErrorRate"}]}}]
    ladder["spec"]["steps"][1]["when"] = {"causeKinds": ["rollout"]}
    sim = only(simulate(payload(alert()), "--runbooks", write("ladder.yaml", [ladder]), "--replicas", "4"))
    restart, rollback = sim["plan"]
    assert not restart["skip"] and rollback["skip"]
    assert rollback["reason"] == "rollback skipped: probable cause is unknown, step runs only for rollout"
    assert sim["risk"]["step"] == "restart"


# ---------------------------------------------------------------- policies


def test_the_strict_policy_governs_a_namespace_labelled_production_and_every_policy_says_why(simulate):
    labelled = only(simulate(payload(alert(alertname="HighLatency")), "--runbooks", RUNBOOKS, "--policy", POLICIES,
                             "--replicas", "4", "--namespace-label", "environment=production"))
    assert labelled["policy"]["name"] == "production-strict"
    assert any("policy default: applies" in r for r in labelled["policy"]["reasons"])
    assert any("the most specific of 2" in r for r in labelled["policy"]["reasons"])
    plain = only(simulate(payload(alert(alertname="HighLatency")), "--runbooks", RUNBOOKS, "--policy", POLICIES,
                          "--replicas", "4"))
    assert plain["policy"]["name"] == "default"
    assert any("policy production-strict: does not apply" in r and "environment=production" in r
               for r in plain["policy"]["reasons"])


def test_without_any_policy_the_default_guardrails_and_approval_rules_apply(simulate, write):
    sim = only(simulate(payload(alert()), "--runbooks", RUNBOOKS, "--replicas", "4",
                        "--changes", write("changes.json", ROLLOUT)))
    assert sim["policy"]["name"] is None and "default guardrails" in sim["policy"]["reasons"][-1]
    assert sim["approval"]["defaulted"] is True and sim["approval"]["approvers"] == 1


def test_a_dry_run_policy_only_records_what_it_would_do(simulate, write):
    dry = yaml.safe_load((ROOT / "policies" / "default.yaml").read_text())
    dry["metadata"]["name"] = "everything-dry"
    dry["spec"]["mode"] = "dryRun"
    sim = only(simulate(payload(alert(alertname="HighLatency")), "--runbooks", RUNBOOKS,
                        "--policy", DEFAULT_POLICY, write("dry.yaml", [dry]), "--replicas", "3"))
    assert sim["policy"]["mode"] == "dryRun"
    assert any("mode dryRun because policy everything-dry is dryRun" in r for r in sim["policy"]["reasons"])
    assert sim["outcome"] == "dryRun" and "would scale" in sim["summary"]


# ---------------------------------------------------------------- guards


def test_unknown_replicas_block_the_blast_radius_guard_and_the_report_says_so(simulate):
    sim = only(simulate(payload(alert()), "--runbooks", RUNBOOKS, "--policy", DEFAULT_POLICY))
    guards = sim["guards"]
    assert guards["replicas"] is None and guards["allowed"] is False
    blocked = [d for d in guards["decisions"] if not d["allowed"]]
    assert [d["guard"] for d in blocked] == ["blastRadius"]
    assert any("blast-radius guard blocks on unknown replicas" in n for n in guards["notes"])
    assert sim["outcome"] == "skip" and "blast radius" in sim["summary"]


def test_exported_history_makes_the_cooldown_block_a_second_rollback(simulate, write):
    history = {"apiVersion": "v1", "kind": "List", "items": [remediation_export(
        "am-earlier", "bad-rollout-rollback", "web", "Succeeded", "2026-11-25T11:40:00Z", "2026-11-25T11:45:00Z")]}
    sim = only(simulate(payload(alert()), "--runbooks", RUNBOOKS, "--policy", DEFAULT_POLICY, "--replicas", "4",
                        "--history", write("history.json", history)))
    blocked = {d["guard"]: d["reason"] for d in sim["guards"]["decisions"] if not d["allowed"]}
    assert set(blocked) == {"cooldown", "rate"}
    assert "cooldown 30m, next allowed at 2026-11-25T12:15:00Z" in blocked["cooldown"]
    assert sim["outcome"] == "skip" and sim["phase"] == "Skipped"


def test_many_failing_targets_in_the_history_hold_off_as_a_storm(simulate, write):
    history = [remediation_export(f"am-{i}", "crashloop-restart", f"svc-{i}", "Acting", "2026-11-25T11:58:00Z",
                                  acted=False) for i in range(12)]
    sim = only(simulate(payload(alert()), "--runbooks", RUNBOOKS, "--policy", DEFAULT_POLICY, "--replicas", "4",
                        "--history", write("history.json", history)))
    blocked = {d["guard"] for d in sim["guards"]["decisions"] if not d["allowed"]}
    assert "stormHoldoff" in blocked and "concurrency" in blocked


def test_a_delivery_whose_remediation_already_exists_is_a_duplicate(simulate, write):
    first = simulate(payload(alert()), "--runbooks", RUNBOOKS, "--replicas", "4")
    name = only(first)["remediation"].split("/")[1]
    history = [remediation_export(name, "bad-rollout-rollback", "web", "Verifying", "2026-11-25T11:58:30Z")]
    again = only(simulate(payload(alert()), "--runbooks", RUNBOOKS, "--replicas", "4",
                          "--history", write("history.json", history)))
    assert again["outcome"] == "duplicate" and "phase Verifying" in again["summary"]


def test_a_resolved_alert_would_cancel_a_remediation_that_has_not_acted(simulate, write):
    name = only(simulate(payload(alert()), "--runbooks", RUNBOOKS))["remediation"].split("/")[1]
    history = [remediation_export(name, "bad-rollout-rollback", "web", "AwaitingApproval", "2026-11-25T11:58:30Z",
                                  acted=False)]
    sim = only(simulate(payload(alert(status="resolved"), status="resolved"), "--runbooks", RUNBOOKS,
                        "--history", write("history.json", history)))
    assert sim["outcome"] == "resolved" and "cancel" in sim["summary"]


# ---------------------------------------------------------------- the command


def test_a_single_alert_object_without_a_status_is_taken_as_firing(simulate):
    bare = alert()
    del bare["status"]
    assert only(simulate(bare, "--runbooks", RUNBOOKS, "--replicas", "4"))["status"] == "firing"


def test_each_alert_of_a_payload_gets_its_own_simulation(simulate):
    report = simulate(payload(alert(), alert(alertname="HighLatency", deployment="api", fingerprint="b")),
                      "--runbooks", RUNBOOKS, "--policy", DEFAULT_POLICY, "--replicas", "4")
    assert [a["runbook"] for a in report["alerts"]] == ["shop/bad-rollout-rollback", "shop/high-latency-scale-out"]
    assert report["actsOnNothing"] is True and report["now"] == NOW


def test_the_text_report_shows_match_target_plan_risk_approval_and_guards(write, capsys):
    code = main(["simulate", "--alert", write("a.json", payload(alert())), "--runbooks", RUNBOOKS,
                 "--policy", DEFAULT_POLICY, "--now", NOW, "--changes", write("changes.json", ROLLOUT)])
    out = capsys.readouterr().out
    assert code == 0
    for needle in ("acts on nothing", "outcome: skip", "chosen   shop/bad-rollout-rollback",
                   "rejected shop/crashloop-restart", "target: Deployment/shop/web", "policy: default",
                   "probable cause: rollout: Deployment/web revision 7 rolled out: image web:1.4 → web:1.5, 3m40s",
                   "100/100 Deployment/web revision 7", "0. [run ] rollback", "1. [run ] restart",
                   "risk (step rollback): 65 high", "approval (high risk)",
                   "guards (step rollback, rollback; replicas unknown", "BLOCKED blast radius"):
        assert needle in out, needle


def test_an_invalid_runbook_file_exits_one_with_the_validation_messages(write, capsys):
    bad = yaml.safe_load((ROOT / "runbooks" / "high-latency-scale-out.yaml").read_text())
    bad["spec"]["steps"][0]["scale"]["minReplicas"] = 50
    path = write("bad.yaml", [bad])
    code = main(["simulate", "--alert", write("a.json", payload(alert())), "--runbooks", RUNBOOKS, path])
    assert code == 1
    assert capsys.readouterr().out.splitlines() == [(
        f"{path}: doc 1 (Runbook/high-latency-scale-out): spec.steps[0].scale: "
        "minReplicas must be <= maxReplicas (minReplicas 50 > maxReplicas 10)")]


@pytest.mark.parametrize("content, says", [
    ("{not json", "not JSON"),
    (json.dumps({"version": "3", "status": "firing", "alerts": []}), "not an Alertmanager payload: version"),
    (json.dumps({"labels": {}, "startsAt": NOW}), "not an alert: labels"),
])
def test_an_unreadable_alert_file_exits_one_saying_why(write, capsys, content, says):
    assert main(["simulate", "--alert", write("a.json", content), "--runbooks", RUNBOOKS]) == 1
    assert says in capsys.readouterr().out


# ---------------------------------------------------------------- the facts the operator derives too (core.guard_inputs)


def test_exported_remediations_become_history_and_only_recent_failures_count():
    done = simulation.past_remediation(remediation_export(
        "a", "rb", "web", "Succeeded", "2026-11-25T11:40:00Z", "2026-11-25T11:45:00Z"))
    assert (done.succeeded, done.acted, done.target_key) == (True, True, "Deployment/shop/web")
    past = [simulation.past_remediation(remediation_export(
        f"f{i}", "rb", "web", "Failed", f"2026-11-25T1{i}:00:00Z", f"2026-11-25T1{i}:10:00Z")) for i in range(3)]
    spec = RemediationSpec.model_validate({
        "signal": {"source": "alertmanager", "name": "x"}, "runbook": {"name": "rb", "namespace": "shop"},
        "target": {"kind": "Deployment", "namespace": "shop", "name": "web"}})
    now = datetime(2026, 11, 25, 12, 30, tzinfo=UTC)
    assert recent_failures(past, spec, now) == 1


def test_the_scale_out_runbook_under_production_strict_is_gated_as_in_the_loop_not_skipped_as_unknown(simulate):
    sim = only(simulate(payload(alert("HighLatency")), "--runbooks", RUNBOOKS, "--policy", POLICIES,
                        "--namespace-label", "environment=production", "--replicas", "4"))
    assert sim["runbook"] == "shop/high-latency-scale-out" and sim["policy"]["name"] == "production-strict"
    bounds = next(d for d in sim["guards"]["decisions"] if d["guard"] == "bounds")
    assert bounds["allowed"], bounds["reason"]
    assert sim["guards"]["allowed"] and sim["guards"]["podsTouched"] == 0
    assert "scale: 4 +2 -> 6" in sim["guards"]["notes"]
    assert sim["outcome"] != "skip" and "unknown" not in sim["phaseReason"], sim["phaseReason"]


def test_remediations_created_after_the_simulated_time_are_not_in_its_history(simulate, write):
    """An export taken later holds incidents that did not exist yet at --now: they must not count (here: a storm)."""
    later = [remediation_export(f"am-{i}", "crashloop-restart", f"svc-{i}", "Acting", "2026-11-25T12:01:00Z",
                                acted=False) for i in range(12)]
    report = simulate(payload(alert()), "--runbooks", RUNBOOKS, "--policy", DEFAULT_POLICY, "--replicas", "4",
                      "--history", write("history.json", later))
    sim = only(report)
    assert [d["guard"] for d in sim["guards"]["decisions"] if not d["allowed"]] == []
    assert any("12 Remediation(s) in the history were created after 2026-11-25T12:00:00Z" in n
               for n in report["notes"]), report["notes"]
