"""Risk scoring: how dangerous is this step, here, now — as a score, a level and reasons.

Pure: a `RiskInput` in, a `RiskAssessment` out. The step's declared risk sets
a base score; computed factors add or subtract; the level comes from the
score by bands and is never lower than the declared level (a runbook
author's "high" cannot be talked down by factors). Every contribution is one
reason starting with its signed points, so the reasons explain the score and
add up to it exactly (the floor and the 0–100 clamp are reasons too); the
last reason names the band.

Base score (declared step risk)

    | declared | base |
    |----------|------|
    | low      |  10  |
    | medium   |  35  |
    | high     |  60  |
    | critical |  85  |

Bands (score -> level)

    | score   | level    |
    |---------|----------|
    | 0–24    | low      |
    | 25–49   | medium   |
    | 50–74   | high     |
    | 75–100  | critical |

Factors

    | factor                | condition                                               | points |
    |-----------------------|---------------------------------------------------------|--------|
    | action                | rollback (runs an older revision)                       |  +10   |
    |                       | raiseMemory (rolls every pod with a new spec)           |   +5   |
    |                       | cordonDrain (evicts every pod on a node)                |  +15   |
    |                       | restartRollout, scale, deletePod                        |    0   |
    | production namespace  | environment/env/tier (or the configured key) is prod    |  +15   |
    | target criticality    | remediator.dev/criticality: critical / high / low       | +20 / +10 / -5 |
    | blast radius (sum,    | the workload's only replica is touched                  |  +10   |
    |   capped at +25)      | all replicas touched (2 or more)                        |  +10   |
    |                       | half or more of the replicas touched                    |   +5   |
    |                       | share of the namespace's pods >= 50% / 25% / 10%        | +15 / +10 / +5 |
    |                       | pods touched >= 20 / 10                                 | +10 / +5 |
    | recent failures       | per failure of this runbook in the window, capped       | +5 each, max +20 |
    | freeze window         | inside one                                              |  +30   |
    |                       | next one starts within 30m / within 2h                  | +10 / +5 |
    | server-side dry run   | succeeded / unavailable / failed                        | -5 / +5 / +15 |
    | probable cause        | known and fits the action (e.g. rollout -> rollback)    |  -10   |
    |                       | rollback/cordonDrain, cause known but another one       |  +15   |
    |                       | rollback/cordonDrain, cause unknown                     |   +5   |

rollback and cordonDrain *presume* a cause (a bad rollout, a bad node), so a
contradicting or unknown cause raises their risk; the other actions are
generic remedies and are only rewarded when the cause fits them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import Literal

from remediator.api.models import RISK_LEVELS, ActionName, CauseKind, RiskAssessment, RiskLevel
from remediator.core.plan.freeze import format_timedelta

DryRunResult = Literal["succeeded", "failed", "unavailable"]

BASE_SCORE: Mapping[str, int] = MappingProxyType({"low": 10, "medium": 35, "high": 60, "critical": 85})
# Lowest score of each band; a score belongs to the highest band whose floor it reaches.
BAND_FLOOR: Mapping[str, int] = MappingProxyType({"low": 0, "medium": 25, "high": 50, "critical": 75})

ACTION_POINTS: Mapping[str, tuple[int, str]] = MappingProxyType({
    "rollback": (10, "runs an older revision of the workload"),
    "raiseMemory": (5, "rolls every pod with a new memory limit"),
    "cordonDrain": (15, "evicts every pod on a node, whatever workload owns it"),
})

PRODUCTION_KEYS: tuple[str, ...] = ("environment", "env", "tier")
PRODUCTION_VALUES: frozenset[str] = frozenset({"prod", "production"})
PRODUCTION_POINTS = 15

CRITICALITY_LABEL = "remediator.dev/criticality"
CRITICALITY_POINTS: Mapping[str, int] = MappingProxyType({"critical": 20, "high": 10, "medium": 0, "low": -5})

ONLY_REPLICA_POINTS = 10
ALL_REPLICAS_POINTS = 10
HALF_REPLICAS_POINTS = 5
NAMESPACE_SHARE_POINTS: tuple[tuple[float, int], ...] = ((0.5, 15), (0.25, 10), (0.10, 5))
POD_COUNT_POINTS: tuple[tuple[int, int], ...] = ((20, 10), (10, 5))
BLAST_RADIUS_CAP = 25

FAILURE_POINTS = 5
FAILURES_CAP = 20

INSIDE_FREEZE_POINTS = 30
FREEZE_SOON_POINTS: tuple[tuple[timedelta, int], ...] = ((timedelta(minutes=30), 10), (timedelta(hours=2), 5))

DRY_RUN_POINTS: Mapping[str, tuple[int, str]] = MappingProxyType({
    "succeeded": (-5, "server-side dry run succeeded"),
    "unavailable": (5, "no server-side dry run of this action: its effect is less certain"),
    "failed": (15, "server-side dry run failed: the apiserver would reject or alter it"),
})

# Causes each action is a remedy for; actions listed in PRESUMPTIVE_ACTIONS only make sense for them.
FITTING_CAUSES: Mapping[str, frozenset[str]] = MappingProxyType({
    "rollback": frozenset({"rollout"}),
    "cordonDrain": frozenset({"nodeChange"}),
    "scale": frozenset({"scaleChange", "hpaChange"}),
    "restartRollout": frozenset({"configChange", "secretChange"}),
})
PRESUMPTIVE_ACTIONS: frozenset[str] = frozenset({"rollback", "cordonDrain"})
CAUSE_FITS_POINTS = -10
CAUSE_CONTRADICTS_POINTS = 15
CAUSE_UNKNOWN_POINTS = 5

Contribution = tuple[int, str]


@dataclass(frozen=True)
class RiskInput:
    """What is known about one step at plan time. Labels are copied and read-only."""

    declared: RiskLevel
    action: ActionName
    pods_touched: int = 0
    workload_replicas: int = 0  # 0 when the target is not a replicated workload (a Node, a bare Pod)
    namespace_share: float = 0.0  # pods touched / pods in the namespace, 0..1
    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    target_labels: Mapping[str, str] = field(default_factory=dict)
    production_label_key: str | None = None  # an extra namespace label marking production (value prod/production/true)
    recent_failures: int = 0
    in_freeze_window: bool = False
    next_freeze_in: timedelta | None = None
    dry_run: DryRunResult = "unavailable"
    probable_cause: CauseKind | None = None  # None: the cause finder has no opinion

    def __post_init__(self) -> None:
        if self.declared not in BASE_SCORE:
            raise ValueError(f"unknown declared risk {self.declared!r}")
        if min(self.pods_touched, self.workload_replicas, self.recent_failures) < 0:
            raise ValueError("pods_touched, workload_replicas and recent_failures must not be negative")
        if not 0.0 <= self.namespace_share <= 1.0:
            raise ValueError(f"namespace_share must be within 0..1, got {self.namespace_share}")
        object.__setattr__(self, "namespace_labels", MappingProxyType(dict(self.namespace_labels)))
        object.__setattr__(self, "target_labels", MappingProxyType(dict(self.target_labels)))


def assess_risk(inp: RiskInput) -> RiskAssessment:
    contributions = [(BASE_SCORE[inp.declared], f"declared step risk {inp.declared} (base)")]
    contributions += [
        c
        for c in (
            action_points(inp.action),
            production_points(inp.namespace_labels, inp.production_label_key),
            criticality_points(inp.target_labels),
            blast_radius_points(inp.pods_touched, inp.workload_replicas, inp.namespace_share),
            failure_points(inp.recent_failures),
            freeze_points(inp.in_freeze_window, inp.next_freeze_in),
            dry_run_points(inp.dry_run),
            cause_points(inp.action, inp.probable_cause),
        )
        if c is not None
    ]
    raw = sum(points for points, _ in contributions)
    clamped = min(100, max(0, raw))
    if clamped != raw:
        contributions.append((clamped - raw, f"score kept within 0..100 (factors gave {raw})"))
    score = max(clamped, BAND_FLOOR[inp.declared])
    if score != clamped:
        contributions.append(
            (score - clamped, f"declared risk {inp.declared} is never lowered (factors gave {clamped})")
        )
    level = level_for_score(score)
    reasons = [format_contribution(points, why) for points, why in contributions]
    reasons.append(f"score {score} -> {level} (band {band_text(level)})")
    return RiskAssessment(score=score, level=level, reasons=reasons)


def level_for_score(score: int) -> RiskLevel:
    if not 0 <= score <= 100:
        raise ValueError(f"score must be within 0..100, got {score}")
    reached = [level for level in RISK_LEVELS if score >= BAND_FLOOR[level]]
    return reached[-1]  # type: ignore[return-value]


def band_text(level: str) -> str:
    index = RISK_LEVELS.index(level)
    top = BAND_FLOOR[RISK_LEVELS[index + 1]] - 1 if index + 1 < len(RISK_LEVELS) else 100
    return f"{BAND_FLOOR[level]}-{top}"


def format_contribution(points: int, why: str) -> str:
    return f"{points:+d} {why}"


# ---------------------------------------------------------------- factors (None = does not apply)


def action_points(action: str) -> Contribution | None:
    if action not in ACTION_POINTS:
        return None
    points, why = ACTION_POINTS[action]
    return points, f"action {action} {why}"


def production_points(labels: Mapping[str, str], extra_key: str | None) -> Contribution | None:
    for key in PRODUCTION_KEYS:
        if labels.get(key, "").lower() in PRODUCTION_VALUES:
            return PRODUCTION_POINTS, f"production namespace ({key}={labels[key]})"
    if extra_key and labels.get(extra_key, "").lower() in PRODUCTION_VALUES | {"true"}:
        return PRODUCTION_POINTS, f"production namespace ({extra_key}={labels[extra_key]})"
    return None


def criticality_points(labels: Mapping[str, str]) -> Contribution | None:
    value = labels.get(CRITICALITY_LABEL)
    if value is None:
        return None
    points = CRITICALITY_POINTS.get(value.lower())
    if points is None:
        # Shown rather than dropped, so a misspelt label is noticed in `kubectl describe`.
        return 0, f"unrecognised target criticality {CRITICALITY_LABEL}={value} ignored"
    if points == 0:
        return None
    return points, f"target criticality {value.lower()} ({CRITICALITY_LABEL})"


def blast_radius_points(pods_touched: int, replicas: int, namespace_share: float) -> Contribution | None:
    parts: list[tuple[int, str]] = []
    if pods_touched and replicas == 1:
        parts.append((ONLY_REPLICA_POINTS, "the workload's only replica"))
    elif replicas >= 2 and pods_touched >= replicas:
        parts.append((ALL_REPLICAS_POINTS, f"all {replicas} replicas"))
    elif replicas >= 2 and 2 * pods_touched >= replicas:
        parts.append((HALF_REPLICAS_POINTS, f"{pods_touched} of {replicas} replicas"))
    share_points = first_reached(namespace_share, NAMESPACE_SHARE_POINTS)
    if share_points:
        parts.append((share_points, f"{round(namespace_share * 100)}% of the namespace's pods"))
    count_points = first_reached(pods_touched, POD_COUNT_POINTS)
    if count_points:
        parts.append((count_points, f"{pods_touched} pods"))
    if not parts:
        return None
    total = sum(points for points, _ in parts)
    detail = ", ".join(f"{what} {points:+d}" for points, what in parts)
    if total > BLAST_RADIUS_CAP:
        return BLAST_RADIUS_CAP, f"blast radius: {detail} (capped from {total:+d})"
    return total, f"blast radius: {detail}"


def failure_points(recent_failures: int) -> Contribution | None:
    if recent_failures == 0:
        return None
    points = min(FAILURES_CAP, FAILURE_POINTS * recent_failures)
    noun = "failure" if recent_failures == 1 else "failures"
    capped = " (capped)" if points < FAILURE_POINTS * recent_failures else ""
    return points, f"{recent_failures} recent {noun} of this runbook{capped}"


def freeze_points(inside: bool, next_in: timedelta | None) -> Contribution | None:
    if inside:
        return INSIDE_FREEZE_POINTS, "inside a freeze window"
    if next_in is None:
        return None
    for within, points in FREEZE_SOON_POINTS:
        if next_in <= within:
            return points, f"next freeze window starts in {format_timedelta(next_in)}"
    return None


def dry_run_points(result: DryRunResult) -> Contribution:
    return DRY_RUN_POINTS[result]


def cause_points(action: str, cause: str | None) -> Contribution | None:
    fitting = FITTING_CAUSES.get(action, frozenset())
    presumptive = action in PRESUMPTIVE_ACTIONS
    if cause in fitting:
        return CAUSE_FITS_POINTS, f"probable cause {cause} fits {action}"
    if not presumptive:
        return None
    wanted = " or ".join(sorted(fitting))
    if cause is None:
        return CAUSE_UNKNOWN_POINTS, f"probable cause unknown; {action} presumes a {wanted}"
    if cause == "none":
        return CAUSE_CONTRADICTS_POINTS, f"{action} but no recent {wanted} was found"
    return CAUSE_CONTRADICTS_POINTS, f"{action} but the probable cause is {cause}, not a {wanted}"


def first_reached(value: float, thresholds: tuple[tuple[float, int], ...]) -> int:
    """Points of the first (highest) threshold the value reaches; thresholds are sorted high to low."""
    for threshold, points in thresholds:
        if value >= threshold:
            return points
    return 0
