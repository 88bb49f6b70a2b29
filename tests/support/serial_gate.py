"""Tests that share one cluster from several pytest-xdist workers: a `serial` module runs alone.

Most tests touch only their own namespace and run side by side. A module marked `serial` changes or counts state
the whole cluster shares (Nodes, cluster-scoped objects, the apiserver itself, the storm hold-off and concurrency
that count every namespace): while it runs, no other test does. The workers agree through two file locks in a
directory of the run's own, a readers-writer lock with writer preference: every test holds `tests.lock` shared, a
serial module (`pytestmark`) holds it exclusive from its first test's setup to its last test's teardown (module
fixtures included: with `--dist loadfile` a module runs on one worker), a serial test for itself, and `turnstile.lock` keeps new shared holders out
while a serial module waits, so it is not starved by the other worker's stream of tests.

The locks are taken outside pytest-timeout's timer: waiting for the other worker is not the test's time.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path

import pytest


class SerialGate:
    def __init__(self, directory: Path):
        directory.mkdir(parents=True, exist_ok=True)
        self.turnstile = os.open(directory / "turnstile.lock", os.O_RDWR | os.O_CREAT, 0o600)
        self.tests = os.open(directory / "tests.lock", os.O_RDWR | os.O_CREAT, 0o600)
        self.alone_in: Path | None = None  # the serial module that holds the exclusive lock

    def enter(self, item: pytest.Item) -> None:
        if self.alone_in == item.path:
            return  # a serial module's next test: still alone
        if item.get_closest_marker("serial") is not None:
            fcntl.flock(self.turnstile, fcntl.LOCK_EX)  # no new shared holder from here on
            try:
                fcntl.flock(self.tests, fcntl.LOCK_EX)  # the other worker's current test finishes first
            finally:
                fcntl.flock(self.turnstile, fcntl.LOCK_UN)
            module = item.getparent(pytest.Module)
            self.alone_in = item.path if module is not None and module.get_closest_marker("serial") else None
        else:
            fcntl.flock(self.turnstile, fcntl.LOCK_EX)
            fcntl.flock(self.turnstile, fcntl.LOCK_UN)
            fcntl.flock(self.tests, fcntl.LOCK_SH)

    def leave(self, item: pytest.Item, nextitem: pytest.Item | None) -> None:
        if self.alone_in is not None and nextitem is not None and nextitem.path == self.alone_in:
            return  # its module fixtures are still set up
        self.alone_in = None
        fcntl.flock(self.tests, fcntl.LOCK_UN)


def gate_directory() -> Path | None:
    """One gate per test run, shared by its workers (pytest-xdist gives them one run id); None without xdist."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    return Path(tempfile.gettempdir()) / f"remediator-pytest-gate-{run}" if run else None
