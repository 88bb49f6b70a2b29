"""A work queue of object keys, in the spirit of controller-runtime's workqueue, on asyncio.

Watch events add a key; workers take keys and process them; the processing says when the key is due again.
- A key is queued at most once: adding it again while it waits changes nothing.
- A key is never processed by two workers at once: added while being processed, it is queued again after.
- Delayed adds coalesce to the earliest due time; taking a key drops its delay (the processing sets the next).
- A failure re-adds the key with exponential backoff (per key, reset by a success); nothing is dropped.
- Keys added now (an event, or processing that asked to go on at once) are taken before keys whose delay ran
  out (probes, retries): a new incident does not wait behind every open one's periodic check. Each key is
  queued once, so the timed keys wait at most one pass over the others.
Everything runs on one event loop, so the bookkeeping needs no lock; the processing itself runs in threads.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Hashable

log = logging.getLogger("remediator.workqueue")

Key = Hashable


class WorkQueue:
    def __init__(self, base_delay: float = 0.5, max_delay: float = 60.0):
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._ready: deque[Key] = deque()  # added now
        self._timed: deque[Key] = deque()  # their delay ran out
        self._dirty: set[Key] = set()  # queued, or to be queued again once its processing ends
        self._processing: set[Key] = set()
        self._due: dict[Key, float] = {}  # loop time a delayed key becomes ready
        self._timers: dict[Key, asyncio.TimerHandle] = {}
        self._failures: dict[Key, int] = {}
        self._wakeup = asyncio.Event()

    def __len__(self) -> int:
        return len(self._ready) + len(self._timed)

    def add(self, key: Key) -> None:
        """Ready now (once, however often it is added)."""
        self._queue(key, self._ready)

    def _queue(self, key: Key, lane: deque[Key]) -> None:
        if key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            lane.append(key)
            self._wakeup.set()

    def add_after(self, key: Key, delay: float) -> None:
        """Ready in `delay` seconds, or sooner if already due sooner."""
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        if key in self._due and self._due[key] <= due:
            return
        self._cancel_delay(key)
        self._due[key] = due
        self._timers[key] = loop.call_at(due, self._fire, key)

    def add_rate_limited(self, key: Key) -> float:
        """After a failure: again after a backoff that doubles with each failure in a row."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        delay = min(self.base_delay * 2 ** failures, self.max_delay)
        self.add_after(key, delay)
        return delay

    def forget(self, key: Key) -> None:
        """A success: the next failure starts the backoff over."""
        self._failures.pop(key, None)

    def remove(self, key: Key) -> None:
        """The object is gone or finished: nothing more is due for it (a later event may add it again)."""
        self._cancel_delay(key)
        self._failures.pop(key, None)
        self._dirty.discard(key)
        for lane in (self._ready, self._timed):
            if key in lane:
                lane.remove(key)

    def clear(self) -> None:
        for key in list(self._due):
            self._cancel_delay(key)
        self._ready.clear()
        self._timed.clear()
        self._dirty.clear()
        self._failures.clear()

    async def get(self) -> Key:
        """The next ready key, now marked as being processed; call `done(key)` after."""
        while not self._ready and not self._timed:
            self._wakeup.clear()
            await self._wakeup.wait()
        key = (self._ready or self._timed).popleft()
        self._dirty.discard(key)
        self._cancel_delay(key)
        self._processing.add(key)
        return key

    def done(self, key: Key) -> None:
        self._processing.discard(key)
        if key in self._dirty:  # added while it was processed
            self._ready.append(key)
            self._wakeup.set()

    def due_in(self, key: Key) -> float | None:
        """Seconds until a delayed key is due; None when none is pending (for tests and diagnostics)."""
        due = self._due.get(key)
        return None if due is None else due - asyncio.get_running_loop().time()

    def _fire(self, key: Key) -> None:
        self._due.pop(key, None)
        self._timers.pop(key, None)
        self._queue(key, self._timed)

    def _cancel_delay(self, key: Key) -> None:
        self._due.pop(key, None)
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()


async def work(queue: WorkQueue, process: Callable[[Key], float | None], workers: int = 8,
               active: Callable[[], bool] = lambda: True, idle: float = 1.0) -> None:
    """Run `workers` workers until cancelled. `process(key)` runs in a thread and returns the seconds until
    the key is due again (0: at once) or None when it is finished; an exception retries it with backoff.
    While `active()` is false (a standby replica) no key is taken."""

    async def worker() -> None:
        while True:
            if not active():
                await asyncio.sleep(idle)
                continue
            key = await queue.get()
            if not active():  # stood down while waiting: leave the key for when we are active again
                queue.done(key)
                queue.add(key)
                continue
            try:
                again = await asyncio.to_thread(process, key)
            except Exception as e:  # noqa: BLE001  a passing apiserver error must not drop the key
                delay = queue.add_rate_limited(key)
                log.warning("processing failed; retrying", extra={"key": str(key), "error": str(e),
                                                                   "retry_in": delay})
            else:
                queue.forget(key)
                if again is None:
                    queue.remove(key)
                else:
                    queue.add_after(key, again)
            finally:
                queue.done(key)

    tasks = [asyncio.create_task(worker(), name=f"worker-{i}") for i in range(workers)]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
