"""How big a change is: new replica counts and memory limits, and how many pods a rollout takes down at once.

Pure. The actions (actions/scale.py, actions/memory.py) decide with these very
functions, and the guards are fed from them, so what is checked before acting
is what the action then does.

Pods a rolling change takes down at once follow the workload's own strategy,
as the Kubernetes controllers read it:

- Recreate: every replica.
- RollingUpdate: maxUnavailable + maxSurge (int, or percent of replicas:
  maxUnavailable rounded down, maxSurge rounded up, as
  intstr.GetScaledValueFromIntOrPercent does; both 0 means 1 unavailable, as
  the Deployment controller resolves it), never more than the replicas. Old
  pods are taken down while new ones are not yet ready up to that sum: the
  controller kills as many old pods as `ready - (replicas - maxUnavailable)`.
  Unset values take the kind's defaults: Deployment 25%/25%; StatefulSet
  1/0; DaemonSet 1/0; Argo Rollout (canary) 25%/25%.
- OnDelete: no pod until someone deletes it: 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from remediator.api.models import ScaleParams
from remediator.core.quantity import scale_memory, to_bytes

# (maxUnavailable, maxSurge) when a RollingUpdate strategy leaves them unset.
ROLLING_DEFAULTS: dict[str, tuple[int | str, int | str]] = {
    "Deployment": ("25%", "25%"), "StatefulSet": (1, 0), "DaemonSet": (1, 0), "Rollout": ("25%", "25%")}


@dataclass(frozen=True)
class Strategy:
    """A workload's update strategy as written: type RollingUpdate, Recreate or OnDelete."""

    type: str = "RollingUpdate"
    max_unavailable: int | str | None = None  # 2 or "25%"; None = the kind's default
    max_surge: int | str | None = None


def scaled(value: int | str, total: int, round_up: bool) -> int:
    """An int-or-percent of `total`, rounded as Kubernetes rounds it; ValueError when unreadable."""
    if isinstance(value, int):
        return value
    text = str(value)
    if not text.endswith("%"):
        return int(text)
    percent = int(text[:-1])
    return math.ceil(total * percent / 100) if round_up else total * percent // 100


def rolling_pods(kind: str, replicas: int, strategy: Strategy) -> tuple[int | None, str]:
    """(pods a template change takes down at once, why); None when the strategy cannot be read."""
    if replicas <= 0:
        return 0, "no replicas"
    if strategy.type == "Recreate":
        return replicas, f"strategy Recreate takes all {replicas} pod(s) down at once"
    if strategy.type == "OnDelete":
        return 0, "strategy OnDelete: no pod is replaced until someone deletes it"
    if strategy.type != "RollingUpdate":
        return None, f"unknown strategy {strategy.type!r}"
    default_unavailable, default_surge = ROLLING_DEFAULTS.get(kind, (1, 0))
    unavailable_text = strategy.max_unavailable if strategy.max_unavailable is not None else default_unavailable
    surge_text = strategy.max_surge if strategy.max_surge is not None else default_surge
    try:
        unavailable = scaled(unavailable_text, replicas, round_up=False)
        surge = scaled(surge_text, replicas, round_up=True)
    except ValueError:
        return None, f"unreadable RollingUpdate maxUnavailable {unavailable_text!r} / maxSurge {surge_text!r}"
    if unavailable == 0 and surge == 0:
        unavailable = 1
    touched = max(1, min(replicas, unavailable + surge))
    return touched, (f"RollingUpdate maxUnavailable {unavailable_text} ({unavailable}) + maxSurge {surge_text} "
                     f"({surge}) of {replicas} replica(s): {touched} pod(s) at once")


def plan_replicas(current: int, params: ScaleParams, policy_cap: int | None = None) -> tuple[int, str]:
    """(replicas to set, why): scale out by step or factor, clamped to the bounds; never below current."""
    if params.factor:
        wanted, how = math.ceil(current * params.factor), f"x{params.factor:g}"
    else:
        wanted, how = current + params.step, f"+{params.step}"
    ceiling, ceiling_why = replica_ceiling(params, policy_cap)
    desired = min(max(wanted, params.min_replicas), ceiling)
    if desired <= current:
        return current, f"already at {current} replicas, the bound is {ceiling_why}"
    capped = " (capped by " + ceiling_why + ")" if desired < max(wanted, params.min_replicas) else ""
    return desired, f"{current} {how} -> {desired}{capped}"


def replica_ceiling(params: ScaleParams, policy_cap: int | None) -> tuple[int, str]:
    """The most replicas a scale step ever sets, and which bound that is."""
    if policy_cap is not None and policy_cap < params.max_replicas:
        return policy_cap, f"policy cap {policy_cap}"
    return params.max_replicas, f"maxReplicas {params.max_replicas}"


def plan_limit(current: str, factor: float, max_limit: str, policy_cap: str | None = None) -> tuple[str | None, str]:
    """(new limit or None when it cannot rise, why): current x factor, capped, never lowered."""
    raised = scale_memory(current, factor)
    cap, cap_why = memory_ceiling(max_limit, policy_cap)
    if to_bytes(cap) <= to_bytes(current):
        return None, f"the limit {current} is already at or above the {cap_why}"
    if to_bytes(raised) > to_bytes(cap):
        return cap, f"{current} x{factor:g} = {raised}, capped at the {cap_why}"
    return raised, f"{current} x{factor:g} -> {raised}"


def memory_ceiling(max_limit: str, policy_cap: str | None) -> tuple[str, str]:
    """The highest memory limit a raiseMemory step ever sets, and which bound that is."""
    if policy_cap is not None and to_bytes(policy_cap) < to_bytes(max_limit):
        return policy_cap, f"policy cap {policy_cap}"
    return max_limit, f"maxLimit {max_limit}"
