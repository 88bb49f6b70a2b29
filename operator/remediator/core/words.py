"""Small helpers for the human-readable reasons the core writes."""

from __future__ import annotations

import math


def significant(value: float, digits: int = 3) -> str:
    """At most `digits` significant digits, never in exponent form: 820, 14.4, 6.1, 0.0123."""
    if value == 0 or not math.isfinite(value):
        return str(0 if value == 0 else value)
    decimals = max(digits - 1 - math.floor(math.log10(abs(value))), 0)
    text = f"{round(value, decimals):.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
