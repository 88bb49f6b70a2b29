"""Rollout counts kept in the cluster (the edge of core.report.rollout_counts).

The store: one ConfigMap per counted namespace, `remediator-rollouts-<namespace>`, in the operator's own
namespace (--counts-namespace, the chart's release namespace). Why a ConfigMap there: the counts are a few
hundred KB of plain JSON at most, read by `remediator report` and written by one replica; a ConfigMap needs no
CRD, its resourceVersion gives the optimistic write (409: re-read and merge), and the operator's namespace
keeps tenants from forging their own figures, while the operator needs no ConfigMap rights in theirs (the chart
grants get/create/update on ConfigMaps in the release namespace only).

The journal reports each revision it sees (`seen`), the Remediations' watch each rollout a probable cause names
(`heard`: listed whole at every start, so nothing a crash kept from being written is lost); both wait in
memory per namespace. Only the active replica writes, at most once per namespace every
`every` seconds (30 by default): a rollout storm of any size costs one GET (first write or after a 409) and one
PUT per namespace per period. Nothing here is on the plan path.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from kubernetes import client
from kubernetes.client.rest import ApiException

from ..core.report import rollout_counts as counts
from ..kube import call_retrying

log = logging.getLogger("remediator.rollout_counts")
PREFIX = "remediator-rollouts-"
LABEL = "remediator.dev/rollout-counts"  # value: the namespace counted
KEY = "counts.json"
ATTEMPTS = 5  # 409s in a row before this period gives up (the pending counts wait for the next)


def name_for(namespace: str) -> str:
    return PREFIX + namespace


class RolloutCounter:
    def __init__(self, api: client.ApiClient | None, store_namespace: str, keep_days: int = counts.KEEP_DAYS):
        self.api = api
        self.store_namespace = store_namespace
        self.keep_days = keep_days
        self._lock = threading.Lock()
        self._seen: dict[str, set[counts.Seen]] = {}
        self._linked: dict[str, set[counts.Linked]] = {}
        self._stored: dict[str, tuple[dict, str | None]] = {}  # namespace -> (document, resourceVersion)

    # ------------------------------------------------------------ fed by the journal and the loop

    def seen(self, namespace: str, workload: str, uid: str, revision: int, at: datetime) -> None:
        with self._lock:
            self._seen.setdefault(namespace, set()).add(counts.Seen(revision, workload, uid, at))

    def linked(self, namespace: str, workload: str, revision: int, at: datetime) -> None:
        with self._lock:
            self._linked.setdefault(namespace, set()).add(counts.Linked(workload, revision, at))

    def heard(self, remediation: dict) -> None:
        """A Remediation as listed or watched: its probable cause, when a rollout, is a failed change. Listed
        again at every start, so a link not written before a crash is written after it."""
        named = counts.named_rollout(remediation)
        if named is not None:
            self.linked(named[0], named[1].workload, named[1].revision, named[1].at)

    def pending(self) -> set[str]:
        with self._lock:
            return set(self._seen) | set(self._linked)

    # ------------------------------------------------------------ the writes

    def flush(self, active: Callable[[], bool] = lambda: True, now: datetime | None = None) -> int:
        """Write every namespace with something pending; the number of ConfigMaps written. A namespace whose
        write fails keeps its counts for the next period and does not hold back the namespaces after it (the
        first such error is raised once the others are written)."""
        written, failed = 0, None
        for namespace in sorted(self.pending()):
            if not active():
                break
            with self._lock:
                seen, linked = self._seen.pop(namespace, set()), self._linked.pop(namespace, set())
            try:
                self.write(namespace, seen, linked, now or datetime.now(UTC))
                written += 1
            except ApiException as e:
                if e.status not in (403, 404, 422):
                    self.keep(namespace, seen, linked)
                    failed = failed or e
                    continue
                # the same answer every period (no right to write there, no such namespace, refused): what
                # waits would only grow; the report falls back to the ReplicaSet history
                log.warning(f"rollout counts of {namespace} dropped: the apiserver answered {e.status} {e.reason} "
                            f"writing ConfigMap {self.store_namespace}/{name_for(namespace)}")
            except Exception as e:  # noqa: BLE001  kept and raised after the other namespaces' writes
                self.keep(namespace, seen, linked)
                failed = failed or e
        if failed is not None:
            raise failed
        return written

    def flush_or_forget(self, active: Callable[[], bool], keep_seconds: float, now: datetime | None = None) -> int:
        """The active replica writes what is pending; a standby (its journal and Remediation watches run too)
        keeps only the last `keep_seconds` of it, what a takeover must still write: the active replica has
        written the older counts, and without the trim a standby's memory grows with every rollout."""
        if active():
            return self.flush(active, now)
        self.forget_before((now or datetime.now(UTC)) - timedelta(seconds=keep_seconds))
        return 0

    def forget_before(self, cutoff: datetime) -> None:
        with self._lock:
            for pending in (self._seen, self._linked):
                for namespace in list(pending):
                    pending[namespace] = {entry for entry in pending[namespace] if entry.at >= cutoff}
                    if not pending[namespace]:
                        del pending[namespace]

    def keep(self, namespace: str, seen, linked) -> None:
        with self._lock:  # kept for the next period; merging is idempotent
            self._seen.setdefault(namespace, set()).update(seen)
            self._linked.setdefault(namespace, set()).update(linked)

    def write(self, namespace: str, seen, linked, now: datetime) -> None:
        core = client.CoreV1Api(self.api)
        name = name_for(namespace)
        for _ in range(ATTEMPTS):
            if namespace not in self._stored:
                self._stored[namespace] = self.read(namespace)
            stored, version = self._stored[namespace]
            doc = counts.merge(stored, seen, linked, now.date(), self.keep_days)
            doc["namespace"] = namespace
            body = {"metadata": {"name": name, "namespace": self.store_namespace, "labels": {LABEL: namespace},
                                 **({"resourceVersion": version} if version else {})},
                    "data": {KEY: counts.encode(doc)}}
            try:
                if version is None:
                    out = call_retrying(core.create_namespaced_config_map, self.store_namespace, body)
                else:
                    out = call_retrying(core.replace_namespaced_config_map, name, self.store_namespace, body)
            except ApiException as e:
                if e.status != 409:
                    raise
                self._stored.pop(namespace, None)  # somebody wrote first (or created it): re-read and merge
                continue
            self._stored[namespace] = (doc, out.metadata.resource_version)
            return
        raise RuntimeError(f"rollout counts of {namespace}: {ATTEMPTS} conflicting writes in a row")

    def read(self, namespace: str) -> tuple[dict, str | None]:
        try:
            cm = call_retrying(client.CoreV1Api(self.api).read_namespaced_config_map, name_for(namespace),
                               self.store_namespace)
        except ApiException as e:
            if e.status != 404:
                raise
            return counts.empty(namespace), None
        return counts.decode((cm.data or {}).get(KEY), namespace), cm.metadata.resource_version


def read_counts(api: client.ApiClient, namespace: str | None = None) -> list[tuple[str, dict]]:
    """(where, document) of the stored counts (by label; in `namespace`, else cluster-wide), for the report."""
    core = client.CoreV1Api(api)
    items = (core.list_namespaced_config_map(namespace, label_selector=LABEL) if namespace else
             core.list_config_map_for_all_namespaces(label_selector=LABEL)).items
    return [(cm.metadata.namespace, counts.decode((cm.data or {}).get(KEY), (cm.metadata.labels or {}).get(LABEL, "")))
            for cm in items if cm.metadata.name.startswith(PREFIX)]
