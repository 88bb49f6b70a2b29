"""Burn rates and multiwindow, multi-burn-rate alerting (core/slo/burn_rate.py), checked against the SRE workbook."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from remediator.api.slo import ServiceLevelObjectiveSpec
from remediator.core.slo.burn_rate import (
    AlertWindow,
    budget_consumed,
    burn_rate,
    detection_time,
    error_budget,
    error_budget_remaining,
    evaluate_alert,
    evaluate_slo,
    no_data,
    plan_windows,
    prometheus_rules,
    reaches,
    reading_from_bad_total,
    reading_from_good_total,
    reading_from_ratio,
    render_sli_query,
    reset_time,
    scale_window,
    slo_status,
    time_to_exhaustion,
    window_burn,
)

M, H, D = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
BAD = 'sum(rate(http_requests_total{code=~"5..",namespace="{{ namespace }}",service="{{ service }}"}[{{ window }}]))'
TOTAL = 'sum(rate(http_requests_total{namespace="{{ namespace }}",service="{{ service }}"}[{{ window }}]))'
GOOD = 'sum(rate(http_requests_total{code!~"5..",service="{{ service }}"}[{{ window }}]))'
PAGE_FAST = AlertWindow("page", H, 5 * M, 14.4)


def spec(**overrides) -> ServiceLevelObjectiveSpec:
    wire = {"service": "web", "target": {"name": "web"}, "sli": {"badTotal": {"bad": BAD, "total": TOTAL}},
            "objective": 99.9, **overrides}
    return ServiceLevelObjectiveSpec.model_validate(wire)


def burn(window: timedelta, error_ratio: float | None, objective: float = 99.9):
    return window_burn(reading_from_ratio(window, error_ratio), objective)


def readings(**ratios: float | None) -> dict:
    """readings(h1=0.02, m5=0.03): error ratios by window, written as m5, h1, d3 ..."""
    units = {"m": M, "h": H, "d": D}
    result = {}
    for name, ratio in ratios.items():
        window = int(name[1:]) * units[name[0]]
        result[window] = reading_from_ratio(window, ratio)
    return result


def all_windows(ratio: float) -> dict:
    return readings(m5=ratio, m30=ratio, h1=ratio, h6=ratio, d3=ratio, d30=ratio)


# ---------------------------------------------------------------- the maths, against the workbook


@pytest.mark.parametrize("objective, budget", [(99.9, 0.001), (99, 0.01), (99.99, 0.0001), (95, 0.05), (50, 0.5)])
def test_the_error_budget_is_one_minus_the_objective(objective, budget):
    assert error_budget(objective) == pytest.approx(budget, rel=1e-12)


@pytest.mark.parametrize("error_ratio, objective, expected", [
    (0.001, 99.9, 1), (0.0144, 99.9, 14.4), (0.006, 99.9, 6), (0.021, 99.9, 21), (1.0, 99.9, 1000),
    (0.0, 99.9, 0), (0.05, 99, 5),
])
def test_burn_rate_is_the_error_ratio_over_the_error_budget(error_ratio, objective, expected):
    assert burn_rate(error_ratio, objective) == pytest.approx(expected)


def test_a_burn_of_exactly_the_threshold_counts_as_reaching_it():
    # 1.44% / 0.1% is 14.399999999999999 in floating point; it must still reach 14.4.
    assert reaches(burn_rate(0.0144, 99.9), 14.4)
    assert reaches(burn_rate(0.006, 99.9), 6)
    assert not reaches(burn_rate(0.01439, 99.9), 14.4)


@pytest.mark.parametrize("objective", [0, 100, -5, 101])
def test_an_objective_outside_0_to_100_is_refused(objective):
    with pytest.raises(ValueError, match="strictly between 0 and 100"):
        error_budget(objective)


# SRE workbook ch. 5: budget consumed by each recommended alert (2%, 5%, 10% of 30 days).
@pytest.mark.parametrize("rate, duration, consumed", [
    (14.4, H, 0.02),
    (6, 6 * H, 0.05),
    (1, 3 * D, 0.10),
])
def test_budget_consumed_matches_the_workbooks_recommended_alerts(rate, duration, consumed):
    assert budget_consumed(rate, duration, 30 * D) == pytest.approx(consumed)


# SRE workbook ch. 5: time to exhaust a 30-day budget at a given burn rate.
@pytest.mark.parametrize("rate, exhausted", [
    (1, 30 * D), (2, 15 * D), (10, 3 * D), (1000, timedelta(minutes=43, seconds=12)),
])
def test_time_to_exhaust_the_budget_matches_the_workbook(rate, exhausted):
    assert time_to_exhaustion(rate, 30 * D) == exhausted


def test_half_a_budget_left_lasts_half_as_long_and_no_burn_never_exhausts_it():
    assert time_to_exhaustion(2, 30 * D, budget_remaining=0.5) == 7.5 * D
    assert time_to_exhaustion(0, 30 * D) is None
    assert time_to_exhaustion(5, 30 * D, budget_remaining=-0.2) == timedelta(0)


def test_detection_time_follows_the_workbook_formula():
    # (1 - 0.999) / error ratio x 1h x 14.4: a full outage pages in 0.864 minutes.
    assert detection_time(1.0, 99.9, 14.4, H) == timedelta(seconds=51.84)
    # exactly the threshold takes the whole long window; under it never fires
    assert detection_time(0.0144, 99.9, 14.4, H) == H
    assert detection_time(0.01, 99.9, 14.4, H) is None


@pytest.mark.parametrize("rate, short, expected", [
    (1000, 5 * M, 5 * M * (1 - 14.4 / 1000)),
    (28.8, 5 * M, timedelta(seconds=150)),
    (14.4, 5 * M, timedelta(0)),
    (3, 5 * M, timedelta(0)),
])
def test_reset_time_is_how_long_the_short_window_takes_to_drain(rate, short, expected):
    assert reset_time(rate, 14.4, short) == expected


# ---------------------------------------------------------------- readings and missing data


@pytest.mark.parametrize("bad, total, ratio", [(1, 100, 0.01), (0, 50, 0.0), (100, 100, 1.0), (101, 100, 1.0)])
def test_bad_over_total_is_the_error_ratio(bad, total, ratio):
    assert reading_from_bad_total(5 * M, bad, total).error_ratio == pytest.approx(ratio)


@pytest.mark.parametrize("good, total, ratio", [(99, 100, 0.01), (100, 100, 0.0), (100.2, 100, 0.0)])
def test_good_over_total_gives_one_minus_it(good, total, ratio):
    assert reading_from_good_total(5 * M, good, total).error_ratio == pytest.approx(ratio)


@pytest.mark.parametrize("part, total, reason", [
    (1.0, None, "the total query returned nothing"),
    (None, 10.0, "the bad query returned nothing"),
    (1.0, math.nan, "the total query returned NaN"),
    (math.nan, 10.0, "the bad query returned NaN"),
    (1.0, math.inf, "the total query returned inf"),
    (0.0, 0.0, "total is 0: no events in the window"),
    (-1.0, 10.0, "a rate is negative"),
])
def test_missing_nan_or_empty_windows_are_no_data_and_say_why(part, total, reason):
    reading = reading_from_bad_total(5 * M, part, total)
    assert not reading.has_data
    assert reason in reading.no_data_reason


@pytest.mark.parametrize("ratio", [None, math.nan, -0.1, 1.5])
def test_an_unusable_recorded_ratio_is_no_data(ratio):
    assert not reading_from_ratio(H, ratio).has_data


# ---------------------------------------------------------------- one alert window


@pytest.mark.parametrize("long_ratio, short_ratio, state", [
    (0.021, 0.024, "firing"),
    (0.0144, 0.0144, "firing"),   # exactly the rate counts
    (0.021, 0.001, "ok"),         # the incident is over: the short window resets the alert
    (0.003, 0.024, "ok"),         # a blip: not enough budget spent yet
    (0.001, 0.001, "ok"),
])
def test_page_fires_only_when_both_long_and_short_windows_burn(long_ratio, short_ratio, state):
    result = evaluate_alert(PAGE_FAST, burn(H, long_ratio), burn(5 * M, short_ratio))
    assert result.state == state
    assert result.firing == (state == "firing")


def test_a_firing_alert_explains_itself_in_words():
    result = evaluate_alert(PAGE_FAST, burn(H, 0.021), burn(5 * M, 0.024))
    assert result.reason == "error ratio 2.1% over 1h and 2.4% over 5m = burn 21× and 24× (≥ 14.4): page"


def test_a_quiet_alert_says_what_it_needs():
    result = evaluate_alert(PAGE_FAST, burn(H, 0.003), burn(5 * M, 0.024))
    assert result.reason == ("error ratio 0.3% over 1h and 2.4% over 5m = burn 3× and 24× "
                             "(page needs both ≥ 14.4): not firing")


@pytest.mark.parametrize("long_ratio, short_ratio, state", [
    (None, 0.024, "noData"),   # burning where we can see: cannot call it healthy
    (0.021, None, "noData"),
    (None, None, "noData"),
    (None, 0.0001, "ok"),      # a window with data is under the rate: both are needed to fire
    (0.0001, None, "ok"),
])
def test_a_window_without_data_is_neither_healthy_nor_breaching(long_ratio, short_ratio, state):
    result = evaluate_alert(PAGE_FAST, burn(H, long_ratio), burn(5 * M, short_ratio))
    assert result.state == state
    assert not result.firing
    assert "no data over" in result.reason


def test_no_data_is_said_with_its_cause():
    result = evaluate_alert(PAGE_FAST, window_burn(reading_from_bad_total(H, 0, 0), 99.9), burn(5 * M, 0.03))
    assert result.reason == ("no data over 1h (total is 0: no events in the window); error ratio 3% over 5m "
                             "= burn 30×: cannot tell whether page (both ≥ 14.4) should fire")


@given(st.floats(0, 1), st.floats(0, 1), st.floats(50, 99.999), st.floats(0.1, 100))
def test_an_alert_fires_exactly_when_both_burns_reach_the_rate(long_ratio, short_ratio, objective, rate):
    window = AlertWindow("page", H, 5 * M, rate)
    result = evaluate_alert(window, burn(H, long_ratio, objective), burn(5 * M, short_ratio, objective))
    expected = reaches(burn_rate(long_ratio, objective), rate) and reaches(burn_rate(short_ratio, objective), rate)
    assert result.firing == expected


# ---------------------------------------------------------------- the whole SLO


def test_a_fast_burn_pages_and_marks_the_slo_breaching():
    result = evaluate_slo(spec(), {**all_windows(0.0002), **readings(h1=0.021, m5=0.024)})
    assert [(a.window.severity, a.window.burn_rate) for a in result.firing] == [("page", 14.4)]
    assert (result.breaching, result.breaching_reason) == ("True", "PageBurnRate")
    assert "burn 21× and 24× (≥ 14.4): page" in result.breaching_message


def test_a_slow_burn_opens_a_ticket_not_a_page():
    result = evaluate_slo(spec(), all_windows(0.002))
    assert [a.window.severity for a in result.firing] == ["ticket"]
    assert result.breaching_reason == "TicketBurnRate"


def test_a_healthy_slo_is_not_breaching_and_says_why():
    result = evaluate_slo(spec(), all_windows(0.0002))
    assert (result.breaching, result.breaching_reason) == ("False", "WithinBudget")
    assert result.firing == ()
    assert "burn 0.2× and 0.2× (page needs both ≥ 14.4): not firing" in result.breaching_message


def test_missing_windows_make_the_verdict_unknown_not_healthy():
    ratios = all_windows(0.0002)
    ratios[5 * M] = no_data(5 * M, "total is 0: no events in the window")
    ratios[H] = reading_from_ratio(H, 0.05)
    del ratios[6 * H]
    result = evaluate_slo(spec(), ratios)
    assert (result.breaching, result.breaching_reason) == ("Unknown", "NoData")
    assert "5m: no data (total is 0: no events in the window)" in result.notes
    assert "6h: no data (not measured)" in result.notes


def test_firing_wins_over_missing_data_elsewhere():
    ratios = {**all_windows(0.05)}
    del ratios[3 * D]
    result = evaluate_slo(spec(), ratios)
    assert result.breaching == "True"
    assert {a.window.severity: a.state for a in result.alerts} == {"page": "firing", "ticket": "noData"}


@pytest.mark.parametrize("ratio, remaining, words", [
    (0.0, 1.0, "100% of the error budget remains"),
    (0.00025, 0.75, "75% of the error budget remains"),
    (0.001, 0.0, "the error budget is exhausted (100% spent)"),
    (0.0015, -0.5, "the error budget is exhausted (150% spent)"),
])
def test_error_budget_remaining_over_the_slo_window(ratio, remaining, words):
    result = evaluate_slo(spec(), {**all_windows(0.0), **readings(d30=ratio)})
    assert result.budget_remaining == pytest.approx(remaining)
    assert error_budget_remaining(ratio, 99.9) == pytest.approx(remaining)
    assert words in result.budget_reason


def test_unknown_budget_when_the_slo_window_has_no_data():
    result = evaluate_slo(spec(), {**all_windows(0.0), **readings(d30=None)})
    assert result.budget_remaining is None
    assert "unknown" in result.budget_reason


# ---------------------------------------------------------------- window scaling


@pytest.mark.parametrize("window, scale, minimum, expected", [
    (30 * D, 1 / 360, M, 2 * H),
    (3 * D, 1 / 360, M, 12 * M),
    (6 * H, 1 / 360, M, M),
    (H, 1 / 360, M, M),                         # 10s, clamped
    (5 * M, 1 / 360, timedelta(seconds=10), timedelta(seconds=10)),
    (H, 1 / 360, timedelta(seconds=5), timedelta(seconds=10)),
    (H, 1.0, M, H),
    (timedelta(seconds=100), 1 / 3, timedelta(0), timedelta(seconds=33)),  # whole seconds
])
def test_windows_scale_by_configuration_and_never_drop_under_the_minimum(window, scale, minimum, expected):
    assert scale_window(window, scale, minimum) == expected


def test_scaled_plans_say_which_windows_were_clamped():
    plan = plan_windows(spec(windowScale=1 / 360, minWindow="10s"))
    assert plan.slo_window == 2 * H
    assert [(a.long_window, a.short_window) for a in plan.alerts] == [
        (timedelta(seconds=10), timedelta(seconds=10)), (M, timedelta(seconds=10)), (12 * M, M),
    ]
    assert plan.notes[0].startswith("windows scaled by 1/360: 30d -> 2h, 1h -> 10s, ")
    assert "5m -> 10s (clamped to minWindow 10s; 0.833s after scaling)" in plan.notes[0]
    assert "the short window 10s is not shorter than the long window 10s" in plan.notes[1]


def test_an_unscaled_window_under_the_minimum_is_raised_and_said_so():
    plan = plan_windows(spec(minWindow="10m"))
    assert plan.alerts[0].short_window == 10 * M
    assert plan.notes == ("windows raised to minWindow: 5m -> 10m (clamped to minWindow 10m; 300s after scaling)",)


def test_an_unscaled_plan_has_no_notes_and_every_window_once():
    plan = plan_windows(spec())
    assert plan.notes == ()
    assert plan.windows == (5 * M, 30 * M, H, 6 * H, 3 * D, 30 * D)


def test_scaling_keeps_the_budget_arithmetic_when_nothing_is_clamped():
    plan = plan_windows(spec(windowScale=1 / 360, minWindow="1s"))
    page = plan.alerts[0]
    assert budget_consumed(page.burn_rate, page.long_window, plan.slo_window) == pytest.approx(0.02)


def test_a_scaled_slo_is_evaluated_over_its_scaled_windows():
    scaled = spec(windowScale=1 / 360)
    result = evaluate_slo(scaled, {2 * H: reading_from_ratio(2 * H, 0.0), M: reading_from_ratio(M, 0.05),
                                   12 * M: reading_from_ratio(12 * M, 0.05)})
    assert [w.window for w in result.windows] == [M, 12 * M, 2 * H]
    assert [a.window.severity for a in result.firing] == ["page", "page", "ticket"]


# ---------------------------------------------------------------- status


def test_the_status_carries_values_per_window_alerts_and_conditions():
    result = evaluate_slo(spec(), {**all_windows(0.0002), **readings(h1=0.021, m5=0.024, m30=None)})
    status = slo_status(result, NOW, observed_generation=3)
    wire = status.wire()
    assert wire["observedGeneration"] == 3
    assert wire["lastEvaluated"] == "2024-05-01T12:00:00Z"
    assert wire["sli"][0] == {"window": "5m", "sli": 0.976, "errorRatio": 0.024, "noDataReason": ""}
    assert wire["sli"][1] == {"window": "30m", "noDataReason": "the error ratio returned nothing"}
    assert wire["burnRates"][2] == {"window": "1h", "burnRate": 21.0}
    assert wire["errorBudgetRemaining"] == 0.8
    assert [(a["severity"], a["longWindow"], a["shortWindow"], a["since"]) for a in wire["alerts"]] == [
        ("page", "1h", "5m", "2024-05-01T12:00:00Z"),
    ]
    conditions = {c["type"]: (c["status"], c["reason"]) for c in wire["conditions"]}
    assert conditions == {"Breaching": ("True", "PageBurnRate"), "ErrorBudgetExhausted": ("False", "BudgetLeft")}
    assert "30m: no data (the error ratio returned nothing)" in wire["baselineNotes"]


def test_the_status_keeps_when_an_alert_started_and_when_a_condition_last_changed():
    firing = evaluate_slo(spec(), all_windows(0.05))
    first = slo_status(firing, NOW)
    later = slo_status(firing, NOW + 5 * M, previous=first)
    assert [a.since for a in later.alerts] == [a.since for a in first.alerts]
    assert later.conditions[0].last_transition_time == "2024-05-01T12:00:00Z"
    recovered = slo_status(evaluate_slo(spec(), all_windows(0.0)), NOW + 10 * M, previous=later)
    assert recovered.alerts == []
    assert (recovered.conditions[0].status, recovered.conditions[0].last_transition_time) == (
        "False", "2024-05-01T12:10:00Z")


def test_the_status_needs_a_timezone_aware_now():
    with pytest.raises(ValueError, match="timezone"):
        slo_status(evaluate_slo(spec(), all_windows(0.0)), datetime(2024, 5, 1))


# ---------------------------------------------------------------- Prometheus rules

METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
PROM_DURATION = re.compile(r"^(([0-9]+)(y|w|d|h|m|s|ms))+$")


def rules_of(slo: ServiceLevelObjectiveSpec) -> list[dict]:
    file = prometheus_rules("web-availability", "shop", slo)
    assert list(file) == ["groups"] and len(file["groups"]) == 1
    return file["groups"][0]["rules"]


def balanced(expr: str) -> bool:
    depth = 0
    for char in expr:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0 and expr.count("{") == expr.count("}")


def test_the_rule_group_is_named_for_the_slo_and_evaluated_at_its_interval():
    group = prometheus_rules("web-availability", "shop", spec(evaluationInterval="15s"))["groups"][0]
    assert group["name"] == "remediator-slo-shop-web-availability"
    assert group["interval"] == "15s"


def test_one_recording_rule_per_window_in_sloth_style():
    records = [r for r in rules_of(spec()) if r.get("record", "").startswith("slo:sli_error:")]
    assert [r["record"] for r in records] == [
        "slo:sli_error:ratio_rate5m", "slo:sli_error:ratio_rate30m", "slo:sli_error:ratio_rate1h",
        "slo:sli_error:ratio_rate6h", "slo:sli_error:ratio_rate3d", "slo:sli_error:ratio_rate30d",
    ]
    assert records[0]["labels"] == {"slo_name": "web-availability", "slo_namespace": "shop",
                                    "slo_service": "web", "slo_window": "5m"}
    assert records[0]["expr"] == (
        '(sum(rate(http_requests_total{code=~"5..",namespace="shop",service="web"}[5m])))'
        ' / (sum(rate(http_requests_total{namespace="shop",service="web"}[5m])))'
    )


def test_a_good_total_sli_records_one_minus_good_over_total():
    slo = spec(sli={"goodTotal": {"good": GOOD, "total": TOTAL}})
    expr = next(r["expr"] for r in rules_of(slo) if r.get("record") == "slo:sli_error:ratio_rate1h")
    assert expr.startswith('1 - ((sum(rate(http_requests_total{code!~"5..",service="web"}[1h]))) / (')


def test_one_alert_per_policy_row_needing_both_windows_over_the_rate():
    alerts = [r for r in rules_of(spec()) if "alert" in r]
    assert [(a["labels"]["severity"], a["labels"]["long_window"], a["labels"]["short_window"],
             a["labels"]["burn_rate"]) for a in alerts] == [
        ("page", "1h", "5m", "14.4"), ("page", "6h", "30m", "6"), ("ticket", "3d", "6h", "1"),
    ]
    page = alerts[0]
    assert page["alert"] == "SLOErrorBudgetBurn"
    assert page["for"] == "1m"  # two evaluation intervals of 30s
    selector = '{slo_name="web-availability",slo_namespace="shop"}'
    assert page["expr"] == (
        f"(max without (slo_window) (slo:sli_error:ratio_rate1h{selector}) >= (14.4 * 0.001))"
        f" and (max without (slo_window) (slo:sli_error:ratio_rate5m{selector}) >= (14.4 * 0.001))"
    )
    assert "2% of the 30d budget" in page["annotations"]["description"]
    assert "{{ $value | humanizePercentage }}" in page["annotations"]["description"]
    assert page["annotations"]["summary"].endswith("≥ 14.4× over 1h and 5m: page")


def test_rules_are_valid_rule_file_syntax():
    file = prometheus_rules("web-availability", "shop", spec(windowScale=1 / 360))
    text = yaml.safe_dump(file, sort_keys=False, allow_unicode=True)
    assert yaml.safe_load(text) == file
    records = {r["record"] for r in file["groups"][0]["rules"] if "record" in r}
    assert len(records) == sum("record" in r for r in file["groups"][0]["rules"])  # clamped windows merge
    for rule in file["groups"][0]["rules"]:
        assert ("record" in rule) != ("alert" in rule)
        assert set(rule) <= {"record", "alert", "expr", "for", "labels", "annotations"}
        assert balanced(rule["expr"]), rule["expr"]
        assert "{{" not in rule["expr"]
        assert all(isinstance(v, str) for v in rule.get("labels", {}).values())
        if "record" in rule:
            assert METRIC_NAME.match(rule["record"])
        else:
            assert PROM_DURATION.match(rule["for"])
            used = set(re.findall(r"slo:sli_error:ratio_rate\w+", rule["expr"]))
            assert used and used <= records


def test_rules_are_deterministic():
    assert prometheus_rules("a", "b", spec()) == prometheus_rules("a", "b", spec())
    dump = [yaml.safe_dump(prometheus_rules("a", "b", spec()), allow_unicode=True) for _ in range(2)]
    assert dump[0] == dump[1]


def test_budget_remaining_and_objective_are_recorded_too():
    by_name = {r.get("record"): r for r in rules_of(spec())}
    assert by_name["slo:objective:ratio"]["expr"] == "vector(0.999)"
    assert by_name["slo:error_budget_remaining:ratio"]["expr"] == (
        '1 - (max without (slo_window) (slo:sli_error:ratio_rate30d{slo_name="web-availability",'
        'slo_namespace="shop"}) / 0.001)'
    )


@pytest.mark.parametrize("name, namespace", [("Web", "shop"), ("web", 'x"}'), ("", "shop")])
def test_rules_refuse_names_that_are_not_kubernetes_names(name, namespace):
    with pytest.raises(ValueError, match="not a valid Kubernetes object name"):
        prometheus_rules(name, namespace, spec())


def test_sli_templates_render_every_placeholder():
    rendered = render_sli_query('x{ns="{{ namespace }}",svc="{{service}}",slo="{{ slo }}"}[{{ window }}]',
                                window=90 * M, namespace="shop", service="web", slo="avail")
    assert rendered == 'x{ns="shop",svc="web",slo="avail"}[1h30m]'
