"""One tick of a Remediation's loop: load -> core.engine.decide -> persist -> one effect -> persist its outcome.

Everything is read and done through a `Store` (controller/store.py). The
status write always comes before the effect it allows, guarded by the
object's resourceVersion: if another writer got there first (409) this tick
does nothing and the next one, due at once, re-reads. An action runs only
after its intent (step record with idempotency key) is stored, and it is
keyed, so a crash between the two replays the call harmlessly. What the
effect did goes back through one core entry, `engine.outcome`.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone

from .. import failpoints
from ..actions import base as actions
from ..approvals import messages
from ..approvals.slack import SlackUnavailable
from ..api.models import (
    TERMINAL_PHASES,
    ProbableCause,
    Reading,
    RemediationPolicySpec,
    RemediationSpec,
    RemediationStatus,
    RunbookSpec,
    RunbookStatus,
    Verify,
)
from ..api.slo import ServiceLevelObjectiveSpec
from pydantic import ValidationError
from ..core.plan import adaptive, claims, gitops, planning
from ..core.engine import engine, state
from ..core.match import matching, policy_select
from ..core.match import reasons as match_reasons
from ..core.report import runbook_stats
from ..records import events, logs, metrics, tracing
from ..core import durations
from ..core.durations import parse_duration
from ..verification import query_probes, query_verdicts, readings, verdicts
from . import caches
from .context import OperatorContext
from .guard_facts import StepFacts, count_decisions, labels_of_namespace
from .retention import ended_of
from .store import ClusterStore, Store

log = logging.getLogger("remediator.loop")
OUTCOME_WRITES = 5  # tries to record an effect's outcome against concurrent status writers
WRITES_REMEMBERED = 8  # of a Loop's own status writes, to know their watch events (a tick writes at most a few)


# The probable cause, looked up beside the step's reads when the step does not depend on it.
LOOKUPS = ThreadPoolExecutor(max_workers=16, thread_name_prefix="lookups")
# The target's claim, taken beside the write of the intent it lets act.
CLAIMS = ThreadPoolExecutor(max_workers=16, thread_name_prefix="claims")
# The tick's read of the target, on its way while the step's dry run goes out.
TARGET_READS = ThreadPoolExecutor(max_workers=16, thread_name_prefix="target-reads")
# A new Remediation's first reads, on their way while the intake creates it; at most this many at once (a burst's
# further ticks read for themselves), and used only this fresh (seconds; a backlog's ticks read again).
FIRST_READS = ThreadPoolExecutor(max_workers=16, thread_name_prefix="first-reads")
FIRST_READS_IN_FLIGHT = threading.BoundedSemaphore(16)
FIRST_READS_FRESH = 1.0


def with_cause(status: RemediationStatus, cause: ProbableCause | None) -> RemediationStatus:
    return status.model_copy(update={"probable_cause": cause})


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Loop:
    """The daemon-side state of one Remediation: its identity (verification readings live in its step record)."""

    def __init__(self, ctx: OperatorContext, namespace: str, name: str, store: Store | None = None):
        self.ctx = ctx
        self.store: Store = store or ClusterStore(ctx)
        self.namespace = namespace
        self.name = name
        self.slack_retry_at = 0.0
        self.uid: str | None = None
        self.last: dict | None = None  # the object as this Loop last wrote it
        self.must_read = False  # a write met another writer (409): read the apiserver, not the watch
        self._written: deque[str] = deque(maxlen=WRITES_REMEMBERED)  # resourceVersions of our own writes
        self._written_lock = threading.Lock()  # written in the tick's thread, asked from the watch's
        self.untold: list[tuple] = []  # an intent's transition, told (Events) once the action it allows is done
        self.retold = False  # this Loop looked for Events a killed operator held back (once: it did not see them)
        self.first_reads: Future | None = None  # its first tick's load, started beside the create (`prefetch`)
        self.created_as: tuple | None = None  # (uid, resourceVersion) the create answered: whose first reads they are
        self.create_answered = threading.Event()  # the watch may bring the object before the create's answer

    def tick(self, seen: dict | None = None) -> float | None:
        """Advance the Remediation by one decision: load -> decide -> persist -> effect -> persist its outcome.
        `seen`: the object as the watch last delivered it, if the caller follows one.
        Returns when the next tick is due, in seconds (0: at once), or None once it is finished."""
        logs.current_remediation.set(f"{self.namespace}/{self.name}")
        try:
            return self.advance(seen)
        finally:  # also when the action failed
            self.tell()

    def tell(self) -> None:
        """Post the Events held back while the action ran."""
        told, self.untold = self.untold, []
        for transition in told:
            self.store.transition(*transition)

    def advance(self, seen: dict | None) -> float | None:
        obj = self.current(seen)
        if obj is None:
            return None
        spec = RemediationSpec.model_validate(obj["spec"])
        status = RemediationStatus.model_validate(obj.get("status") or {})
        if status.phase in TERMINAL_PHASES:
            return None
        self.uid = obj["metadata"].get("uid")
        problem = matching.remediation_namespace_problem(self.namespace, spec)
        if problem:  # before any read made for it: a forged spec must not make us read another namespace
            return self.refuse(obj, status, problem)
        if not self.retold:  # the Events of a step's last write the last operator may have died with: the same
            self.retold = True  # names, so those it did post answer 409
            before = events.before_step_write(status)
            if before is not None:
                self.untold.append((self.namespace, self.name, self.uid, spec.target, before, status, utcnow()))
        status, facts, read = self.prefetched(obj) or self.load(obj, spec, status)
        count_decisions(facts.guards)
        decision = engine.decide(self.name, spec, status, facts)
        claiming = None
        if decision.changed:
            # The claim only lets the action run, which still waits for this write: take it beside the write.
            claiming = logs.submit_here(CLAIMS, self.claim, spec, decision.effect) \
                if isinstance(decision.effect, engine.Act) else None
            try:
                obj = self.persist(obj, decision)
            except BaseException:  # e.g. a 500 after the retries: not written, so not claimed either
                self.unclaim(spec, claiming)
                raise
            if obj is None:
                self.unclaim(spec, claiming)
                return engine.AT_ONCE  # 409: re-read and decide again at once, not a tick later
            tracing.decided(obj, status, decision.status, facts.now)
            if status.phase == "Pending" or not isinstance(decision.effect, engine.Act):
                failpoints.hit("after-plan")  # with no approval needed, the plan's write also holds the intent
            if isinstance(decision.effect, engine.Act):
                failpoints.hit("after-intent")
        if decision.effect is None:
            return decision.requeue_after
        done = self.perform(spec, decision.status, decision.effect, facts, claiming, read)
        self.tell()
        return self.record(obj, spec, decision.status, decision.effect, done, facts)

    def prefetch(self, body: dict) -> Callable[[dict | None], None]:
        """Start the first tick's load while the intake creates `body`: it needs nothing the apiserver adds (its
        reads are the target, its cause and the step's dry run; nothing is written), so the create and those reads
        go out side by side instead of one after the other. Returns what the intake calls with the create's answer:
        the object created (the reads are kept for that version of it), or None (reads still queued are dropped)."""
        spec = RemediationSpec.model_validate(body["spec"])
        if matching.remediation_namespace_problem(self.namespace, spec) or \
                not FIRST_READS_IN_FLIGHT.acquire(blocking=False):
            return lambda created: None  # refused before any read made for it; or a burst: its tick reads
        first = {**body, "metadata": {**body["metadata"], "creationTimestamp": durations.format_time(utcnow())}}
        in_flight = FIRST_READS_IN_FLIGHT  # released to the one it was taken from
        try:
            reads = logs.submit_here(FIRST_READS, self.load_first, first, spec)
        except BaseException:
            in_flight.release()
            raise
        reads.add_done_callback(lambda _: in_flight.release())  # cancelled ones too
        self.first_reads = reads

        def answered(created: dict | None) -> None:
            if created:
                self.created_as = version_of(created)
            else:
                reads.cancel()
            self.create_answered.set()
        return answered

    def load_first(self, obj: dict, spec: RemediationSpec) -> tuple[tuple, float]:
        """The first tick's load, and when it began (monotonic): its reads are that old at most."""
        logs.current_remediation.set(f"{self.namespace}/{self.name}")  # in the copy of the context it runs in
        began = time.monotonic()
        return self.load(obj, spec, RemediationStatus()), began

    def prefetched(self, obj: dict) -> tuple[RemediationStatus, engine.Facts, dict | None] | None:
        """The first reads `prefetch` started, when `obj` is the object they were started for as the create made it
        (nobody wrote it since) and they are fresh; None otherwise (also when they failed, never left the queue, or
        the create's answer did not come within FIRST_READS_FRESH: the tick reads now). Taken once: a later tick
        loads afresh."""
        first, self.first_reads = self.first_reads, None
        if first is None:
            return None
        used = self.first_reads_of(obj, first)
        metrics.FIRST_READS.labels("read-again" if used is None else "used").inc()
        return used

    def first_reads_of(self, obj: dict, first: Future) -> tuple[RemediationStatus, engine.Facts, dict | None] | None:
        if not self.create_answered.wait(FIRST_READS_FRESH) or version_of(obj) != self.created_as or first.cancel():
            return None
        try:
            (status, facts, read), began = first.result()
        except Exception as e:  # noqa: BLE001  read again in this tick, which meets the error where it always did
            log.info("first reads failed; reading again", extra={"remediation": f"{self.namespace}/{self.name}",
                                                                  "error": str(e)})
            return None
        if time.monotonic() - began > FIRST_READS_FRESH:
            return None
        return status, dataclasses.replace(facts, now=utcnow()), read

    def wrote(self, resource_version: str | None) -> bool:
        """This Loop wrote that version: its watch event tells nothing new (the tick that wrote it scheduled
        the next one), so it needs no tick of its own."""
        with self._written_lock:
            return resource_version is not None and resource_version in self._written

    def current(self, seen: dict | None) -> dict | None:
        """The Remediation to decide on: the newer of what the watch delivered and what this Loop last wrote
        (the watch may not have delivered our own write yet), without a GET. Read from the apiserver when there
        is no watched copy, after a 409, or when the versions cannot be ordered. A stale copy is harmless: every
        write is guarded by its resourceVersion, and a 409 makes the next tick read."""
        if seen is not None and not self.must_read:
            newest = newer(seen, self.last)
            if newest is not None:
                return newest
        self.must_read = False
        return self.store.remediation(self.namespace, self.name)

    def load(self, obj: dict, spec: RemediationSpec,
             status: RemediationStatus) -> tuple[RemediationStatus, engine.Facts, dict | None]:
        """What this decision needs: the Runbook and the policy always, the rest when the core asks for it;
        and the target as read for it (None: not read), which the tick's action starts from."""
        now = utcnow()
        runbook_body = self.store.runbook(spec.runbook.namespace, spec.runbook.name)  # both from caches
        policy = self.store.policy(self.namespace)
        runbook, runbook_problem = valid_runbook(runbook_body)
        needs = engine.needs(status, runbook)
        created = obj["metadata"].get("creationTimestamp")
        looking = None
        # one read of the target for all that looks at it this tick, the action included; each waits for it
        # where it needs it, so the step's dry run (which needs none) goes out beside it
        reading = logs.submit_here(TARGET_READS, self.store.target, spec.target) \
            if needs.cause or needs.step_facts else None
        if needs.cause:  # once: persisted with the plan
            if needs.step_facts and runbook is not None and planning.cause_free(runbook):
                # the step (so what its facts read) is the same whatever the cause: look for it beside them
                looking = logs.submit_here(LOOKUPS, self.store.probable_cause, spec, created, now, reading)
            else:
                status = with_cause(status, self.store.probable_cause(spec, created, now, reading))
        observed = self.store.step_facts(self.name, spec, status, runbook, policy, now, reading) \
            if needs.step_facts else StepFacts()
        if looking is not None:
            status = with_cause(status, looking.result())
        read = reading.result() if reading is not None else None
        history = self.store.history(spec, status, runbook) if needs.history else None
        held = status.gitops
        owner = self.store.gitops_owner(gitops.Owner.of(held)) \
            if needs.gitops_owner and held is not None else None
        return status, engine.Facts(
            now=now, runbook=runbook, policy=policy, guards=observed.guards, risk_input=observed.risk_input,
            planned_changes=observed.planned_changes, step_history=history, gitops=observed.gitops,
            cause_kind=status.probable_cause.kind if status.probable_cause else None,
            runbook_generation=runbook_body["metadata"].get("generation") if runbook_body else None,
            slack=self.store.slack_enabled, slack_backoff=time.monotonic() < self.slack_retry_at,
            runbook_problem=runbook_problem, gitops_owner=owner,
            match_reasons=(obj["metadata"].get("annotations") or {}).get(match_reasons.ANNOTATION)), read

    def perform(self, spec: RemediationSpec, status: RemediationStatus, effect: engine.Effect,
                facts: engine.Facts, claiming: Future | None = None, read: dict | None = None) -> engine.Outcome:
        """Carry out the decision's one effect; what it did, for engine.outcome. `claiming`: an Act's claim,
        if it was taken beside the write of its intent; `read`: the target as this tick read it."""
        if isinstance(effect, engine.Act):
            done = self.act(spec, status, effect, claiming.result() if claiming is not None else None, read)
            failpoints.hit("after-action")
            return done
        if isinstance(effect, engine.Probe):
            judged = self.probe(spec, status, effect, facts.runbook)
            failpoints.hit("during-verify")
            return judged
        try:
            if isinstance(effect, engine.PostApproval):
                request = status.approval
                assert request is not None
                channel, ts = self.store.post_approval(
                    effect.channel, request.request_id, parse_time(request.requested_at)
                    if request.requested_at else None, f"Approval needed: {self.name}",
                    messages.request_blocks(self.namespace, self.name, spec, status))
                failpoints.hit("after-slack-post")
                return engine.Posted(channel, ts)  # on a 409 the next tick finds the message by its request id
            if isinstance(effect, engine.UpdateApproval):
                self.store.update_approval(effect.channel, effect.ts, f"{self.name}: {status.phase}",
                                           messages.decided_blocks(self.name, status))
        except SlackUnavailable as e:
            self.slack_retry_at = time.monotonic() + engine.SLACK_RETRY
            log.warning("slack unavailable; approvals still work with `remediator approve`",
                        extra={"remediation": f"{self.namespace}/{self.name}", "error": str(e)})
            return engine.Posted()
        return None

    def record(self, obj: dict, spec: RemediationSpec, status: RemediationStatus, effect: engine.Effect,
               done: engine.Outcome, facts: engine.Facts) -> float | None:
        """Persist what the effect did. It has happened: if another writer got there first (409), fold it into
        the fresh object and write again, rather than leave the step Intended and let the next tick's keyed
        replay record "already applied" without what it changed."""
        for _ in range(OUTCOME_WRITES):
            decision = engine.outcome(spec, status, effect, done, dataclasses.replace(facts, now=utcnow()))
            if decision.stale:
                log.warning("action outcome not recorded: the Remediation moved on meanwhile",
                            extra={"remediation": f"{self.namespace}/{self.name}", "phase": status.phase})
            if not decision.changed:
                return decision.requeue_after
            stored = self.persist(obj, decision)
            if stored is not None:
                if isinstance(effect, engine.Probe):
                    tracing.verified(stored, effect.index, status, decision.status, utcnow())
                return decision.requeue_after
            fresh = self.store.remediation(self.namespace, self.name)
            if fresh is None:
                return None
            obj, status = fresh, RemediationStatus.model_validate(fresh.get("status") or {})
        return engine.AT_ONCE

    def refuse(self, obj: dict, status: RemediationStatus, problem: str) -> float | None:
        """End a Remediation that points outside its own namespace (made by hand, with no CEL/admission
        policy to stop it). Written directly, not through `persist`: no Event or metric names the other
        namespace's target or Runbook."""
        refused = state.transition(status, "Failed", f"refused: {problem}", utcnow())
        if self.store.write_status({**obj, "status": refused.wire()}) is None:
            return engine.AT_ONCE
        metrics.REFUSALS.labels("cross-namespace-remediation").inc()
        log.warning("remediation refused", extra={"remediation": f"{self.namespace}/{self.name}",
                                                  "reason": problem})
        return None

    def persist(self, obj: dict, decision: engine.Decision) -> dict | None:
        status = decision.status
        stored = self.store.write_status({**obj, "status": status.wire()})
        self.last, self.must_read = stored, stored is None
        if stored is not None:
            with self._written_lock:
                self._written.append((stored.get("metadata") or {}).get("resourceVersion"))
        if stored is None:  # gone, or someone wrote first: re-read
            return None
        before = RemediationStatus.model_validate(obj.get("status") or {})
        target = RemediationSpec.model_validate(obj["spec"]).target
        told = (self.namespace, self.name, obj["metadata"].get("uid"), target, before, status, utcnow())
        if isinstance(decision.effect, engine.Act):  # posted beside the action, they slowed its PATCH
            self.untold.append(told)
        else:
            self.store.transition(*told)
        count_outcome(obj, before, status)
        tracing.finished(obj, before, status)
        metrics.observe_approval(before, status)
        if decision.release:  # after the write that says so
            self.store.release(target, self.namespace, obj["metadata"].get("uid") or "")
        return stored

    def claim(self, spec: RemediationSpec, effect: engine.Act) -> claims.ClaimDecision:
        assert self.uid is not None
        return self.store.claim(spec.target, self.namespace, self.uid, self.name, effect.claim_for, utcnow())

    def unclaim(self, spec: RemediationSpec, claiming: Future | None) -> None:
        """The intent was not written: give back a claim this tick took (one held before stays held)."""
        if claiming is None:
            return
        try:
            claim = claiming.result()
        except Exception as e:  # noqa: BLE001  nothing was taken; the next tick claims again if it acts
            log.warning("claim not taken", extra={"remediation": f"{self.namespace}/{self.name}", "error": str(e)})
            return
        if claim.op in ("create", "takeover"):
            self.store.release(spec.target, self.namespace, self.uid or "")

    def act(self, spec: RemediationSpec, status: RemediationStatus, effect: engine.Act,
            claim: claims.ClaimDecision | None = None, read: dict | None = None) -> engine.Acted:
        """Claim the target (unless `claim` was taken already), then run the step's action (keyed: a replay is
        recognised as done), starting from `read` when the tick read the target."""
        claim = claim or self.claim(spec, effect)
        if not claim.granted:
            log.warning("no claim on the target", extra={"remediation": f"{self.namespace}/{self.name}",
                                                         "reason": claim.reason})
            return engine.Acted(claim=claim)
        step = effect.step
        assert step is not None, f"step {effect.index} is neither pinned nor in the Runbook"  # engine escalated
        paused_at = None
        if effect.pause is not None:  # the intent (status.gitops + Intended step) is stored: pause, keyed
            try:
                paused_at = self.store.pause(effect.pause, utcnow())
            except actions.ActionError as e:
                if e.retryable:
                    raise
                return engine.Acted(claim=claim, error=str(e))
            failpoints.hit("after-pause")
            if effect.pause.settle:  # the step acts once the owner has settled: a later decision says when
                return engine.Acted(claim=claim, paused_at=paused_at)
        request = actions.ActionRequest(action=step.action, target=spec.target, key=effect.key, step=step,
                                        dry_run=effect.dry_run, max_replicas=effect.caps.max_replicas,
                                        max_memory=effect.caps.max_memory, max_pods=effect.caps.max_pods,
                                        remediation=f"{self.namespace}/{self.name}", remediation_uid=self.uid,
                                        read=read)
        try:
            with tracing.stage(self.uid, "act", tracing.step_attributes(self.namespace, self.name, spec, step,
                                                                        effect.key)) as span:
                result = self.store.act(self.namespace, effect.account, request)
                span.set_attribute("result", result.message[:256])
        except actions.ActionError as e:
            metrics.ACTIONS.labels(step.action, "retry" if e.retryable else "error").inc()
            if e.status == 403:
                metrics.REFUSALS.labels("forbidden-action").inc()
            if e.retryable:
                raise
            return engine.Acted(claim=claim, error=str(e), paused_at=paused_at)
        metrics.ACTIONS.labels(step.action, "replayed" if result.replayed else
                               ("applied" if result.done else "in-progress")).inc()
        if result.done and not result.replayed and len(status.steps) == 1 and status.started_at:
            metrics.SIGNAL_TO_ACTION.observe((utcnow() - parse_time(status.started_at)).total_seconds())
        if not result.done:  # e.g. a drain waiting on a PodDisruptionBudget: same key again next tick
            return engine.Acted(claim=claim, paused_at=paused_at)
        return engine.Acted(claim=claim, done=True, replayed=result.replayed, message=result.message,
                            evidence=tuple(result.evidence), changes=result.changes, paused_at=paused_at)

    def probe(self, spec: RemediationSpec, status: RemediationStatus, effect: engine.Probe,
              runbook: RunbookSpec | None) -> RemediationStatus:
        """Observe, fold the readings into the step record (persisted when they change) and judge."""
        step = pinned(status, effect.index, runbook)
        record = engine.find_record(status, effect.index)
        seen = self.store.observe(spec.target, record.idempotency_key)
        kept = readings.fold_pods(record.readings, seen)
        started, timeout = parse_time(record.applied_at), parse_duration(step.timeout)
        external, kept = self.query_verdicts(spec, step.verify, kept, started, timeout)
        drained = verdicts.drained_from(record.evidence, runbook, spec.signal) if spec.target.kind == "Node" \
            else None
        verdict = verdicts.judge(step.verify, seen, kept, started=started, timeout=timeout, now=utcnow(),
                                 external=external, drained=drained)
        status = engine.with_record(status, record.model_copy(update={"readings": kept}))
        return engine.verification_judged(status, effect.index, verdict.state, list(verdict.reasons),
                                          list(verdict.evidence), utcnow(), spec.signal.starts_at)

    def query_verdicts(self, spec: RemediationSpec, verify: Verify, kept: list[Reading], started: datetime,
                       timeout) -> tuple[dict[str, verdicts.Verdict], list[Reading]]:
        """Verdicts of the PromQL checks, and the step's readings with this tick's folded in."""
        checks = {"promql": verify.promql, "sloRecovered": verify.slo_recovered}
        out: dict[str, verdicts.Verdict] = {}
        for name, check in checks.items():
            if check is None:
                continue
            if self.ctx.prometheus is None:
                out[name] = verdicts.Verdict("inconclusive", ["no Prometheus configured (--prometheus-url)"])
                continue
            reading = self.read_query(name, check, spec)
            op, threshold, what = check_condition(name, check)
            kept = query_verdicts.fold_query(kept, name, reading, op, threshold)
            out[name] = query_verdicts.query_verdict(query_verdicts.query_history(kept, name, reading), op,
                                                     threshold, parse_duration(check.for_), started, timeout,
                                                     reading.at, what)
        return out, kept

    def read_query(self, name: str, check, spec: RemediationSpec) -> query_verdicts.QueryReading:
        now = utcnow()
        if name == "promql":
            return query_probes.read_promql(self.ctx.prometheus, check, now, self.namespace)
        body = self.ctx.resources.get("ServiceLevelObjective", check.slo, self.namespace)
        if body is None:
            return query_verdicts.QueryReading(now, None, f"ServiceLevelObjective {self.namespace}/{check.slo} "
                                                          "does not exist")
        severity = spec.signal.severity if spec.signal.source == "sloBurn" and spec.signal.name == check.slo \
            else "page"
        return query_probes.read_slo_recovered(self.ctx.prometheus, ServiceLevelObjectiveSpec.model_validate(
            body["spec"]), self.namespace, check.slo, severity, now)


def newer(seen: dict, last: dict | None) -> dict | None:
    """The later of two copies of one object by resourceVersion (etcd's revision: a later write has a larger
    one); None when a version is not a number, so the caller reads instead of guessing."""
    if last is None:
        return seen
    try:
        seen_version = int(seen["metadata"]["resourceVersion"])
        last_version = int(last["metadata"]["resourceVersion"])
    except (KeyError, TypeError, ValueError):
        return None
    return last if last_version >= seen_version else seen


def version_of(obj: dict) -> tuple:
    meta = obj.get("metadata") or {}
    return meta.get("uid"), meta.get("resourceVersion")


def valid_runbook(body: dict | None) -> tuple[RunbookSpec | None, str | None]:
    """The Runbook's spec, or why the models refuse it: the apiserver does not check a stored object again when
    its schema changes, and such a Runbook must end the Remediation with a reason, not fail every tick."""
    if not body:
        return None, None
    try:
        return RunbookSpec.model_validate(body.get("spec") or {}), None
    except ValidationError as e:
        first = e.errors()[0]
        return None, f"{'.'.join(str(part) for part in first['loc'])}: {first['msg']}"


def pinned(status: RemediationStatus, index: int, runbook: RunbookSpec | None):
    """The step as planned; the engine escalated already when it is neither pinned nor in the Runbook."""
    step = planning.pinned_step(status.plan, index, runbook)
    assert step is not None, f"step {index} is neither pinned nor in the Runbook"
    return step


def check_condition(name: str, check) -> tuple[str, float, str]:
    """(operator, threshold, words) of a PromQL check; sloRecovered is "worst burn / threshold < 1"."""
    if name == "promql":
        return check.op, check.threshold, f"{check.query} {check.op} {check.threshold:g}"
    return "<", 1.0, f"SLO {check.slo} burning under its alert thresholds"


def load_runbook(ctx: OperatorContext, namespace: str, name: str) -> dict | None:
    return caches.runbook(ctx, namespace, name)


def load_policy(ctx: OperatorContext, namespace: str) -> RemediationPolicySpec | None:
    return effective_policy(caches.policies(ctx), namespace, labels_of_namespace(ctx, namespace))


def effective_policy(policies: list[dict], namespace: str, labels: dict[str, str]) -> RemediationPolicySpec | None:
    return policy_select.effective_policy(
        [(p["metadata"]["name"], p.get("spec") or {}) for p in policies], namespace, labels)


def count_outcome(obj: dict, before: RemediationStatus, after: RemediationStatus) -> None:
    if after.phase in TERMINAL_PHASES and before.phase not in TERMINAL_PHASES:
        runbook = obj["spec"]["runbook"]["name"]
        metrics.REMEDIATIONS.labels(runbook, after.phase).inc()
        if after.phase == "Succeeded" and after.time_to_recover_seconds is not None:
            metrics.TIME_TO_RECOVER.labels(runbook).observe(after.time_to_recover_seconds)


def adaptive_history(ctx: OperatorContext, spec: RemediationSpec, status: RemediationStatus,
                     runbook: RunbookSpec | None) -> dict[str, adaptive.StepOutcomes] | None:
    """How each step of an adaptive Runbook fared on this signal type, read when planning from the Runbook's
    status (every ended Remediation is folded there), not from the Remediations, which retention deletes. The
    status as the watch-fed cache holds it: a fold it has not seen yet is milliseconds old."""
    if runbook is None or not runbook.adaptive or status.phase != "Pending":
        return None
    body = load_runbook(ctx, spec.runbook.namespace, spec.runbook.name) or {}
    stats = RunbookStatus.model_validate(body.get("status") or {})
    if not stats.signal_stats_complete:  # the sweep has not counted the earlier ones yet: count them here
        ref = spec.runbook
        records = ended_of(ctx, ref.namespace, {ref.name}).get(ref.name)
        if records is not None:  # else one could not be read: the ladder orders by what the status has
            stats = runbook_stats.backfill(stats, records)
    return adaptive.history(stats, adaptive.signal_type(spec))


def parse_time(value: str | None) -> datetime:
    """A stored stamp; now when there is none yet."""
    return durations.parse_time(value) if value else utcnow()
