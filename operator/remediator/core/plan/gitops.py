"""Who owns the target in Git, and what to do about it: pure decisions on plain data.

A Flux Kustomization/HelmRelease or an Argo CD Application re-applies what Git declares, undoing a rollback
written to the live object. Here: find the owner from the target's labels/annotations, read the owner's state
from its body (and its source's), choose refuse/suspend/ignore, and compute the patches that pause and resume
it (annotated with who, why, when and until when, keyed by the Remediation so nothing is paused twice and the
original sync policy is restored exactly once).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Mapping

from ..durations import parse_time

FLUX_KUSTOMIZE = "kustomize.toolkit.fluxcd.io"
FLUX_HELM = "helm.toolkit.fluxcd.io"
ARGO_TRACKING = "argocd.argoproj.io/tracking-id"

# Annotations the operator writes on an owner it pauses.
PAUSED_BY = "remediator.dev/paused-by"  # "<namespace>/<remediation>": the key of the pause
PAUSED_WHY = "remediator.dev/paused-reason"
PAUSED_AT = "remediator.dev/paused-at"
PAUSED_UNTIL = "remediator.dev/paused-until"
PAUSED_REVISION = "remediator.dev/paused-revision"
ORIGINAL_SYNC = "remediator.dev/original-automated-sync"  # Argo CD: spec.syncPolicy.automated as it was, JSON
RECONCILE_REQUESTED = "reconcile.fluxcd.io/requestedAt"  # Flux: handled reconciles copy it to lastHandledReconcileAt
RESUMED_UNFIXED = "remediator.dev/resumed-unfixed-revision"  # resumed at lease end while Git was still this
REGRESSED = "remediator.dev/regressed-revision"  # Git moved to this revision, we resumed, and it regressed
OUR_ANNOTATIONS = (PAUSED_BY, PAUSED_WHY, PAUSED_AT, PAUSED_UNTIL, PAUSED_REVISION, ORIGINAL_SYNC)

# group, version, plural of each owner kind
KINDS = {
    "Kustomization": ("kustomize.toolkit.fluxcd.io", "v1", "kustomizations"),
    "HelmRelease": ("helm.toolkit.fluxcd.io", "v2", "helmreleases"),
    "Application": ("argoproj.io", "v1alpha1", "applications"),
}
SOURCES = {  # a Flux sourceRef kind -> group, version, plural
    "GitRepository": ("source.toolkit.fluxcd.io", "v1", "gitrepositories"),
    "OCIRepository": ("source.toolkit.fluxcd.io", "v1beta2", "ocirepositories"),
    "Bucket": ("source.toolkit.fluxcd.io", "v1", "buckets"),
    "HelmChart": ("source.toolkit.fluxcd.io", "v1", "helmcharts"),
}
FLUX_MANAGERS = ("kustomize-controller", "helm-controller")


@dataclass(frozen=True)
class Owner:
    tool: str  # flux | argocd
    kind: str  # Kustomization | HelmRelease | Application
    namespace: str
    name: str

    @classmethod
    def of(cls, recorded: Any) -> Owner:
        """The owner a Remediation recorded (status.gitops: tool, kind, namespace, name)."""
        return cls(recorded.tool, recorded.kind, recorded.namespace, recorded.name)

    def display(self) -> str:
        return f"{'Flux' if self.tool == 'flux' else 'Argo CD'} {self.kind} {self.namespace}/{self.name}"


def owner_of(labels: Mapping[str, str] | None, annotations: Mapping[str, str] | None,
             argocd_instance_label: str | None = None, argocd_namespace: str = "argocd") -> Owner | None:
    """The reconciler that applies this object, from the marks it leaves on what it applies."""
    labels, annotations = labels or {}, annotations or {}
    for group, kind in ((FLUX_KUSTOMIZE, "Kustomization"), (FLUX_HELM, "HelmRelease")):
        name, namespace = labels.get(f"{group}/name"), labels.get(f"{group}/namespace")
        if name and namespace:
            return Owner("flux", kind, namespace, name)
    tracking = annotations.get(ARGO_TRACKING, "")
    if tracking and ":" in tracking:
        app = tracking.split(":", 1)[0]
        namespace, _, name = app.rpartition("_")  # apps in any namespace: "<namespace>_<app>"
        if name:
            return Owner("argocd", "Application", namespace or argocd_namespace, name)
    if argocd_instance_label and labels.get(argocd_instance_label):
        return Owner("argocd", "Application", argocd_namespace, labels[argocd_instance_label])
    return None


@dataclass(frozen=True)
class OwnerState:
    """What the owner's body (and its source's) says, as far as pausing it is concerned."""

    owner: Owner
    exists: bool = True
    paused_by: str | None = None  # our pause's key, when the owner carries one
    paused_elsewhere: str | None = None  # already paused by someone else: why we can't tell it is ours
    suspended: bool = False  # the reconciler is paused now (Flux spec.suspend, Argo CD automated sync off)
    revision: str | None = None  # what the owner applied / synced last
    source: str = ""  # e.g. "GitRepository flux-system/app"
    source_revision: str | None = None  # what its source has fetched now
    automated: Mapping[str, Any] | None = None  # Argo CD: spec.syncPolicy.automated
    original_automated: Mapping[str, Any] | None = None  # Argo CD: kept by our pause
    paused_revision: str | None = None
    trap: str | None = None  # a parent that would undo a pause, named
    lists_target: bool | None = None  # the owner's inventory names the target (None: not checked)
    resumed_unfixed: str | None = None  # the revision a lease-end resume left in place
    regressed: str | None = None  # the revision that regressed in the watch after an earlier resume
    ready: bool | None = None  # the owner's readiness: Flux Ready / Argo CD health (None: unknown, progressing)
    ready_message: str = ""
    interval: timedelta | None = None  # how often it reconciles (Flux spec.interval)
    timeout: timedelta | None = None  # how long one apply may take (Flux spec.timeout; default its interval)


def read_owner(owner: Owner, body: Mapping[str, Any] | None, source: Mapping[str, Any] | None = None,
               target: tuple[str, str, str] | None = None) -> OwnerState:
    """`target` (kind, namespace, name): check that the owner really applies it; a label is only a claim."""
    if not body:
        return OwnerState(owner, exists=False)
    meta = body.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    spec, status = body.get("spec") or {}, body.get("status") or {}
    paused_by = annotations.get(PAUSED_BY)
    common = dict(paused_by=paused_by, paused_revision=annotations.get(PAUSED_REVISION),
                  resumed_unfixed=annotations.get(RESUMED_UNFIXED), regressed=annotations.get(REGRESSED),
                  lists_target=None if target is None else lists(owner, status, target))
    if owner.tool == "flux":
        ref = spec.get("sourceRef") or {}
        source_name = f"{ref.get('kind', '')} {ref.get('namespace') or owner.namespace}/{ref.get('name', '')}" \
            if ref else ""
        ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
        interval = go_duration(spec.get("interval"))
        return OwnerState(
            owner, revision=status.get("lastAppliedRevision"), source=source_name,
            ready={"True": True, "False": False}.get(ready.get("status")), ready_message=ready.get("message", ""),
            interval=interval, timeout=go_duration(spec.get("timeout")) or interval,
            source_revision=((source or {}).get("status") or {}).get("artifact", {}).get("revision"),
            paused_elsewhere="spec.suspend is already true" if spec.get("suspend") and not paused_by else None,
            suspended=spec.get("suspend") is True,
            trap=flux_parent_trap(owner, meta), **common)
    sync = status.get("sync") or {}
    automated = (spec.get("syncPolicy") or {}).get("automated")
    original = kept_sync(annotations.get(ORIGINAL_SYNC))
    manual = automated is None or automated.get("enabled") is False
    health = (status.get("health") or {}).get("status")
    return OwnerState(
        owner, ready={"Healthy": True, "Degraded": False, "Missing": False}.get(health),
        ready_message=(status.get("health") or {}).get("message", health or ""),
        revision=sync.get("revision"), source=(spec.get("source") or {}).get("repoURL", ""),
        source_revision=sync.get("revision"), automated=automated, original_automated=original,
        paused_elsewhere="automated sync is off already" if manual and not paused_by else None, suspended=manual,
        trap=argocd_parent_trap(owner, meta), **common)


def go_duration(text: Any) -> timedelta | None:
    """A Flux interval ("5m", "10m0s"; Go's syntax), or None when absent or in a form not parsed here."""
    from remediator.core.durations import parse_duration

    try:
        return parse_duration(text) if text else None
    except ValueError:
        return None


def lists(owner: Owner, status: Mapping[str, Any], target: tuple[str, str, str]) -> bool:
    """The owner's own record of what it applied names the target: Flux `status.inventory.entries[].id`
    ("<namespace>_<name>_<group>_<kind>"), Argo CD `status.resources[]`."""
    kind, namespace, name = target
    if owner.tool == "flux":
        ids = {e.get("id", "") for e in (status.get("inventory") or {}).get("entries") or []}
        return any(i.startswith(f"{namespace}_{name}_") and i.endswith(f"_{kind}") for i in ids)
    return any(r.get("kind") == kind and r.get("name") == name and r.get("namespace", namespace) == namespace
               for r in status.get("resources") or [])


def kept_sync(text: str | None) -> Mapping[str, Any] | None:
    """The automated sync policy our pause kept; None when absent or not an object (hand-edited): the resume
    then restores automated sync with Argo CD's defaults rather than failing every sweep."""
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def flux_parent_trap(owner: Owner, meta: Mapping[str, Any]) -> str | None:
    """A parent Kustomization that declares this owner's spec.suspend re-applies it over our pause. Flux applies
    server-side: it owns (managedFields) exactly the fields its manifest sets, so that is where to look."""
    labels = meta.get("labels") or {}
    parent = next((f"{kind} {labels[f'{group}/namespace']}/{labels[f'{group}/name']}"
                   for group, kind in ((FLUX_KUSTOMIZE, "Kustomization"), (FLUX_HELM, "HelmRelease"))
                   if labels.get(f"{group}/name") and labels.get(f"{group}/namespace")), None)
    if parent is None:
        return None
    for entry in meta.get("managedFields") or []:
        spec_fields = (entry.get("fieldsV1") or {}).get("f:spec") or {}
        if entry.get("manager") in FLUX_MANAGERS and "f:suspend" in spec_fields:
            return f"its parent Flux {parent} declares spec.suspend and would undo a pause on its next apply"
    return None


def argocd_parent_trap(owner: Owner, meta: Mapping[str, Any]) -> str | None:
    """An ApplicationSet re-imposes its template's syncPolicy; a parent app (app-of-apps) syncs the child's
    spec back from Git. Either undoes a pause: name it."""
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == "ApplicationSet":
            return f"it is generated by ApplicationSet {owner.namespace}/{ref.get('name')}, which re-imposes its " \
                   "sync policy"
    parent = owner_of(meta.get("labels"), meta.get("annotations"), None, owner.namespace)
    if parent is not None:
        return f"its parent Argo CD Application {parent.namespace}/{parent.name} (app of apps) syncs it from Git " \
               "and would re-enable automated sync"
    return None


def mode_for(owner: Owner, policy: Any, step: Any) -> tuple[str, str]:
    """(mode, where it came from): the policy's mode for the owner's tool, or the step's where the policy lets
    steps choose. `policy` is a GitopsPolicy or None (no policy: refuse), `step` a StepGitops or None."""
    mode = getattr(policy, owner.tool, None) or "refuse"
    chosen = getattr(step, owner.tool, None) if step is not None else None
    if chosen and chosen != mode:
        if policy is not None and policy.allow_step_override:
            return chosen, f"the step's gitops.{owner.tool}"
        return mode, f"the policy's gitops.{owner.tool} (the step's {chosen!r} is not allowed: " \
                     "gitops.allowStepOverride is false)"
    return mode, f"the policy's gitops.{owner.tool}" if policy is not None else "the default"


@dataclass(frozen=True)
class Verdict:
    mode: str  # refuse | suspend | ignore (as chosen)
    allowed: bool
    reason: str
    suspend: bool = False  # pause the owner before acting


def decide(state: OwnerState, mode: str, why: str, key: str) -> Verdict:
    """Whether the step may act on a target `state.owner` reconciles, and whether it must pause it first.
    `key` names the pause this Remediation would hold ("<namespace>/<name>")."""
    who = state.owner.display()
    at = f" at revision {state.revision}" if state.revision else ""
    if mode == "ignore":
        return Verdict(mode, True, f"the target is reconciled by {who}{at}; acting anyway ({why} is ignore)")
    if mode == "refuse":
        return Verdict(mode, False, f"the target is reconciled by {who}{at}, which would undo the change; "
                                    f"{why} is refuse: a human must fix it in Git")
    if not state.exists:
        return Verdict(mode, False, f"the target names {who} as its owner, which does not exist: not acting blind")
    if state.resumed_unfixed and state.resumed_unfixed == state.source_revision:
        return Verdict(mode, False, f"{who} was resumed when an earlier pause's lease ran out with Git still at "
                                    f"revision {state.resumed_unfixed}: the same incident is back; not pausing "
                                    "again (no fight with Git): revert the change in Git")
    if state.regressed and state.regressed == state.source_revision:
        return Verdict(mode, False, f"{who} regressed at revision {state.regressed}, the revision Git moved to after an "
                                    "earlier pause was resumed: not pausing again (no fight with Git): fix it in Git")
    if state.lists_target is False:
        return Verdict(mode, False, f"the target's labels name {who}, whose inventory does not list it: a label "
                                    "is not proof of ownership, not pausing another app's reconciler")
    if state.trap:
        return Verdict(mode, False, f"{who} cannot be paused safely: {state.trap}")
    if state.paused_by and state.paused_by != key:
        return Verdict(mode, False, f"{who} is paused by remediation {state.paused_by} already")
    if state.paused_elsewhere:
        return Verdict(mode, False, f"{who} is paused by someone else ({state.paused_elsewhere}): not taking "
                                    "over a pause the operator cannot resume")
    return Verdict(mode, True, f"the target is reconciled by {who}{at}: pausing it while the step acts and until "
                               "Git moves on (or the lease ends)", suspend=True)


def stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def suspend_patch(state: OwnerState, key: str, why: str, now: datetime, lease: timedelta,
                  resource_version: str | None = None) -> dict | None:
    """The merge patch that pauses the owner, or None when this pause (same key) is in place already."""
    if state.paused_by == key:
        return None
    annotations = {PAUSED_BY: key, PAUSED_WHY: why[:512], PAUSED_AT: stamp(now),
                   PAUSED_UNTIL: stamp(now + lease), PAUSED_REVISION: state.source_revision or state.revision or ""}
    meta: dict[str, Any] = {"annotations": annotations}
    if resource_version:
        meta["resourceVersion"] = resource_version  # the state we judged is the state we pause
    if state.owner.tool == "flux":
        # a reconcile request in the same write: the first reconcile Flux starts after the pause records it as
        # handled, which tells (see `settle`) that one already in flight has finished
        annotations[RECONCILE_REQUESTED] = stamp(now)
        return {"metadata": meta, "spec": {"suspend": True}}
    annotations[ORIGINAL_SYNC] = json.dumps(dict(state.automated or {}), sort_keys=True)
    return {"metadata": meta, "spec": {"syncPolicy": {"automated": None}}}


def resume_patch(state: OwnerState, key: str, unfixed: bool,
                 resource_version: str | None = None) -> dict | None:
    """The merge patch that undoes our pause exactly: None unless the owner carries this pause (so it is
    restored once). `unfixed`: Git still declares what we fixed; mark the owner so a returning incident is
    escalated, not remediated again."""
    if state.paused_by != key:
        return None
    annotations: dict[str, Any] = {name: None for name in OUR_ANNOTATIONS}
    annotations[RESUMED_UNFIXED] = (state.paused_revision or state.source_revision or "unknown") if unfixed \
        else None
    meta: dict[str, Any] = {"annotations": annotations}
    if resource_version:
        meta["resourceVersion"] = resource_version
    if state.owner.tool == "flux":
        return {"metadata": meta, "spec": {"suspend": None}}
    return {"metadata": meta, "spec": {"syncPolicy": {"automated": dict(state.original_automated or {})}}}


def pause_lost(state: OwnerState, key: str, resumed_at: str | None) -> str | None:
    """Why a step climbed to under our pause must not act (the reconciler would undo it), or None while the pause
    (keyed `key`) is still on the owner: it ended (lease, resumed by us), or someone resumed or removed the owner."""
    who = state.owner.display()
    if resumed_at:
        return f"the pause of {who} ended at {resumed_at}, before this step: not acting, the reconciler would undo it"
    if not state.exists:
        return f"{who} is gone: not acting under a pause that no longer exists"
    if state.paused_by != key or not state.suspended:
        return f"{who} is no longer paused by this remediation (resumed by someone): not acting, the reconciler " \
               "would undo it"
    return None


SETTLE_FIRST_LOOK = 0.5  # seconds from the pause to the first look at the owner (Flux handles it in ms)
SETTLE_EVERY = 3.0  # seconds between looks at the owner while waiting for it to settle
SETTLE_SLACK = timedelta(seconds=15)  # beyond one interval, when the owner sets no timeout
SETTLE_CAP = timedelta(minutes=2)


@dataclass(frozen=True)
class Settling:
    """Whether the paused owner has settled, so the step may act: `settled` (Flux handled the reconcile request
    written with the pause: nothing it started before the pause is still applying), `waiting` (look again after
    `requeue_after` seconds), `unsettled` (the bound passed: act anyway, and say so), `lost` (the pause is no
    longer on the owner: acting would be undone, do not)."""

    state: str
    reason: str
    requeue_after: float | None = None


def settles(owner: Owner) -> bool:
    """Owners whose pause is waited on before acting: a Flux Kustomization (kustomize-controller records the
    reconcile request it handled even while suspended). A HelmRelease or an Argo CD Application is not."""
    return owner.tool == "flux" and owner.kind == "Kustomization"


def settle_bound(spec: Mapping[str, Any]) -> timedelta:
    """How long to wait for the owner to settle: its spec.timeout (one apply's limit), else its interval plus
    SETTLE_SLACK, at most SETTLE_CAP."""
    timeout, interval = go_duration(spec.get("timeout")), go_duration(spec.get("interval"))
    bound = timeout or (interval + SETTLE_SLACK if interval else SETTLE_CAP)
    return min(bound, SETTLE_CAP)


def handled(seen: Any, requested: str, asked: Any = None, now: datetime | None = None) -> bool:
    """The owner's lastHandledReconcileAt (`seen`) is our request, or a later one (`flux reconcile` after ours)
    that replaced ours in the annotation (`asked`, as it is now) and was handled, dated no later than `now`. A
    value only compared by its time would count one handled before the pause: a clock ahead, or a tenant's own
    request dated 2099 (written back over ours, it is still ahead of now)."""
    if not isinstance(seen, str) or not seen:
        return False
    if seen == requested:
        return True
    if seen != asked:  # the annotation still carries ours (or was changed again): `seen` predates it
        return False
    try:
        at = parse_time(seen)
        return parse_time(requested) <= at and (now is None or at <= now)
    except ValueError:  # a request in a form that is not a time: only our own marker counts
        return False


def settle(owner: Owner, body: Mapping[str, Any] | None, key: str, requested: str, suspended_at: datetime,
           now: datetime) -> Settling:
    """After the pause (keyed `key`, its reconcile request `requested`, persisted at `suspended_at`): may the
    step act on the target now? kustomize-controller serialises the reconciles of one object and sets
    status.lastHandledReconcileAt from the request annotation at the end of each, suspended or not: once it
    shows our request, any reconcile in flight at the pause has finished and no other will start."""
    who = owner.display()
    if not settles(owner):
        return Settling("settled", f"{who}: not waited on (no record of handled reconcile requests)")
    if not body:
        return Settling("lost", f"{who} is gone while waiting for it to settle: not acting")
    meta, spec, status = body.get("metadata") or {}, body.get("spec") or {}, body.get("status") or {}
    if (meta.get("annotations") or {}).get(PAUSED_BY) != key or spec.get("suspend") is not True:
        return Settling("lost", f"{who} is no longer paused by this remediation (resumed by someone while "
                                "waiting for it to settle): not acting, Flux would undo it")
    seen = status.get("lastHandledReconcileAt")
    if handled(seen, requested, (meta.get("annotations") or {}).get(RECONCILE_REQUESTED), now):
        return Settling("settled", f"{who} handled the reconcile request of the pause ({seen}): no apply "
                                   "started before the pause is still running")
    bound = settle_bound(spec)
    deadline = suspended_at + bound
    if now >= deadline:
        return Settling("unsettled", f"{who} did not handle the reconcile request of the pause ({requested}) "
                                     f"within {int(bound.total_seconds())}s (last handled: {seen or 'none'}): "
                                     "acting anyway; an apply still in flight could undo the step")
    return Settling("waiting", f"waiting for {who} to handle the reconcile request of the pause ({requested}), "
                               f"until {stamp(deadline)}: an apply it started before the pause may still be "
                               "running", requeue_after=min(SETTLE_EVERY, (deadline - now).total_seconds()))


MAX_DECLARED = 3  # fields of what Git declares kept to tell that a fix was undone


DECLARED_CHARS = 256  # the length status.gitops.declared keeps of a value (its schema's maxLength)


def declared_value(value: Any) -> str:
    """A field's value as kept in status.gitops.declared: strings as they are, anything else as JSON; a longer
    text than the status keeps as its digest (cut, it would never equal the live value again)."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    if len(text) <= DECLARED_CHARS:
        return text
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def declared_fields(changes: Mapping[str, Mapping]) -> dict[str, str]:
    """What Git declares (the value before the fix) of the first MAX_DECLARED spec fields the fix changed."""
    fields = [(path, c.get("before")) for path, c in sorted(changes.items()) if path.startswith("spec.")]
    return {path: declared_value(before) for path, before in fields[:MAX_DECLARED]}


def undone(declared: Mapping[str, str], live: Mapping[str, Any] | None) -> str | None:
    """Why the fix is undone, when every field it changed is back at what Git declares (the live target's
    fields, flattened as in `declared`); None while the fix stands or nothing was recorded."""
    if not declared or live is None:
        return None
    if any(declared_value(live.get(path)) != value for path, value in declared.items()):
        return None
    back = ", ".join(f"{shown(path)} {value}" for path, value in declared.items())
    return f"the fix was undone: the target is back at what Git declares ({back})"


@dataclass(frozen=True)
class Hold:
    resume: bool
    unfixed: bool = False
    reason: str = ""
    moved_to: str | None = None  # the revision Git moved to: watched after the resume
    undone: bool = False  # the target went back to what Git declares while held: escalated


def hold(state: OwnerState, key: str, until: datetime | None, now: datetime, remediation_phase: str,
         declared: Mapping[str, str] | None = None, live: Mapping[str, Any] | None = None) -> Hold:
    """Keep the pause while the fix stands and Git still declares the bad state; resume when Git moves past the
    paused revision, when the lease ends, or when the Remediation ended without a fix to protect; and, unfixed,
    when the target's `declared` fields are back at Git's values in `live` (the fix was undone meanwhile)."""
    if not state.exists or state.paused_by != key:
        return Hold(True, reason="the pause is no longer on the owner (resumed or deleted by someone)")
    if remediation_phase != "Succeeded":
        return Hold(True, reason=f"the remediation ended {remediation_phase}: no fix to keep")
    moved = state.source_revision and state.paused_revision and state.source_revision != state.paused_revision
    if moved:
        return Hold(True, reason=f"Git moved from revision {state.paused_revision} to {state.source_revision}",
                    moved_to=state.source_revision)
    why = undone(declared or {}, live)
    if why:
        return Hold(True, unfixed=True, undone=True, reason=why)
    if until is not None and now >= until:
        return Hold(True, unfixed=True, reason=f"the lease ended with Git still at revision "
                                               f"{state.paused_revision or 'unknown'}")
    return Hold(False)


WATCH_FLOOR = timedelta(seconds=30)  # a rollout on a busy cluster takes a while even with a 5 s interval
WATCH_DEFAULT_INTERVAL = timedelta(minutes=5)


def watch_window(state: OwnerState) -> timedelta:
    """How long the revision Git moved to is watched after the resume: two reconcile intervals plus one apply's
    timeout (the owner applies it within an interval, then must stay healthy through the next one)."""
    interval = state.interval or WATCH_DEFAULT_INTERVAL
    return max(2 * interval + (state.timeout or interval), WATCH_FLOOR)


def workload_health(kind: str, body: Mapping[str, Any] | None) -> tuple[bool, str]:
    """(healthy, why) of the target from its own status: its rollout is complete and every replica available."""
    if body is None:
        return False, f"{kind} is gone"
    if kind not in ("DaemonSet", "Deployment", "StatefulSet"):  # an Argo Rollout's observedGeneration is a string
        return True, f"{kind}: no rollout to judge"  # a Pod is not read: {}
    if not body:
        return False, f"{kind} is gone"
    meta, spec, status = body.get("metadata") or {}, body.get("spec") or {}, body.get("status") or {}
    if (status.get("observedGeneration") or 0) < (meta.get("generation") or 0):
        return False, f"{kind} generation {meta.get('generation')} not observed yet"
    if kind == "DaemonSet":
        want = status.get("desiredNumberScheduled") or 0
        have = {"updated": status.get("updatedNumberScheduled") or 0, "available": status.get("numberAvailable") or 0}
    else:
        want = spec.get("replicas", 1)
        have = {"updated": status.get("updatedReplicas") or 0,
                "available": status.get("availableReplicas", status.get("readyReplicas")) or 0}
    stalled = next((c for c in status.get("conditions") or [] if c.get("type") == "Progressing"
                    and c.get("status") == "False"), None)
    if stalled:
        return False, f"{kind} rollout stalled: {stalled.get('reason', '')} {stalled.get('message', '')}".strip()
    short = [f"{n} {have[n]}/{want}" for n in have if have[n] < want]
    return (False, f"{kind} replicas " + ", ".join(short)) if short else (True, f"{kind} {want}/{want} available")


@dataclass(frozen=True)
class Watch:
    outcome: str | None = None  # None: still watching; Healthy | Regressed: the watch is over
    ready_now: bool = False  # first seen Ready at the revision with the target healthy: record when
    reason: str = ""


def after_resume(state: OwnerState, revision: str, target_healthy: tuple[bool, str], ready_since: datetime | None,
                 until: datetime, now: datetime) -> Watch:
    """After resuming on the revision Git moved to: it must become Ready (applied, owner Ready, target healthy)
    within the window and stay so until the window ends; anything else is a regression, named by revision."""
    who = state.owner.display()
    healthy, why = target_healthy
    if not state.exists:
        return Watch("Regressed", reason=f"{who} is gone while revision {revision} was watched")
    at_revision = state.revision in (revision, state.source_revision) and state.revision is not None
    if state.ready is False and at_revision:
        return Watch("Regressed", reason=f"{who} is not Ready at revision {state.revision}: {state.ready_message}"
                     .rstrip(": "))
    ok = at_revision and state.ready is True and healthy
    if ready_since is None:
        if ok:
            return Watch(ready_now=True, reason=f"{who} Ready at revision {state.revision}; {why}")
        if now >= until:
            applied = f"applied {state.revision}" if state.revision else "applied nothing"
            return Watch("Regressed", reason=f"revision {revision} did not become Ready with a healthy target by "
                                             f"{stamp(until)} ({who} {applied}, Ready {state.ready}; {why})")
        return Watch()
    if not healthy:  # Ready=Unknown is Flux reconciling again (every interval): not a regression by itself
        return Watch("Regressed", reason=f"revision {revision} regressed after becoming Ready: {why}")
    if now >= until:
        return Watch("Healthy", reason=f"revision {revision} Ready and the target healthy until {stamp(until)}")
    return Watch()


def desired_state(revision: str | None, source: str, target: str,
                  changes: Mapping[str, Mapping]) -> tuple[str, str]:
    """(what Git still declares, the revert a human should make) after the action changed the live target
    from what Git declares (`before`) to the fix (`after`)."""
    at = revision or "(unknown)"
    fields = [(path, c.get("before"), c.get("after")) for path, c in sorted(changes.items())
              if path.startswith("spec.")]
    if not fields:
        return (f"Git at revision {at} ({source}) still declares what {target} had before the fix",
                f"in Git, make {target} match its live state")
    declared = ", ".join(f"{shown(path)} {before}" for path, before, _ in fields[:3])
    revert = "; ".join(f"{target} {path}: {before} → {after}" for path, before, after in fields[:3])
    return f"Git at revision {at} ({source}) still declares {declared}", f"in Git: {revert}"


def shown(path: str) -> str:
    """spec.template.spec.containers[web].image -> image (the leaf is what people recognise)."""
    return path.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class Facts:
    """What the shell read for the step about to act: the owner's state and the mode that applies."""

    state: OwnerState
    mode: str
    why: str  # where the mode came from
    lease: timedelta


@dataclass(frozen=True)
class Pause:
    """Pause `owner` (keyed by `key`) before the action: the shell's instruction, complete."""

    owner: Owner
    key: str
    why: str
    lease: timedelta
    target: tuple[str, str, str] | None = None  # kind, namespace, name: the owner must list it
    settle: bool = False  # only pause: the step acts once the owner has settled (see `settle`)


PAUSE_RISK = 15  # a paused reconciler is a change to the cluster's control loop: people should see it


def raised(assessment: Any, owner: Owner, points: int = PAUSE_RISK) -> Any:
    """The risk assessment with the pause's points added (a RiskAssessment; the level follows the score)."""
    from .risk import format_contribution, level_for_score, band_text

    score = min(100, assessment.score + points)
    level = level_for_score(score)
    reasons = [r for r in assessment.reasons if not r.startswith("score ")]
    reasons += [format_contribution(points, f"pauses {owner.display()} while acting"),
                f"score {score} -> {level} (band {band_text(level)})"]
    return assessment.model_copy(update={"score": score, "level": level, "reasons": reasons})


def offline(labels: Mapping[str, str], annotations: Mapping[str, str], policy: Any, step: Any = None) -> Facts | None:
    """The owner as `simulate` sees it: from the target labels given, its state unread (assumed present and not
    paused), the mode the policy (a GitopsPolicy or None) gives it."""
    from remediator.core.durations import parse_duration

    owner = owner_of(labels, annotations, getattr(policy, "argocd_instance_label", None),
                     getattr(policy, "argocd_namespace", "argocd"))
    if owner is None:
        return None
    mode, why = mode_for(owner, policy, step)
    return Facts(OwnerState(owner), mode, why, parse_duration(getattr(policy, "lease", "1h")))


def summary(state: Any) -> str:
    """One line on a Remediation's owner (a GitopsState), for `simulate` and messages."""
    if state is None:
        return ""
    tool = "Flux" if state.tool == "flux" else "Argo CD"
    text = f"{tool} {state.kind} {state.namespace}/{state.name}, mode {state.mode}"
    if state.revision:
        text += f", Git revision {state.revision}"
    if state.mode == "suspend":
        text += ": paused while the step acts, until Git moves on or the lease ends"
    return text
