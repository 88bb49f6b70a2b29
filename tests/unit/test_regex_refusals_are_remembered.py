"""A regex RE2 refuses as too large is compiled again (GIL held, ~12 ms) for every alert it meets."""

from __future__ import annotations

import re2

from remediator.core.match import regexes


def test_a_pattern_too_large_for_re2_is_compiled_once_not_once_per_alert(monkeypatch):
    calls = []
    real = re2.compile

    def counting(pattern, *args, **kwargs):
        calls.append(pattern)
        return real(pattern, *args, **kwargs)

    monkeypatch.setattr(regexes.re2, "compile", counting)
    pattern = r"\pL{1000}|redteam-" + "x" * 8  # admitted by the CRD (Go's RE2), refused here as too large
    for _ in range(100):  # one delivery of 100 alerts against one tenant matcher
        try:
            regexes.full_match(pattern, "web")
        except regexes.RegexError:
            pass
    assert len(calls) <= 2, f"compiled {len(calls)} times"
