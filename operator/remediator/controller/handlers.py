"""kopf handlers: a few lines each — load, call the core, persist, act.

Registered on a kopf registry by `register`, so the operator process and
tests (KopfRunner) build the same set.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timezone

import kopf
from kubernetes import client
from kubernetes.client.rest import ApiException
from pydantic import ValidationError

from ..core.durations import iso_time
from ..api.models import GROUP, TERMINAL_PHASES, VERSION, Approval, RemediationApprovalSpec
from ..signals import pods
from . import approvals, reconcile, runbook_status, slo
from .webhooks import SIGNALS
from .context import OperatorContext

log = logging.getLogger("remediator.handlers")


def not_terminal(status, **_) -> bool:
    return (status or {}).get("phase") not in TERMINAL_PHASES


def maybe_failing(status, **_) -> bool:
    """Cheap pre-filter so healthy pods never reach the classifier."""
    return any(c.get("type") == "Ready" and c.get("status") == "False" for c in (status or {}).get("conditions") or [])


async def ingest_pod(ctx: OperatorContext, pod: dict) -> None:
    for signal in pods.pod_signals(pod, datetime.now(timezone.utc)):
        result = await asyncio.to_thread(ctx.intake.firing, signal)
        SIGNALS.labels("podState", result.outcome).inc()


async def rescan_failing_pods(ctx: OperatorContext, active: Callable[[], bool] = lambda: True,
                              every: float = 10.0) -> None:
    """Pods that stay failing send no new events; re-judge them so grace periods can expire. Only on the
    active replica: a standby's watch is paused, so what it remembers may be stale; taking over, it first
    re-reads each remembered pod (one deleted meanwhile sent no event it could see)."""
    was_active = False
    while True:
        await asyncio.sleep(every)
        if not active():
            was_active = False
            continue
        if not was_active:
            await asyncio.to_thread(refresh_failing_pods, ctx)
            was_active = True
        for pod in list(ctx.failing_pods.values()):
            try:
                await ingest_pod(ctx, pod)
            except Exception as e:  # one bad pod or a passing apiserver error must not stop the rescan
                log.warning("pod rescan failed", extra={"pod": pod.get("metadata", {}).get("name"), "error": str(e)})


def refresh_failing_pods(ctx: OperatorContext) -> None:
    core = client.CoreV1Api(ctx.api)
    for key in list(ctx.failing_pods):
        try:
            pod = ctx.api.sanitize_for_serialization(core.read_namespaced_pod(key[1], key[0]))
        except ApiException as e:
            if e.status == 404:
                ctx.failing_pods.pop(key, None)
            continue
        if maybe_failing(pod.get("status")):
            ctx.failing_pods[key] = pod
        else:
            ctx.failing_pods.pop(key, None)


class QuietJournal(logging.Filter):
    """kopf logs every handled event; the journal sees node heartbeats and every rollout, so only its failures."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO or "Handler 'journal'" not in record.getMessage()


def register(registry: kopf.OperatorRegistry, ctx: OperatorContext) -> None:
    logging.getLogger("kopf.objects").addFilter(QuietJournal())

    @kopf.on.login(registry=registry)
    def login(**kwargs):
        """In-cluster ServiceAccount, else KUBECONFIG: the same identity as the operator's own client."""
        return kopf.login_via_client(**kwargs)

    @kopf.on.event("", "v1", "pods", registry=registry)
    async def pod_state(type, body, namespace, name, status, **_):
        key = (namespace, name)
        if type == "DELETED" or not ctx.serves(namespace) or not maybe_failing(status):
            ctx.failing_pods.pop(key, None)
            return
        ctx.failing_pods[key] = dict(body)
        await ingest_pod(ctx, ctx.failing_pods[key])

    # The change journal (signals/changes.py). Secrets are deliberately not watched: see that module.
    def journal(observe):
        def seen(type, body, namespace=None, **_):
            if namespace and not ctx.serves(namespace):
                return
            if type == "DELETED":
                ctx.changes.forget(namespace, f"{body.get('kind')}/{body['metadata']['name']}")
            else:
                observe(dict(body), datetime.now(timezone.utc))
        return seen

    kopf.on.event("apps", "v1", "replicasets", id="journal", registry=registry)(journal(ctx.changes.observe_replicaset))
    kopf.on.event("apps", "v1", "deployments", id="journal", registry=registry)(journal(ctx.changes.observe_deployment))
    if ctx.settings.configmap_journal:  # the chart turns it off where it grants no ConfigMap reads
        kopf.on.event("", "v1", "configmaps", id="journal", registry=registry)(journal(ctx.changes.observe_configmap))
    kopf.on.event("autoscaling", "v2", "horizontalpodautoscalers", id="journal", registry=registry)(
        journal(ctx.changes.observe_hpa))
    kopf.on.event("", "v1", "nodes", id="journal", registry=registry)(journal(ctx.changes.observe_node))

    @kopf.on.create(GROUP, VERSION, "remediationapprovals", registry=registry)
    def approval_cast(spec, meta, namespace, patch, **_):
        try:
            vote = RemediationApprovalSpec.model_validate(dict(spec))
        except ValidationError as e:  # e.g. created before spec.requestId was required: say so, once
            outcome, message = "refused-invalid", f"not a vote: {e.errors()[0]['loc']}: {e.errors()[0]['msg']}"
        else:
            policy = reconcile.load_policy(ctx, namespace)
            outcome, message = approvals.record_kubernetes_vote(ctx, namespace, vote,
                                                                policy.approval if policy else Approval(),
                                                                meta.get("creationTimestamp"))
        patch.status["outcome"] = outcome
        patch.status["message"] = message
        patch.status["recordedAt"] = iso_time(datetime.now(timezone.utc))

    @kopf.on.event(GROUP, VERSION, "remediations", registry=registry)
    def remediation_seen(type, body, namespace, name, status, **_):
        ctx.intake.incidents.observe(type or "", body)
        if type != "DELETED" and ctx.serves(namespace) and runbook_status.pending(status):
            try:  # also on the first listing after a restart: what a crash left undone is done then
                runbook_status.finish(ctx, namespace, name)
            except Exception as e:  # noqa: BLE001  not retried: the object's next event, or a restart, tries again
                log.warning("could not record the outcome in the Runbook", extra={
                    "remediation": f"{namespace}/{name}", "error": str(e)})

    @kopf.daemon(GROUP, VERSION, "remediations", registry=registry, when=not_terminal,
                 cancellation_timeout=5.0, initial_delay=0)
    async def remediation_loop(name, namespace, stopped, **_):
        """One loop per open incident; it ends when the Remediation reaches a terminal phase."""
        loop = reconcile.Loop(ctx, namespace, name)
        burst = 0
        while not stopped:
            after = await asyncio.to_thread(loop.tick)
            if after is None:
                return
            if after == 0 and burst < 5:  # e.g. Pending -> Acting: act now, not a tick later
                burst += 1
                continue
            burst = 0
            # the decision says when the next tick is due; no event wakes this daemon, so poll at least as often
            await stopped.wait(min(after, ctx.settings.tick_seconds) if after > 0 else ctx.settings.tick_seconds)

    @kopf.daemon(GROUP, VERSION, "servicelevelobjectives", registry=registry, cancellation_timeout=5.0,
                 initial_delay=0)
    async def slo_evaluator(name, namespace, stopped, **_):
        """Evaluate the SLO every spec.evaluationInterval (read afresh, so an edit takes effect next time)."""
        while not stopped:
            try:
                interval = await asyncio.to_thread(slo.evaluate_once, ctx, namespace, name)
            except Exception as e:  # a passing apiserver or Prometheus error must not end the evaluation
                log.warning("slo evaluation failed", extra={"slo": f"{namespace}/{name}", "error": str(e)})
                interval = 10.0
            if interval is None:
                return
            await stopped.wait(interval)
