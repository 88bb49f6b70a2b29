"""An SLO's evaluated status -> the `sloBurn` signals Runbooks match. Pure.

One signal per severity that fires ("page", "ticket"). Its identity is the
SLO, the severity and the time that severity started firing, so every
evaluation of one breach names the same Remediation (the create conflict
dedupes) and a later breach opens a new one. A severity that stops firing
yields a resolved signal with the same identity.
"""

from __future__ import annotations

from remediator.api.models import Signal
from remediator.api.slo import ServiceLevelObjectiveSpec, ServiceLevelObjectiveStatus

SEVERITY_ORDER = ("page", "ticket")


def breach_signals(slo_name: str, namespace: str, spec: ServiceLevelObjectiveSpec,
                   status: ServiceLevelObjectiveStatus) -> list[Signal]:
    """A firing signal per severity that fires now, most severe first."""
    return [_signal(slo_name, namespace, spec, status, severity)
            for severity in SEVERITY_ORDER if any(a.severity == severity for a in status.alerts)]


def ended_breaches(slo_name: str, namespace: str, spec: ServiceLevelObjectiveSpec,
                   previous: ServiceLevelObjectiveStatus, current: ServiceLevelObjectiveStatus) -> list[Signal]:
    """Signals for the severities that fired before and fire no more (to be recorded as resolved)."""
    now_firing = {a.severity for a in current.alerts}
    return [_signal(slo_name, namespace, spec, previous, severity)
            for severity in SEVERITY_ORDER
            if severity not in now_firing and any(a.severity == severity for a in previous.alerts)]


def _signal(slo_name: str, namespace: str, spec: ServiceLevelObjectiveSpec,
            status: ServiceLevelObjectiveStatus, severity: str) -> Signal:
    alerts = [a for a in status.alerts if a.severity == severity]
    since = min((a.since for a in alerts if a.since), default=None)
    target = spec.target
    labels = {
        "namespace": namespace,
        "slo": slo_name,
        "service": spec.service,
        "severity": severity,
        "target_kind": target.kind,
        "target_name": target.name,
        target.kind.lower(): target.name,  # e.g. labels.deployment, as alert-driven runbooks template it
    }
    summary = "; ".join(a.reason for a in alerts)
    return Signal(source="sloBurn", name=slo_name, fingerprint=f"slo/{namespace}/{slo_name}/{severity}",
                  starts_at=since, labels=labels, severity=severity,
                  annotations={"objective": f"{spec.objective:g}%", "window": spec.window}, summary=summary[:1000])
