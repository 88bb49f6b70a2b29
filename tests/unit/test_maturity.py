"""The maturity report: figures from Remediation records, DORA bands at their edges, AIOps levels with evidence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest

from remediator.core.report import maturity
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
    assert restore.evidence == ["median 1h over 5 verified recoveries (p90 1h)"]
    assert restore.missing == ["a median time to restore under 1h"]


def test_three_failed_actions_in_twenty_place_the_failure_rate_elite_and_four_place_it_high():
    good = succeeded(17)
    bad = [obj(f"bad-{i}", "Escalated") for i in range(3)]
    rep = maturity.report(records(*good, *bad), COVERED)
    assert rep.dora[1].level == "elite"
    assert rep.dora[1].evidence == ["15 % (3/20) of remediation actions did not recover the target"]
    rep = maturity.report(records(*good[:16], *bad, obj("bad-3", "Escalated")), COVERED)
    assert rep.dora[1].level == "high"


def test_four_recoveries_are_too_few_to_place_time_to_restore():
    rep = maturity.report(records(*succeeded(4)), COVERED)
    assert rep.dora[0].level is None
    assert rep.dora[0].evidence == ["4 recoveries are too few to place you (need at least 5)"]


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


def test_ml_level_four_needs_a_runbook_that_learns_from_outcomes():
    data = succeeded(5, source="anomaly")
    rep = maturity.report(records(*data), COVERED)
    assert next(p for p in rep.aiops if p.name == "ML capability").level == "3 predictive"
    learning = Inventory(COVERED.workloads, COVERED.slo_targets, adaptive_runbooks=1)
    rep = maturity.report(records(*data), learning)
    assert next(p for p in rep.aiops if p.name == "ML capability").level == "4 autonomous"


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
    assert (fig.time_to_recover.count, fig.time_to_recover.median, fig.time_to_recover.p90) == (5, 30.0, 400.0)
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


def test_recovery_trend_lists_successes_by_finish_time():
    data = [obj("late", ttr=50, started=T0 + timedelta(hours=2)), obj("early", ttr=10), obj("no", "Escalated")]
    assert maturity.recovery_trend(records(*data)) == [
        (T0 + timedelta(seconds=10), 10.0), (T0 + timedelta(hours=2, seconds=50), 50.0)]


def test_an_approval_nobody_had_to_give_still_counts_as_remediated_with_no_human():
    on_the_spot = {"required": 0, "level": "low", "requestedAt": z(T0), "decidedAt": z(T0), "decision": "approved"}
    fig = maturity.figures(records(obj("auto", approval=on_the_spot)), COVERED)
    assert (fig.auto_remediated.part, fig.needed_approval.part, fig.approval_latency.count) == (1, 0, 0)
