"""Alert webhook payloads turned into signals.

Two senders are accepted, each known by its own shape:
- Alertmanager (Prometheus', Mimir's, Cortex's): `version: "4"`;
- Grafana-managed alerting's webhook contact point: Alertmanager-shaped alerts with
  `version: "1"`, plus `orgId`, `title`, `state` and `message`.
Parsing is strict where it matters (version, statuses, label types, times)
and tolerant of extra fields, since senders add fields over time.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..api.models import Signal
from ..core.durations import micro_time

MAX_ALERTS_PER_DELIVERY = 1000
MAX_LABELS = 64
MAX_LABEL_BYTES = 1024
HUMAN_TEXT = ("summary", "description")  # kept first when annotations are cut


class AlertmanagerAlert(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(min_length=1)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str = ""

    @field_validator("labels")
    @classmethod
    def bounded(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_LABELS:
            raise ValueError(f"at most {MAX_LABELS} entries")
        for k, v in value.items():
            if len(k) > MAX_LABEL_BYTES or len(v) > MAX_LABEL_BYTES * 4:
                raise ValueError(f"entry {k[:40]!r} is too long")
        return value

    @field_validator("annotations")
    @classmethod
    def cut(cls, value: dict[str, str]) -> dict[str, str]:
        """Annotations are text for humans (a long runbook description is normal): cut, never a reason to lose
        the alert. Labels identify it and are refused instead."""
        kept = sorted(value.items(), key=lambda kv: (kv[0] not in HUMAN_TEXT, kv[0]))[:MAX_LABELS]
        return {k[:MAX_LABEL_BYTES]: v if len(v) <= MAX_LABEL_BYTES * 4 else v[:MAX_LABEL_BYTES * 4 - 1] + "…"
                for k, v in kept}

    @field_validator("startsAt", "endsAt")
    @classmethod
    def aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("time must carry a timezone (RFC 3339)")
        return value


class AlertmanagerPayload(BaseModel):
    model_config = ConfigDict(extra="ignore")
    sender: ClassVar[str] = "alertmanager"

    version: Literal["4"]
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupKey: str = ""
    alerts: list[AlertmanagerAlert] = Field(min_length=1, max_length=MAX_ALERTS_PER_DELIVERY)
    externalURL: str = ""


class GrafanaPayload(AlertmanagerPayload):
    """Grafana-managed alerting's webhook contact point (Grafana 9 and later)."""
    sender: ClassVar[str] = "grafana"

    version: Literal["1"]  # type: ignore[assignment]
    orgId: int
    state: str = ""  # "alerting" or "ok"
    title: str = ""
    message: str = ""


SHAPES = {"4": AlertmanagerPayload, "1": GrafanaPayload}


class PayloadError(ValueError):
    """A delivery we refuse with 400; the message says why."""


def parse_payload(raw: object) -> AlertmanagerPayload:
    """The payload in the shape its `version` names, or PayloadError naming the first wrong field."""
    version = raw.get("version") if isinstance(raw, dict) else None
    shape = SHAPES.get(version) if isinstance(version, str) else None
    if not isinstance(raw, dict):
        raise PayloadError("body: a JSON object is required")
    if shape is None:
        given = "missing" if version is None else f"{str(version)[:20]!r}"
        raise PayloadError(f"version: {given}; expected '4' (Alertmanager) or '1' (Grafana alerting's webhook "
                           "contact point)")
    try:
        return shape.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise PayloadError(f"{where}: {first['msg']} ({e.error_count()} error(s))") from None


def fingerprint(alert: AlertmanagerAlert) -> str:
    """Alertmanager's fingerprint when given, else a stable hash of the label set."""
    if alert.fingerprint:
        return alert.fingerprint
    canon = "\x00".join(f"{k}\x01{v}" for k, v in sorted(alert.labels.items()))
    return hashlib.sha256(canon.encode()).hexdigest()[:16]


def to_signal(alert: AlertmanagerAlert) -> Signal:
    labels = alert.labels
    return Signal(
        source="alertmanager",
        name=labels.get("alertname", ""),
        fingerprint=fingerprint(alert),
        starts_at=micro_time(alert.startsAt),
        labels=labels,
        annotations=alert.annotations,
        severity=labels.get("severity", ""),
        summary=alert.annotations.get("summary", "") or alert.annotations.get("description", ""),
    )
