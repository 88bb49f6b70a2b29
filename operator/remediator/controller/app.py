"""The operator process: kopf and the webhook/metrics HTTP server in one asyncio loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import random
import threading

import kopf
from aiohttp import web

from ..api.models import GROUP, KOPF_FINALIZER
from ..approvals import slack
from ..core.match.rate_limit import Limit
from ..kube import load_api_client
from ..secrets import FileSecret
from ..signals import changes
from . import anomalies, autoscalers, caches, chores, escalation, gitops, handlers, heap, nodes, retention
from . import journal, runbook_status
from . import peering as peering_state
from .context import OperatorContext, Settings
from .tenant_tokens import TenantTokens
from .webhooks import WebhookConfig, build_app, build_metrics_app

log = logging.getLogger("remediator")
TICK_WORKERS = 8  # Remediation ticks and SLO evaluations at once; each waits mostly on the apiserver


def build_context(settings: Settings, kubeconfig: str | None = None) -> OperatorContext:
    return OperatorContext(api=load_api_client(kubeconfig), settings=settings)


def prime_changes(ctx: OperatorContext) -> None:
    """Rebuild the change journal from the apiserver (ReplicaSet history, last updates) before any loop runs;
    if it cannot, causes stay unknown and cause-conditioned steps are skipped, which is the safe side."""
    namespaces = [ns for ns in ctx.settings.namespaces if not any(c in ns for c in "*?[")]
    if len(namespaces) != len(ctx.settings.namespaces):
        namespaces = []
    try:
        read = changes.prime(ctx.changes, ctx.api, namespaces, ctx.serves, ctx.settings.configmap_journal)
    except Exception as e:  # noqa: BLE001  an unreadable kind must not stop the operator
        log.warning("change journal not rebuilt; probable causes stay unknown", extra={"error": str(e)})
        return
    log.info("change journal rebuilt", extra={"replicasets": read})


async def serve_http(ctx: OperatorContext, host: str = "0.0.0.0") -> web.AppRunner:
    cfg = WebhookConfig(intake=ctx.intake, alertmanager_token=FileSecret(ctx.settings.alertmanager_token_file),
                        tenant_tokens=TenantTokens(ctx.api, ctx.settings.tenant_token_secret),
                        namespace_exists=lambda namespace: ctx.caches.namespaces.get(namespace) is not None,
                        ctx=ctx, slack=ctx.slack,
                        caller_limit=Limit(ctx.settings.webhook_rate, ctx.settings.webhook_burst))
    # Before a webhook is taken or kopf starts a loop: a replica must not match or plan from empty caches.
    primed = await asyncio.to_thread(caches.start, ctx)
    frozen = heap.freeze_startup()  # before the webhooks listen: its one full pass holds up no signal
    log.info("caches primed", extra={"objects": primed, "frozen_objects": frozen})
    separate = bool(ctx.settings.metrics_port)
    app = build_app(cfg, with_metrics=not separate)
    metrics_runner = web.AppRunner(build_metrics_app(), access_log=None)
    if separate:
        async def stop_metrics(_):
            await metrics_runner.cleanup()
        app.on_cleanup.append(stop_metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, ctx.settings.webhook_port).start()
    log.info("webhooks listening", extra={"port": ctx.settings.webhook_port})
    if separate:
        await metrics_runner.setup()
        await web.TCPSite(metrics_runner, host, ctx.settings.metrics_port).start()
        log.info("metrics listening", extra={"port": ctx.settings.metrics_port})
    return runner


async def run_operator(ctx: OperatorContext, stop_flag: asyncio.Event | None = None,
                       ready_flag: threading.Event | None = None, peering: bool = True) -> None:
    # Ticks, kopf's sync handlers and the webhooks' ingestion run in threads doing blocking apiserver calls;
    # the default pool (cores + 4) would make them queue behind each other.
    asyncio.get_running_loop().set_default_executor(
        concurrent.futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="loop"))
    registry = kopf.OperatorRegistry()
    ticks = handlers.Ticks(ctx)
    handlers.register(registry, ctx, ticks)
    pauses = gitops.follow(ctx)  # the GitOps owners our Remediations hold paused, from their watch
    ctx.caches.remediation_listeners.append(  # DORA's failed changes: the rollouts probable causes name
        lambda kind, body: kind != "DELETED" and ctx.serves((body.get("metadata") or {}).get("namespace", ""))
        and ctx.rollout_counts.heard(body))
    await asyncio.to_thread(prime_changes, ctx)  # before healthz answers: kopf starts right after the webhooks
    journal.start(ctx)  # then followed by its own watches
    if ctx.slack is not None:  # a missing scope is said now, not at the first incident
        await asyncio.to_thread(slack.refuse_without_scopes, ctx.slack)
    runner = await serve_http(ctx)
    # The loops kopf does not run for us follow its peering: they work on the active replica only.
    identity = peering_state.own_identity()
    activity = peering_state.Activity(ctx, identity, enabled=peering)
    background = [
        asyncio.create_task(activity.follow()),
        asyncio.create_task(handlers.rescan_failing_pods(ctx, lambda: activity.active)),
        asyncio.create_task(nodes.watch_node_conditions(ctx, lambda: activity.active)),
        asyncio.create_task(ticks.run(lambda: activity.active, workers=TICK_WORKERS)),
        asyncio.create_task(anomalies.watch_anomalies(ctx, lambda: activity.active)),
        asyncio.create_task(heap.trim_periodically()),
        asyncio.create_task(retention.sweep_periodically(ctx, lambda: activity.active,
                                                         activity.served_namespaces)),
    ]
    if ctx.alertmanager is None:
        log.info("no Alertmanager URL (--alertmanager-url): escalations go to Slack and Warning Events only")
    else:
        log.info("escalations are also sent to Alertmanager", extra={"url": ctx.alertmanager.url})
    background += [
        asyncio.create_task(escalation.resend_periodically(ctx, lambda: activity.active,
                                                           functools.partial(runbook_status.finish,
                                                                             resend=True))),
        asyncio.create_task(autoscalers.sweep_periodically(ctx, lambda: activity.active,
                                                           ctx.settings.autoscaler_sweep_seconds)),
        asyncio.create_task(gitops.sweep_periodically(ctx, pauses, lambda: activity.active,
                                                      ctx.settings.gitops_sweep_seconds)),
        # a standby keeps the last periods of what it saw; merging it once active adds nothing twice
        asyncio.create_task(chores.every(
            ctx.settings.counts_flush_seconds, lambda: True,
            functools.partial(ctx.rollout_counts.flush_or_forget, lambda: activity.active,
                              2 * ctx.settings.counts_flush_seconds), "rollout counts write")),
    ]

    # kopf waits 5 s on stopping for tasks started after it (the tick workers, and the web server's task per
    # kept-alive connection: Prometheus, Alertmanager) before cancelling them; its cleanup activity runs before
    # that wait, so stopping ours and the web server there ends a SIGTERM at once.
    @kopf.on.cleanup(registry=registry)
    async def stop_background(**_) -> None:
        await stop_tasks(background)
        with contextlib.suppress(Exception):
            await runner.cleanup()

    try:
        await kopf.operator(
            registry=registry,
            settings=operator_settings(),
            clusterwide=not ctx.settings.namespaces,
            namespaces=list(ctx.settings.namespaces),
            standalone=not peering,
            identity=identity,
            peering_name=ctx.settings.peering_name if peering else None,
            priority=ctx.settings.peering_priority,
            stop_flag=stop_flag,
            ready_flag=ready_flag,
            liveness_endpoint=None,
        )
    finally:
        await stop_tasks(background)
        caches.stop(ctx)
        with contextlib.suppress(Exception):
            await runner.cleanup()


async def stop_tasks(tasks: list[asyncio.Task]) -> None:
    """Cancel the tasks and wait until they have ended (a task cancels its own sub-tasks in its `finally`)."""
    for task in tasks:
        task.cancel()
    for task, outcome in zip(tasks, await asyncio.gather(*tasks, return_exceptions=True)):
        if isinstance(outcome, Exception):  # a loop that had died: said, not lost with the cancelled ones
            log.error("background loop had failed", extra={"task": task.get_coro().__qualname__,
                                                           "error": repr(outcome)})


class OwnKindsDiffBase(kopf.AnnotationsDiffBaseStorage):
    """kopf builds each watched object's "essence" (a deep copy of it) and parses its last-handled annotation on
    every event, though only change handlers read them: here only RemediationApprovals' on.create. The kinds
    watched for signals and the change journal (pods, ReplicaSets, Deployments...: event handlers only) skip
    both; in a burst of rollouts that work was a tenth of the operator's CPU."""

    def fetch(self, *, body):
        return super().fetch(body=body) if essential(body) else None

    def build(self, *, body, extra_fields=None):
        return super().build(body=body, extra_fields=extra_fields) if essential(body) else {}


def essential(body) -> bool:
    """One of our kinds, or a body that does not say what it is (then kopf's own treatment, to be safe)."""
    api_version = body.get("apiVersion")
    return not api_version or str(api_version).startswith(f"{GROUP}/")


def operator_settings() -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    prefix = GROUP
    settings.persistence.finalizer = KOPF_FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=prefix)
    settings.persistence.diffbase_storage = OwnKindsDiffBase(prefix=prefix)
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.peering.stealth = True
    # kopf keeps a worker task and queue per object until it has idled this long; with ten thousand pods
    # a rollout's burst of events would otherwise hold ten thousand of them for 5 s (the default).
    settings.queueing.idle_timeout = 1.0
    return settings


def default_priority() -> int:
    """Replicas of one Deployment need distinct peering priorities, or all of them freeze."""
    return random.randint(1, 1_000_000)
