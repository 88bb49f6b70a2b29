"""An anomaly verdict on one series -> the `anomaly` signal Runbooks match. Pure.

The signal belongs to the Runbook's namespace: a series labelled with another
namespace is refused, so a query can never steer a Runbook elsewhere. Its
identity is the Runbook, the trigger, the series and the instant of the step
grid at which it started firing (the data's time, not a replica's clock), so
every evaluation of one episode, by any replica, names the same Remediation.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from remediator.api.models import AnomalyTrigger, Condition, Signal
from remediator.core.anomaly.anomaly import AnomalyState, AnomalyVerdict
from remediator.core.durations import format_time
from remediator.core.match.matching import ANOMALY_QUERY_ANNOTATION

SETTLE = timedelta(seconds=15)  # how long after a grid instant its samples have surely been scraped


def grid_instant(now: datetime, step: timedelta, settle: timedelta | None = None) -> datetime:
    """The latest instant of the step grid (multiples of `step` since the epoch, as Prometheus aligns range
    queries) at least `settle` before `now` (default: half a step, at most SETTLE): evaluated there, every
    replica sees the same samples whatever its own moment."""
    wait = min(step / 2, SETTLE) if settle is None else settle
    seconds = step.total_seconds()
    return datetime.fromtimestamp(math.floor((now - wait).timestamp() / seconds) * seconds, UTC)


def foreign_namespace(namespace: str, series_labels: dict[str, str]) -> str | None:
    """Why a series may not signal a Runbook in `namespace`, or None when it may."""
    other = series_labels.get("namespace")
    if other and other != namespace:
        return (f"series is labelled namespace={other!r} but the Runbook lives in {namespace!r}: "
                "a Runbook acts only in its own namespace")
    return None


def series_key(namespace: str, runbook: str, index: int, series_labels: dict[str, str]) -> str:
    text = "\n".join([namespace, runbook, str(index), *(f"{k}={v}" for k, v in sorted(series_labels.items()))])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def anomaly_signal(namespace: str, runbook: str, index: int, trigger: AnomalyTrigger,
                   series_labels: dict[str, str], state: AnomalyState, verdict: AnomalyVerdict,
                   firing_since: float | None = None) -> Signal:
    since = firing_since if firing_since is not None else state.firing_since
    annotations = {ANOMALY_QUERY_ANNOTATION: trigger.query, "explanation": verdict.explanation[:1000]}
    if verdict.notes:
        annotations["notes"] = "; ".join(verdict.notes)[:1000]
    return Signal(
        source="anomaly", name=trigger.description or "anomaly",
        fingerprint=f"anomaly/{series_key(namespace, runbook, index, series_labels)}",
        starts_at=None if since is None else format_time(datetime.fromtimestamp(since, UTC)),
        labels={**series_labels, "namespace": namespace}, annotations=annotations,
        severity="", summary=verdict.explanation[:1000],
    )


# ---------------------------------------------------------------- the baselines' status on the Runbook

BASELINE_CONDITION = "AnomalyBaselineReady"


@dataclass(frozen=True)
class TriggerBaseline:
    """One anomaly trigger of a Runbook as its watcher knows it: the samples each series' baseline holds."""
    index: int
    description: str
    min_samples: int
    samples: tuple[int, ...]  # one count per series seen so far


def baseline_condition(triggers: list[TriggerBaseline], previous: Condition | None, now: datetime) -> Condition:
    """`AnomalyBaselineReady` on the Runbook: True once every series of every anomaly trigger has its
    minSamples (it can fire), False while one is learning, Unknown before any series answered. The message
    gives each trigger's fewest samples, so a reader (or a test) sees how far learning has got."""
    parts, learning, unseen = [], False, False
    for t in sorted(triggers, key=lambda t: t.index):
        name = f"trigger {t.index} ({t.description})" if t.description else f"trigger {t.index}"
        if not t.samples:
            unseen = True
            parts.append(f"{name}: no series yet")
            continue
        fewest = min(t.samples)
        learning |= fewest < t.min_samples
        series = f"{len(t.samples)} series" if len(t.samples) > 1 else "1 series"
        parts.append(f"{name}: {series}, fewest {fewest} samples (ready at {t.min_samples})")
    status, reason = ("False", "Learning") if learning else ("Unknown", "NoSeries") if unseen else ("True", "Ready")
    since = previous.last_transition_time if previous is not None and previous.status == status else None
    return Condition(type=BASELINE_CONDITION, status=status, reason=reason, message="; ".join(parts)[:1000],
                     last_transition_time=since or format_time(now))
