"""Starting Flux on a cluster where another start of it is under way: the second waits and reuses the first."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def test_two_flux_starts_at_once_on_one_cluster_leave_one_healthy_flux_and_neither_fails(flux):
    """Before the start lock a second `up` judged the first's still-starting Flux unhealthy and stopped it (every
    process in the state dir killed, the logs reopened): the first failed with all three exited and empty logs."""
    from e2e.cluster import flux as cluster_flux

    cluster_flux.stop()
    starts = [subprocess.Popen([sys.executable, "-m", "e2e.cluster", "up", "--with", "flux"], cwd=ROOT,
                               env=os.environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
              for _ in range(2)]
    outputs = [proc.communicate(timeout=300)[0] for proc in starts]
    assert [proc.returncode for proc in starts] == [0, 0], "\n".join(outputs)
    assert sum("reusing Flux" in out for out in outputs) == 1, "\n".join(outputs)
    now = cluster_flux.info()
    assert now["running"] and cluster_flux.healthy(now)
    flux.info.update(now)  # the session's Flux: the same processes the later tests use


def test_a_flux_controller_is_known_by_its_executable_while_its_arguments_are_not_yet_readable(tmp_path):
    """CI failed a healthy start: a controller checked right after exec read an empty /proc/<pid>/cmdline (the
    kernel had not yet set up its arguments) and was called dead. It is known by /proc/<pid>/exe instead; here its
    arguments name something else altogether, as an empty cmdline would."""
    from e2e.cluster import flux as cluster_flux

    controller = tmp_path / "kustomize-controller-v0.0.0"
    controller.write_bytes(Path("/bin/sleep").read_bytes())
    controller.chmod(0o755)
    proc = subprocess.Popen(["unrelated-name", "30"], executable=str(controller))
    try:
        assert cluster_flux.alive(proc.pid, "kustomize-controller")
        assert not cluster_flux.alive(proc.pid, "source-controller")
    finally:
        proc.kill()
        proc.wait()
    assert not cluster_flux.alive(proc.pid, "kustomize-controller")
