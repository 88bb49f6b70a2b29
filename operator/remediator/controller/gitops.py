"""The GitOps owner of a target, read and paused/resumed on the cluster; decisions in core.plan.gitops.

Reads happen only for a step about to act on a target that carries an owner's marks (one GET of the owner,
one of its Flux source), and for a step climbed to under our pause (one GET of the owner paused, whatever the
target's marks say now), never per tick. A pause is keyed by the Remediation ("<namespace>/<name>" in the
owner's annotations): pausing again under the same key does nothing, and resuming removes the key in the same
write that restores the sync policy, so the original is restored exactly once. The pauses held are followed
from the Remediations' watch (no LIST); a sweep resumes each when Git moves on, its lease ends, or its
Remediation ended without a fix to keep.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from kubernetes import client
from kubernetes.client.rest import ApiException

from ..actions.base import ActionError, flatten
from ..api.models import TERMINAL_PHASES, GitopsPolicy, GitopsState, ObjectRef, RemediationPolicySpec, RemediationStatus, Step
from ..core.durations import parse_duration, parse_time
from ..core.engine import state
from ..core.plan import gitops
from ..kube import WORKLOAD_PLURALS, read_workload_json, retry_transient
from . import chores
from .context import OperatorContext

log = logging.getLogger("remediator.gitops")
SWEEP_SECONDS = 10.0
CONFLICT_TRIES = 3


@retry_transient
def get(api, kind_table: dict, kind: str, namespace: str, name: str) -> dict | None:
    group, version, plural = kind_table[kind]
    try:
        return client.CustomObjectsApi(api).get_namespaced_custom_object(group, version, namespace, plural, name)
    except ApiException as e:
        if e.status == 404:  # the object, or its CRD, is not there
            return None
        raise


@retry_transient
def patch(api, owner: gitops.Owner, body: dict) -> dict:
    group, version, plural = gitops.KINDS[owner.kind]
    return client.CustomObjectsApi(api).patch_namespaced_custom_object(group, version, owner.namespace, plural,
                                                                       owner.name, body)


def source_of(api, owner: gitops.Owner, body: dict | None) -> dict | None:
    """A Flux owner's source (GitRepository …), whose artifact revision says where Git is now."""
    if owner.tool != "flux" or not body:
        return None
    spec = body.get("spec") or {}
    ref = spec.get("sourceRef") or ((spec.get("chart") or {}).get("spec") or {}).get("sourceRef") or {}
    if ref.get("kind") not in gitops.SOURCES or not ref.get("name"):
        return None
    return get(api, gitops.SOURCES, ref["kind"], ref.get("namespace") or owner.namespace, ref["name"])


def owner_state(api, owner: gitops.Owner, target: tuple[str, str, str] | None = None
                ) -> tuple[gitops.OwnerState, dict | None]:
    body = get(api, gitops.KINDS, owner.kind, owner.namespace, owner.name)
    return gitops.read_owner(owner, body, source_of(api, owner, body), target), body


def read(ctx: OperatorContext, labels: dict, annotations: dict, step: Step | None,
         policy: RemediationPolicySpec | None, target: tuple[str, str, str] | None = None) -> gitops.Facts | None:
    """The target's owner and the mode that applies to it; None (and no read) for a target no reconciler marks."""
    settings = policy.gitops if policy else GitopsPolicy()
    owner = gitops.owner_of(labels, annotations, settings.argocd_instance_label, settings.argocd_namespace)
    if owner is None:
        return None
    found, _ = owner_state(ctx.api, owner, target)
    mode, why = gitops.mode_for(owner, policy.gitops if policy else None, step.gitops if step else None)
    return gitops.Facts(found, mode, why, parse_duration(settings.lease))


def pause(ctx: OperatorContext, order: gitops.Pause, now: datetime) -> datetime:
    """Pause the owner under the order's key; when it is paused under that key already (a replay after a crash),
    when that pause began. Raises ActionError when it cannot be paused safely (the reason names why)."""
    for _ in range(CONFLICT_TRIES):
        found, body = owner_state(ctx.api, order.owner, order.target)
        if found.paused_by == order.key:
            return paused_since(body, now)
        verdict = gitops.decide(found, "suspend", "the pause", order.key)
        if not verdict.suspend:
            raise ActionError("gitops", f"not acting: {verdict.reason}")
        body_patch = gitops.suspend_patch(found, order.key, order.why, now, order.lease,
                                          body["metadata"]["resourceVersion"])
        try:
            patch(ctx.api, order.owner, body_patch)
            log.info("paused", extra={"owner": order.owner.display(), "key": order.key})
            return now
        except ApiException as e:
            if e.status != 409:  # 409: changed since read: read again and judge again
                raise ActionError("gitops", f"could not pause {order.owner.display()}: {e.status} {e.reason}",
                                  status=e.status) from e
    raise ActionError("gitops", f"could not pause {order.owner.display()}: it kept changing", retryable=True)


def paused_since(body: dict | None, now: datetime) -> datetime:
    """When our pause on the owner began, from its paused-at annotation; `now` when that is not a time or lies
    ahead (edited by hand): the settle wait and the lease count from it, and must not wait on a forged date."""
    stamp = ((body or {}).get("metadata", {}).get("annotations") or {}).get(gitops.PAUSED_AT)
    try:
        since = parse_time(stamp) if stamp else now
    except ValueError:
        return now
    return min(since, now)


def resume(ctx: OperatorContext, owner: gitops.Owner, key: str, unfixed: bool) -> bool:
    """Undo our pause exactly once (guarded by resourceVersion); False when it was not there."""
    for _ in range(CONFLICT_TRIES):
        found, body = owner_state(ctx.api, owner)
        body_patch = gitops.resume_patch(found, key, unfixed, (body or {}).get("metadata", {}).get("resourceVersion"))
        if body_patch is None:
            return False
        try:
            patch(ctx.api, owner, body_patch)
            log.info("resumed", extra={"owner": owner.display(), "key": key, "unfixed": unfixed})
            return True
        except ApiException as e:
            if e.status not in (404, 409):
                raise
            if e.status == 404:
                return False
    return False


DELETED = "_deleted"


class Pauses:
    """The Remediations that hold a pause not yet resumed, fed by the Remediations' watch."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.held: dict[tuple[str, str], dict] = {}

    def heard(self, kind: str, body: dict) -> None:
        meta, status = body.get("metadata") or {}, body.get("status") or {}
        key = (meta.get("namespace", ""), meta.get("name", ""))
        held = status.get("gitops") or {}
        watching = held.get("watchUntil") and not held.get("watchOutcome") and kind != "DELETED"
        with self.lock:
            if watching:  # resumed on the revision Git moved to: the sweep watches that it stays healthy
                self.held[key] = body
            elif held.get("suspendedAt") and not held.get("resumedAt"):
                # a deleted Remediation's pause is still on the owner: the sweep resumes it, then forgets it
                self.held[key] = {**body, DELETED: True} if kind == "DELETED" else body
            else:
                self.held.pop(key, None)

    def forget(self, namespace: str, name: str) -> None:
        with self.lock:
            self.held.pop((namespace, name), None)

    def items(self) -> list[dict]:
        with self.lock:
            return list(self.held.values())


def hold_or_resume(ctx: OperatorContext, body: dict, now: datetime) -> str | None:
    """One held pause: keep it, or resume the owner and record why on the Remediation. Returns why it resumed."""
    meta = body["metadata"]
    status = RemediationStatus.model_validate(body.get("status") or {})
    held = status.gitops
    if held is not None and held.resumed_at and held.watch_until and not held.watch_outcome:
        return watch(ctx, body, status, now)
    if held is None or not held.suspended_at or held.resumed_at:
        return None
    if status.phase not in TERMINAL_PHASES and not body.get(DELETED):
        return None  # still acting or verifying: the pause protects that
    owner = gitops.Owner.of(held)
    key = f"{meta['namespace']}/{meta['name']}"
    if body.get(DELETED):  # nobody is left to keep the fix: resume, say so in the log
        resume(ctx, owner, key, unfixed=False)
        return "its Remediation was deleted"
    found, _ = owner_state(ctx.api, owner)
    live = declared_live(ctx, body, held) if status.phase == "Succeeded" and found.paused_by == key else None
    verdict = gitops.hold(found, key, parse_time(held.until) if held.until else None, now, status.phase,
                          held.declared, live)
    if not verdict.resume:
        return None
    resume(ctx, owner, key, verdict.unfixed)  # first: a crash before the record resumes nothing twice
    record(ctx, meta, held, verdict, now, gitops.watch_window(found))
    return verdict.reason


def declared_live(ctx: OperatorContext, body: dict, held: GitopsState) -> dict | None:
    """The target's fields that `held.declared` names, as they are live now (flattened as the action's changes
    were); None when nothing was recorded, the target is gone, or it cannot be read (then the lease still ends
    the hold: a read failing for good must not keep the owner paused for good)."""
    if not held.declared:
        return None
    target = ObjectRef.model_validate(body["spec"]["target"])
    try:
        live = target_body(ctx, target.kind, target.namespace or body["metadata"]["namespace"], target.name)
    except ApiException as e:  # unknown is not undone: the hold goes on, and so do its lease and Git's moves
        log.warning("gitops: target unreadable while held", extra={"remediation": body["metadata"].get("name"),
                                                                    "error": f"{e.status} {e.reason}"})
        return None
    if not live:
        return None
    flat = flatten({"spec": live.get("spec") or {}})
    return {path: flat.get(path) for path in held.declared}


def target_body(ctx: OperatorContext, kind: str, namespace: str, name: str) -> dict | None:
    """The target as the apiserver has it now (read only while a resumed revision is watched)."""
    if kind not in WORKLOAD_PLURALS and kind != "Rollout":  # an Argo Rollout is read as a workload is
        return {}
    try:
        return read_workload_json(ctx.api, kind, name, namespace)
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def watch(ctx: OperatorContext, body: dict, status: RemediationStatus, now: datetime) -> str | None:
    """One look at the revision Git moved to after our resume: record when it is Ready with the target healthy;
    a regression in the window marks the owner (a pause at that revision is refused: humans fix Git) and is
    escalated on the Remediation, naming the revision. Returns the outcome's reason once the watch is over."""
    meta, held, target = body["metadata"], status.gitops, ObjectRef.model_validate(body["spec"]["target"])
    owner = gitops.Owner.of(held)
    found, _ = owner_state(ctx.api, owner)
    kind, namespace = target.kind, target.namespace or meta["namespace"]
    health = gitops.workload_health(kind, target_body(ctx, kind, namespace, target.name))
    seen = gitops.after_resume(found, held.watched_revision or "", health,
                               parse_time(held.ready_at) if held.ready_at else None, parse_time(held.watch_until), now)
    if seen.outcome is None and not seen.ready_now:
        return None
    if seen.outcome == "Regressed" and found.exists:  # first: a crash before the record marks nothing twice
        patch(ctx.api, owner, {"metadata": {"annotations": {gitops.REGRESSED: held.watched_revision}}})
    write_gitops(ctx, meta, lambda g: g.ready_at is None if seen.ready_now else not g.watch_outcome,
                 {"ready_at": gitops.stamp(now)} if seen.ready_now else
                 {"watch_outcome": seen.outcome, "watch_reason": seen.reason[:512]},
                 None if seen.ready_now else ("GitOpsRegressed" if seen.outcome == "Regressed" else "GitOpsHealthy"),
                 seen.reason if seen.outcome != "Regressed" else
                 f"escalated: {seen.reason}; not remediated again at revision {held.watched_revision}: fix it in Git",
                 now)
    return seen.reason if seen.outcome else None


def record(ctx: OperatorContext, meta: dict, held: GitopsState, verdict: gitops.Hold, now: datetime,
           window: timedelta) -> None:
    """Write the resume on the Remediation (someone else recording it first is fine); when Git moved on, the
    watch of the new revision starts here."""
    reason = f"resumed {held.kind} {held.namespace}/{held.name}: {verdict.reason}"
    if verdict.unfixed:
        reason += f"; a human must revert in Git ({held.revert or 'the change that caused the incident'})"
    update = {"resumed_at": gitops.stamp(now), "resume_reason": reason[:512]}
    if verdict.moved_to:
        update |= {"watched_revision": verdict.moved_to, "watch_until": gitops.stamp(now + window)}
        reason += f"; watching revision {verdict.moved_to} until {update['watch_until']}"
    if verdict.undone:  # the owner is marked resumed-unfixed: the incident returning is escalated, not remediated
        reason = f"escalated: {reason}; not remediated again while Git is at revision " \
                 f"{held.revision or 'the paused one'}"
    write_gitops(ctx, meta, lambda g: not g.resumed_at, update, "GitOpsUndone" if verdict.undone else "GitOpsResumed",
                 reason, now)


def write_gitops(ctx: OperatorContext, meta: dict, still: Callable[[GitopsState], bool], update: dict,
                 note: str | None, message: str, now: datetime) -> None:
    """Update status.gitops (and note it) if `still` holds on a fresh read; re-read on 409, done on 404."""
    custom = client.CustomObjectsApi(ctx.api)
    for _ in range(CONFLICT_TRIES):
        fresh = custom.get_namespaced_custom_object("remediator.dev", "v1alpha1", meta["namespace"],
                                                    "remediations", meta["name"])
        status = RemediationStatus.model_validate(fresh.get("status") or {})
        if status.gitops is None or not still(status.gitops):
            return
        status = status.model_copy(update={"gitops": status.gitops.model_copy(update=update)})
        if note:
            status = state.note(status, note, message, now)
        try:
            custom.replace_namespaced_custom_object_status(
                "remediator.dev", "v1alpha1", meta["namespace"], "remediations", meta["name"],
                {**fresh, "status": status.wire()})
            return
        except ApiException as e:
            if e.status == 404:
                return
            if e.status != 409:
                raise


def sweep(ctx: OperatorContext, pauses: Pauses, now: datetime | None = None) -> list[str]:
    now = now or datetime.now(timezone.utc)
    out = []
    for body in pauses.items():
        if not ctx.serves(body["metadata"].get("namespace", "")):
            continue
        try:
            why = hold_or_resume(ctx, body, now)
        except Exception as e:  # noqa: BLE001  one owner's error must not stop the others'
            log.warning("gitops hold check failed", extra={"remediation": body["metadata"].get("name"),
                                                           "error": str(e)})
            continue
        if why:
            out.append(why)
            if body.get(DELETED):
                pauses.forget(body["metadata"].get("namespace", ""), body["metadata"].get("name", ""))
    return out


async def sweep_periodically(ctx: OperatorContext, pauses: Pauses, active: Callable[[], bool],
                             every: float = SWEEP_SECONDS) -> None:
    """On the active replica, every `every` s: resume, hold or watch each paused owner (a failing pass, e.g. an
    apiserver error, is tried again next period; before, it ended the resumes for good)."""
    await chores.every(every, active, lambda: pauses.items() and sweep(ctx, pauses), "gitops sweep")


def follow(ctx: Any) -> Pauses:
    """Register the pauses' index on the Remediations' watch."""
    pauses = Pauses()
    ctx.caches.remediation_listeners.append(pauses.heard)
    return pauses
