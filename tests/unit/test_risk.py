"""Risk scoring (core/plan/risk.py) and freeze windows (core/plan/freeze.py): tables at the band edges."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from remediator.api.models import ACTIONS, RISK_LEVELS, FreezeWindow
from remediator.core.durations import parse_time
from remediator.core.plan.freeze import format_timedelta, freeze_status
from remediator.core.plan.risk import RiskInput, assess_risk, level_for_score

PROD = {"environment": "production"}


def risk(**fields) -> RiskInput:
    fields.setdefault("declared", "low")
    fields.setdefault("action", "restartRollout")
    fields.setdefault("dry_run", "succeeded")
    return RiskInput(**fields)


def points(reasons: list[str]) -> int:
    return sum(int(m.group(0)) for r in reasons if (m := re.match(r"^[+-]\d+", r)))


def reason_containing(text: str, reasons: list[str]) -> str:
    found = [r for r in reasons if text in r]
    assert found, f"no reason mentions {text!r}: {reasons}"
    return found[0]


# ---------------------------------------------------------------- bands


@pytest.mark.parametrize(
    "score, level",
    [(0, "low"), (24, "low"), (25, "medium"), (49, "medium"), (50, "high"), (74, "high"), (75, "critical"),
     (100, "critical")],
)
def test_score_bands_map_to_levels_at_their_edges(score, level):
    assert level_for_score(score) == level


@pytest.mark.parametrize("score", [-1, 101])
def test_a_score_outside_0_to_100_is_refused(score):
    with pytest.raises(ValueError):
        level_for_score(score)


@pytest.mark.parametrize(
    "inp, score, level",
    [
        # low base 10
        (risk(), 5, "low"),
        (risk(namespace_labels=PROD), 20, "low"),  # 10 +15 -5
        (risk(namespace_labels=PROD, dry_run="unavailable",
              target_labels={"remediator.dev/criticality": "low"}), 25, "medium"),  # 10 +15 +5 -5
        # medium base 35
        (risk(declared="medium", dry_run="unavailable", recent_failures=1), 45, "medium"),  # 35 +5 +5
        (risk(declared="medium", dry_run="unavailable",
              target_labels={"remediator.dev/criticality": "high"}), 50, "high"),  # 35 +5 +10
        # high base 60
        (risk(declared="high", dry_run="unavailable", recent_failures=1), 70, "high"),  # 60 +5 +5
        (risk(declared="high", dry_run="unavailable",
              target_labels={"remediator.dev/criticality": "high"}), 75, "critical"),  # 60 +5 +10
        # critical base 85
        (risk(declared="critical"), 80, "critical"),
    ],
)
def test_factors_move_the_score_across_band_edges(inp, score, level):
    assessed = assess_risk(inp)
    assert (assessed.score, assessed.level) == (score, level)


@pytest.mark.parametrize("declared", RISK_LEVELS)
def test_declared_high_risk_is_never_lowered_by_factors(declared):
    favourable = risk(
        declared=declared, action="restartRollout", dry_run="succeeded", probable_cause="configChange",
        target_labels={"remediator.dev/criticality": "low"},
    )
    assessed = assess_risk(favourable)
    assert assessed.level == declared
    if declared in ("medium", "high", "critical"):
        assert any("is never lowered" in r for r in assessed.reasons)


def test_declared_high_is_floored_to_the_bottom_of_its_band_and_says_so():
    assessed = assess_risk(risk(declared="high", probable_cause="configChange",
                                target_labels={"remediator.dev/criticality": "low"}))
    assert (assessed.score, assessed.level) == (50, "high")  # 60 -5 -5 -10 = 40, floored to 50
    assert "+10 declared risk high is never lowered (factors gave 40)" in assessed.reasons


def test_factors_can_raise_the_level_above_the_declared_one():
    assessed = assess_risk(risk(declared="low", action="cordonDrain", namespace_labels=PROD,
                                target_labels={"remediator.dev/criticality": "critical"}))
    assert assessed.level == "high"  # 10 +15 +15 +20 -5 +5 (cause unknown) = 60


def test_the_score_is_clamped_at_100_with_a_reason():
    assessed = assess_risk(risk(
        declared="critical", action="cordonDrain", namespace_labels=PROD, dry_run="failed",
        target_labels={"remediator.dev/criticality": "critical"}, in_freeze_window=True, recent_failures=9,
    ))
    assert (assessed.score, assessed.level) == (100, "critical")
    assert any("kept within 0..100" in r for r in assessed.reasons)


def test_reasons_start_with_the_base_and_end_with_the_band():
    reasons = assess_risk(risk(declared="medium")).reasons
    assert reasons[0] == "+35 declared step risk medium (base)"
    assert reasons[-1] == "score 30 -> medium (band 25-49)"


@settings(max_examples=150, deadline=None)
@given(
    declared=st.sampled_from(RISK_LEVELS),
    action=st.sampled_from(ACTIONS),
    replicas=st.integers(0, 30),
    touched=st.integers(0, 40),
    share=st.floats(0, 1),
    failures=st.integers(0, 10),
    inside=st.booleans(),
    next_in=st.none() | st.timedeltas(timedelta(0), timedelta(hours=5)),
    dry_run=st.sampled_from(["succeeded", "failed", "unavailable"]),
    cause=st.none() | st.sampled_from(["rollout", "configChange", "secretChange", "scaleChange", "hpaChange",
                                       "nodeChange", "none"]),
    prod=st.booleans(),
    criticality=st.none() | st.sampled_from(["critical", "high", "medium", "low", "bogus"]),
)
def test_reasons_add_up_to_the_score_and_the_level_is_never_below_declared(
    declared, action, replicas, touched, share, failures, inside, next_in, dry_run, cause, prod, criticality
):
    inp = RiskInput(
        declared=declared, action=action, pods_touched=touched, workload_replicas=replicas,
        namespace_share=share, namespace_labels=PROD if prod else {},
        target_labels={"remediator.dev/criticality": criticality} if criticality else {},
        recent_failures=failures, in_freeze_window=inside, next_freeze_in=next_in, dry_run=dry_run,
        probable_cause=cause,
    )
    assessed = assess_risk(inp)
    assert 0 <= assessed.score <= 100
    assert points(assessed.reasons) == assessed.score
    assert assessed.level == level_for_score(assessed.score)
    assert RISK_LEVELS.index(assessed.level) >= RISK_LEVELS.index(declared)


# ---------------------------------------------------------------- factors, one by one


@pytest.mark.parametrize(
    "labels, key, expected",
    [
        ({"environment": "production"}, None, "+15 production namespace (environment=production)"),
        ({"env": "prod"}, None, "+15 production namespace (env=prod)"),
        ({"tier": "Production"}, None, "+15 production namespace (tier=Production)"),
        ({"example.com/prod": "true"}, "example.com/prod", "+15 production namespace (example.com/prod=true)"),
        ({"example.com/prod": "true"}, None, None),
        ({"environment": "staging"}, None, None),
        ({"team": "prod"}, None, None),
    ],
)
def test_production_namespaces_are_recognised_by_their_labels(labels, key, expected):
    reasons = assess_risk(risk(namespace_labels=labels, production_label_key=key)).reasons
    production = [r for r in reasons if "production namespace" in r]
    assert production == ([expected] if expected else [])


@pytest.mark.parametrize(
    "value, expected",
    [
        ("critical", "+20 target criticality critical (remediator.dev/criticality)"),
        ("high", "+10 target criticality high (remediator.dev/criticality)"),
        ("low", "-5 target criticality low (remediator.dev/criticality)"),
        ("medium", None),
        ("urgent", "+0 unrecognised target criticality remediator.dev/criticality=urgent ignored"),
    ],
)
def test_target_criticality_label_adds_or_subtracts(value, expected):
    reasons = assess_risk(risk(target_labels={"remediator.dev/criticality": value})).reasons
    found = [r for r in reasons if "criticality" in r]
    assert found == ([expected] if expected else [])


@pytest.mark.parametrize(
    "touched, replicas, share, expected",
    [
        (0, 3, 0.0, None),
        (1, 1, 0.0, "+10 blast radius: the workload's only replica +10"),
        (3, 3, 0.0, "+10 blast radius: all 3 replicas +10"),
        (2, 4, 0.0, "+5 blast radius: 2 of 4 replicas +5"),
        (1, 3, 0.0, None),  # under half of the replicas
        (1, 0, 0.099, None),
        (1, 0, 0.10, "+5 blast radius: 10% of the namespace's pods +5"),
        (1, 0, 0.25, "+10 blast radius: 25% of the namespace's pods +10"),
        (1, 0, 0.50, "+15 blast radius: 50% of the namespace's pods +15"),
        (9, 0, 0.0, None),
        (10, 0, 0.0, "+5 blast radius: 10 pods +5"),
        (20, 0, 0.0, "+10 blast radius: 20 pods +10"),
        (20, 20, 0.3, ("+25 blast radius: all 20 replicas +10, 30% of the namespace's pods +10, 20 pods +10 "
                       "(capped from +30)")),
    ],
)
def test_blast_radius_counts_replicas_namespace_share_and_pods_with_a_cap(touched, replicas, share, expected):
    reasons = assess_risk(risk(pods_touched=touched, workload_replicas=replicas, namespace_share=share)).reasons
    found = [r for r in reasons if "blast radius" in r]
    assert found == ([expected] if expected else [])


@pytest.mark.parametrize(
    "failures, expected",
    [(0, None), (1, "+5 1 recent failure of this runbook"), (4, "+20 4 recent failures of this runbook"),
     (5, "+20 5 recent failures of this runbook (capped)")],
)
def test_recent_failures_raise_risk_up_to_a_cap(failures, expected):
    found = [r for r in assess_risk(risk(recent_failures=failures)).reasons if "failure" in r]
    assert found == ([expected] if expected else [])


@pytest.mark.parametrize(
    "inside, next_in, expected",
    [
        (True, None, "+30 inside a freeze window"),
        (False, timedelta(minutes=30), "+10 next freeze window starts in 30m"),
        (False, timedelta(minutes=31), "+5 next freeze window starts in 31m"),
        (False, timedelta(hours=2), "+5 next freeze window starts in 2h"),
        (False, timedelta(hours=2, seconds=1), None),
        (False, None, None),
    ],
)
def test_freeze_windows_near_or_current_raise_risk(inside, next_in, expected):
    found = [r for r in assess_risk(risk(in_freeze_window=inside, next_freeze_in=next_in)).reasons if "freeze" in r]
    assert found == ([expected] if expected else [])


@pytest.mark.parametrize(
    "result, expected",
    [
        ("succeeded", "-5 server-side dry run succeeded"),
        ("unavailable", "+5 no server-side dry run of this action: its effect is less certain"),
        ("failed", "+15 server-side dry run failed: the apiserver would reject or alter it"),
    ],
)
def test_server_side_dry_run_lowers_or_raises_uncertainty(result, expected):
    assert expected in assess_risk(risk(dry_run=result)).reasons


@pytest.mark.parametrize(
    "action, cause, expected",
    [
        ("rollback", "rollout", "-10 probable cause rollout fits rollback"),
        ("rollback", "none", "+15 rollback but no recent rollout was found"),
        ("rollback", "configChange", "+15 rollback but the probable cause is configChange, not a rollout"),
        ("rollback", None, "+5 probable cause unknown; rollback presumes a rollout"),
        ("cordonDrain", "nodeChange", "-10 probable cause nodeChange fits cordonDrain"),
        ("cordonDrain", "rollout", "+15 cordonDrain but the probable cause is rollout, not a nodeChange"),
        ("scale", "hpaChange", "-10 probable cause hpaChange fits scale"),
        ("restartRollout", "secretChange", "-10 probable cause secretChange fits restartRollout"),
        ("restartRollout", None, None),
        ("deletePod", "rollout", None),
        ("raiseMemory", "none", None),
    ],
)
def test_probable_cause_that_fits_the_action_lowers_risk_and_one_that_contradicts_it_raises_it(
    action, cause, expected
):
    found = [r for r in assess_risk(risk(action=action, probable_cause=cause)).reasons if "cause" in r or
             "no recent" in r]
    assert found == ([expected] if expected else [])


@pytest.mark.parametrize(
    "action, expected",
    [("rollback", "+10 action rollback"), ("raiseMemory", "+5 action raiseMemory"),
     ("cordonDrain", "+15 action cordonDrain"), ("restartRollout", None), ("scale", None), ("deletePod", None)],
)
def test_each_action_carries_its_own_weight(action, expected):
    found = [r for r in assess_risk(risk(action=action)).reasons if re.match(r"^[+-]\d+ action ", r)]
    assert [r[: len(expected)] for r in found] == ([expected] if expected else [])


# ---------------------------------------------------------------- input


@pytest.mark.parametrize(
    "fields",
    [{"pods_touched": -1}, {"workload_replicas": -1}, {"recent_failures": -1}, {"namespace_share": 1.5},
     {"declared": "extreme"}],
)
def test_impossible_inputs_are_refused(fields):
    with pytest.raises(ValueError):
        risk(**fields)


def test_the_input_keeps_its_own_copy_of_the_labels():
    labels = {"environment": "production"}
    inp = risk(namespace_labels=labels)
    labels["environment"] = "dev"
    assert inp.namespace_labels["environment"] == "production"
    with pytest.raises(TypeError):
        inp.namespace_labels["environment"] = "dev"  # type: ignore[index]


# ---------------------------------------------------------------- freeze windows

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


def window(name: str, start: str, end: str) -> FreezeWindow:
    return FreezeWindow(name=name, start=start, end=end)


def test_inside_a_freeze_window_from_its_start_up_to_but_not_including_its_end():
    w = window("release", "2025-03-10T12:00:00Z", "2025-03-10T13:00:00Z")
    assert freeze_status([w], NOW).inside
    assert not freeze_status([w], NOW + timedelta(hours=1)).inside
    assert not freeze_status([w], NOW - timedelta(seconds=1)).inside


def test_the_next_freeze_window_is_the_earliest_upcoming_one():
    windows = [
        window("past", "2025-03-01T00:00:00Z", "2025-03-02T00:00:00Z"),
        window("later", "2025-03-12T00:00:00Z", "2025-03-13T00:00:00Z"),
        window("soon", "2025-03-10T14:30:00+02:00", "2025-03-10T18:00:00+02:00"),  # 12:30Z
    ]
    status = freeze_status(windows, NOW)
    assert not status.inside
    assert status.next_window.name == "soon"
    assert status.next_starts_in == timedelta(minutes=30)
    assert "next freeze window 'soon' starts in 30m" in status.reasons


def test_no_freeze_windows_means_none_in_force_and_none_upcoming():
    status = freeze_status([], NOW)
    assert (status.inside, status.next_window, status.next_starts_in, status.reasons) == (False, None, None, ())


@pytest.mark.parametrize(
    "start, end",
    [("not a time", "2025-03-10T13:00:00Z"), ("2025-03-10T11:00:00", "2025-03-10T13:00:00Z"),
     ("2025-03-10T13:00:00Z", "2025-03-10T11:00:00Z")],
)
def test_an_unreadable_freeze_window_is_treated_as_in_force(start, end):
    status = freeze_status([window("typo", start, end)], NOW)
    assert status.inside
    assert "treated as in force" in status.reasons[0]


def test_freeze_status_refuses_a_naive_clock():
    with pytest.raises(ValueError):
        freeze_status([], datetime(2025, 3, 10, 12, 0))


def test_rfc3339_times_need_an_offset():
    assert parse_time("2025-03-10T12:00:00Z") == NOW
    with pytest.raises(ValueError):
        parse_time("2025-03-10T12:00:00")


@pytest.mark.parametrize(
    "delta, text",
    [(timedelta(seconds=45), "45s"), (timedelta(minutes=12), "12m"), (timedelta(hours=2, minutes=5), "2h5m"),
     (timedelta(hours=2), "2h"), (timedelta(days=3, hours=4), "3d4h"), (timedelta(days=1), "1d"),
     (timedelta(seconds=-5), "0s")],
)
def test_durations_are_shown_compactly(delta, text):
    assert format_timedelta(delta) == text
