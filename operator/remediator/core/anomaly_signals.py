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
from datetime import UTC, datetime, timedelta

from ..api.models import AnomalyTrigger, Signal
from .anomaly import AnomalyState, AnomalyVerdict
from .durations import format_time
from .matching import ANOMALY_QUERY_ANNOTATION

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
