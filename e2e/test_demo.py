"""The README's main command, run as a user would: the whole loop on real parts, exit 0 on a verified rollback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# runs alone: the whole demo: its policy, Prometheus and operator
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.serial]

REPO = Path(__file__).resolve().parents[1]


def test_the_demo_rolls_back_a_bad_rollout_after_a_slack_approval_and_verifies_recovery():
    proc = subprocess.run([sys.executable, "-m", "e2e.demo", "--namespace", "remediator-demo-ci", "--timeout", "240"],
                          cwd=REPO, capture_output=True, text=True, timeout=540)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    story = ["injecting a bad rollout", "SLO burning", "AwaitingApproval", "approval requested in Slack",
             "clicked Approve", "Succeeded: verified", "web now runs registry.local/web:1.0",
             "recovered and verified"]
    positions = [out.find(line) for line in story]
    assert -1 not in positions and positions == sorted(positions), out
