"""Operator processes forked from a process that has imported the operator once.

Importing the operator costs ~4 s of CPU (the kubernetes client's API classes) and the suite starts it ~190
times. A multiprocessing fork server (one per pytest process) imports it once; each start forks it and runs
the `remediator` command's own entry point with the test's arguments and environment, so the process is the
one `python -m remediator run` makes, less the import. The demo and the benchmarks still exec the command.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import signal
import subprocess
import sys
import threading

# What `remediator run` imports before it serves; the fork server imports these once.
PRELOAD = ["remediator.cli", "remediator.controller.main", "remediator.controller.app"]

_context = None


def _forkserver():
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(PRELOAD)
    return _context


def _run_command(argv: list[str], env: dict[str, str], log_path: str) -> None:
    """The child: the test's environment and log, then the command's entry point, then what the interpreter
    does at exit (multiprocessing's child ends with os._exit, which would skip the operator's atexit flush)."""
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.environ.clear()
    os.environ.update(env)
    from remediator import failpoints
    failpoints.arm(env.get("REMEDIATOR_FAILPOINTS", ""))  # read at import, in the fork server's environment
    from remediator.cli import main
    sys.argv = ["remediator", *argv]
    try:
        code = main(argv)
    finally:  # the interpreter's own order at exit: threads joined, then the atexit functions
        threading._shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        atexit._run_exitfuncs()
    sys.exit(code)


class ForkedProcess:
    """What the tests use of subprocess.Popen, for a process the fork server made."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: str) -> None:
        self.args = ["remediator", *argv]
        self._process = _forkserver().Process(target=_run_command, args=(argv, env, log_path),
                                              name="remediator", daemon=True)  # ended if a test leaks it
        self._process.start()
        self.pid = self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def poll(self) -> int | None:
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self._process.exitcode

    def send_signal(self, sig: int) -> None:
        if self._process.exitcode is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)
