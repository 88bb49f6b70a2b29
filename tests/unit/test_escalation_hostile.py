"""The escalation edge under a hostile tenant, a careless user and a failing Alertmanager."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from remediator.api.models import RemediationApprovalSpec, RemediationStatus
from remediator.controller import escalation as edge
from remediator.core import escalation

from .test_escalation import SPEC, ended

MINUTE = timedelta(minutes=1)


class OneRemediation:
    """ctx.resources holding one Remediation; what the operator writes is checked as the apiserver would."""

    def __init__(self, status: RemediationStatus):
        self.obj = {"metadata": {"name": "r1", "namespace": "shop", "uid": "u-1"},
                    "spec": SPEC.wire(), "status": status.wire()}
        self.written: list[dict] = []

    def get(self, kind, name, namespace):
        return self.obj if (name, namespace) == ("r1", "shop") else None

    def replace_status(self, kind, namespace, name, body):
        # the CRD's maxLength/enum checks: a status the model refuses, the apiserver refuses (422)
        RemediationStatus.model_validate(body["status"])
        self.written.append(body["status"])


def test_a_resolve_by_a_user_with_the_longest_name_allowed_writes_a_status_the_apiserver_accepts():
    resources = OneRemediation(ended("Escalated"))
    vote = RemediationApprovalSpec(remediation="r1", request_id="u-1", decision="resolve", user="u" * 512,
                                   reason="n" * 1024)
    outcome, _ = edge.record_resolution(SimpleNamespace(resources=resources), "shop", vote)
    assert outcome == "accepted"
    assert resources.written[-1]["resolvedBy"].startswith("kubernetes:uuu")


class DownAlertmanager:
    def __init__(self):
        self.up, self.sent = False, []

    def send(self, alerts):
        if not self.up:
            raise edge.AlertmanagerUnavailable("Alertmanager unreachable: refused")
        self.sent.extend(alerts)


def test_an_escalation_alertmanager_could_not_take_is_paged_when_it_is_back_even_hours_later(monkeypatch):
    am = DownAlertmanager()
    ctx = SimpleNamespace(alertmanager=am, settings=SimpleNamespace(alert_resend_seconds=60), caches=None)
    status = ended("Escalated")  # finished 11:55
    monkeypatch.setattr(edge, "now_utc", lambda: datetime(2026, 12, 1, 11, 56, tzinfo=timezone.utc))
    status = status.model_copy(update={"escalation_alert": edge.settle_alert(ctx, "shop", "r1", SPEC, status, "m")})
    assert am.sent == []
    am.up = True
    monkeypatch.setattr(edge, "now_utc", lambda: datetime(2026, 12, 1, 15, 0, tzinfo=timezone.utc))
    sent = edge.settle_alert(ctx, "shop", "r1", SPEC, status, "m")
    assert len(am.sent) == 1, "an outage of Alertmanager loses no page"
    assert sent.sent_at and am.sent[0]["startsAt"] == "2026-12-01T11:55:00Z"


def test_an_owed_alert_never_sent_is_not_resolved_nor_watched_once_the_incident_is_over():
    from remediator.controller.escalation import OpenAlerts
    from remediator.controller.runbook_status import pending

    owed = ended("Escalated", restored_at="2026-12-01T12:00:00Z", restored_by="humans",
                 folded_into_runbook=True, escalation_alert={"startsAt": "2026-12-01T11:55:00Z"})
    assert escalation.alert_due(owed, datetime(2026, 12, 1, 12, 1, tzinfo=timezone.utc), MINUTE) is None
    assert not pending(owed.wire(), alerting=True)
    alerts = OpenAlerts()
    alerts.observe("MODIFIED", {"metadata": {"namespace": "shop", "name": "r1"}, "status": owed.wire()})
    assert alerts.keys() == []


def test_an_alertmanager_that_never_answers_holds_up_one_send_not_every_one(monkeypatch):
    import socket
    import time

    import pytest

    silent = socket.create_server(("127.0.0.1", 0))  # takes connections, never answers
    monkeypatch.setattr(edge, "TIMEOUT", 0.3)
    am = edge.Alertmanager(f"http://127.0.0.1:{silent.getsockname()[1]}", attempts=2)
    try:
        with pytest.raises(edge.AlertmanagerUnavailable):
            am.send([{}])
        started = time.monotonic()
        for _ in range(10):  # the rest of a sweep, or a burst of ended Remediations on the two chore threads
            with pytest.raises(edge.AlertmanagerUnavailable, match="paused"):
                am.send([{}])
        assert time.monotonic() - started < 0.3, "each send waited for the silent Alertmanager again"
    finally:
        silent.close()


def test_a_resolve_handled_again_after_a_crash_before_its_outcome_was_saved_is_still_accepted_once():
    resources = OneRemediation(ended("Escalated"))
    vote = RemediationApprovalSpec(remediation="r1", request_id="u-1", decision="resolve", user="alice",
                                   reason="restarted the db")
    ctx = SimpleNamespace(resources=resources)
    assert edge.record_resolution(ctx, "shop", vote)[0] == "accepted"
    resources.obj = {**resources.obj, "status": resources.written[-1]}
    assert edge.record_resolution(ctx, "shop", vote)[0] == "accepted", "kopf re-ran the create handler"
    assert len(resources.written) == 1, "recorded once"
    other = vote.model_copy(update={"user": "bob"})
    assert edge.record_resolution(ctx, "shop", other)[0] == "refused-already-decided"


class CountingAlertmanagerServer:
    """A real HTTP server on loopback answering every alert POST with one status code."""

    def __init__(self, code: int):
        import http.server
        import threading

        self.posts = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802  the stdlib's name
                outer.posts += 1
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(code)
                self.end_headers()
                self.wfile.write(b"bad alert: label value too long")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()


def test_an_alert_alertmanager_refuses_as_malformed_is_recorded_and_never_sent_again(monkeypatch):
    server = CountingAlertmanagerServer(400)
    try:
        ctx = SimpleNamespace(alertmanager=edge.Alertmanager(server.url), caches=None,
                              settings=SimpleNamespace(alert_resend_seconds=60))
        status = ended("Escalated")
        monkeypatch.setattr(edge, "now_utc", lambda: datetime(2026, 12, 1, 11, 56, tzinfo=timezone.utc))
        alert = edge.settle_alert(ctx, "shop", "r1", SPEC, status, "m")
        assert server.posts == 1, "a 400 was retried"
        assert alert.refused and "400" in alert.refused and not alert.sent_at
        status = status.model_copy(update={"escalation_alert": alert})
        RemediationStatus.model_validate(status.wire())  # the apiserver takes the recorded refusal
        later = datetime(2026, 12, 1, 13, 0, tzinfo=timezone.utc)
        assert escalation.alert_due(status, later, MINUTE) is None
        monkeypatch.setattr(edge, "now_utc", lambda: later)
        edge.settle_alert(ctx, "shop", "r1", SPEC, status, "m")
        assert server.posts == 1, "the refused alert was sent again at the next sweep"
        alerts = edge.OpenAlerts()
        alerts.observe("MODIFIED", {"metadata": {"namespace": "shop", "name": "r1"}, "status": status.wire()})
        assert alerts.keys() == [], "a restart would re-send the refused alert from the watch"
    finally:
        server.close()


def test_an_alertmanager_that_refuses_our_token_keeps_the_page_owed_for_when_the_setting_is_fixed(monkeypatch):
    server = CountingAlertmanagerServer(401)
    try:
        ctx = SimpleNamespace(alertmanager=edge.Alertmanager(server.url), caches=None,
                              settings=SimpleNamespace(alert_resend_seconds=60))
        monkeypatch.setattr(edge, "now_utc", lambda: datetime(2026, 12, 1, 11, 56, tzinfo=timezone.utc))
        alert = edge.settle_alert(ctx, "shop", "r1", SPEC, ended("Escalated"), "m")
        assert alert is not None and not alert.refused and not alert.sent_at, "the page was given up"
    finally:
        server.close()


@pytest.mark.parametrize("code,refused,posts", [(413, True, 1), (422, True, 1), (429, False, 3)])
def test_alertmanager_answers_too_large_or_unprocessable_refuse_the_alert_and_too_many_requests_keeps_it_owed(
        monkeypatch, code, refused, posts):
    server = CountingAlertmanagerServer(code)
    try:
        ctx = SimpleNamespace(alertmanager=edge.Alertmanager(server.url), caches=None,
                              settings=SimpleNamespace(alert_resend_seconds=60))
        monkeypatch.setattr(edge, "now_utc", lambda: datetime(2026, 12, 1, 11, 56, tzinfo=timezone.utc))
        alert = edge.settle_alert(ctx, "shop", "r1", SPEC, ended("Escalated"), "m")
        assert alert is not None and not alert.sent_at
        assert bool(alert.refused) is refused, alert.refused
        assert server.posts == posts, "a 429 is retried like a 5xx; a refusal is not"
    finally:
        server.close()
