"""One trace per Remediation: stage spans under a root whose ids come from the uid, exported as OTEL_* says."""

from __future__ import annotations

import contextvars
from datetime import timedelta

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from remediator.api.models import RemediationStatus
from remediator.core.engine import engine
from remediator.records import tracing
from tests.unit.fake_store import FakeStore, loop_on
from tests.unit.test_core_engine import LADDER, NOW, SPEC, facts

UID = "6f1c1c52-8a53-4a4e-9d0e-0c6a0e1d1e11"


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    tracing.configure(SimpleSpanProcessor(exporter), env={})
    yield exporter
    tracing.configure(env={})


def remediation(status: RemediationStatus, uid: str = UID) -> dict:
    return {"metadata": {"name": "am-1", "namespace": "shop", "uid": uid, "creationTimestamp": "2026-11-25T11:59:58Z"},
            "spec": SPEC.wire(), "status": status.wire()}


@pytest.fixture
def run_to_success(monkeypatch):
    def run(uid: str = UID) -> None:
        """The real Loop from the alert to a verified success, in one process or several."""
        store = FakeStore(SPEC, LADDER, status=RemediationStatus(match_reasons=["alertname = HighErrorRate"]))
        store.object["metadata"]["uid"] = uid
        loop = loop_on(store, monkeypatch)
        store.clock += timedelta(seconds=1)  # the action is applied 1 s after the alert was matched
        contextvars.copy_context().run(loop.tick)  # plan, intent, action
        contextvars.copy_context().run(loop.tick)  # first look at the target: Ready
        store.clock += timedelta(seconds=39)
        assert contextvars.copy_context().run(loop.tick) is None and store.status.phase == "Succeeded"
    return run


def test_a_remediation_run_is_one_trace_with_a_span_per_stage_under_its_root(spans, run_to_success):
    run_to_success()
    finished = spans.get_finished_spans()
    # plan and intent are one decision, one write; the root ends with the write of the verdict
    assert [s.name for s in finished] == ["match", "plan", "gate", "act", "remediation", "verify"]
    trace_id, root_id = tracing.trace_id_for(UID), tracing.root_span_id_for(UID)
    assert {s.context.trace_id for s in finished} == {trace_id}
    root, stages = finished[4], finished[:4] + finished[5:]
    assert root.context.span_id == root_id and root.parent is None
    assert all(s.parent is not None and s.parent.span_id == root_id for s in stages)
    assert root.attributes["outcome"] == "Succeeded"
    assert root.attributes["time_to_recover_seconds"] == 160.0  # alert 2 min before, verified 40 s after


def test_stage_spans_carry_remediation_runbook_target_step_action_risk_and_verdict(spans, run_to_success):
    run_to_success()
    by_name = {}
    for s in spans.get_finished_spans():
        by_name.setdefault(s.name, s)
    gate = by_name["gate"].attributes
    assert (gate["remediation"], gate["runbook"], gate["target"]) == ("shop/am-1", "shop/ladder",
                                                                      "Deployment/shop/web")
    assert (gate["step"], gate["action"], gate["risk.level"], gate["verdict"]) == (
        "restart", "restartRollout", "low", "Acting")
    assert isinstance(gate["risk.score"], int)
    assert by_name["match"].attributes["match.reasons"] == ("alertname = HighErrorRate",)
    assert by_name["act"].attributes["result"] == "restarted"
    verify = by_name["verify"]
    assert verify.attributes["verdict"] == "passed"
    assert verify.end_time - verify.start_time == 39 * 10**9  # from the action applied to the verdict


def test_every_process_adds_to_the_same_trace_and_another_remediation_gets_its_own(spans, run_to_success):
    run_to_success()
    run_to_success()
    run_to_success("another-uid")
    ids = [s.context.trace_id for s in spans.get_finished_spans()]
    assert ids[:12] == [tracing.trace_id_for(UID)] * 12
    assert set(ids[12:]) == {tracing.trace_id_for("another-uid")}


def test_an_unpersisted_verdict_or_a_pending_one_adds_no_verify_span(spans):
    acting = engine.decide("am-1", SPEC, RemediationStatus(), facts()).status
    intent = engine.decide("am-1", SPEC, acting, facts()).status
    applied = engine.action_done(intent, 0, "restarted", [], NOW)
    tracing.verified(remediation(applied), 0, applied, applied, NOW)  # pending: unchanged
    judged = engine.verification_judged(applied, 0, "passed", ["ok"], [], NOW, None)
    tracing.verified(None, 0, applied, judged, NOW)  # the write lost a conflict
    assert spans.get_finished_spans() == ()


def test_without_a_configured_exporter_nothing_is_recorded():
    tracing.configure(env={})
    with tracing.stage(UID, "act", {}) as span:
        assert not span.is_recording()


@pytest.mark.parametrize("env, exporter", [
    ({}, None),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, OTLPSpanExporter),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, OTLPSpanExporter),
    ({"OTEL_TRACES_EXPORTER": "otlp"}, OTLPSpanExporter),
    ({"OTEL_TRACES_EXPORTER": "console"}, ConsoleSpanExporter),
    ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, None),
    ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, None),
])
def test_the_exporter_is_the_one_the_standard_environment_names(env, exporter):
    found = tracing.exporter_from_env(env)
    assert (None if found is None else type(found)) is exporter
