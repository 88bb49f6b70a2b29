"""Delete ended Remediations past their retention (core.retention decides which), on the active replica only.

Not a kopf timer: those put kopf's finalizer on every object they watch. The sweep lists in pages
(limit/continue), so 10,000 old Remediations never sit in memory at once, and deletes each with a
precondition on its uid and resourceVersion: one that changed since it was listed (re-opened, re-folded,
re-created under the same name) is not deleted; the next sweep judges it again.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime

from kubernetes import client
from kubernetes.client.rest import ApiException

from ..api.models import GROUP, VERSION, Guard, RemediationPolicySpec
from ..core import policy_select, retention
from ..records import metrics
from .context import OperatorContext
from .guard_facts import labels_of_namespace

log = logging.getLogger("remediator.retention")
PAGE = 500
STANDBY_POLL_SECONDS = 5.0


def pages(ctx: OperatorContext, namespace: str | None) -> Iterator[list[dict]]:
    """Remediations in pages of PAGE; an expired continue token (410) ends this sweep early."""
    custom = ctx.resources.custom
    token = None
    while True:
        kwargs = {"limit": PAGE, **({"_continue": token} if token else {})}
        try:
            out = custom.list_cluster_custom_object(GROUP, VERSION, "remediations", **kwargs) if namespace is None \
                else custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "remediations", **kwargs)
        except ApiException as e:
            if e.status == 410:
                return
            raise
        yield out.get("items", [])
        token = (out.get("metadata") or {}).get("continue")
        if not token:
            return


def keep_lookup(ctx: OperatorContext) -> Callable[[Mapping], retention.Keep]:
    """How long each Remediation stays: its namespace's effective policy and its Runbook's cooldown, each read
    once a sweep."""
    policies = [(p["metadata"]["name"], p.get("spec") or {}) for p in ctx.resources.list("RemediationPolicy")]
    namespace_policy: dict[str, RemediationPolicySpec | None] = {}
    cooldowns: dict[str, dict[str, str]] = {}

    def keep_of(obj: Mapping) -> retention.Keep:
        namespace = obj["metadata"]["namespace"]
        if namespace not in namespace_policy:
            namespace_policy[namespace] = policy_select.effective_policy(
                policies, namespace, labels_of_namespace(ctx, namespace))
        if namespace not in cooldowns:
            cooldowns[namespace] = {r["metadata"]["name"]: ((r.get("spec") or {}).get("guard") or {}).get(
                "cooldown", Guard().cooldown) for r in ctx.resources.list("Runbook", namespace)}
        runbook = (obj.get("spec") or {}).get("runbook") or {}
        # a Runbook acts only in its own namespace: a reference elsewhere was refused and holds no cooldown
        cooldown = cooldowns[namespace].get(runbook.get("name")) if runbook.get("namespace") == namespace else None
        return retention.kept_for(namespace_policy[namespace], cooldown)
    return keep_of


def delete(ctx: OperatorContext, verdict: retention.Verdict) -> str:
    """deleted | changed (uid or resourceVersion moved on: kept) | gone."""
    options = client.V1DeleteOptions(preconditions=client.V1Preconditions(
        uid=verdict.uid, resource_version=verdict.resource_version))
    try:
        ctx.resources.custom.delete_namespaced_custom_object(
            GROUP, VERSION, verdict.namespace, "remediations", verdict.name, body=options)
    except ApiException as e:
        if e.status == 404:
            return "gone"
        if e.status == 409:
            return "changed"
        raise
    log.info("deleted an ended remediation", extra={"remediation": f"{verdict.namespace}/{verdict.name}",
                                                    "reason": verdict.reason})
    return "deleted"


def sweep(ctx: OperatorContext, namespaces: list[str] | None, active: Callable[[], bool] = lambda: True,
          now: datetime | None = None) -> Counter:
    """One pass over the served namespaces (None: cluster-wide); stops as soon as this replica is not active."""
    now = now or datetime.now(UTC)
    keep_of = keep_lookup(ctx)
    results: Counter = Counter()
    for namespace in namespaces if namespaces is not None else [None]:
        for page in pages(ctx, namespace):
            served = [o for o in page if ctx.serves(o["metadata"]["namespace"])]
            for verdict in retention.select(served, keep_of, now):
                if not active():
                    return results
                result = delete(ctx, verdict)
                metrics.RETENTION_DELETES.labels(result).inc()
                results[result] += 1
    return results


async def sweep_periodically(ctx: OperatorContext, active: Callable[[], bool],
                             namespaces: Callable[[], list[str]]) -> None:
    every = ctx.settings.retention_sweep_seconds
    while True:
        if not active():  # a replica just made active sweeps soon, not a whole period later
            await asyncio.sleep(min(every, STANDBY_POLL_SECONDS))
            continue
        try:
            served = await asyncio.to_thread(namespaces) if ctx.settings.namespaces else None
            results = await asyncio.to_thread(sweep, ctx, served, active)
            if results:
                log.info("retention sweep", extra=dict(results))
        except Exception as e:  # noqa: BLE001  a passing apiserver error must not end the sweeps
            log.warning("retention sweep failed", extra={"error": str(e)})
        await asyncio.sleep(every)
