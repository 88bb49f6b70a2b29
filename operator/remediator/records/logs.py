"""Structured logs carry the Remediation they are about, whichever module logs.

The loop sets `current_remediation` for the tick it runs (each tick runs in its
own thread with a copy of the context; what it hands to a pool goes with a copy
too: `submit_here`), and `RemediationFilter` on the handler adds it to every
record that does not name one itself.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import logging

current_remediation: contextvars.ContextVar[str | None] = contextvars.ContextVar("remediation", default=None)


class RemediationFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        name = current_remediation.get()
        if name is not None and not hasattr(record, "remediation"):
            record.remediation = name
        return True


def submit_here(pool: concurrent.futures.Executor, fn, *args) -> concurrent.futures.Future:
    """`pool.submit(fn, *args)` run in a copy of this context: its log lines name the same Remediation."""
    return pool.submit(contextvars.copy_context().run, fn, *args)
