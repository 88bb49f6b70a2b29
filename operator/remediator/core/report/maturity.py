"""Where the organisation stands, from remediator's own records: figures, DORA bands, AIOps levels.

Plain data in (Remediation objects as dicts or models, plus an inventory of
workloads and the SLOs that cover them), plain data out, every placement with
its evidence and what is missing for the next level. Too few records give no
placement and say so: three incidents place nobody.

Definitions: DEFINITIONS below, word for word what the report's JSON (`definitions`) and the README say; the
unit tests recompute each from hand-made records.
"""

from __future__ import annotations

import bisect
import fnmatch
import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

from pydantic import ValidationError

from remediator.api.models import TERMINAL_PHASES, RemediationSpec, RemediationStatus
from remediator.core.durations import format_duration, parse_duration, parse_time
from remediator.core.report import dora_keys, rollout_counts

END_FIELDS = ("restoredAt", "restoredBy", "resolvedBy", "resolutionNote")
RESTORERS = ("operator", "humans")
# Left out of SLO coverage: Kubernetes' own namespaces and the operator's (the chart's default namespace names).
SYSTEM_NAMESPACES = ("kube-*", "remediator", "remediator-system")
# A change the operator made that is followed, on the same target, by a new incident this soon after its
# verification ended made things worse: the window a step's verification looks at by default (Step.timeout).
WORSE_WINDOW = timedelta(minutes=5)
# Checked against Flux source-controller/kustomize-controller v1.9.6 and Argo CD v3.6.1 CRD schemas.
LEAD_TIME_UNKNOWN = ("no GitOps owner records the commit time of the revision it applied: a Flux Kustomization's "
                     "status has lastAppliedRevision (branch@sha1:…), its GitRepository's status.artifact the "
                     "revision and lastUpdateTime (when the artifact was fetched, not committed); an Argo CD "
                     "Application's status.history has the revision and deployedAt (when it synced). The commit "
                     "time lives only in the Git repository, which the operator does not read")
ROLLOUT_SOURCES = ("rollouts from the operator's rollout counts (ConfigMaps remediator-rollouts-<namespace>: per "
                   "workload, rollouts per UTC day and the revisions a probable cause named, kept 31 days, each "
                   "revision counted once, so restarts and revisionHistoryLimit lose none; a day overlapping the "
                   "range counts whole, and the range then starts at that day's start) and, for revisions they do not hold yet, the ReplicaSet history; "
                   "figures.delivery.source says which the input had")
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
    # the incident's end (written by the escalation side): when service was restored, and by whom
    restored_at: str | None = None
    restored_by: str | None = None  # "operator" | "humans" | None

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> Record:
        """An item of `kubectl get remediations -o json`; ValueError naming the object and field."""
        metadata = obj.get("metadata") or {}
        label = f"Remediation {metadata.get('namespace', '?')}/{metadata.get('name', '?')}"
        parsed = []
        raw_status = dict(obj.get("status") or {})
        # read as plain values, so records carry them whether or not this build's model declares them
        end = {key: raw_status.pop(key, None) for key in END_FIELDS}
        for key, value in end.items():
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{label}: status.{key}: must be a string")
        if end["restoredBy"] not in (None, *RESTORERS):
            raise ValueError(f"{label}: status.restoredBy: must be one of {', '.join(RESTORERS)}")
        for part, model, body in (("spec", RemediationSpec, obj.get("spec") or {}),
                                  ("status", RemediationStatus, raw_status)):
            try:
                parsed.append(model.model_validate(body))
            except ValidationError as e:
                first = e.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                raise ValueError(f"{label}: {part}.{where}: {first['msg']}") from None
        spec, status = parsed
        for key in ("name", "namespace"):
            if not metadata.get(key):
                raise ValueError(f"{label}: metadata.{key} is missing")
        if end["restoredAt"] is not None:
            try:
                parse_time(end["restoredAt"])
            except ValueError:
                raise ValueError(f"{label}: status.restoredAt: not an RFC 3339 time") from None
        return cls(metadata["namespace"], metadata["name"], spec, status, metadata.get("creationTimestamp"),
                   end["restoredAt"], end["restoredBy"])

    @property
    def started(self) -> datetime | None:
        return next((t for t in map(moment, (self.status.started_at, self.created_at)) if t is not None), None)

    @property
    def began(self) -> datetime | None:
        """When service degraded, as far as the record knows: the signal's start, else detection."""
        return next((t for t in map(moment, (self.spec.signal.starts_at, self.status.started_at, self.created_at))
                     if t is not None), None)

    @property
    def restorer(self) -> str:
        """operator | humans | itself | unresolved (see DEFINITIONS["timeToRestore"])."""
        if self.restored_by in RESTORERS:
            return self.restored_by
        if self.status.phase == "Succeeded":  # written before restoredBy existed: a verified step
            return "operator"
        if self.status.phase == "Cancelled" and not self.status.steps:
            return "itself"
        return "unresolved"

    @property
    def restored(self) -> datetime | None:
        text = self.restored_at
        if text is None and self.restorer in ("operator", "itself"):
            text = self.status.signal_resolved_at if self.restorer == "itself" and self.status.signal_resolved_at \
                else self.status.finished_at
        return moment(text)

    @property
    def target(self) -> tuple[str, str, str]:
        return (self.spec.target.namespace or self.namespace, self.spec.target.kind, self.spec.target.name)

    @property
    def not_acting(self) -> str | None:
        """Why the operator was not allowed to act on this incident (dryRun, Skipped, Cancelled), else None."""
        if self.status.dry_run:
            return "dryRun"
        if self.status.phase in ("Skipped", "Cancelled"):
            return self.status.phase
        return None

    @property
    def reordered(self) -> bool:
        """The adaptive ladder moved a step away from the Runbook's order for this incident."""
        return any(p.order is not None and p.order != p.index for p in self.status.plan)

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
    system_namespaces: tuple[str, ...] = SYSTEM_NAMESPACES  # glob patterns left out of SLO coverage
    rollouts: tuple[dora_keys.Rollout, ...] = ()  # every rollout known (change journal counts, ReplicaSets)
    rollouts_known: bool = False
    rollouts_source: str = ""
    tallies: tuple[rollout_counts.Tally, ...] = ()  # the operator's stored rollout counts

    def is_system(self, namespace: str) -> bool:
        return any(fnmatch.fnmatchcase(namespace, pattern) for pattern in self.system_namespaces)


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
class Restore:
    """Time to restore over every incident, split by who restored it; unresolved ones count with the time
    they have been open at the report's end (a lower bound), never dropped."""

    by: dict[str, Spread]  # operator, humans, itself, unresolved
    every: Spread  # all of them; a lower bound when some are unresolved
    unresolved: list[str]  # namespace/name of each
    median_exact: bool = True  # no unresolved incident sits at or below the middle: restoring it cannot move it

    @property
    def lower_bound(self) -> bool:
        return bool(self.unresolved)

    def to_dict(self) -> dict[str, Any]:
        return {"every": {**self.every.to_dict(), "lowerBound": self.lower_bound, "medianExact": self.median_exact},
                **{who: spread.to_dict() for who, spread in self.by.items()},
                "unresolvedIncidents": list(self.unresolved)}


@dataclass(frozen=True)
class Learning:
    """Incidents whose ladder the adaptive order changed, against those run in the Runbook's order (same
    Runbooks): how often the operator restored service in each."""

    reordered: Share
    in_order: Share

    @property
    def improved(self) -> bool:
        return (self.reordered.whole >= MIN_SAMPLE and self.in_order.whole > 0
                and self.reordered.ratio is not None and self.in_order.ratio is not None
                and self.reordered.ratio > self.in_order.ratio)

    def text(self) -> str:
        return (f"restored by the operator in {self.reordered.text()} of incidents the adaptive order changed, "
                f"{self.in_order.text()} in the Runbook's order")

    def to_dict(self) -> dict[str, Any]:
        return {"reorderedRestored": self.reordered.to_dict(), "inOrderRestored": self.in_order.to_dict(),
                "improved": self.improved}


@dataclass(frozen=True)
class ChangeFailures:
    """The operator's own changes (applied steps): which did not restore service, which were followed by a
    new incident on the same target within the verification window."""

    changes: int
    did_not_restore: int
    followed_by_worse: int

    @property
    def share(self) -> Share:
        return Share(self.did_not_restore + self.followed_by_worse, self.changes)

    def to_dict(self) -> dict[str, Any]:
        return {**self.share.to_dict(), "didNotRestore": self.did_not_restore,
                "followedByWorseSignal": self.followed_by_worse}


@dataclass(frozen=True)
class Figures:
    incidents: int
    open: int
    outcomes: dict[str, int]
    restore: Restore
    auto_remediated: Share
    not_acting: dict[str, int]  # dryRun, Skipped, Cancelled: shown apart from the share's whole
    needed_approval: Share
    change_failures: ChangeFailures
    approval_latency: Spread
    approvals_expired: int
    slo_coverage: Share | None  # None: no inventory
    slo_coverage_by_namespace: dict[str, Share]
    system_namespaces: list[str]  # left out of coverage, as found in the inventory
    by_runbook: list[RunbookFigures]
    by_source: dict[str, int]
    escalated: Share
    risk_explained: Share  # incidents with a risk score that carry its reasons
    learning: Learning
    delivery: dora_keys.Keys | None  # None: no rollouts known
    delivery_source: str = ""

    @property
    def time_to_recover(self) -> Spread:
        return self.restore.every

    @property
    def actions(self) -> Share:
        return self.change_failures.share

    def to_dict(self) -> dict[str, Any]:
        return {
            "incidents": self.incidents, "open": self.open, "outcomes": dict(sorted(self.outcomes.items())),
            "timeToRestore": self.restore.to_dict(),
            "autoRemediated": {**self.auto_remediated.to_dict(), "shownApart": dict(sorted(self.not_acting.items()))},
            "neededApproval": self.needed_approval.to_dict(),
            "remediationFailureRate": self.change_failures.to_dict(),
            "approvalLatency": self.approval_latency.to_dict(),
            "approvalsExpired": self.approvals_expired,
            "sloCoverage": None if self.slo_coverage is None else {
                **self.slo_coverage.to_dict(),
                "byNamespace": {ns: share.to_dict() for ns, share in sorted(self.slo_coverage_by_namespace.items())},
                "systemNamespacesExcluded": list(self.system_namespaces)},
            "learning": self.learning.to_dict(),
            "delivery": None if self.delivery is None else {**self.delivery.to_dict(), "source": self.delivery_source},
            "runbooks": [r.to_dict() for r in self.by_runbook],
            "signalSources": dict(sorted(self.by_source.items())),
        }


DEFINITIONS: dict[str, str] = {
    "incident": "a Remediation whose start (status.startedAt, else metadata.creationTimestamp) lies in "
                "[since, until); ended ones (a terminal phase) are counted, open ones are counted apart",
    "timeToRestore": "restoredAt minus the signal's start (spec.signal.startsAt, else status.startedAt), over "
                     "every incident, ended or open, split by who restored it: operator (restoredBy=operator, or "
                     "Succeeded: its own step verified), humans (restoredBy=humans: after escalation or failure, "
                     "by the signal resolving or `remediator resolve`), itself (Cancelled before any action: the "
                     "signal resolved; restored at signalResolvedAt, else finishedAt) and unresolved (counted with "
                     "the time open at the report's end, a lower bound, and listed); median interpolated, p90 "
                     "nearest rank",
    "autoRemediated": "incidents restored by the operator with no human approval asked (an approval rule with "
                      "approvers > 0) / ended incidents the operator was allowed to act on: dry run, Skipped and "
                      "Cancelled incidents are left out of both and shown apart",
    "remediationFailureRate": "the operator's own changes (steps applied, appliedAt set) that did not restore "
                              "service (the step did not end Succeeded) or were followed by a worse signal (a new "
                              "incident on the same target starting within the step's verification window, its "
                              "timeout, after the step finished) / all its applied steps",
    "sloCoverage": "workloads (Deployments, StatefulSets) that a ServiceLevelObjective targets / all workloads, "
                   "overall and per namespace; system namespaces (kube-* and the operator's own, configurable "
                   "with --system-namespace) are left out and listed",
    "learning": "incidents whose plan the adaptive order changed (a planned step's order differs from its "
                "index) and how many the operator restored, against incidents of the same Runbooks run in the "
                "Runbook's order; ML level 4 needs at least 5 reordered incidents and a higher restored share "
                "than in order, not the presence of adaptive: true",
    "doraChangeFailureRate": "rollouts (new workload revisions) in range that an incident's probable cause names "
                             "as its top candidate / all rollouts in range; " + ROLLOUT_SOURCES,
    "deploymentFrequency": "rollouts in range per day, per namespace and per workload; placed on the median "
                           "workload that rolled out in range; " + ROLLOUT_SOURCES,
    "leadTimeForChanges": "not measured: " + LEAD_TIME_UNKNOWN,
    "approvalLatency": "approval.decidedAt - requestedAt of approvals a human decided (approved or denied)",
}


def needed_human(record: Record) -> bool:
    """An approval was requested that somebody had to give (a rule with approvers > 0)."""
    return record.status.approval is not None and record.status.approval.required > 0


def applied_steps(record: Record):
    return [s for s in record.status.steps if s.applied_at]


def restore_figures(chosen: Sequence[Record], end: datetime) -> Restore:
    durations: dict[str, list[float]] = {"operator": [], "humans": [], "itself": [], "unresolved": []}
    unresolved = []
    for r in chosen:
        began = r.began
        if began is None:
            continue
        who = r.restorer
        restored = r.restored if who != "unresolved" else None
        if restored is None:
            who = "unresolved"
            unresolved.append(f"{r.namespace}/{r.name}")
        durations[who].append(max(0.0, ((restored or end) - began).total_seconds()))
    ranked = sorted([(v, who == "unresolved") for who, values in durations.items() for v in values])
    exact = not any(open_ for _, open_ in ranked[:len(ranked) // 2 + 1])
    return Restore({who: Spread.of(values) for who, values in durations.items()},
                   Spread.of([v for v, _ in ranked]), sorted(unresolved), exact)


def moment(text: str | None) -> datetime | None:
    """A status time, or None when it is missing or unreadable (a record is read, never trusted to parse)."""
    try:
        return parse_time(text) if text else None
    except ValueError:
        return None


def change_figures(done: Sequence[Record], every: Sequence[Record]) -> ChangeFailures:
    later: dict[tuple[str, str, str], list[datetime]] = {}
    for r in every:
        if r.started is not None:
            later.setdefault(r.target, []).append(r.started)
    for times in later.values():
        times.sort()
    changes = failed = worse = 0
    for r in done:
        windows = {p.index: p.step.timeout for p in r.status.plan if p.step is not None}
        for s in applied_steps(r):
            changes += 1
            if s.phase != "Succeeded":
                failed += 1
                continue
            end = moment(s.finished_at)
            window = parse_duration(windows[s.index]) if s.index in windows else WORSE_WINDOW
            times = later.get(r.target, [])
            # the first incident on the target after the change: bisect, so 10,000 incidents stay fast
            first = bisect.bisect_right(times, end) if end is not None else len(times)
            if first < len(times) and times[first] <= end + window:
                worse += 1
    return ChangeFailures(changes, failed, worse)


def learning_figures(acted: Sequence[Record]) -> Learning:
    reordered = [r for r in acted if r.reordered]
    learners = {r.runbook for r in reordered}
    in_order = [r for r in acted if not r.reordered and r.runbook in learners]
    won = lambda rs: sum(1 for r in rs if r.restorer == "operator")  # noqa: E731
    return Learning(Share(won(reordered), len(reordered)), Share(won(in_order), len(in_order)))


def coverage_figures(inventory: Inventory, scope: Scope) -> tuple[Share | None, dict[str, Share], list[str]]:
    if not inventory.known:
        return None, {}, []
    in_scope = {w for w in inventory.workloads if scope.namespaces is None or w[0] in scope.namespaces}
    system = sorted({w[0] for w in in_scope if inventory.is_system(w[0])})
    counted = {w for w in in_scope if w[0] not in system}
    by_namespace = {ns: Share(sum(1 for w in counted if w[0] == ns and w in inventory.slo_targets),
                              sum(1 for w in counted if w[0] == ns)) for ns in {w[0] for w in counted}}
    return Share(len(counted & inventory.slo_targets), len(counted)), by_namespace, system


def figures(records: Iterable[Record], inventory: Inventory, scope: Scope = Scope(),
            now: datetime | None = None) -> Figures:
    every = list(records)
    chosen = [r for r in every if scope.holds(r)]
    done = [r for r in chosen if r.terminal]
    end = scope.until or now or max((t for r in every for t in (r.started, r.restored) if t), default=None) \
        or datetime(1970, 1, 1, tzinfo=UTC)
    allowed = [r for r in done if r.not_acting is None]
    not_acting: dict[str, int] = {}
    for r in done:
        if r.not_acting:
            not_acting[r.not_acting] = not_acting.get(r.not_acting, 0) + 1
    decided = [(moment(r.status.approval.requested_at), moment(r.status.approval.decided_at)) for r in done
               if needed_human(r) and r.status.approval.decision in ("approved", "denied")]
    # an unreadable time leaves that approval out, as every other figure does (moment), not the whole report
    latency = [(at - asked).total_seconds() for asked, at in decided if asked is not None and at is not None]
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
    coverage, by_namespace, system = coverage_figures(inventory, scope)
    scored = [r for r in done if r.status.risk is not None]
    delivery = None
    if inventory.rollouts_known:
        rollouts = [r for r in inventory.rollouts if scope.namespaces is None or r.namespace in scope.namespaces]
        tallies = [t for t in inventory.tallies if scope.namespaces is None or t.namespace in scope.namespaces]
        delivery = dora_keys.keys(rollouts, chosen, scope.since, scope.until, end, tallies)
    return Figures(
        incidents=len(done), open=len(chosen) - len(done), outcomes=outcomes,
        restore=restore_figures(chosen, end),
        auto_remediated=Share(sum(1 for r in allowed if r.restorer == "operator" and not needed_human(r)),
                              len(allowed)),
        not_acting=not_acting,
        needed_approval=Share(sum(1 for r in done if needed_human(r)), len(done)),
        change_failures=change_figures(done, every),
        approval_latency=Spread.of(latency),
        approvals_expired=sum(1 for r in done if needed_human(r) and r.status.approval.decision == "expired"),
        slo_coverage=coverage, slo_coverage_by_namespace=by_namespace, system_namespaces=system,
        by_runbook=by_runbook, by_source=sources,
        escalated=Share(outcomes.get("Escalated", 0), len(done)),
        risk_explained=Share(sum(1 for r in scored if r.status.risk.reasons), len(scored)),
        learning=learning_figures([r for r in done if applied_steps(r)]),
        delivery=delivery, delivery_source=inventory.rollouts_source,
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
    ttr, restore = fig.time_to_recover, fig.restore
    if ttr.count < MIN_SAMPLE or ttr.median is None:
        out.append(Placement("time to restore service", None, [too_few(ttr.count, "incidents")],
                             [f"{MIN_SAMPLE - ttr.count} more incidents"]))
    else:
        median = timedelta(seconds=ttr.median)
        band = restore_band(median)
        split = ", ".join(f"{who} {spread.count}" for who, spread in restore.by.items() if spread.count)
        at_least = "" if restore.median_exact else "at least "
        p90 = ("at least " if restore.lower_bound else "") + format_duration(timedelta(seconds=ttr.p90 or 0))
        seen = f"median {at_least}{format_duration(median)} over {ttr.count} incidents ({split}; p90 {p90})"
        if not restore.median_exact and band != "low":
            # unresolved incidents sit in the middle: restoring them later can only raise the median
            out.append(Placement("time to restore service", None, [seen, (
                f"not placed: the median is only a lower bound while {len(restore.unresolved)} incident(s) are "
                "unresolved at or below it")], [f"restore or resolve {', '.join(restore.unresolved[:5])}"]))
        else:
            out.append(Placement("time to restore service", band, [seen],
                                 [RESTORE_NEXT[band]] if band in RESTORE_NEXT else []))
    delivery = fig.delivery
    if delivery is None:
        out.append(Placement("change failure rate", None, ["not measured: no rollouts known (no change journal "
                                                           "counts or ReplicaSet history in the input)"],
                             ["the rollouts: read the cluster, or export replicasets and the counts ConfigMap"]))
        out.append(Placement("deployment frequency", None, ["not measured: no rollouts known"],
                             ["the rollouts, as for the change failure rate"]))
    else:
        rate = delivery.failure_rate
        if delivery.rollouts < MIN_SAMPLE or rate is None:
            out.append(Placement("change failure rate", None, [too_few(delivery.rollouts, "rollouts")],
                                 [f"{MIN_SAMPLE - delivery.rollouts} more rollouts"]))
        else:
            band = failure_band(rate)
            out.append(Placement("change failure rate", band,
                                 [f"{Share(delivery.failed, delivery.rollouts).text()} of rollouts led to a degraded "
                                  f"service (named the probable cause of an incident)"],
                                 [FAILURE_NEXT[band]] if band in FAILURE_NEXT else []))
        median = delivery.median_workload_per_day
        if delivery.rollouts < MIN_SAMPLE or median is None:
            out.append(Placement("deployment frequency", None, [too_few(delivery.rollouts, "rollouts")],
                                 [f"{MIN_SAMPLE - delivery.rollouts} more rollouts"]))
        else:
            band = dora_keys.frequency_band(median)
            out.append(Placement("deployment frequency", band,
                                 [f"median workload {median:g} rollouts a day ({delivery.rollouts} rollouts of "
                                  f"{len(delivery.per_workload)} workloads over {delivery.days:.3g} days)"],
                                 [FREQUENCY_NEXT[band]] if band in FREQUENCY_NEXT else []))
    out.append(Placement("lead time for changes", None,
                         ["not measured: " + LEAD_TIME_UNKNOWN],
                         ["your delivery pipeline's records"]))
    return out


FREQUENCY_NEXT = {"high": "more than one rollout a day per workload", "medium": "at least one a week",
                  "low": "at least one a month"}


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
        4: [Criterion("the adaptive order restored service more often than the Runbook's order, over at least "
                      f"{MIN_SAMPLE} reordered incidents",
                      lambda f: (f.learning.improved, f.learning.text()))],
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
            "definitions": dict(DEFINITIONS),
        }


def report(records: Iterable[Record], inventory: Inventory, scope: Scope = Scope(),
           now: datetime | None = None) -> Report:
    fig = figures(records, inventory, scope, now)
    return Report(scope, fig, dora(fig), aiops(fig))


def weekly(records: Sequence[Record], scope: Scope = Scope(),
           now: datetime | None = None) -> list[tuple[datetime, Figures]]:
    """The figures of each week (Monday 00:00 UTC) from the first incident in scope to the report's end, for
    the plot: every week is a Scope of its own, so each point is what the report says about that week."""
    starts = [r.started for r in records if scope.holds(r) and r.started is not None]
    if not starts:
        return []
    end = scope.until or now or max(starts)
    first = min(starts)
    week = datetime(first.year, first.month, first.day, tzinfo=UTC) - timedelta(days=first.weekday())
    out = []
    while week <= end:
        until = min(week + WEEK, end) if week + WEEK > end else week + WEEK
        out.append((week, figures(records, Inventory(known=False),
                                  Scope(max(week, scope.since or week), until, scope.namespaces), now)))
        week += WEEK
    return out
