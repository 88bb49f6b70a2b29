"""Typed model of the remediator.dev/v1alpha1 `ServiceLevelObjective` (namespaced).

An SLO is an SLI (good/total or bad/total PromQL), an objective in percent and
a window. It is evaluated with multiwindow, multi-burn-rate alerting (Google
SRE workbook, chapter 5 "Alerting on SLOs"); the maths lives in
`remediator.core.slo.burn_rate`, this module only says what a valid spec is.

SLI queries are templates. The only placeholders are

    {{ window }}     the range of the rate(), e.g. 5m, filled once per window
    {{ namespace }}  the SLO's namespace
    {{ service }}    spec.service
    {{ slo }}        the SLO's name

e.g. `sum(rate(http_requests_total{code!~"5..",service="{{ service }}"}[{{ window }}]))`.
Every query must use `{{ window }}`: multiwindow alerting evaluates the same
SLI over several ranges, so a query with a fixed range would be the same
number in every window. Substituted values are object names (DNS-1123) and
durations, so they can never break out of a PromQL string.

Windows can be scaled by configuration (`windowScale`, e.g. 1/360 in tests so
30 days become 2 hours); a scaled window is rounded to whole seconds and never
shorter than `minWindow`. Keep `minWindow` at least twice the Prometheus
scrape/evaluation interval: a rate() over fewer than two samples is empty.
"""

from __future__ import annotations

import re
from typing import Literal, Self

from pydantic import Field, SerializationInfo, ValidationInfo, model_serializer, model_validator

from .models import MAX_TEXT, DURATION_PATTERN, Condition, Duration, Model, percent_text, with_text, without_text

# Placeholders an SLI query may use; anything else between braces is an error.
SLI_PLACEHOLDER = re.compile(r"\{\{\s*(window|namespace|service|slo)\s*\}\}")
SLI_PLACEHOLDERS: tuple[str, ...] = ("window", "namespace", "service", "slo")
_DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

# Bounds the apiserver's CEL cost estimate of the template rules (api/rules.py) and keeps queries readable.
MAX_SLI_QUERY = 4096

Severity = Literal["page", "ticket"]
SEVERITIES: tuple[str, ...] = ("page", "ticket")


def sli_placeholders(query: str) -> set[str]:
    return {match.group(1) for match in SLI_PLACEHOLDER.finditer(query)}


def sli_stray_braces(query: str) -> str | None:
    """'{{' or '}}' found outside a placeholder, or None."""
    leftover = SLI_PLACEHOLDER.sub("", query)
    return next((token for token in ("{{", "}}") if token in leftover), None)


def sli_template_problem(query: str) -> str | None:
    """Why `query` is not a usable SLI template, or None when it is."""
    token = sli_stray_braces(query)
    if token:
        allowed = ", ".join(f"{{{{ {name} }}}}" for name in SLI_PLACEHOLDERS)
        return f"has {token!r} outside a placeholder: the only placeholders are {allowed}"
    if "window" not in sli_placeholders(query):
        return (
            "does not use '{{ window }}': each burn-rate window evaluates the query over its own "
            "range, e.g. rate(http_requests_total[{{ window }}])"
        )
    return None


class RuleChecked(Model):
    """Parsing checks the model's rules from remediator.api.rules, the table the CRD's CEL is generated from, so
    the evaluator refuses exactly what the apiserver refuses. `remediator validate` parses with
    context {"skip_rules": True} and reports the rules itself, each at its field's path."""

    @model_validator(mode="after")
    def _rules_hold(self, info: ValidationInfo) -> Self:
        if (info.context or {}).get("skip_rules"):
            return self
        from .rules import broken_rules  # rules.py imports this module

        problems = broken_rules(type(self), self.wire())
        if problems:
            raise ValueError("; ".join(problems))
        return self


class GoodTotalSli(RuleChecked):
    """Ratio of good events to all events."""

    good: str = Field(min_length=1, max_length=MAX_SLI_QUERY, description="PromQL: rate of good events over {{ window }}")
    total: str = Field(min_length=1, max_length=MAX_SLI_QUERY, description="PromQL: rate of all events over {{ window }}")


class BadTotalSli(RuleChecked):
    """Ratio of bad events to all events."""

    bad: str = Field(min_length=1, max_length=MAX_SLI_QUERY, description="PromQL: rate of bad events over {{ window }}")
    total: str = Field(min_length=1, max_length=MAX_SLI_QUERY, description="PromQL: rate of all events over {{ window }}")



class Sli(RuleChecked):
    """Exactly one of goodTotal or badTotal."""

    good_total: GoodTotalSli | None = None
    bad_total: BadTotalSli | None = None


class SloTargetRef(Model):
    """The workload this SLO is about (what a remediation acts on)."""

    kind: Literal["Deployment", "StatefulSet", "DaemonSet"] = "Deployment"
    name: str = Field(min_length=1, max_length=253, pattern=_DNS1123_SUBDOMAIN)


class BurnRateWindow(RuleChecked):
    """Fire `severity` when the burn rate over BOTH windows is at least `burnRate`."""

    severity: Severity
    long_window: Duration = Field(pattern=DURATION_PATTERN)
    short_window: Duration = Field(
        pattern=DURATION_PATTERN, description="resets the alert quickly once errors stop; ~1/12 of longWindow"
    )
    burn_rate: float = Field(gt=0, description="multiple of the rate that spends the budget exactly over the window")


def sre_workbook_windows() -> list[BurnRateWindow]:
    """The SRE workbook's recommended multiwindow, multi-burn-rate policy (chapter 5, "Alerting on SLOs")."""
    return [
        BurnRateWindow(severity="page", long_window="1h", short_window="5m", burn_rate=14.4),
        BurnRateWindow(severity="page", long_window="6h", short_window="30m", burn_rate=6),
        BurnRateWindow(severity="ticket", long_window="3d", short_window="6h", burn_rate=1),
    ]


class AlertingPolicy(Model):
    windows: list[BurnRateWindow] = Field(default_factory=sre_workbook_windows, min_length=1, max_length=10)


class ServiceLevelObjectiveSpec(RuleChecked):
    service: str = Field(
        min_length=1, max_length=253, pattern=_DNS1123_SUBDOMAIN,
        description="the workload's name, e.g. the Deployment; used in coverage reports and {{ service }}",
    )
    target: SloTargetRef
    sli: Sli
    objective: float = Field(gt=0, lt=100, description="percent of good events, e.g. 99.9")
    window: Duration = Field("30d", pattern=DURATION_PATTERN, description="the SLO (error budget) window")
    alerting: AlertingPolicy = Field(default_factory=AlertingPolicy)
    window_scale: float = Field(
        1.0, gt=0, le=1,
        description="multiplies every window (SLO and alert windows), e.g. 1/360 to run 30d as 2h in tests",
    )
    min_window: Duration = Field(
        "1m", pattern=DURATION_PATTERN,
        description="no scaled window is shorter than this; keep it >= 2x the Prometheus scrape interval",
    )
    evaluation_interval: Duration = Field("30s", pattern=DURATION_PATTERN)
    description: str = ""


# ---------------------------------------------------------------- status


class SliWindowValue(Model):
    """The SLI over one (scaled) window; `sli` and `errorRatio` are unset when there is no data."""

    window: Duration
    sli: float | None = Field(None, description="fraction of good events, 0..1")
    error_ratio: float | None = Field(None, description="fraction of bad events, 0..1")
    no_data_reason: str = ""


class BurnRateValue(Model):
    window: Duration
    burn_rate: float | None = Field(None, description="error ratio / (1 - objective); 1 spends the budget exactly")


class FiringAlert(Model):
    severity: Severity
    long_window: Duration
    short_window: Duration
    threshold: float = Field(description="the burn rate both windows reached")
    long_burn_rate: float
    short_burn_rate: float
    reason: str = ""
    since: str | None = Field(None, description="RFC 3339 time this alert started firing")


class ServiceLevelObjectiveStatus(Model):
    observed_generation: int | None = None
    sli: list[SliWindowValue] = Field(default_factory=list)
    error_budget_remaining: float | None = Field(
        None, description="fraction of the window's budget left; negative when overspent"
    )
    budget_left: str | None = Field(None, max_length=MAX_TEXT, description="the same as a percent (-550%), for the "
                                                                       "printer column")
    burn_rates: list[BurnRateValue] = Field(default_factory=list)
    alerts: list[FiringAlert] = Field(default_factory=list, description="the alerts firing now")
    conditions: list[Condition] = Field(default_factory=list, description="Breaching, ErrorBudgetExhausted")
    last_evaluated: str | None = None
    baseline_notes: list[str] = Field(
        default_factory=list, description="how windows were scaled or clamped, and which had no data"
    )

    @model_validator(mode="before")
    @classmethod
    def _read(cls, data):
        return without_text(data, "budget_left")

    @model_serializer(mode="wrap")
    def _texts(self, handler, info: SerializationInfo) -> dict:
        return with_text(self, handler, info, {"budget_left": ("error_budget_remaining", percent_text)})
