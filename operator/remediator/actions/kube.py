"""How actions talk to the apiserver.

One rule for every call, the operator's one retry policy (`remediator.kube`):
transient faults (5xx, connection errors, timeouts) are retried a few times
with jittered backoff; everything else is the
apiserver's answer and is not retried blindly. A 409 becomes `Conflict` (the
caller re-reads and re-decides); 403/404/422… become `ActionError` carrying the
apiserver's status and its own message. Retrying a write is safe because every
write is either guarded by `resourceVersion` (a repeat meets 409 and the re-read
finds our key) or by a pod UID precondition (a repeat meets 404/409).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from remediator.actions.base import ActionError, Conflict
from remediator.api.models import ObjectRef
from remediator.kube import ATTEMPTS, call_retrying, request_json

T = TypeVar("T")

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"


def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call one client method; transient faults retried, refusals turned into ActionError."""
    try:
        return call_retrying(fn, *args, **kwargs)
    except ApiException as e:
        raise refusal(e) from e
    except (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError) as e:
        raise ActionError(
            "Unavailable", f"the apiserver did not answer after {ATTEMPTS} attempts: {e}", retryable=True
        ) from e


def refusal(e: ApiException) -> ActionError:
    """The apiserver's answer as an ActionError, with its status and its own message."""
    status, reason, message = e.status, e.reason or "Error", str(e.reason or e)
    try:
        body = json.loads(e.body or "")
        reason, message = body.get("reason") or reason, body.get("message") or message
    except (TypeError, ValueError):
        pass
    if status == 409:
        return Conflict(message)
    retryable = status is not None and (status >= 500 or status == 429)
    return ActionError(reason, message, status=status, retryable=retryable)


def dry_run_arg(dry_run: bool) -> str | None:
    """The apiserver's server-side dry run: every admission and validation stage, nothing persisted."""
    return "All" if dry_run else None


def as_dict(api: client.ApiClient, obj: Any) -> dict:
    """A client model as the apiserver's JSON (camelCase keys)."""
    return api.sanitize_for_serialization(obj)


# ---------------------------------------------------------------- workloads


def _snake(kind: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", kind).lower()


def read_workload(api: client.ApiClient, ref: ObjectRef) -> Any:
    return read_object(api, ref.kind, ref.name, ref.namespace)


def patch_workload(
    api: client.ApiClient,
    ref: ObjectRef,
    body: Any,
    dry_run: bool = False,
    content_type: str = STRATEGIC_PATCH,
) -> Any:
    return patch_object(api, ref.kind, ref.name, ref.namespace, body, dry_run, content_type)


def read_object(api: client.ApiClient, kind: str, name: str, namespace: str | None) -> Any:
    """Read a Pod, Node, or apps/v1 object (Deployment, ReplicaSet, StatefulSet, DaemonSet)."""
    group, scope = _client_for(api, kind)
    if scope == "cluster":
        return call(getattr(group, f"read_{_snake(kind)}"), name)
    return call(getattr(group, f"read_namespaced_{_snake(kind)}"), name, namespace)


def patch_object(
    api: client.ApiClient,
    kind: str,
    name: str,
    namespace: str | None,
    body: Any,
    dry_run: bool = False,
    content_type: str = STRATEGIC_PATCH,
) -> Any:
    group, scope = _client_for(api, kind)
    options = {"dry_run": dry_run_arg(dry_run), "_content_type": content_type}
    if scope == "cluster":
        return call(getattr(group, f"patch_{_snake(kind)}"), name, body, **options)
    return call(getattr(group, f"patch_namespaced_{_snake(kind)}"), name, namespace, body, **options)


# The JSON twins of read_object / patch_object, for the incident's hot path (the restart and its dry run, the
# guards' read of the target): the client's models cost more CPU to build and to turn back into JSON than the
# call itself, and what is read is only looked up or diffed.
APPS_PLURALS = {"Deployment": "deployments", "StatefulSet": "statefulsets", "DaemonSet": "daemonsets",
                "ReplicaSet": "replicasets"}


def rest_path(kind: str, name: str, namespace: str | None) -> str:
    """The REST path of a Pod, Node, or apps/v1 object."""
    if kind == "Node":
        return f"/api/v1/nodes/{quote(name, safe='')}"
    ns = quote(namespace or "", safe="")
    if kind == "Pod":
        return f"/api/v1/namespaces/{ns}/pods/{quote(name, safe='')}"
    return f"/apis/apps/v1/namespaces/{ns}/{APPS_PLURALS[kind]}/{quote(name, safe='')}"


def read_object_json(api: client.ApiClient, kind: str, name: str, namespace: str | None) -> dict:
    """`read_object`, as the apiserver's JSON."""
    return call(request_json, api, "GET", rest_path(kind, name, namespace))


def patch_object_json(
    api: client.ApiClient,
    kind: str,
    name: str,
    namespace: str | None,
    body: Any,
    dry_run: bool = False,
    content_type: str = STRATEGIC_PATCH,
) -> dict:
    """`patch_object`, as the apiserver's JSON."""
    query = [("dryRun", "All")] if dry_run else []
    return call(request_json, api, "PATCH", rest_path(kind, name, namespace), body, query, content_type)


def pods_of_json(api: client.ApiClient, workload: dict) -> list[dict]:
    """`pods_of` a workload given as JSON, as JSON."""
    selector = label_selector_text((workload.get("spec") or {}).get("selector") or {})
    if not selector:
        return []  # an empty selector would select every pod in the namespace
    namespace = quote(workload["metadata"]["namespace"], safe="")
    listed = call(request_json, api, "GET", f"/api/v1/namespaces/{namespace}/pods", None,
                  [("labelSelector", selector)])
    return [p for p in listed.get("items") or [] if not (p.get("metadata") or {}).get("deletionTimestamp")]


def _client_for(api: client.ApiClient, kind: str) -> tuple[Any, str]:
    if kind == "Node":
        return client.CoreV1Api(api), "cluster"
    if kind == "Pod":
        return client.CoreV1Api(api), "namespaced"
    return client.AppsV1Api(api), "namespaced"


def selector_text(selector: Any) -> str:
    """A LabelSelector (model) as the label_selector query string."""
    if selector is None:
        return ""
    return label_selector_text(_serializer().sanitize_for_serialization(selector))


@functools.cache
def _serializer() -> client.ApiClient:
    return client.ApiClient()


def label_selector_text(selector: dict) -> str:
    """A LabelSelector as JSON (matchLabels, matchExpressions) as the label_selector query string."""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for req in selector.get("matchExpressions") or []:
        values = ",".join(req.get("values") or [])
        parts.append(
            {
                "In": f"{req['key']} in ({values})",
                "NotIn": f"{req['key']} notin ({values})",
                "Exists": req["key"],
                "DoesNotExist": f"!{req['key']}",
            }[req["operator"]]
        )
    return ",".join(parts)


def pods_of(api: client.ApiClient, workload: Any) -> list[Any]:
    """The pods a workload's selector selects, not the ones already being deleted."""
    core = client.CoreV1Api(api)
    selector = selector_text(workload.spec.selector)
    if not selector:
        return []  # an empty selector would select every pod in the namespace
    pods = call(core.list_namespaced_pod, workload.metadata.namespace, label_selector=selector).items
    return [p for p in pods if p.metadata.deletion_timestamp is None]
