"""Compact rollout counts that outlive the ReplicaSet history and the operator (pure: plain data in and out).

One document per namespace: per workload ("Kind/name") the uid of the workload counted, the highest revision
counted, rollouts per UTC day, and the revisions an incident's probable cause named (day of the rollout):

    {"version": 1, "namespace": "shop", "workloads": {"Deployment/web": {
        "uid": "…", "revision": 7, "days": {"2026-12-01": 3}, "failed": {"7": "2026-12-01"},
        "retired": ["uid of a deleted workload of that name"]}}}

A rollout is counted once: only a revision above the highest counted for the same workload uid adds to its
day, so a restart that replays the ReplicaSet history (or a second replica's merge) adds nothing. Bounded:
days older than `keep_days` are pruned (a replayed rollout that old is not counted again either), and at most
`cap` workloads are kept (those that rolled out last).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from remediator.core.durations import parse_time

VERSION = 1
KEEP_DAYS = 31  # the report's and the retention's default 30 days, reaching into the 31st calendar day
CAP = 1000  # workloads per namespace: ~600 bytes each at a rollout every day, far below a ConfigMap's 1 MiB
RETIRED = 3  # uids of earlier workloads of the same name, whose replayed revisions are not counted again
MAX_BYTES = 800_000  # and whatever their names' length, the document stays below it (a ConfigMap holds 1 MiB)


@dataclass(frozen=True, order=True)
class Seen:
    """A rollout the change journal saw: a workload's revision, created at `at`."""

    revision: int
    workload: str  # Kind/name
    uid: str  # the workload's uid ("" when unknown)
    at: datetime


@dataclass(frozen=True)
class Linked:
    """A rollout an incident's probable cause named as its top candidate."""

    workload: str
    revision: int
    at: datetime


@dataclass(frozen=True)
class Tally:
    """One workload's counts, as the report reads them."""

    namespace: str
    workload: str
    uid: str
    revision: int  # highest revision counted
    days: dict[date, int] = field(default_factory=dict)
    failed: dict[int, date] = field(default_factory=dict)
    retired: tuple[str, ...] = ()  # uids of earlier workloads of that name, counted before


def empty(namespace: str) -> dict[str, Any]:
    return {"version": VERSION, "namespace": namespace, "workloads": {}}


def merge(doc: Mapping[str, Any], seen: Iterable[Seen], linked: Iterable[Linked], today: date,
          keep_days: int = KEEP_DAYS, cap: int = CAP, max_bytes: int = MAX_BYTES) -> dict[str, Any]:
    """`doc` with these rollouts and links added (each once), pruned to `keep_days` and `cap` workloads."""
    out = json.loads(json.dumps(doc)) if doc else {}
    out.setdefault("version", VERSION)
    workloads: dict[str, dict] = out.setdefault("workloads", {})
    oldest = today - timedelta(days=keep_days - 1)
    # a re-created workload's revisions start at 1 again: each uid's revisions in order, the older uid first
    seen = list(seen)
    first_at: dict[tuple[str, str], datetime] = {}
    for s in seen:
        first_at[(s.workload, s.uid)] = min(s.at, first_at.get((s.workload, s.uid), s.at))
    for s in sorted(seen, key=lambda s: (s.workload, first_at[(s.workload, s.uid)], s.uid, s.revision)):
        entry = workloads.setdefault(s.workload, {"uid": s.uid, "revision": 0, "days": {}, "failed": {}})
        if s.uid in entry.get("retired", ()):
            continue  # a workload deleted since, replayed from a stale copy: counted before
        if s.uid and entry.get("uid") and entry["uid"] != s.uid:
            # the same name, a new workload (deleted and re-created): its revisions start at 1 again
            retired = [*entry.get("retired", []), entry["uid"]][-RETIRED:]
            entry.update(uid=s.uid, revision=0, failed={}, retired=retired)
        entry["uid"] = entry.get("uid") or s.uid
        if s.revision <= entry.get("revision", 0):
            continue  # counted before: a replay after a restart, or the other replica's write
        entry["revision"] = s.revision
        day = s.at.date()
        if day >= oldest:
            days = entry.setdefault("days", {})
            days[day.isoformat()] = days.get(day.isoformat(), 0) + 1
    for link in linked:
        day = link.at.date()
        if day >= oldest:
            entry = workloads.setdefault(link.workload, {"uid": "", "revision": 0, "days": {}, "failed": {}})
            entry.setdefault("failed", {}).setdefault(str(link.revision), day.isoformat())
    return prune(out, today, keep_days, cap, max_bytes)


def named_rollout(remediation: Mapping[str, Any]) -> tuple[str, Linked] | None:
    """(namespace, rollout) when a Remediation's probable cause names a rollout as its top candidate."""
    status, spec = remediation.get("status") or {}, remediation.get("spec") or {}
    cause = status.get("probableCause") or {}
    top = (cause.get("changes") or [{}])[0] if cause.get("kind") == "rollout" else {}
    revision, at = str(top.get("revision") or ""), top.get("at")
    # its own namespace only: a Remediation naming another namespace's rollout cannot add to that one's failures
    namespace = (remediation.get("metadata") or {}).get("namespace")
    target_namespace = (spec.get("target") or {}).get("namespace")
    if top.get("kind") != "rollout" or not revision.isdigit() or not at or not namespace or \
            target_namespace not in (None, "", namespace):
        return None
    try:
        return namespace, Linked(str(top.get("object", "")), int(revision), parse_time(str(at)))
    except ValueError:
        return None


def prune(doc: dict[str, Any], today: date, keep_days: int = KEEP_DAYS, cap: int = CAP,
          max_bytes: int = MAX_BYTES) -> dict[str, Any]:
    oldest = (today - timedelta(days=keep_days - 1)).isoformat()
    workloads = doc.get("workloads") or {}
    for name in list(workloads):
        entry = workloads[name]
        entry["days"] = {d: n for d, n in (entry.get("days") or {}).items() if d >= oldest}
        entry["failed"] = {r: d for r, d in (entry.get("failed") or {}).items() if d >= oldest}
        if not entry["days"] and not entry["failed"]:
            # nothing left in range; a replay of its history is older than the range and not counted again
            del workloads[name]
    def last(name: str) -> tuple[str, str]:
        return (max([*workloads[name]["days"], *workloads[name]["failed"].values()]), name)
    oldest_first = sorted(workloads, key=last)
    for name in oldest_first[:max(len(workloads) - cap, 0)]:
        del workloads[name]
    size = len(encode(doc))
    for name in oldest_first[max(len(oldest_first) - cap, 0):]:
        if size <= max_bytes:
            break
        size -= len(encode({name: workloads.pop(name)})) - 1  # its share of the document, near enough
    doc["workloads"] = workloads
    return doc


def tallies(doc: Mapping[str, Any]) -> list[Tally]:
    """The report's view of one stored document; an entry it cannot read is left out (never guessed)."""
    namespace = str(doc.get("namespace", ""))
    out = []
    for name, entry in (doc.get("workloads") or {}).items():
        try:
            out.append(Tally(namespace, str(name), str(entry.get("uid", "")), int(entry.get("revision", 0)),
                             {date.fromisoformat(d): int(n) for d, n in (entry.get("days") or {}).items()},
                             {int(r): date.fromisoformat(d) for r, d in (entry.get("failed") or {}).items()},
                             tuple(str(u) for u in entry.get("retired") or ())))
        except (TypeError, ValueError, AttributeError):
            continue
        if out[-1].revision < 0 or any(n < 0 for n in out[-1].days.values()):
            out.pop()  # a negative count would make the rates negative (a forged or hand-edited document)
    return out


def encode(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def decode(text: str | None, namespace: str) -> dict[str, Any]:
    """A stored document; unreadable text starts afresh (the report then falls back to the history)."""
    try:
        doc = json.loads(text or "")
    except ValueError:
        return empty(namespace)
    if not isinstance(doc, dict) or not isinstance(doc.get("workloads"), dict):
        return empty(namespace)
    # an entry edited by hand into another shape is dropped, not left to break every later merge
    doc["workloads"] = {name: entry for name, entry in doc["workloads"].items() if well_formed(entry)}
    doc["namespace"] = namespace
    return doc


def well_formed(entry: Any) -> bool:
    def strings(value: Any) -> bool:
        return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    return (isinstance(entry, dict) and isinstance(entry.get("uid", ""), str)
            and type(entry.get("revision", 0)) is int
            and isinstance(entry.get("days", {}), dict)
            and all(isinstance(d, str) and type(n) is int for d, n in entry.get("days", {}).items())
            and strings(entry.get("failed", {}))
            and isinstance(entry.get("retired", []), list) and all(isinstance(u, str) for u in entry.get("retired", [])))
