"""Run the real operator process (`python -m remediator run`) against the test cluster."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import requests
from e2e.monitoring import terminate

from .forked import ForkedProcess
from .waiting import wait_for
from remediator.core.durations import format_time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OperatorProcess:
    """One operator replica, watching the given namespaces, with its own webhook port and log file."""

    def __init__(self, kubeconfig: str, namespaces: list[str], workdir: Path, token: str = "test-token",
                 failpoints: str = "", extra_args: list[str] | None = None, env: dict | None = None,
                 forked: bool = True):
        self.kubeconfig = kubeconfig
        self.namespaces = namespaces
        self.workdir = workdir
        self.port = free_port()
        self.token = token
        self.failpoints = failpoints
        self.extra_args = extra_args or []
        self.env = env or {}
        # forked from a process that imported the operator once (support/forked.py), unless it is to run
        # another checkout (PYTHONPATH) or its CPU and memory are measured whole (the benchmarks)
        self.forked = forked and "PYTHONPATH" not in self.env
        self.proc: subprocess.Popen | ForkedProcess | None = None
        self.token_file = workdir / "alertmanager-token"
        self.token_file.write_text(token)
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"operator-{self.port}.log"

    def start(self, failpoints: str | None = None) -> "OperatorProcess":
        args = ["run", "--kubeconfig", self.kubeconfig,
                "--port", str(self.port), "--alertmanager-token-file", str(self.token_file),
                "--tick", "0.5", "--peering", "none", "--log-format", "text", *self.extra_args]
        for ns in self.namespaces:
            args += ["--namespace", ns]
        env = {**os.environ, **self.env, "REMEDIATOR_FAILPOINTS": self.failpoints if failpoints is None
               else failpoints}
        self.starts += 1
        with open(self.log_path, "a") as log:
            log.write(f"\n=== start #{self.starts} failpoints={env['REMEDIATOR_FAILPOINTS']!r}\n")
            log.flush()
            if self.forked:
                self.proc = ForkedProcess(args, env, str(self.log_path))
            else:
                self.proc = subprocess.Popen([sys.executable, "-m", "remediator", *args], stdout=log,
                                             stderr=subprocess.STDOUT, env=env)
        wait_for(self.healthy, timeout=60, what=f"operator healthz on {self.url} (log {self.log_path})")
        return self

    def healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"operator exited with {self.proc.returncode}; log:\n{self.log_tail()}")
        try:
            return requests.get(f"{self.url}/healthz", timeout=1).ok
        except requests.RequestException:
            return False

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text().splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def wait_killed(self, timeout: float = 60) -> int:
        """Wait for a failpoint to SIGKILL the process; returns its exit code (-9)."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"operator was not killed within {timeout}s; log:\n{self.log_tail()}")
            time.sleep(0.1)
        return self.proc.returncode

    def stop(self) -> None:
        terminate(self.proc)

    def post_alerts(self, payload: dict, token: str | None = None, **kw) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token if token is None else token}"}
        return requests.post(f"{self.url}/webhooks/alertmanager", json=payload, headers=headers, timeout=10, **kw)


def alert_payload(alerts: list[dict], status: str = "firing") -> dict:
    return {"version": "4", "status": status, "receiver": "remediator", "groupKey": "{}:{}",
            "truncatedAlerts": 0, "externalURL": "http://alertmanager.local", "alerts": alerts}


def alert(namespace: str, deployment: str, alertname: str = "HighErrorRate", fingerprint: str = "f00d",
          starts_at: str | None = None, status: str = "firing", **labels) -> dict:
    """An alert as Alertmanager sends it; by default it started 30 s ago."""
    if starts_at is None:
        starts_at = format_time(datetime.now(timezone.utc) - timedelta(seconds=30))
    return {"status": status,
            "labels": {"alertname": alertname, "namespace": namespace, "deployment": deployment,
                       "severity": "page", **labels},
            "annotations": {"summary": f"{alertname} on {deployment}"},
            "startsAt": starts_at, "endsAt": "0001-01-01T00:00:00Z", "fingerprint": fingerprint,
            "generatorURL": "http://prometheus.local/graph"}
