"""The failing-pod rescan runs on the active replica only, and re-reads what it remembers when it takes over."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from remediator.controller import handlers


def test_a_standby_rescans_nothing_and_taking_over_re_reads_the_remembered_pods_first(monkeypatch):
    pod = {"metadata": {"namespace": "shop", "name": "web-1"}}
    ctx = SimpleNamespace(failing_pods={("shop", "web-1"): pod})
    calls: list[str] = []
    monkeypatch.setattr(handlers, "ingest_pod", lambda ctx, pod: calls.append("ingest") or asyncio.sleep(0))
    monkeypatch.setattr(handlers, "refresh_failing_pods", lambda ctx: calls.append("refresh"))
    active = {"now": False}

    async def scenario():
        task = asyncio.create_task(handlers.rescan_failing_pods(ctx, lambda: active["now"], every=0.01))
        await asyncio.sleep(0.1)
        assert calls == [], "a standby's memory of failing pods may be stale: it judges none"
        active["now"] = True
        await asyncio.sleep(0.1)
        task.cancel()

    asyncio.run(scenario())
    assert calls[0] == "refresh" and calls.count("refresh") == 1 and "ingest" in calls


def test_the_rescan_goes_on_when_the_sweep_of_escalated_pod_incidents_fails(monkeypatch):
    ctx = SimpleNamespace(failing_pods={("shop", "web-1"): {"metadata": {"namespace": "shop", "name": "web-1"}}})
    calls: list[str] = []
    monkeypatch.setattr(handlers, "ingest_pod", lambda ctx, pod: calls.append("ingest") or asyncio.sleep(0))
    monkeypatch.setattr(handlers, "refresh_failing_pods", lambda ctx: None)

    def sweep_fails(ctx, now, active):
        calls.append("sweep")
        raise RuntimeError("the caches are not there yet")
    monkeypatch.setattr(handlers, "end_pod_incidents", sweep_fails)

    async def scenario():
        task = asyncio.create_task(handlers.rescan_failing_pods(ctx, lambda: True, every=0.01))
        await asyncio.sleep(0.1)
        assert not task.done(), task
        task.cancel()

    asyncio.run(scenario())
    assert calls.count("ingest") >= 2 and calls.count("sweep") >= 2, calls
