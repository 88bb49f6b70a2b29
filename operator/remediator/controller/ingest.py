"""Signal -> Remediation: match a runbook and create the incident's Remediation.

Ingest only records; the loop runs in the Remediation daemon. The name is
deterministic per incident, so the apiserver's create conflict (409) is the
lock that makes retried deliveries and several replicas create one object.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from kubernetes.client.rest import ApiException

from ..api.models import (
    API_VERSION,
    TERMINAL_PHASES,
    RemediationSpec,
    RunbookRef,
    RunbookSpec,
    Signal,
    TimelineEntry,
)
from ..core.match import matching
from ..core.match import reasons as match_reasons
from ..core.engine import state
from ..core.durations import micro_time, parse_time
from ..core.match.rate_limit import Limit, RateLimiter
from ..core.match.stored_signal import stored_signal
from ..kube import Resources
from ..records.metrics import REFUSALS

log = logging.getLogger("remediator.ingest")

RESOLVE_ATTEMPTS = 5


class RunbookCache:
    """Runbooks by namespace, fed by the kopf watch on Runbooks (no API list per signal).

    A standby replica's watch is paused by kopf peering, yet its webhook still takes alerts: a signal
    that matches nothing re-lists its namespace (at most every few seconds) before it is called unmatched.
    Re-lists are bounded whatever namespace labels senders invent: each namespace at most once per
    RELIST_EVERY, all together at most RELIST_LIMIT, and the table of when is bounded (oldest dropped).
    """

    RELIST_EVERY = 5.0
    RELIST_LIMIT = Limit(rate=2, burst=20)

    def __init__(self, max_namespaces: int = 4096) -> None:
        self._lock = threading.Lock()
        self._by_ns: dict[str, dict[str, matching.RunbookEntry]] = {}
        self._bodies: dict[tuple[str, str], dict] = {}  # as stored, even when invalid: what the loop reads
        self.invalid: dict[tuple[str, str], str] = {}
        self._relists = RateLimiter(max_callers=max_namespaces)  # per namespace
        self._all_relists = RateLimiter(max_callers=1)

    def put(self, namespace: str, name: str, generation: int | None, spec: dict, resource_version: str = "",
            status: dict | None = None) -> None:
        with self._lock:  # the status and version too: the fold of an outcome starts from them (no GET)
            self._bodies[(namespace, name)] = {
                "metadata": {"name": name, "namespace": namespace, "generation": generation,
                             "resourceVersion": resource_version}, "spec": spec, "status": status or {}}
        try:
            entry = matching.RunbookEntry(namespace=namespace, name=name, generation=generation,
                                          spec=RunbookSpec.model_validate(spec))
        except ValueError as e:  # the CRD schema should have refused it (one stored before an upgrade); never crash
            with self._lock:
                told = self.invalid.get((namespace, name)) == str(e)
                self.invalid[(namespace, name)] = str(e)
                self._by_ns.get(namespace, {}).pop(name, None)
            if not told:
                log.warning("runbook ignored: invalid", extra={"runbook": f"{namespace}/{name}", "error": str(e)[:1024]})
            return
        with self._lock:
            self.invalid.pop((namespace, name), None)
            self._by_ns.setdefault(namespace, {})[name] = entry

    def put_object(self, obj: dict, namespace: str | None = None) -> None:
        meta = obj["metadata"]
        self.put(namespace or meta["namespace"], meta["name"], meta.get("generation"), obj.get("spec") or {},
                 meta.get("resourceVersion") or "", obj.get("status"))

    def remove(self, namespace: str, name: str) -> None:
        with self._lock:
            self._by_ns.get(namespace, {}).pop(name, None)
            self.invalid.pop((namespace, name), None)
            self._bodies.pop((namespace, name), None)

    def observe(self, event_type: str, obj: dict) -> None:
        """A watch event on a Runbook."""
        meta = obj["metadata"]
        if event_type == "DELETED":
            self.remove(meta["namespace"], meta["name"])
        else:
            self.put_object(obj)

    def body(self, namespace: str, name: str) -> dict | None:
        """The Runbook as last seen ({"metadata": {name, namespace, generation, resourceVersion}, "spec",
        "status"}), None if there is none."""
        with self._lock:
            return self._bodies.get((namespace, name))

    def replace_all(self, items: list[dict]) -> None:
        """Every served Runbook, as just listed."""
        by_ns: dict[str, list[dict]] = {}
        for rb in items:
            by_ns.setdefault(rb["metadata"]["namespace"], []).append(rb)
        with self._lock:
            known = set(self._by_ns) | {ns for ns, _ in self._bodies}
        for namespace in known | set(by_ns):
            self.replace_namespace(namespace, by_ns.get(namespace, []))

    def replace_namespace(self, namespace: str, items: list[dict]) -> None:
        """The namespace's Runbooks as just listed from the apiserver."""
        listed = {rb["metadata"]["name"] for rb in items}
        with self._lock:
            known = {name for ns, name in self._bodies if ns == namespace}
        for name in ({e.name for e in self.in_namespace(namespace)} | known) - listed:
            self.remove(namespace, name)
        for rb in items:
            self.put_object(rb, namespace)

    def due_for_refresh(self, namespace: str, now: float) -> bool:
        """True at most once per RELIST_EVERY per namespace, and within RELIST_LIMIT for all of them."""
        with self._lock:
            return not self._relists.take((namespace,), Limit(1 / self.RELIST_EVERY, 1), now) \
                and not self._all_relists.take((), self.RELIST_LIMIT, now)

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
    outcome: str  # created | duplicate | correlated | unmatched | resolved | ignored
    name: str | None
    reasons: tuple[str, ...] = ()


NAMESPACE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")  # RFC 1123 label, as the apiserver wants
NO_NAMESPACE = "the signal names no namespace (its `namespace` label is missing or not a namespace name)"


def signal_namespace(signal: Signal) -> str | None:
    """The namespace label, if it can name a namespace: anything else would reach the apiserver's URL
    ("../etc" gets 404, which must not become a 503 that a sender retries forever)."""
    labelled = signal.labels.get("namespace") or ""
    return labelled if NAMESPACE_NAME.fullmatch(labelled) else None


def remediation_body(name: str, namespace: str, spec: RemediationSpec, reasons: Sequence[str] = ()) -> dict:
    """`reasons`: why it was made, for the loop's first status write to record (core/match/reasons.py)."""
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
            **({"annotations": {match_reasons.ANNOTATION: match_reasons.annotation(reasons)}} if reasons else {}),
        },
        "spec": spec.wire(),
    }


class OpenIncidents:
    """Open Remediations by incident (namespace, runbook, target), fed by the watch on Remediations.

    A second alert about a target that already has an open Remediation from the same Runbook joins
    that incident instead of opening another: duplicate alerts are correlated away; so does an alert that
    started before that target's last incident finished (it was about that one). A per-incident
    lock makes check-and-create atomic within this process; across replicas, the target-concurrency
    guard holds a second one.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[tuple[str, str, str], str] = {}
        self._closed: dict[tuple[str, str, str], tuple[str, datetime]] = {}  # last finished: name, finishedAt
        self._locks: dict[tuple[str, str, str], threading.Lock] = {}

    @staticmethod
    def key_of(namespace: str, spec: RemediationSpec) -> tuple[str, str, str]:
        return namespace, spec.runbook.name, matching.target_display(spec.target)

    def lock(self, key: tuple[str, str, str]) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(key, threading.Lock())

    def open_one(self, key: tuple[str, str, str]) -> str | None:
        with self._lock:
            return self._open.get(key)

    def handled_by(self, key: tuple[str, str, str], starts_at: str | None) -> str | None:
        """The finished incident an alert belongs to: one that ended after the alert had started (an alert
        still firing, or re-sent, about what was already remediated or escalated)."""
        with self._lock:
            closed = self._closed.get(key)
        started = time_or_none(starts_at)
        if closed is None or started is None:
            return None
        name, finished = closed
        # Whole seconds: a re-fire stamped in the second the incident finished is a new incident.
        return name if started < finished.replace(microsecond=0) else None

    def opened(self, key: tuple[str, str, str], name: str) -> None:
        with self._lock:
            self._open[key] = name

    def observe(self, event_type: str, body: dict) -> None:
        """From the watch: track open ones, forget finished or deleted ones."""
        meta = body.get("metadata") or {}
        try:
            key = self.key_of(meta["namespace"], RemediationSpec.model_validate(body.get("spec") or {}))
        except (KeyError, ValueError):
            return
        status = body.get("status") or {}
        finished = event_type == "DELETED" or status.get("phase") in TERMINAL_PHASES
        finished_at = time_or_none(status.get("finishedAt")) if event_type != "DELETED" else None
        with self._lock:
            if not finished:
                self._open[key] = meta["name"]
                return
            if self._open.get(key) == meta["name"]:
                del self._open[key]
            if finished_at and (key not in self._closed or self._closed[key][1] <= finished_at):
                self._closed[key] = (meta["name"], finished_at)


@dataclass
class Intake:
    """Signal -> Remediation for every source: webhooks, pod states, SLO burns, anomalies."""

    resources: Resources
    runbooks: RunbookCache
    served: Callable[[str], bool] = lambda namespace: True
    incidents: OpenIncidents = field(default_factory=OpenIncidents)
    # told of each Remediation created, as the apiserver answered: its loop starts from it, not a watch hop later
    created_listeners: list[Callable[[dict], None]] = field(default_factory=list)
    # told of each Remediation about to be created (its loop's first reads go out beside the create); each returns
    # what to call with the create's answer: the object created, or None
    creating_listeners: list[Callable[[dict], Callable[[dict | None], None]]] = field(default_factory=list)

    def firing(self, signal: Signal, hints: bool = True) -> IngestResult:
        """`hints`: an unmatched signal's reasons name the Runbooks of other namespaces it would have matched (not
        for a tenant's own route, where that would tell one tenant of another's Runbooks)."""
        namespace = signal_namespace(signal)
        if namespace is None:
            return IngestResult("unmatched", None, (NO_NAMESPACE,))
        if not self.served(namespace):
            return IngestResult("ignored", None, (f"namespace {namespace} is not watched by this operator",))
        result = matching.match_signal(signal, namespace, self.runbooks.in_namespace(namespace))
        if (result.runbook is None or result.target is None) and \
                self.runbooks.due_for_refresh(namespace, time.monotonic()):
            self.runbooks.replace_namespace(namespace, self.resources.list("Runbook", namespace))
            result = matching.match_signal(signal, namespace, self.runbooks.in_namespace(namespace))
        if result.runbook is None or result.target is None:
            refused = matching.foreign_matches(signal, namespace, self.runbooks.entries()) if hints else []
            if refused:
                REFUSALS.labels("cross-namespace-signal").inc()
                log.warning("signal refused for runbooks of other namespaces",
                            extra={"namespace": namespace, "reasons": refused})
            return IngestResult("unmatched", None, (*result.reasons, *refused))
        rb = result.runbook
        kept, cut = stored_signal(signal)
        spec = RemediationSpec(signal=kept, target=result.target,
                               runbook=RunbookRef(name=rb.name, namespace=rb.namespace, generation=rb.generation))
        name = state.remediation_name(signal.source, signal.fingerprint, signal.starts_at or "", namespace)
        key = self.incidents.key_of(namespace, spec)
        # why this runbook, and what of the signal was not stored, for `kubectl describe`
        reasons = [*(f"signal stored in part: {note}" for note in cut), *result.reasons]
        with self.incidents.lock(key):
            open_name = self.incidents.open_one(key)
            if open_name == name:
                return IngestResult("duplicate", name)
            if open_name:
                return IngestResult("correlated", open_name, (
                    f"joins the open incident {open_name} of Runbook {rb.key} on "
                    f"{matching.target_display(result.target)}",))
            handled = self.incidents.handled_by(key, signal.starts_at)
            if handled and handled != name:
                return IngestResult("correlated", handled, (
                    f"started before incident {handled} of Runbook {rb.key} on "
                    f"{matching.target_display(result.target)} finished: already handled",))
            body = remediation_body(name, namespace, spec, reasons)
            answers = self.announce(body) if handled is None else []  # else it exists: the create answers 409
            created = None
            try:
                created = self.resources.create("Remediation", namespace, body)
            except ApiException as e:
                if e.status == 409:  # ours retried after it went through, or another replica's
                    return IngestResult("duplicate", name)
                raise
            finally:
                self.tell_answer(body, answers, created)
            self.incidents.opened(key, name)
        log.info("remediation created", extra={"remediation": f"{namespace}/{name}", "runbook": rb.name})
        if created:
            for listener in self.created_listeners:
                listener(created)
        return IngestResult("created", name, tuple(result.reasons))

    def announce(self, body: dict) -> list[Callable[[dict | None], None]]:
        """Tell the creating listeners; what each wants to hear of the answer. A listener that fails is logged and
        left out: what they do is a head start, never a condition of the create."""
        answers = []
        for listener in self.creating_listeners:
            try:
                answers.append(listener(body))
            except Exception as e:  # noqa: BLE001
                log_listener_failed(body, e)
        return answers

    @staticmethod
    def tell_answer(body: dict, answers: list[Callable[[dict | None], None]], created: dict | None) -> None:
        for answer in answers:
            try:
                answer(created)
            except Exception as e:  # noqa: BLE001  as `announce`: never the intake's error, nor the others' loss
                log_listener_failed(body, e)

    def resolved(self, signal: Signal) -> IngestResult:
        return ingest_resolved(self.resources, signal, self.served)


def log_listener_failed(body: dict, error: Exception) -> None:
    meta = body["metadata"]
    log.warning("creating listener failed", extra={"remediation": f"{meta['namespace']}/{meta['name']}",
                                                   "error": str(error)})


def ingest_resolved(resources: Resources, signal: Signal, served: Callable[[str], bool] = lambda namespace: True
                    ) -> IngestResult:
    """Record the resolution on the incident's Remediation; the loop cancels it if nothing acted yet.

    The time is always recorded: when the loop keeps winning the race for the object, a merge patch of
    the time alone (which cannot conflict) replaces the full note. Only apiserver trouble raises, and the
    webhook then answers 503 so the sender retries.
    """
    namespace = signal_namespace(signal)
    if namespace is None:
        return IngestResult("unmatched", None, (NO_NAMESPACE,))
    if not served(namespace):  # not ours, and our RBAC may not reach it: not even a GET
        return IngestResult("ignored", None, (f"namespace {namespace} is not watched by this operator",))
    name = state.remediation_name(signal.source, signal.fingerprint, signal.starts_at or "", namespace)
    return record_resolved(resources, namespace, name, signal.summary)


def record_resolved(resources: Resources, namespace: str, name: str, summary: str = "") -> IngestResult:
    """`signalResolvedAt` (and why, when said) on the Remediation `name`, unless already recorded."""
    for _ in range(RESOLVE_ATTEMPTS):
        obj = resources.get("Remediation", name, namespace)
        if obj is None:
            return IngestResult("unmatched", None, ("no remediation for this alert",))
        status = obj.get("status") or {}
        if status.get("signalResolvedAt"):  # recorded even after the loop ended: the audit shows when it cleared
            return IngestResult("resolved", name)
        stamp = micro_time(datetime.now(UTC))
        status["signalResolvedAt"] = stamp
        if summary:  # why it resolved, when the source says (e.g. an anomaly baseline re-learned)
            status["timeline"] = [e.wire() for e in state.append_timeline(
                [TimelineEntry.model_validate(e) for e in status.get("timeline") or []],
                TimelineEntry(at=stamp, kind="SignalResolved", message=summary[:1000]))]
        obj["status"] = status
        try:
            resources.replace_status("Remediation", namespace, name, obj)
        except ApiException as e:
            if e.status != 409:
                raise
            continue
        return IngestResult("resolved", name)
    stamp = micro_time(datetime.now(UTC))
    try:
        resources.patch_status("Remediation", namespace, name, {"signalResolvedAt": stamp})
    except ApiException as e:
        if e.status == 404:
            return IngestResult("unmatched", None, ("no remediation for this alert",))
        raise
    lost = ", without the note of why it resolved" if summary else ""
    return IngestResult("resolved", name, (f"recorded after {RESOLVE_ATTEMPTS} conflicting writes{lost}",))


def time_or_none(value: str | None) -> datetime | None:
    """A status or signal time; None when absent or unreadable (then it decides nothing)."""
    try:
        return parse_time(value) if value else None
    except ValueError:
        return None
