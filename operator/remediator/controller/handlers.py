"""kopf handlers: a few lines each — load, call the core, persist, act.

Registered on a kopf registry by `register`, so the operator process and
tests (KopfRunner) build the same set.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable
from datetime import datetime, timezone

import kopf
from kubernetes import client
from kubernetes.client.rest import ApiException
from pydantic import ValidationError

from ..core.durations import iso_time
from ..api.models import GROUP, KOPF_FINALIZER, TERMINAL_PHASES, VERSION, Approval, RemediationApprovalSpec
from ..core.engine import state
from ..signals import pods
from ..verification import probes
from ..verification.observations import pods_healthy
from . import approvals, caches, escalation, ingest, reconcile, runbook_status, slo, workqueue
from .workqueue import WorkQueue
from .webhooks import SIGNALS
from .context import OperatorContext

log = logging.getLogger("remediator.handlers")


def maybe_failing(status, **_) -> bool:
    """Cheap pre-filter so healthy pods never reach the classifier."""
    return any(c.get("type") == "Ready" and c.get("status") == "False" for c in (status or {}).get("conditions") or [])


async def ingest_pod(ctx: OperatorContext, pod: dict) -> None:
    for signal in pods.pod_signals(pod, datetime.now(timezone.utc)):
        result = await asyncio.to_thread(ctx.intake.firing, signal)
        SIGNALS.labels("podState", result.outcome).inc()


async def resolve_pod(ctx: OperatorContext, previous: dict) -> None:
    namespace = previous["metadata"].get("namespace", "")
    others = [pod for (ns, _), pod in list(ctx.failing_pods.items()) if ns == namespace]
    for signal in pods.recovered(previous, others, datetime.now(timezone.utc)):
        # most pods turning Ready (every rollout) had no incident: the cache says so without a GET
        if (namespace, state.remediation_name(signal.source, signal.fingerprint, "", namespace)) \
                not in ctx.caches.remediations:
            continue
        result = await asyncio.to_thread(ctx.intake.resolved, signal)
        SIGNALS.labels("podState", result.outcome).inc()


async def rescan_failing_pods(ctx: OperatorContext, active: Callable[[], bool] = lambda: True,
                              every: float = 10.0) -> None:
    """Pods that stay failing send no new events; re-judge them so grace periods can expire. Only on the
    active replica: a standby's watch is paused, so what it remembers may be stale; taking over, it first
    re-reads each remembered pod (one deleted meanwhile sent no event it could see)."""
    was_active = False
    while True:
        await asyncio.sleep(every)
        if not active():
            was_active = False
            continue
        if not was_active:
            await asyncio.to_thread(refresh_failing_pods, ctx)
            was_active = True
        for pod in list(ctx.failing_pods.values()):
            try:
                await ingest_pod(ctx, pod)
            except Exception as e:  # one bad pod or a passing apiserver error must not stop the rescan
                log.warning("pod rescan failed", extra={"pod": pod.get("metadata", {}).get("name"), "error": str(e)})
        try:
            await asyncio.to_thread(end_pod_incidents, ctx, None, active)
        except Exception as e:  # noqa: BLE001  the rescan must outlive it: failing pods' grace periods expire here
            log.warning("pod incident sweep failed", extra={"error": str(e)})


def end_pod_incidents(ctx: OperatorContext, now: float | None = None,
                      active: Callable[[], bool] = lambda: True) -> None:
    """A pod-state incident handed to people ends when its workload's pods are healthy again, however they fixed
    it: a rollback deletes the crash-looping pods, which never turn Ready (`resolve_pod`), so the workload is
    looked at. Its Remediation's signal is then resolved, and `runbook_status.finish` records the end. Bounded:
    at most `LOOKS_PER_SWEEP` workloads a sweep, one that stays unhealthy less often (AwaitingHealthyPods).
    Stops once this replica is no longer the active one (a standby writes nothing)."""
    now = time.monotonic() if now is None else now
    awaiting = ctx.awaiting_healthy_pods
    for target, keys in awaiting.due(now):
        if not active():
            return
        gone = [key for key in keys if key not in ctx.caches.remediations]  # deleted while the watch was away
        for key in gone:
            awaiting.discard(key)
        if len(gone) == len(keys):
            continue
        try:
            healthy, why = pods_healthy(probes.observe(ctx.api, target))
        except Exception as e:  # noqa: BLE001  one workload's failure holds up no other; looked at later
            awaiting.looked(target, False, now)
            log.warning("could not look at a pod incident's workload", extra={
                "target": f"{target.kind}/{target.namespace}/{target.name}", "error": str(e)})
            continue
        awaiting.looked(target, healthy, now)
        if not healthy:
            continue
        for namespace, name in keys:
            if (namespace, name) in gone:
                continue
            try:
                ingest.record_resolved(ctx.resources, namespace, name,
                                       f"{target.kind}/{target.name}: every pod healthy again ({why})")
                awaiting.discard((namespace, name))
            except Exception as e:  # noqa: BLE001  kept: the next look tries again
                log.warning("could not resolve a pod incident", extra={
                    "remediation": f"{namespace}/{name}", "error": str(e)})


def refresh_failing_pods(ctx: OperatorContext) -> None:
    core = client.CoreV1Api(ctx.api)
    for key in list(ctx.failing_pods):
        try:
            pod = ctx.api.sanitize_for_serialization(core.read_namespaced_pod(key[1], key[0]))
        except ApiException as e:
            if e.status == 404:
                ctx.failing_pods.pop(key, None)
            continue
        if maybe_failing(pod.get("status")):
            ctx.failing_pods[key] = pod
        else:
            ctx.failing_pods.pop(key, None)


class QuietPods(logging.Filter):
    """kopf logs every handled event; a pod's are many per rollout (a line each, and its CPU): only failures."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO or "pod_state' succeeded" not in record.getMessage()


def register(registry: kopf.OperatorRegistry, ctx: OperatorContext, ticks: Ticks) -> None:
    logging.getLogger("kopf.objects").addFilter(QuietPods())
    @kopf.on.login(registry=registry)
    def login(**kwargs):
        """In-cluster ServiceAccount, else KUBECONFIG: the same identity as the operator's own client."""
        return kopf.login_via_client(**kwargs)

    @kopf.on.event("", "v1", "pods", registry=registry)
    async def pod_state(type, body, namespace, name, status, **_):
        key = (namespace, name)
        if type == "DELETED" or not ctx.serves(namespace) or not maybe_failing(status):
            previous = ctx.failing_pods.pop(key, None)
            if previous is not None and type != "DELETED" and ctx.serves(namespace):
                await resolve_pod(ctx, previous)  # healthy again: the pod-state incident may be over
            return
        ctx.failing_pods[key] = dict(body)
        await ingest_pod(ctx, ctx.failing_pods[key])

    # The change journal (signals/changes.py) follows its kinds by watches of its own: controller/journal.py.

    @kopf.on.create(GROUP, VERSION, "remediationapprovals", registry=registry)
    def approval_cast(spec, meta, namespace, patch, **_):
        try:
            vote = RemediationApprovalSpec.model_validate(dict(spec))
        except ValidationError as e:  # e.g. created before spec.requestId was required: say so, once
            outcome, message = "refused-invalid", f"not a vote: {e.errors()[0]['loc']}: {e.errors()[0]['msg']}"
        else:
            if vote.decision == "resolve":  # not a vote: a person says the incident is over (controller.escalation)
                outcome, message = escalation.record_resolution(ctx, namespace, vote)
                if outcome == "refused-contended":
                    raise kopf.TemporaryError(message, delay=1)
            else:
                policy = reconcile.load_policy(ctx, namespace)
                outcome, message = approvals.record_kubernetes_vote(ctx, namespace, vote,
                                                                    policy.approval if policy else Approval(),
                                                                    meta.get("creationTimestamp"))
        patch.status["outcome"] = outcome
        patch.status["message"] = message
        patch.status["recordedAt"] = iso_time(datetime.now(timezone.utc))

    # Remediations come from the caches' watch (controller/caches.py), not a kopf watch of their own.
    ctx.caches.remediation_listeners.append(lambda kind, body: remediation_seen(ctx, ticks, kind, body))
    ctx.intake.created_listeners.append(lambda body: ticks.seen(REMEDIATION, "ADDED", body))
    ctx.intake.creating_listeners.append(ticks.creating)

    @kopf.on.event(GROUP, VERSION, "servicelevelobjectives", registry=registry)
    async def slo_seen(type, body, **_):
        ticks.seen(SLO, type, body)


REMEDIATION, SLO = "Remediation", "ServiceLevelObjective"
# Folding an ended Remediation into its Runbook, and dropping kopf's finalizer from objects an earlier version
# made, are apiserver writes: off the watch's thread, which must keep the caches current.
CHORES = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="remediation-chores")


def remediation_seen(ctx: OperatorContext, ticks: "Ticks", event_type: str, body: dict) -> None:
    """Every Remediation as listed ("") and watched, in the caches' watch thread."""
    ctx.intake.incidents.observe(event_type, body)
    ticks.seen(REMEDIATION, event_type or None, body)
    meta = body.get("metadata") or {}
    served = event_type != "DELETED" and ctx.serves(meta.get("namespace", ""))
    if event_type == "DELETED" or served:  # a deletion too: else its alert re-sent, its workload looked at, for ever
        ctx.open_alerts.observe(event_type, body)
        ctx.awaiting_healthy_pods.observe(event_type, body)
    if not served:
        return
    if KOPF_FINALIZER in (meta.get("finalizers") or []):
        CHORES.submit(drop_kopf_finalizer, ctx, meta["namespace"], meta["name"])
    if ticks.active() and runbook_status.pending(body.get("status"), ctx.alertmanager is not None):
        CHORES.submit(fold_outcome, ctx, meta["namespace"], meta["name"], body)


def fold_outcome(ctx: OperatorContext, namespace: str, name: str, seen: dict | None = None) -> None:
    """`seen`, the object an event brought, is worked from only while no later event came (the chore may have
    waited in the queue): a stale copy would send an alert or fold a count before its write's 409 said so."""
    if seen is not None and ctx.caches.remediations.version(namespace, name) != \
            (seen.get("metadata") or {}).get("resourceVersion"):
        seen = None
    try:  # also on the first listing after a restart: what a crash left undone is done then
        runbook_status.finish(ctx, namespace, name, seen=seen)
    except Exception as e:  # noqa: BLE001  not retried: the object's next event, or a restart, tries again
        log.warning("could not record the outcome in the Runbook", extra={
            "remediation": f"{namespace}/{name}", "error": str(e)})


def drop_kopf_finalizer(ctx: OperatorContext, namespace: str, name: str) -> None:
    """Earlier versions ran Remediations as kopf daemons, which keep kopf's finalizer on them; nothing needs it
    now, and left there it would block deleting the namespace once no operator runs."""
    try:
        obj = ctx.resources.get("Remediation", name, namespace)
        kept = [f for f in ((obj or {}).get("metadata") or {}).get("finalizers") or [] if f != KOPF_FINALIZER]
        if obj is not None and len(kept) != len(obj["metadata"].get("finalizers") or []):
            client.CustomObjectsApi(ctx.api).patch_namespaced_custom_object(
                GROUP, VERSION, namespace, "remediations", name,
                {"metadata": {"finalizers": kept or None, "resourceVersion": obj["metadata"]["resourceVersion"]}})
    except Exception as e:  # noqa: BLE001  its next event tries again
        log.warning("could not drop kopf's finalizer", extra={"remediation": f"{namespace}/{name}",
                                                              "error": str(e)})


class Ticks:
    """Open Remediations and SLOs as keys of one work queue (kind, namespace, name), fed by their watch events.

    Remediations come from the caches' watch, SLOs from a kopf event handler: neither puts a finalizer on the
    objects (kopf's daemons would), so nothing blocks their deletion while no operator runs; the finalizer
    earlier versions left is dropped (`remediation_seen`; kopf drops an SLO's itself, as no handler needs it).
    Every event on a Remediation ticks it at once (a vote, an edit, another writer's status write), except the echo
    of its own loop's status write (that tick scheduled the next one already) and a version its ticks already had;
    the intake hands over each Remediation it creates, so its first tick does not wait for the watch to bring it
    (`Intake.created_listeners`); the Remediation as watched is kept
    for its tick, which then needs no GET of it (reconcile.Loop.current); an SLO is evaluated
    again at once only when its spec changed, since each evaluation writes its status."""

    def __init__(self, ctx: OperatorContext, queue: WorkQueue | None = None):
        self.ctx = ctx
        self.queue = queue or WorkQueue()
        self.loops: dict[tuple, reconcile.Loop] = {}  # a Remediation's in-memory observations between ticks
        self.bodies: dict[tuple, dict] = {}  # open Remediations as last watched: a tick reads no GET for them
        self.generations: dict[tuple, int | None] = {}
        self.loop: asyncio.AbstractEventLoop | None = None  # the queue's; set by `run`
        # set by `run`; before it (the caches' first listing) not active: taking over lists the work then
        self.active: Callable[[], bool] = lambda: False

    def seen(self, kind: str, type: str | None, body: dict) -> None:
        """A watch event or a listed object. Callable from any thread (kopf runs sync handlers in its
        executor): the queue itself is only touched on its event loop."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            if self.loop is None:  # the caches' first listing, before the queue runs: taking over lists it
                return
            self.loop.call_soon_threadsafe(self._seen, kind, type, body)
        else:
            self._seen(kind, type, body)

    def _seen(self, kind: str, type: str | None, body: dict) -> None:
        meta = body.get("metadata") or {}
        key = (kind, meta.get("namespace"), meta.get("name"))
        status = body.get("status") or {}
        if type == "DELETED" or not self.ctx.serves(key[1]) or (
                kind == REMEDIATION and status.get("phase") in TERMINAL_PHASES):
            self.forget(key)
            return
        if kind == SLO and key in self.generations and self.generations[key] == meta.get("generation"):
            return  # only its own status write: it is already scheduled
        if kind == REMEDIATION and "spec" in body:  # watched, listed or created whole (a primed key is not)
            held = self.bodies.get(key)
            known = held is not None and reconcile.newer(body, held) is held  # this version or an older one
            if not known:
                self.bodies[key] = body
            loop = self.loops.get(key)
            if loop is not None and (known or loop.wrote(meta.get("resourceVersion"))):
                # the echo of the loop's own write (the tick that wrote it scheduled the next one), or a version
                # its ticks had already: the creation's answer, then its watch event
                return
        self.generations[key] = meta.get("generation")
        self.queue.add(key)

    def creating(self, body: dict) -> Callable[[dict | None], None]:
        """The intake is about to create `body`: while this replica works the queue, its Loop starts the first
        tick's reads beside the create (`reconcile.Loop.prefetch`). Returns what to call with the create's answer."""
        meta = body["metadata"]
        key = (REMEDIATION, meta["namespace"], meta["name"])
        if not self.active():  # not ours to work
            return lambda created: None
        loop = reconcile.Loop(self.ctx, meta["namespace"], meta["name"])
        if self.loops.setdefault(key, loop) is not loop:  # it exists, or another delivery is creating it
            return lambda created: None
        try:
            answer = loop.prefetch(body)
        except BaseException:
            self.drop_unused(key, loop)
            raise

        def answered(created: dict | None) -> None:
            answer(created)
            if created is None:
                self.drop_unused(key, loop)
        return answered

    def drop_unused(self, key: tuple, loop: reconcile.Loop) -> None:
        """Forget a Loop made for a create that made nothing, unless a tick has taken it up meanwhile (the object
        exists after all: a create retried after the first went through, or another replica's)."""
        if loop.uid is None and key not in self.bodies and self.loops.get(key) is loop:
            self.loops.pop(key, None)

    def forget(self, key: tuple) -> None:
        self.queue.remove(key)
        for memory in (self.loops, self.generations, self.bodies):
            memory.pop(key, None)

    def reset(self) -> None:
        """Standing by: another replica owns the work and its memory; what we knew may go stale."""
        self.queue.clear()
        for memory in (self.loops, self.generations, self.bodies):
            memory.clear()

    def prime(self) -> int:
        """Every open Remediation and every SLO, as on taking over from another replica."""
        open_ones, unfolded = caches.ensure(self.ctx).remediations.unfinished()
        for namespace, name, phase in open_ones:
            self.seen(REMEDIATION, None, {"metadata": {"namespace": namespace, "name": name},
                                          "status": {"phase": phase}})
        for namespace, name in unfolded:
            if self.ctx.serves(namespace):
                CHORES.submit(fold_outcome, self.ctx, namespace, name)
        slos = list_served(self.ctx, SLO)
        for body in slos:
            self.seen(SLO, None, body)
        return len(open_ones) + len(slos)

    def process(self, key: tuple) -> float | None:
        """In a worker thread; never for one key in two threads at once (the queue sees to it)."""
        kind, namespace, name = key
        if kind == SLO:
            return slo.evaluate_once(self.ctx, namespace, name)
        loop = self.loops.setdefault(key, reconcile.Loop(self.ctx, namespace, name))
        after = loop.tick(self.bodies.get(key))
        if after is None:
            self.loops.pop(key, None)
        return after

    async def run(self, active: Callable[[], bool], workers: int = 8, every: float = 1.0) -> None:
        """Work the queue while this replica is the active one; on becoming active, list what is open (kopf
        re-lists too when it resumes, but our view of the peering and kopf's need not switch at one instant)."""
        self.loop = asyncio.get_running_loop()
        self.active = active
        working = asyncio.create_task(workqueue.work(self.queue, self.process, workers, active))
        was_active = False
        try:
            while True:
                now_active = active()
                if now_active and not was_active:
                    try:
                        primed = await asyncio.to_thread(self.prime)
                    except Exception as e:  # noqa: BLE001  kopf's own listing still feeds the queue
                        log.warning("could not list open work", extra={"error": str(e)})
                    else:
                        log.info("open work listed", extra={"objects": primed})
                elif was_active and not now_active:
                    self.reset()
                was_active = now_active
                await asyncio.sleep(every)
        finally:
            working.cancel()
            await asyncio.gather(working, return_exceptions=True)


def list_served(ctx: OperatorContext, kind: str) -> list[dict]:
    """Every object of a kind in the served namespaces: per namespace when they are named (a chart scoped to
    namespaces grants no cluster-wide list), else across the cluster."""
    namespaces = [ns for ns in ctx.settings.namespaces if not any(c in ns for c in "*?[")]
    if ctx.settings.namespaces and len(namespaces) == len(ctx.settings.namespaces):
        return [body for ns in namespaces for body in ctx.resources.list(kind, ns)]
    return [body for body in ctx.resources.list(kind) if ctx.serves(body["metadata"]["namespace"])]
