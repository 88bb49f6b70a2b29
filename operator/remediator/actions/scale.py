"""scale: add replicas to a Deployment or StatefulSet, within bounds.

The new count is current + step (or current x factor, rounded up), at least
`minReplicas`, and never above `maxReplicas` nor the policy's cap. This action
only scales out: when the bounds leave no room it changes nothing and says why.
The new count and the key go in one patch guarded by resourceVersion.

When an HPA or a KEDA ScaledObject scales the workload, a direct scale would be undone by it: the step raises
the autoscaler's floor under a lease instead (core/plan/autoscalers.py; the key goes on the autoscaler), or,
with `autoscaler: refuse`, fails and says why. The sweep in controller/autoscalers.py restores it.
"""

from __future__ import annotations

from datetime import UTC, datetime

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
from remediator.actions import autoscalers
from remediator.actions.kube import as_dict, patch_workload, read_workload
from remediator.api.models import ScaleParams
from remediator.core.durations import parse_duration
from remediator.core.plan import autoscalers as leases
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
    hpas, scaled_objects = autoscalers.autoscalers_of(api, req.target)
    found, problem = leases.choose([autoscalers.view(h) for h in hpas], [autoscalers.view(s) for s in scaled_objects])
    if problem:
        raise ActionError("AmbiguousAutoscaler", problem)
    if found is not None:
        obj = next(o for o in hpas + scaled_objects if o["metadata"]["name"] == found.name and
                   o["kind"] == found.kind)
        return raise_autoscaler(api, req, params, current, obj, found)
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


def raise_autoscaler(api: client.ApiClient, req: ActionRequest, params: ScaleParams, current: int, obj: dict,
                     scaler: leases.Autoscaler) -> ActionResult:
    if is_recorded(scaler.annotations, req.key):
        return replayed(req, "scale")
    expires = datetime.now(UTC) + parse_duration(params.lease_duration)
    holder = leases.LeaseHolder(req.remediation, req.remediation_uid, req.key)
    decision = leases.plan_raise(scaler, current, params, req.max_replicas, holder, expires)
    if decision.refused:
        raise ActionError("AutoscalerLeased" if decision.held else "Autoscaled",
                          f"{describe(req.target)} not scaled: {decision.reason}", retryable=decision.held)
    if decision.values is None:
        return ActionResult(done=True, replayed=False, message=f"{describe(req.target)} not scaled: "
                            f"{decision.reason}", evidence=[evidence("scale", decision.reason, str(current))])
    after = autoscalers.patch(api, obj, autoscalers.lease_patch(obj, decision.values, decision.annotations, req.key),
                              dry_run=req.dry_run)
    changes = autoscalers.changes_of(obj, obj, after)
    if decision.replicas is not None and decision.replicas > current:
        # The autoscaler agrees with this count now, so it sticks; without it verification could pass on the old
        # count before the HPA's next sync, end the incident and with it the lease. Killed before this write, the
        # replay finds the key on the autoscaler, and the raised floor brings the replicas up all the same.
        scaled = patch_workload(api, req.target, {"spec": {"replicas": decision.replicas}}, dry_run=req.dry_run)
        changes |= {"spec.replicas": {"before": current, "after": scaled.spec.replicas}}
    verb = "would scale" if req.dry_run else "scaled"
    message = f"{verb} {describe(req.target)} to {decision.replicas} through its autoscaler: {decision.reason}"
    return ActionResult(done=True, replayed=False, message=message,
                        evidence=[evidence("scale", message, str(decision.replicas))],
                        changes=changes)
