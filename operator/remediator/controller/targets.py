"""Watch-fed copies of what verification probes: the workloads and pods of the namespaces it probes in.

A probe used to GET the target and LIST its pods on every tick (17 of ~47 apiserver requests per incident). Here
the first probe in a namespace LISTs that namespace's pods (and the target's kind) once and follows them by a
watch (`caches.Feed`); later probes read the copies. Memory stays bounded: only the fields the probes read are
kept, at most MAX_NAMESPACES namespaces are watched, one holding more than MAX_OBJECTS of a kind is not held, nothing more is watched once MAX_HELD objects
are held, and a namespace nobody probed for IDLE_SECONDS is dropped.

A copy may lag the apiserver by a watch event. For a workload that matters right after the action (the copy
from before the PATCH would show the old generation fully rolled out), so a copy is used only once it carries
the step's idempotency key, which the action's own PATCH stamps: from then on the copy is as new as the action
or newer. Anything the copies cannot answer (not yet primed, a watch refused or broken since its last event, a
key not seen yet) returns None and the probe reads the apiserver as before.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from kubernetes import client

from ..actions.base import KEYS_ANNOTATION, is_recorded

from . import caches
from .caches import Feed

log = logging.getLogger("remediator.targets")

IDLE_SECONDS = 600.0  # a namespace not probed for this long stops being watched
MAX_NAMESPACES = 64  # watched at once; beyond, probes read the apiserver
RETRY_SECONDS = 60.0  # after a refused LIST (e.g. RBAC), before trying to watch that namespace again
MAX_OBJECTS = 2000  # of one kind in one namespace: a bigger one is not held (probes read the apiserver there)
MAX_HELD = 10000  # objects held in all: past it, no new namespace or kind is watched


def label_pairs(item: Mapping | None) -> list[tuple[str, str]]:
    """Its labels as (key, value) pairs; any not string to string (the apiserver allows none) is left out."""
    labels = ((item or {}).get("metadata") or {}).get("labels")
    return [(k, v) for k, v in labels.items() if isinstance(k, str) and isinstance(v, str)] \
        if isinstance(labels, Mapping) else []


class Objects:
    """One kind in one namespace, by name, as compact dicts, and the names carrying each label (key, value): a
    selector's pods are found without scanning the namespace (as client-go's indexers)."""

    def __init__(self, compact: Callable[[Mapping], dict]) -> None:
        self._lock = threading.Lock()
        self._by_name: dict[str, dict] = {}
        self._by_label: dict[tuple[str, str], set[str]] = {}
        self.compact = compact
        # False from a failed watch until the next event or re-list: the copies may have missed changes then
        self.live = True

    def replace(self, items: Iterable[Mapping]) -> None:
        fresh = {item["metadata"]["name"]: dict(item) for item in items}
        by_label: dict[tuple[str, str], set[str]] = {}
        for name, item in fresh.items():
            for pair in label_pairs(item):
                by_label.setdefault(pair, set()).add(name)
        with self._lock:
            self._by_name, self._by_label = fresh, by_label
            self.live = True

    def observe(self, event_type: str, obj: Mapping) -> None:
        name = obj["metadata"]["name"]
        kept = None if event_type == "DELETED" else self.compact(obj)
        pairs = label_pairs(kept)
        with self._lock:
            self.live = True
            old = self._by_name.pop(name, None) if kept is None else self._by_name.get(name)
            if kept is not None:
                self._by_name[name] = kept
            was = label_pairs(old)
            if was == pairs:  # most events change a pod's status, not its labels
                return
            for pair in was:
                names = self._by_label.get(pair)
                if names is not None:
                    names.discard(name)
                    if not names:
                        del self._by_label[pair]
            for pair in pairs:
                self._by_label.setdefault(pair, set()).add(name)

    def get(self, name: str) -> dict | None:
        with self._lock:
            return self._by_name.get(name)

    def items(self, labels: Mapping[str, str] | None = None) -> list[dict]:
        """All of them, or those carrying every label of `labels` (by name, as a LIST orders them)."""
        with self._lock:
            if not labels:
                return list(self._by_name.values())
            sets = [self._by_label.get((k, v), set()) if isinstance(v, str) else set() for k, v in labels.items()]
            fewest = min(sets, key=len)
            return [self._by_name[n] for n in sorted(fewest) if all(n in s for s in sets)]

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_name)


@dataclass
class WatchedFeed(Feed):
    """A Feed that marks its copies not live when its watch fails (a dropped connection, a refused watch)."""

    objects: Objects | None = None

    def _watch_once(self, stopped: threading.Event) -> None:
        try:
            super()._watch_once(stopped)
        except BaseException:
            self.interrupted()
            raise

    def interrupted(self) -> None:
        if self.objects is not None:
            self.objects.live = False


def compact_metadata(meta: Mapping) -> dict:
    kept = {k: meta[k] for k in ("name", "namespace", "uid", "generation", "labels", "deletionTimestamp")
            if k in meta}
    keys = (meta.get("annotations") or {}).get(KEYS_ANNOTATION)
    if keys is not None:
        kept["annotations"] = {KEYS_ANNOTATION: keys}
    controllers = [{"kind": o.get("kind"), "name": o.get("name"), "controller": True}
                   for o in meta.get("ownerReferences") or [] if o.get("controller")]
    if controllers:  # a pod's controller: what replaces it, named in its observation
        kept["ownerReferences"] = controllers[:1]
    return kept


def compact_pod(obj: Mapping) -> dict:
    """What `pod_observation_of` reads of a pod: phase, conditions and each container's restarts and state
    reasons (not its spec, managed fields, images or messages: most of a pod's size)."""
    status = obj.get("status") or {}

    def reasons(state: Mapping | None) -> dict:
        return {k: {"reason": v.get("reason")} for k, v in (state or {}).items() if isinstance(v, Mapping)}

    def container(c: Mapping) -> dict:
        return {"name": c.get("name", ""), "restartCount": c.get("restartCount") or 0,
                "state": reasons(c.get("state")), "lastState": reasons(c.get("lastState"))}
    return {"metadata": compact_metadata(obj.get("metadata") or {}),
            "spec": {"nodeName": (obj.get("spec") or {}).get("nodeName")},
            "status": {"phase": status.get("phase"),
                       "conditions": [{"type": c.get("type"), "status": c.get("status")}
                                      for c in status.get("conditions") or []],
                       **{kind: [container(c) for c in status.get(kind) or []]
                          for kind in ("containerStatuses", "initContainerStatuses")}}}


def compact_workload(obj: Mapping) -> dict:
    """What `probes` reads of a Deployment, StatefulSet or DaemonSet (not its pod template)."""
    spec = obj.get("spec") or {}
    return {"metadata": compact_metadata(obj.get("metadata") or {}),
            "spec": {k: spec[k] for k in ("replicas", "selector", "paused", "updateStrategy") if k in spec},
            "status": obj.get("status") or {}}


class Namespace:
    """The watched kinds of one namespace and the event that stops their watches."""

    def __init__(self) -> None:
        self.stopped = threading.Event()
        self.used = time.monotonic()
        self.kinds: dict[str, Objects] = {}
        self.retry_at: dict[str, float] = {}  # kind -> when to try again after a refused or oversized LIST


class TargetWatches:
    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self._lock = threading.Lock()
        self._priming: dict[tuple[str, str], threading.Lock] = {}
        self._namespaces: dict[str, Namespace] = {}
        self._stopped = False

    def workload(self, kind: str, namespace: str, name: str, key: str | None) -> dict | None:
        """The workload as its watch last delivered it, once that copy carries `key` (the step's own PATCH);
        None when the copy cannot be trusted to be as new as the action, or is not there."""
        if not key:
            return None
        objects = self._objects(namespace, kind)
        found = objects.get(name) if objects is not None else None
        if found is None or not is_recorded((found["metadata"].get("annotations") or {}), key):
            return None
        return found

    def pods(self, namespace: str, labels: Mapping[str, str] | None = None) -> list[dict] | None:
        """The namespace's pods carrying `labels` (a selector's matchLabels; the rest of the selection is the
        caller's), or None when not watched."""
        objects = self._objects(namespace, "Pod")
        return objects.items(labels) if objects is not None else None

    def pods_if_watched(self, namespace: str, labels: Mapping[str, str] | None = None) -> list[dict] | None:
        """As `pods` when a probe's watch already follows the namespace; never starts one (None)."""
        with self._lock:
            watched = self._namespaces.get(namespace)
            objects = watched.kinds.get("Pod") if watched is not None else None
        return objects.items(labels) if objects is not None and objects.live else None

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            for watched in self._namespaces.values():
                watched.stopped.set()
            self._namespaces.clear()

    def watched(self) -> list[str]:
        with self._lock:
            return sorted(self._namespaces)

    def _objects(self, namespace: str, kind: str) -> Objects | None:
        now = time.monotonic()
        with self._lock:
            if self._stopped:
                return None
            self._drop_idle(now)
            watched = self._namespaces.get(namespace)
            if watched is None:
                if len(self._namespaces) >= MAX_NAMESPACES:
                    return None
                watched = self._namespaces[namespace] = Namespace()
            watched.used = now
            objects = watched.kinds.get(kind)
            if objects is not None:
                return objects if objects.live else None
            if now < watched.retry_at.get(kind, 0.0) or self._held() >= MAX_HELD:
                return None
            priming = self._priming.setdefault((namespace, kind), threading.Lock())
        with priming:  # one LIST per (namespace, kind), even when several probes ask at once
            with self._lock:
                if kind in watched.kinds:
                    return watched.kinds[kind]
            objects = Objects(compact_pod if kind == "Pod" else compact_workload)
            feed = WatchedFeed(f"{kind.lower()}s/{namespace}", lister(self.api, kind, namespace), objects.replace,
                               objects.observe, compact=objects.compact, objects=objects)
            try:
                if feed.prime() > MAX_OBJECTS:
                    with self._lock:
                        watched.retry_at[kind] = time.monotonic() + IDLE_SECONDS
                    return None
            except Exception as e:  # noqa: BLE001  refused or unreachable: the probe reads the apiserver
                log.warning("could not watch probe targets", extra={"namespace": namespace, "kind": kind,
                                                                   "error": str(e)[:200]})
                with self._lock:
                    watched.retry_at[kind] = time.monotonic() + RETRY_SECONDS
                return None
            with self._lock:
                if watched.stopped.is_set():
                    return None
                watched.kinds[kind] = objects
            threading.Thread(target=feed.follow, args=(watched.stopped,), name=f"watch-{feed.what}",
                             daemon=True).start()
            return objects

    def _held(self) -> int:
        return sum(len(objects) for watched in self._namespaces.values() for objects in watched.kinds.values())

    def _drop_idle(self, now: float) -> None:
        for namespace, watched in list(self._namespaces.items()):
            if now - watched.used > IDLE_SECONDS:
                watched.stopped.set()
                del self._namespaces[namespace]
                for kind in list(watched.kinds):
                    self._priming.pop((namespace, kind), None)


LISTS = {"Pod": (client.CoreV1Api, "list_namespaced_pod"),
         "Deployment": (client.AppsV1Api, "list_namespaced_deployment"),
         "StatefulSet": (client.AppsV1Api, "list_namespaced_stateful_set"),
         "DaemonSet": (client.AppsV1Api, "list_namespaced_daemon_set")}


def lister(api: client.ApiClient, kind: str, namespace: str):
    group, name = LISTS[kind]
    method = getattr(group(api), name)
    return lambda **kw: method(namespace, **kw)



def of(ctx) -> TargetWatches:
    """ctx's probe watches, made on first use."""
    with ctx.caches.starting:
        if ctx.caches.targets is None:
            ctx.caches.targets = TargetWatches(ctx.api)
            caches.RUNNING.add(ctx.caches)
        return ctx.caches.targets
