"""rollback of an Argo Rollout (argoproj.io/v1alpha1): `kubectl argo rollouts abort` then `undo`.

abort: a merge patch `{"status": {"abort": true}}` on the status subresource, as
the plugin sends it: the Rollouts controller sends traffic back to the stable
ReplicaSet and scales the canary down at once. The Rollout's spec still holds
the bad template, so:

undo: among the ReplicaSets owned by the Rollout (controller reference, as the
plugin lists them), take the newest earlier revision (`rollout.argoproj.io/revision`)
whose template really differs, and copy its template, without the
`rollouts-pod-template-hash` label, into the Rollout. That write is the same
keyed JSON patch as a Deployment's rollback (resourceVersion, template, our key),
so a replay after a crash finds the key and does nothing; an abort repeated
before it is harmless (it sets a flag that is already set). The controller
clears `status.abort` itself once the template changes.

The Rollouts controller is not part of this project's test cluster: the tests
play its part by writing the Rollout's status.
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
)
from remediator.actions.kube import JSON_PATCH, MERGE_PATCH, call, dry_run_arg, label_selector_text
from remediator.actions.rollback import RESTARTED_AT
from remediator.core.revisions import revision_number

GROUP, VERSION, PLURAL = "argoproj.io", "v1alpha1", "rollouts"
REVISION = "rollout.argoproj.io/revision"
HASH_LABEL = "rollouts-pod-template-hash"


def read_rollout(api: client.ApiClient, namespace: str, name: str) -> dict:
    return call(client.CustomObjectsApi(api).get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name)


def abort_and_undo_once(api: client.ApiClient, req: ActionRequest) -> ActionResult:
    namespace, name = req.target.namespace or "", req.target.name
    rollout = read_rollout(api, namespace, name)
    meta = rollout["metadata"]
    if is_recorded(meta.get("annotations"), req.key):
        return replayed(req, "rollback")
    if (rollout.get("spec") or {}).get("workloadRef"):
        raise ActionError("WorkloadRef", f"{describe(req.target)} takes its template from spec.workloadRef: "
                                         "rolling it back means changing that workload, which is not done here")
    revision, previous = previous_replica_set(api, rollout)
    template = without_hash(previous["spec"]["template"])
    objects = client.CustomObjectsApi(api)
    aborted = call(objects.patch_namespaced_custom_object_status, GROUP, VERSION, namespace, PLURAL, name,
                   {"status": {"abort": True}}, dry_run=dry_run_arg(req.dry_run), _content_type=MERGE_PATCH)
    version = aborted["metadata"]["resourceVersion"] if not req.dry_run else meta["resourceVersion"]
    annotations = {**(meta.get("annotations") or {}), KEYS_ANNOTATION: keys_with(meta.get("annotations"), req.key)}
    patch = [
        {"op": "replace", "path": "/metadata/resourceVersion", "value": version},
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "add", "path": "/metadata/annotations", "value": annotations},
    ]
    after = call(objects.patch_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name, patch,
                 dry_run=dry_run_arg(req.dry_run), _content_type=JSON_PATCH)
    verb = "would abort and roll back" if req.dry_run else "aborted and rolled back"
    rs_name = previous["metadata"]["name"]
    return ActionResult(
        done=True,
        replayed=False,
        message=f"{verb} {describe(req.target)} to revision {revision} (ReplicaSet {rs_name})",
        evidence=[evidence("rollback", f"status.abort set; template of ReplicaSet {rs_name} restored",
                           str(revision))],
        changes=changes_between(rollout, after),
    )


def previous_replica_set(api: client.ApiClient, rollout: dict) -> tuple[int, dict]:
    """(revision, ReplicaSet) the plugin's undo would restore: the newest earlier revision whose template
    differs from the newest one (restart stamps aside)."""
    meta = rollout["metadata"]
    selector = label_selector_text((rollout.get("spec") or {}).get("selector") or {})
    listed = call(client.AppsV1Api(api).list_namespaced_replica_set, meta["namespace"],
                  label_selector=selector).items if selector else []
    owned = []
    for rs in listed:
        revision = revision_number((rs.metadata.annotations or {}).get(REVISION))
        if revision is not None and any(o.controller and o.uid == meta["uid"]
                                        for o in rs.metadata.owner_references or []):
            owned.append((revision, api.sanitize_for_serialization(rs)))
    owned.sort(key=lambda pair: pair[0], reverse=True)
    if len(owned) < 2:
        raise ActionError("NoPreviousRevision", f"no revision found for rollout {meta['name']!r}: "
                                                f"{len(owned)} ReplicaSet(s), nothing to roll back to")
    newest = comparable(owned[0][1]["spec"]["template"])
    for revision, rs in owned[1:]:
        if comparable(rs["spec"]["template"]) != newest:
            return revision, rs
    raise ActionError("NoPreviousRevision", f"every earlier revision of rollout {meta['name']!r} runs the same "
                                            "pod template: nothing to roll back to")


def without_hash(template: dict) -> dict:
    labels = {k: v for k, v in ((template.get("metadata") or {}).get("labels") or {}).items() if k != HASH_LABEL}
    return {**template, "metadata": {**(template.get("metadata") or {}), "labels": labels}}


def comparable(template: dict) -> Any:
    template = without_hash(template)
    annotations = {k: v for k, v in (template["metadata"].get("annotations") or {}).items() if k != RESTARTED_AT}
    return {**template, "metadata": {**template["metadata"], "annotations": annotations}}
