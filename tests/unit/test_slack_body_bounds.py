"""The Slack endpoint reads bodies before it can know who sent them (the signature covers the body): each is small
and few are read at once, so unsigned slow bodies cannot fill the operator's memory."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from remediator.controller import webhooks
from remediator.controller.webhooks import WebhookConfig, build_app
from remediator.secrets import FileSecret


async def serve(cfg: WebhookConfig):
    runner = web.AppRunner(build_app(cfg))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]


def config() -> WebhookConfig:
    return WebhookConfig(intake=None, alertmanager_token=FileSecret(None))


def test_a_slack_body_over_64_kib_is_refused_with_413_before_it_is_read_whole():
    async def run() -> int:
        runner, port = await serve(config())
        try:
            async with aiohttp.ClientSession() as session:
                async with session.post(f"http://127.0.0.1:{port}/webhooks/slack/interactions",
                                        data=b"payload=" + b"x" * (100 << 10)) as resp:
                    return resp.status
        finally:
            await runner.cleanup()

    assert asyncio.run(run()) == 413


def test_slow_unsigned_bodies_are_read_a_few_at_a_time():
    cfg = config()
    held = []

    async def run() -> int:
        runner, port = await serve(cfg)
        writers = []
        try:
            for _ in range(webhooks.SLACK_READS_AT_ONCE + 8):  # each sends half its body and stalls
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"POST /webhooks/slack/interactions HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n"
                             + b"x" * 30000)
                await writer.drain()
                writers.append(writer)
            await asyncio.sleep(0.5)
            held.append(webhooks.SLACK_READS_AT_ONCE - cfg.slack_reads._value)
        finally:
            for writer in writers:
                writer.close()
            await runner.cleanup()
        return held[0]

    assert asyncio.run(run()) == webhooks.SLACK_READS_AT_ONCE, "the rest wait, unread"
