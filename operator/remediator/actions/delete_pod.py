"""deletePod: delete the failing pods of a target so their controller recreates them.

Two writes, in this order, so a crash between them is harmless:
1. on the pods' owner (the target workload; for a Pod target, its Deployment,
   StatefulSet or DaemonSet, or the pod itself when it has none), record the key
   and the UIDs chosen (annotations `remediator.dev/action-keys` and
   `remediator.dev/deleted-pods`), guarded by resourceVersion;
2. delete each chosen pod with `preconditions.uid`, so a pod recreated under the
   same name (StatefulSets) is never hit by mistake.
A replay deletes only the recorded UIDs still present: never a pod chosen later,
never more than the first decision. Healthy pods are left alone unless the step
says `onlyFailing: false`; the policy's `max_pods` caps the count either way.
"""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client

from remediator.actions.base import (
    DELETED_PODS_ANNOTATION,
    KEYS_ANNOTATION,
    ActionError,
    ActionRequest,
    ActionResult,
    Conflict,
    describe,
    evidence,
    is_recorded,
    keys_with,
    require_kind,
    reread_on_conflict,
)
from remediator.actions.kube import (
    MERGE_PATCH,
    WORKLOAD_KINDS,
    call,
    patch_object,
    pods_of,
    read_object,
)
from remediator.api.models import DeletePodParams
from remediator.core.pod_health import failing_reasons, pod_observation


def run(api: client.ApiClient, req: ActionRequest) -> ActionResult:
    require_kind(req, (*WORKLOAD_KINDS, "Pod"))
    params = req.step.delete_pod or DeletePodParams()
    return reread_on_conflict(lambda: delete_once(api, req, params))


def delete_once(api: client.ApiClient, req: ActionRequest, params: DeletePodParams) -> ActionResult:
    owner_kind, owner = pod_owner(api, req)
    pods = pods_in_scope(api, req, owner_kind, owner)
    annotations = owner.metadata.annotations
    if is_recorded(annotations, req.key):
        return replay(api, req, pods, recorded_uids(annotations, req.key))
    chosen, left_out = choose_pods(pods, params.only_failing, req.max_pods)
    record_choice(api, req, owner_kind, owner, [p.metadata.uid for p, _ in chosen])
    outcomes = delete_pods(api, [p for p, _ in chosen], req.dry_run)
    return result(req, chosen, outcomes, left_out, owner_kind, owner.metadata.name)


# ---------------------------------------------------------------- scope


def pod_owner(api: client.ApiClient, req: ActionRequest) -> tuple[str, Any]:
    """(kind, object) that holds the record: the workload, or for a Pod its top controller, or the pod."""
    target = req.target
    if target.kind in WORKLOAD_KINDS:
        return target.kind, read_object(api, target.kind, target.name, target.namespace)
    kind, obj = "Pod", read_object(api, "Pod", target.name, target.namespace)
    # climb Pod -> ReplicaSet -> Deployment (or Pod -> StatefulSet/DaemonSet)
    while (ref := controller_of(obj)) and ref.kind in ("ReplicaSet", *WORKLOAD_KINDS):
        try:
            kind, obj = ref.kind, read_object(api, ref.kind, ref.name, target.namespace)
        except ActionError as e:
            if e.status != 404:
                raise
            break
    return kind, obj


def controller_of(obj: Any) -> Any:
    return next((o for o in obj.metadata.owner_references or [] if o.controller), None)


def pods_in_scope(api: client.ApiClient, req: ActionRequest, owner_kind: str, owner: Any) -> list[Any]:
    """The pods this request may touch: the target workload's, or just the target pod."""
    if req.target.kind == "Pod":
        if owner_kind == "Pod":
            return [owner] if owner.metadata.deletion_timestamp is None else []
        return [p for p in pods_of(api, owner) if p.metadata.name == req.target.name]
    return pods_of(api, owner)


def choose_pods(
    pods: list[Any], only_failing: bool, limit: int | None
) -> tuple[list[tuple[Any, str]], list[str]]:
    """(pods to delete with why, names left out by the cap): failing pods first, by name."""
    candidates = []
    for pod in sorted(pods, key=lambda p: p.metadata.name):
        reasons = failing_reasons(pod_observation(pod))
        if reasons or not only_failing:
            candidates.append((pod, ", ".join(reasons) or "healthy (onlyFailing is false)"))
    candidates.sort(key=lambda c: c[1].startswith("healthy"))
    if limit is None:
        return candidates, []
    return candidates[:limit], [p.metadata.name for p, _ in candidates[limit:]]


# ---------------------------------------------------------------- record and delete


def recorded_uids(annotations: dict[str, str] | None, key: str) -> list[str]:
    try:
        recorded = json.loads((annotations or {}).get(DELETED_PODS_ANNOTATION) or "{}")
    except ValueError:
        return []
    uids = recorded.get(key) if isinstance(recorded, dict) else None
    return [u for u in uids if isinstance(u, str)] if isinstance(uids, list) else []


def record_choice(
    api: client.ApiClient, req: ActionRequest, owner_kind: str, owner: Any, uids: list[str]
) -> None:
    """Write the key and the chosen UIDs on the owner before deleting anything (409 -> re-decide)."""
    annotations = owner.metadata.annotations or {}
    keys = keys_with(annotations, req.key)
    live = set(keys.split(","))
    try:
        previous = json.loads(annotations.get(DELETED_PODS_ANNOTATION) or "{}")
    except ValueError:
        previous = {}
    choices = {k: v for k, v in previous.items() if k in live} if isinstance(previous, dict) else {}
    choices[req.key] = uids
    body = {
        "metadata": {
            "resourceVersion": owner.metadata.resource_version,
            "annotations": {
                KEYS_ANNOTATION: keys,
                DELETED_PODS_ANNOTATION: json.dumps(choices, separators=(",", ":")),
            },
        }
    }
    patch_object(
        api,
        owner_kind,
        owner.metadata.name,
        owner.metadata.namespace,
        body,
        dry_run=req.dry_run,
        content_type=MERGE_PATCH,
    )


def delete_pods(api: client.ApiClient, pods: list[Any], dry_run: bool) -> dict[str, str]:
    """Delete each pod if it is still the same pod (UID); name -> deleted | gone | replaced."""
    core = client.CoreV1Api(api)
    outcomes = {}
    for pod in pods:
        # with a body the apiserver reads DeleteOptions from it and ignores the query: dryRun goes in it
        options = client.V1DeleteOptions(
            preconditions=client.V1Preconditions(uid=pod.metadata.uid), dry_run=["All"] if dry_run else None
        )
        try:
            call(core.delete_namespaced_pod, pod.metadata.name, pod.metadata.namespace, body=options)
            outcomes[pod.metadata.name] = "would be deleted" if dry_run else "deleted"
        except Conflict:
            outcomes[pod.metadata.name] = "replaced by a new pod; left alone"
        except ActionError as e:
            if e.status != 404:
                raise
            outcomes[pod.metadata.name] = "already gone"
    return outcomes


def replay(api: client.ApiClient, req: ActionRequest, pods: list[Any], uids: list[str]) -> ActionResult:
    still_there = [p for p in pods if p.metadata.uid in set(uids)]
    outcomes = delete_pods(api, still_there, req.dry_run)
    finished = f"; finished deleting {', '.join(outcomes)}" if outcomes else ""
    return ActionResult(
        done=True,
        replayed=True,
        message=f"deletePod under key {req.key} already decided ({len(uids)} pod(s)){finished}",
        evidence=[
            evidence("action", f"key {req.key} is recorded on the owner of {describe(req.target)}", req.key)
        ],
        changes={
            f"pod[{name}]": {"before": "present", "after": outcome} for name, outcome in outcomes.items()
        },
    )


def result(
    req: ActionRequest,
    chosen: list[tuple[Any, str]],
    outcomes: dict[str, str],
    left_out: list[str],
    owner_kind: str,
    owner_name: str,
) -> ActionResult:
    why = {p.metadata.name: reason for p, reason in chosen}
    verb = "would delete" if req.dry_run else "deleted"
    names = ", ".join(f"{name} ({why[name]})" for name in outcomes) or "no pod"
    capped = (
        f"; {len(left_out)} more left by the cap of {req.max_pods}: {', '.join(left_out)}" if left_out else ""
    )
    nothing = " (no failing pods)" if not chosen else ""
    return ActionResult(
        done=True,
        replayed=False,
        message=f"{verb} {names} of {describe(req.target)}{nothing}{capped}",
        evidence=[evidence("pod", f"{name}: {outcome}", why[name]) for name, outcome in outcomes.items()]
        + [
            evidence(
                "action", f"key {req.key} and chosen pod UIDs recorded on {owner_kind} {owner_name}", req.key
            )
        ],
        changes={
            f"pod[{name}]": {"before": why[name], "after": outcome} for name, outcome in outcomes.items()
        },
    )
