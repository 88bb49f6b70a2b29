"""The guards' and risk's inputs derived from plain records, shared by the operator and `remediator simulate`."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from remediator.api.models import TERMINAL_PHASES, RemediationSpec
from remediator.core import guards
from remediator.core.durations import parse_time

ROLLING_ACTIONS = frozenset({"restartRollout", "rollback", "raiseMemory"})
RECENT_FAILURES_WINDOW = timedelta(hours=1)


def namespace_share(namespace_pods: int | None, touched: int | None) -> float:
    """Share of the namespace's pods the action touches at once (0 when unknown)."""
    if not namespace_pods or not touched:
        return 0.0
    return min(1.0, touched / namespace_pods)


def recent_failures(past: Iterable[guards.PastRemediation], spec: RemediationSpec, now: datetime) -> int:
    """Runs of this Runbook in the last hour whose action ran and failed (skips, denials, cancels do not count)."""
    key = f"{spec.runbook.namespace}/{spec.runbook.name}"
    return sum(1 for p in past if p.runbook_key == key and p.failed
               and (p.finished_at or p.started_at or now) >= now - RECENT_FAILURES_WINDOW)


def pods_touched(action: str, replicas: int | None) -> int | None:
    """Pods taken down at once (see core.guards): a rolling change touches a quarter, at least one."""
    if action == "scale":
        return 0
    if action in ROLLING_ACTIONS:
        return None if replicas is None else max(1, math.ceil(replicas * 0.25))
    if action == "deletePod":
        return 1
    return None


def past_remediation(obj: Mapping[str, Any]) -> guards.PastRemediation:
    """An exported Remediation (`kubectl get remediations -A -o json` item) as the guards see it."""
    metadata = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    phase = status.get("phase", "Pending")
    started = status.get("startedAt") or metadata.get("creationTimestamp")
    finished = status.get("finishedAt")
    target = spec.get("target") or {}
    rb = spec.get("runbook") or {}
    target_key = (f"{target.get('kind')}/{target.get('namespace')}/{target.get('name')}" if target.get("namespace")
                  else f"{target.get('kind')}/{target.get('name')}")
    return guards.PastRemediation(
        name=str(metadata.get("name", "")),
        runbook_key=f"{rb.get('namespace', '')}/{rb.get('name', '')}",
        target_key=target_key,
        phase=phase,
        started_at=parse_time(started) if started else None,
        finished_at=parse_time(finished) if finished else None,
        succeeded=(phase == "Succeeded") if phase in TERMINAL_PHASES else None,
        acted=any(s.get("phase") != "Skipped" for s in status.get("steps") or []),
    )
