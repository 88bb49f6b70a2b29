"""Freeze windows: is one in force now, and how long until the next one starts.

Pure: windows and `now` in, a `FreezeStatus` with reasons out. A window is the
half-open interval [start, end), both RFC 3339 times with an offset.

Safe by default: a window we cannot read (unparsable time, no UTC offset, end
not after start) is treated as *in force*, with a reason naming it, so a typo
in a policy stops remediation loudly instead of silently lifting a freeze.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from remediator.api.models import FreezeWindow
from remediator.core.durations import parse_time


@dataclass(frozen=True)
class FreezeStatus:
    active: tuple[FreezeWindow, ...]
    next_window: FreezeWindow | None
    next_starts_in: timedelta | None
    reasons: tuple[str, ...]

    @property
    def inside(self) -> bool:
        return bool(self.active)


def freeze_status(windows: Iterable[FreezeWindow], now: datetime) -> FreezeStatus:
    require_aware(now)
    active: list[FreezeWindow] = []
    upcoming: list[tuple[datetime, FreezeWindow]] = []
    reasons: list[str] = []
    for window in windows:
        bounds = _window_bounds(window)
        if isinstance(bounds, str):
            active.append(window)
            reasons.append(f"freeze window {window.name!r} is unreadable ({bounds}): treated as in force")
            continue
        start, end = bounds
        if start <= now < end:
            active.append(window)
            reasons.append(f"inside freeze window {window.name!r} until {window.end}")
        elif now < start:
            upcoming.append((start, window))
    if not upcoming:
        return FreezeStatus(tuple(active), None, None, tuple(reasons))
    start, window = min(upcoming, key=lambda pair: pair[0])
    starts_in = start - now
    reasons.append(f"next freeze window {window.name!r} starts in {format_timedelta(starts_in)}")
    return FreezeStatus(tuple(active), window, starts_in, tuple(reasons))


def format_timedelta(delta: timedelta) -> str:
    """Compact and human: 45s, 12m, 2h5m, 3d4h."""
    seconds = max(0, int(delta.total_seconds()))
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    if days:
        return f"{days}d{hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m"
    return f"{seconds}s"


def require_aware(now: datetime) -> None:
    # Comparing a naive clock with offset-carrying policy times would silently use the host's zone.
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")


def _window_bounds(window: FreezeWindow) -> tuple[datetime, datetime] | str:
    try:
        start, end = parse_time(window.start), parse_time(window.end)
    except ValueError as err:
        return str(err)
    if end <= start:
        return f"end {window.end} is not after start {window.start}"
    return start, end
