"""The HTTP edge against hostile and awkward senders: bytes on a real socket, writes on the real apiserver.

The webhook app runs in this process (no Remediation loop beside it), so every change of a
Remediation's resourceVersion in these tests is the edge's own doing.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from urllib.parse import urlencode

import pytest
from aiohttp import web
from e2e.slack_standin import sign

from remediator.controller.context import OperatorContext, Settings
from remediator.controller.ingest import ingest_resolved
from remediator.controller.webhooks import WebhookConfig, build_app
from remediator.core.match.rate_limit import Limit
from remediator.core.match import reasons
from remediator.kube import Resources
from remediator.records.metrics import REFUSALS
from remediator.secrets import FileSecret
from remediator.signals.alertmanager import parse_payload, to_signal
from tests.support.raw_http import post_in_segments

pytestmark = pytest.mark.integration

TOKEN = "edge-token"
SLACK_SECRET = "edge-signing-secret"
ALERTS = "/webhooks/alertmanager"
SLACK = "/webhooks/slack/interactions"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


class Edge:
    """build_app served on a real TCP port from a thread of its own."""

    def __init__(self, cfg: WebhookConfig):
        self.cfg = cfg
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.runner = web.AppRunner(build_app(cfg))

        async def up() -> int:
            await self.runner.setup()
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            await site.start()
            return site._server.sockets[0].getsockname()[1]

        self.port = asyncio.run_coroutine_threadsafe(up(), self.loop).result(30)

    def post(self, path: str, body: bytes, headers: dict | None = None, **kw):
        return post_in_segments(self.port, path, body, headers, **kw)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture
def edge(kube_api, cluster, tmp_path):
    cluster.apply_runbook("web", {
        "triggers": [{"alert": {"matchers": [{"name": "alertname", "value": "HighErrorRate"}]}}],
        "target": {"kind": "Deployment", "name": "{{ labels.deployment }}"},
        "steps": [{"name": "restart", "action": "restartRollout"}]})
    (tmp_path / "token").write_text(TOKEN)
    (tmp_path / "slack-token").write_text("xoxb-unused")
    (tmp_path / "slack-secret").write_text(SLACK_SECRET)
    ctx = OperatorContext(api=kube_api, settings=Settings(
        namespaces=(cluster.ns,), slack_token_file=str(tmp_path / "slack-token"),
        slack_signing_secret_file=str(tmp_path / "slack-secret"), slack_api_url="http://127.0.0.1:9/api/"))
    wide_open = Limit(rate=100_000, burst=100_000)  # these tests are about answers, not the rate limit
    server = Edge(WebhookConfig(intake=ctx.intake, alertmanager_token=FileSecret(str(tmp_path / "token")), ctx=ctx,
                                slack=ctx.slack, caller_limit=wide_open, stranger_limit=wide_open))
    yield server
    server.stop()


def alert(ns: str, n: int = 0, deployment: str = "web", status: str = "firing", **labels) -> dict:
    return {"status": status, "labels": {"alertname": "HighErrorRate", "namespace": ns, "deployment": deployment,
                                         "pod": f"web-{n}", **labels},
            "annotations": {"summary": "5xx over 5%"}, "startsAt": "2026-11-25T11:58:00Z",
            "endsAt": "0001-01-01T00:00:00Z", "fingerprint": f"fp{n:06d}"}


def delivery(alerts: list[dict], status: str = "firing") -> bytes:
    return json.dumps({"version": "4", "status": status, "receiver": "remediator", "groupKey": "{}:{}",
                       "alerts": alerts}).encode()


def refusals(reason: str) -> float:
    return REFUSALS.labels(reason)._value.get()


# --- point 2: the whole body, however it arrives -------------------------------------------------------------

def test_a_delivery_split_across_tcp_segments_50_ms_apart_is_read_whole_and_recorded(edge, cluster):
    body = json.dumps({"version": "4", "status": "firing", "alerts": [{
        "status": "firing", "labels": {"alertname": "HighErrorRate", "namespace": cluster.ns, "deployment": "web"},
        "startsAt": "2026-11-25T11:58:00Z"}]}, separators=(",", ":")).encode()
    resp = edge.post(ALERTS, body, AUTH, cuts=[len(body) // 2])
    assert resp.status == 200, resp.body
    assert [r["outcome"] for r in resp.json()["results"]] == ["created"]
    assert len(cluster.remediations()) == 1


def test_a_302_kib_alert_group_is_read_whole_and_every_alert_is_recorded(edge, cluster):
    group = [alert(cluster.ns, n, team="storefront-" + "x" * 12) for n in range(900)]
    body = delivery(group)
    assert 300 * 1024 < len(body) < 310 * 1024
    resp = edge.post(ALERTS, body, AUTH, cuts=[64 * 1024, 200 * 1024])
    assert resp.status == 200, resp.body[:300]
    outcomes = [r["outcome"] for r in resp.json()["results"]]
    assert len(outcomes) == 900 and outcomes.count("created") == 1, "one incident, the rest joined it"
    assert set(outcomes[1:]) == {"correlated"}


def test_a_body_over_one_mib_gets_413_and_is_counted(edge, cluster):
    before = refusals("body-too-large")
    assert edge.post(ALERTS, b"[" + b" " * (1 << 20) + b"]", AUTH).status == 413
    assert refusals("body-too-large") == before + 1


# --- point 9: bounded storage ----------------------------------------------------------------------------------

def test_a_half_mebibyte_delivery_makes_a_small_remediation_that_says_what_was_cut(edge, cluster):
    big = alert(cluster.ns, 1)
    big["labels"].update({f"label{i:02d}": "v" * 4096 for i in range(60)})
    big["annotations"] = {f"note{i:02d}-" + "k" * 120: "a" * 4096 for i in range(64)}
    body = delivery([big])
    assert len(body) > 500 * 1024
    resp = edge.post(ALERTS, body, AUTH)
    assert resp.status == 200 and resp.json()["results"][0]["outcome"] == "created", resp.body[:300]
    stored = cluster.remediations()[0]
    assert len(json.dumps(stored)) < 48 * 1024
    signal = stored["spec"]["signal"]
    assert signal["labels"]["alertname"] == "HighErrorRate" and signal["labels"]["namespace"] == cluster.ns
    assert len(signal["labels"]) == 32 and len(signal["annotations"]) == 16
    # the reasons the intake made it with (no loop runs here: its first status write copies them to matchReasons)
    cut = [r for r in reasons.from_text(stored["metadata"]["annotations"].get(reasons.ANNOTATION))
           if r.startswith("signal stored in part")]
    assert any("kept 32 of 64 labels" in r for r in cut) and any("kept 16 of 64 annotations" in r for r in cut)


# --- point 10: never a 500, never a silent loss ----------------------------------------------------------------

def test_a_bearer_token_that_is_not_utf8_gets_401_not_500(edge, cluster):
    resp = edge.post(ALERTS, delivery([alert(cluster.ns)]), {"Authorization": b"Bearer \xff\xfe\x80"})
    assert resp.status == 401


def test_a_slack_timestamp_of_superscript_two_gets_401_not_500(edge):
    body = "payload=%7B%7D"
    for stamp in ("²".encode(), b"9" * 5000):
        resp = edge.post(SLACK, body.encode(), {"X-Slack-Request-Timestamp": stamp,
                                                "X-Slack-Signature": sign(SLACK_SECRET, "2", body)})
        assert resp.status == 401, stamp[:10]


def test_a_body_that_is_not_in_its_content_encoding_gets_400_not_500_and_is_counted(edge, cluster):
    before = refusals("body-unreadable")
    for path, headers in ((ALERTS, AUTH), (SLACK, {})):  # Slack's route reads the body before it can verify it
        resp = edge.post(path, b"not gzip", {**headers, "Content-Encoding": "gzip"})
        assert resp.status == 400 and b"could not be decoded" in resp.body, (path, resp.status, resp.body)
    assert refusals("body-unreadable") == before + 2
    assert cluster.remediations() == []


def test_a_body_nested_a_hundred_thousand_deep_gets_400_not_500(edge):
    resp = edge.post(ALERTS, b"[" * 100_000, AUTH)
    assert resp.status == 400 and b"nested too deeply" in resp.body


def test_a_resolution_that_loses_every_race_for_the_object_is_still_recorded(edge, cluster, kube_api):
    assert edge.post(ALERTS, delivery([alert(cluster.ns, 7)]), AUTH).status == 200
    name = cluster.remediations()[0]["metadata"]["name"]

    class RacedResources(Resources):
        """Another writer changes the object between every read and write of ours."""

        def get(self, kind, name, namespace=None):
            obj = super().get(kind, name, namespace)
            self.patch_status(kind, namespace, name, {"reason": f"busy {time.monotonic()}"})
            return obj

    resolved = to_signal(parse_payload(json.loads(delivery([alert(cluster.ns, 7, status="resolved")],
                                                           "resolved"))).alerts[0])
    result = ingest_resolved(RacedResources(kube_api), resolved)
    assert result.outcome == "resolved"
    assert cluster.remediation(name)["status"].get("signalResolvedAt"), "the resolution is on the record"


# --- point 12: Grafana-managed alerting ------------------------------------------------------------------------

def test_a_grafana_alerting_webhook_delivery_is_accepted_and_recorded(edge, cluster):
    """The payload of Grafana's webhook contact point, as its documentation shows it."""
    grafana = {
        "receiver": "remediator", "status": "firing", "orgId": 1,
        "alerts": [{"status": "firing",
                    "labels": {"alertname": "HighErrorRate", "namespace": cluster.ns, "deployment": "web",
                               "grafana_folder": "shop"},
                    "annotations": {"summary": "5xx over 5%"},
                    "startsAt": "2026-11-25T12:51:03.157076+02:00", "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "https://grafana.example/alerting/abc/edit", "fingerprint": "c6eadffa33fcdf37",
                    "silenceURL": "https://grafana.example/alerting/silence/new", "dashboardURL": "",
                    "panelURL": "", "values": {"B": 44.2, "C": 1}, "valueString": "[ var='B' value=44.2 ]"}],
        "groupLabels": {"alertname": "HighErrorRate"}, "commonLabels": {"alertname": "HighErrorRate"},
        "commonAnnotations": {}, "externalURL": "https://grafana.example/", "version": "1",
        "groupKey": "{}:{alertname=\"HighErrorRate\"}", "truncatedAlerts": 0,
        "title": "[FIRING:1] HighErrorRate", "state": "alerting", "message": "**Firing**\n..."}
    resp = edge.post(ALERTS, json.dumps(grafana).encode(), AUTH)
    assert resp.status == 200, resp.body
    assert resp.json()["results"][0]["outcome"] == "created"
    assert cluster.remediations()[0]["spec"]["signal"]["fingerprint"] == "c6eadffa33fcdf37"


# --- point 4: strangers never write -----------------------------------------------------------------------------

def callback_for(ns: str, remediation: str, user: str = "U_MALLORY", decision: str = "approve") -> str:
    payload = {"type": "block_actions", "user": {"id": user},
               "actions": [{"action_id": decision, "value": json.dumps({"ns": ns, "name": remediation,
                                                                        "decision": decision})}]}
    return urlencode({"payload": json.dumps(payload)})


def test_unsigned_and_stale_slack_callbacks_never_write_to_the_remediation_they_name(edge, cluster):
    assert edge.post(ALERTS, delivery([alert(cluster.ns, 3)]), AUTH).status == 200
    name = cluster.remediations()[0]["metadata"]["name"]
    version = cluster.remediation(name)["metadata"]["resourceVersion"]
    before = refusals("forged-slack-callback")
    body = callback_for(cluster.ns, name)
    now = str(int(time.time()))
    for i in range(60):
        stamp = now if i % 2 else str(int(time.time()) - 600)
        signature = "v0=" + "0" * 64 if i % 2 else sign(SLACK_SECRET, stamp, body)
        resp = edge.post(SLACK, body.encode(), {"Content-Type": "application/x-www-form-urlencoded",
                                                "X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signature})
        assert resp.status == 401
    assert refusals("forged-slack-callback") == before + 60, "each one counted"
    after = cluster.remediation(name)
    assert after["metadata"]["resourceVersion"] == version, "no apiserver write for an unverified request"
    assert not any(t["kind"] == "CallbackRefused" for t in (after.get("status") or {}).get("timeline", []))


def test_a_replayed_signed_callback_writes_nothing(edge, cluster):
    assert edge.post(ALERTS, delivery([alert(cluster.ns, 4)]), AUTH).status == 200
    name = cluster.remediations()[0]["metadata"]["name"]
    version = cluster.remediation(name)["metadata"]["resourceVersion"]
    body, stamp = callback_for(cluster.ns, name, "U_ALICE"), str(int(time.time()))
    signature = sign(SLACK_SECRET, stamp, body)
    edge.cfg.replays.first_time(signature)  # the original was received a moment ago
    before = refusals("replayed-slack-callback")
    resp = edge.post(SLACK, body.encode(), {"Content-Type": "application/x-www-form-urlencoded",
                                            "X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signature})
    assert resp.status == 200 and resp.json()["outcome"] == "replay"
    assert cluster.remediation(name)["metadata"]["resourceVersion"] == version
    assert refusals("replayed-slack-callback") == before + 1


def test_a_body_that_stalls_half_way_gets_503_so_the_sender_sends_it_again(edge, cluster, monkeypatch):
    from remediator.controller import webhooks

    monkeypatch.setattr(webhooks, "BODY_SECONDS", 0.5, raising=False)
    before = refusals("body-too-slow")
    body = delivery([alert(cluster.ns)])
    assert edge.post(ALERTS, body, AUTH, cuts=[10], pause=1.5).status == 503
    assert refusals("body-too-slow") == before + 1
    assert cluster.remediations() == []
