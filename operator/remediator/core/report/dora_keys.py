"""DORA's keys from what the operator sees: rollouts (the change journal's counts, the ReplicaSet history) and the
probable causes its Remediations name (pure: plain data in and out).

- a *rollout* is a new revision of a workload (namespace, Kind/name, revision) at the time it was created;
- a rollout *led to a degraded service* when an incident's probable cause names it as the top candidate;
- DORA change failure rate = rollouts in range that led to a degraded service / rollouts in range;
- deployment frequency = rollouts in range per day, per workload and per namespace; the band is placed on
  the median workload (of those that rolled out in range).

The rollouts come from the ReplicaSet history the apiserver keeps (revisionHistoryLimit per Deployment), so they
survive restarts without storage of our own, and lose what that limit drops.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any

from remediator.core.durations import parse_time

DAY = timedelta(days=1)


@dataclass(frozen=True, order=True)
class Rollout:
    at: datetime
    namespace: str
    workload: str  # Kind/name
    revision: str = ""

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
         now: datetime) -> Keys:
    """DORA's change failure rate and deployment frequency over [since, until) (until None: now)."""
    end = until or now

    def inside(r: Rollout) -> bool:
        return (since is None or r.at >= since) and r.at < end

    linked = {r.key: r for r in (caused_by(rec) for rec in records) if r is not None and inside(r)}
    # a rollout a cause names happened, even when the history has dropped it since
    every = {**linked, **{r.key: r for r in rollouts if inside(r)}}
    start = since or min((r.at for r in every.values()), default=end)
    days = max((end - start) / DAY, 0.0)
    per_namespace: dict[str, int] = {}
    per_workload: dict[str, int] = {}
    for r in every.values():
        per_namespace[r.namespace] = per_namespace.get(r.namespace, 0) + 1
        name = f"{r.namespace}/{r.workload}"
        per_workload[name] = per_workload.get(name, 0) + 1
    failed = sorted(f"{ns}/{w}" + (f" revision {rev}" if rev else "") for ns, w, rev in linked)
    return Keys(len(every), len(linked), days, per_namespace, per_workload, failed)


def frequency_band(per_day: float) -> str:
    """Elite: several a day (more than 1); high: daily to weekly; medium: weekly to monthly; low: less."""
    if per_day > 1:
        return "elite"
    if per_day >= 1 / 7:
        return "high"
    if per_day >= 1 / 30:
        return "medium"
    return "low"
