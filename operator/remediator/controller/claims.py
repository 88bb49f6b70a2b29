"""The per-target claim's edge: read the target's Lease, let core.claims decide, write it with the
resourceVersion read (the apiserver arbitrates two Remediations racing for one target), release it."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from datetime import datetime, timedelta
from urllib.parse import quote

from kubernetes import client
from kubernetes.client.rest import ApiException

from ..actions.base import CLUSTER_SCOPED_KINDS
from ..api.models import TERMINAL_PHASES, ObjectRef
from ..core.plan import claims
from ..kube import Resources, request_json, retry_transient

log = logging.getLogger("remediator.claims")
ATTEMPTS = 3  # a 409 means another writer got there first: re-read and decide again
WRITTEN_REMEMBERED = 4096  # Leases this process wrote last, so a release needs no read (bounded: oldest forgotten)


class WrittenLeases:
    """(namespace, lease) -> (holder uid, resourceVersion) as this process last wrote it. A release deletes on
    that version without reading the Lease first: a Lease written since (a renewal elsewhere, a takeover) answers
    409, and the release reads it as it would without this memory (as after a restart)."""

    def __init__(self, size: int = WRITTEN_REMEMBERED) -> None:
        self._lock = threading.Lock()
        self._by_lease: OrderedDict[tuple[str, str], tuple[str, str]] = OrderedDict()
        self._size = size

    def wrote(self, namespace: str, lease: str, holder: str, resource_version: str | None) -> None:
        with self._lock:
            self._by_lease.pop((namespace, lease), None)
            if resource_version:
                self._by_lease[(namespace, lease)] = (holder, resource_version)
                while len(self._by_lease) > self._size:
                    self._by_lease.popitem(last=False)

    def version_held_by(self, namespace: str, lease: str, holder: str) -> str | None:
        with self._lock:
            held, version = self._by_lease.get((namespace, lease), ("", ""))
        return version if held and held == holder else None

    def forget(self, namespace: str, lease: str, holder: str) -> None:
        """Forget the Lease if `holder` holds it as remembered (another holder's write stays remembered)."""
        with self._lock:
            if self._by_lease.get((namespace, lease), ("", ""))[0] == holder:
                del self._by_lease[(namespace, lease)]


WRITTEN = WrittenLeases()


def target_text(target: ObjectRef) -> str:
    return f"{target.kind}/{target.name}"


def lease_namespace(target: ObjectRef, remediation_namespace: str, cluster_namespace: str) -> str:
    """A namespaced target's own namespace; a cluster-scoped one's (a Node) is one for the whole cluster."""
    if target.kind in CLUSTER_SCOPED_KINDS:
        return cluster_namespace
    return target.namespace or remediation_namespace


def take(api: client.ApiClient, target: ObjectRef, remediation_namespace: str, uid: str, name: str,
         step_timeout: timedelta, now: datetime, cluster_namespace: str = "default") -> claims.ClaimDecision:
    """Claim `target` for Remediation `name` (uid), or say who holds it."""
    namespace = lease_namespace(target, remediation_namespace, cluster_namespace)
    lease = claims.lease_name(target.kind, target.name)
    try:
        return claim(api, target, namespace, lease, uid, name, step_timeout, now, remediation_namespace)
    except ApiException as e:
        if e.status != 403:
            raise
        return claims.ClaimDecision("held", f"the operator may not claim {target_text(target)}: Leases in "
                                            f"{namespace} are forbidden to it (chart RBAC)", lease, namespace,
                                    "", "", now, now)


def claim(api: client.ApiClient, target: ObjectRef, namespace: str, lease: str, uid: str, name: str,
          step_timeout: timedelta, now: datetime, holder_namespace: str | None = None) -> claims.ClaimDecision:
    what = target_text(target)
    decision = None
    for attempt in range(ATTEMPTS + 1):
        # Most targets have no Lease: try creating one before reading (an existing one answers 409, then read).
        body = read_lease(api, namespace, lease) if attempt else None
        view = claims.lease_view(body)
        live = view is not None and view.holder != uid and holder_is_open(api, namespace, view)
        decision = claims.decide(view, uid, name, live, lease_name=lease, namespace=namespace, target=what,
                                 now=now, duration=claims.duration_for(step_timeout))
        if not decision.granted:
            return decision
        try:
            write_lease(api, decision, what, body, holder_namespace)
            return decision
        except ApiException as e:
            if e.status != 409:
                raise
    assert decision is not None
    return claims.ClaimDecision("held", f"the claim on {what} kept changing under us ({ATTEMPTS} re-reads)",
                                lease, namespace, "", "", now, now)


def release(api: client.ApiClient, target: ObjectRef, remediation_namespace: str, uid: str,
            cluster_namespace: str = "default") -> None:
    """Delete the target's Lease if Remediation `uid` holds it (a racer that took it over keeps it).
    Found from the target, not from the status, so a claim whose record was lost is released all the same;
    best effort: it expires anyway."""
    namespace = lease_namespace(target, remediation_namespace, cluster_namespace)
    lease = claims.lease_name(target.kind, target.name)
    try:
        version = WRITTEN.version_held_by(namespace, lease, uid)
        if version is not None:  # as this process wrote it: delete on that version, without a read
            try:
                return delete_lease(api, namespace, lease, version)
            except ApiException as e:
                if e.status != 409:
                    raise
        body = read_lease(api, namespace, lease)
        if body is None or (body.get("spec") or {}).get("holderIdentity") != uid:
            return
        delete_lease(api, namespace, lease, body["metadata"]["resourceVersion"])
    except ApiException as e:
        if e.status not in (404, 409):
            log.warning("target claim not released; it expires on its own",
                        extra={"lease": f"{namespace}/{lease}", "status": e.status})
    finally:
        WRITTEN.forget(namespace, lease, uid)


def delete_lease(api: client.ApiClient, namespace: str, lease: str, resource_version: str) -> None:
    request_json(api, "DELETE", lease_path(namespace, lease), {
        "apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"resourceVersion": resource_version}})


# Leases as plain JSON (request_json): a claim and its release are on every incident's path, and the generated
# client's validated calls and models cost more CPU than the calls themselves.
def lease_path(namespace: str, name: str | None = None) -> str:
    path = f"/apis/coordination.k8s.io/v1/namespaces/{quote(namespace, safe='')}/leases"
    return f"{path}/{quote(name, safe='')}" if name is not None else path


@retry_transient
def read_lease(api: client.ApiClient, namespace: str, name: str) -> dict | None:
    try:
        return request_json(api, "GET", lease_path(namespace, name))
    except ApiException as e:
        if e.status == 404:
            return None
        raise


@retry_transient
def write_lease(api: client.ApiClient, decision: claims.ClaimDecision, what: str, read: dict | None,
                holder_namespace: str | None = None) -> None:
    if read is None:
        written = request_json(api, "POST", lease_path(decision.namespace),
                               claims.lease_body(decision, what, None, holder_namespace))
    else:
        written = request_json(api, "PUT", lease_path(decision.namespace, decision.lease), claims.lease_body(
            decision, what, read["metadata"]["resourceVersion"], holder_namespace))
    WRITTEN.wrote(decision.namespace, decision.lease, decision.holder,
                  ((written or {}).get("metadata") or {}).get("resourceVersion"))


def holder_is_open(api: client.ApiClient, namespace: str, lease: claims.LeaseView) -> bool:
    """The holder is a Remediation that still exists (same uid) and has not finished."""
    if not lease.holder_name:
        return True  # unknown holder: wait for the Lease to expire rather than guess
    body = Resources(api).get("Remediation", lease.holder_name, lease.holder_namespace or namespace)
    if body is None or body["metadata"].get("uid") != lease.holder:
        return False
    return (body.get("status") or {}).get("phase") not in TERMINAL_PHASES
