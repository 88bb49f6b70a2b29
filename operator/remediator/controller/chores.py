"""The active replica's periodic chores (sweeps, re-sends) share one loop: a standby does nothing, a replica
made active works soon, and a failing pass is logged and tried again next period instead of ending the chore."""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

log = logging.getLogger("remediator.chores")


async def every(period: float, active: Callable[[], bool], work: Callable[[], object], what: str,
                first_after: float | None = None, standby_poll: float | None = None) -> None:
    """Run `work` (blocking; in a thread) every `period` s while `active()`; first after `first_after` s
    (default: one period). A standby checks again every `standby_poll` s (default: one period)."""
    await asyncio.sleep(period if first_after is None else first_after)
    while True:
        if not active():
            await asyncio.sleep(period if standby_poll is None else min(period, standby_poll))
            continue
        try:
            await asyncio.to_thread(work)
        except Exception as e:  # noqa: BLE001  a passing apiserver error must not end the chore
            log.warning(f"{what} failed", extra={"error": str(e)})
        await asyncio.sleep(period)
