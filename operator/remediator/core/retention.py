"""Which ended Remediations to delete (pure: objects, each namespace's retention and now in; names out, with why).

A Remediation goes once it ended, its outcome is folded into its Runbook's status and any escalation posted
(`foldedIntoRunbook`: the same status write records both), and it finished longer ago than its namespace's
`spec.retention.terminalRemediations`. Anything else stays, and says why. The age counts from `finishedAt`
(never before the start the report counts from), so a report window no longer than the retention still sees
every incident that started in it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..api.models import TERMINAL_PHASES, Retention
from .durations import format_duration, format_time, parse_duration, parse_time
from .policy_select import effective_policy


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


def retention_of(policies: Sequence[tuple[str, Mapping]], namespace: str, labels: Mapping[str, str]) -> timedelta:
    """The namespace's effective policy's retention; the default when no policy applies."""
    policy = effective_policy(policies, namespace, labels)
    return parse_duration((policy.retention if policy else Retention()).terminal_remediations)


def shortest(policies: Sequence[tuple[str, Mapping]], namespaces: Mapping[str, Mapping[str, str]]) -> timedelta:
    """The shortest retention among these namespaces (name -> labels); the default when none is known."""
    return min((retention_of(policies, ns, labels) for ns, labels in namespaces.items()),
               default=parse_duration(Retention().terminal_remediations))


def coverage_note(since: datetime | None, now: datetime, kept: timedelta) -> str | None:
    """What a report from `since` misses when ended Remediations are kept only `kept`; None when nothing: an
    incident that started in range finished after it started, so it is still there."""
    complete_from = now - kept
    if since is not None and since >= complete_from:
        return None
    start = "the beginning" if since is None else format_time(since)
    return (f"ended Remediations are deleted {format_duration(kept)} after they finish "
            f"(RemediationPolicy spec.retention.terminalRemediations): incidents that ended before "
            f"{format_time(complete_from)} are gone, so figures from {start} to then are incomplete")
