"""rollback: what `kubectl rollout undo` does, for Deployments, StatefulSets, DaemonSets and Argo Rollouts.

As kubectl (k8s.io/kubectl/pkg/polymorphichelpers/rollback.go) does it: among
the Deployment's own ReplicaSets, take the one with the highest revision below
the newest; copy its pod template, without the `pod-template-hash` label, into
the Deployment, and its annotations (except revision bookkeeping) onto the
Deployment. The deployment controller then re-selects that ReplicaSet under a
new revision number. One JSON patch carries the template, the annotations, our
key and the resourceVersion we decided on.

StatefulSets and DaemonSets keep their history in ControllerRevisions (owned by
controller reference, `revision` numbered, `data` = the strategic patch
`{"spec": {"template": {..., "$patch": "replace"}}}` kubectl applies). We take
the previous revision's template from that data and send it in the same keyed
JSON patch as for a Deployment, so the key scheme (and a replay after a crash)
is the same for every kind. Their controller then re-uses that
ControllerRevision under a new revision number, as after `kubectl rollout undo`.
Argo Rollouts: `actions/argo_rollout.py`.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from kubernetes import client

from remediator.actions.base import (
    BOOKKEEPING_ANNOTATIONS,
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
from remediator.core.revisions import revision_number
from remediator.actions.delete_pod import delete_pods
from remediator.actions.kube import (
    JSON_PATCH,
    as_dict,
    call,
    patch_workload,
    pods_of,
    read_workload,
    selector_text,
)

REVISION_KINDS = ("StatefulSet", "DaemonSet")  # history in ControllerRevisions
REVISION_HASH = "controller-revision-hash"  # the pod label naming its ControllerRevision

REVISION = "deployment.kubernetes.io/revision"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
POD_TEMPLATE_HASH = "pod-template-hash"
# Annotations kubectl keeps from the Deployment instead of copying from the ReplicaSet.
ANNOTATIONS_TO_SKIP = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION,
        "deployment.kubernetes.io/revision-history",
        "deployment.kubernetes.io/desired-replicas",
        "deployment.kubernetes.io/max-replicas",
        "deprecated.deployment.rollback.to",
    }
)


def run(api: client.ApiClient, req: ActionRequest) -> ActionResult:
    require_kind(req, ("Deployment", *REVISION_KINDS, "Rollout"))
    if req.target.kind == "Rollout":
        from remediator.actions import argo_rollout  # it imports this module's template helpers

        return reread_on_conflict(lambda: argo_rollout.abort_and_undo_once(api, req))
    if req.target.kind in REVISION_KINDS:
        return reread_on_conflict(lambda: rollback_revision_once(api, req))
    return reread_on_conflict(lambda: rollback_once(api, req))


def rollback_once(api: client.ApiClient, req: ActionRequest) -> ActionResult:
    deployment = read_workload(api, req.target)
    if is_recorded(deployment.metadata.annotations, req.key):
        return replayed(req, "rollback")
    if deployment.spec.paused:
        raise ActionError(
            "Paused",
            f"you cannot rollback a paused deployment; resume it first with "
            f"'kubectl rollout resume' and try again ({describe(req.target)})",
        )
    current = as_dict(api, deployment)
    revision, previous = previous_replica_set(api, deployment)
    template = template_without_hash(previous["spec"]["template"])
    if template == template_without_hash(current["spec"]["template"]):
        return already_at(req, revision)
    annotations = rollback_annotations(
        current["metadata"].get("annotations") or {}, previous["metadata"].get("annotations") or {}
    )
    after = patch_template(api, req, deployment, template, annotations)
    verb = "would roll back" if req.dry_run else "rolled back"
    rs_name = previous["metadata"]["name"]
    return ActionResult(
        done=True,
        replayed=False,
        message=f"{verb} {describe(req.target)} to revision {revision} (ReplicaSet {rs_name})",
        evidence=[evidence("rollback", f"{verb} to the template of ReplicaSet {rs_name}", str(revision))],
        changes=changes_between(current, as_dict(api, after)),
    )


def already_at(req: ActionRequest, revision: int) -> ActionResult:
    return ActionResult(
        done=True,
        replayed=False,
        message=f"{describe(req.target)} not rolled back: the current template already matches revision {revision}",
        evidence=[evidence("rollback", "template already matches the previous revision", str(revision))],
    )


def patch_template(api: client.ApiClient, req: ActionRequest, workload: Any, template: dict,
                   annotations: dict[str, str]) -> Any:
    """The rollback's one write: the old template and the step's key together, guarded by the resourceVersion
    the decision read, so a replay finds the key and a concurrent change is a 409 to re-read."""
    annotations = {**annotations, KEYS_ANNOTATION: keys_with(workload.metadata.annotations, req.key)}
    patch = [
        {"op": "replace", "path": "/metadata/resourceVersion", "value": workload.metadata.resource_version},
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "add", "path": "/metadata/annotations", "value": annotations},
    ]
    return patch_workload(api, req.target, patch, dry_run=req.dry_run, content_type=JSON_PATCH)


def previous_replica_set(api: client.ApiClient, deployment: Any) -> tuple[int, dict]:
    """(revision, ReplicaSet as JSON) of the newest earlier revision that really differs from the current one.

    Unlike plain `kubectl rollout undo`, revisions that differ from the newest
    only by a restart stamp are passed over: after a restart of a bad rollout,
    "previous" must mean the last good template, not the same bad one.
    """
    by_revision = sorted(owned_revisions(api, deployment), key=lambda pair: pair[0], reverse=True)
    if len(by_revision) < 2:
        raise ActionError(
            "NoPreviousRevision",
            f"no rollout history found for deployment {deployment.metadata.name!r}: "
            f"{len(by_revision)} revision(s), nothing to roll back to",
        )
    current = comparable_template(by_revision[0][1])
    for revision, replica_set in by_revision[1:]:
        if comparable_template(replica_set) != current:
            return revision, replica_set
    raise ActionError(
        "NoPreviousRevision",
        f"every earlier revision of deployment {deployment.metadata.name!r} runs the same pod template "
        "(they differ only by restarts): nothing to roll back to",
    )


def comparable_template(replica_set: dict) -> dict:
    template = template_without_hash(replica_set["spec"]["template"])
    meta = template.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    annotations.pop(RESTARTED_AT, None)
    if not annotations:
        meta.pop("annotations", None)  # "no annotations" and "only a restart stamp" are the same template
    return template


def owned_revisions(api: client.ApiClient, deployment: Any) -> list[tuple[int, dict]]:
    """The Deployment's ReplicaSets (by controller reference, as kubectl) that carry a revision."""
    apps = client.AppsV1Api(api)
    listed = call(
        apps.list_namespaced_replica_set,
        deployment.metadata.namespace,
        label_selector=selector_text(deployment.spec.selector),
    ).items
    owned = []
    for rs in listed:
        controller = next((o for o in rs.metadata.owner_references or [] if o.controller), None)
        revision = revision_number((rs.metadata.annotations or {}).get(REVISION))
        if controller and controller.uid == deployment.metadata.uid and revision is not None:
            owned.append((revision, as_dict(api, rs)))
    return owned


def template_without_hash(template: dict) -> dict:
    template = copy.deepcopy(template)
    labels = (template.get("metadata") or {}).get("labels") or {}
    labels.pop(POD_TEMPLATE_HASH, None)
    return template


def rollback_annotations(deployment: dict[str, str], replica_set: dict[str, str]) -> dict[str, str]:
    """kubectl's merge: the Deployment's bookkeeping annotations, everything else from the ReplicaSet.

    Ours count as bookkeeping too: the deployment controller copies them onto
    ReplicaSets, and an old copy must not bring back an old list of keys.
    """
    skip = ANNOTATIONS_TO_SKIP | BOOKKEEPING_ANNOTATIONS
    kept = {k: v for k, v in deployment.items() if k in skip}
    return kept | {k: v for k, v in replica_set.items() if k not in skip}


# ---------------------------------------------------------------- StatefulSets and DaemonSets


def rollback_revision_once(api: client.ApiClient, req: ActionRequest) -> ActionResult:
    workload = read_workload(api, req.target)
    if is_recorded(workload.metadata.annotations, req.key):
        done = replayed(req, "rollback")
        deleted = unstick(api, req, workload)
        return dataclasses.replace(done, message=done.message + deleted) if deleted else done
    current = as_dict(api, workload)
    revision, previous = previous_controller_revision(api, req.target.kind, workload)
    template = revision_template(previous)
    if template == pruned(current["spec"]["template"]):
        return already_at(req, revision)
    annotations = dict(current["metadata"].get("annotations") or {})
    after = patch_template(api, req, workload, template, annotations)
    verb = "would roll back" if req.dry_run else "rolled back"
    name = previous["metadata"]["name"]
    note = on_delete_note(req.target.kind, workload) + unstick(api, req, after)
    return ActionResult(
        done=True,
        replayed=False,
        message=f"{verb} {describe(req.target)} to revision {revision} (ControllerRevision {name}){note}",
        evidence=[evidence("rollback", f"{verb} to the template of ControllerRevision {name}{note}", str(revision))],
        changes=changes_between(current, as_dict(api, after)),
    )


def unstick(api: client.ApiClient, req: ActionRequest, workload: Any) -> str:
    """The StatefulSet "forced rollback" (Kubernetes docs, StatefulSet rolling updates): with the template
    reverted, an OrderedReady rollout still waits forever on a pod of the bad revision that never became
    Ready, so such pods are deleted (by UID) and come back at the restored revision. Also run on a replay: a
    crash between the keyed patch and these deletes must not leave the rollout stuck. OnDelete: left alone."""
    strategy = workload.spec.update_strategy
    if req.target.kind != "StatefulSet" or (strategy is not None and strategy.type == "OnDelete"):
        return ""
    if req.dry_run:  # planning runs dry, maybe every tick: no pod and history reads for it
        return "; then delete the bad revision's pods that never became Ready (a forced rollback)"
    template = pruned(as_dict(api, workload)["spec"]["template"])
    restored = {cr["metadata"]["name"] for _, cr in owned_controller_revisions(api, workload)
                if revision_template(cr) == template}
    if not restored:
        return ""
    stuck = [p for p in pods_of(api, workload)
             if (p.metadata.labels or {}).get(REVISION_HASH) not in restored and not pod_ready(p)
             and any(o.controller and o.uid == workload.metadata.uid for o in p.metadata.owner_references or [])]
    outcomes = delete_pods(api, stuck, req.dry_run)
    return f"; pods of the bad revision that never became Ready: {outcomes}" if outcomes else ""


def pod_ready(pod: Any) -> bool:
    return pod.status is not None and any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def on_delete_note(kind: str, workload: Any) -> str:
    strategy = workload.spec.update_strategy
    if strategy is not None and strategy.type == "OnDelete":
        return (f"; its updateStrategy is OnDelete: the {kind} controller replaces a pod only when it is "
                "deleted, so running pods keep the old template until then")
    return ""


def previous_controller_revision(api: client.ApiClient, kind: str, workload: Any) -> tuple[int, dict]:
    """(revision, ControllerRevision as JSON) of the newest earlier revision whose template really differs
    from the current one (restart stamps aside, as for Deployments)."""
    by_revision = sorted(owned_controller_revisions(api, workload), key=lambda pair: pair[0], reverse=True)
    name = workload.metadata.name
    if len(by_revision) < 2:
        raise ActionError(
            "NoPreviousRevision",
            f"no rollout history found for {kind.lower()} {name!r}: {len(by_revision)} ControllerRevision(s), "
            "nothing to roll back to",
        )
    current = comparable_template({"spec": {"template": revision_template(by_revision[0][1])}})
    for revision, history in by_revision[1:]:
        if comparable_template({"spec": {"template": revision_template(history)}}) != current:
            return revision, history
    raise ActionError(
        "NoPreviousRevision",
        f"every earlier revision of {kind.lower()} {name!r} runs the same pod template "
        "(they differ only by restarts): nothing to roll back to",
    )


def owned_controller_revisions(api: client.ApiClient, workload: Any) -> list[tuple[int, dict]]:
    """The workload's ControllerRevisions, by controller reference (as kubectl's controlledHistory)."""
    listed = call(
        client.AppsV1Api(api).list_namespaced_controller_revision,
        workload.metadata.namespace,
        label_selector=selector_text(workload.spec.selector),
    ).items
    return [(int(cr.revision), as_dict(api, cr)) for cr in listed
            if any(o.controller and o.uid == workload.metadata.uid for o in cr.metadata.owner_references or [])]


def revision_template(history: dict) -> dict:
    """The pod template a ControllerRevision holds, without the strategic-merge directive."""
    template = pruned(((history.get("data") or {}).get("spec") or {}).get("template") or {})
    template.pop("$patch", None)
    return template


def pruned(value: Any) -> Any:
    """JSON without nulls: the controller writes `creationTimestamp: null` in templates, the client drops it."""
    if isinstance(value, dict):
        return {k: pruned(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [pruned(v) for v in value]
    return value
