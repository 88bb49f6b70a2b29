"""/metrics can live on a port of its own, so a NetworkPolicy can admit only Prometheus to it (real sockets)."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
from aiohttp import web

from remediator.controller.webhooks import WebhookConfig, build_app, build_metrics_app
from remediator.secrets import FileSecret


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def statuses(app: web.Application, paths: list[str]) -> dict[str, int]:
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession() as session:
            found = {}
            for path in paths:
                async with session.get(f"http://127.0.0.1:{port}{path}") as response:
                    found[path] = response.status
            return found
    finally:
        await runner.cleanup()


def test_with_a_metrics_port_the_webhooks_port_no_longer_serves_metrics():
    cfg = WebhookConfig(intake=None, alertmanager_token=FileSecret(None))  # type: ignore[arg-type]
    webhooks = asyncio.run(statuses(build_app(cfg, with_metrics=False), ["/metrics", "/healthz"]))
    assert webhooks == {"/metrics": 404, "/healthz": 200}
    metrics = asyncio.run(statuses(build_metrics_app(), ["/metrics", "/webhooks/alertmanager"]))
    assert metrics["/metrics"] == 200 and metrics["/webhooks/alertmanager"] in (404, 405)
    shared = asyncio.run(statuses(build_app(cfg), ["/metrics"]))
    assert shared == {"/metrics": 200}, "metricsPort 0: as before, beside the webhooks"
