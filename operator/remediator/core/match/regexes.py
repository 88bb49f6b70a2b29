"""Tenant-written matcher regexes, compiled and run as RE2: linear time, Alertmanager's semantics.

A Runbook's `=~`/`!~` value is untrusted. Python's `re` backtracks, so a
pattern like `(\\w|\\w)*!` takes seconds per extra character and holds the GIL
(webhooks, /healthz and kopf all stall). RE2 (`google-re2`, the C++ library
Go's regexp mirrors) runs in time linear in the value, with the same syntax
and meaning Alertmanager and the apiserver's CEL `matches()` use:

- anchored as Alertmanager anchors, `^(?:re)$`;
- `.` does not match a newline; `\\d`, `\\w`, `\\s` are ASCII;
- what RE2 refuses (lookaround, backreferences, possessive quantifiers) is
  refused here too, with RE2's own reason.

`\\C` (any single byte) is the one thing C++ RE2 accepts and Go refuses: it is
refused here. One gap remains the other way: a pattern whose compiled program
exceeds the memory budget below (e.g. `\\pL{1000}`) is admitted by Go but
refused here ("pattern too large"); it then never matches, with that reason.

Values are cut to MAX_MATCHED_CHARS before a regex sees them: linear time is
still time, and an alert label can be 4 KiB.
"""

from __future__ import annotations

from functools import lru_cache

import re2

MAX_MATCHED_CHARS = 1024

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a tenant's bad regex is reported as a reason, not logged to stderr by C++
# Each compiled regex may grow a DFA cache up to max_mem (RE2's default: 8 MiB); 1 MiB x COMPILED_KEPT
# bounds what tenants' regexes can hold. Past its budget RE2 falls back to its (still linear) NFA.
_OPTIONS.max_mem = 1 << 20
COMPILED_KEPT = 1024  # outcomes kept: compiled programs and refusals (a refused pattern is never compiled twice)


class RegexError(ValueError):
    """The pattern is not a regex Alertmanager (Go RE2) would accept."""


def regex_problem(pattern: str) -> str | None:
    """Why `pattern` would not compile as RE2 (Go's flavour), or None."""
    try:
        compile_anchored(pattern)
    except RegexError as err:
        return str(err)
    return None


def compile_anchored(pattern: str) -> re2._Regexp:
    """`pattern` compiled as Alertmanager compiles a matcher, `^(?:pattern)$`; RegexError if RE2 refuses it.
    Compiling holds the GIL (tens of ms for a large Unicode class), so refusals are remembered like successes."""
    outcome = _compiled(pattern)
    if isinstance(outcome, RegexError):
        raise outcome
    return outcome


@lru_cache(maxsize=COMPILED_KEPT)
def _compiled(pattern: str) -> re2._Regexp | RegexError:
    """The bare pattern is checked first: `a)|(b` compiles once wrapped, but is not a regex."""
    if _has_any_byte_escape(pattern):
        return RegexError(r"invalid escape sequence: \C (Go's RE2 has no any-byte escape)")
    try:
        re2.compile(pattern, _OPTIONS)
        return re2.compile(f"^(?:{pattern})$", _OPTIONS)
    except re2.error as err:
        reason = err.args[0] if err.args else err
        return RegexError(reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason))


def full_match(pattern: str, value: str) -> bool:
    """Whether `value` (its first MAX_MATCHED_CHARS characters) matches `pattern` whole; RegexError if invalid."""
    return compile_anchored(pattern).search(value[:MAX_MATCHED_CHARS]) is not None


def _has_any_byte_escape(pattern: str) -> bool:
    """A `\\C` that is an escape (an odd run of backslashes before the C), not an escaped backslash."""
    backslashes = 0
    for char in pattern:
        if char == "C" and backslashes % 2 == 1:
            return True
        backslashes = backslashes + 1 if char == "\\" else 0
    return False
