"""What hostile or careless senders put in front of the Alertmanager route, answered without a 5xx that would
make Alertmanager retry for good, and without writing part of a delivery: the real app, Intake, Runbook cache
and tenant tokens over an in-memory apiserver, on a local socket."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import logging
from types import SimpleNamespace

import aiohttp
import pytest
from aiohttp import web
from kubernetes.client.rest import ApiException

from remediator.controller.ingest import Intake, RunbookCache
from remediator.controller.tenant_tokens import TenantTokens
from remediator.controller.webhooks import HINTED_ALERTS, WebhookConfig, build_app
from remediator.core.match.rate_limit import Limit, RateLimiter
from remediator.secrets import FileSecret

SHARED = "shared-token"
OPTED_IN = {"team-a": b"token-a"}
RUNBOOK = {"triggers": [{"alert": {"matchers": [{"name": "alertname", "op": "=", "value": "Boom"}]}}],
           "target": {"kind": "Deployment", "name": "{{ labels.deployment }}"},
           "steps": [{"name": "restart", "action": "restartRollout"}]}


class Apiserver:
    """Remediations kept in memory; every call recorded."""

    def __init__(self):
        self.objects: dict[tuple, dict] = {}
        self.calls: list[tuple] = []

    def create(self, kind, namespace, body):
        self.calls.append(("create", namespace, body["metadata"]["name"]))
        json.dumps(body).encode("utf-8")  # what the client would send
        key = (kind, namespace, body["metadata"]["name"])
        if key in self.objects:
            raise ApiException(status=409, reason="Conflict")
        self.objects[key] = {**copy.deepcopy(body), "metadata": {**body["metadata"], "resourceVersion": "1"}}
        return copy.deepcopy(self.objects[key])

    def get(self, kind, name, namespace=None):
        self.calls.append(("get", namespace, name))
        return copy.deepcopy(self.objects.get((kind, namespace, name)))

    def list(self, kind, namespace=None, label_selector=""):
        self.calls.append(("list", namespace, kind))
        return []

    def creates(self) -> list[tuple]:
        return [call for call in self.calls if call[0] == "create"]


class Secrets:
    def __init__(self):
        self.reads: list[str] = []

    def read_namespaced_secret(self, name, namespace):
        self.reads.append(namespace)
        if namespace not in OPTED_IN:
            raise ApiException(status=404, reason="Not Found")
        return SimpleNamespace(data={"token": base64.b64encode(OPTED_IN[namespace]).decode()})


def operator(tmp_path, served: set[str] | None, runbooks_in: set[str] = frozenset()):
    """served None: every namespace (a cluster-wide install)."""
    token = tmp_path / "token"
    token.write_text(SHARED)
    apiserver, runbooks = Apiserver(), RunbookCache()
    for namespace in runbooks_in:
        runbooks.put(namespace, "boom", 1, RUNBOOK)
    tokens = TenantTokens(api=None, secret_name="remediator-webhook-token")
    tokens.core = Secrets()
    cfg = WebhookConfig(intake=Intake(apiserver, runbooks, served=lambda ns: served is None or ns in served),
                        alertmanager_token=FileSecret(str(token)), tenant_tokens=tokens,
                        caller_limit=Limit(rate=1e6, burst=1e6), stranger_limit=Limit(rate=1e6, burst=1e6))
    return cfg, apiserver, tokens.core


def alert(status: str = "firing", starts_at: str = "2026-11-25T10:00:00Z", **labels) -> dict:
    return {"status": status, "labels": {"alertname": "Boom", "deployment": "web", **labels},
            "startsAt": starts_at}


def post(cfg: WebhookConfig, alerts: list, path: str = "/webhooks/alertmanager", token: str = SHARED,
         body: bytes | None = None, headers: dict | None = None) -> tuple[int, dict | str]:
    async def run():
        runner = web.AppRunner(build_app(cfg))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        sent = body if body is not None else json.dumps(
            {"version": "4", "status": "firing", "alerts": alerts}).encode()
        try:
            async with aiohttp.ClientSession() as session, session.post(
                    f"http://127.0.0.1:{port}{path}", data=sent,
                    headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                             **(headers or {})}) as resp:
                text = await resp.text()
                return resp.status, json.loads(text) if text.startswith("{") else text
        finally:
            await runner.cleanup()
    return asyncio.run(run())


@pytest.mark.parametrize("poison", [
    alert(starts_at="0001-01-01T00:00:00+01:00", namespace="shop"),
    alert(starts_at="9999-12-31T23:59:59-01:00", namespace="shop"),
    alert(namespace="shop", x="\ud800"),
    {**alert(namespace="shop"), "fingerprint": "\udfff"},
])
def test_an_alert_no_instant_or_text_can_hold_refuses_its_delivery_with_400_and_writes_nothing(tmp_path, poison):
    cfg, apiserver, _ = operator(tmp_path, {"shop"}, {"shop"})
    status, answer = post(cfg, [alert(namespace="shop", deployment="a"), poison,
                                alert(namespace="shop", deployment="c")])
    assert status == 400 and "alerts.1." in answer["error"], answer
    assert apiserver.creates() == []


def test_a_shared_delivery_about_an_outage_in_forty_five_namespaces_is_recorded_in_one_go(tmp_path):
    namespaces = [f"team-{i:02d}" for i in range(45)]
    cfg, apiserver, secrets = operator(tmp_path, set(namespaces), set(namespaces))
    status, answer = post(cfg, [alert(namespace=ns) for ns in namespaces])
    assert status == 200, answer
    assert [r["outcome"] for r in answer["results"]] == ["created"] * 45
    assert len(secrets.reads) == 45


def test_a_shared_delivery_past_the_lookup_budget_records_what_it_could_check_and_is_sent_again_for_the_rest(
        tmp_path):
    namespaces = [f"team-{i:02d}" for i in range(30)]
    cfg, apiserver, secrets = operator(tmp_path, set(namespaces), set(namespaces))
    cfg.tenant_tokens._lookup_limit = Limit(rate=0.001, burst=10)
    alerts = [alert(namespace=ns) for ns in namespaces]
    status, answer = post(cfg, alerts)
    assert status == 503, answer
    outcomes = [r["outcome"] for r in answer["results"]]
    assert outcomes == ["created"] * 10 + ["deferred"] * 20 and len(apiserver.creates()) == 10
    # the budget refilled: Alertmanager sends the delivery again
    cfg.tenant_tokens._lookups, cfg.tenant_tokens._lookup_limit = RateLimiter(max_callers=1), Limit(50, 500)
    status, answer = post(cfg, alerts)
    assert status == 200 and [r["outcome"] for r in answer["results"]] == ["duplicate"] * 10 + ["created"] * 20


def test_an_alert_padded_with_a_thousand_invented_namespaces_is_recorded_on_its_first_delivery(tmp_path):
    cfg, apiserver, secrets = operator(tmp_path, None, {"shop"})
    cfg.namespace_exists = lambda namespace: namespace in {"shop", "team-a"}
    padding = [alert(namespace=f"invented-{i}", deployment=f"d{i}") for i in range(999)]
    status, answer = post(cfg, [*padding, alert(namespace="shop")])
    assert status == 503, "the invented ones are deferred, past the budget"
    assert answer["results"][-1]["outcome"] == "created", answer["results"][-1]
    assert apiserver.creates()[0][1:] == ("shop", answer["results"][-1]["remediation"])


def test_a_tenant_route_names_nothing_of_other_namespaces_runbooks(tmp_path):
    others = {f"other-{i}" for i in range(30)}
    cfg, apiserver, _ = operator(tmp_path, {"team-a", *others}, others)
    status, answer = post(cfg, [alert()], path="/webhooks/alertmanager/team-a", token="token-a")
    assert status == 200, answer
    (result,) = answer["results"]
    assert result["outcome"] == "unmatched" and not any("other-" in r for r in result["reasons"]), result


def test_the_shared_route_names_a_few_foreign_runbooks_for_the_first_unmatched_alerts_only(tmp_path):
    others = {f"other-{i}" for i in range(30)}
    cfg, apiserver, _ = operator(tmp_path, {"shop", *others}, others)
    status, answer = post(cfg, [alert(namespace="shop", deployment=f"d{i}") for i in range(HINTED_ALERTS + 5)])
    assert status == 200, answer
    hinted = [sum("acts only in namespace" in r for r in result["reasons"]) for result in answer["results"]]
    assert hinted == [3] * HINTED_ALERTS + [0] * 5


def test_a_resolved_alert_for_a_namespace_not_served_is_ignored_without_a_read(tmp_path):
    cfg, apiserver, _ = operator(tmp_path, {"shop"}, {"shop"})
    status, answer = post(cfg, [alert("resolved", namespace="elsewhere"), alert(namespace="shop")])
    assert status == 200, answer
    assert [r["outcome"] for r in answer["results"]] == ["ignored", "created"]
    assert [call for call in apiserver.calls if call[1] == "elsewhere"] == []


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "zstd"])
def test_a_body_in_an_encoding_it_is_not_or_one_unknown_gets_400_and_no_error_in_the_log(tmp_path, caplog, encoding):
    cfg, _, _ = operator(tmp_path, {"shop"})
    with caplog.at_level(logging.ERROR):
        status, answer = post(cfg, [], body=b"not compressed at all", headers={"Content-Encoding": encoding})
    assert status == 400, answer
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.mark.parametrize("framing", [b"Content-Length: 3\r\nContent-Length: 3\r\n", b"Content-Length: -1\r\n"])
def test_a_request_aiohttp_cannot_frame_gets_400_and_no_error_in_the_log(tmp_path, caplog, framing):
    cfg, _, _ = operator(tmp_path, {"shop"})

    async def run() -> bytes:
        runner = web.AppRunner(build_app(cfg))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", site._server.sockets[0].getsockname()[1])
        try:
            writer.write(b"POST /webhooks/alertmanager HTTP/1.1\r\nHost: x\r\n" + framing + b"\r\nabc")
            await writer.drain()
            return await asyncio.wait_for(reader.read(65536), 5)
        finally:
            writer.close()
            await runner.cleanup()
    with caplog.at_level(logging.ERROR):
        answer = asyncio.run(run())
    assert answer.split(b"\r\n")[0].endswith(b"400 Bad Request"), answer
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_alerts_the_sender_left_out_of_a_delivery_are_logged(tmp_path, caplog):
    cfg, _, _ = operator(tmp_path, {"shop"}, {"shop"})
    sent = json.dumps({"version": "4", "status": "firing", "receiver": "remediator", "truncatedAlerts": 12,
                       "alerts": [alert(namespace="shop")]}).encode()
    with caplog.at_level(logging.WARNING):
        status, answer = post(cfg, [], body=sent)
    assert status == 200, answer
    assert [getattr(r, "left_out", None) for r in caplog.records if "left alerts" in r.getMessage()] == [12]

