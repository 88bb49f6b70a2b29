"""Evaluate one ServiceLevelObjective: load -> measure (Prometheus) -> core -> write status -> signals."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from kubernetes.client.rest import ApiException

from ..api.slo import ServiceLevelObjectiveSpec, ServiceLevelObjectiveStatus
from ..core.slo import burn_rate, slo_breach
from ..core.durations import parse_duration
from ..records import events
from ..signals import slo as slo_signals
from ..signals.prometheus import PrometheusUnavailable
from .context import OperatorContext
from .webhooks import SIGNALS

log = logging.getLogger("remediator.slo")

UNCONFIGURED = "no Prometheus configured: start the operator with --prometheus-url to evaluate SLOs"


def evaluate_once(ctx: OperatorContext, namespace: str, name: str) -> float | None:
    """Seconds until the next evaluation; None when the SLO is gone."""
    body = ctx.resources.get("ServiceLevelObjective", name, namespace)
    if body is None:
        return None
    spec = ServiceLevelObjectiveSpec.model_validate(body["spec"])
    previous = ServiceLevelObjectiveStatus.model_validate(body.get("status") or {})
    generation = body["metadata"].get("generation")
    interval = parse_duration(spec.evaluation_interval).total_seconds()
    now = datetime.now(timezone.utc)
    measured = False
    if ctx.prometheus is None:
        status = burn_rate.status_unknown(previous, now, "PrometheusNotConfigured", UNCONFIGURED, generation)
    else:
        try:
            readings = slo_signals.measure(ctx.prometheus, spec, namespace, name)
        except PrometheusUnavailable as e:
            status = burn_rate.status_unknown(previous, now, "PrometheusUnavailable", str(e), generation)
        else:
            status = burn_rate.slo_status(burn_rate.evaluate_slo(spec, readings), now, previous, generation)
            measured = True
    try:
        ctx.resources.replace_status("ServiceLevelObjective", namespace, name, {**body, "status": status.wire()})
    except ApiException as e:
        if e.status in (404, 409):  # gone, or changed since read: evaluate again next time
            return interval
        raise
    record_breach_change(ctx, body, previous, status, now)
    if measured:
        for signal in slo_breach.breach_signals(name, namespace, spec, status):
            SIGNALS.labels("sloBurn", ctx.intake.firing(signal).outcome).inc()
        for signal in slo_breach.ended_breaches(name, namespace, spec, previous, status):
            SIGNALS.labels("sloBurn", ctx.intake.resolved(signal).outcome).inc()
    return interval


def record_breach_change(ctx: OperatorContext, body: dict, previous: ServiceLevelObjectiveStatus,
                         status: ServiceLevelObjectiveStatus, now: datetime) -> None:
    """An Event on the SLO when its Breaching condition changes."""
    before = next((c for c in previous.conditions if c.type == "Breaching"), None)
    after = next((c for c in status.conditions if c.type == "Breaching"), None)
    if after is None or (before is not None and (before.status, before.reason) == (after.status, after.reason)):
        return
    meta = body["metadata"]
    events.post(ctx.api, meta["namespace"],
                {"api_version": body["apiVersion"], "kind": "ServiceLevelObjective", "name": meta["name"],
                 "namespace": meta["namespace"], "uid": meta.get("uid")},
                f"Breaching{after.status}" if after.status != "Unknown" else after.reason, after.message,
                "Warning" if after.status == "True" else "Normal", f"{after.last_transition_time}:{after.reason}", now)
