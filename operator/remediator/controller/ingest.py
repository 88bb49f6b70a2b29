"""Signal -> Remediation: match a runbook and create the incident's Remediation.

Ingest only records; the loop runs in the Remediation daemon. The name is
deterministic per incident, so the apiserver's create conflict (409) is the
lock that makes retried deliveries and several replicas create one object.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timezone

from kubernetes.client.rest import ApiException

from ..api.models import API_VERSION, RemediationSpec, RunbookRef, RunbookSpec, Signal
from ..core import matching, state
from ..kube import Resources
from ..records.metrics import REFUSALS

log = logging.getLogger("remediator.ingest")


class RunbookCache:
    """Runbooks by namespace, fed by the kopf watch on Runbooks (no API list per signal)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_ns: dict[str, dict[str, matching.RunbookEntry]] = {}
        self.invalid: dict[tuple[str, str], str] = {}

    def put(self, namespace: str, name: str, generation: int | None, spec: dict) -> None:
        try:
            entry = matching.RunbookEntry(namespace=namespace, name=name, generation=generation,
                                          spec=RunbookSpec.model_validate(spec))
        except ValueError as e:  # the CRD schema should have refused it; never crash the watch
            self.invalid[(namespace, name)] = str(e)
            self.remove(namespace, name)
            return
        with self._lock:
            self.invalid.pop((namespace, name), None)
            self._by_ns.setdefault(namespace, {})[name] = entry

    def remove(self, namespace: str, name: str) -> None:
        with self._lock:
            self._by_ns.get(namespace, {}).pop(name, None)

    def in_namespace(self, namespace: str) -> list[matching.RunbookEntry]:
        with self._lock:
            return list(self._by_ns.get(namespace, {}).values())

    def entries(self) -> list[matching.RunbookEntry]:
        with self._lock:
            return [entry for by_name in self._by_ns.values() for entry in by_name.values()]

    def count(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._by_ns.values())


@dataclass(frozen=True)
class IngestResult:
    outcome: str  # created | duplicate | unmatched | resolved | ignored
    name: str | None
    reasons: tuple[str, ...] = ()


def signal_namespace(signal: Signal) -> str | None:
    return signal.labels.get("namespace") or None


def remediation_body(name: str, namespace: str, spec: RemediationSpec) -> dict:
    return {
        "apiVersion": API_VERSION,
        "kind": "Remediation",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/managed-by": "remediator",
                "remediator.dev/runbook": spec.runbook.name,
                "remediator.dev/source": spec.signal.source,
            },
        },
        "spec": spec.wire(),
    }


def ingest_firing(resources: Resources, cache: RunbookCache, signal: Signal,
                  served: "callable[[str], bool]" = lambda ns: True) -> IngestResult:
    namespace = signal_namespace(signal)
    if namespace is None:
        return IngestResult("unmatched", None, ("the signal names no namespace",))
    if not served(namespace):
        return IngestResult("ignored", None, (f"namespace {namespace} is not watched by this operator",))
    result = matching.match_signal(signal, namespace, cache.in_namespace(namespace))
    if result.runbook is None or result.target is None:
        refused = matching.foreign_matches(signal, namespace, cache.entries())
        if refused:
            REFUSALS.labels("cross-namespace-signal").inc()
            log.warning("signal refused for runbooks of other namespaces",
                        extra={"namespace": namespace, "reasons": refused})
        return IngestResult("unmatched", None, (*result.reasons, *refused))
    rb = result.runbook
    spec = RemediationSpec(signal=signal, target=result.target,
                           runbook=RunbookRef(name=rb.name, namespace=rb.namespace, generation=rb.generation))
    name = state.remediation_name(signal.source, signal.fingerprint, signal.starts_at or "", namespace)
    try:
        resources.create("Remediation", namespace, remediation_body(name, namespace, spec))
    except ApiException as e:
        if e.status == 409:
            return IngestResult("duplicate", name)
        raise
    try:  # why this runbook, for `kubectl describe`; the loop's own writes are guarded, so none is lost
        resources.patch_status("Remediation", namespace, name, {"matchReasons": list(result.reasons)[:20]})
    except ApiException as e:
        log.warning("could not record match reasons", extra={"remediation": f"{namespace}/{name}",
                                                             "status": e.status})
    log.info("remediation created", extra={"remediation": f"{namespace}/{name}", "runbook": rb.name})
    return IngestResult("created", name, tuple(result.reasons))


def ingest_resolved(resources: Resources, signal: Signal) -> IngestResult:
    """Record the resolution on the incident's Remediation; the loop cancels it if nothing acted yet."""
    namespace = signal_namespace(signal)
    if namespace is None:
        return IngestResult("unmatched", None, ("the signal names no namespace",))
    name = state.remediation_name(signal.source, signal.fingerprint, signal.starts_at or "", namespace)
    for _ in range(5):
        obj = resources.get("Remediation", name, namespace)
        if obj is None:
            return IngestResult("unmatched", None, ("no remediation for this alert",))
        status = obj.get("status") or {}
        if status.get("signalResolvedAt"):  # recorded even after the loop ended: the audit shows when it cleared
            return IngestResult("resolved", name)
        status["signalResolvedAt"] = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
        obj["status"] = status
        try:
            resources.replace_status("Remediation", namespace, name, obj)
            return IngestResult("resolved", name)
        except ApiException as e:
            if e.status != 409:
                raise
    return IngestResult("resolved", name, ("contended; the loop will see the resolution next time",))
