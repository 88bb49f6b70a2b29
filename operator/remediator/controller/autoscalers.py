"""The sweep that ends autoscaler leases: restore what `scale` raised once the lease expires or its Remediation
ends, keep what a human changed meanwhile, and say which (an Event on the Remediation and on the autoscaler).

Crash-safe by construction: the lease lives on the autoscaler itself (annotations + a label the sweep selects
by), and the restore and the lease's removal are one patch guarded by resourceVersion, so an operator killed at
any point restores each lease exactly once, at its next sweep; the first sweep runs as the operator starts,
so a lease that expired while no operator ran is restored then. One label-selected LIST per kind per sweep:
nothing on the tick path.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime

from kubernetes.client.rest import ApiException

from ..actions import autoscalers
from ..actions.base import ActionError
from ..core.plan import autoscalers as leases
from ..records import events
from . import chores
from .context import OperatorContext

log = logging.getLogger("remediator.autoscalers")
SWEEP_SECONDS = 10.0
NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")  # what a Remediation's name can be
AUTOSCALER_API_VERSIONS = {"HorizontalPodAutoscaler": "autoscaling/v2", "ScaledObject": "keda.sh/v1alpha1"}


def sweep(ctx: OperatorContext, now: datetime | None = None) -> list[tuple[str, str]]:
    """End the leases that are due; (op, reason) of each one acted on."""
    now = now or datetime.now(UTC)
    done = []
    served = ctx.settings.namespaces
    exact = [ns for ns in served if not any(c in ns for c in "*?[")]
    scopes: list[str | None] = exact if served and len(exact) == len(served) else [None]  # as the chart's Roles
    for kind in ("HorizontalPodAutoscaler", "ScaledObject"):
        for obj in (o for scope in scopes for o in autoscalers.listed(ctx.api, kind, scope,
                                                                       label_selector=leases.LEASE_LABEL)):
            obj["kind"] = kind  # items of a built-in kind's list carry no kind
            if not ctx.serves(obj["metadata"]["namespace"]):
                continue
            try:
                outcome = end_lease(ctx, obj, now)
            except (ActionError, ApiException) as e:  # e.g. 409: written meanwhile; the next sweep decides again
                log.warning("autoscaler lease not ended", extra={"object": f"{kind}/{obj['metadata']['name']}",
                                                                 "error": str(e)})
                continue
            if outcome:
                done.append(outcome)
    return done


def end_lease(ctx: OperatorContext, obj: dict, now: datetime) -> tuple[str, str] | None:
    scaler = autoscalers.view(obj)
    holder = scaler.annotations.get(leases.LEASE_REMEDIATION, "")
    namespace, _, name = holder.partition("/")
    believed = NAME.match(name) and namespace == obj["metadata"]["namespace"]  # never another namespace's
    remediation = ctx.resources.get("Remediation", name, namespace) if believed else None
    decision = leases.plan_restore(
        scaler, ((remediation or {}).get("status") or {}).get("phase", "Pending") if remediation else None,
        (remediation or {}).get("metadata", {}).get("uid"), now)
    if decision.op == "wait":
        return None
    body = autoscalers.lease_patch(obj, decision.values if decision.op == "restore" else None,
                                   dict.fromkeys(leases.LEASE_ANNOTATIONS))
    autoscalers.patch(ctx.api, obj, body)
    log.info("autoscaler lease ended", extra={"object": f"{scaler.kind}/{scaler.name}", "op": decision.op,
                                              "reason": decision.reason})
    tell(ctx, obj, remediation, decision, now)
    return decision.op, decision.reason


def tell(ctx: OperatorContext, obj: dict, remediation: dict | None, decision: leases.RestorePlan,
         now: datetime) -> None:
    reason = {"restore": "AutoscalerRestored", "keep": "AutoscalerEditKept"}.get(decision.op, "AutoscalerLeaseDropped")
    event_type = "Normal" if decision.op == "restore" else "Warning"
    meta = obj["metadata"]
    key = f"{meta['name']}:{meta['resourceVersion']}"
    regarding = [{"api_version": AUTOSCALER_API_VERSIONS[obj["kind"]], "kind": obj["kind"], "name": meta["name"],
                  "namespace": meta["namespace"], "uid": meta.get("uid")}]
    if remediation:
        rmeta = remediation["metadata"]
        regarding.append({"api_version": remediation.get("apiVersion"), "kind": "Remediation", "name": rmeta["name"],
                          "namespace": rmeta["namespace"], "uid": rmeta.get("uid")})
    for about in regarding:
        events.post(ctx.api, meta["namespace"], about, reason, decision.reason, event_type, key, now)


async def sweep_periodically(ctx: OperatorContext, active: Callable[[], bool],
                             every: float = SWEEP_SECONDS) -> None:
    """On the active replica: at start (a lease that expired while no operator ran), then every `every` s."""
    await chores.every(every, active, lambda: sweep(ctx), "autoscaler sweep", first_after=0)
