"""Real Prometheus and Alertmanager (Debian packages) on loopback, for tests and the demo.

Each gets its own work directory, a free port and a generated config; both are
started as the packaged binaries (`/usr/bin/prometheus`,
`/usr/bin/prometheus-alertmanager`), installed by e2e/bootstrap.sh.

Alertmanager delivers to the operator's receiver with `webhook_configs` and
bearer auth read from a file, as a production install would.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests
import yaml

PROMETHEUS_BIN = "prometheus"
ALERTMANAGER_BIN = "prometheus-alertmanager"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def binary(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/bin:/usr/sbin")
    if path is None:
        raise RuntimeError(f"{name} is not installed: run `bash e2e/run-tests` or `bash e2e/demo` once, "
                           f"they install the Debian packages prometheus and prometheus-alertmanager")
    return path


def terminate(proc: subprocess.Popen | None, timeout: float = 15) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout`."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Daemon:
    """A loopback server process with a readiness URL; stop() and start() keep its port and data."""

    name = "daemon"

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def write_config(self) -> None:
        raise NotImplementedError

    def start(self, timeout: float = 60) -> None:
        self.write_config()
        log = open(self.workdir / f"{self.name}.log", "ab")
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                if requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {timeout}s: {self.log_tail()}")

    def stop(self) -> None:
        terminate(self.proc)
        self.proc = None

    def log_tail(self, lines: int = 20) -> str:
        path = self.workdir / f"{self.name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class Prometheus(Daemon):
    """Scrapes `targets` (host:port) every `scrape_interval`, evaluates `rule_files`, alerts to Alertmanager."""

    name = "prometheus"

    def __init__(self, workdir: Path, targets: list[str] | None = None, rule_files: list[Path] | None = None,
                 alertmanager: str | None = None, scrape_interval: str = "1s"):
        super().__init__(workdir)
        self.targets = list(targets or [])
        self.rule_files = list(rule_files or [])
        self.alertmanager = alertmanager
        self.scrape_interval = scrape_interval

    def write_config(self) -> None:
        cfg: dict = {
            "global": {"scrape_interval": self.scrape_interval, "evaluation_interval": self.scrape_interval},
            "scrape_configs": [{"job_name": "sample-service",
                                "static_configs": [{"targets": self.targets}]}],
            "rule_files": [str(p) for p in self.rule_files],
        }
        if self.alertmanager:
            cfg["alerting"] = {"alertmanagers": [{"static_configs": [
                {"targets": [self.alertmanager.removeprefix("http://")]}]}]}
        (self.workdir / "prometheus.yml").write_text(yaml.safe_dump(cfg))

    def command(self) -> list[str]:
        return [binary(PROMETHEUS_BIN), f"--config.file={self.workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.workdir / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle", "--storage.tsdb.retention.time=1d"]

    def reload(self, targets: list[str] | None = None, rule_files: list[Path] | None = None) -> None:
        """New targets or rules without a restart."""
        if targets is not None:
            self.targets = list(targets)
        if rule_files is not None:
            self.rule_files = list(rule_files)
        self.write_config()
        requests.post(f"{self.url}/-/reload", timeout=10).raise_for_status()

    def query(self, promql: str) -> list:
        body = requests.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=5).json()
        return body["data"]["result"]

    def wait_for_series(self, promql: str, timeout: float = 60) -> list:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.query(promql)
            if result:
                return result
            time.sleep(0.5)
        raise TimeoutError(f"no series for {promql} after {timeout}s")


class Alertmanager(Daemon):
    """Routes every alert to the operator's receiver, quickly (tests wait seconds, not minutes)."""

    name = "alertmanager"

    def __init__(self, workdir: Path, receiver_url: str, token_file: Path, repeat_interval: str = "1m",
                 oncall_url: str | None = None):
        super().__init__(workdir)
        self.receiver_url = receiver_url
        self.token_file = token_file
        self.repeat_interval = repeat_interval
        self.oncall_url = oncall_url  # a second receiver: the operator's RemediationEscalated alerts page it

    def write_config(self) -> None:
        cfg = {
            "route": {"receiver": "remediator", "group_by": ["alertname", "namespace", "slo_name", "severity"],
                      "group_wait": "1s", "group_interval": "2s", "repeat_interval": self.repeat_interval},
            "receivers": [{"name": "remediator", "webhook_configs": [{
                "url": self.receiver_url, "send_resolved": True, "max_alerts": 0,
                "http_config": {"authorization": {"type": "Bearer", "credentials_file": str(self.token_file)}},
            }]}],
        }
        if self.oncall_url:  # as an install routes them to its pager; never back to the operator
            cfg["route"]["routes"] = [{"receiver": "oncall", "matchers": ['alertname="RemediationEscalated"'],
                                       "group_by": ["alertname", "namespace", "remediation"]}]
            cfg["receivers"].append({"name": "oncall", "webhook_configs": [
                {"url": self.oncall_url, "send_resolved": True, "max_alerts": 0}]})
        (self.workdir / "alertmanager.yml").write_text(yaml.safe_dump(cfg))

    def command(self) -> list[str]:
        return [binary(ALERTMANAGER_BIN), f"--config.file={self.workdir / 'alertmanager.yml'}",
                f"--storage.path={self.workdir / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address="]

    def alerts(self) -> list:
        return requests.get(f"{self.url}/api/v2/alerts", timeout=5).json()


class Receiver:
    """A webhook receiver on loopback (a real socket) standing in for a pager: records every notification
    Alertmanager delivers (its webhook JSON), in arrival order."""

    def __init__(self) -> None:
        self.notifications: list[dict] = []
        received = self.notifications

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802  the stdlib's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/pager"

    def alerts(self, status: str, **labels: str) -> list[dict]:
        """Alerts delivered with `status` (firing|resolved) whose labels include `labels`."""
        return [a for n in list(self.notifications) for a in n.get("alerts", [])
                if a.get("status") == status and labels.items() <= a.get("labels", {}).items()]

    def __enter__(self) -> "Receiver":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
