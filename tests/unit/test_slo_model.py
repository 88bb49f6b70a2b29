"""The ServiceLevelObjective model (api/slo.py): defaults, wire names and what it rejects, with why."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from remediator.api.slo import (
    BurnRateWindow,
    ServiceLevelObjectiveSpec,
    ServiceLevelObjectiveStatus,
    Sli,
    sli_template_problem,
)

BAD = 'sum(rate(http_requests_total{code=~"5..",namespace="{{ namespace }}",service="{{ service }}"}[{{ window }}]))'
TOTAL = 'sum(rate(http_requests_total{namespace="{{ namespace }}",service="{{ service }}"}[{{ window }}]))'
GOOD = 'sum(rate(http_requests_total{code!~"5..",service="web"}[{{window}}]))'


def wire_spec(**overrides) -> dict:
    spec = {
        "service": "web",
        "target": {"kind": "Deployment", "name": "web"},
        "sli": {"badTotal": {"bad": BAD, "total": TOTAL}},
        "objective": 99.9,
    }
    spec.update(overrides)
    return spec


def rejected(spec: dict) -> str:
    with pytest.raises(ValidationError) as caught:
        ServiceLevelObjectiveSpec.model_validate(spec)
    return str(caught.value)


def test_defaults_follow_the_sre_workbook_and_a_30_day_window():
    spec = ServiceLevelObjectiveSpec.model_validate(wire_spec())
    assert spec.window == "30d"
    assert spec.window_scale == 1.0
    assert spec.min_window == "1m"
    assert spec.evaluation_interval == "30s"
    assert [(w.severity, w.long_window, w.short_window, w.burn_rate) for w in spec.alerting.windows] == [
        ("page", "1h", "5m", 14.4),
        ("page", "6h", "30m", 6),
        ("ticket", "3d", "6h", 1),
    ]


def test_wire_names_are_camel_case_and_round_trip():
    spec = ServiceLevelObjectiveSpec.model_validate(wire_spec(windowScale=1 / 360, minWindow="2m"))
    wire = spec.wire()
    assert wire["windowScale"] == pytest.approx(1 / 360)
    assert wire["minWindow"] == "2m"
    assert wire["evaluationInterval"] == "30s"
    assert wire["alerting"]["windows"][0] == {
        "severity": "page", "longWindow": "1h", "shortWindow": "5m", "burnRate": 14.4,
    }
    assert ServiceLevelObjectiveSpec.model_validate(wire) == spec


def test_a_good_total_sli_is_accepted():
    spec = ServiceLevelObjectiveSpec.model_validate(wire_spec(sli={"goodTotal": {"good": GOOD, "total": TOTAL}}))
    assert spec.sli.good_total.good == GOOD
    assert spec.sli.bad_total is None


@pytest.mark.parametrize("sli", [
    {"goodTotal": {"good": GOOD, "total": TOTAL}, "badTotal": {"bad": BAD, "total": TOTAL}},
    {},
], ids=["both", "neither"])
def test_the_sli_must_be_exactly_one_of_good_total_or_bad_total(sli):
    assert "exactly one of goodTotal or badTotal" in rejected(wire_spec(sli=sli))


def test_the_crd_schema_carries_the_one_of_rule_for_the_apiserver():
    from remediator.api.crds import structural

    rules = structural(Sli)["x-kubernetes-validations"]
    assert rules == [{"rule": "has(self.goodTotal) != has(self.badTotal)",
                      "message": "set exactly one of goodTotal or badTotal"}]


@pytest.mark.parametrize("query, problem, rule", [
    ("sum(rate(http_requests_total[5m]))", "does not use '{{ window }}'", "bad must use '{{ window }}'"),
    ("sum(rate(x{pod=\"{{ labels.pod }}\"}[{{ window }}]))", "outside a placeholder", "only around a placeholder"),
    ("sum(rate(x[{{ window }}])) {{", "outside a placeholder", "only around a placeholder"),
    ("sum(rate(x{a=\"{{ nope }}\"}[{{ window }}]))", "the only placeholders are", "the only placeholders are"),
])
def test_an_sli_query_must_use_the_window_and_only_known_placeholders(query, problem, rule):
    assert problem in sli_template_problem(query)
    assert rule in rejected(wire_spec(sli={"badTotal": {"bad": query, "total": TOTAL}}))


@pytest.mark.parametrize("query", [BAD, TOTAL, GOOD, "sum(rate(x{slo=\"{{slo}}\"}[{{ window }}]))"])
def test_known_placeholders_with_or_without_spaces_are_fine(query):
    assert sli_template_problem(query) is None


@pytest.mark.parametrize("objective", [0, 100, -1, 100.5])
def test_the_objective_is_a_percentage_strictly_between_0_and_100(objective):
    assert "objective" in rejected(wire_spec(objective=objective))


@pytest.mark.parametrize("objective", [50, 99, 99.9, 99.99, 99.999])
def test_usual_objectives_are_accepted(objective):
    assert ServiceLevelObjectiveSpec.model_validate(wire_spec(objective=objective)).objective == objective


def test_a_short_window_must_be_shorter_than_its_long_window():
    with pytest.raises(ValidationError, match=r"shortWindow must be shorter than longWindow \(shortWindow 1h, longWindow 1h\)"):
        BurnRateWindow.model_validate({"severity": "page", "longWindow": "1h", "shortWindow": "1h",
                                       "burnRate": 14.4})


def test_an_alert_window_longer_than_the_slo_window_is_rejected():
    windows = [{"severity": "ticket", "longWindow": "3d", "shortWindow": "6h", "burnRate": 1}]
    message = rejected(wire_spec(window="1d", alerting={"windows": windows}))
    assert "longWindow must be at most the SLO window" in message and "(longWindow 3d, window 1d)" in message


@pytest.mark.parametrize("field, value", [
    ("window", "30 days"), ("minWindow", "1.5m"), ("evaluationInterval", "-30s"), ("window", ""),
])
def test_durations_must_match_the_crd_pattern(field, value):
    assert field in rejected(wire_spec(**{field: value}))


@pytest.mark.parametrize("field, value", [
    ("minWindow", "0s"), ("evaluationInterval", "0m"),
])
def test_zero_length_intervals_are_rejected(field, value):
    assert "longer than 0s" in rejected(wire_spec(**{field: value}))


@pytest.mark.parametrize("scale", [0, -0.5, 1.5])
def test_window_scale_shrinks_windows_and_never_grows_them(scale):
    assert "windowScale" in rejected(wire_spec(windowScale=scale))


@pytest.mark.parametrize("fields", [
    {"severity": "sev1"}, {"burnRate": 0}, {"longWindow": "1 hour"},
])
def test_an_alert_window_needs_a_known_severity_a_positive_rate_and_durations(fields):
    row = {"severity": "page", "longWindow": "1h", "shortWindow": "5m", "burnRate": 14.4, **fields}
    message = rejected(wire_spec(alerting={"windows": [row]}))
    assert next(iter(fields)) in message


def test_the_alerting_policy_needs_at_least_one_window():
    assert "windows" in rejected(wire_spec(alerting={"windows": []}))


@pytest.mark.parametrize("overrides", [
    {"service": "Web"}, {"service": 'web"}'}, {"target": {"kind": "Deployment", "name": "web/x"}},
    {"target": {"kind": "Pod", "name": "web"}},
], ids=["upper-case", "quote", "slash", "not-a-workload"])
def test_service_and_target_must_be_workload_names(overrides):
    rejected(wire_spec(**overrides))


def test_unknown_fields_are_an_error_not_silently_dropped():
    assert "objectve" in rejected(wire_spec(objectve=99.9))


def test_the_status_speaks_camel_case_and_leaves_out_what_it_does_not_know():
    status = ServiceLevelObjectiveStatus.model_validate({
        "sli": [{"window": "5m", "sli": 0.99, "errorRatio": 0.01}, {"window": "1h", "noDataReason": "total is 0"}],
        "errorBudgetRemaining": -0.25,
        "burnRates": [{"window": "5m", "burnRate": 10}],
        "alerts": [{"severity": "page", "longWindow": "1h", "shortWindow": "5m", "threshold": 14.4,
                    "longBurnRate": 20, "shortBurnRate": 21, "since": "2024-01-01T00:00:00Z"}],
        "conditions": [{"type": "Breaching", "status": "True", "reason": "PageBurnRate"}],
        "lastEvaluated": "2024-01-01T00:00:30Z",
        "baselineNotes": ["1h: no data (total is 0)"],
    })
    wire = status.wire()
    assert wire["errorBudgetRemaining"] == -0.25
    assert wire["sli"][1] == {"window": "1h", "noDataReason": "total is 0"}
    assert wire["alerts"][0]["longBurnRate"] == 20
    assert wire["conditions"][0]["reason"] == "PageBurnRate"
    assert ServiceLevelObjectiveStatus.model_validate(wire) == status
