"""Named crash points for drills: `REMEDIATOR_FAILPOINTS=after-intent` makes the process SIGKILL itself there.

Crash-safety is a product property, so it is drilled against the real
process: the chaos tests set a failpoint, watch the operator die at exactly
that boundary, restart it without one, and check nothing happened twice.
Unset (the default), `hit` is a dictionary lookup and nothing else.
"""

from __future__ import annotations

import os
import signal

# Every Remediation passes these; the chaos drills kill the operator at each one.
BOUNDARIES = ("after-plan", "after-intent", "after-action", "during-verify")
# Reached only when the target's GitOps owner is paused first (tests/unit/test_gitops_loop.py drills it).
GITOPS_BOUNDARIES = ("after-pause",)
_armed: frozenset[str] = frozenset()


def arm(names: str) -> None:
    """Arm the comma-separated failpoints (the environment's, at import)."""
    global _armed
    _armed = frozenset(p.strip() for p in names.split(",") if p.strip())


arm(os.environ.get("REMEDIATOR_FAILPOINTS", ""))


def hit(name: str) -> None:
    if name in _armed:
        os.kill(os.getpid(), signal.SIGKILL)
