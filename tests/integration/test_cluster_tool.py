"""`python -m e2e.cluster` recovers a stale state dir and its `down` is idempotent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

# runs alone: starts a second control plane (both cores for a minute)
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.serial]

ROOT = Path(__file__).resolve().parents[2]


def cluster_tool(*args: str, name: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "REMEDIATOR_CLUSTER_NAME": name}
    env.pop("KUBECONFIG", None)
    return subprocess.run([sys.executable, "-m", "e2e.cluster", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_a_stale_state_dir_is_recreated_and_down_is_idempotent(kubeconfig):
    from e2e.cluster import control_plane

    if Path(kubeconfig) != control_plane.kubeconfig_path():
        pytest.skip("the tests run on a cluster given by KUBECONFIG; this checks the local control plane tool")
    name = "cp-stale-check"
    try:
        first = cluster_tool("up", name=name)
        assert first.returncode == 0, first.stderr
        state = json.loads(cluster_tool("status", name=name).stdout)
        assert state["apiserverReady"] and state["readyNodes"] == 3
        for pidfile in (Path(state["stateDir"]) / "pids").glob("*.pid"):
            try:
                os.kill(int(pidfile.read_text()), signal.SIGKILL)  # as if the session had ended
            except ProcessLookupError:
                pass
        assert not json.loads(cluster_tool("status", name=name).stdout)["apiserverReady"]

        again = cluster_tool("up", name=name)
        assert again.returncode == 0, again.stderr
        assert "not running: recreating it" in again.stdout
        assert json.loads(cluster_tool("status", name=name).stdout)["readyNodes"] == 3
    finally:
        assert cluster_tool("down", name=name).returncode == 0
    second_down = cluster_tool("down", name=name)
    assert second_down.returncode == 0 and "nothing to do" in second_down.stdout
