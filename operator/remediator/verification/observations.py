"""What the probes saw, as plain data: the input of the verdicts.

Pure (no kubernetes import): `probes` builds these from the cluster, the unit
tests build them by hand. An `Observation` is one look at the target at one
instant; a verdict reads a time-ordered list of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from remediator.api.models import ObjectRef

from remediator.core.pod_health import (  # noqa: F401  re-exported: the verdicts' vocabulary
    FAILING_WAITING_REASONS,
    PodObservation,
    failing_reasons,
    is_failing,
)

PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"


@dataclass(frozen=True)
class ConditionObservation:
    type: str
    status: str
    reason: str = ""
    message: str = ""
    updated_at: datetime | None = None


@dataclass(frozen=True)
class RolloutObservation:
    """A Deployment's, StatefulSet's, DaemonSet's or Argo Rollout's rollout, in Deployment terms.

    desired: the replicas asked for (DaemonSet: nodes that should run one);
    replicas: pods that exist (old and new); updated: pods of the current
    template; StatefulSets add their revisions and partition; StatefulSets and
    DaemonSets their update strategy (RollingUpdate or OnDelete); an Argo
    Rollout its phase (Healthy, Progressing, Paused, Degraded) and message.
    """

    kind: str
    generation: int
    observed_generation: int
    desired: int
    replicas: int = 0
    updated: int = 0
    ready: int = 0
    available: int = 0
    unavailable: int = 0
    paused: bool = False
    conditions: tuple[ConditionObservation, ...] = ()
    current_revision: str | None = None
    update_revision: str | None = None
    partition: int = 0
    strategy: str = "RollingUpdate"
    phase: str = ""
    message: str = ""

    def condition(self, type_: str) -> ConditionObservation | None:
        return next((c for c in self.conditions if c.type == type_), None)


@dataclass(frozen=True)
class Observation:
    at: datetime
    target: ObjectRef
    exists: bool
    rollout: RolloutObservation | None = None
    pods: tuple[PodObservation, ...] = field(default_factory=tuple)
    # a Node only: its conditions (type -> status), and the pods that may have replaced those evicted from it
    # (the evicted pods' namespace, or the cluster's Running pods), on other nodes
    conditions: Mapping[str, str] = field(default_factory=dict)
    elsewhere: tuple[PodObservation, ...] = field(default_factory=tuple)


def rollout_progress(r: RolloutObservation) -> tuple[bool, str]:
    """(complete, what kubectl rollout status would say), per kind, as kubectl decides it."""
    if r.observed_generation < r.generation:
        return False, f"waiting for the {r.kind} spec update to be observed"
    if r.kind == "Rollout":
        return _argo_rollout_progress(r)
    if r.kind == "StatefulSet":
        complete, message = _statefulset_progress(r)
    elif r.kind == "DaemonSet":
        complete, message = _daemonset_progress(r)
    else:
        return _deployment_progress(r)
    if not complete and r.strategy == "OnDelete":
        # kubectl rollout status refuses OnDelete outright; we still say when every pod runs the new revision
        message += (f"; updateStrategy OnDelete: the {r.kind} controller replaces a pod only when it is deleted, "
                    "so pods of the old revision stay until someone deletes them")
    return complete, message


def pods_healthy(o: Observation) -> tuple[bool, str]:
    """(healthy, why): the target is there, its rollout complete and every one of its pods Ready (at least one).
    However people fixed it (the same pods Ready again, or a rollback whose old pods were deleted, never Ready
    again), this is what says a workload's pods are healthy."""
    if not o.exists:
        return False, f"{o.target.kind}/{o.target.name} is gone"
    said = ""
    if o.rollout is not None:
        complete, said = rollout_progress(o.rollout)
        if not complete:
            return False, said
    if not o.pods:
        return False, "no pods"
    unready = [p.name for p in o.pods if not p.ready]
    if unready:
        return False, f"{len(unready)} of {len(o.pods)} pods not Ready: {', '.join(sorted(unready)[:5])}"
    return True, said or f"{len(o.pods)} pods Ready"


def _argo_rollout_progress(r: RolloutObservation) -> tuple[bool, str]:
    """As `kubectl argo rollouts status` decides it: the Rollout's phase, with its controller's message."""
    said = f": {r.message}" if r.message else ""
    if r.phase == "Healthy":
        return True, f"Healthy: {r.available}/{r.desired} available, {r.updated} updated"
    return False, f"{r.phase or 'no phase yet'}{said} ({r.updated} of {r.desired} updated, {r.available} available)"


def _deployment_progress(r: RolloutObservation) -> tuple[bool, str]:
    if r.updated < r.desired:
        return False, f"{r.updated} out of {r.desired} new replicas have been updated"
    if r.replicas > r.updated:
        return False, f"{r.replicas - r.updated} old replicas are pending termination"
    if r.available < r.updated:
        return False, f"{r.available} of {r.updated} updated replicas are available"
    return True, f"successfully rolled out: {r.available}/{r.desired} updated and available"


def _statefulset_progress(r: RolloutObservation) -> tuple[bool, str]:
    if r.ready < r.desired:
        return False, f"{r.ready} of {r.desired} pods are ready"
    if r.partition > 0:
        if r.updated < r.desired - r.partition:
            return False, f"{r.updated} of {r.desired - r.partition} pods above the partition are updated"
        return True, (f"partitioned roll out complete: {r.updated} new pods have been updated; the "
                      f"{r.partition} pod(s) below ordinal {r.partition} keep their revision and are not "
                      "checked against the new one")
    if r.update_revision and r.current_revision != r.update_revision:
        return False, f"{r.updated} of {r.desired} pods are at revision {r.update_revision}"
    return True, f"successfully rolled out: {r.ready}/{r.desired} ready at revision {r.current_revision}"


def _daemonset_progress(r: RolloutObservation) -> tuple[bool, str]:
    if r.updated < r.desired:
        return False, f"{r.updated} out of {r.desired} new pods have been updated"
    if r.available < r.desired:
        return False, f"{r.available} of {r.desired} updated pods are available"
    return True, f"successfully rolled out: {r.available}/{r.desired} updated and available"
