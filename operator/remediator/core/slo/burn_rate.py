"""SLO burn rates and multiwindow, multi-burn-rate alerting (Google SRE workbook, ch. 5).

Pure: error ratios in, burn rates, alert verdicts, budget figures and
Prometheus rules out, each with reasons in words. No I/O, no clock: the
caller measures the SLI per window (signals/ queries Prometheus) and passes
`now` where a time is recorded.

The maths

    error budget   = 1 - objective                 (99.9% -> 0.1% of events may be bad)
    burn rate      = error ratio / error budget    (1 spends the budget exactly over the SLO window)
    budget spent   = burn rate x duration / SLO window
                     (14.4 over 1h = 2% of 30 days; 6 over 6h = 5%; 1 over 3d = 10%)

An alert window (severity, long window, short window, burn rate) fires when
the burn rate over BOTH windows is at least its burn rate: the long window
makes it significant (enough budget is gone), the short window makes it
current (it stops firing soon after the errors stop).

Missing data. A window whose SLI is absent, NaN, infinite, or has no events
(total 0) is "no data": never healthy, never breaching, and every reason says
so. An alert then follows three-valued logic: it is not firing when one of
its windows is known to be under the rate (both are needed to fire), and it
is "noData" when it cannot be decided (no window under the rate, at least one
without data).

Window scaling. Every window (SLO and alert windows) is multiplied by the
spec's `windowScale` (1/360 turns 30d into 2h for tests), rounded to whole
seconds, and clamped to no less than `minWindow` (a rate() needs at least two
scrapes). Clamping changes the ratios between windows; the notes say which
windows were clamped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from remediator.core.words import significant

from remediator.api.models import Condition
from remediator.api.slo import (
    SLI_PLACEHOLDER,
    BurnRateValue,
    FiringAlert,
    ServiceLevelObjectiveSpec,
    ServiceLevelObjectiveStatus,
    SliWindowValue,
)
from remediator.core.durations import format_duration, format_time, parse_duration

AlertState = Literal["firing", "ok", "noData"]
ConditionStatus = Literal["True", "False", "Unknown"]

RECORD_ERROR_RATIO = "slo:sli_error:ratio_rate"  # + window, e.g. slo:sli_error:ratio_rate5m (sloth's naming)
RECORD_BUDGET_REMAINING = "slo:error_budget_remaining:ratio"
RECORD_OBJECTIVE = "slo:objective:ratio"
ALERT_NAME = "SLOErrorBudgetBurn"
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


# ---------------------------------------------------------------- the basic maths


def error_budget(objective_percent: float) -> float:
    """99.9 -> 0.001: the fraction of events allowed to be bad."""
    if not 0 < objective_percent < 100:
        raise ValueError(f"objective must be a percentage strictly between 0 and 100, got {objective_percent}")
    # Rounded so 99.9 gives exactly 0.001 and a 14.4x burn compares as 14.4, not 14.399999.
    return round((100.0 - objective_percent) / 100.0, 12)


def burn_rate(error_ratio: float, objective_percent: float) -> float:
    """How many times faster than sustainable the budget is being spent: error ratio / (1 - objective)."""
    return error_ratio / error_budget(objective_percent)


def reaches(burn: float, threshold: float) -> bool:
    """burn >= threshold, forgiving float noise: 1.44% / 0.1% is 14.399999999999999, and that is 14.4."""
    return burn >= threshold * (1 - 1e-9)


def budget_consumed(burn: float, duration: timedelta, slo_window: timedelta) -> float:
    """Fraction of the window's error budget that `burn` spends in `duration` (14.4 over 1h of 30d: 0.02)."""
    return burn * (duration / slo_window)


def time_to_exhaustion(burn: float, slo_window: timedelta, budget_remaining: float = 1.0) -> timedelta | None:
    """How long until the remaining budget is gone at this burn rate; None when it never is (burn <= 0)."""
    if burn <= 0:
        return None
    return max(budget_remaining, 0.0) * slo_window / burn


def detection_time(error_ratio: float, objective_percent: float, threshold: float,
                   long_window: timedelta) -> timedelta | None:
    """How long an alert takes to fire after the error ratio jumps from 0 to `error_ratio`.

    The workbook's formula: (1 - SLO) / error ratio x window x burn threshold,
    i.e. the long window fills to the threshold in threshold/burn of its length
    (the short window, being shorter, is there sooner). None: it never fires.
    """
    burn = burn_rate(error_ratio, objective_percent)
    if not reaches(burn, threshold):
        return None
    return long_window * min(threshold / burn, 1.0)


def reset_time(burn: float, threshold: float, short_window: timedelta) -> timedelta:
    """How long an alert keeps firing after errors stop, for an incident longer than the short window.

    The short window's ratio decays linearly as clean traffic replaces bad, and
    drops under the threshold after short x (1 - threshold/burn).
    """
    if burn <= threshold:
        return timedelta(0)
    return short_window * (1 - threshold / burn)


# ---------------------------------------------------------------- windows


@dataclass(frozen=True)
class AlertWindow:
    """One row of the alerting policy, with windows already scaled."""

    severity: str
    long_window: timedelta
    short_window: timedelta
    burn_rate: float


@dataclass(frozen=True)
class WindowPlan:
    """The windows an SLO is measured over, after scaling and clamping."""

    slo_window: timedelta
    alerts: tuple[AlertWindow, ...]
    notes: tuple[str, ...] = ()

    @property
    def windows(self) -> tuple[timedelta, ...]:
        """Every distinct window to measure, shortest first (the SLO window included)."""
        every = {self.slo_window}
        for alert in self.alerts:
            every |= {alert.long_window, alert.short_window}
        return tuple(sorted(every))


def scale_window(window: timedelta, scale: float, min_window: timedelta) -> timedelta:
    """`window` x `scale`, rounded to whole seconds, never under `min_window`."""
    return max(timedelta(seconds=round(window.total_seconds() * scale)), min_window)


def plan_windows(spec: ServiceLevelObjectiveSpec) -> WindowPlan:
    """Scale and clamp the spec's windows, and say what scaling did."""
    scale = spec.window_scale
    min_window = parse_duration(spec.min_window)
    notes: list[str] = []
    described: dict[str, str] = {}

    def scaled(text: str) -> timedelta:
        raw = parse_duration(text)
        exact = raw.total_seconds() * scale
        result = scale_window(raw, scale, min_window)
        if result > timedelta(seconds=round(exact)):
            described[text] = (f"{text} -> {format_duration(result)} (clamped to minWindow "
                               f"{spec.min_window}; {_number(exact)}s after scaling)")
        elif scale != 1:
            described[text] = f"{text} -> {format_duration(result)}"
        return result

    slo_window = scaled(spec.window)
    alerts = tuple(
        AlertWindow(row.severity, scaled(row.long_window), scaled(row.short_window), row.burn_rate)
        for row in spec.alerting.windows
    )
    if described:
        how = f"windows scaled by {_scale_text(scale)}" if scale != 1 else "windows raised to minWindow"
        notes.append(f"{how}: " + ", ".join(described.values()))
    for alert in alerts:
        if alert.short_window >= alert.long_window:
            notes.append(
                f"{alert.severity} {_number(alert.burn_rate)}×: after clamping, the short window "
                f"{format_duration(alert.short_window)} is not shorter than the long window "
                f"{format_duration(alert.long_window)}; the alert resets no faster than it fires"
            )
    return WindowPlan(slo_window, alerts, tuple(notes))


# ---------------------------------------------------------------- readings


@dataclass(frozen=True)
class WindowReading:
    """The SLI measured over one window: an error ratio, or None with the reason there is none."""

    window: timedelta
    error_ratio: float | None
    no_data_reason: str = ""

    @property
    def has_data(self) -> bool:
        return self.error_ratio is not None


def no_data(window: timedelta, reason: str) -> WindowReading:
    return WindowReading(window, None, reason)


def reading_from_ratio(window: timedelta, error_ratio: float | None) -> WindowReading:
    """A reading from an already computed error ratio (e.g. a recording rule)."""
    problem = _missing(error_ratio, "the error ratio")
    if problem:
        return no_data(window, problem)
    if error_ratio < 0 or error_ratio > 1:
        return no_data(window, f"the error ratio {error_ratio} is outside 0..1")
    return WindowReading(window, float(error_ratio))


def reading_from_good_total(window: timedelta, good: float | None, total: float | None) -> WindowReading:
    """A reading from the rates of good and of all events: error ratio = 1 - good/total."""
    return _reading_from_rates(window, "good", good, total)


def reading_from_bad_total(window: timedelta, bad: float | None, total: float | None) -> WindowReading:
    """A reading from the rates of bad and of all events: error ratio = bad/total."""
    return _reading_from_rates(window, "bad", bad, total)


def _reading_from_rates(window: timedelta, kind: str, part: float | None, total: float | None) -> WindowReading:
    problem = _missing(total, "the total query") or _missing(part, f"the {kind} query")
    if problem:
        return no_data(window, problem)
    if total < 0 or part < 0:
        return no_data(window, f"a rate is negative ({kind} {part}, total {total})")
    if total == 0:
        return no_data(window, "total is 0: no events in the window")
    ratio = part / total if kind == "bad" else 1 - part / total
    # good/bad can exceed total by a hair when the two rates are scraped apart; clamp, it is noise.
    return WindowReading(window, min(max(ratio, 0.0), 1.0))


def _missing(value: float | None, what: str) -> str | None:
    if value is None:
        return f"{what} returned nothing"
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return f"{what} returned {value!r}, not a number"
    if math.isnan(value):
        return f"{what} returned NaN"
    if math.isinf(value):
        return f"{what} returned {value}"
    return None


# ---------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class WindowBurn:
    window: timedelta
    error_ratio: float | None
    burn_rate: float | None
    no_data_reason: str = ""

    @property
    def has_data(self) -> bool:
        return self.burn_rate is not None

    def at_least(self, threshold: float) -> bool | None:
        """True/False, or None when there is no data to tell."""
        return None if self.burn_rate is None else reaches(self.burn_rate, threshold)

    def describe(self) -> str:
        window = format_duration(self.window)
        if self.burn_rate is None:
            return f"no data over {window} ({self.no_data_reason})"
        return f"error ratio {_percent(self.error_ratio)} over {window} = burn {_number(self.burn_rate)}×"


def window_burn(reading: WindowReading, objective_percent: float) -> WindowBurn:
    if reading.error_ratio is None:
        return WindowBurn(reading.window, None, None, reading.no_data_reason or "no data")
    return WindowBurn(reading.window, reading.error_ratio, burn_rate(reading.error_ratio, objective_percent))


@dataclass(frozen=True)
class AlertEvaluation:
    window: AlertWindow
    state: AlertState
    long: WindowBurn
    short: WindowBurn
    reason: str

    @property
    def firing(self) -> bool:
        return self.state == "firing"


def evaluate_alert(window: AlertWindow, long: WindowBurn, short: WindowBurn) -> AlertEvaluation:
    """Fire when both windows burn at least `window.burn_rate`; three-valued when data is missing."""
    need = _number(window.burn_rate)
    over = (long.at_least(window.burn_rate), short.at_least(window.burn_rate))
    if over == (True, True):
        reason = (f"error ratio {_percent(long.error_ratio)} over {format_duration(long.window)} and "
                  f"{_percent(short.error_ratio)} over {format_duration(short.window)} = burn "
                  f"{_number(long.burn_rate)}× and {_number(short.burn_rate)}× (≥ {need}): {window.severity}")
        return AlertEvaluation(window, "firing", long, short, reason)
    if False in over:
        if long.has_data and short.has_data:
            reason = (f"error ratio {_percent(long.error_ratio)} over {format_duration(long.window)} and "
                      f"{_percent(short.error_ratio)} over {format_duration(short.window)} = burn "
                      f"{_number(long.burn_rate)}× and {_number(short.burn_rate)}× "
                      f"({window.severity} needs both ≥ {need}): not firing")
        else:
            reason = (f"{long.describe()}; {short.describe()}: {window.severity} needs both ≥ {need}, "
                      f"and a window with data is under it: not firing")
        return AlertEvaluation(window, "ok", long, short, reason)
    reason = (f"{long.describe()}; {short.describe()}: cannot tell whether {window.severity} "
              f"(both ≥ {need}) should fire")
    return AlertEvaluation(window, "noData", long, short, reason)


@dataclass(frozen=True)
class SloEvaluation:
    objective: float
    slo_window: timedelta
    windows: tuple[WindowBurn, ...]
    alerts: tuple[AlertEvaluation, ...]
    budget_remaining: float | None
    budget_reason: str
    breaching: ConditionStatus
    breaching_reason: str
    breaching_message: str
    notes: tuple[str, ...] = ()

    @property
    def firing(self) -> tuple[AlertEvaluation, ...]:
        return tuple(alert for alert in self.alerts if alert.firing)


def evaluate_slo(spec: ServiceLevelObjectiveSpec,
                 readings: Mapping[timedelta, WindowReading] | Iterable[WindowReading]) -> SloEvaluation:
    """Burn rates, alerts, budget and the Breaching verdict from one reading per window.

    `readings` covers `plan_windows(spec).windows`; a window without a reading
    counts as no data.
    """
    plan = plan_windows(spec)
    by_window = dict(readings) if isinstance(readings, Mapping) else {r.window: r for r in readings}
    burns = {
        window: window_burn(by_window.get(window) or no_data(window, "not measured"), spec.objective)
        for window in plan.windows
    }
    alerts = tuple(evaluate_alert(a, burns[a.long_window], burns[a.short_window]) for a in plan.alerts)
    remaining, budget_reason = _budget(burns[plan.slo_window], spec.objective)
    status, reason, message = _breaching(alerts)
    notes = plan.notes + tuple(
        f"{format_duration(b.window)}: no data ({b.no_data_reason})" for b in burns.values() if not b.has_data
    )
    return SloEvaluation(spec.objective, plan.slo_window, tuple(burns.values()), alerts,
                         remaining, budget_reason, status, reason, message, notes)


def error_budget_remaining(slo_window_error_ratio: float, objective_percent: float) -> float:
    """1 - spent: 1.0 untouched, 0 exhausted, negative when overspent."""
    return 1 - slo_window_error_ratio / error_budget(objective_percent)


def _budget(slo_window: WindowBurn, objective: float) -> tuple[float | None, str]:
    window = format_duration(slo_window.window)
    if not slo_window.has_data:
        return None, f"error budget over {window} unknown: {slo_window.no_data_reason}"
    remaining = error_budget_remaining(slo_window.error_ratio, objective)
    spent = f"error ratio {_percent(slo_window.error_ratio)} over {window} against a budget of " \
            f"{_percent(error_budget(objective))}"
    if remaining <= 0:
        return remaining, f"{spent}: the error budget is exhausted ({_percent(1 - remaining)} spent)"
    return remaining, f"{spent}: {_percent(remaining)} of the error budget remains"


def _breaching(alerts: tuple[AlertEvaluation, ...]) -> tuple[ConditionStatus, str, str]:
    firing = [a for a in alerts if a.firing]
    if firing:
        reason = "PageBurnRate" if any(a.window.severity == "page" for a in firing) else "TicketBurnRate"
        return "True", reason, "; ".join(a.reason for a in firing)
    undecided = [a for a in alerts if a.state == "noData"]
    if undecided:
        return "Unknown", "NoData", "; ".join(a.reason for a in undecided)
    return "False", "WithinBudget", "; ".join(a.reason for a in alerts)


# ---------------------------------------------------------------- status


def slo_status(evaluation: SloEvaluation, now: datetime,
               previous: ServiceLevelObjectiveStatus | None = None,
               observed_generation: int | None = None) -> ServiceLevelObjectiveStatus:
    """The status to write: values per window, firing alerts, conditions (transition times kept)."""
    stamp = format_time(now)
    previous = previous or ServiceLevelObjectiveStatus()
    was_firing = {(a.severity, a.long_window, a.short_window): a.since for a in previous.alerts}
    alerts = []
    for alert in evaluation.firing:
        key = (alert.window.severity, format_duration(alert.long.window), format_duration(alert.short.window))
        alerts.append(FiringAlert(
            severity=alert.window.severity, long_window=key[1], short_window=key[2],
            threshold=alert.window.burn_rate, long_burn_rate=_rounded(alert.long.burn_rate),
            short_burn_rate=_rounded(alert.short.burn_rate), reason=alert.reason,
            since=was_firing.get(key) or stamp,
        ))
    exhausted: ConditionStatus = (
        "Unknown" if evaluation.budget_remaining is None
        else "True" if evaluation.budget_remaining <= 0 else "False"
    )
    exhausted_reason = {"Unknown": "NoData", "True": "BudgetSpent", "False": "BudgetLeft"}[exhausted]
    conditions = [
        _condition(previous, "Breaching", evaluation.breaching, evaluation.breaching_reason,
                   evaluation.breaching_message, stamp),
        _condition(previous, "ErrorBudgetExhausted", exhausted, exhausted_reason,
                   evaluation.budget_reason, stamp),
    ]
    return ServiceLevelObjectiveStatus(
        observed_generation=observed_generation,
        sli=[
            SliWindowValue(window=format_duration(b.window),
                           sli=None if b.error_ratio is None else _rounded(1 - b.error_ratio),
                           error_ratio=_rounded(b.error_ratio), no_data_reason=b.no_data_reason)
            for b in evaluation.windows
        ],
        error_budget_remaining=_rounded(evaluation.budget_remaining),
        burn_rates=[BurnRateValue(window=format_duration(b.window), burn_rate=_rounded(b.burn_rate))
                    for b in evaluation.windows],
        alerts=alerts,
        conditions=conditions,
        last_evaluated=stamp,
        baseline_notes=list(evaluation.notes),
    )


def status_unknown(previous: ServiceLevelObjectiveStatus, now: datetime, reason: str, message: str,
                   observed_generation: int | None = None) -> ServiceLevelObjectiveStatus:
    """Nothing could be measured: Breaching is Unknown with the reason; the last values and firing alerts
    stay as they were (an outage of Prometheus is no evidence that a breach ended)."""
    stamp = format_time(now)
    kept = [c for c in previous.conditions if c.type != "Breaching"]
    return previous.model_copy(update={
        "observed_generation": observed_generation,
        "conditions": [_condition(previous, "Breaching", "Unknown", reason, message, stamp), *kept],
        "last_evaluated": stamp,
    })


def _condition(previous: ServiceLevelObjectiveStatus, kind: str, status: str, reason: str,
               message: str, stamp: str) -> Condition:
    before = next((c for c in previous.conditions if c.type == kind), None)
    since = before.last_transition_time if before is not None and before.status == status else None
    return Condition(type=kind, status=status, reason=reason, message=message,
                     last_transition_time=since or stamp)


def _rounded(value: float | None) -> float | None:
    # Six significant digits: readable in kubectl, and no status churn from float noise.
    return None if value is None else float(f"{value:.6g}")


# ---------------------------------------------------------------- Prometheus rules


def render_sli_query(template: str, *, window: timedelta, namespace: str, service: str, slo: str) -> str:
    """Fill an SLI template's placeholders ({{ window }} as a Prometheus duration)."""
    values = {"window": format_duration(window), "namespace": namespace, "service": service, "slo": slo}
    return SLI_PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


def error_ratio_expr(spec: ServiceLevelObjectiveSpec, window: timedelta, namespace: str, slo_name: str) -> str:
    """PromQL for the error ratio over `window`: bad/total, or 1 - good/total."""
    def fill(template: str) -> str:
        return render_sli_query(template, window=window, namespace=namespace, service=spec.service,
                                slo=slo_name)

    if spec.sli.bad_total is not None:
        return f"({fill(spec.sli.bad_total.bad)}) / ({fill(spec.sli.bad_total.total)})"
    good_total = spec.sli.good_total
    return f"1 - (({fill(good_total.good)}) / ({fill(good_total.total)}))"


def record_name(window: timedelta) -> str:
    return f"{RECORD_ERROR_RATIO}{format_duration(window)}"


def prometheus_rules(slo_name: str, namespace: str, spec: ServiceLevelObjectiveSpec) -> dict:
    """A Prometheus rule file (`{"groups": [...]}`, also a PrometheusRule's spec) for one SLO.

    Recording rules `slo:sli_error:ratio_rate<window>` per window, the budget
    remaining over the SLO window, and one `SLOErrorBudgetBurn` alert per row
    of the alerting policy: both windows at least the burn rate, for two
    evaluation intervals (a single odd evaluation, e.g. around a counter
    reset, does not page). Deterministic: same spec, same dict.
    """
    for what, value in (("SLO name", slo_name), ("namespace", namespace)):
        if not _DNS1123_SUBDOMAIN.fullmatch(value or ""):
            raise ValueError(f"{what} {value!r} is not a valid Kubernetes object name")
    plan = plan_windows(spec)
    budget = error_budget(spec.objective)
    ids = {"slo_name": slo_name, "slo_namespace": namespace, "slo_service": spec.service}
    selector = f'{{slo_name="{slo_name}",slo_namespace="{namespace}"}}'
    interval = parse_duration(spec.evaluation_interval)

    rules: list[dict] = [
        {"record": record_name(window), "expr": error_ratio_expr(spec, window, namespace, slo_name),
         "labels": {**ids, "slo_window": format_duration(window)}}
        for window in plan.windows
    ]
    rules.append({"record": RECORD_OBJECTIVE, "expr": f"vector({_number(spec.objective / 100, 12)})",
                  "labels": dict(ids)})
    rules.append({
        "record": RECORD_BUDGET_REMAINING,
        "expr": f"1 - (max without (slo_window) ({record_name(plan.slo_window)}{selector}) / {_number(budget, 12)})",
        "labels": dict(ids),
    })
    for alert in plan.alerts:
        rules.append(_alert_rule(alert, plan.slo_window, spec, ids, selector, budget, 2 * interval))
    return {"groups": [{
        "name": f"remediator-slo-{namespace}-{slo_name}",
        "interval": format_duration(interval),
        "rules": rules,
    }]}


def _alert_rule(alert: AlertWindow, slo_window: timedelta, spec: ServiceLevelObjectiveSpec,
                ids: dict[str, str], selector: str, budget: float, hold: timedelta) -> dict:
    long_text, short_text = format_duration(alert.long_window), format_duration(alert.short_window)
    threshold = f"({_number(alert.burn_rate, 12)} * {_number(budget, 12)})"
    over = [f"max without (slo_window) ({record_name(w)}{selector}) >= {threshold}"
            for w in (alert.long_window, alert.short_window)]
    lasts = time_to_exhaustion(alert.burn_rate, slo_window)
    spent = budget_consumed(alert.burn_rate, alert.long_window, slo_window)
    slo_id = f"{ids['slo_namespace']}/{ids['slo_name']}"
    return {
        "alert": ALERT_NAME,
        "expr": f"({over[0]}) and ({over[1]})",
        "for": format_duration(hold),
        # `namespace` and the target's kind label let the operator's Alertmanager receiver route the alert
        # to the SLO's namespace and Runbooks template the target, e.g. '{{ labels.deployment }}'.
        "labels": {**ids, "namespace": ids["slo_namespace"], spec.target.kind.lower(): spec.target.name,
                   "severity": alert.severity, "long_window": long_text, "short_window": short_text,
                   "burn_rate": _number(alert.burn_rate)},
        "annotations": {
            "summary": (f"SLO {slo_id} ({_number(spec.objective)}% over {format_duration(slo_window)}) is "
                        f"burning its error budget at ≥ {_number(alert.burn_rate)}× over {long_text} and "
                        f"{short_text}: {alert.severity}"),
            "description": (
                f"Error ratio {{{{ $value | humanizePercentage }}}} over {long_text}, and at least "
                f"{_percent(alert.burn_rate * budget)} over {short_text} too (burn ≥ "
                f"{_number(alert.burn_rate)}× of a {_percent(budget)} budget). At that rate {long_text} spends "
                f"{_percent(spent)} of the {format_duration(slo_window)} budget and all of it in "
                f"{format_duration(lasts)}."
            ),
        },
    }


# ---------------------------------------------------------------- words


_number = significant


def _percent(fraction: float) -> str:
    return f"{_number(fraction * 100)}%"


def _scale_text(scale: float) -> str:
    inverse = 1 / scale
    if abs(inverse - round(inverse)) < 1e-9 * inverse:
        return f"1/{round(inverse)}"
    return _number(scale)
