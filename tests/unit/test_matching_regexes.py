"""Tenant regexes run in linear time, with the semantics Alertmanager (Go RE2) and admission give them."""

from __future__ import annotations

import time

import pytest

from remediator.api.models import Matcher, RunbookSpec, Signal
from remediator.api.rules import regex_problem
from remediator.core.match import matching
from remediator.core.match.matching import RunbookEntry, foreign_matches, match_signal, matcher_holds
from remediator.core.match.regexes import MAX_MATCHED_CHARS, RegexError, compile_anchored

CATASTROPHIC = r"(\w|\w)*!"  # exponential for a backtracking engine: 3.4 s at 24 characters, doubling per char


def test_a_catastrophic_regex_against_a_long_alertname_returns_in_milliseconds():
    matcher = Matcher(name="alertname", op="=~", value=CATASTROPHIC)
    for length in (26, 4096):
        labels = {"alertname": "a" * length}
        started = time.perf_counter()
        holds, _ = matcher_holds(matcher, labels)
        took = time.perf_counter() - started
        print(f"{CATASTROPHIC} against a {length}-character alertname: {took * 1000:.2f} ms")
        assert holds is False
        assert took < 1.0, f"{took:.2f} s: the regex engine backtracks"


def test_a_runbook_with_a_catastrophic_regex_does_not_delay_matching_the_others():
    spec = {"target": {"kind": "Deployment", "name": "web"}, "steps": [{"name": "r", "action": "restartRollout"}]}
    evil = RunbookEntry("shop", "evil", 1, RunbookSpec.model_validate(
        {**spec, "triggers": [{"alert": {"matchers": [{"name": "alertname", "op": "=~", "value": CATASTROPHIC}]}}]}))
    good = RunbookEntry("shop", "good", 1, RunbookSpec.model_validate(
        {**spec, "triggers": [{"alert": {"matchers": [{"name": "service", "value": "web"}]}}]}))
    signal = Signal(source="alertmanager", name="a" * 30, labels={"alertname": "a" * 30, "service": "web"})
    started = time.perf_counter()
    result = match_signal(signal, "shop", [evil, good])
    print(f"matching two Runbooks, one catastrophic, against a 30-character alertname: "
          f"{(time.perf_counter() - started) * 1000:.2f} ms")
    assert result.runbook is good
    assert time.perf_counter() - started < 1.0


def test_another_namespace_regex_is_never_run_to_explain_a_refusal(monkeypatch):
    ran: list[str] = []
    monkeypatch.setattr(matching, "full_match", lambda pattern, value: ran.append(pattern) or False, raising=False)
    spec = RunbookSpec.model_validate({
        "triggers": [{"alert": {"matchers": [{"name": "alertname", "value": "HighErrorRate"},
                                             {"name": "service", "op": "=~", "value": CATASTROPHIC}]}}],
        "target": {"kind": "Deployment", "name": "web"}, "steps": [{"name": "r", "action": "restartRollout"}]})
    team_a = RunbookEntry(namespace="team-a", name="errors", generation=1, spec=spec)
    signal = Signal(source="alertmanager", name="HighErrorRate",
                    labels={"alertname": "HighErrorRate", "namespace": "team-b", "service": "web"})
    refused = foreign_matches(signal, "team-b", [team_a])
    assert ran == []
    assert refused == [("Runbook team-a/errors matches the signal's labels but acts only in namespace 'team-a', "
                       "and the signal is about 'team-b': refused")]


def test_a_foreign_runbook_with_only_regex_matchers_is_not_offered_as_a_hint():
    spec = RunbookSpec.model_validate({
        "triggers": [{"alert": {"matchers": [{"name": "alertname", "op": "=~", "value": ".*"}]}}],
        "target": {"kind": "Deployment", "name": "web"}, "steps": [{"name": "r", "action": "restartRollout"}]})
    signal = Signal(source="alertmanager", name="X", labels={"alertname": "X", "namespace": "team-b"})
    assert foreign_matches(signal, "team-b", [RunbookEntry("team-a", "any", 1, spec)]) == []


@pytest.mark.parametrize("value, label, holds", [
    (r"\pL+", "héllo", True),          # RE2's Unicode classes: admission accepts them, so must the engine
    (r"\p{Greek}+", "λόγος", True),
    (r"(?<svc>web)-\d+", "web-1", True),  # Go 1.22+ named groups
    (r"\d+", "٣", False),               # \d is ASCII in RE2, Unicode in Python's re
    (r"\w+", "é", False),               # \w too
    (r"a.b", "a\nb", False),            # . never matches a newline
    ("web", "web\n", False),           # $ is the very end
    (r"a\z", "a", True),
    ("[[:alpha:]]+", "abc", True),
])
def test_regexes_mean_what_they_mean_to_alertmanager(value, label, holds):
    assert matcher_holds(Matcher(name="app", op="=~", value=value), {"app": label})[0] is holds


def test_a_regex_sees_only_the_first_1024_characters_of_a_label_value():
    assert MAX_MATCHED_CHARS == 1024  # the README says so
    long = "a" * MAX_MATCHED_CHARS + "b"
    assert matcher_holds(Matcher(name="app", op="=~", value="a*"), {"app": long})[0] is True
    assert matcher_holds(Matcher(name="app", op="=~", value=".*b"), {"app": long})[0] is False
    # equality compares the whole value
    assert matcher_holds(Matcher(name="app", op="=", value="a" * MAX_MATCHED_CHARS), {"app": long})[0] is False


def test_a_negative_regex_never_holds_on_a_value_longer_than_a_regex_sees():
    """`note !~ ".*do-not-remediate.*"` must not pass because the opt-out sits past the cut."""
    hidden = "x" * 1100 + "do-not-remediate"
    holds, why = matcher_holds(Matcher(name="note", op="!~", value=".*do-not-remediate.*"), {"note": hidden})
    assert holds is False and "cannot be shown to hold" in why
    assert matcher_holds(Matcher(name="note", op="!~", value=".*do-not-remediate.*"), {"note": "x" * 10})[0]


@pytest.mark.parametrize("pattern", [
    "web-.*", r"\pL+", r"\p{Greek}", r"a\z", "(?<n>x)", "(?P<n>x)", "[[:alpha:]]+", "", r"\Q.*\E", r"\\C",
    "web-(", "a)|(b", "[z-a]", "(?=x)", "(?<!x)y", r"(a)\1", "a++", "*", "a{1001}", r"\C", r"[\C]",
])
def test_admission_accepts_exactly_the_regexes_the_engine_runs(pattern):
    try:
        compile_anchored(pattern)
        runs = True
    except RegexError:
        runs = False
    assert (regex_problem(pattern) is None) is runs


@pytest.mark.parametrize("pattern", [r"\C", r"x\Cy", "(?=x)", "a++", "a{1001}"])
def test_regexes_go_refuses_are_refused_at_admission(pattern):
    assert regex_problem(pattern)


def test_a_regex_too_large_for_the_engine_never_matches_and_says_why():
    for op in ("=~", "!~"):
        holds, why = matcher_holds(Matcher(name="app", op=op, value=r"\pL{1000}"), {"app": "x"})
        assert holds is False and "pattern too large" in why
