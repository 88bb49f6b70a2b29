"""Probable cause: rank recent changes as the cause of a breach, with reasons.

Pure: the changes (from the change journal, signals/changes.py), the target
and what it references, the time the breach began and the window are passed
in; a `Finding` comes out. Nothing here reads the clock or the cluster.

A change is a candidate when it touched the target itself or something the
target references (a ConfigMap it mounts, the HPA that scales it, a Node its
pods run on), happened inside the window before the breach began, and not
after it: a change that follows the breach's start cannot have caused it.
Candidates are scored out of 100:

    | factor                      | condition                              | points |
    |-----------------------------|----------------------------------------|--------|
    | what it touched             | the target itself                      |   50   |
    |                             | something the target references        |   30   |
    | time before the breach      | within 5m / 15m / 30m                  | 50 / 35 / 20 |
    |                             | earlier, inside the window             |   10   |

Ties rank the target before what it references, then the most recent
change first, then by object name, so the order is stable. The top
candidate's kind is the probable cause; without candidates it is "none",
which is a finding ("nothing changed"), not "unknown".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from remediator.api.models import CauseChange, ChangeKind, ProbableCause
from remediator.core.durations import format_ago, format_duration, format_time

CHANGE_KINDS: tuple[str, ...] = ("rollout", "configChange", "secretChange", "scaleChange", "hpaChange", "nodeChange")
Relation = Literal["target", "referenced"]

DEFAULT_WINDOW = timedelta(hours=1)
RELATION_POINTS = {"target": 50, "referenced": 30}
PROXIMITY_POINTS: tuple[tuple[timedelta, int], ...] = (
    (timedelta(minutes=5), 50), (timedelta(minutes=15), 35), (timedelta(minutes=30), 20))
IN_WINDOW_POINTS = 10
MAX_RANKED = 5
MAX_IGNORED = 8


@dataclass(frozen=True)
class Change:
    """One recorded change: never a Secret's contents, at most a Secret's name."""

    kind: ChangeKind
    object: str  # Kind/name, e.g. "Deployment/web", "Node/kwok-node-0"
    namespace: str | None  # None for cluster-scoped objects (Nodes)
    at: datetime
    what: str  # human-readable, e.g. "Deployment/web revision 2 rolled out: image web:1.4 → web:1.5"
    before: str = ""  # a short digest or value of what changed
    after: str = ""
    revision: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in CHANGE_KINDS:
            raise ValueError(f"change kind must be one of {', '.join(CHANGE_KINDS)}, got {self.kind!r}")
        if self.at.tzinfo is None:
            raise ValueError(f"change time of {self.object} has no timezone")


@dataclass(frozen=True)
class Target:
    """The signal's target and the objects it references, as "Kind/name" (same namespace, or a Node)."""

    kind: str
    namespace: str | None
    name: str
    references: frozenset[str] = frozenset()

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class Ranked:
    change: Change
    relation: Relation
    score: int
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Finding:
    kind: str  # a ChangeKind, or "none"
    summary: str
    ranked: tuple[Ranked, ...] = ()
    ignored: tuple[str, ...] = field(default_factory=tuple)
    breach_start: datetime | None = None


def relation_of(change: Change, target: Target) -> Relation | None:
    if change.namespace is not None and change.namespace != target.namespace:
        return None
    if change.object == target.ref:
        return "target"
    if change.object in target.references:
        return "referenced"
    return None


def proximity_points(lead: timedelta) -> tuple[int, str]:
    for within, points in PROXIMITY_POINTS:
        if lead <= within:
            return points, f"+{points} within {format_duration(within)} before the breach began"
    return IN_WINDOW_POINTS, f"+{IN_WINDOW_POINTS} {format_ago(lead)} before the breach began, inside the window"


def rank(target: Target, changes: Iterable[Change], breach_start: datetime, signal: str = "the breach",
         window: timedelta = DEFAULT_WINDOW) -> Finding:
    """Rank the changes that could have caused a breach of `signal` on `target` that began at `breach_start`."""
    if breach_start.tzinfo is None:
        raise ValueError("breach_start must be timezone-aware")
    if window <= timedelta(0):
        raise ValueError(f"window must be positive, got {window}")
    candidates: list[Ranked] = []
    ignored: list[str] = []
    unrelated = 0
    for change in changes:
        relation = relation_of(change, target)
        if relation is None:
            unrelated += 1
            continue
        lead = breach_start - change.at
        if lead < timedelta(0):
            ignored.append(f"{change.what}: {format_ago(-lead)} after the breach began, so not its cause")
            continue
        if lead > window:
            ignored.append(f"{change.what}: {format_ago(lead)} before the breach began, outside the "
                           f"{format_duration(window)} window")
            continue
        points, why = proximity_points(lead)
        touched = (f"+{RELATION_POINTS['target']} changed {target.ref} itself" if relation == "target"
                   else f"+{RELATION_POINTS['referenced']} changed {change.object}, which {target.ref} references")
        candidates.append(Ranked(change, relation, RELATION_POINTS[relation] + points, (touched, why)))
    candidates.sort(key=lambda r: (-r.score, r.relation != "target", -r.change.at.timestamp(), r.change.object,
                                   r.change.revision or ""))
    candidates = with_tie_reasons(candidates)
    if unrelated:
        ignored.append(f"{unrelated} change(s) touched neither {target.ref} nor what it references")
    ranked = tuple(candidates[:MAX_RANKED])
    return Finding(kind=ranked[0].change.kind if ranked else "none",
                   summary=summarise(target, ranked, len(candidates), breach_start, signal, window),
                   ranked=ranked, ignored=tuple(ignored[:MAX_IGNORED]), breach_start=breach_start)


def with_tie_reasons(ranked: list[Ranked]) -> list[Ranked]:
    out = []
    for i, r in enumerate(ranked):
        if i > 0 and ranked[i - 1].score == r.score:
            above = ranked[i - 1].change
            why = ("the target itself ranks first" if ranked[i - 1].relation != r.relation
                   else "the more recent ranks first" if above.at != r.change.at else "ordered by name")
            r = Ranked(r.change, r.relation, r.score, (*r.reasons, f"tied at {r.score} with {above.what}: {why}"))
        out.append(r)
    return out


def summarise(target: Target, ranked: tuple[Ranked, ...], count: int, breach_start: datetime, signal: str,
              window: timedelta) -> str:
    scope = f"{target.name} or what it references in the {format_duration(window)} before {signal} began"
    if not ranked:
        return f"nothing changed on {scope} ({format_time(breach_start)}): no probable cause among recent changes"
    top = ranked[0]
    text = f"{top.change.what}, {format_ago(breach_start - top.change.at)} before {signal} began"
    if count == 1:
        return f"{text}; nothing else changed on {scope}"
    runner = ranked[1]
    return (f"{text}; {count - 1} other candidate(s), next {runner.change.what} "
            f"(score {runner.score} against {top.score})")


def to_status(finding: Finding) -> ProbableCause:
    """The finding as persisted in the Remediation's status (bounded lists, times as RFC 3339)."""
    return ProbableCause(
        kind=finding.kind, summary=finding.summary[:1024],
        breach_start=format_time(finding.breach_start) if finding.breach_start else None,
        changes=[CauseChange(kind=r.change.kind, object=r.change.object, at=format_time(r.change.at),
                             what=r.change.what[:512], before=r.change.before[:256], after=r.change.after[:256],
                             revision=r.change.revision, score=r.score, reasons=list(r.reasons))
                 for r in finding.ranked],
        ignored=[i[:512] for i in finding.ignored],
    )
