"""Which ended Remediations to delete (pure: candidates, each one's retention and now in; names out, with why).

A Remediation goes once it ended, its outcome is folded into its Runbook's status and any escalation posted
(`foldedIntoRunbook`: the same status write records both), and it finished longer ago than its namespace's
`spec.retention.terminalRemediations`, and than any guard still counts it (its Runbook's cooldown, the hourly
run limit, the circuit breaker's and the storm hold-off's windows): the guards read ended Remediations, so a
retention shorter than their windows would reopen them. Anything else stays, and says why. The age counts from
`finishedAt` (never before the start the report counts from), so a report window no longer than the retention
still sees every incident that started in it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from remediator.api.models import TERMINAL_PHASES, RemediationPolicySpec, Retention
from remediator.core.durations import format_duration, format_time, parse_duration
from remediator.core.plan.guards import RATE_WINDOW, PastRemediation
from remediator.core.match.policy_select import effective_policy

Keep = tuple[timedelta, str]  # how long an ended Remediation stays, and what sets it
UNTIL_COUNTED: Keep = (timedelta.max, "until its Runbook's signalStats count it")


@dataclass(frozen=True, slots=True)
class Candidate:
    """An ended-or-open Remediation as the sweep judges it: the watch-fed index's entry, not the object."""

    namespace: str
    name: str
    resource_version: str  # the delete's precondition: a version is never reused, even by a re-created object
    runbook_key: str  # "namespace/name" of the Runbook its spec names
    phase: str
    folded: bool  # its outcome is in its Runbook's status (foldedIntoRunbook)
    finished_at: datetime | None  # when it ended; when it started (or was created) if it says no end
    deleting: bool = False

    @classmethod
    def of(cls, namespace: str, past: PastRemediation, folded: bool, deleting: bool = False) -> Candidate:
        return cls(namespace, past.name, past.resource_version, past.runbook_key, past.phase, folded,
                   past.last_seen, deleting)


@dataclass(frozen=True)
class Verdict:
    namespace: str
    name: str
    resource_version: str
    delete: bool
    reason: str


def kept_for(policy: RemediationPolicySpec | None, cooldown: str | None) -> Keep:
    """The retention of `policy` (the default without one), or longer while a guard still counts the
    Remediation. An unreadable window counts for nothing here: its guard blocks until it is fixed anyway."""
    policy = policy or RemediationPolicySpec()
    candidates = [(policy.retention.terminal_remediations, "the retention"), (cooldown, "its Runbook's cooldown"),
                  (policy.circuit_breaker.window, "the circuit breaker's window"),
                  (policy.storm_holdoff.window, "the storm hold-off's window")]
    keeps = [(RATE_WINDOW, "the hourly run limit")]  # also risk's recent failures (guard_inputs: the last hour)
    for text, why in candidates:
        try:
            keeps.append((parse_duration(text), why))
        except (TypeError, ValueError):
            continue
    return max(keeps, key=lambda k: k[0])


def judge(candidate: Candidate, keep: Keep, now: datetime) -> Verdict:
    def verdict(delete: bool, reason: str) -> Verdict:
        return Verdict(candidate.namespace, candidate.name, candidate.resource_version, delete, reason)

    if candidate.deleting:
        return verdict(False, "being deleted already")
    if candidate.phase not in TERMINAL_PHASES:
        return verdict(False, "open")
    if not candidate.folded:
        return verdict(False, "ended, its outcome not yet folded into its Runbook")
    if candidate.finished_at is None:
        return verdict(False, "ended at an unknown time")
    age = now - candidate.finished_at
    kept, why = keep
    if keep == UNTIL_COUNTED:
        return verdict(False, f"kept {why}")
    if age <= kept:
        return verdict(False, f"ended {format_duration(age)} ago, kept for {format_duration(kept)} ({why})")
    return verdict(True, f"ended {format_duration(age)} ago, past {format_duration(kept)} ({why})")


def select(candidates: Iterable[Candidate], keep_of: Callable[[Candidate], Keep], now: datetime) -> list[Verdict]:
    """The Remediations to delete, each with its reason; `keep_of(candidate)` says how long that one stays."""
    out = []
    for candidate in candidates:
        keep = keep_of(candidate)
        if candidate.finished_at is not None and now - candidate.finished_at <= keep[0]:
            continue  # young enough to stay: most of them, whose reason in words no sweep reads
        verdict = judge(candidate, keep, now)
        if verdict.delete:
            out.append(verdict)
    return out


def retention_of(policies: Sequence[tuple[str, Mapping]], namespace: str, labels: Mapping[str, str]) -> timedelta:
    """The namespace's effective policy's retention; the default when no policy applies."""
    policy = effective_policy(policies, namespace, labels)
    return parse_duration((policy or RemediationPolicySpec()).retention.terminal_remediations)


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
