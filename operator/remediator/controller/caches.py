"""Watch-fed caches: what a plan needs from the cluster besides the target and the dry run.

Each cache is filled by one paginated LIST at start (before webhooks are served and before kopf starts any
loop), then kept current by a watch that resumes from that LIST's resourceVersion, so no event falls between
the two; a 410 Gone re-lists and replaces. These are our own watches, not kopf's: kopf pauses its watches on a
standby replica (whose webhooks still take alerts, and whose history must be whole the moment it takes over),
and kopf scopes every namespaced kind alike, while the guards count Remediations in every namespace.

- RemediationPolicies (cluster-scoped) and namespace labels: small, kept whole.
- Runbooks: `ingest.RunbookCache`, in the namespaces this operator serves.
- Nodes: `NodeCache`, each as the compact `core.plan.nodes.NodeFact` (labels, conditions, cordon, our
  annotations): the minHealthy guard counts them and the node-condition edge (controller/nodes.py) reads them.
- Remediations: `RemediationIndex`, each held as the compact `guards.PastRemediation` (a few hundred bytes
  instead of ~4.7 KB), indexed by target, by namespace, open or not, and by time, so the guards' query costs
  what it returns, not the whole history.
"""

from __future__ import annotations

import atexit
import bisect
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from kubernetes import client
from kubernetes.watch.watch import iter_resp_lines
from kubernetes.client.rest import ApiException

from ..api.models import GROUP, TERMINAL_PHASES, VERSION
from ..core import escalation
from ..core.plan import guards
from ..core.plan.guard_inputs import past_remediation
from ..core.plan.nodes import NodeFact, node_fact
from ..core.report import retention
from ..kube import transient

log = logging.getLogger("remediator.caches")

PAGE = 100  # items per LIST page: bounds the memory a 10,000-object history costs at start (pages of 500 left
# ~10 MiB more resident: the long-lived entries taken from each page pin the arenas its decoding spread over)
WATCH_SECONDS = 300  # the apiserver ends a watch after this; it resumes from the last resourceVersion
QUICK_END = 1.0  # a watch that ended sooner is re-opened after a pause, as after a failure


class PolicyCache:
    """RemediationPolicies by name, as {"metadata": {"name"}, "spec"} (what policy selection reads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_name: dict[str, dict] = {}

    def replace(self, items: Iterable[Mapping]) -> None:
        fresh = {item["metadata"]["name"]: self._kept(item) for item in items}
        with self._lock:
            self._by_name = fresh

    def observe(self, event_type: str, obj: Mapping) -> None:
        name = obj["metadata"]["name"]
        with self._lock:
            if event_type == "DELETED":
                self._by_name.pop(name, None)
            else:
                self._by_name[name] = self._kept(obj)

    def items(self) -> list[dict]:
        with self._lock:
            return list(self._by_name.values())

    @staticmethod
    def _kept(obj: Mapping) -> dict:
        return {"metadata": {"name": obj["metadata"]["name"]}, "spec": obj.get("spec") or {}}


class NamespaceLabels:
    """Labels of every namespace (risk scoring and policy selection read them)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._labels: dict[str, dict[str, str]] = {}

    def replace(self, items: Iterable[Mapping]) -> None:
        fresh = {item["metadata"]["name"]: dict(item["metadata"].get("labels") or {}) for item in items}
        with self._lock:
            self._labels = fresh

    def observe(self, event_type: str, obj: Mapping) -> None:
        name = obj["metadata"]["name"]
        with self._lock:
            if event_type == "DELETED":
                self._labels.pop(name, None)
            else:
                self._labels[name] = dict(obj["metadata"].get("labels") or {})

    def fill(self, namespace: str, labels: Mapping[str, str]) -> dict[str, str]:
        """A namespace read on a miss, unless the watch brought it meanwhile: its labels are as new or newer."""
        with self._lock:
            return dict(self._labels.setdefault(namespace, dict(labels)))

    def get(self, namespace: str) -> dict[str, str] | None:
        with self._lock:
            labels = self._labels.get(namespace)
        return dict(labels) if labels is not None else None


class NodeCache:
    """Every Node as a NodeFact, and the resourceVersion last seen of each (an uncordon is guarded by it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._facts: dict[str, tuple[NodeFact, str]] = {}

    def replace(self, items: Iterable[Mapping]) -> None:
        fresh = {item["metadata"]["name"]: self._kept(item) for item in items}
        with self._lock:
            self._facts = fresh

    def observe(self, event_type: str, obj: Mapping) -> None:
        name = obj["metadata"]["name"]
        with self._lock:
            if event_type == "DELETED":
                self._facts.pop(name, None)
            else:
                self._facts[name] = self._kept(obj)

    def facts(self) -> list[NodeFact]:
        with self._lock:
            return [fact for fact, _ in self._facts.values()]

    def with_versions(self) -> list[tuple[NodeFact, str]]:
        with self._lock:
            return list(self._facts.values())

    @staticmethod
    def _kept(obj: Mapping) -> tuple[NodeFact, str]:
        return node_fact(obj), (obj.get("metadata") or {}).get("resourceVersion", "")


class TimeIndex:
    """Keys sorted by a time: the keys at or after an instant cost O(log n + found)."""

    def __init__(self) -> None:
        self._sorted: list[tuple[datetime, tuple[str, str]]] = []

    def add(self, at: datetime, key: tuple[str, str]) -> None:
        bisect.insort(self._sorted, (at, key))

    def remove(self, at: datetime, key: tuple[str, str]) -> None:
        i = bisect.bisect_left(self._sorted, (at, key))
        if i < len(self._sorted) and self._sorted[i] == (at, key):
            del self._sorted[i]

    def since(self, at: datetime) -> list[tuple[str, str]]:
        return [key for _, key in self._sorted[bisect.bisect_left(self._sorted, (at, ("", ""))):]]


def latest_time(past: guards.PastRemediation) -> datetime | None:
    times = [t for t in (past.started_at, past.finished_at) if t is not None]
    return max(times) if times else None


class SharedStrings:
    """One copy of each string many entries hold, forgotten with its last holder: these come from tenants'
    objects, and sys.intern's copies are never freed on CPython 3.12."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[str, int]] = {}

    def take(self, text: str) -> str:
        copy, holders = self._held.get(text, (text, 0))
        self._held[text] = (copy, holders + 1)
        return copy

    def release(self, text: str) -> None:
        copy, holders = self._held[text]
        if holders > 1:
            self._held[text] = (copy, holders - 1)
        else:
            del self._held[text]

    def __len__(self) -> int:
        return len(self._held)


class RemediationIndex:
    """Every Remediation as the guards see it, indexed so their query reads only what they may count."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], guards.PastRemediation] = {}
        self._open: set[tuple[str, str]] = set()
        self._unfolded: set[tuple[str, str]] = set()  # ended, its outcome not yet in its Runbook's status
        self._end_owed: set[tuple[str, str]] = set()  # ended and folded, the incident's known end not yet recorded
        self._deleting: set[tuple[str, str]] = set()
        self._by_target: dict[str, set[tuple[str, str]]] = {}
        self._by_namespace: dict[str, set[tuple[str, str]]] = {}
        self._by_time = TimeIndex()
        self._strings = SharedStrings()

    def replace(self, items: Iterable[Mapping]) -> None:
        with self._lock:
            self._entries.clear()
            self._open.clear()
            self._unfolded.clear()
            self._end_owed.clear()
            self._deleting.clear()
            self._by_target.clear()
            self._by_namespace.clear()
            self._by_time = TimeIndex()
            self._strings = SharedStrings()
            for item in items:
                self._put(item)

    def observe(self, event_type: str, obj: Mapping) -> None:
        with self._lock:
            if event_type == "DELETED":
                self._drop((obj["metadata"].get("namespace", ""), obj["metadata"]["name"]))
            else:
                self._put(obj)

    def __contains__(self, key: tuple[str, str]) -> bool:
        with self._lock:
            return key in self._entries

    def _put(self, obj: Mapping) -> None:
        key = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        self._drop(key)
        past = past_remediation(obj, self._strings.take)
        self._entries[key] = past
        if past.phase not in TERMINAL_PHASES:
            self._open.add(key)
        elif not (obj.get("status") or {}).get("foldedIntoRunbook"):
            self._unfolded.add(key)
        elif escalation.end_owed(obj.get("status") or {}):
            self._end_owed.add(key)
        if obj["metadata"].get("deletionTimestamp"):
            self._deleting.add(key)
        self._by_target.setdefault(past.target_key, set()).add(key)
        self._by_namespace.setdefault(key[0], set()).add(key)
        at = latest_time(past)
        if at is not None:
            self._by_time.add(at, key)

    def _drop(self, key: tuple[str, str]) -> None:
        past = self._entries.pop(key, None)
        if past is None:
            return
        self._open.discard(key)
        self._unfolded.discard(key)
        self._end_owed.discard(key)
        self._deleting.discard(key)
        for index, value in ((self._by_target, past.target_key), (self._by_namespace, key[0])):
            keys = index.get(value)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del index[value]
        at = latest_time(past)
        if at is not None:
            self._by_time.remove(at, key)
        for text in (past.runbook_key, past.target_key, past.phase):
            self._strings.release(text)

    def unfinished(self) -> tuple[list[tuple[str, str, str]], list[tuple[str, str]]]:
        """(namespace, name, phase) of the open ones, and (namespace, name) of the ended ones not yet folded
        into their Runbook or whose incident's known end is not recorded yet (core.escalation `end_owed`, e.g.
        a crash right after its signal resolved): the work a replica taking over has, read without listing
        every Remediation."""
        with self._lock:
            return ([(*key, self._entries[key].phase) for key in self._open], sorted(self._unfolded | self._end_owed))

    def ended(self, kept_at_least: Callable[[str], timedelta | None] | None = None,
              now: datetime | None = None) -> list[retention.Candidate]:
        """Every ended Remediation as the retention sweep judges it: its candidates without a LIST (100 pages of
        whole objects per sweep of a 10,000-object history, which slowed the incidents handled meanwhile). With
        `kept_at_least` (what none of a namespace's goes younger than; None: none of it goes), only those that
        ended at least that long before `now`."""
        with self._lock:  # copied, then judged outside: a plan's guards wait on this lock
            entries, open_ones = list(self._entries.items()), set(self._open)
            unfolded, deleting = set(self._unfolded), set(self._deleting)
        keeps: dict[str, timedelta | None] = {}

        def old_enough(namespace: str, past: guards.PastRemediation) -> bool:
            if kept_at_least is None or now is None:
                return True
            if namespace not in keeps:
                keeps[namespace] = kept_at_least(namespace)
            kept = keeps[namespace]
            # ages compared, never now - kept: a valid "999999d" retention would overflow the date
            return kept is not None and past.last_seen is not None and now - past.last_seen >= kept
        return [retention.Candidate.of(key[0], past, key not in unfolded, key in deleting)
                for key, past in entries if key not in open_ones and old_enough(key[0], past)]

    def version(self, namespace: str, name: str) -> str | None:
        """The resourceVersion of the Remediation as the watch last brought it; None if it holds none."""
        with self._lock:
            past = self._entries.get((namespace, name))
        return past.resource_version if past is not None else None

    def for_guards(self, target_key: str, since: datetime) -> list[guards.PastRemediation]:
        """What the guards may count for a step on `target_key`: every open Remediation (concurrency), every
        one of that target (cooldown, rate, target concurrency), and every one seen at or after `since` (the
        circuit breaker, storm hold-off and recent failures look back at most that far)."""
        with self._lock:
            keys = self._open | self._by_target.get(target_key, set()) | set(self._by_time.since(since))
            return [self._entries[key] for key in keys]

    def of_target(self, target_key: str) -> list[guards.PastRemediation]:
        with self._lock:
            return [self._entries[key] for key in self._by_target.get(target_key, ())]

    def in_namespace(self, namespace: str) -> list[guards.PastRemediation]:
        with self._lock:
            return [self._entries[key] for key in self._by_namespace.get(namespace, ())]

    def open(self) -> list[guards.PastRemediation]:
        with self._lock:
            return [self._entries[key] for key in self._open]

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


def guard_fields(obj: Mapping) -> dict:
    """The part of a Remediation `past_remediation` reads: a 10,000-object history is not held whole while listed."""
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    return {"metadata": {k: meta[k] for k in ("name", "namespace", "creationTimestamp", "resourceVersion",
                                              "deletionTimestamp") if k in meta},
            "spec": {k: spec[k] for k in ("runbook", "target") if k in spec},
            # and what says whether the incident's end is owed (core.escalation.end_owed: a refusal by its reason)
            "status": {**{k: status[k] for k in ("phase", "startedAt", "finishedAt", "foldedIntoRunbook", "dryRun",
                                                   "signalResolvedAt", "restoredAt") if k in status},
                       "reason": str(status.get("reason") or "")[:64],
                       "steps": [{"phase": step.get("phase")} for step in status.get("steps") or []]}}


def node_fields(obj: Mapping) -> dict:
    """The part of a Node `node_fact` reads (a Node's status lists its images: kilobytes we never read)."""
    meta = obj.get("metadata") or {}
    return {"metadata": {k: meta[k] for k in ("name", "labels", "annotations", "resourceVersion") if k in meta},
            "spec": {"unschedulable": (obj.get("spec") or {}).get("unschedulable")},
            "status": {"conditions": (obj.get("status") or {}).get("conditions") or []}}


Lister = Callable[..., object]  # a kubernetes client list call taking limit/_continue/watch/resource_version


@dataclass
class Feed:
    """One LIST + WATCH of one kind in one scope, feeding a cache's replace/observe."""

    what: str
    lister: Lister
    replace: Callable[[list[dict]], None]
    observe: Callable[[str, dict], None]
    keep: Callable[[dict], bool] = lambda obj: True
    compact: Callable[[dict], dict] = lambda obj: obj  # what of an object the cache needs, taken page by page
    listen: Callable[[str, dict], None] | None = None  # sees each object whole: listed ("") or watched
    resource_version: str = ""

    def heard(self, event_type: str, obj: dict) -> None:
        if self.listen is None:
            return
        try:
            self.listen(event_type, obj)
        except Exception as e:  # noqa: BLE001  a listener's failure must not stop the cache's watch
            log.warning("watch listener failed", extra={"watch": self.what, "error": str(e)})

    def prime(self) -> int:
        items, rv = [], None
        token = None
        while True:
            kwargs = {"limit": PAGE, "_preload_content": False}
            if token:
                kwargs["_continue"] = token
            page = json.loads(self.lister(**kwargs).data)
            for item in page.get("items") or []:
                if self.keep(item):
                    self.heard("", item)
                    items.append(self.compact(item))
            meta = page.get("metadata") or {}
            rv = rv or meta.get("resourceVersion")
            token = meta.get("continue")
            if not token:
                break
        self.replace(items)
        self.resource_version = meta.get("resourceVersion") or rv or ""
        return len(items)

    def follow(self, stopped: threading.Event) -> None:
        """Watch from the last resourceVersion until stopped; re-list on 410 Gone, back off on trouble (a
        refused watch, e.g. RBAC without `watch`, is logged at most every 30 s)."""
        pause = 1.0
        while not stopped.is_set():
            try:
                began = time.monotonic()
                self._watch_once(stopped)
                if time.monotonic() - began >= QUICK_END:
                    pause = 1.0
                    continue
                # ended at once (an apiserver shutting down, a proxy cutting watches): not re-opened in a tight
                # loop, which spun a core and sent a watch per millisecond; nothing is watched meanwhile
                self.interrupted()
            except ApiException as e:
                if stopped.is_set():
                    return
                if e.status == 410:
                    self._relist(stopped)
                    continue
                log.warning("watch failed", extra={"watch": self.what, "status": e.status})
            except Exception as e:  # noqa: BLE001  a dropped connection: resume from the last version
                if stopped.is_set():  # quiet: a daemon thread writing to stderr as the interpreter exits aborts it
                    return
                if not transient(e):
                    log.warning("watch failed", extra={"watch": self.what, "error": str(e)})
            stopped.wait(pause)
            pause = min(30.0, pause * 2)

    def interrupted(self) -> None:
        """The watch is not open until the pause after a watch that ended at once is over."""

    def _relist(self, stopped: threading.Event) -> None:
        while not stopped.is_set():
            try:
                self.prime()
                return
            except Exception as e:  # noqa: BLE001
                if stopped.is_set():  # quiet, as the watch: the LIST failed because it was stopped meanwhile
                    return
                log.warning("re-list failed", extra={"watch": self.what, "error": str(e)})
                stopped.wait(2.0)

    def _watch_once(self, stopped: threading.Event) -> None:
        # Each event is decoded once, here: the client's Watch loads, dumps and loads it again for a typed
        # object (a fifth of the operator's CPU under load went there), and its undecoded path fails with
        # KeyError on an ERROR event, so an expired version (410 inside a 200 stream) was retried forever.
        resp = self.lister(watch=True, resource_version=self.resource_version, allow_watch_bookmarks=True,
                           timeout_seconds=WATCH_SECONDS, _request_timeout=WATCH_SECONDS + 30,
                           _preload_content=False)
        try:
            for line in iter_resp_lines(resp):
                if stopped.is_set():
                    return
                if not line.strip():  # a keep-alive newline, no event
                    continue
                event = json.loads(line)
                obj = event.get("object") or {}
                if event.get("type") == "ERROR":
                    raise ApiException(status=obj.get("code"), reason=f"{obj.get('reason')}: {obj.get('message')}")
                version = (obj.get("metadata") or {}).get("resourceVersion")
                if event.get("type") != "BOOKMARK" and self.keep(obj):
                    self.observe(event["type"], obj)
                    self.heard(event["type"], obj)
                if version:
                    self.resource_version = version
        finally:
            resp.close()
            resp.release_conn()


@dataclass(eq=False)  # held in RUNNING by identity
class Caches:
    policies: PolicyCache = field(default_factory=PolicyCache)
    namespaces: NamespaceLabels = field(default_factory=NamespaceLabels)
    remediations: RemediationIndex = field(default_factory=RemediationIndex)
    nodes: NodeCache = field(default_factory=NodeCache)
    primed: threading.Event = field(default_factory=threading.Event)
    starting: threading.Lock = field(default_factory=threading.Lock)
    stopped: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    # Told of every Remediation, whole, as listed and watched: the operator's one watch on them (a kopf
    # watch besides would hold every object a second time: ~200 MiB more with 10,000 in the cluster).
    remediation_listeners: list[Callable[[str, dict], None]] = field(default_factory=list)
    targets: object | None = None  # targets.TargetWatches, made by the first probe (targets.of)

    def stop(self) -> None:
        self.stopped.set()
        if self.targets is not None:
            self.targets.stop()
        RUNNING.discard(self)

    def park(self) -> None:
        """Stop the watch threads, and let the next reader (`ensure`) prime and follow again: a context that
        outlives the test that started its watches (module- or session-scoped) is then not read frozen. Old
        threads keep the stopped event they were given."""
        self.stop()
        if not self.starting.acquire(timeout=5.0):  # a start under way, on a hung apiserver: stopped for good
            return
        try:
            self.stopped = threading.Event()
            self.primed.clear()
            self.threads = []
            self.targets = None
        finally:
            self.starting.release()


# Caches whose watch threads run: stopped at exit, so no daemon thread logs while the interpreter finalizes
# (which aborts it), and parked by the test suite after each test that started some. Held, not weakly: the probe
# watches' threads hold nothing of their Caches, so a context dropped while they ran was forgotten here, and its
# watches ran on unstopped; a Caches leaves once stopped or parked.
RUNNING: set[Caches] = set()


@atexit.register
def stop_all() -> None:
    for caches in list(RUNNING):
        caches.stop()


def park_all() -> None:
    """Every running cache stopped until its next reader starts it again (the test suite, after each test)."""
    for caches in list(RUNNING):
        caches.park()


def feeds(ctx) -> list[Feed]:
    """The LIST+WATCH pairs that fill ctx's caches, scoped as the operator serves."""
    custom = client.CustomObjectsApi(ctx.api)
    core = client.CoreV1Api(ctx.api)
    caches: Caches = ctx.caches

    def cluster(plural: str) -> Lister:
        return lambda **kw: custom.list_cluster_custom_object(GROUP, VERSION, plural, **kw)

    served = ctx.settings.namespaces
    exact = [ns for ns in served if not any(c in ns for c in "*?[")]
    out = [
        Feed("remediationpolicies", cluster("remediationpolicies"), caches.policies.replace, caches.policies.observe),
        Feed("namespaces", core.list_namespace, caches.namespaces.replace, caches.namespaces.observe),
        # and the change journal's view of Nodes (signals/changes.py; its other kinds: controller/journal.py)
        Feed("nodes", core.list_node, caches.nodes.replace, caches.nodes.observe, compact=node_fields,
             listen=lambda kind, obj: journal_node(ctx, kind, obj)),
        # Every namespace, whatever this operator serves: concurrency and storm guards count them all.
        Feed("remediations", cluster("remediations"), caches.remediations.replace, caches.remediations.observe,
             compact=guard_fields, listen=lambda kind, obj: [heard(kind, obj) for heard in caches.remediation_listeners]),
    ]
    if served and len(exact) == len(served):  # Runbooks only where it may read them
        for namespace in exact:
            out.append(Feed(
                f"runbooks/{namespace}",
                lambda ns=namespace, **kw: custom.list_namespaced_custom_object(GROUP, VERSION, ns, "runbooks", **kw),
                lambda items, ns=namespace: ctx.runbooks.replace_namespace(ns, items), ctx.runbooks.observe))
    else:
        out.append(Feed("runbooks", cluster("runbooks"), ctx.runbooks.replace_all, ctx.runbooks.observe,
                        keep=lambda obj: ctx.serves((obj.get("metadata") or {}).get("namespace", ""))))
    return out


def journal_node(ctx, kind: str, obj: dict) -> None:
    if kind == "DELETED":
        ctx.changes.forget(None, f"Node/{(obj.get('metadata') or {}).get('name')}")
    else:
        ctx.changes.observe_node(obj, datetime.now(timezone.utc))


def start(ctx) -> dict[str, int]:
    """Prime every cache (blocking: the caller serves nothing before), then follow each by a watch thread."""
    with ctx.caches.starting:
        if ctx.caches.primed.is_set():
            return {}
        return _start(ctx)


def ensure(ctx) -> Caches:
    """ctx's caches, primed: whatever order start-up runs in (or a test that drives a Loop itself), nothing
    reads them empty: the first reader primes them."""
    if not ctx.caches.primed.is_set():
        start(ctx)
    return ctx.caches


def policies(ctx) -> list[dict]:
    return ensure(ctx).policies.items()


def runbook(ctx, namespace: str, name: str) -> dict | None:
    ensure(ctx)
    return ctx.runbooks.body(namespace, name)


def _start(ctx) -> dict[str, int]:
    counts = {}
    started = []
    for feed in feeds(ctx):
        counts[feed.what] = feed.prime()
        started.append(feed)
    ctx.caches.primed.set()
    RUNNING.add(ctx.caches)
    for feed in started:
        thread = threading.Thread(target=feed.follow, args=(ctx.caches.stopped,), name=f"watch-{feed.what}",
                                  daemon=True)
        thread.start()
        ctx.caches.threads.append(thread)
    return counts


def stop(ctx) -> None:
    ctx.caches.stop()
