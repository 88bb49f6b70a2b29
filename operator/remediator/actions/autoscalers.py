"""The autoscalers a workload has, and the writes of a lease on them (core/plan/autoscalers.py decides).

Read only when the step is scale or raiseMemory (one namespaced LIST per kind), never on the plan path of other
steps. A kind whose CRD is not installed (KEDA, VPA) is simply absent. HPAs, ScaledObjects and VPAs are read
and written as plain JSON through the custom-objects client (the same paths serve built-in groups)."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from remediator.actions.base import KEYS_ANNOTATION, ActionError, flatten, keys_with
from remediator.actions.kube import MERGE_PATCH, call, dry_run_arg
from remediator.api.models import ObjectRef
from remediator.core.plan import autoscalers as plan

KINDS = {
    "HorizontalPodAutoscaler": ("autoscaling", "v2", "horizontalpodautoscalers"),
    "ScaledObject": ("keda.sh", "v1alpha1", "scaledobjects"),
    "VerticalPodAutoscaler": ("autoscaling.k8s.io", "v1", "verticalpodautoscalers"),
}


def listed(api: client.ApiClient, kind: str, namespace: str | None, label_selector: str = "") -> list[dict]:
    """The kind's objects in `namespace` (None: every namespace); [] when the kind is not served here."""
    group, version, plural = KINDS[kind]
    custom = client.CustomObjectsApi(api)
    try:
        if namespace is None:
            found = call(custom.list_cluster_custom_object, group, version, plural, label_selector=label_selector)
        else:
            found = call(custom.list_namespaced_custom_object, group, version, namespace, plural,
                         label_selector=label_selector)
    except ActionError as e:
        if e.status == 404:  # the CRD is not installed: nothing of that kind can target anything
            return []
        raise
    return found.get("items") or []


def targets(obj: dict, target: ObjectRef, ref_field: str) -> bool:
    ref = (obj.get("spec") or {}).get(ref_field) or {}
    return ref.get("name") == target.name and ref.get("kind", "Deployment") == target.kind


def owned_by_scaled_object(obj: dict) -> bool:
    return any(o.get("kind") == "ScaledObject" for o in (obj.get("metadata") or {}).get("ownerReferences") or [])


def view(obj: dict) -> plan.Autoscaler:
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    annotations = dict(meta.get("annotations") or {})
    if obj.get("kind") == "ScaledObject":
        return plan.Autoscaler("ScaledObject", meta["name"], {plan.PAUSED_REPLICAS: annotations.get(
            plan.PAUSED_REPLICAS)}, spec.get("maxReplicaCount"), annotations)
    return plan.Autoscaler("HorizontalPodAutoscaler", meta["name"],
                           {"minReplicas": spec.get("minReplicas", 1), "maxReplicas": spec.get("maxReplicas")},
                           spec.get("maxReplicas"), annotations)


def autoscalers_of(api: client.ApiClient, target: ObjectRef) -> tuple[list[dict], list[dict]]:
    """(HPAs, ScaledObjects) that scale `target`; KEDA's own HPA is left to its ScaledObject."""
    hpas = [h for h in listed(api, "HorizontalPodAutoscaler", target.namespace)
            if targets(h, target, "scaleTargetRef") and not owned_by_scaled_object(h)]
    scaled = [s for s in listed(api, "ScaledObject", target.namespace) if targets(s, target, "scaleTargetRef")]
    for obj, kind in [(h, "HorizontalPodAutoscaler") for h in hpas] + [(s, "ScaledObject") for s in scaled]:
        obj.setdefault("kind", kind)
    return hpas, scaled


def vpas_of(api: client.ApiClient, target: ObjectRef) -> list[plan.Vpa]:
    return [plan.Vpa(v["metadata"]["name"], ((v.get("spec") or {}).get("updatePolicy") or {}).get("updateMode", "Auto"),
                     ((v.get("spec") or {}).get("resourcePolicy") or {}).get("containerPolicies") or [])
            for v in listed(api, "VerticalPodAutoscaler", target.namespace) if targets(v, target, "targetRef")]


def lease_patch(obj: dict, values: dict[str, Any] | None, annotations: dict[str, str | None],
                key: str | None = None) -> dict:
    """One merge patch: the values, the lease annotations (None removes one), the label the sweep selects by,
    our key; guarded by the resourceVersion read."""
    meta = obj["metadata"]
    leased = annotations.get(plan.LEASE_REMEDIATION) is not None
    body: dict[str, Any] = {"metadata": {
        "resourceVersion": meta["resourceVersion"],
        "labels": {plan.LEASE_LABEL: "held" if leased else None},
        "annotations": {**annotations, **({KEYS_ANNOTATION: keys_with(meta.get("annotations"), key)} if key else {})},
    }}
    if values:
        if obj.get("kind") == "ScaledObject":
            body["metadata"]["annotations"].update(values)  # paused-replicas is an annotation; None removes it
        else:
            body["spec"] = values
    return body


def patch(api: client.ApiClient, obj: dict, body: dict, dry_run: bool = False) -> dict:
    group, version, plural = KINDS[obj["kind"]]
    meta = obj["metadata"]
    return call(client.CustomObjectsApi(api).patch_namespaced_custom_object, group, version, meta["namespace"],
                plural, meta["name"], body, dry_run=dry_run_arg(dry_run), _content_type=MERGE_PATCH)


def changes_of(obj: dict, before: dict, after: dict) -> dict[str, Any]:
    """What a lease write changes, as `Kind/name field: before -> after` (the lease bookkeeping left out)."""
    def watched(o: dict) -> dict:
        annotations = (o.get("metadata") or {}).get("annotations") or {}
        return {"spec": {k: (o.get("spec") or {}).get(k) for k in ("minReplicas", "maxReplicas")},
                "pausedReplicas": annotations.get(plan.PAUSED_REPLICAS)}  # not under annotations[: shown, not digested
    old, new = flatten(watched(before)), flatten(watched(after))
    prefix = f"{obj['kind']}/{obj['metadata']['name']} "
    return {prefix + path: {"before": old.get(path), "after": new.get(path)}
            for path in sorted(old.keys() | new.keys()) if old.get(path) != new.get(path)}
