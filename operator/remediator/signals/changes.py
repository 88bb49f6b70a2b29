"""The change journal: what changed recently on workloads and what they reference, kept in memory.

Fed by kopf event handlers (controller/handlers.py) on Deployments,
ReplicaSets, ControllerRevisions, ConfigMaps, HorizontalPodAutoscalers and
Nodes, and primed at start from the apiserver's current state: rollouts are
rebuilt from the revision history (creationTimestamp, pod template, and the
revision number: a Deployment's or an Argo Rollout's ReplicaSets by their
revision annotation, a StatefulSet's or DaemonSet's ControllerRevisions), and
ConfigMaps, HPAs and Nodes from the time of their last update (managedFields,
Ready transition), so a restarted operator still knows what changed before it
started. No new storage: the apiserver is the record.

Bounded: each object keeps at most `per_object` changes, none older than the
window. Compact: kinds, names, images, key names and short digests; never a
value that could be a secret.

Secrets are never listed, watched or read: the operator's ServiceAccount may
not read Secrets in tenant namespaces. A Secret change is seen only where a
workload's pod template shows it: a Secret reference added, removed or
renamed, or a restart-style annotation (checksum/secret, a reloader's) changed.

`find_cause` is the edge the loop calls once per Remediation: it reads the
target and what it references, takes the journal's changes and lets the pure
core.cause rank them.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from kubernetes import client
from kubernetes.client.rest import ApiException

from ..api.models import ProbableCause, RemediationSpec
from ..actions.base import Read, read_of
from ..actions.kube import label_selector_text
from ..core.plan import cause
from ..core.pod_health import match_labels, selects
from ..core.plan.autoscalers import LEASE_ORIGINAL, LEASE_WRITTEN
from ..core.durations import parse_time
from ..core.revisions import revision_number
from ..kube import as_json, call_retrying, read_workload_json

log = logging.getLogger("remediator.changes")

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
ARGO_REVISION = "rollout.argoproj.io/revision"
# owner kind -> the ReplicaSet annotation that numbers its revisions
REPLICASET_REVISIONS = {"Deployment": REVISION, "Rollout": ARGO_REVISION}
REVISIONED_KINDS = ("Deployment", "Rollout", "StatefulSet", "DaemonSet")
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
KEPT_REVISIONS = 16
# A Ready transition this soon after a node's creation is its start, not a change.
NODE_SETTLE = timedelta(minutes=1)


def digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:12]


def parse_k8s_time(value) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return parse_time(str(value))


def last_update(meta: dict) -> datetime | None:
    """When the object's spec/data was last written (managedFields), status writes left out."""
    times = [parse_k8s_time(f.get("time")) for f in meta.get("managedFields") or []
             if f.get("subresource") != "status" and f.get("time")]
    return max((t for t in times if t), default=None)


def to_second(moment: datetime) -> datetime:
    """Kubernetes and Alertmanager times are compared to the second."""
    return moment.replace(microsecond=0)


def written(meta: dict, now: datetime) -> datetime:
    """When a change seen live was written: the apiserver's time of the last write, else when it was seen."""
    return to_second(last_update(meta) or now)


# ---------------------------------------------------------------- pod templates (pure)


@dataclass(frozen=True)
class TemplateSummary:
    """What a pod template is made of, compactly: values of env vars and annotations only as digests."""

    images: dict[str, str]
    env: dict[str, str]  # "container/NAME" -> digest of its value, or "configMap:name/key", "secret:name/key"
    config_maps: frozenset[str]
    secrets: frozenset[str]
    annotations: dict[str, str]  # name -> digest of the value
    rest: str  # digest of everything else
    whole: str


def summarise_template(template: dict) -> TemplateSummary:
    template = copy.deepcopy(template or {})
    meta = template.get("metadata") or {}
    (meta.get("labels") or {}).pop("pod-template-hash", None)
    spec = template.get("spec") or {}
    images, env, config_maps, secrets = {}, {}, set(), set()
    for container in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        name = container.get("name", "")
        images[name] = container.pop("image", "")
        for var in container.pop("env", None) or []:
            source = var.get("valueFrom") or {}
            if ref := source.get("configMapKeyRef"):
                config_maps.add(ref.get("name", ""))
                env[f"{name}/{var['name']}"] = f"configMap:{ref.get('name')}/{ref.get('key')}"
            elif ref := source.get("secretKeyRef"):
                secrets.add(ref.get("name", ""))
                env[f"{name}/{var['name']}"] = f"secret:{ref.get('name')}/{ref.get('key')}"
            else:
                env[f"{name}/{var['name']}"] = digest(var.get("value") or source)
        for source in container.pop("envFrom", None) or []:
            if ref := source.get("configMapRef"):
                config_maps.add(ref.get("name", ""))
            if ref := source.get("secretRef"):
                secrets.add(ref.get("name", ""))
    for volume in spec.pop("volumes", None) or []:
        if "configMap" in volume:
            config_maps.add(volume["configMap"].get("name", ""))
        if "secret" in volume:
            secrets.add(volume["secret"].get("secretName", ""))
        for projected in (volume.get("projected") or {}).get("sources") or []:
            if "configMap" in projected:
                config_maps.add(projected["configMap"].get("name", ""))
            if "secret" in projected:
                secrets.add(projected["secret"].get("name", ""))
    secrets |= {s.get("name", "") for s in spec.pop("imagePullSecrets", None) or []}
    annotations = {k: digest(v) for k, v in (meta.pop("annotations", None) or {}).items()}
    return TemplateSummary(images=images, env=env, config_maps=frozenset(config_maps - {""}),
                           secrets=frozenset(secrets - {""}), annotations=annotations, rest=digest(template),
                           whole=digest([images, env, sorted(config_maps), sorted(secrets), annotations,
                                         template]))


def set_change(what: str, before: frozenset[str], after: frozenset[str]) -> str | None:
    added, removed = sorted(after - before), sorted(before - after)
    if not added and not removed:
        return None
    return f"{what} " + " ".join([*(f"+{n}" for n in added), *(f"-{n}" for n in removed)])


def describe_template_change(before: TemplateSummary | None, after: TemplateSummary) -> tuple[str, str]:
    """(cause kind, what changed) between two pod templates; kinds by what the change touched."""
    if before is None:
        return "rollout", f"pod template {after.whole} (the previous revision is no longer kept)"
    parts: list[tuple[str, str]] = []
    for name in sorted(set(before.images) | set(after.images)):
        old, new = before.images.get(name, "(none)"), after.images.get(name, "(none)")
        if old != new:
            label = "image" if len(after.images) == 1 and name in after.images else f"image of {name}"
            parts.append(("rollout", f"{label} {old} → {new}"))
    if text := set_change("Secret refs", before.secrets, after.secrets):
        parts.append(("secretChange", text))
    if text := set_change("ConfigMap refs", before.config_maps, after.config_maps):
        parts.append(("configChange", text))
    changed_env = sorted(k for k in set(before.env) | set(after.env) if before.env.get(k) != after.env.get(k))
    if changed_env:
        sources = {before.env.get(k, "") + after.env.get(k, "") for k in changed_env}
        kind = ("secretChange" if all("secret:" in s for s in sources)
                else "configChange" if all("configMap:" in s for s in sources) else "rollout")
        parts.append((kind, "env " + ", ".join(k.split("/", 1)[1] for k in changed_env)))
    changed_notes = sorted(k for k in set(before.annotations) | set(after.annotations)
                           if before.annotations.get(k) != after.annotations.get(k))
    for key in changed_notes:
        lowered = key.lower()
        kind = "secretChange" if "secret" in lowered else "configChange" if "config" in lowered else "rollout"
        parts.append((kind, "restarted" if key == RESTARTED_AT else f"annotation {key} changed"))
    if before.rest != after.rest:
        parts.append(("rollout", "pod template changed"))
    if not parts:
        return "rollout", "same pod template"
    kinds = {kind for kind, _ in parts}
    kind = ("rollout" if "rollout" in kinds and not all(text == "restarted" for k, text in parts if k == "rollout")
            else "secretChange" if "secretChange" in kinds else "configChange" if "configChange" in kinds
            else "rollout")
    return kind, "; ".join(text for _, text in parts)


# ---------------------------------------------------------------- the journal


@dataclass
class ChangeJournal:
    window: timedelta = cause.DEFAULT_WINDOW
    per_object: int = 20
    ready: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _changes: dict[tuple[str | None, str], deque] = field(default_factory=dict)
    _seen: dict[tuple[str | None, str], object] = field(default_factory=dict)  # last state per object
    # (namespace, "Kind/name") -> revision -> (template, name of the ReplicaSet/ControllerRevision, created)
    _revisions: dict[tuple[str, str], dict[int, tuple[TemplateSummary, str, datetime]]] = field(default_factory=dict)
    # (namespace, "Kind/name") -> the uid of the workload those revisions belong to: a workload deleted and made
    # again under its name starts its numbering over (no watch tells of a deleted Argo Rollout)
    _revision_owners: dict[tuple[str, str], str] = field(default_factory=dict)
    _hpa_targets: dict[tuple[str, str], str] = field(default_factory=dict)  # (ns, hpa) -> "Deployment/web"
    # told of every new revision (namespace, "Kind/name", workload uid, revision, when): the rollout counts
    on_rollout: Callable[[str, str, str, int, datetime], None] | None = None

    def record(self, change: cause.Change, now: datetime) -> bool:
        if now - change.at > self.window:
            return False
        key = (change.namespace, change.object)
        with self._lock:
            kept = self._changes.setdefault(key, deque(maxlen=self.per_object))
            if any(c.kind == change.kind and c.at == change.at and c.revision == change.revision for c in kept):
                return False
            kept.append(change)
        log.info("change recorded", extra={"object": f"{change.namespace or ''}/{change.object}",
                                           "kind": change.kind, "what": change.what})
        return True

    def changes(self, namespace: str | None, objects: Iterable[str], now: datetime) -> list[cause.Change]:
        """Changes inside the window to these objects ("Kind/name"; Nodes are looked up cluster-wide)."""
        out = []
        with self._lock:
            for obj in objects:
                key = (None, obj) if obj.startswith("Node/") else (namespace, obj)
                kept = self._changes.get(key)
                if kept is None:
                    continue
                fresh = [c for c in kept if now - c.at <= self.window]
                if len(fresh) < len(kept):  # out of the window: dropped, as a rebuild would not find them
                    self._changes[key] = deque(fresh, maxlen=self.per_object)
                out += fresh
        return out

    def hpas_for(self, namespace: str, target: str) -> set[str]:
        with self._lock:
            return {f"HorizontalPodAutoscaler/{name}" for (ns, name), ref in self._hpa_targets.items()
                    if ns == namespace and ref == target}

    def knows_revision(self, namespace: str, owner: str, uid: str, revision: int | None) -> bool:
        """The journal holds revision `revision` of `owner` ("Kind/name", that uid): having seen it, from a watch
        whose events come in order or from a LIST, it holds every revision before it too."""
        with self._lock:
            return revision is not None and self._revision_owners.get((namespace, owner)) == uid and \
                revision in self._revisions.get((namespace, owner), {})

    def swap_seen(self, key: tuple[str | None, str], state) -> tuple[bool, object]:
        """Store the object's state; (seen before, previous state)."""
        with self._lock:
            known = key in self._seen
            previous = self._seen.get(key)
            self._seen[key] = state
        return known, previous

    def forget(self, namespace: str | None, obj: str) -> None:
        with self._lock:
            self._seen.pop((namespace, obj), None)
            if obj.split("/", 1)[0] in REVISIONED_KINDS and namespace:
                self._revisions.pop((namespace, obj), None)
                self._revision_owners.pop((namespace, obj), None)
            if obj.startswith("HorizontalPodAutoscaler/") and namespace:
                self._hpa_targets.pop((namespace, obj.split("/", 1)[1]), None)

    # ------------------------------------------------------------ observers, one per watched kind

    def observe_replicaset(self, rs: dict, now: datetime) -> None:
        """A Deployment's or an Argo Rollout's ReplicaSet: one revision of its pod template. Only the controlling
        reference counts: a ReplicaSet that merely names the workload is no revision of it. (Whoever may create
        ReplicaSets in the namespace may still write a controlling one; they may change the workload too.)"""
        meta = rs.get("metadata") or {}
        owner = next(((o["kind"], o["name"]) for o in meta.get("ownerReferences") or []
                      if o.get("kind") in REPLICASET_REVISIONS and o.get("controller")), None)
        if owner is None:
            return
        revision = revision_number((meta.get("annotations") or {}).get(REPLICASET_REVISIONS[owner[0]]))
        if revision is None:
            return
        self.observe_revision(f"{owner[0]}/{owner[1]}", meta, revision, (rs.get("spec") or {}).get("template"),
                              REVISION_HISTORY in (meta.get("annotations") or {}), now)

    def observe_controllerrevision(self, cr: dict, now: datetime) -> None:
        """A StatefulSet's or DaemonSet's ControllerRevision: its `data` is the template as a strategic patch."""
        meta = cr.get("metadata") or {}
        owner = next((f"{o['kind']}/{o['name']}" for o in meta.get("ownerReferences") or []
                      if o.get("kind") in ("StatefulSet", "DaemonSet") and o.get("controller")), None)
        revision = cr.get("revision")
        if owner is None or not isinstance(revision, int):
            return
        template = dict(((cr.get("data") or {}).get("spec") or {}).get("template") or {})
        template.pop("$patch", None)
        self.observe_revision(owner, meta, revision, template, False, now)

    def observe_revision(self, owner: str, meta: dict, revision: int, template: dict | None, reused: bool,
                         now: datetime) -> None:
        """One revision of `owner`'s pod template ("Kind/name"). A rollback (ours or `kubectl rollout undo`)
        brings an earlier template back under a new number: the history annotation says so (ReplicaSets), the
        same object seen before at another number (watched), or an object older than a lower revision's
        (rebuilt at start). Then the revisions it replaced are no longer running, and blaming the rollback
        itself would roll the bad one back in."""
        if meta.get("deletionTimestamp"):
            return  # on its way out (a cascading delete): no revision of what runs now
        namespace, name = meta.get("namespace", ""), meta.get("name", "")
        summary = summarise_template(template or {})
        at = parse_k8s_time(meta.get("creationTimestamp")) or now
        uid = next((o.get("uid", "") for o in meta.get("ownerReferences") or []
                    if f"{o.get('kind')}/{o.get('name')}" == owner), "")
        with self._lock:
            if self._revision_owners.get((namespace, owner), uid) != uid:  # made again: its numbers start over
                self._revisions.pop((namespace, owner), None)
            self._revision_owners[(namespace, owner)] = uid
            known = self._revisions.setdefault((namespace, owner), {})
            if revision in known:
                return
            reused = reused or any(seen_name == name or seen_at > at
                                   for r, (_, seen_name, seen_at) in known.items() if r < revision)
            known[revision] = (summary, name, at)
            if self.on_rollout is not None:
                # a rollback rolls out now under a new number, whatever its ReplicaSet's age
                self.on_rollout(namespace, owner, uid, revision, now if reused else at)
            for old in sorted(known)[:-KEPT_REVISIONS]:
                del known[old]
            earlier = [r for r in known if r < revision]
            previous = known[max(earlier)][0] if earlier else None
            if reused:
                kept = self._changes.get((namespace, owner), deque())
                undone = [c for c in kept if c.revision is not None]
                self._changes[(namespace, owner)] = deque(
                    (c for c in kept if c.revision is None), maxlen=self.per_object)
        if reused:
            if undone:
                log.info("rollouts undone by a rollback", extra={
                    "object": f"{namespace}/{owner}", "revision": revision, "undone": [c.revision for c in undone]})
            return
        if previous is None and revision == 1:
            return  # the first revision is the workload's creation: there is nothing to undo
        kind, what = describe_template_change(previous, summary)
        self.record(cause.Change(
            kind=kind, object=owner, namespace=namespace, at=at, revision=str(revision),
            what=f"{owner} revision {revision} rolled out: {what}",
            before=previous.whole if previous else "", after=summary.whole), now)

    def observe_deployment(self, deployment: dict, now: datetime) -> None:
        meta = deployment.get("metadata") or {}
        replicas = (deployment.get("spec") or {}).get("replicas")
        name, namespace = meta.get("name", ""), meta.get("namespace", "")
        known, previous = self.swap_seen((namespace, f"Deployment/{name}"), replicas)
        if known and previous != replicas:
            self.record(cause.Change(kind="scaleChange", object=f"Deployment/{name}", namespace=namespace,
                                     at=written(meta, now),
                                     what=f"Deployment/{name} scaled {previous} → {replicas}",
                                     before=str(previous), after=str(replicas)), now)

    def observe_configmap(self, configmap: dict, now: datetime) -> None:
        meta = configmap.get("metadata") or {}
        name, namespace = meta.get("name", ""), meta.get("namespace", "")
        keys = {k: digest(v) for k, v in {**(configmap.get("data") or {}),
                                          **(configmap.get("binaryData") or {})}.items()}
        known, previous = self.swap_seen((namespace, f"ConfigMap/{name}"), keys)
        obj = f"ConfigMap/{name}"
        if known:
            if previous != keys:
                changed = sorted(k for k in set(previous) | set(keys) if previous.get(k) != keys.get(k))
                self.record(cause.Change(kind="configChange", object=obj, namespace=namespace,
                                         at=written(meta, now), what=f"{obj} changed keys {', '.join(changed)}",
                                         before=digest(previous), after=digest(keys)), now)
            return
        self.record_last_update("configChange", obj, namespace, meta, digest(keys), now)

    def observe_hpa(self, hpa: dict, now: datetime) -> None:
        meta, spec = hpa.get("metadata") or {}, hpa.get("spec") or {}
        name, namespace = meta.get("name", ""), meta.get("namespace", "")
        ref = spec.get("scaleTargetRef") or {}
        with self._lock:
            self._hpa_targets[(namespace, name)] = f"{ref.get('kind')}/{ref.get('name')}"
        state = {"min": spec.get("minReplicas", 1), "max": spec.get("maxReplicas"),
                 "rest": digest({k: v for k, v in spec.items() if k not in ("minReplicas", "maxReplicas")}),
                 "lease": lease_values(meta.get("annotations") or {})}
        obj = f"HorizontalPodAutoscaler/{name}"
        known, previous = self.swap_seen((namespace, obj), state)
        if known:
            if operators_own(previous, state):
                return  # our own autoscaler lease raised or restored it: not a cause of anything
            if any(previous.get(k) != state[k] for k in ("min", "max", "rest")):
                parts = [f"{k}Replicas {previous[k]} → {state[k]}" for k in ("min", "max")
                         if previous[k] != state[k]]
                parts += ["metrics/behavior changed"] if previous["rest"] != state["rest"] else []
                self.record(cause.Change(kind="hpaChange", object=obj, namespace=namespace,
                                         at=written(meta, now), what=f"{obj} changed: {', '.join(parts)}",
                                         before=digest(previous), after=digest(state)), now)
            return
        self.record_last_update("hpaChange", obj, namespace, meta, digest(state), now)

    def observe_node(self, node: dict, now: datetime) -> None:
        meta, spec, status = node.get("metadata") or {}, node.get("spec") or {}, node.get("status") or {}
        ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
        state = {"unschedulable": bool(spec.get("unschedulable")), "ready": ready.get("status", "Unknown"),
                 "taints": sorted(f"{t.get('key')}:{t.get('effect')}" for t in spec.get("taints") or []),
                 "kubelet": (status.get("nodeInfo") or {}).get("kubeletVersion", "")}
        obj = f"Node/{meta.get('name', '')}"
        known, previous = self.swap_seen((None, obj), state)
        if known:
            if previous != state:
                parts = [f"{k} {previous[k]} → {state[k]}" for k in state if previous[k] != state[k]]
                self.record(cause.Change(kind="nodeChange", object=obj, namespace=None, at=to_second(now),
                                         what=f"{obj} {', '.join(parts)}",
                                         before=digest(previous), after=digest(state)), now)
            return
        # First sight: only a node that is degraded now is a change; a Ready node's transition times are
        # rewritten by some node agents (KWOK's heartbeats) and say nothing.
        created = parse_k8s_time(meta.get("creationTimestamp"))
        if state["ready"] != "True":
            since = parse_k8s_time(ready.get("lastTransitionTime")) or created
            if since and created and since - created > NODE_SETTLE:
                self.record(cause.Change(kind="nodeChange", object=obj, namespace=None, at=since,
                                         what=f"{obj} Ready={state['ready']}", after=digest(state)), now)
        if state["unschedulable"] and (cordoned := last_update(meta)):
            self.record(cause.Change(kind="nodeChange", object=obj, namespace=None, at=cordoned,
                                     what=f"{obj} cordoned (unschedulable)", after=digest(state)), now)

    def record_last_update(self, kind: str, obj: str, namespace: str, meta: dict, after: str,
                           now: datetime) -> None:
        """First sight of an object (start, or a rewatch): its last update after creation is a change."""
        created, updated = parse_k8s_time(meta.get("creationTimestamp")), last_update(meta)
        if created and updated and updated > created:
            self.record(cause.Change(kind=kind, object=obj, namespace=namespace, at=updated,
                                     what=f"{obj} updated (last write before the operator saw it)",
                                     after=after), now)


def lease_values(annotations: dict) -> tuple[dict, dict] | None:
    """(original, written) min/max of the operator's autoscaler lease on an HPA (core.plan.autoscalers), if any."""
    try:
        original, written = (json.loads(annotations[k]) for k in (LEASE_ORIGINAL, LEASE_WRITTEN))
    except (KeyError, ValueError, TypeError):
        return None
    return (original, written) if isinstance(original, dict) and isinstance(written, dict) else None


def operators_own(previous: dict, state: dict) -> bool:
    """Only min/max changed, to what the operator's lease wrote (the raise) or back to what it kept as the
    original when the lease ended (the restore)."""
    if previous.get("rest") != state["rest"] or (previous.get("min"), previous.get("max")) == (state["min"], state["max"]):
        return False
    now = {"minReplicas": state["min"], "maxReplicas": state["max"]}
    if state["lease"] is not None:
        return state["lease"][1] == now
    return previous.get("lease") is not None and previous["lease"][0] == now


# ---------------------------------------------------------------- the edge: prime, and find a cause


def revision_of(rs: dict) -> int:
    annotations = (rs.get("metadata") or {}).get("annotations") or {}
    text = annotations.get(REVISION) or annotations.get(ARGO_REVISION) or ""
    return revision_number(text) or 0


def prime(journal: ChangeJournal, api: client.ApiClient, namespaces: Iterable[str] = (),
          serves=lambda namespace: True, configmaps: bool = True) -> int:
    """Rebuild the journal from what the apiserver holds now (`namespaces` empty: all that `serves` accepts);
    returns the number of ReplicaSets read. Without ReplicaSets the journal stays not ready (causes unknown);
    a kind it may not list (ConfigMaps, HPAs, Nodes) is only left out, with a warning; `configmaps` False:
    ConfigMaps are not even asked for (the operator was given no right to read them)."""
    apps, core, autoscaling = client.AppsV1Api(api), client.CoreV1Api(api), client.AutoscalingV2Api(api)
    now = datetime.now(UTC)
    read = 0

    def listed(what, namespaced, cluster, namespace, required=False) -> list[dict]:
        try:
            result = call_retrying(namespaced, namespace) if namespace else call_retrying(cluster)
        except ApiException as e:
            if required or e.status not in (403, 404):
                raise
            log.warning("change journal: cannot list %s, their changes are not seen", what,
                        extra={"namespace": namespace, "status": e.status})
            return []
        return [api.sanitize_for_serialization(item) for item in result.items
                if item.metadata.namespace is None or serves(item.metadata.namespace)]

    for namespace in list(namespaces) or [None]:
        sets = listed("replicasets", apps.list_namespaced_replica_set, apps.list_replica_set_for_all_namespaces,
                      namespace, required=True)
        for item in sorted(sets, key=revision_of):
            journal.observe_replicaset(item, now)
        for item in sorted(listed("controllerrevisions", apps.list_namespaced_controller_revision,
                                  apps.list_controller_revision_for_all_namespaces, namespace),
                           key=lambda cr: cr.get("revision") or 0):
            journal.observe_controllerrevision(item, now)
        for item in listed("deployments", apps.list_namespaced_deployment, apps.list_deployment_for_all_namespaces,
                           namespace):
            journal.observe_deployment(item, now)
        for item in listed("configmaps", core.list_namespaced_config_map, core.list_config_map_for_all_namespaces,
                           namespace) if configmaps else []:
            journal.observe_configmap(item, now)
        for item in listed("horizontalpodautoscalers", autoscaling.list_namespaced_horizontal_pod_autoscaler,
                           autoscaling.list_horizontal_pod_autoscaler_for_all_namespaces, namespace):
            journal.observe_hpa(item, now)
        read += len(sets)
    for item in listed("nodes", None, core.list_node, None):
        journal.observe_node(item, now)
    journal.ready = True
    return read


def target_of(api: client.ApiClient, journal: ChangeJournal, spec: RemediationSpec,
              watched_pods: Callable[[str, dict], list[dict] | None] | None = None,
              read: Read = None) -> cause.Target:
    """The target and what it references: ConfigMaps of its pod template, its HPAs, the Nodes of its pods.
    `watched_pods`: a namespace's pods as a watch already following them keeps them (None: none does), read
    instead of a LIST; `read`: the workload as the caller read it just now, instead of a GET."""
    ref = spec.target
    namespace = ref.namespace or ""
    if ref.kind == "Node":
        return cause.Target("Node", None, ref.name)
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    references: set[str] = set()
    try:
        if ref.kind == "Pod":
            pod = as_json(core.read_namespaced_pod, ref.name, namespace)
            template = pod
            pods = [pod]
            for owner in (pod.get("metadata") or {}).get("ownerReferences") or []:
                if not owner.get("controller"):
                    continue
                if owner.get("kind") == "ReplicaSet":
                    rs = apps.read_namespaced_replica_set(owner["name"], namespace)
                    references |= {f"{o.kind}/{o.name}" for o in rs.metadata.owner_references or []
                                   if o.kind in REPLICASET_REVISIONS and o.controller}
                elif owner.get("kind") in ("StatefulSet", "DaemonSet"):
                    references.add(f"{owner['kind']}/{owner['name']}")
        else:
            workload = read_of(ref, read) or read_workload_json(api, ref.kind, ref.name, namespace)
            template = (workload.get("spec") or {}).get("template") or {}
            labels = {"matchLabels": ((workload.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}}
            selector = label_selector_text(labels)
            pods = selected_pods(core, namespace, labels, watched_pods) if selector else []
            # the revision history itself, in case a watch event lags; the workload's own revision annotation
            # says whether it does (the controller numbers a ReplicaSet before it names it the workload's)
            current = revision_number(((workload.get("metadata") or {}).get("annotations") or {}).get(
                REPLICASET_REVISIONS.get(ref.kind, "")))
            if selector and not journal.knows_revision(namespace, f"{ref.kind}/{ref.name}",
                                                       (workload.get("metadata") or {}).get("uid", ""), current):
                now = datetime.now(UTC)
                if ref.kind in REPLICASET_REVISIONS:
                    sets = as_json(apps.list_namespaced_replica_set, namespace, label_selector=selector)["items"]
                    for rs in sorted(sets, key=revision_of):
                        journal.observe_replicaset(rs, now)
                else:
                    for cr in sorted(apps.list_namespaced_controller_revision(namespace, label_selector=selector)
                                     .items, key=lambda cr: cr.revision):
                        journal.observe_controllerrevision(api.sanitize_for_serialization(cr), now)
    except ApiException as e:
        if e.status != 404:
            raise
        return cause.Target(ref.kind, namespace, ref.name)
    summary = summarise_template(template if ref.kind != "Pod" else {"spec": template.get("spec")})
    references |= {f"ConfigMap/{name}" for name in summary.config_maps}
    references |= {f"Node/{node}" for p in pods if (node := (p.get("spec") or {}).get("nodeName"))}
    references |= journal.hpas_for(namespace, f"{ref.kind}/{ref.name}")
    return cause.Target(ref.kind, namespace, ref.name, frozenset(references))


def selected_pods(core: client.CoreV1Api, namespace: str, selector: dict,
                  watched_pods: Callable[[str, dict], list[dict] | None] | None) -> list[dict]:
    """The pods a LabelSelector (as JSON) selects: from the watch's copies when it follows the namespace (only
    their nodes are used: a copy an event behind names the same ones), else one LIST, for a namespace of many pods
    the costlier call on the apiserver. As verification's probes.selected_pods, but whole pods, deleting ones too."""
    watched = watched_pods(namespace, match_labels(selector)) if watched_pods is not None else None
    if watched is not None:
        return [p for p in watched if selects(selector, (p.get("metadata") or {}).get("labels") or {})]
    # as JSON (_preload_content=False): the client's models of a list cost more CPU than the rest of the plan
    return as_json(core.list_namespaced_pod, namespace, label_selector=label_selector_text(selector))["items"]


def breach_start(spec: RemediationSpec, created: str | None, now: datetime) -> datetime:
    """The signal's startsAt, else the Remediation's creation."""
    for value in (spec.signal.starts_at, created):
        if value:
            try:
                return parse_time(value)
            except ValueError:
                continue
    return now


def find_cause(api: client.ApiClient, journal: ChangeJournal, spec: RemediationSpec, created: str | None,
               now: datetime, watched_pods: Callable[[str, dict], list[dict] | None] | None = None,
               read: Read = None) -> ProbableCause | None:
    """The probable cause of this Remediation's signal, or None (unknown) when the journal cannot say."""
    if not journal.ready:
        return None
    try:
        target = target_of(api, journal, spec, watched_pods, read)
    except ApiException as e:
        log.warning("probable cause unknown: cannot read the target", extra={"error": str(e)})
        return None
    candidates = journal.changes(target.namespace, {target.ref, *target.references}, now)
    finding = cause.rank(target, candidates, breach_start(spec, created, now), spec.signal.name or "the signal",
                         journal.window)
    return cause.to_status(finding)
