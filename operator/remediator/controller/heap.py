"""Keep the operator's resident memory near what it actually holds.

A watch of ten thousand pods passes bursts of events through many threads;
glibc gives each thread an arena of its own and keeps freed pages, so RSS
stays at the burst's peak long after it. Two arenas and a periodic
malloc_trim hand those pages back. Both are glibc calls: on another libc
(musl in a slim image) they are skipped and nothing else changes.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import platform

from ..records.metrics import HEAP_TRIMS

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


def freeze_startup() -> int:
    """Move what start-up built (modules, schemas, primed caches) out of the cyclic collector's reach, so that a
    full pass, which holds up every Python thread, walks only what came after: in the signal-to-action bench,
    passes of 85-92 ms became 10-14 ms. Frozen objects that become garbage are still freed by reference counting;
    only a reference cycle among them would stay. Once per process: later calls change nothing.
    Returns how many objects are frozen."""
    if not gc.get_freeze_count():
        gc.collect()  # start-up's own garbage first, or it would be kept for good
        gc.freeze()
    return gc.get_freeze_count()


def trim() -> bool:
    """Return free heap pages to the kernel; True when some were released. Timed
    (`remediator_heap_trim_seconds`): a thread that allocates meanwhile waits for it."""
    libc = glibc()
    if libc is None:
        return False
    with HEAP_TRIMS.time():
        return bool(libc.malloc_trim(0))


async def trim_periodically(every: float = 10.0) -> None:
    if glibc() is None:
        log.info("not glibc: heap trimming is off")
        return
    while True:
        await asyncio.sleep(every)
        await asyncio.to_thread(trim)
