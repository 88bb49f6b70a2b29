"""scale: add replicas to a Deployment or StatefulSet, within bounds.

The new count is current + step (or current x factor, rounded up), at least
`minReplicas`, and never above `maxReplicas` nor the policy's cap. This action
only scales out: when the bounds leave no room it changes nothing and says why.
The new count and the key go in one patch guarded by resourceVersion.
"""

from __future__ import annotations

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
from remediator.actions.kube import as_dict, patch_workload, read_workload
from remediator.api.models import ScaleParams
from remediator.core.plan.sizing import plan_replicas  # shared with the guards


def run(api: client.ApiClient, req: ActionRequest) -> ActionResult:
    require_kind(req, ("Deployment", "StatefulSet"))
    if req.step.scale is None:
        raise ActionError("MissingParams", f"step {req.step.name}: scale needs scale params (maxReplicas)")
    return reread_on_conflict(lambda: scale_once(api, req, req.step.scale))


def scale_once(api: client.ApiClient, req: ActionRequest, params: ScaleParams) -> ActionResult:
    workload = read_workload(api, req.target)
    if is_recorded(workload.metadata.annotations, req.key):
        return replayed(req, "scale")
    current = workload.spec.replicas if workload.spec.replicas is not None else 1
    desired, why = plan_replicas(current, params, req.max_replicas)
    if desired <= current:
        return ActionResult(
            done=True,
            replayed=False,
            message=f"{describe(req.target)} not scaled: {why}",
            evidence=[evidence("scale", why, str(current))],
        )
    body = {
        "metadata": {
            "resourceVersion": workload.metadata.resource_version,
            "annotations": {KEYS_ANNOTATION: keys_with(workload.metadata.annotations, req.key)},
        },
        "spec": {"replicas": desired},
    }
    after = patch_workload(api, req.target, body, dry_run=req.dry_run)
    verb = "would scale" if req.dry_run else "scaled"
    return ActionResult(
        done=True,
        replayed=False,
        message=f"{verb} {describe(req.target)} from {current} to {desired} ({why})",
        evidence=[evidence("scale", f"{verb} {current} -> {desired}: {why}", str(desired))],
        changes=changes_between(as_dict(api, workload), as_dict(api, after)),
    )

