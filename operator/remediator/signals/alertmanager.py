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
import re
from datetime import UTC, datetime
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from ..api.models import Signal
from ..core.durations import micro_time, parse_time

MAX_ALERTS_PER_DELIVERY = 1000
MAX_LABELS = 64
MAX_LABEL_BYTES = 1024
HUMAN_TEXT = ("summary", "description")  # kept first when annotations are cut


# JSON may carry a lone UTF-16 surrogate ("\\ud800"), which is no Unicode text: it cannot be encoded to hash a
# fingerprint, name a Remediation or reach the apiserver (json.loads joins a proper pair into one character)
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def unicode_text(value: str) -> str:
    """Labels identify the alert: one that is not Unicode text is refused."""
    if LONE_SURROGATE.search(value):
        raise ValueError("not Unicode text (a lone UTF-16 surrogate)")
    return value


def readable(value: str) -> str:
    """Text for humans keeps what it can: a lone surrogate becomes U+FFFD."""
    return LONE_SURROGATE.sub("\ufffd", value)


def rfc3339(value: object) -> datetime:
    """Senders write RFC 3339 text; a number (a Unix time?) or another shape is refused rather than guessed, and so
    is a time that cannot be told in UTC (year 1 east of Greenwich, year 9999 west of it)."""
    if not isinstance(value, str):
        raise ValueError("an RFC 3339 time as a string is required (e.g. 2024-05-01T10:12:00Z)")
    parsed = parse_time(value)
    try:
        parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"time {value[:40]!r} is out of range") from None
    return parsed


Text = Annotated[str, AfterValidator(unicode_text)]
Time = Annotated[datetime, BeforeValidator(rfc3339)]


class AlertmanagerAlert(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"]
    labels: dict[Text, Text] = Field(min_length=1)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: Time
    endsAt: Time | None = None
    generatorURL: str = ""
    fingerprint: Text = ""

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
        return {readable(k[:MAX_LABEL_BYTES]):
                readable(v if len(v) <= MAX_LABEL_BYTES * 4 else v[:MAX_LABEL_BYTES * 4 - 1] + "…")
                for k, v in kept}


class AlertmanagerPayload(BaseModel):
    model_config = ConfigDict(extra="ignore")
    sender: ClassVar[str] = "alertmanager"

    version: Literal["4"]
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupKey: str = ""
    alerts: list[AlertmanagerAlert] = Field(min_length=1, max_length=MAX_ALERTS_PER_DELIVERY)
    externalURL: str = ""
    # left out by the receiver's `max_alerts`, only ever logged: a value that is no count is read as none
    truncatedAlerts: Annotated[int, BeforeValidator(lambda v: v if type(v) is int and v > 0 else 0)] = 0


class GrafanaPayload(AlertmanagerPayload):
    """Grafana-managed alerting's webhook contact point (Grafana 9 and later)."""
    sender: ClassVar[str] = "grafana"

    version: Literal["1"]  # type: ignore[assignment]
    orgId: int = Field(strict=True)  # a number, as Grafana sends it; not "1" or true
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
        where = readable(".".join(str(p)[:80] for p in first["loc"])) or "body"  # a label's name can be its place
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
