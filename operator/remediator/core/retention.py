"""Which ended Remediations to delete (pure: objects, each namespace's retention and now in; names out, with why).

A Remediation goes once it ended, its outcome is folded into its Runbook's status and any escalation posted
(`foldedIntoRunbook`: the same status write records both), and it finished longer ago than its namespace's
`spec.retention.terminalRemediations`. Anything else stays, and says why. The age counts from `finishedAt`
(never before the start the report counts from), so a report window no longer than the retention still sees
every incident that started in it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..api.models import TERMINAL_PHASES
from .durations import format_duration, parse_time


@dataclass(frozen=True)
class Verdict:
    namespace: str
    name: str
    uid: str
    resource_version: str
    delete: bool
    reason: str


def judge(obj: Mapping, retention: timedelta, now: datetime) -> Verdict:
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}

    def verdict(delete: bool, reason: str) -> Verdict:
        return Verdict(meta.get("namespace", ""), meta.get("name", ""), meta.get("uid", ""),
                       meta.get("resourceVersion", ""), delete, reason)

    if meta.get("deletionTimestamp"):
        return verdict(False, "being deleted already")
    if status.get("phase") not in TERMINAL_PHASES:
        return verdict(False, "open")
    if not status.get("foldedIntoRunbook"):
        return verdict(False, "ended, its outcome not yet folded into its Runbook")
    try:
        finished = parse_time(status.get("finishedAt") or meta.get("creationTimestamp") or "")
    except ValueError:
        return verdict(False, "ended at an unreadable time")
    age = now - finished
    if age <= retention:
        return verdict(False, f"ended {format_duration(age)} ago, kept for {format_duration(retention)}")
    return verdict(True, f"ended {format_duration(age)} ago, past the retention of {format_duration(retention)}")


def select(objects: Iterable[Mapping], retention_of: Callable[[str], timedelta], now: datetime) -> list[Verdict]:
    """The Remediations to delete, each with its reason; `retention_of(namespace)` is that namespace's retention."""
    return [v for v in (judge(o, retention_of((o.get("metadata") or {}).get("namespace", "")), now)
                        for o in objects) if v.delete]
