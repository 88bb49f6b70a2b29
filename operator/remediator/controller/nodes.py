"""The node-condition edge: from the watch-fed Node cache (controller/caches.py, no LIST per look), send the
signals of Nodes whose conditions held long enough (signals/nodes.py), and uncordon the Nodes a drain
cordoned once they recovered (actions/drain.py). On the active replica only, every few seconds: a condition
that keeps holding sends no new event, yet its duration runs out."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from ..actions import drain
from ..api.models import NodeConditionTrigger
from ..signals import nodes as node_signals
from . import caches
from .context import OperatorContext
from .webhooks import SIGNALS

log = logging.getLogger("remediator.nodes")


def triggers_by_namespace(ctx: OperatorContext) -> dict[str, list[NodeConditionTrigger]]:
    """The nodeCondition triggers of the served, not suspended Runbooks, by namespace."""
    out: dict[str, list[NodeConditionTrigger]] = {}
    for entry in ctx.runbooks.entries():
        if entry.spec.suspend or not ctx.serves(entry.namespace):
            continue
        found = [t.node_condition for t in entry.spec.triggers if t.node_condition is not None]
        if found:
            out.setdefault(entry.namespace, []).extend(found)
    return out


def look_once(ctx: OperatorContext, now: datetime | None = None) -> None:
    now = now or datetime.now(UTC)
    triggers = triggers_by_namespace(ctx)
    # (type, status) any trigger looks for: a node in none of them (most, most of the time) costs one set lookup
    wanted = {(t.type, status) for found in triggers.values() for t in found for status in t.statuses}
    for node, version in caches.ensure(ctx).nodes.with_versions():
        try:
            if any((kind, status) in wanted for kind, (status, _) in node.conditions.items()):
                for signal in node_signals.node_signals(node, triggers, now):
                    SIGNALS.labels(node_signals.SOURCE, ctx.intake.firing(signal).outcome).inc()
        except Exception as e:  # noqa: BLE001  a signal that cannot be sent must not keep the node cordoned
            log.warning("node signals failed", extra={"node": node.name, "error": str(e)})
        try:
            done = drain.uncordon_recovered(ctx.api, {
                "metadata": {"name": node.name, "resourceVersion": version, "annotations": dict(node.annotations)},
                "spec": {"unschedulable": node.unschedulable},
                "status": {"conditions": [{"type": kind, "status": status, "lastTransitionTime": since}
                                          for kind, (status, since) in node.conditions.items()]}})
            if done:
                log.info(done, extra={"node": node.name})
        except Exception as e:  # noqa: BLE001  one node or a passing apiserver error must not stop the others
            log.warning("node look failed", extra={"node": node.name, "error": str(e)})


async def watch_node_conditions(ctx: OperatorContext, active: Callable[[], bool] = lambda: True,
                                every: float = 2.0) -> None:
    while True:
        await asyncio.sleep(every)
        if active():
            await asyncio.to_thread(look_once, ctx)
