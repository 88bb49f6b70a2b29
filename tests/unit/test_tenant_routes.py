"""The per-namespace route's answers when the token cannot be looked up (the apiserver is down: 503; too
many namespaces not cached lately: 503 with Retry-After), so the sender retries; never a 500, never a write. Real HTTP on a
local socket; the token store is a stand-in."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web
from kubernetes.client.rest import ApiException

from remediator.controller.tenant_tokens import TooManyLookups
from remediator.controller.webhooks import WebhookConfig, build_app
from remediator.secrets import FileSecret


class Unreachable:
    """A token store whose apiserver answers 503 (tenacity gave up)."""

    def matches(self, namespace: str, presented: bytes, caller: str | None = None) -> bool:
        raise ApiException(status=503, reason="Service Unavailable")


class Flooded:
    """A token store whose budget for namespaces not cached is spent."""

    def matches(self, namespace: str, presented: bytes, caller: str | None = None) -> bool:
        raise TooManyLookups(2.5)


class Intake:
    def served(self, namespace: str) -> bool:
        return True

    def firing(self, signal):  # pragma: no cover - reaching it is the failure
        raise AssertionError("nothing may be ingested without an authenticated caller")


async def post_to(cfg: WebhookConfig, path: str) -> tuple[int, dict, dict]:
    runner = web.AppRunner(build_app(cfg))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        async with aiohttp.ClientSession() as session, session.post(
                f"http://127.0.0.1:{port}{path}", json={"version": "4"},
                headers={"Authorization": "Bearer whatever"}) as resp:
            return resp.status, await resp.json(), dict(resp.headers)
    finally:
        await runner.cleanup()


def test_a_namespace_route_whose_token_cannot_be_read_answers_503_and_ingests_nothing():
    cfg = WebhookConfig(intake=Intake(), alertmanager_token=FileSecret(None), tenant_tokens=Unreachable())
    status, body, _ = asyncio.run(post_to(cfg, "/webhooks/alertmanager/team-a"))
    assert status == 503 and "retry" in body["error"], body


def test_a_namespace_route_past_the_lookup_budget_answers_503_with_retry_after_so_alertmanager_retries():
    cfg = WebhookConfig(intake=Intake(), alertmanager_token=FileSecret(None), tenant_tokens=Flooded())
    status, body, headers = asyncio.run(post_to(cfg, "/webhooks/alertmanager/invented-1"))
    assert status == 503 and headers["Retry-After"] == "3", (body, headers)
