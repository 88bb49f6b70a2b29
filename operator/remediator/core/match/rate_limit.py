"""Token buckets per caller, for the webhooks. Pure: the caller passes the time.

A bucket holds up to `burst` tokens and refills at `rate` per second; a request
takes one or is refused with the seconds until one is back (Retry-After). The
table of buckets is bounded: when full, the bucket idle longest is dropped
(a dropped caller starts again with a full bucket, which only errs towards
letting a request through).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    rate: float  # tokens per second
    burst: int

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError(f"a rate limit needs rate > 0 and burst >= 1, got {self.rate}/s burst {self.burst}")


class RateLimiter:
    def __init__(self, max_callers: int = 10_000):
        self.max_callers = max_callers
        self._buckets: OrderedDict[tuple, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def take(self, key: tuple, limit: Limit, now: float) -> float:
        """0 when the request may pass, else the seconds until the caller may try again."""
        tokens, at = self._buckets.pop(key, (float(limit.burst), now))
        tokens = min(float(limit.burst), tokens + max(0.0, now - at) * limit.rate)
        if tokens >= 1:
            self._remember(key, tokens - 1, now)
            return 0.0
        self._remember(key, tokens, now)
        return (1 - tokens) / limit.rate

    def _remember(self, key: tuple, tokens: float, now: float) -> None:
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self.max_callers:
            self._buckets.popitem(last=False)


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
