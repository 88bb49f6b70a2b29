"""The maturity report: figures from Remediation records, DORA bands at their edges, AIOps levels with evidence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest

from remediator.core.report import dora_keys, maturity
from remediator.core.report.maturity import Inventory, Record, Scope
from remediator.core.durations import format_time

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def z(moment: datetime) -> str:
    return format_time(moment)


def step(index: int = 0, phase: str = "Succeeded", applied: bool = True, action: str = "restartRollout") -> dict:
    return {"index": index, "name": f"s{index}", "action": action, "idempotencyKey": f"k{index}", "phase": phase,
            **({"appliedAt": z(T0)} if applied else {})}


def obj(name: str, phase: str = "Succeeded", *, ttr: float | None = 60.0, steps: list[dict] | None = None,
        approval: dict | None = None, source: str = "alertmanager", namespace: str = "shop",
        runbook: str = "restart", started: datetime = T0, risk_reasons: bool = True) -> dict:
    status: dict = {"phase": phase, "startedAt": z(started),
                    "risk": {"score": 20, "level": "low", "reasons": ["declared low"] if risk_reasons else []}}
    if phase in ("Succeeded", "Failed", "Escalated", "Denied", "Cancelled", "Skipped", "Expired"):
        status["finishedAt"] = z(started + timedelta(seconds=ttr or 60))
    if phase == "Succeeded":
        status["timeToRecoverSeconds"] = ttr
    if steps is None:
        steps = [step(phase="Succeeded" if phase == "Succeeded" else "Failed")] if phase in (
            "Succeeded", "Escalated") else []
    status["steps"] = steps
    if approval is not None:
        status["approval"] = approval
    return {"metadata": {"name": name, "namespace": namespace, "creationTimestamp": z(started)},
            "spec": {"signal": {"source": source, "name": "HighErrorRate"},
                     "runbook": {"name": runbook, "namespace": namespace},
                     "target": {"kind": "Deployment", "namespace": namespace, "name": "web"}},
            "status": status}


def caused(o: dict, revision: str = "7", at: datetime = T0 - timedelta(hours=1)) -> dict:
    """The incident's probable cause names a rollout of shop/Deployment/web."""
    o["status"]["probableCause"] = {"kind": "rollout", "changes": [
        {"kind": "rollout", "object": "Deployment/web", "at": z(at), "revision": revision, "score": 90}]}
    return o


def reordered(o: dict) -> dict:
    """The adaptive order ran the Runbook's second step first."""
    o["status"]["plan"] = [{"index": 1, "name": "s1", "action": "scale", "risk": "low", "order": 0},
                           {"index": 0, "name": "s0", "action": "restartRollout", "risk": "low", "order": 1}]
    return o


def records(*objects: dict) -> list[Record]:
    return [Record.from_object(o) for o in objects]


def approval(decision: str | None, wait: float = 120.0) -> dict:
    out = {"required": 1, "level": "high", "requestedAt": z(T0)}
    if decision:
        out.update(decision=decision, decidedAt=z(T0 + timedelta(seconds=wait)))
    return out


def succeeded(count: int, ttr: float = 60.0, **kw) -> list[dict]:
    return [obj(f"ok-{i}-{kw.get('runbook', '')}", ttr=ttr, **kw) for i in range(count)]


COVERED = Inventory(workloads=frozenset({("shop", "Deployment", "web"), ("shop", "Deployment", "cart")}),
                    slo_targets=frozenset({("shop", "Deployment", "web")}))


# ---------------------------------------------------------------- DORA band edges


@pytest.mark.parametrize("median, band", [
    (timedelta(minutes=59, seconds=59), "elite"),
    (timedelta(hours=1), "high"),
    (timedelta(hours=23, minutes=59), "high"),
    (timedelta(days=1), "medium"),
    (timedelta(weeks=1), "medium"),
    (timedelta(weeks=1, seconds=1), "low"),
])
def test_time_to_restore_bands_at_their_edges(median, band):
    assert maturity.restore_band(median) == band


@pytest.mark.parametrize("failed, actions, band", [
    (0, 20, "elite"),
    (3, 20, "elite"),      # exactly 15 %
    (31, 200, "high"),     # 15.5 %: between the bands is the lower one
    (4, 25, "high"),       # exactly 16 %
    (3, 10, "high"),       # exactly 30 %
    (31, 100, "medium"),   # exactly 31 %
    (9, 20, "medium"),     # exactly 45 %
    (23, 50, "low"),       # exactly 46 %
    (20, 20, "low"),
])
def test_change_failure_rate_bands_at_their_edges(failed, actions, band):
    assert maturity.failure_band(Fraction(failed, actions)) == band


def test_exactly_one_hour_median_to_restore_places_high_with_what_elite_needs():
    rep = maturity.report(records(*succeeded(5, ttr=3600.0)), COVERED)
    restore = rep.dora[0]
    assert (restore.name, restore.level) == ("time to restore service", "high")
    assert restore.evidence == ["median 1h over 5 incidents (operator 5; p90 1h)"]
    assert restore.missing == ["a median time to restore under 1h"]


def test_three_failed_rollouts_in_twenty_place_the_change_failure_rate_elite_and_four_place_it_high():
    def with_rollouts(bad: int) -> maturity.Report:
        causes = [caused(obj(f"bad-{i}", "Escalated"), revision=str(i)) for i in range(bad)]
        deploys = tuple(dora_keys.Rollout(T0 - timedelta(hours=1), "shop", "Deployment/web", str(i))
                        for i in range(20))
        inventory = Inventory(COVERED.workloads, COVERED.slo_targets, rollouts=deploys, rollouts_known=True)
        return maturity.report(records(*causes), inventory, Scope(T0 - timedelta(days=1), T0 + timedelta(days=1)))
    assert with_rollouts(3).dora[1].level == "elite"
    assert with_rollouts(3).dora[1].evidence == [
        "15 % (3/20) of rollouts led to a degraded service (named the probable cause of an incident)"]
    assert with_rollouts(4).dora[1].level == "high"


def test_four_recoveries_are_too_few_to_place_time_to_restore():
    rep = maturity.report(records(*succeeded(4)), COVERED)
    assert rep.dora[0].level is None
    assert rep.dora[0].evidence == ["4 incidents are too few to place you (need at least 5)"]


def test_deploy_frequency_and_lead_time_are_said_to_be_unmeasured_not_guessed():
    rep = maturity.report(records(*succeeded(10)), COVERED)
    unmeasured = {p.name: p for p in rep.dora[2:]}
    assert set(unmeasured) == {"deployment frequency", "lead time for changes"}
    assert all(p.level is None and "not measured" in p.evidence[0] for p in unmeasured.values())


# ---------------------------------------------------------------- AIOps levels


def test_three_incidents_are_too_few_to_place_any_aiops_domain():
    rep = maturity.report(records(*succeeded(3)), COVERED)
    assert [p.level for p in rep.aiops] == [None] * 4
    assert rep.aiops[0].evidence == ["3 incidents are too few to place you (need at least 5)"]
    assert rep.aiops[0].missing == ["2 more closed incidents"]


def test_an_empty_data_set_says_so_everywhere_and_invents_nothing():
    rep = maturity.report([], Inventory())
    assert rep.figures.incidents == 0
    assert rep.figures.time_to_recover.median is None
    assert all(p.level is None for p in [*rep.dora, *rep.aiops])


def test_self_healing_without_humans_places_automation_at_level_four_with_its_evidence():
    # 9 auto-remediated, 1 held for approval and approved: recurring class, gates used, 0 % failures.
    data = [*succeeded(9), obj("gated", approval=approval("approved"))]
    rep = maturity.report(records(*data), COVERED)
    automation = next(p for p in rep.aiops if p.name == "automation")
    assert automation.level == "4 autonomous"
    assert "incidents auto-remediated 90 % (9/10)" in automation.evidence
    assert "remediation failure rate 0 % (0/10)" in automation.evidence
    assert automation.missing == []


def test_automation_without_an_approval_gate_stays_at_level_two_and_says_what_level_three_needs():
    rep = maturity.report(records(*succeeded(6)), COVERED)
    automation = next(p for p in rep.aiops if p.name == "automation")
    assert automation.level == "2 assisted (correlated)"
    assert automation.missing == [("at least 1 high-risk actions held for human approval (now: 0 high-risk actions "
                                  "held for human approval)")]


def test_approval_heavy_organisation_is_readiness_level_two_until_humans_leave_the_loop():
    data = [obj(f"gated-{i}", approval=approval("approved")) for i in range(4)] + succeeded(2)
    rep = maturity.report(records(*data), COVERED)
    readiness = next(p for p in rep.aiops if p.name == "organisational readiness")
    assert readiness.level == "2 assisted (correlated)"
    assert readiness.missing == [("incidents needing a human approval at most 50 % (now: incidents needing a human "
                                 "approval 66.67 % (4/6))")]


def test_telemetry_climbs_with_slo_coverage_and_slo_driven_incidents():
    half = maturity.report(records(*succeeded(5, source="sloBurn")), COVERED)
    telemetry = next(p for p in half.aiops if p.name == "telemetry")
    assert telemetry.level == "3 predictive"
    assert telemetry.missing == ["workloads with an SLO at least 90 % (now: workloads with an SLO 50 % (1/2))"]
    none = maturity.report(records(*succeeded(5)), Inventory(workloads=COVERED.workloads))
    assert next(p for p in none.aiops if p.name == "telemetry").level == "1 reactive"


def test_ml_level_four_is_placed_from_outcomes_of_the_adaptive_order_not_from_the_flag():
    data = succeeded(5, source="anomaly")
    flagged = Inventory(COVERED.workloads, COVERED.slo_targets, adaptive_runbooks=3)
    rep = maturity.report(records(*data), flagged)
    ml = next(p for p in rep.aiops if p.name == "ML capability")
    assert ml.level == "3 predictive"
    # 5 incidents the adaptive order changed, all restored, against 1 of 3 in the Runbook's order
    learned = [reordered(o) for o in succeeded(5, source="anomaly")] + \
        [obj("in-order-ok", source="anomaly"), *[obj(f"in-order-{i}", "Escalated", source="anomaly") for i in range(2)]]
    rep = maturity.report(records(*learned), COVERED)
    ml = next(p for p in rep.aiops if p.name == "ML capability")
    assert ml.level == "4 autonomous"
    assert ("restored by the operator in 100 % (5/5) of incidents the adaptive order changed, 33.33 % (1/3) in "
            "the Runbook's order") in ml.evidence
    worse = [reordered(obj(f"r-{i}", "Escalated", source="anomaly")) for i in range(5)] + succeeded(3, source="anomaly")
    ml = next(p for p in maturity.report(records(*worse), COVERED).aiops if p.name == "ML capability")
    assert ml.level == "3 predictive"


# ---------------------------------------------------------------- figures


def test_figures_follow_the_stated_definitions():
    data = [
        obj("a", ttr=10), obj("b", ttr=20), obj("c", ttr=30), obj("d", ttr=400),
        obj("gated", ttr=50, approval=approval("approved", wait=90)),
        obj("denied", "Denied", approval=approval("denied", wait=30)),
        obj("expired", "Expired", approval=approval("expired")),
        obj("climbed", "Escalated", steps=[step(0, "Failed"), step(1, "Inconclusive", action="scale")]),
        obj("refused", "Failed", steps=[step(0, "Failed", applied=False)]),
        obj("open", "Verifying", steps=[step(0, "Applied")]),
    ]
    fig = maturity.figures(records(*data), COVERED)
    assert (fig.incidents, fig.open) == (9, 1)
    assert fig.outcomes == {"Succeeded": 5, "Denied": 1, "Expired": 1, "Escalated": 1, "Failed": 1}
    # every incident: 5 by the operator, 5 unresolved (open at the report's end: a lower bound)
    assert fig.restore.by["operator"].to_dict() == {"count": 5, "medianSeconds": 30.0, "p90Seconds": 400.0}
    assert fig.restore.by["unresolved"].count == 5 and fig.restore.lower_bound
    assert (fig.auto_remediated.part, fig.auto_remediated.whole) == (4, 9)
    assert (fig.needed_approval.part, fig.needed_approval.whole) == (3, 9)
    assert (fig.actions.part, fig.actions.whole) == (2, 7)  # the refused step was never applied
    assert (fig.approval_latency.count, fig.approval_latency.median) == (2, 60.0)
    assert fig.approvals_expired == 1
    assert fig.slo_coverage is not None and fig.slo_coverage.to_dict() == {"part": 1, "whole": 2, "percent": 50.0}
    assert [r.to_dict()["successRate"]["percent"] for r in fig.by_runbook] == [round(500 / 6, 2)]


def test_p90_is_the_nearest_rank_and_the_median_interpolates():
    assert maturity.Spread.of([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]).p90 == 9
    assert maturity.Spread.of([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]).p90 == 10
    assert maturity.Spread.of([1, 2, 3, 4]).median == 2.5


def test_scope_keeps_the_time_range_half_open_and_the_chosen_namespaces():
    data = [obj("before", started=T0 - timedelta(seconds=1)), obj("first", started=T0),
            obj("last", started=T0 + timedelta(days=1) - timedelta(seconds=1)),
            obj("after", started=T0 + timedelta(days=1)), obj("other", namespace="books")]
    scope = Scope(since=T0, until=T0 + timedelta(days=1), namespaces=frozenset({"shop"}))
    kept = [r.name for r in records(*data) if scope.holds(r)]
    assert kept == ["first", "last"]
    coverage = maturity.figures(records(*data), COVERED, Scope(namespaces=frozenset({"books"}))).slo_coverage
    assert coverage is not None and coverage.whole == 0


def test_slo_coverage_is_unknown_without_an_inventory_rather_than_zero():
    fig = maturity.figures(records(*succeeded(5)), Inventory(known=False))
    assert fig.slo_coverage is None
    telemetry = maturity.place_domain("telemetry", maturity.DOMAINS["telemetry"], fig)
    assert telemetry.missing == [("workloads with an SLO at least 1 % (now: workloads with an SLO: unknown "
                                 "(no inventory))")]


def test_a_malformed_remediation_is_refused_naming_the_object_and_field():
    bad = obj("x")
    bad["status"]["phase"] = "Exploded"
    with pytest.raises(ValueError, match=r"Remediation shop/x: status\.phase: "):
        Record.from_object(bad)
    del bad["spec"]["signal"]
    with pytest.raises(ValueError, match=r"Remediation shop/x: spec\.signal: Field required"):
        Record.from_object(bad)


def test_weekly_figures_split_each_week_by_who_restored_it():
    # T0 is a Sunday: its week began on Monday 26 October; the next on 2 November
    data = [obj("w1", ttr=10), obj("w2-op", ttr=50, started=T0 + timedelta(days=1)),
            obj("w2-esc", "Escalated", started=T0 + timedelta(days=2))]
    data[2]["status"].update(restoredBy="humans", restoredAt=z(T0 + timedelta(days=2, minutes=20)))
    weeks = maturity.weekly(records(*data), now=T0 + timedelta(days=3))
    assert [w for w, _ in weeks] == [T0 - timedelta(days=6), T0 + timedelta(days=1)]
    second = weeks[1][1]
    assert (second.restore.by["operator"].median, second.restore.by["humans"].median) == (50.0, 1200.0)
    assert (second.auto_remediated.part, second.auto_remediated.whole) == (1, 2)


def test_an_approval_nobody_had_to_give_still_counts_as_remediated_with_no_human():
    on_the_spot = {"required": 0, "level": "low", "requestedAt": z(T0), "decidedAt": z(T0), "decision": "approved"}
    fig = maturity.figures(records(obj("auto", approval=on_the_spot)), COVERED)
    assert (fig.auto_remediated.part, fig.needed_approval.part, fig.approval_latency.count) == (1, 0, 0)


# ---------------------------------------------------------------- a mixed history, recomputed by hand


def mixed_history() -> list[dict]:
    """Succeeded twice, escalated then restored by humans, failed and never restored, a dry run that humans
    restored, and a skip nobody closed; the second success is followed 3m later by a new incident on the same
    target, and that incident's probable cause is rollout 7 of shop/Deployment/web."""
    def finished_step(phase: str, at: datetime) -> dict:
        return {**step(phase=phase), "finishedAt": z(at)}
    hour = timedelta(hours=1)
    ok1 = obj("ok1", ttr=60, steps=[finished_step("Succeeded", T0 + timedelta(seconds=60))])
    ok2 = obj("ok2", ttr=120, started=T0 + hour, steps=[finished_step("Succeeded", T0 + hour + timedelta(seconds=120))])
    esc = caused(obj("esc", "Escalated", started=T0 + hour + timedelta(minutes=5)))
    esc["status"].update(restoredBy="humans", restoredAt=z(T0 + hour + timedelta(minutes=35)),
                         resolvedBy="alice", resolutionNote="rolled back by hand")
    failed = obj("failed", "Failed", started=T0 + 3 * hour, steps=[step(phase="Failed")])
    dry = obj("dry", "Skipped", started=T0 + 4 * hour, steps=[])
    dry["status"].update(dryRun=True, restoredBy="humans", restoredAt=z(T0 + 4 * hour + timedelta(minutes=10)))
    skipped = obj("skipped", "Skipped", started=T0 + 5 * hour, steps=[])
    return [ok1, ok2, esc, failed, dry, skipped]


MIXED_INVENTORY = Inventory(
    workloads=frozenset({("shop", "Deployment", "web"), ("shop", "Deployment", "cart"), ("books", "Deployment", "api"),
                         ("kube-system", "Deployment", "coredns"), ("remediator", "Deployment", "remediator")}),
    slo_targets=frozenset({("shop", "Deployment", "web"), ("books", "Deployment", "api"),
                           ("kube-system", "Deployment", "coredns")}),
    rollouts=(*(dora_keys.Rollout(T0 - timedelta(hours=h), "shop", "Deployment/web", str(r)) for h, r in ((5, 6), (1, 7))),
              *(dora_keys.Rollout(T0 + timedelta(hours=h), "books", "Deployment/api", str(h)) for h in (1, 2, 3))),
    rollouts_known=True)
MIXED_SCOPE = Scope(T0 - timedelta(days=1), T0 + timedelta(days=1))


def test_a_mixed_history_gives_figures_a_reader_recomputes_by_hand():
    fig = maturity.figures(records(*mixed_history()), MIXED_INVENTORY, MIXED_SCOPE)
    assert (fig.incidents, fig.open) == (6, 0)
    # time to restore: restoredAt (Succeeded: finishedAt) - start; unresolved: the report's end - start
    restore = fig.restore
    assert restore.by["operator"].to_dict() == {"count": 2, "medianSeconds": 90.0, "p90Seconds": 120.0}
    assert restore.by["humans"].to_dict() == {"count": 2, "medianSeconds": 1200.0, "p90Seconds": 1800.0}
    assert restore.unresolved == ["shop/failed", "shop/skipped"]
    assert restore.by["unresolved"].count == 2  # counted, not dropped
    assert restore.every.to_dict() == {"count": 6, "medianSeconds": (600 + 1800) / 2, "p90Seconds": 21 * 3600.0}
    assert restore.lower_bound
    # auto-remediated: ok1, ok2 out of the four the operator was allowed to act on; dry run and skip apart
    assert (fig.auto_remediated.part, fig.auto_remediated.whole) == (2, 4)
    assert fig.not_acting == {"dryRun": 1, "Skipped": 1}
    # the operator's changes: 4 applied steps; esc's and failed's did not restore; ok2's was followed by esc
    assert fig.change_failures.to_dict() == {"part": 3, "whole": 4, "percent": 75.0, "didNotRestore": 2,
                                             "followedByWorseSignal": 1}
    # SLO coverage without kube-system and the operator's namespace: web and api of web, cart, api
    assert fig.slo_coverage is not None and fig.slo_coverage.to_dict() == {"part": 2, "whole": 3, "percent": 66.67}
    assert {ns: (s.part, s.whole) for ns, s in fig.slo_coverage_by_namespace.items()} == {"shop": (1, 2),
                                                                                         "books": (1, 1)}
    assert fig.system_namespaces == ["kube-system", "remediator"]
    # DORA: 5 rollouts in 2 days, 1 named as a cause; shop 2 / 2 days, books 3 / 2 days; median workload 2.5/2
    delivery = fig.delivery
    assert delivery is not None
    assert (delivery.rollouts, delivery.failed, delivery.days) == (5, 1, 2.0)
    assert delivery.to_dict()["deploymentsPerDay"] == {
        "perNamespace": {"books": 1.5, "shop": 1.0},
        "perWorkload": {"books/Deployment/api": 1.5, "shop/Deployment/web": 1.0}, "medianWorkload": 1.25}
    placed = {p.name: p for p in maturity.dora(fig)}
    assert placed["change failure rate"].level == "high"  # 20 %
    assert placed["deployment frequency"].level == "elite"  # more than one a day
    assert placed["time to restore service"].evidence == [
        "median 20m over 6 incidents (operator 2, humans 2, unresolved 2; p90 at least 21h)"]
    assert placed["time to restore service"].level == "elite"  # the unresolved two sit above the middle
    assert placed["lead time for changes"].level is None


def test_the_report_json_states_every_definition_it_uses():
    out = maturity.report(records(*mixed_history()), MIXED_INVENTORY, MIXED_SCOPE).to_dict()
    assert set(out["definitions"]) >= {"timeToRestore", "autoRemediated", "remediationFailureRate", "sloCoverage",
                                       "learning", "doraChangeFailureRate", "deploymentFrequency",
                                       "leadTimeForChanges"}
    assert out["figures"]["autoRemediated"]["shownApart"] == {"Skipped": 1, "dryRun": 1}
    assert out["figures"]["timeToRestore"]["unresolvedIncidents"] == ["shop/failed", "shop/skipped"]


def test_a_restoredby_nobody_knows_is_refused_naming_the_field():
    bad = obj("x", "Escalated")
    bad["status"]["restoredBy"] = "aliens"
    with pytest.raises(ValueError, match=r"Remediation shop/x: status\.restoredBy: must be one of operator, humans"):
        Record.from_object(bad)


def test_an_unreadable_time_in_a_record_leaves_that_figure_out_instead_of_failing_the_report():
    broken = obj("broken", "Escalated", steps=[{**step(phase="Succeeded"), "finishedAt": "yesterday"}])
    broken["status"].update(restoredBy="humans", restoredAt="2026-11-01T00:20:00Z", startedAt="soon")
    broken["metadata"]["creationTimestamp"] = z(T0)
    fig = maturity.figures(records(broken), COVERED, now=T0 + timedelta(hours=1))
    assert fig.restore.by["humans"].median == 1200.0  # from creationTimestamp, the next start it could read
    assert fig.change_failures.to_dict()["followedByWorseSignal"] == 0


def test_unresolved_incidents_at_the_middle_leave_time_to_restore_unplaced_not_flattered():
    # 3 unresolved of 5, open 10m at the report's end, 2 restored by the operator in 1m: the median is at least
    # 10m, and could become anything once they are restored
    data = [*succeeded(2), *[obj(f"open-{i}", "Failed", steps=[step(phase="Failed")]) for i in range(3)]]
    fig = maturity.figures(records(*data), COVERED, now=T0 + timedelta(minutes=10))
    assert not fig.restore.median_exact
    placed = maturity.dora(fig)[0]
    assert placed.level is None
    assert placed.evidence[0] == "median at least 10m over 5 incidents (operator 2, unresolved 3; p90 at least 10m)"
    assert placed.missing == ["restore or resolve shop/open-0, shop/open-1, shop/open-2"]


def test_a_restoredat_that_is_not_a_time_is_refused_naming_the_field():
    for value, message in ((1234, "must be a string"), ("later", "not an RFC 3339 time")):
        bad = obj("x", "Escalated")
        bad["status"].update(restoredBy="humans", restoredAt=value)
        with pytest.raises(ValueError, match=rf"Remediation shop/x: status\.restoredAt: {message}"):
            Record.from_object(bad)


def test_an_approval_time_that_is_not_a_time_leaves_that_approval_out_not_the_whole_report():
    broken = obj("broken", approval=approval("approved"))
    broken["status"]["approval"]["decidedAt"] = "yesterday"
    naive = obj("naive", approval=approval("denied"))
    naive["status"]["approval"]["requestedAt"] = "2026-11-01T00:00:00"
    fig = maturity.figures(records(broken, naive, obj("fine", approval=approval("approved", wait=30))), COVERED)
    assert fig.approval_latency.count == 1 and fig.approval_latency.median == 30
