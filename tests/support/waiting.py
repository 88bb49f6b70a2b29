"""Polling helpers for tests against a real apiserver (no fixed sleeps)."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_for(probe: Callable[[], T], timeout: float = 60, interval: float = 0.25, what: str = "condition") -> T:
    """Call `probe` until it returns something truthy; fail with the last value seen."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last value: {last!r}")
        time.sleep(interval)
