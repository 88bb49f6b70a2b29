"""Webhook rate limits: a burst, then a steady rate, per caller, in bounded memory."""

import pytest

from remediator.core.match.rate_limit import Limit, RateLimiter, retry_after_header

LIMIT = Limit(rate=2, burst=3)


def test_a_caller_gets_its_burst_then_is_told_when_to_come_back():
    limiter = RateLimiter()
    assert [limiter.take(("a",), LIMIT, 0.0) for _ in range(3)] == [0, 0, 0]
    wait = limiter.take(("a",), LIMIT, 0.0)
    assert wait == pytest.approx(0.5) and retry_after_header(wait) == "1"


def test_tokens_come_back_at_the_rate_and_never_beyond_the_burst():
    limiter = RateLimiter()
    for _ in range(3):
        limiter.take(("a",), LIMIT, 0.0)
    assert limiter.take(("a",), LIMIT, 0.5) == 0  # one token back after 0.5 s at 2/s
    assert limiter.take(("a",), LIMIT, 0.5) > 0
    assert [limiter.take(("a",), LIMIT, 100.0) for _ in range(4)][:3] == [0, 0, 0]
    assert limiter.take(("a",), LIMIT, 100.0) > 0, "an idle hour does not bank more than the burst"


def test_one_flooding_caller_does_not_take_anothers_tokens():
    limiter = RateLimiter()
    for _ in range(100):
        limiter.take(("flood",), LIMIT, 1.0)
    assert limiter.take(("alertmanager",), LIMIT, 1.0) == 0


def test_the_table_of_callers_is_bounded_and_forgets_the_idlest():
    limiter = RateLimiter(max_callers=2)
    for _ in range(3):
        limiter.take(("a",), LIMIT, 0.0)
    limiter.take(("b",), LIMIT, 0.0)
    limiter.take(("c",), LIMIT, 0.0)
    assert limiter.take(("a",), LIMIT, 0.0) == 0, "a was dropped and starts afresh"


def test_a_limit_must_be_usable():
    with pytest.raises(ValueError):
        Limit(rate=0, burst=1)
    with pytest.raises(ValueError):
        Limit(rate=1, burst=0)
