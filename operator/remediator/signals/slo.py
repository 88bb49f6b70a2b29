"""Measure an SLO's SLI over each of its windows through the Prometheus HTTP API.

Two instant queries per window (good or bad, and total), so "no traffic" and
"no series" are told apart from a real ratio. A query Prometheus refuses makes
that window "no data" with Prometheus's message; an unreachable Prometheus
raises `PrometheusUnavailable` so the caller records that nothing is known.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from ..api.slo import ServiceLevelObjectiveSpec
from ..core.slo import burn_rate
from ..core.durations import format_duration
from .prometheus import Prometheus, PrometheusQueryError, QueryRefused


def sli_queries(spec: ServiceLevelObjectiveSpec, window: timedelta, namespace: str, slo_name: str) -> tuple[str, str]:
    """(good-or-bad query, total query) over `window`."""
    part, total = ((spec.sli.bad_total.bad, spec.sli.bad_total.total) if spec.sli.bad_total is not None
                   else (spec.sli.good_total.good, spec.sli.good_total.total))

    def fill(template: str) -> str:
        return burn_rate.render_sli_query(template, window=window, namespace=namespace, service=spec.service,
                                          slo=slo_name)
    return fill(part), fill(total)


def measure_window(prom: Prometheus, spec: ServiceLevelObjectiveSpec, window: timedelta, namespace: str,
                   slo_name: str, at: datetime | None = None) -> burn_rate.WindowReading:
    part_query, total_query = sli_queries(spec, window, namespace, slo_name)
    try:
        part, total = prom.value(part_query, at, namespace), prom.value(total_query, at, namespace)
    except QueryRefused as e:
        return burn_rate.no_data(window, str(e))
    except PrometheusQueryError as e:
        return burn_rate.no_data(window, f"Prometheus refused the query: {e}")
    if spec.sli.bad_total is not None:
        return burn_rate.reading_from_bad_total(window, part, total)
    return burn_rate.reading_from_good_total(window, part, total)


def measure(prom: Prometheus, spec: ServiceLevelObjectiveSpec, namespace: str, slo_name: str,
            windows: tuple[timedelta, ...] | None = None, at: datetime | None = None) -> list[burn_rate.WindowReading]:
    """One reading per window (default: every window the SLO's alerting needs)."""
    windows = windows if windows is not None else burn_rate.plan_windows(spec).windows
    return [measure_window(prom, spec, w, namespace, slo_name, at) for w in windows]


def describe_window(reading: burn_rate.WindowReading, spec: ServiceLevelObjectiveSpec, namespace: str,
                    slo_name: str) -> str:
    """The window's queries and what they gave, for evidence."""
    part, total = sli_queries(spec, reading.window, namespace, slo_name)
    value = (f"error ratio {reading.error_ratio:.4g}" if reading.error_ratio is not None
             else f"no data ({reading.no_data_reason})")
    return f"{format_duration(reading.window)}: {value} from ({part}) / ({total})"
