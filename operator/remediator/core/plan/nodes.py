"""Node health as NodeHealthCheck sees it, in plain data: which Nodes are healthy, whether a drain would leave
fewer healthy Nodes than `minHealthy`, and whether a Node we cordoned has recovered. Pure.

- A Node is unhealthy when one of the Runbook's nodeCondition triggers holds on it (its condition has one of
  the trigger's statuses), whatever its duration: a Node that just turned NotReady does not serve either, so
  the count errs on the side of draining less. A Runbook without nodeCondition triggers (a drain set off by
  an alert) judges by Ready=True. A cordoned Node (spec.unschedulable) is not counted healthy.
- The Nodes counted are those a trigger's selector selects (every Node when no trigger has a selector).
- `minHealthy` is a number or a percent of the counted Nodes, rounded up (as NodeHealthCheck rounds it).
- Recovery: the cordon records the Node's bad conditions (`Ready=False`, a pressure `=True`); the Node has
  recovered when none of them holds any more, and only then is it uncordoned. A Node cordoned while healthy
  (an alert, not a condition, set the drain off) records none and is left for a human.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from remediator.api.models import LabelSelector, NodeConditionTrigger
from remediator.core.match.matching import selector_holds

# What cordonDrain records on the Node: "<key> Ready=False,DiskPressure=True".
CORDONED_FOR_ANNOTATION = "remediator.dev/cordoned-for"
# The drain's step evidence the Node's verdict reads (verification.verdicts.drained_from).
EVICTED = "evicted"  # detail "ns/Kind/name" (the controller), value the names of its evicted pods
UNREPLACEABLE = "unreplaceable"  # detail "ns/pod": a pod with no controller, left on the node
READY = NodeConditionTrigger(type="Ready", statuses=["False", "Unknown"], **{"for": "0s"})


@dataclass(frozen=True)
class NodeFact:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    unschedulable: bool = False
    conditions: Mapping[str, tuple[str, str | None]] = field(default_factory=dict)  # type -> (status, since)
    annotations: Mapping[str, str] = field(default_factory=dict)  # only ours (remediator.dev/...)


def node_fact(node: Mapping) -> NodeFact:
    """A Node as the apiserver returns it (the wire dict), reduced to what health and recovery read."""
    meta, spec, status = node.get("metadata") or {}, node.get("spec") or {}, node.get("status") or {}
    return NodeFact(
        name=meta.get("name", ""), labels=dict(meta.get("labels") or {}),
        unschedulable=bool(spec.get("unschedulable")),
        conditions={c.get("type", ""): (c.get("status", "Unknown"), c.get("lastTransitionTime"))
                    for c in status.get("conditions") or []},
        annotations={k: v for k, v in (meta.get("annotations") or {}).items() if k.startswith("remediator.dev/")})


def condition_holds(node: NodeFact, trigger: NodeConditionTrigger) -> bool:
    # A Ready condition that is missing altogether is Unknown, as the node lifecycle controller treats it.
    status = node.conditions.get(trigger.type, ("Unknown" if trigger.type == "Ready" else "", None))[0]
    return status in trigger.statuses


def unhealthy_because(node: NodeFact, triggers: Sequence[NodeConditionTrigger]) -> str | None:
    if node.unschedulable:
        return "cordoned"
    for trigger in triggers or (READY,):
        if condition_holds(node, trigger):
            return f"{trigger.type}={node.conditions.get(trigger.type, ('Unknown', None))[0]}"
    return None


def counted(node: NodeFact, triggers: Sequence[NodeConditionTrigger]) -> bool:
    selectors = [t.selector for t in triggers if t.selector != LabelSelector()]
    return not selectors or any(selector_holds(s, node.labels)[0] for s in selectors)


def required_healthy(min_healthy: str, total: int) -> int:
    if min_healthy.endswith("%"):
        return math.ceil(total * int(min_healthy[:-1]) / 100)
    return int(min_healthy)


@dataclass(frozen=True)
class MinHealthy:
    allowed: bool
    reason: str


def min_healthy_decision(nodes: Iterable[NodeFact], target: str, triggers: Sequence[NodeConditionTrigger],
                         min_healthy: str) -> MinHealthy:
    """May `target` be drained: would at least `min_healthy` of the counted Nodes stay healthy without it?"""
    population = [n for n in nodes if counted(n, triggers)]
    unhealthy = {n.name: why for n in population if (why := unhealthy_because(n, triggers))}
    healthy_after = sum(1 for n in population if n.name not in unhealthy and n.name != target)
    required = required_healthy(min_healthy, len(population))
    shown = ", ".join(f"{name} ({why})" for name, why in sorted(unhealthy.items())[:5])
    more = f" and {len(unhealthy) - 5} more" if len(unhealthy) > 5 else ""
    judged = "by " + ", ".join(f"{t.type} not {'/'.join(t.statuses)}" for t in triggers) if triggers \
        else "by Ready=True"
    counts = (f"{healthy_after} of {len(population)} Node(s) healthy without {target} ({judged}), "
              f"minHealthy {min_healthy} needs {required}")
    if healthy_after < required:
        return MinHealthy(False, f"minHealthy: {counts}; unhealthy: {shown or 'none'}{more}: too many Nodes are "
                                 "unhealthy to drain another (a wide outage, not a bad Node)")
    return MinHealthy(True, f"minHealthy: {counts}")


# ---------------------------------------------------------------- recovery


def is_bad(kind: str, status: str) -> bool:
    """Ready not True, or any other condition (a pressure, a node agent's problem) True."""
    return (kind == "Ready") != (status == "True")


def bad_conditions(node: NodeFact) -> list[str]:
    """The Node's conditions that say it is unwell now."""
    return sorted(f"{kind}={status}" for kind, (status, _) in node.conditions.items() if is_bad(kind, status))


def cordoned_for(key: str, node: NodeFact) -> str | None:
    """The annotation value the cordon records, or None when the Node was healthy (no recovery to wait for)."""
    bad = bad_conditions(node)
    return f"{key} {','.join(bad)}" if bad else None


def recovered(node: NodeFact) -> tuple[bool, str]:
    """(uncordon now, why): only a Node we cordoned for its conditions, still cordoned, with none of them left."""
    recorded = node.annotations.get(CORDONED_FOR_ANNOTATION)
    if not recorded or not node.unschedulable:
        return False, "not cordoned by a drain for its conditions"
    key, _, pairs = recorded.partition(" ")
    kinds = [pair.partition("=")[0] for pair in pairs.split(",") if pair]
    # a recorded condition that is gone is not known to be well: Ready missing is Unknown
    still = [f"{kind}={node.conditions[kind][0]}" if kind in node.conditions else f"{kind} missing"
             for kind in kinds if kind not in node.conditions or is_bad(kind, node.conditions[kind][0])]
    if still or not kinds:
        return False, f"still {', '.join(still)}" if still else "no condition recorded"
    return True, f"node {node.name} recovered ({pairs} no longer hold; drained under key {key})"
