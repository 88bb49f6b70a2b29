"""The per-target claim: one Remediation at a time acts on (and verifies) a target. Pure.

The claim is a coordination.k8s.io/v1 Lease named from the target, in the
target's namespace (a Node's: the operator's own namespace, one key for the whole cluster, so Remediations
of two namespaces that may both act on Nodes never drain one Node at once), whose holderIdentity is the holding Remediation's uid. The
apiserver arbitrates it: a create meets a conflict when the Lease exists, an
update carries the resourceVersion it read. This module decides, from the Lease
as read (or its absence), whether the claim is ours to take and what to write;
the shell (controller/claims.py) does the reads and writes.

A claim held by another Remediation is taken over only when it expired (the
operator died, the holder never released it) or its holder is gone or finished.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from remediator.api.models import API_VERSION, TERMINAL_PHASES, RemediationStatus, TargetClaim
from remediator.core.durations import format_time, micro_time, parse_time

LEASE_PREFIX = "remediator-target-"
MAX_NAME = 63
MARGIN = timedelta(seconds=60)  # beyond the step's timeout: the action's own retries and a slow tick
HOLDING_PHASES = ("Acting", "Verifying")
HOLDER_ANNOTATION = "remediator.dev/holder"  # the holding Remediation's name, for the reason and liveness
HOLDER_NAMESPACE_ANNOTATION = "remediator.dev/holder-namespace"  # where it lives, when not beside its Lease

INT32_MAX = 2**31 - 1  # leaseDurationSeconds is an int32: a step of years holds it for 68 of them


@dataclass(frozen=True)
class LeaseView:
    """What matters of a Lease as read."""

    holder: str
    holder_name: str
    renewed_at: datetime | None
    duration: timedelta
    transitions: int = 0
    holder_namespace: str | None = None  # None: the Lease's own namespace

    @property
    def expires_at(self) -> datetime | None:
        return None if self.renewed_at is None else self.renewed_at + self.duration


@dataclass(frozen=True)
class ClaimDecision:
    """create / renew / takeover: write the Lease and act; held: another Remediation holds it, say who."""

    op: Literal["create", "renew", "takeover", "held"]
    reason: str
    lease: str
    namespace: str
    holder: str  # who holds the claim after this decision
    holder_name: str
    acquired_at: datetime
    expires_at: datetime
    transitions: int = 0

    @property
    def granted(self) -> bool:
        return self.op != "held"

    def record(self) -> TargetClaim:
        return TargetClaim(lease=self.lease, namespace=self.namespace, holder=self.holder,
                           acquired_at=format_time(self.acquired_at), expires_at=format_time(self.expires_at))


def lease_name(kind: str, name: str) -> str:
    """`remediator-target-<kind>-<name>`; a name too long for a label-sized name is cut and hashed."""
    full = f"{LEASE_PREFIX}{kind.lower()}-{name}"
    if len(full) <= MAX_NAME:
        return full
    digest = hashlib.sha256(f"{kind}/{name}".encode()).hexdigest()[:16]
    return f"{full[:MAX_NAME - len(digest) - 1].rstrip('-.')}-{digest}"


def duration_for(step_timeout: timedelta) -> timedelta:
    return step_timeout + MARGIN


def lease_view(body: dict | None) -> LeaseView | None:
    """The Lease as the apiserver returned it (a plain dict), or None when there is none."""
    if body is None:
        return None
    spec = body.get("spec") or {}
    renewed = spec.get("renewTime") or spec.get("acquireTime")
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    return LeaseView(holder=spec.get("holderIdentity") or "",
                     holder_name=annotations.get(HOLDER_ANNOTATION, ""),
                     holder_namespace=annotations.get(HOLDER_NAMESPACE_ANNOTATION),
                     renewed_at=parse_time(renewed) if renewed else None,
                     duration=timedelta(seconds=int(spec.get("leaseDurationSeconds") or 0)),
                     transitions=int(spec.get("leaseTransitions") or 0))


def decide(lease: LeaseView | None, me: str, my_name: str, holder_live: bool, *, lease_name: str,
           namespace: str, target: str, now: datetime, duration: timedelta) -> ClaimDecision:
    """May Remediation `me` (uid) claim `target` now? `holder_live`: the current holder is an open Remediation."""
    def granted(op, reason, transitions):
        return ClaimDecision(op, reason, lease_name, namespace, me, my_name, now, now + duration, transitions)

    if lease is None:
        return granted("create", f"claimed {target} (Lease {namespace}/{lease_name})", 0)
    if lease.holder == me:
        return granted("renew", f"renewed the claim on {target}", lease.transitions)
    who = f"Remediation {lease.holder_name or '?'} (uid {lease.holder or '?'})"
    expires = lease.expires_at
    if not lease.holder or expires is None or expires <= now:
        return granted("takeover", f"took over the claim on {target}: the claim of {who} expired", lease.transitions + 1)
    if not holder_live:
        return granted("takeover", f"took over the claim on {target}: {who} is finished or gone",
                       lease.transitions + 1)
    return ClaimDecision("held", f"{target} is claimed by {who} until {format_time(expires)} (Lease {namespace}/{lease_name})",
                         lease_name, namespace, lease.holder, lease.holder_name, now, expires, lease.transitions)


def lease_body(decision: ClaimDecision, target: str, resource_version: str | None,
               holder_namespace: str | None = None) -> dict:
    """The Lease to write for a granted decision; with the resourceVersion read, so a racer gets 409.
    `holder_namespace`: where the holder lives, when not in the Lease's namespace (a Node's claim)."""
    metadata: dict = {"name": decision.lease, "namespace": decision.namespace,
                      "labels": {"app.kubernetes.io/managed-by": "remediator"},
                      "annotations": {HOLDER_ANNOTATION: decision.holder_name, "remediator.dev/target": target}}
    if holder_namespace and holder_namespace != decision.namespace:
        # an owner in another namespace counts as absent: the garbage collector would delete the Lease at once
        metadata["annotations"][HOLDER_NAMESPACE_ANNOTATION] = holder_namespace
    else:
        # the holder lives in the same namespace: if it is deleted mid-step, the garbage collector
        # deletes its Lease (no write of the step's end ever comes)
        metadata["ownerReferences"] = [{"apiVersion": API_VERSION, "kind": "Remediation",
                                        "name": decision.holder_name, "uid": decision.holder}]
    if resource_version:
        metadata["resourceVersion"] = resource_version
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata,
            "spec": {"holderIdentity": decision.holder,
                     "leaseDurationSeconds": min(INT32_MAX, int(decision.expires_at.timestamp()
                                                                - decision.acquired_at.timestamp())),
                     "acquireTime": micro_time(decision.acquired_at), "renewTime": micro_time(decision.acquired_at),
                     "leaseTransitions": decision.transitions}}


def released(status: RemediationStatus) -> RemediationStatus:
    """A status that no longer holds its claim once the step is over (any phase but Acting/Verifying)."""
    if status.claim is None or status.phase in HOLDING_PHASES:
        return status
    return status.model_copy(update={"claim": None})


def step_over(before: RemediationStatus, after: RemediationStatus) -> bool:
    """A write that ends the holding of a claim: it left Acting/Verifying, or dropped the claim's record."""
    if after.phase in HOLDING_PHASES:
        return False
    # ... or it ended, or left Pending without acting: a claim taken beside an intent write that was lost (the
    # operator killed between the two) may exist without any record of it
    return before.phase in HOLDING_PHASES or before.claim is not None or before.phase == "Pending" or \
        (after.phase in TERMINAL_PHASES and before.phase not in TERMINAL_PHASES)
