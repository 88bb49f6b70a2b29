"""Anomaly triggers: score each Runbook's PromQL series every baseline step and raise `anomaly` signals.

State lives in memory, one `AnomalyState` per (Runbook, trigger, series). After
a restart it is rebuilt from Prometheus itself: the first evaluation replays
the lookback with a range query, so the baseline is ready at once and an
anomaly already under way fires again with its original start (same
Remediation name: the create conflict dedupes it).

Evaluations happen at the instants of the trigger's step grid (multiples of the
step since the epoch), never at a replica's own moment: two replicas, or a
replica and its successor, read the same samples and name the same onset.

How far each baseline has got is written on its Runbook, as the condition
`AnomalyBaselineReady` (samples per trigger; True once every series can fire):
at each change of readiness, and while a baseline grows at most every
BASELINE_REPORT_EVERY, so a Runbook whose baselines are full costs no writes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from kubernetes.client.rest import ApiException

from ..api.models import API_VERSION, GROUP, VERSION, AnomalyTrigger, Condition, Signal
from ..core.anomaly import anomaly, anomaly_signals
from ..core.match import matching
from ..core.match.templating import TemplateError
from ..kube import call_retrying
from ..records import events
from ..signals.prometheus import PrometheusQueryError, PrometheusUnavailable, QueryRefused
from .context import OperatorContext
from .webhooks import SIGNALS

log = logging.getLogger("remediator.anomaly")
BASELINE_REPORT_EVERY = 10.0  # seconds between two writes of a growing baseline's sample count


@dataclass
class TriggerWatch:
    trigger: AnomalyTrigger
    params: anomaly.AnomalyParams
    last_at: datetime | None = None  # the step-grid instant evaluated last
    seeded: bool = False
    series: dict[str, anomaly.AnomalyState] = field(default_factory=dict)  # series key -> state


class AnomalyWatcher:
    def __init__(self, ctx: OperatorContext):
        self.ctx = ctx
        self.watches: dict[tuple[str, str, int], TriggerWatch] = {}
        self.reported: dict[tuple[str, str], tuple[Condition, float]] = {}  # Runbook -> condition written, when

    def forget(self) -> None:
        """Standing by: drop every baseline (taking over, it seeds afresh) and what was reported of them."""
        self.watches.clear()
        self.reported.clear()

    def triggers(self) -> dict[tuple[str, str, int], AnomalyTrigger]:
        return {(e.namespace, e.name, i): t.anomaly for e in self.ctx.runbooks.entries()
                if not e.spec.suspend for i, t in enumerate(e.spec.triggers) if t.anomaly is not None}

    def evaluate_due(self) -> None:
        current = self.triggers()
        for key in set(self.watches) - set(current):  # runbook deleted or trigger changed
            del self.watches[key]
        evaluated = set()
        for key, trigger in current.items():
            try:
                watch = self.watches.get(key)
                if watch is None or watch.trigger != trigger:
                    watch = self.watches[key] = TriggerWatch(trigger, anomaly.params_from_trigger(trigger))
                at = anomaly_signals.grid_instant(datetime.now(timezone.utc), watch.params.step)
                if watch.last_at is None or at > watch.last_at:
                    watch.last_at = at
                    self.evaluate(key, watch, at)
                    evaluated.add(key[:2])
            except Exception as e:  # noqa: BLE001  one Runbook's trigger must not stop every other one's
                log.warning("anomaly trigger not evaluated", extra={"runbook": f"{key[0]}/{key[1]}", "trigger": key[2],
                                                                    "error": str(e)[:512]})
        for runbook in set(self.reported) - {key[:2] for key in current}:
            del self.reported[runbook]
        for runbook in sorted(evaluated):
            self.report_baselines(*runbook)

    def baselines(self, namespace: str, runbook: str) -> list[anomaly_signals.TriggerBaseline]:
        return [anomaly_signals.TriggerBaseline(
                    index, watch.trigger.description or "", watch.params.min_samples,
                    tuple(anomaly.samples_learned(state, watch.params) for state in watch.series.values()))
                for (ns, name, index), watch in sorted(self.watches.items()) if (ns, name) == (namespace, runbook)]

    def report_baselines(self, namespace: str, runbook: str) -> None:
        """Write the Runbook's `AnomalyBaselineReady` condition when it changed: at once when its status did,
        else (a growing sample count) at most every BASELINE_REPORT_EVERY seconds."""
        triggers, now = self.baselines(namespace, runbook), datetime.now(timezone.utc)
        last = self.reported.get((namespace, runbook))
        if last is not None:
            condition = anomaly_signals.baseline_condition(triggers, last[0], now)
            if condition == last[0] or (condition.status == last[0].status
                                        and time.monotonic() - last[1] < BASELINE_REPORT_EVERY):
                return
        body = self.ctx.resources.get("Runbook", runbook, namespace)
        if body is None:
            return
        conditions = (body.get("status") or {}).get("conditions") or []
        others = [c for c in conditions if c.get("type") != anomaly_signals.BASELINE_CONDITION]
        previous = next((Condition.model_validate(c) for c in conditions
                         if c.get("type") == anomaly_signals.BASELINE_CONDITION), None)
        condition = anomaly_signals.baseline_condition(triggers, previous, now)
        if condition != previous:
            try:  # guarded by resourceVersion: the other conditions are written back as read
                call_retrying(
                    self.ctx.resources.custom.patch_namespaced_custom_object_status,
                    GROUP, VERSION, namespace, "runbooks", runbook,
                    {"metadata": {"resourceVersion": body["metadata"]["resourceVersion"]},
                     "status": {"conditions": [*others, condition.wire()]}})
            except ApiException as e:
                if e.status not in (404, 409):  # 409: another writer first; the next evaluation re-reads
                    raise
                return
        self.reported[(namespace, runbook)] = (condition, time.monotonic())

    def evaluate(self, key: tuple[str, str, int], watch: TriggerWatch, now: datetime) -> None:
        """Evaluate at `now`, an instant of the trigger's step grid: every replica reads the same samples at
        the same instants, so they agree on when an anomaly started, and so on its Remediation's name."""
        namespace, runbook, index = key
        prom = self.ctx.prometheus
        try:
            if not watch.seeded:
                self.seed(key, watch, now)
            samples = prom.instant(watch.trigger.query, at=now, namespace=namespace)
        except QueryRefused as e:  # outside its namespace or too big: the Runbook's author hears why
            log.warning("anomaly query refused", extra={"runbook": f"{namespace}/{runbook}", "error": str(e)})
            events.post(self.ctx.api, namespace, {"api_version": API_VERSION, "kind": "Runbook", "name": runbook,
                                                  "namespace": namespace},
                        "QueryRefused", f"anomaly trigger {index}: {e}", "Warning", f"{now:%Y%m%dT%H}:refused{index}",
                        now)
            return
        except (PrometheusUnavailable, PrometheusQueryError) as e:
            log.warning("anomaly query failed", extra={"runbook": f"{namespace}/{runbook}", "error": str(e)})
            return
        for sample in samples:
            refusal = anomaly_signals.foreign_namespace(namespace, sample.labels)
            if refusal:
                SIGNALS.labels("anomaly", "refused").inc()
                log.warning("anomaly series refused", extra={"runbook": f"{namespace}/{runbook}", "reason": refusal})
                continue
            series = anomaly_signals.series_key(namespace, runbook, index, sample.labels)
            before = watch.series.get(series, anomaly.AnomalyState())
            state, verdict = anomaly.step(before, sample.value, watch.params, now,
                                          change_at=self.last_change(namespace, runbook, sample.labels, now))
            watch.series[series] = state
            if verdict.notes and verdict.explanation.startswith("baseline re-learned"):
                self.relearned(namespace, runbook, verdict.explanation, now)
            self.signal(namespace, runbook, index, watch.trigger, sample.labels, before, state, verdict)

    def last_change(self, namespace: str, runbook: str, labels: dict[str, str], now: datetime) -> datetime | None:
        """When the series' target last changed deliberately (a rollout, a config change), from the change
        journal: a level that shifts after it and stays is re-learned instead of firing forever."""
        entry = next((e for e in self.ctx.runbooks.in_namespace(namespace) if e.name == runbook), None)
        if entry is None or self.ctx.changes is None:
            return None
        try:
            target = matching.render_target(entry, Signal(source="anomaly", name="", labels={**labels,
                                                                                          "namespace": namespace}))
        except TemplateError:
            return None
        changes = self.ctx.changes.changes(namespace, [f"{target.kind}/{target.name}"], now)
        return max((c.at for c in changes), default=None)

    def relearned(self, namespace: str, runbook: str, explanation: str, now: datetime) -> None:
        log.info("anomaly baseline re-learned", extra={"runbook": f"{namespace}/{runbook}", "reason": explanation})
        events.post(self.ctx.api, namespace, {"api_version": API_VERSION, "kind": "Runbook", "name": runbook,
                                              "namespace": namespace},
                    "BaselineRelearned", explanation, "Normal", f"{now:%Y%m%dT%H}:{explanation[:80]}", now)

    def seed(self, key: tuple[str, str, int], watch: TriggerWatch, now: datetime) -> None:
        """Replay the lookback so the baseline is ready (and an ongoing anomaly known) right away."""
        step = watch.params.step.total_seconds()
        start = anomaly_signals.grid_instant(now - watch.params.lookback, watch.params.step, settle=timedelta(0))
        for series in self.ctx.prometheus.range(watch.trigger.query, start, now, step,
                                                namespace=key[0]):
            state = anomaly.AnomalyState()
            for at, value in series.points[:-1]:  # the newest point is the live sample of this evaluation
                state, _ = anomaly.step(state, value, watch.params, datetime.fromtimestamp(at, timezone.utc))
            watch.series[anomaly_signals.series_key(*key, series.labels)] = state
        watch.seeded = True

    def signal(self, namespace: str, runbook: str, index: int, trigger: AnomalyTrigger, labels: dict[str, str],
               before: anomaly.AnomalyState, state: anomaly.AnomalyState, verdict: anomaly.AnomalyVerdict) -> None:
        if verdict.firing:  # every evaluation while firing: the create conflict makes it one Remediation
            signal = anomaly_signals.anomaly_signal(namespace, runbook, index, trigger, labels, state, verdict)
            SIGNALS.labels("anomaly", self.ctx.intake.firing(signal).outcome).inc()
        elif verdict.transition == "cleared":
            signal = anomaly_signals.anomaly_signal(namespace, runbook, index, trigger, labels, state, verdict,
                                                    firing_since=before.firing_since)
            SIGNALS.labels("anomaly", self.ctx.intake.resolved(signal).outcome).inc()


async def watch_anomalies(ctx: OperatorContext, active: Callable[[], bool] = lambda: True,
                          every: float = 1.0) -> None:
    """Background loop; does nothing while no Prometheus is configured or no Runbook has an anomaly trigger,
    nor on a standby replica (`active` false), which also forgets its state: taking over, it seeds afresh."""
    watcher = AnomalyWatcher(ctx)
    while True:
        await asyncio.sleep(every)
        if not active():
            watcher.forget()
            continue
        if ctx.prometheus is None:
            continue
        try:
            await asyncio.to_thread(watcher.evaluate_due)
        except Exception as e:  # a passing apiserver error must not end the watch
            log.warning("anomaly evaluation failed", extra={"error": str(e)})
