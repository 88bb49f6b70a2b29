"""Autoscaler-aware sizing: scale through the HPA or KEDA ScaledObject that owns the replicas, under a lease,
and stay out of the VerticalPodAutoscaler's way. Pure: the shell (controller/autoscalers.py) reads the objects,
these functions decide, with reasons.

An HPA writes the workload's replicas through /scale, so a direct scale is undone at its next sync
(kubernetes #25238); but it clamps replicas into [minReplicas, maxReplicas] before it reads any metric, so a
raised `minReplicas` is a floor the HPA itself holds. KEDA pins replicas with the annotation
`autoscaling.keda.sh/paused-replicas`. Either way the operator's write is a lease: the original values, the
Remediation and the expiry are written on the autoscaler in the same patch as the raise, and a sweep puts the
original values back once the lease expires or the Remediation ends, unless someone changed the values since
(they differ from what the operator wrote): then the human's values stay, and the lease is only dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from remediator.api.models import TERMINAL_PHASES, ScaleParams
from remediator.core.durations import format_time, parse_duration, parse_time
from remediator.core.plan.sizing import plan_replicas

LEASE_LABEL = "remediator.dev/autoscaler-lease"  # a label, so the sweep lists leased autoscalers by selector
LEASE_REMEDIATION = "remediator.dev/lease-remediation"  # namespace/name of the Remediation
LEASE_UID = "remediator.dev/lease-remediation-uid"
LEASE_EXPIRES = "remediator.dev/lease-expires"
LEASE_ORIGINAL = "remediator.dev/lease-original"  # JSON: the values before the first raise
LEASE_WRITTEN = "remediator.dev/lease-written"  # JSON: the values the operator wrote last
LEASE_ANNOTATIONS = (LEASE_REMEDIATION, LEASE_UID, LEASE_EXPIRES, LEASE_ORIGINAL, LEASE_WRITTEN)
PAUSED_REPLICAS = "autoscaling.keda.sh/paused-replicas"
VPA_ACTIVE_MODES = ("Auto", "Recreate", "InPlaceOrRecreate")  # modes in which the VPA rewrites running pods


@dataclass(frozen=True)
class Autoscaler:
    """An HPA (values minReplicas/maxReplicas) or a ScaledObject (value paused-replicas, bounds
    minReplicaCount/maxReplicaCount) as read; `values` are the fields a lease writes and restores."""

    kind: str  # HorizontalPodAutoscaler | ScaledObject
    name: str
    values: dict[str, Any]
    max_replicas: int | None
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LeaseHolder:
    remediation: str  # namespace/name
    uid: str
    key: str


@dataclass(frozen=True)
class RaisePlan:
    """What to write on the autoscaler (None: nothing, `reason` says why; `refused`: the step must fail)."""

    reason: str
    values: dict[str, Any] | None = None
    annotations: dict[str, str] | None = None
    refused: bool = False
    held: bool = False  # refused only while another Remediation's lease holds it: worth retrying
    replicas: int | None = None  # the replica count the lease holds


def describe(scaler: Autoscaler) -> str:
    return f"{scaler.kind} {scaler.name}"


def choose(hpas: list[Autoscaler], scaled_objects: list[Autoscaler]) -> tuple[Autoscaler | None, str | None]:
    """The one autoscaler that owns the replicas, or why none can be chosen. KEDA's own HPA (owned by the
    ScaledObject) is left out by the shell: the ScaledObject is the thing to write."""
    found = scaled_objects + hpas
    if len(found) > 1:
        return None, (f"{len(found)} autoscalers target the workload ({', '.join(map(describe, found))}); "
                      "refusing to guess which one to raise")
    return (found[0], None) if found else (None, None)


def plan_raise(scaler: Autoscaler, current: int, params: ScaleParams, policy_cap: int | None,
               holder: LeaseHolder, expires: datetime) -> RaisePlan:
    """The raise of `scaler` that holds `current` replicas up to what plan_replicas allows.

    A lease of another Remediation is never overwritten (its original values would be lost): the sweep
    restores it first, once that lease ends.
    HPA: minReplicas goes up to the new count; maxReplicas only when the count is above it and the policy sets
    a maxReplicas cap that allows the count (without a policy bound the floor stops at maxReplicas).
    ScaledObject: paused-replicas = the new count, the same bound by maxReplicaCount.
    """
    if params.autoscaler == "refuse":
        return RaisePlan(refused=True, reason=f"the workload is autoscaled by {describe(scaler)} and the step "
                         "says autoscaler: refuse; a direct scale would be undone by it")
    lease = scaler.annotations
    ours = lease.get(LEASE_REMEDIATION) == holder.remediation
    if LEASE_REMEDIATION in lease and not ours:
        return RaisePlan(refused=True, held=True, reason=f"{describe(scaler)} is under a lease of Remediation "
                         f"{lease[LEASE_REMEDIATION]} until {lease.get(LEASE_EXPIRES)}; it is restored when that "
                         "lease ends")
    desired, why = plan_replicas(current, params, policy_cap)
    floor = held_floor(scaler)
    if scaler.max_replicas is not None and desired > scaler.max_replicas and policy_cap is None:
        why += (f"; capped at {scaler.kind} maxReplicas {scaler.max_replicas}: the policy sets no maxReplicas "
                "bound that would allow raising it")
        desired = scaler.max_replicas
    if desired <= max(current, floor):
        return RaisePlan(reason=f"{describe(scaler)} not raised: {why} (it already holds {max(current, floor)})")
    values = raised_values(scaler, desired)
    original = json.loads(lease[LEASE_ORIGINAL]) if ours and LEASE_ORIGINAL in lease else scaler.values
    annotations = {
        LEASE_REMEDIATION: holder.remediation, LEASE_UID: holder.uid, LEASE_EXPIRES: format_time(expires),
        LEASE_ORIGINAL: json.dumps(original, sort_keys=True), LEASE_WRITTEN: json.dumps(values, sort_keys=True)}
    changed = ", ".join(f"{k} {scaler.values.get(k)} -> {v}" for k, v in values.items()
                        if scaler.values.get(k) != v)
    return RaisePlan(values=values, annotations=annotations, replicas=desired,
                     reason=f"{describe(scaler)} raised under a lease until {format_time(expires)}: {changed} "
                            f"({why})")


def held_floor(scaler: Autoscaler) -> int:
    if scaler.kind == "ScaledObject":
        text = scaler.values.get(PAUSED_REPLICAS)
        return int(text) if text and str(text).isdigit() else 0
    return int(scaler.values.get("minReplicas") or 1)


def raised_values(scaler: Autoscaler, desired: int) -> dict[str, Any]:
    if scaler.kind == "ScaledObject":
        return {PAUSED_REPLICAS: str(desired)}
    return {"minReplicas": max(desired, int(scaler.values.get("minReplicas") or 1)),
            "maxReplicas": max(desired, int(scaler.values.get("maxReplicas") or desired))}


@dataclass(frozen=True)
class RestorePlan:
    """op: wait (the lease holds), restore (write `values` back and drop the lease), keep (someone changed the
    values: drop the lease only), drop (an unreadable lease: drop it, touch no value)."""

    op: str
    reason: str
    values: dict[str, Any] | None = None


def plan_restore(scaler: Autoscaler, remediation_phase: str | None, remediation_uid: str | None,
                 now: datetime) -> RestorePlan:
    """What to do with a leased autoscaler. `remediation_phase`/`remediation_uid`: the lease's Remediation
    as found now (None: it is gone)."""
    lease = scaler.annotations
    try:
        expires = parse_time(lease[LEASE_EXPIRES])
        original = json.loads(lease[LEASE_ORIGINAL])
        written = json.loads(lease[LEASE_WRITTEN])
        assert isinstance(original, dict) and isinstance(written, dict)
        assert set(original) == set(written) and all(readable(v) for v in original.values())
    except (KeyError, ValueError, AssertionError):
        return RestorePlan("drop", f"{describe(scaler)}: unreadable lease annotations; dropped, values left as "
                                   "they are")
    who = lease.get(LEASE_REMEDIATION, "?")
    if remediation_phase is None or remediation_uid != lease.get(LEASE_UID):
        why = f"Remediation {who} is gone"
    elif remediation_phase in TERMINAL_PHASES:
        why = f"Remediation {who} ended ({remediation_phase})"
    elif now >= expires:
        why = f"the lease of Remediation {who} expired at {lease[LEASE_EXPIRES]}"
    else:
        return RestorePlan("wait", f"leased to Remediation {who} until {lease[LEASE_EXPIRES]}")
    live = {k: scaler.values.get(k) for k in written}
    if live != written:
        edited = ", ".join(f"{k} {written[k]} -> {live[k]}" for k in written if live[k] != written[k])
        return RestorePlan("keep", f"{why}; {describe(scaler)} not restored: someone changed it during the lease "
                                   f"({edited}); their values stay")
    back = ", ".join(f"{k} {written[k]} -> {original.get(k)}" for k in written if original.get(k) != written[k])
    return RestorePlan("restore", f"{why}; {describe(scaler)} restored: {back or 'values unchanged'}",
                       {k: original.get(k) for k in written})


def readable(value: Any) -> bool:
    """A value a lease may write back: a replica count, a paused-replicas text, or None (absent)."""
    return value is None or (isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 100_000) or \
        (isinstance(value, str) and value.isdigit() and len(value) <= 6)


# ---------------------------------------------------------------- VerticalPodAutoscaler


@dataclass(frozen=True)
class Vpa:
    name: str
    update_mode: str  # as written; the VPA's default is Auto
    container_policies: list[dict] = field(default_factory=list)


def vpa_refusal(vpa: Vpa, container: str) -> str | None:
    """Why raiseMemory must not touch `container`, or None.

    We refuse rather than bound the limit by the VPA's maxAllowed: in these modes the VPA's admission webhook
    rewrites every new pod's requests (and scales its limits by the template's limit/request ratio) and its
    updater evicts pods that stray from its recommendation, so a limit written in the template does not stay as
    written, and a rollout of ours would fight the VPA. The human lever is the VPA's maxAllowed: say so."""
    if vpa.update_mode not in VPA_ACTIVE_MODES:
        return None
    policy = next((p for p in vpa.container_policies if p.get("containerName") == container),
                  next((p for p in vpa.container_policies if p.get("containerName") == "*"), {}))
    if policy.get("mode") == "Off" or "memory" not in (policy.get("controlledResources") or ["cpu", "memory"]):
        return None
    ceiling = (policy.get("maxAllowed") or {}).get("memory")
    lever = f"raise its maxAllowed memory (now {ceiling})" if ceiling else "set a maxAllowed memory on it"
    return (f"container {container} is sized by VerticalPodAutoscaler {vpa.name} (updateMode {vpa.update_mode}), "
            f"which rewrites pods' memory; a raised limit would not stay as written. To give it more memory, "
            f"{lever}, or set its updateMode to Off or Initial")


def simulated_raise(params: ScaleParams, replicas: int | None, hpa_min: int, hpa_max: int, policy_cap: int | None,
                    now: datetime) -> str:
    """What `remediator simulate --hpa MIN:MAX` says a scale step would do to the HPA."""
    if replicas is None:
        return f"an HPA (min {hpa_min}, max {hpa_max}) targets it: the raise depends on replicas (--replicas N)"
    scaler = Autoscaler("HorizontalPodAutoscaler", "(given)", {"minReplicas": hpa_min, "maxReplicas": hpa_max},
                        hpa_max)
    raised = plan_raise(scaler, replicas, params, policy_cap, LeaseHolder("", "", ""),
                        now + parse_duration(params.lease_duration))
    return ("the scale is refused: " if raised.refused else "the scale goes through the HPA, not the workload: ") + \
        raised.reason
