"""restartRollout: what `kubectl rollout restart` does.

kubectl stamps the pod template with the annotation
`kubectl.kubernetes.io/restartedAt: <now, RFC 3339>`; the new template makes the
controller roll every pod. We send that stamp and the idempotency key in one
patch guarded by resourceVersion, so a replay finds the key and stamps nothing.
"""

from __future__ import annotations

from concurrent.futures import Future
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
    read_of,
    replayed,
    require_kind,
    reread_on_conflict,
)
from remediator.actions.kube import WORKLOAD_KINDS, patch_object_json, read_object_json
from remediator.core.durations import format_time

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


def run(api: client.ApiClient, req: ActionRequest) -> ActionResult:
    require_kind(req, WORKLOAD_KINDS)
    if req.dry_run and isinstance(req.read, Future):
        return dry_run_beside_the_read(api, req)
    return from_read(api, req, read_of(req.target, req.read))


def from_read(api: client.ApiClient, req: ActionRequest, workload: dict | None) -> ActionResult:
    """Restart from `workload` as read (None: read it), guarded by its resourceVersion."""
    reads = [workload]  # the read serves the first try only: after a 409 it is stale
    return reread_on_conflict(lambda: restart_once(api, req, reads.pop() if reads else None))


def restart_once(api: client.ApiClient, req: ActionRequest, workload: dict | None = None) -> ActionResult:
    ref = req.target
    if workload is None:
        workload = read_object_json(api, ref.kind, ref.name, ref.namespace)  # JSON, not a client model: see kube.py
    meta = workload.get("metadata") or {}
    if is_recorded(meta.get("annotations"), req.key):
        return replayed(req, "restart")
    refuse_like_kubectl(req, workload)
    stamp = format_time(datetime.now(UTC))
    after = patch_object_json(api, ref.kind, ref.name, ref.namespace, restart_patch(req, workload, stamp),
                              dry_run=req.dry_run)
    return restarted(req, workload, after, stamp)


def dry_run_beside_the_read(api: client.ApiClient, req: ActionRequest) -> ActionResult:
    """The dry run sent while the tick's read of the target is on its way, then judged from that read as one
    starting from it would have been: a dry run changes nothing, so it needs no resourceVersion to guard it."""
    ref = req.target
    stamp = format_time(datetime.now(UTC))
    try:
        after = patch_object_json(api, ref.kind, ref.name, ref.namespace, restart_patch(req, None, stamp),
                                  dry_run=True)
    except ActionError as refused:
        after, error = None, refused
    workload = read_of(ref, req.read) or read_object_json(api, ref.kind, ref.name, ref.namespace)
    if is_recorded((workload.get("metadata") or {}).get("annotations"), req.key):
        return replayed(req, "restart")
    refuse_like_kubectl(req, workload)
    if after is None:
        raise error
    if version(after) != version(workload):  # the target changed in between: diffed, that change would look ours
        return from_read(api, req, workload)
    return restarted(req, workload, after, stamp)


def version(obj: dict) -> str | None:
    return (obj.get("metadata") or {}).get("resourceVersion")


def restart_patch(req: ActionRequest, workload: dict | None, stamp: str) -> dict:
    """kubectl's stamp and our key; guarded by the read's resourceVersion (`workload` None: a dry run's, unguarded)."""
    meta = (workload or {}).get("metadata") or {}
    return {
        "metadata": {
            **({"resourceVersion": meta.get("resourceVersion")} if workload is not None else {}),
            "annotations": {KEYS_ANNOTATION: keys_with(meta.get("annotations"), req.key)},
        },
        "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}},
    }


def restarted(req: ActionRequest, workload: dict, after: dict, stamp: str) -> ActionResult:
    verb = "would restart" if req.dry_run else "restarted"
    return ActionResult(
        done=True,
        replayed=False,
        message=f"{verb} {describe(req.target)} (restartedAt {stamp})",
        evidence=[evidence("action", f"{verb} {describe(req.target)}", stamp)],
        changes=changes_between(workload, after),
    )


def refuse_like_kubectl(req: ActionRequest, workload: dict) -> None:
    """The cases where kubectl refuses to restart, because the restart would do nothing."""
    spec = workload.get("spec") or {}
    if req.target.kind == "Deployment" and spec.get("paused"):
        raise ActionError(
            "Paused", f"can't restart paused deployment {req.target.name} (run rollout resume first)"
        )
    strategy = spec.get("updateStrategy")
    if strategy is not None and strategy.get("type") == "OnDelete":
        raise ActionError(
            "OnDelete",
            f"restart has no effect on {req.target.kind.lower()} {req.target.name} "
            "with the 'OnDelete' update strategy",
        )
