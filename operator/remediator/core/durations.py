"""Durations as the CRDs write them ("30s", "5m", "1h30m", "7d", "250ms"), and RFC 3339 times.

The grammar is exactly `remediator.api.models.DURATION_PATTERN`: one or more
`<digits><unit>` groups, units ms, s, m, h, d, w (a day is 24h, a week 7d; no
calendar arithmetic). No sign, no spaces, no fractions: what the apiserver
accepts is what we parse, so a value never means one thing in the schema and
another here.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from remediator.api.models import DURATION_PATTERN

_WHOLE = re.compile(DURATION_PATTERN)
# "ms" before "m": regex alternation takes the first alternative that fits.
_PART = re.compile(r"([0-9]+)(ms|s|m|h|d|w)")
_UNIT = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}
_EXAMPLES = "e.g. 30s, 5m, 1h30m, 7d, 250ms"
# Any wait longer is "for ever" (a retention of 999999d is one): past it, the sum stops being a timedelta and now
# plus it stops being a date. The CRDs refuse a longer one (api/crds.py), as does every parse here.
MAX_DURATION = timedelta(days=999999)
MAX_DURATION_TEXT = "999999d"


def parse_duration(text: str) -> timedelta:
    """`"1h30m"` -> `timedelta(hours=1, minutes=30)`; ValueError naming the bad value otherwise."""
    if not isinstance(text, str):
        # ValueError, not TypeError: pydantic validators turn it into a validation message.
        raise ValueError(  # noqa: TRY004
            f"duration must be a string like {_EXAMPLES}, got {type(text).__name__} {text!r}"
        )
    if not _WHOLE.fullmatch(text):  # `$` alone lets a trailing newline through
        raise ValueError(
            f"invalid duration {text!r}: expected digits followed by a unit (ms, s, m, h, d, w), "
            f"repeated, with no spaces or sign ({_EXAMPLES})"
        )
    total = timedelta()
    try:
        for amount, unit in _PART.findall(text):
            total += int(amount) * _UNIT[unit]
    except OverflowError:
        total = MAX_DURATION + timedelta(days=1)
    if total > MAX_DURATION:
        raise ValueError(f"duration {text[:40]!r} is too long: at most {MAX_DURATION_TEXT}")
    return total


def format_duration(delta: timedelta) -> str:
    """`timedelta(minutes=3, seconds=40)` -> `"3m40s"`, in days, hours, minutes, seconds, ms.

    Zero is "0s"; parts that are zero are left out; anything finer than a
    millisecond is dropped (rounded towards zero). The result parses back with
    `parse_duration` to the same value at millisecond resolution.
    """
    if delta < timedelta(0):
        raise ValueError(f"cannot format a negative duration ({delta})")
    millis = delta // timedelta(milliseconds=1)
    if millis == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with a Z, to the second, as Kubernetes writes times: 2024-05-01T10:12:00Z."""
    utc = _utc(moment)
    return f"{utc.year:04d}-{utc:%m-%dT%H:%M:%S}Z"  # %Y does not pad years before 1000


def iso_time(moment: datetime) -> str:
    """RFC 3339 in UTC with a Z, with the microseconds when there are any: the status stamps the loop writes."""
    return _utc(moment).isoformat().replace("+00:00", "Z")


def micro_time(moment: datetime) -> str:
    """RFC 3339 in UTC with a Z and always six fractional digits, as the apiserver parses a MicroTime (Lease and
    Event times): the client's isoformat drops them when they are zero, and the apiserver refuses that. Fixed
    width, so these stamps also sort as text."""
    utc = _utc(moment)
    return f"{utc.year:04d}-{utc:%m-%dT%H:%M:%S.%f}Z"


# RFC 3339 section 5.6, with its note 5.6 liberties (a space or lower-case t/z); any fraction (Go writes
# nanoseconds: cut to microseconds); the offset optional here only so its absence gets its own message.
_RFC3339 = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})?")


def parse_time(text: str) -> datetime:
    """An RFC 3339 time ("Z" or an offset, any fraction) as an aware datetime. ValueError for anything else,
    and for a time without an offset: its zone would be a guess."""
    shape = _RFC3339.fullmatch(text.strip()) if isinstance(text, str) else None
    try:
        if shape is None:
            raise ValueError
        parsed = datetime.fromisoformat(shape.group(0).upper())
    except ValueError:  # the shape, or a day or hour that does not exist (2024-02-30)
        raise ValueError(f"invalid RFC 3339 time {text!r} (e.g. 2024-05-01T10:12:00Z)") from None
    if parsed.tzinfo is None:
        raise ValueError(f"time {text!r} has no UTC offset")
    return parsed


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:  # astimezone would read a naive time in the host's zone
        raise ValueError(f"time {moment} has no timezone; pass an aware datetime")
    return moment.astimezone(UTC)


def format_ago(delta: timedelta) -> str:
    """A human span to the second for reasons ("4m", "1h2m3s"); negative spans read as 0s."""
    return format_duration(max(timedelta(0), timedelta(seconds=int(delta.total_seconds()))))

