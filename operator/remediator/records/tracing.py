"""OpenTelemetry traces: one trace per Remediation, a span per stage (match, plan, gate, act, verify).

A Remediation lives across many ticks and operator restarts, so its trace id
and its root span id are derived from the Remediation's uid: every process
that touches it adds spans to the same trace, under the same root. The root
span itself ("remediation", from startedAt to finishedAt) is exported once,
when the Remediation reaches its outcome.

Export follows the standard environment: an OTLP/HTTP exporter when
OTEL_TRACES_EXPORTER says otlp, or when it is unset and
OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set
(the exporter reads its endpoint, headers and timeout from the same
variables); `console` prints spans; otherwise nothing is exported.
OTEL_SDK_DISABLED=true turns tracing off.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import hashlib
import logging
import os
from collections.abc import Iterator, Mapping
from datetime import datetime

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from ..api.models import TERMINAL_PHASES, RemediationSpec, RemediationStatus
from ..core.durations import parse_time

log = logging.getLogger("remediator.tracing")

SCOPE = "remediator"
_provider: TracerProvider | None = None
_root_ids: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar("root_ids", default=None)

STAGE_OF_PHASE = {"Pending": "plan", "Planned": "gate", "AwaitingApproval": "gate", "Acting": "gate",
                  "Verifying": "verify"}


class RemediationIds(RandomIdGenerator):
    """Random ids, except for the root span of a Remediation, whose ids come from its uid."""

    def generate_trace_id(self) -> int:
        forced = _root_ids.get()
        return forced[0] if forced else super().generate_trace_id()

    def generate_span_id(self) -> int:
        forced = _root_ids.get()
        return forced[1] if forced else super().generate_span_id()


def trace_id_for(uid: str) -> int:
    return int(hashlib.sha256(f"trace\n{uid}".encode()).hexdigest()[:32], 16) or 1


def root_span_id_for(uid: str) -> int:
    return int(hashlib.sha256(f"root\n{uid}".encode()).hexdigest()[:16], 16) or 1


def exporter_from_env(env: Mapping[str, str]) -> SpanExporter | None:
    """The exporter the OTEL_* variables ask for, or None."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    wanted = [e.strip().lower() for e in env.get("OTEL_TRACES_EXPORTER", "").split(",") if e.strip()]
    if not wanted and (env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
        wanted = ["otlp"]
    if "otlp" in wanted:
        protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or ""
        if protocol and protocol != "http/protobuf":
            log.warning("only OTLP over http/protobuf is supported; exporting with it",
                        extra={"protocol": protocol})
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if "console" in wanted:
        return ConsoleSpanExporter()
    return None


def configure(processor: SpanProcessor | None = None, env: Mapping[str, str] | None = None) -> TracerProvider | None:
    """Install the provider: with `processor` (tests), else the exporter the environment names, else none."""
    global _provider
    env = os.environ if env is None else env
    if _provider is not None:
        atexit.unregister(_provider.shutdown)
        _provider.shutdown()
        _provider = None
    if processor is None:
        exporter = exporter_from_env(env)
        if exporter is None:
            return None
        processor = BatchSpanProcessor(exporter)
    resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME") or "remediator"})
    provider = TracerProvider(resource=resource, id_generator=RemediationIds())
    provider.add_span_processor(processor)
    _provider = provider
    atexit.register(provider.shutdown)  # flush what the batch still holds when the operator stops
    return provider


def tracer() -> trace.Tracer:
    return _provider.get_tracer(SCOPE) if _provider is not None else trace.NoOpTracer()


def ns(moment: datetime | str | None) -> int | None:
    if moment is None:
        return None
    if isinstance(moment, str):
        moment = parse_time(moment)
    return int(moment.timestamp() * 1e9)


def parent(uid: str) -> Context:
    root = SpanContext(trace_id=trace_id_for(uid), span_id=root_span_id_for(uid), is_remote=True,
                       trace_flags=TraceFlags(TraceFlags.SAMPLED))
    return trace.set_span_in_context(trace.NonRecordingSpan(root))


def base_attributes(namespace: str, name: str, spec: RemediationSpec) -> dict[str, str]:
    target = spec.target
    return {"remediation": f"{namespace}/{name}", "runbook": f"{spec.runbook.namespace}/{spec.runbook.name}",
            "target": f"{target.kind}/{target.namespace or namespace}/{target.name}",
            "signal.source": spec.signal.source, "signal.name": spec.signal.name}


def status_attributes(status: RemediationStatus) -> dict[str, object]:
    out: dict[str, object] = {"phase": status.phase, "reason": status.reason[:512]}
    if status.risk is not None:
        out |= {"risk.score": status.risk.score, "risk.level": status.risk.level,
                "risk.reasons": [r[:256] for r in status.risk.reasons[:20]]}
    if status.current_step is not None and status.current_step < len(status.plan):
        step = status.plan[status.current_step]
        out |= {"step": step.name, "step.index": step.index, "action": step.action}
    return out


def record(uid: str | None, name: str, start: datetime | str | None, end: datetime | str | None,
           attributes: Mapping[str, object], failed: bool = False) -> None:
    """A finished span of this Remediation's trace, with the times it really took."""
    if uid is None or _provider is None:
        return
    span = tracer().start_span(name, context=parent(uid), kind=SpanKind.INTERNAL, start_time=ns(start),
                               attributes=dict(attributes))
    if failed:
        span.set_status(Status(StatusCode.ERROR))
    span.end(end_time=ns(end))


@contextlib.contextmanager
def stage(uid: str | None, name: str, attributes: Mapping[str, object]) -> Iterator[trace.Span]:
    """A live span around a stage's work (e.g. the action call); exceptions mark it failed."""
    if uid is None or _provider is None:
        yield trace.INVALID_SPAN
        return
    with tracer().start_as_current_span(name, context=parent(uid), attributes=dict(attributes)) as span:
        yield span


def identity(obj: Mapping) -> tuple[str | None, str, str, RemediationSpec]:
    metadata = obj.get("metadata") or {}
    return (metadata.get("uid"), metadata.get("namespace", ""), metadata.get("name", ""),
            RemediationSpec.model_validate(obj["spec"]))


def step_attributes(namespace: str, name: str, spec: RemediationSpec, step, key: str = "") -> dict[str, object]:
    out = {**base_attributes(namespace, name, spec), "step": step.name, "action": step.action}
    return out | ({"idempotency_key": key} if key else {})


def decided(obj: Mapping, before: RemediationStatus, after: RemediationStatus, now: datetime) -> None:
    """Spans for one persisted decision: match and plan (on the first one), then the gate's verdict."""
    if _provider is None:
        return
    uid, namespace, name, spec = identity(obj)
    base = base_attributes(namespace, name, spec)
    if before.phase == "Pending":
        created = (obj.get("metadata") or {}).get("creationTimestamp")
        record(uid, "match", created or now, now, {**base, "match.reasons": after.match_reasons[:20]})
        record(uid, "plan", now, now, {**base, "plan": [f"{s.name}:{s.action}:{s.risk}" + (":skip" if s.skip else "")
                                                        for s in after.plan]})
    stage_name = "gate" if before.phase == "Pending" else STAGE_OF_PHASE.get(before.phase, "gate")
    record(uid, stage_name, now, now, {**base, **status_attributes(after), "verdict": after.phase,
                                       "phase.from": before.phase},
           failed=after.phase in ("Failed", "Denied", "Expired"))


def verified(obj: Mapping | None, index: int, before: RemediationStatus, after: RemediationStatus,
             now: datetime) -> None:
    """The verify span of a step, from its action to the verdict, once the verdict is persisted (obj)."""
    was = next((s for s in before.steps if s.index == index), None)
    done = next((s for s in after.steps if s.index == index), None)
    if _provider is None or obj is None or was is None or done is None or done.phase == was.phase:
        return
    uid, namespace, name, spec = identity(obj)
    record(uid, "verify", was.applied_at or now, now,
           {**step_attributes(namespace, name, spec, done), "step.index": index,
            "verdict": done.result or done.phase, "message": done.message[:512]},
           failed=done.phase != "Succeeded")


def finished(obj: Mapping, before: RemediationStatus, after: RemediationStatus) -> None:
    """The root span, once, when the Remediation reaches its outcome: from startedAt to now."""
    if _provider is None or before.phase in TERMINAL_PHASES or after.phase not in TERMINAL_PHASES:
        return
    uid, namespace, name, spec = identity(obj)
    if uid is None:
        return
    token = _root_ids.set((trace_id_for(uid), root_span_id_for(uid)))
    try:
        attributes = {**base_attributes(namespace, name, spec), "outcome": after.phase,
                      "reason": after.reason[:512]}
        if after.time_to_recover_seconds is not None:
            attributes["time_to_recover_seconds"] = after.time_to_recover_seconds
        span = tracer().start_span("remediation", context=Context(), kind=SpanKind.INTERNAL,
                                   start_time=ns(after.started_at), attributes=attributes)
        if after.phase != "Succeeded":
            span.set_status(Status(StatusCode.ERROR, after.reason[:256]))
        span.end()
    finally:
        _root_ids.reset(token)
