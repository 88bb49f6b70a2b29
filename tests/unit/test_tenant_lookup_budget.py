"""A stranger inventing namespace routes spends its own token-lookup budget, not the one real tenants need."""

from __future__ import annotations

import asyncio
import base64

import aiohttp
from aiohttp import web
from kubernetes import client
from kubernetes.client.rest import ApiException

from remediator.controller.tenant_tokens import TenantTokens
from remediator.controller.webhooks import WebhookConfig, build_app
from remediator.secrets import FileSecret


class Core:
    def read_namespaced_secret(self, name, namespace):
        if namespace == "team-a":
            return type("S", (), {"data": {"token": base64.b64encode(b"secret-a").decode()}})()
        raise ApiException(status=404)


class Intake:
    def served(self, namespace: str) -> bool:
        return True

    def firing(self, signal):  # pragma: no cover
        raise AssertionError


def test_a_stranger_flooding_invented_namespace_routes_does_not_make_a_real_tenants_alerts_wait():
    tokens = TenantTokens(client.ApiClient(), "remediator-webhook-token")
    tokens.core = Core()
    cfg = WebhookConfig(intake=Intake(), alertmanager_token=FileSecret(None), tenant_tokens=tokens)

    async def run() -> tuple[dict, int]:
        runner = web.AppRunner(build_app(cfg))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        codes: dict[int, int] = {}
        try:
            async with aiohttp.ClientSession() as session:
                for i in range(600):  # no token at all: a stranger gets 10 requests' worth of its own budget
                    async with session.post(f"http://127.0.0.1:{port}/webhooks/alertmanager/invented-{i}",
                                            json={}, headers={"Authorization": "Bearer nope"}) as resp:
                        codes[resp.status] = codes.get(resp.status, 0) + 1
            # the tenant's Alertmanager is another peer (another loopback address)
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))) as tenant:
                async with tenant.post(f"http://127.0.0.1:{port}/webhooks/alertmanager/team-a",
                                       json={"version": "4", "alerts": []},
                                       headers={"Authorization": "Bearer secret-a"}) as resp:
                    return codes, resp.status
        finally:
            await runner.cleanup()

    codes, tenant = asyncio.run(run())
    assert tenant != 503, f"the tenant was told to retry after a stranger's flood {codes}"
