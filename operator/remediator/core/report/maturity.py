"""Where the organisation stands, from remediator's own records: figures, DORA bands, AIOps levels.

Plain data in (Remediation objects as dicts or models, plus an inventory of
workloads and the SLOs that cover them), plain data out, every placement with
its evidence and what is missing for the next level. Too few records give no
placement and say so: three incidents place nobody.

Definitions (the report prints them; tests compute them the same way):

- an *incident* is a Remediation in a terminal phase whose start (status.startedAt,
  else metadata.creationTimestamp) lies in [since, until); open ones are counted apart;
- *time to recover* is status.timeToRecoverSeconds of Succeeded incidents;
  the median interpolates, p90 is the nearest rank (the smallest value with at
  least 90 % of the sample at or below it);
- an incident is *auto-remediated* when it Succeeded and no human approval was requested;
  it *needed approval* when status.approval asked for approvers (required > 0);
- an *action* is a step record that was applied (appliedAt set) in an incident; it
  *failed* (did not recover, or made it worse) unless the step Succeeded;
  remediation failure rate = failed actions / actions (the DORA change failure rate
  of remediation's own changes);
- *approval latency* is approval.decidedAt - requestedAt of approvals a human
  decided (approved or denied), not of expired ones;
- *SLO coverage* is the share of workloads (Deployments, StatefulSets) that are the
  target of a ServiceLevelObjective.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any

from pydantic import ValidationError

from remediator.api.models import TERMINAL_PHASES, RemediationSpec, RemediationStatus
from remediator.core.durations import format_duration, parse_time

MIN_SAMPLE = 5  # fewer data points than this and a band or level would be invented, not measured

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
WEEK = timedelta(weeks=1)


# ---------------------------------------------------------------- input


@dataclass(frozen=True)
class Record:
    """One Remediation as the report reads it."""

    namespace: str
    name: str
    spec: RemediationSpec
    status: RemediationStatus
    created_at: str | None = None  # metadata.creationTimestamp

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> Record:
        """An item of `kubectl get remediations -o json`; ValueError naming the object and field."""
        metadata = obj.get("metadata") or {}
        label = f"Remediation {metadata.get('namespace', '?')}/{metadata.get('name', '?')}"
        parsed = []
        for part, model in (("spec", RemediationSpec), ("status", RemediationStatus)):
            try:
                parsed.append(model.model_validate(obj.get(part) or {}))
            except ValidationError as e:
                first = e.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                raise ValueError(f"{label}: {part}.{where}: {first['msg']}") from None
        spec, status = parsed
        for key in ("name", "namespace"):
            if not metadata.get(key):
                raise ValueError(f"{label}: metadata.{key} is missing")
        return cls(metadata["namespace"], metadata["name"], spec, status, metadata.get("creationTimestamp"))

    @property
    def started(self) -> datetime | None:
        text = self.status.started_at or self.created_at
        return parse_time(text) if text else None

    @property
    def runbook(self) -> str:
        return f"{self.spec.runbook.namespace}/{self.spec.runbook.name}"

    @property
    def terminal(self) -> bool:
        return self.status.phase in TERMINAL_PHASES


@dataclass(frozen=True)
class Inventory:
    """What the cluster holds besides Remediations: workloads, the SLOs' targets, adaptive Runbooks."""

    workloads: frozenset[tuple[str, str, str]] = frozenset()  # (namespace, kind, name)
    slo_targets: frozenset[tuple[str, str, str]] = frozenset()
    adaptive_runbooks: int = 0
    known: bool = True  # False: no inventory was available (an export without workloads)


@dataclass(frozen=True)
class Scope:
    since: datetime | None = None
    until: datetime | None = None
    namespaces: frozenset[str] | None = None  # None: every namespace

    def holds(self, record: Record) -> bool:
        if self.namespaces is not None and record.namespace not in self.namespaces:
            return False
        started = record.started
        if started is None:
            return self.since is None and self.until is None
        return (self.since is None or started >= self.since) and (self.until is None or started < self.until)


# ---------------------------------------------------------------- figures


@dataclass(frozen=True)
class Spread:
    """A sample of durations in seconds: its size, median and p90 (None when empty)."""

    count: int
    median: float | None
    p90: float | None

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        if not values:
            return cls(0, None, None)
        return cls(len(values), float(statistics.median(values)), float(nearest_rank(values, 0.9)))

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "medianSeconds": self.median, "p90Seconds": self.p90}


def nearest_rank(values: Sequence[float], quantile: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(quantile * len(ordered)) - 1)]


@dataclass(frozen=True)
class Share:
    """part / whole, kept as counts so band edges compare exactly."""

    part: int
    whole: int

    @property
    def ratio(self) -> Fraction | None:
        return Fraction(self.part, self.whole) if self.whole else None

    @property
    def percent(self) -> float | None:
        return None if not self.whole else round(100 * self.part / self.whole, 2)

    def text(self) -> str:
        return "n/a (none)" if not self.whole else f"{self.percent:g} % ({self.part}/{self.whole})"

    def to_dict(self) -> dict[str, Any]:
        return {"part": self.part, "whole": self.whole, "percent": self.percent}


@dataclass(frozen=True)
class RunbookFigures:
    runbook: str
    incidents: int
    acted: int
    succeeded: int

    @property
    def success(self) -> Share:
        return Share(self.succeeded, self.acted)

    def to_dict(self) -> dict[str, Any]:
        return {"runbook": self.runbook, "incidents": self.incidents, "acted": self.acted,
                "succeeded": self.succeeded, "successRate": self.success.to_dict()}


@dataclass(frozen=True)
class Figures:
    incidents: int
    open: int
    outcomes: dict[str, int]
    time_to_recover: Spread
    auto_remediated: Share
    needed_approval: Share
    actions: Share  # failed actions / applied actions
    approval_latency: Spread
    approvals_expired: int
    slo_coverage: Share | None  # None: no inventory
    by_runbook: list[RunbookFigures]
    by_source: dict[str, int]
    escalated: Share
    risk_explained: Share  # incidents with a risk score that carry its reasons
    adaptive_runbooks: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "incidents": self.incidents, "open": self.open, "outcomes": dict(sorted(self.outcomes.items())),
            "timeToRecover": self.time_to_recover.to_dict(),
            "autoRemediated": self.auto_remediated.to_dict(),
            "neededApproval": self.needed_approval.to_dict(),
            "remediationFailureRate": self.actions.to_dict(),
            "approvalLatency": self.approval_latency.to_dict(),
            "approvalsExpired": self.approvals_expired,
            "sloCoverage": None if self.slo_coverage is None else self.slo_coverage.to_dict(),
            "runbooks": [r.to_dict() for r in self.by_runbook],
            "signalSources": dict(sorted(self.by_source.items())),
        }


def needed_human(record: Record) -> bool:
    """An approval was requested that somebody had to give (a rule with approvers > 0)."""
    return record.status.approval is not None and record.status.approval.required > 0


def applied_steps(record: Record):
    return [s for s in record.status.steps if s.applied_at]


def figures(records: Iterable[Record], inventory: Inventory, scope: Scope = Scope()) -> Figures:
    chosen = [r for r in records if scope.holds(r)]
    done = [r for r in chosen if r.terminal]
    succeeded = [r for r in done if r.status.phase == "Succeeded"]
    recover = [r.status.time_to_recover_seconds for r in succeeded if r.status.time_to_recover_seconds is not None]
    steps = [s for r in done for s in applied_steps(r)]
    decided = [r.status.approval for r in done if needed_human(r) and r.status.approval.decision in
               ("approved", "denied") and r.status.approval.requested_at and r.status.approval.decided_at]
    latency = [(parse_time(a.decided_at) - parse_time(a.requested_at)).total_seconds() for a in decided]
    outcomes: dict[str, int] = {}
    sources: dict[str, int] = {}
    for r in done:
        outcomes[r.status.phase] = outcomes.get(r.status.phase, 0) + 1
        sources[r.spec.signal.source] = sources.get(r.spec.signal.source, 0) + 1
    runbooks = sorted({r.runbook for r in done})
    by_runbook = [RunbookFigures(
        rb, incidents=sum(1 for r in done if r.runbook == rb),
        acted=sum(1 for r in done if r.runbook == rb and applied_steps(r)),
        succeeded=sum(1 for r in done if r.runbook == rb and r.status.phase == "Succeeded" and applied_steps(r)))
        for rb in runbooks]
    coverage = None
    if inventory.known:
        in_scope = {w for w in inventory.workloads if scope.namespaces is None or w[0] in scope.namespaces}
        coverage = Share(len(in_scope & inventory.slo_targets), len(in_scope))
    scored = [r for r in done if r.status.risk is not None]
    return Figures(
        incidents=len(done), open=len(chosen) - len(done), outcomes=outcomes,
        time_to_recover=Spread.of(recover),
        auto_remediated=Share(sum(1 for r in succeeded if not needed_human(r)), len(done)),
        needed_approval=Share(sum(1 for r in done if needed_human(r)), len(done)),
        actions=Share(sum(1 for s in steps if s.phase != "Succeeded"), len(steps)),
        approval_latency=Spread.of(latency),
        approvals_expired=sum(1 for r in done if needed_human(r) and r.status.approval.decision == "expired"),
        slo_coverage=coverage, by_runbook=by_runbook, by_source=sources,
        escalated=Share(outcomes.get("Escalated", 0), len(done)),
        risk_explained=Share(sum(1 for r in scored if r.status.risk.reasons), len(scored)),
        adaptive_runbooks=inventory.adaptive_runbooks,
    )


# ---------------------------------------------------------------- DORA bands


@dataclass(frozen=True)
class Placement:
    """Where one metric or domain sits (None: not placed), why, and what the next step up needs."""

    name: str
    level: str | None
    evidence: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "level": self.level, "evidence": list(self.evidence),
                "missingForNext": list(self.missing)}


DORA_BANDS = ("elite", "high", "medium", "low")


def restore_band(median: timedelta) -> str:
    """Elite under 1 hour, high under 1 day, medium 1 day to 1 week, low over 1 week."""
    if median < HOUR:
        return "elite"
    if median < DAY:
        return "high"
    if median <= WEEK:
        return "medium"
    return "low"


RESTORE_NEXT = {"high": "a median time to restore under 1h", "medium": "a median time to restore under 1d",
                "low": "a median time to restore of at most 1 week"}


def failure_band(rate: Fraction) -> str:
    """Elite 0-15 %, high 16-30 %, medium 31-45 %, low over 45 %; between bands (15.5 %) is the lower band."""
    if rate <= Fraction(15, 100):
        return "elite"
    if rate <= Fraction(30, 100):
        return "high"
    if rate <= Fraction(45, 100):
        return "medium"
    return "low"


FAILURE_NEXT = {"high": "a remediation failure rate of at most 15 %", "medium": "at most 30 %",
                "low": "at most 45 %"}


def too_few(count: int, what: str) -> str:
    return f"{count} {what} {'is' if count == 1 else 'are'} too few to place you (need at least {MIN_SAMPLE})"


def dora(fig: Figures) -> list[Placement]:
    out = []
    ttr = fig.time_to_recover
    if ttr.count < MIN_SAMPLE or ttr.median is None:
        out.append(Placement("time to restore service", None, [too_few(ttr.count, "recoveries")],
                             [f"{MIN_SAMPLE - ttr.count} more verified recoveries"]))
    else:
        median = timedelta(seconds=ttr.median)
        band = restore_band(median)
        out.append(Placement("time to restore service", band,
                             [(f"median {format_duration(median)} over {ttr.count} verified recoveries "
                              f"(p90 {format_duration(timedelta(seconds=ttr.p90 or 0))})")],
                             [RESTORE_NEXT[band]] if band in RESTORE_NEXT else []))
    acts = fig.actions
    if acts.whole < MIN_SAMPLE or acts.ratio is None:
        out.append(Placement("change failure rate", None, [too_few(acts.whole, "actions")],
                             [f"{MIN_SAMPLE - acts.whole} more applied actions"]))
    else:
        band = failure_band(acts.ratio)
        out.append(Placement("change failure rate", band,
                             [f"{acts.text()} of remediation actions did not recover the target"],
                             [FAILURE_NEXT[band]] if band in FAILURE_NEXT else []))
    for name in ("deployment frequency", "lead time for changes"):
        out.append(Placement(name, None, ["not measured: remediator sees incidents, not deploys"],
                             ["your delivery pipeline's records"]))
    return out


# ---------------------------------------------------------------- AIOps levels


AIOPS_LEVELS = {1: "reactive", 2: "assisted (correlated)", 3: "predictive", 4: "autonomous"}


@dataclass(frozen=True)
class Criterion:
    """One condition of a level: what it asks, and from the figures whether it holds and what was seen."""

    asks: str
    check: Callable[[Figures], tuple[bool, str]]


def at_least(share: Callable[[Figures], Share | None], percent: int, what: str) -> Criterion:
    def check(fig: Figures) -> tuple[bool, str]:
        value = share(fig)
        if value is None:
            return False, f"{what}: unknown (no inventory)"
        return value.ratio is not None and value.ratio >= Fraction(percent, 100), f"{what} {value.text()}"
    return Criterion(f"{what} at least {percent} %", check)


def at_most(share: Callable[[Figures], Share], percent: int, what: str) -> Criterion:
    def check(fig: Figures) -> tuple[bool, str]:
        value = share(fig)
        return value.ratio is not None and value.ratio <= Fraction(percent, 100), f"{what} {value.text()}"
    return Criterion(f"{what} at most {percent} %", check)


def count_at_least(count: Callable[[Figures], int], minimum: int, what: str) -> Criterion:
    def check(fig: Figures) -> tuple[bool, str]:
        seen = count(fig)
        return seen >= minimum, f"{seen} {what}"
    return Criterion(f"at least {minimum} {what}", check)


def applied_actions(fig: Figures) -> int:
    return fig.actions.whole


def recurring_runbooks(fig: Figures) -> int:
    return sum(1 for r in fig.by_runbook if r.acted >= 2)


def predictive_signals(fig: Figures) -> int:
    return fig.by_source.get("sloBurn", 0) + fig.by_source.get("anomaly", 0)


def predictive_share(fig: Figures) -> Share:
    return Share(predictive_signals(fig), fig.incidents)


def human_decided(fig: Figures) -> int:
    return fig.approval_latency.count


def verified(fig: Figures) -> Share:
    return Share(fig.outcomes.get("Succeeded", 0), fig.incidents)


# Each domain: the criteria of levels 2, 3 and 4 (level 1 is the floor). A level holds when it and every
# level under it hold; remediator's reading of the model's descriptions, stated in the criteria's words.
DOMAINS: dict[str, dict[int, list[Criterion]]] = {
    "telemetry": {
        2: [at_least(lambda f: f.slo_coverage, 1, "workloads with an SLO")],
        3: [at_least(lambda f: f.slo_coverage, 50, "workloads with an SLO"),
            count_at_least(predictive_signals, 1, "incidents raised by SLO burn or anomaly detection")],
        4: [at_least(lambda f: f.slo_coverage, 90, "workloads with an SLO"),
            at_least(predictive_share, 50, "incidents raised by SLO burn or anomaly detection")],
    },
    "automation": {
        2: [count_at_least(applied_actions, 1, "actions applied by a triggered runbook")],
        3: [count_at_least(recurring_runbooks, 1, "runbooks that acted on a recurring incident class"),
            at_least(lambda f: f.auto_remediated, 25, "incidents auto-remediated"),
            count_at_least(lambda f: f.needed_approval.part, 1, "high-risk actions held for human approval")],
        4: [at_least(lambda f: f.auto_remediated, 50, "incidents auto-remediated"),
            at_most(lambda f: f.actions, 15, "remediation failure rate"),
            at_least(lambda f: f.risk_explained, 100, "risk scores with their reasons")],
    },
    "ML capability": {
        2: [count_at_least(lambda f: f.by_source.get("anomaly", 0), 1, "incidents raised by anomaly detection")],
        3: [count_at_least(lambda f: f.by_source.get("anomaly", 0), MIN_SAMPLE,
                           "anomaly incidents judged by their outcome")],
        4: [count_at_least(lambda f: f.adaptive_runbooks, 1, "runbooks learning their ladder from outcomes")],
    },
    "organisational readiness": {
        2: [count_at_least(lambda f: len(f.by_runbook), 1, "runbooks digitised and in use")],
        3: [count_at_least(human_decided, 1, "approvals decided by a human at a gate"),
            at_most(lambda f: f.needed_approval, 50, "incidents needing a human approval")],
        4: [at_most(lambda f: f.needed_approval, 20, "incidents needing a human approval"),
            at_most(lambda f: f.escalated, 10, "incidents escalated to a responder")],
    },
}


def place_domain(name: str, levels: Mapping[int, Sequence[Criterion]], fig: Figures) -> Placement:
    level = 1
    evidence: list[str] = []
    for candidate in sorted(levels):
        results = [(c, *c.check(fig)) for c in levels[candidate]]
        if all(ok for _, ok, _ in results):
            level = candidate
            evidence += [seen for _, _, seen in results if seen not in evidence]
            continue
        missing = [f"{c.asks} (now: {seen})" for c, ok, seen in results if not ok]
        return Placement(name, f"{level} {AIOPS_LEVELS[level]}", evidence or ["no evidence of level 2"],
                         missing)
    return Placement(name, f"{level} {AIOPS_LEVELS[level]}", evidence, [])


def aiops(fig: Figures) -> list[Placement]:
    if fig.incidents < MIN_SAMPLE:
        return [Placement(name, None, [too_few(fig.incidents, "incidents")],
                          [f"{MIN_SAMPLE - fig.incidents} more closed incidents"]) for name in DOMAINS]
    return [place_domain(name, levels, fig) for name, levels in DOMAINS.items()]


def milestones(fig: Figures) -> dict[str, Any]:
    return {"autoRemediated": fig.auto_remediated.to_dict(),
            "sloCoverage": None if fig.slo_coverage is None else fig.slo_coverage.to_dict()}


@dataclass(frozen=True)
class Report:
    scope: Scope
    figures: Figures
    dora: list[Placement]
    aiops: list[Placement]

    def to_dict(self) -> dict[str, Any]:
        return {
            "scope": {"since": self.scope.since.isoformat() if self.scope.since else None,
                      "until": self.scope.until.isoformat() if self.scope.until else None,
                      "namespaces": sorted(self.scope.namespaces) if self.scope.namespaces is not None else None},
            "figures": self.figures.to_dict(),
            "milestones": milestones(self.figures),
            "dora": [p.to_dict() for p in self.dora],
            "aiops": [p.to_dict() for p in self.aiops],
            "minimumSample": MIN_SAMPLE,
        }


def report(records: Iterable[Record], inventory: Inventory, scope: Scope = Scope()) -> Report:
    fig = figures(records, inventory, scope)
    return Report(scope, fig, dora(fig), aiops(fig))


def recovery_trend(records: Iterable[Record], scope: Scope = Scope()) -> list[tuple[datetime, float]]:
    """(finish time, seconds to recover) of each Succeeded incident in scope, oldest first, for the plot."""
    points = [(parse_time(r.status.finished_at), r.status.time_to_recover_seconds) for r in records
              if scope.holds(r) and r.status.phase == "Succeeded" and r.status.finished_at
              and r.status.time_to_recover_seconds is not None]
    return sorted(points)
