"""raiseMemory: raise one container's memory limit by a factor, within caps.

The container is the one named by the step, else the one the kubelet last
OOMKilled, else the first. The new limit is the old one times `factor`
(rounded up, in the same suffix family), never above the step's `maxLimit`
nor the policy's cap, and never lower than today's; the request stays at or
below the limit. The template change (a new rollout) and the key go in one
strategic-merge patch guarded by resourceVersion.

A VerticalPodAutoscaler in Auto, Recreate or InPlaceOrRecreate mode that sizes the container's memory makes
the step fail with the reason (core/plan/autoscalers.vpa_refusal says why we refuse rather than bound).
"""

from __future__ import annotations

from typing import Any

from kubernetes import client

from remediator.actions.base import (
    KEYS_ANNOTATION,
    ActionError,
    ActionRequest,
    ActionResult,
    changes_between,
    describe,
    evidence,
    is_recorded,
    keys_with,
    replayed,
    require_kind,
    reread_on_conflict,
)
from remediator.actions.autoscalers import vpas_of
from remediator.actions.kube import WORKLOAD_KINDS, as_dict, patch_workload, pods_of, read_workload
from remediator.api.models import RaiseMemoryParams
from remediator.core.pod_health import pod_observation
from remediator.core.quantity import QuantityError, to_bytes
from remediator.core.plan.autoscalers import vpa_refusal
from remediator.core.plan.sizing import plan_limit  # shared with the guards


def run(api: client.ApiClient, req: ActionRequest) -> ActionResult:
    require_kind(req, WORKLOAD_KINDS)
    if req.step.raise_memory is None:
        raise ActionError(
            "MissingParams", f"step {req.step.name}: raiseMemory needs raiseMemory params (maxLimit)"
        )
    return reread_on_conflict(lambda: raise_once(api, req, req.step.raise_memory))


def raise_once(api: client.ApiClient, req: ActionRequest, params: RaiseMemoryParams) -> ActionResult:
    workload = read_workload(api, req.target)
    if is_recorded(workload.metadata.annotations, req.key):
        return replayed(req, "raiseMemory")
    container = choose_container(
        params.container, workload.spec.template.spec.containers, oom_killed(api, workload, params.container)
    )
    refusal = next(filter(None, (vpa_refusal(vpa, container.name) for vpa in vpas_of(api, req.target))), None)
    if refusal:
        raise ActionError("AutoscaledByVPA", f"memory of {describe(req.target)} not raised: {refusal}")
    limits = (container.resources.limits if container.resources else None) or {}
    requests = (container.resources.requests if container.resources else None) or {}
    if "memory" not in limits:
        raise ActionError(
            "NoMemoryLimit",
            f"container {container.name} of {describe(req.target)} has no memory limit to raise",
        )
    try:
        new_limit, why = plan_limit(limits["memory"], params.factor, params.max_limit, req.max_memory)
    except QuantityError as e:
        raise ActionError("InvalidQuantity", str(e)) from e
    if new_limit is None:
        return ActionResult(
            done=True,
            replayed=False,
            message=f"memory of {container.name} in {describe(req.target)} not raised: {why}",
            evidence=[evidence("memory", why, limits["memory"])],
        )
    resources: dict[str, Any] = {"limits": {"memory": new_limit}}
    if "memory" in requests and to_bytes(requests["memory"]) > to_bytes(new_limit):
        resources["requests"] = {"memory": new_limit}
    body = {
        "metadata": {
            "resourceVersion": workload.metadata.resource_version,
            "annotations": {KEYS_ANNOTATION: keys_with(workload.metadata.annotations, req.key)},
        },
        "spec": {"template": {"spec": {"containers": [{"name": container.name, "resources": resources}]}}},
    }
    after = patch_workload(api, req.target, body, dry_run=req.dry_run)
    verb = "would raise" if req.dry_run else "raised"
    return ActionResult(
        done=True,
        replayed=False,
        message=f"{verb} the memory limit of {container.name} in {describe(req.target)}: {why}",
        evidence=[evidence("memory", f"{verb} {container.name}: {why}", new_limit)],
        changes=changes_between(as_dict(api, workload), as_dict(api, after)),
    )


def oom_killed(api: client.ApiClient, workload: Any, named: str | None) -> set[str]:
    """Containers the kubelet last OOMKilled in the workload's pods (not needed when the step names one)."""
    if named:
        return set()
    return {name for pod in pods_of(api, workload) for name in pod_observation(pod).oom_killed_containers}


def choose_container(named: str | None, containers: list[Any], oom_killed: set[str]) -> Any:
    if named:
        found = next((c for c in containers if c.name == named), None)
        if found is None:
            raise ActionError(
                "NoSuchContainer",
                f"no container {named!r} in the pod template; "
                f"containers: {', '.join(c.name for c in containers)}",
            )
        return found
    return next((c for c in containers if c.name in oom_killed), containers[0])

