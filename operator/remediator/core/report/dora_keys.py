"""DORA's keys from what the operator sees: rollouts (the change journal's counts, the ReplicaSet history) and the
probable causes its Remediations name (pure: plain data in and out).

- a *rollout* is a new revision of a workload (namespace, Kind/name, revision) at the time it was created;
- a rollout *led to a degraded service* when an incident's probable cause names it as the top candidate;
- DORA change failure rate = rollouts in range that led to a degraded service / rollouts in range;
- deployment frequency = rollouts in range per day, per workload and per namespace; the band is placed on
  the median workload (of those that rolled out in range).

The rollouts come from the operator's rollout counts (core.report.rollout_counts: per workload and UTC day,
kept 31 days in the cluster, so neither a restart nor revisionHistoryLimit loses them) and, for what the counts
do not hold yet (a revision above the highest counted, a workload never counted), from the ReplicaSet history.
Counts are per day: a day is in range when it overlaps it.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from fractions import Fraction
from typing import Any

from remediator.core.durations import parse_time
from remediator.core.revisions import revision_number
from remediator.core.report.rollout_counts import Tally

DAY = timedelta(days=1)


@dataclass(frozen=True, order=True)
class Rollout:
    at: datetime
    namespace: str
    workload: str  # Kind/name
    revision: str = ""
    uid: str = field(default="", compare=False)  # the workload's uid, when known

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.namespace, self.workload, self.revision)


def caused_by(record) -> Rollout | None:
    """The rollout an incident's probable cause names first, when its top candidate is a rollout."""
    cause = record.status.probable_cause
    if cause is None or cause.kind != "rollout" or not cause.changes or cause.changes[0].kind != "rollout":
        return None
    top = cause.changes[0]
    return Rollout(parse_time(top.at), record.spec.target.namespace or record.namespace, top.object,
                   top.revision or "")


@dataclass(frozen=True)
class Keys:
    rollouts: int
    failed: int
    days: float
    per_namespace: dict[str, int]
    per_workload: dict[str, int]  # namespace/Kind/name -> rollouts
    failed_rollouts: list[str]

    @property
    def failure_rate(self) -> Fraction | None:
        return Fraction(self.failed, self.rollouts) if self.rollouts else None

    def per_day(self, count: int) -> float:
        return round(count / self.days, 3) if self.days else 0.0

    @property
    def median_workload_per_day(self) -> float | None:
        if not self.per_workload:
            return None
        return round(statistics.median(self.per_workload.values()) / self.days, 3) if self.days else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rollouts": self.rollouts, "failedRollouts": self.failed,
            "changeFailureRate": None if not self.rollouts else round(100 * self.failed / self.rollouts, 2),
            "days": round(self.days, 3),
            "deploymentsPerDay": {
                "perNamespace": {ns: self.per_day(n) for ns, n in sorted(self.per_namespace.items())},
                "perWorkload": {w: self.per_day(n) for w, n in sorted(self.per_workload.items())},
                "medianWorkload": self.median_workload_per_day,
            },
            "rolloutsThatDegradedService": list(self.failed_rollouts),
        }


def keys(rollouts: Iterable[Rollout], records: Iterable, since: datetime | None, until: datetime | None,
         now: datetime, tallies: Iterable[Tally] = ()) -> Keys:
    """DORA's change failure rate and deployment frequency over [since, until) (until None: now)."""
    end = until or now

    def inside(r: Rollout) -> bool:
        return (since is None or r.at >= since) and r.at < end

    def day_inside(d: date) -> bool:
        start = datetime.combine(d, time(), UTC)
        return (since is None or start + DAY > since) and start < end

    counted = {(t.namespace, t.workload): t for t in tallies}

    def tallied(r: Rollout) -> bool:
        t = counted.get((r.namespace, r.workload))
        if t is None or (r.uid and r.uid in t.retired):
            return t is not None  # a deleted workload of that name: its rollouts were counted then
        revision = revision_number(r.revision)
        return revision is not None and revision <= t.revision and not (r.uid and t.uid and r.uid != t.uid)

    linked = {r.key: r for r in (caused_by(rec) for rec in records) if r is not None and inside(r)}
    # a rollout a cause names happened, even when the history has dropped it since
    every = {r.key: r for r in [*linked.values(), *rollouts] if inside(r) and not tallied(r)}
    failed_keys = set(linked)
    per_namespace: dict[str, int] = {}
    per_workload: dict[str, int] = {}
    first = min((r.at for r in every.values()), default=end)

    def add(namespace: str, workload: str, n: int) -> None:
        per_namespace[namespace] = per_namespace.get(namespace, 0) + n
        name = f"{namespace}/{workload}"
        per_workload[name] = per_workload.get(name, 0) + n

    for r in every.values():
        add(r.namespace, r.workload, 1)
    total = len(every)
    for t in counted.values():
        days = [d for d in t.days if day_inside(d)]
        if days:
            n = sum(t.days[d] for d in days)
            add(t.namespace, t.workload, n)
            total += n
            first = min(first, datetime.combine(min(days), time(), UTC))
        failed_keys |= {(t.namespace, t.workload, str(rev)) for rev, d in t.failed.items() if day_inside(d)}
    # a counted day that overlaps the range counts whole: the range then starts at that day's start
    start = min(since, first) if since else first
    days = max((end - start) / DAY, 0.0)
    failed = sorted(f"{ns}/{w}" + (f" revision {rev}" if rev else "") for ns, w, rev in failed_keys)
    return Keys(max(total, len(failed_keys)), len(failed_keys), days, per_namespace, per_workload, failed)


def frequency_band(per_day: float) -> str:
    """Elite: several a day (more than 1); high: daily to weekly; medium: weekly to monthly; low: less."""
    if per_day > 1:
        return "elite"
    if per_day >= 1 / 7:
        return "high"
    if per_day >= 1 / 30:
        return "medium"
    return "low"
