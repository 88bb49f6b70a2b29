"""Node conditions that are signals: a condition held in an unhealthy status for a Runbook's `for`.

Pure: a Node (as `core.plan.nodes.NodeFact`) and the nodeCondition triggers of each namespace in, signals out.
A Node is cluster-scoped, a Runbook is not: the signal is sent once to every served namespace holding a
Runbook whose trigger it satisfies, with that namespace as its `namespace` label, so the Remediation lives
beside its Runbook, and the bounds guard decides whether that namespace may act on Nodes at all.
Only signals a trigger fully takes are sent (condition, status, duration, selector), so a Node that does not
concern a namespace costs it nothing (no re-list of its Runbooks for an unmatched signal).

One incident per namespace, Node, condition and transition: the fingerprint and `startsAt` come from the
condition's lastTransitionTime, so a Node still NotReady after its incident ended is "already handled", and a
Node that turns NotReady again later is a new incident.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime

from ..api.models import NodeConditionTrigger, Signal
from ..core.durations import parse_duration, parse_time
from ..core.match.matching import selector_holds
from ..core.plan.nodes import NodeFact

SOURCE = "nodeCondition"


def held_seconds(since: str | None, now: datetime) -> int | None:
    try:
        return max(0, int((now - parse_time(since)).total_seconds())) if since else None
    except ValueError:
        return None


def takes(trigger: NodeConditionTrigger, node: NodeFact, now: datetime) -> bool:
    status, since = node.conditions.get(trigger.type, (None, None))
    held = held_seconds(since, now)
    return (status in trigger.statuses and held is not None
            and held >= parse_duration(trigger.for_).total_seconds()
            and selector_holds(trigger.selector, node.labels)[0])


def node_signals(node: NodeFact, triggers: Mapping[str, Sequence[NodeConditionTrigger]],
                 now: datetime) -> list[Signal]:
    """Signals for `node`, one per namespace and condition some trigger of that namespace takes."""
    out = []
    for namespace, namespace_triggers in sorted(triggers.items()):
        for kind in sorted({t.type for t in namespace_triggers if takes(t, node, now)}):
            status, since = node.conditions[kind]
            incident = f"{namespace}\n{node.name}\n{kind}\n{status}\n{since}"
            out.append(Signal(
                source=SOURCE, name=kind,
                fingerprint=hashlib.sha256(incident.encode()).hexdigest()[:16],
                starts_at=since,
                # the node's labels first: ours are what matching and templates read, a node label never hides them
                labels={**node.labels, "namespace": namespace, "node": node.name, "condition": kind,
                        "status": status, "heldSeconds": str(held_seconds(since, now))},
                summary=f"node {node.name}: {kind}={status} since {since}",
                annotations={"since": since or ""},
            ))
    return out
