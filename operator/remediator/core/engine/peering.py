"""Is this replica the active one of its kopf peering? Pure: the peering objects' records in, a verdict out.

kopf pauses a replica's watches and daemons while a live peer has a higher (or
the same) priority, and keeps that state to itself. The loops that are not kopf
handlers (the anomaly watcher, the failing-pod rescan) read the same records
kopf writes (`status: {identity: {priority, lifetime, lastseen}}` on each
KopfPeering / ClusterKopfPeering object) and apply the same rule, so they run
where kopf runs its handlers. One rule more than kopf's: this replica must have
announced itself (its own record is live), so a newcomer is visible to its
peers before it does anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from remediator.core.durations import parse_time

DEFAULT_LIFETIME = 60  # kopf's default, for a record that does not say


@dataclass(frozen=True)
class Verdict:
    active: bool
    reason: str


def is_active(records: dict[str, dict | None], me: str, priority: int, now: datetime) -> Verdict:
    """`records`: each peering object's `status` by where it lives ("cluster" or a namespace), None when the
    object does not exist (kopf then stays paused there)."""
    if not records:
        return Verdict(False, "no peering object is served")
    for where, status in sorted(records.items()):
        if status is None:
            return Verdict(False, f"no peering object in {where}: kopf stays paused there")
        live = {peer: record for peer, record in status.items() if isinstance(record, dict) and alive(record, now)}
        if me not in live:
            return Verdict(False, f"this replica ({me}) has no live record in the peering of {where} yet")
        ahead = sorted(peer for peer, record in live.items()
                       if peer != me and int(record.get("priority") or 0) >= priority)
        if ahead:
            return Verdict(False, f"standby in {where}: {', '.join(ahead)} has a priority of at least {priority}")
    return Verdict(True, "the highest live priority in every peering")


def alive(record: dict, now: datetime) -> bool:
    lastseen = record.get("lastseen")
    if not lastseen:
        return True  # kopf counts a record without a time as seen now
    try:
        seen = parse_time(str(lastseen))
    except ValueError:
        return False
    return seen + timedelta(seconds=int(record.get("lifetime", DEFAULT_LIFETIME))) > now
