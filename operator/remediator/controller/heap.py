"""Keep the operator's resident memory near what it actually holds, and its collector's pauses short.

A watch of ten thousand pods passes bursts of events through many threads;
glibc gives each thread an arena of its own and keeps freed pages, so RSS
stays at the burst's peak long after it. Two arenas and a periodic
malloc_trim hand those pages back. Both are glibc calls: on another libc
(musl in a slim image) they are skipped and nothing else changes.

Python's cyclic collector walks every tracked object in a full (oldest
generation) pass: with the caches, kopf and the models loaded that took 70-100
ms every ~15 s under incidents, holding the GIL, so whatever was in flight
(a plan, a webhook) waited for it. What survives a collection is frozen (moved
out of the collector's sight) every minute, so a full pass walks only what came
since; about hourly the freeze is lifted for one full collection, so cycles that
died while frozen are not kept for good.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import platform

log = logging.getLogger("remediator.heap")

M_ARENA_MAX = -8  # mallopt parameter, from glibc's malloc.h


def glibc() -> ctypes.CDLL | None:
    if platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return None


def limit_arenas(arenas: int = 2) -> bool:
    """Cap malloc arenas; only arenas made after this call are affected, so call it before threads start."""
    libc = glibc()
    return bool(libc and libc.mallopt(M_ARENA_MAX, arenas))


def trim() -> bool:
    """Return free heap pages to the kernel; True when some were released."""
    libc = glibc()
    return bool(libc and libc.malloc_trim(0))


async def trim_periodically(every: float = 10.0) -> None:
    if glibc() is None:
        log.info("not glibc: heap trimming is off")
        return
    while True:
        await asyncio.sleep(every)
        await asyncio.to_thread(trim)


FREEZE_EVERY = 60.0  # seconds
FULL_EVERY = 60  # freezes: one full collection about hourly


def freeze_survivors(full: bool = False) -> int:
    """Collect cyclic garbage (`full`: the frozen objects too), then freeze what survived; how many are frozen."""
    if full:
        gc.unfreeze()
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


async def freeze_periodically(every: float = FREEZE_EVERY, full_every: int = FULL_EVERY) -> None:
    freezes = 0
    while True:
        await asyncio.sleep(every)
        freezes += 1
        freeze_survivors(full=freezes % full_every == 0)
