"""The rule table's helpers: the same answers as the apiserver's CEL libraries, and one message for both."""

from __future__ import annotations

import re

import pytest

from remediator.api.models import ACTIONS, TARGET_KINDS, ScaleParams
from remediator.api.rules import (
    ACTION_PARAMS,
    ACTION_TARGET_KINDS,
    RULES,
    Rule,
    cel_string,
    cel_validation,
    is_positive_quantity,
    message_expression,
    regex_problem,
    render_message,
    rfc3339,
)


@pytest.mark.parametrize("text", ["512Mi", "2Gi", "1.5Gi", "100M", "1e3", "128974848", "129e6", ".5Gi", "1k"])
def test_positive_kubernetes_quantities_are_accepted(text):
    assert is_positive_quantity(text)


@pytest.mark.parametrize("text", ["2 GB", "lots", "Gi", "1.2.3", "-1Gi", "0", "0Mi", "", "1GiB", "1gi", None])
def test_malformed_or_non_positive_quantities_are_refused(text):
    assert not is_positive_quantity(text)


@pytest.mark.parametrize("pattern", ["web-.*", r"\pL+", r"\p{Greek}", r"a\z", "(?<n>x)", "[[:alpha:]]+", ""])
def test_regexes_re2_accepts_are_accepted_though_python_spells_some_differently(pattern):
    assert regex_problem(pattern) is None


@pytest.mark.parametrize("pattern", ["web-(", "a)|(b", "[z-a]", "(?=x)", "(?<!x)y", r"(a)\1", "a++", "*"])
def test_regexes_re2_refuses_are_refused_with_a_reason(pattern):
    assert regex_problem(pattern)


@pytest.mark.parametrize(("text", "ok"), [
    ("2025-12-24T00:00:00Z", True), ("2025-12-24T00:00:00.123456789+05:30", True),
    ("2025-12-24T00:00:00", False), ("2025-12-24 00:00:00Z", False), ("2025-13-01T00:00:00Z", False),
    ("2025-02-31T00:00:00Z", False), ("tomorrow", False), (None, False),
])
def test_rfc3339_times_need_an_offset_and_a_real_date(text, ok):
    assert (rfc3339(text) is not None) is ok


@pytest.mark.parametrize(("value", "shown"), [(3.0, "3"), (2.5, "2.5"), (5, "5"), (True, "true"), ("x", "x")])
def test_values_print_as_cel_prints_them(value, shown):
    assert cel_string(value) == shown


def test_every_action_says_which_target_kinds_it_acts_on():
    assert set(ACTION_TARGET_KINDS) == set(ACTIONS)
    assert all(set(kinds) <= set(TARGET_KINDS) for kinds in ACTION_TARGET_KINDS.values())
    assert set(ACTION_PARAMS) <= set(ACTIONS)


def test_the_apiserver_message_is_the_python_message_with_values_in_place():
    rule = next(r for r in RULES if r.model is ScaleParams)
    wire = {"minReplicas": 5, "maxReplicas": 3}
    detail = rule.detail.replace("{minReplicas}", "%s").replace("{maxReplicas}", "%s")
    template = f"{rule.message} ({detail})"
    assert message_expression(rule) == f"'{template}'.format([self.minReplicas, self.maxReplicas])"
    assert render_message(rule, wire) == template % (5, 3)


def test_a_percent_sign_in_a_message_is_escaped_for_format():
    rule = Rule(ScaleParams, cel="true", holds=lambda _: True, message="at most 100%", detail="got {step}")
    assert message_expression(rule) == "'at most 100%% (got %s)'.format([self.step])"


def test_a_rule_without_details_has_a_plain_message():
    rule = Rule(ScaleParams, cel="true", holds=lambda _: True, message="no", field="step")
    assert cel_validation(rule) == {"rule": "true", "message": "no", "fieldPath": ".step"}


def test_every_rule_message_names_a_field_of_its_model():
    for rule in RULES:
        fields = {info.alias or name for name, info in rule.model.model_fields.items()}
        assert any(re.search(rf"\b{f}\b", rule.message) for f in fields), rule.message
        assert not rule.field or rule.field in fields, rule.field
