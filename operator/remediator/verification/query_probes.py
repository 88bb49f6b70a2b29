"""Readings for the PromQL checks: one Prometheus look per tick (edge). Judged in `query_verdicts`."""

from __future__ import annotations

from datetime import datetime

from ..api.models import PromqlCheck
from ..api.slo import ServiceLevelObjectiveSpec
from ..core.slo import burn_rate
from ..core.durations import format_duration
from ..signals import slo as slo_signals
from ..signals.prometheus import Prometheus, PrometheusQueryError, PrometheusUnavailable, QueryRefused
from .query_verdicts import QueryReading


def read_promql(prom: Prometheus, check: PromqlCheck, now: datetime, namespace: str | None = None) -> QueryReading:
    """`namespace`: the Runbook's; the query reads only that namespace's series (or is refused, unsent)."""
    try:
        value = prom.value(check.query, namespace=namespace)
    except PrometheusUnavailable as e:
        return QueryReading(now, None, check.query, error=str(e))
    except QueryRefused as e:
        return QueryReading(now, None, f"{check.query}: {e}")
    except PrometheusQueryError as e:
        return QueryReading(now, None, f"{check.query}: refused by Prometheus: {e}")
    shown = "no data" if value is None else f"{value:.6g}"
    return QueryReading(now, value, f"{check.query} = {shown}")


def recovery_windows(spec: ServiceLevelObjectiveSpec, severity: str) -> tuple[burn_rate.AlertWindow, ...]:
    """The alerts whose short windows must cool down: those of `severity`, else the page ones, else all."""
    alerts = burn_rate.plan_windows(spec).alerts
    for wanted in (severity, "page"):
        chosen = tuple(a for a in alerts if a.severity == wanted)
        if chosen:
            return chosen
    return alerts


def read_slo_recovered(prom: Prometheus, spec: ServiceLevelObjectiveSpec, namespace: str, slo_name: str,
                       severity: str, now: datetime) -> QueryReading:
    """Value: the worst short-window burn as a fraction of its alert's threshold (recovered while < 1)."""
    alerts = recovery_windows(spec, severity)
    windows = tuple(sorted({a.short_window for a in alerts}))
    try:
        readings = {r.window: r for r in slo_signals.measure(prom, spec, namespace, slo_name, windows)}
    except PrometheusUnavailable as e:
        return QueryReading(now, None, f"SLO {slo_name}", error=str(e))
    worst: float | None = 0.0
    parts = []
    for alert in alerts:
        reading = readings[alert.short_window]
        burn = burn_rate.window_burn(reading, spec.objective)
        window = format_duration(alert.short_window)
        if burn.burn_rate is None:
            worst = None
            parts.append(f"{window}: no data ({burn.no_data_reason})")
            continue
        if worst is not None:
            worst = max(worst, burn.burn_rate / alert.burn_rate)
        parts.append(f"{window} burn {burn.burn_rate:.3g}× (under {alert.burn_rate:g}× needed)")
    queries = "; ".join(slo_signals.describe_window(readings[w], spec, namespace, slo_name) for w in windows)
    return QueryReading(now, worst, f"SLO {namespace}/{slo_name}: {', '.join(parts)} [{queries}]")
