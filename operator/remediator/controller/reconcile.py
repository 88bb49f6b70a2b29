"""One tick of a Remediation's loop: load -> core.engine.decide -> persist -> act.

The status write always comes before the effect it allows, guarded by the
object's resourceVersion: if another writer got there first (409) this tick
does nothing and the next one re-reads. An action runs only after its intent
(step record with idempotency key) is stored, and it is keyed, so a crash
between the two replays the call harmlessly.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from datetime import datetime, timezone

from kubernetes.client.rest import ApiException

from .. import failpoints
from ..actions import base as actions
from ..approvals import messages
from ..approvals.slack import SlackUnavailable, find_request_message, post_message, update_message
from ..api.models import (
    TERMINAL_PHASES,
    Evidence,
    RemediationPolicySpec,
    RemediationSpec,
    RemediationStatus,
    RunbookSpec,
    RunbookStatus,
    Verify,
)
from ..api.slo import ServiceLevelObjectiveSpec
from ..core import adaptive, claims, engine, matching, planning, policy_select, runbook_stats, state
from ..records import events, logs, metrics, tracing
from ..signals import changes
from ..core.durations import parse_duration
from ..verification import probes, query_probes, query_verdicts, verdicts
from . import claims as target_claims
from .context import OperatorContext
from .guard_facts import READS, StepFacts, labels_of_namespace, step_facts
from .retention import ended_of

log = logging.getLogger("remediator.loop")
Outcome = Callable[[RemediationStatus], RemediationStatus]  # folds an action's result into a status
MAX_CHANGE_EVIDENCE = 20
OUTCOME_WRITES = 5  # tries to record an action's outcome against concurrent status writers


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Loop:
    """The daemon-side state of one Remediation: its identity and the observations made so far."""

    def __init__(self, ctx: OperatorContext, namespace: str, name: str):
        self.ctx = ctx
        self.namespace = namespace
        self.name = name
        self.observations: list = []
        self.query_readings: dict[str, list] = {}  # check name -> readings of the step being verified
        self.slack_retry_at = 0.0
        self.moved_on = False  # the last tick changed phase without an effect: decide again at once
        self.uid: str | None = None

    def tick(self) -> bool:
        """Advance the Remediation by one decision; True when it is finished."""
        res = self.ctx.resources
        logs.current_remediation.set(f"{self.namespace}/{self.name}")
        obj = res.get("Remediation", self.name, self.namespace)
        if obj is None:
            return True
        spec = RemediationSpec.model_validate(obj["spec"])
        status = RemediationStatus.model_validate(obj.get("status") or {})
        if status.phase in TERMINAL_PHASES:
            return True
        self.uid = obj["metadata"].get("uid")
        problem = matching.remediation_namespace_problem(self.namespace, spec)
        if problem:  # before any read made for it: a forged spec must not make us read another namespace
            return self.refuse(obj, status, problem)
        now = utcnow()
        # Independent reads, issued together: a tick waits for the slowest, not the sum.
        runbook_read = READS.submit(self.load_runbook, spec)
        policies_read = READS.submit(res.list, "RemediationPolicy")
        labels_read = READS.submit(labels_of_namespace, self.ctx, self.namespace)
        if status.phase == "Pending" and status.probable_cause is None:  # once: persisted with the plan
            status = status.model_copy(update={"probable_cause": changes.find_cause(
                self.ctx.api, self.ctx.changes, spec, obj["metadata"].get("creationTimestamp"), now)})
        runbook_body = runbook_read.result()
        runbook = RunbookSpec.model_validate(runbook_body["spec"]) if runbook_body else None
        policy = effective_policy(policies_read.result(), self.namespace, labels_read.result())
        observed = step_facts(self.ctx, self.name, spec, status, runbook, policy, now) \
            if needs_guards(status) else StepFacts()
        facts = engine.Facts(now=now, runbook=runbook, policy=policy, guards=observed.guards,
                             risk_input=observed.risk_input, planned_changes=observed.planned_changes,
                             step_history=adaptive_history(self.ctx, spec, status, runbook),
                             cause_kind=engine.cause_kind(status),
                             runbook_generation=runbook_body["metadata"].get("generation") if runbook_body else None)
        decision = engine.decide(self.name, spec, status, facts)
        if isinstance(decision.effect, engine.Act):
            claim = self.claim(spec, decision.status, runbook, decision.effect.index, now)
            if engine.new_intent(status, decision):  # decided again: a claim held elsewhere blocks the intent
                decision = engine.decide(self.name, spec, status, dataclasses.replace(facts, claim=claim))
            elif not claim.granted:  # a replayed intent whose claim another Remediation took meanwhile
                log.warning("waiting for the target's claim", extra={"remediation": f"{self.namespace}/{self.name}",
                                                                     "reason": claim.reason})
                return False
        self.moved_on = decision.changed and decision.effect is None and decision.status.phase != status.phase
        if decision.changed:
            obj = self.persist(obj, decision.status)
            if obj is None:
                self.moved_on = True  # 409: re-read and decide again at once, not a tick later
                return False
            tracing.decided(obj, status, decision.status, now)
            if status.phase == "Pending" or not isinstance(decision.effect, engine.Act):
                failpoints.hit("after-plan")  # with no approval needed, the plan's write also holds the intent
            if isinstance(decision.effect, engine.Act):
                failpoints.hit("after-intent")
        self.sync_slack(obj, spec, status, decision.status)
        status = decision.status
        effect = decision.effect
        if isinstance(effect, engine.Act):
            outcome = self.act(spec, status, effect, runbook, policy)
            failpoints.hit("after-action")
            if outcome is not None:
                obj, status = self.persist_outcome(obj, status, outcome, effect)
        elif isinstance(effect, engine.Probe):
            status = self.probe(spec, status, effect, runbook)
            failpoints.hit("during-verify")
            if status != decision.status:
                obj = self.persist(obj, status)
                tracing.verified(obj, effect.index, decision.status, status, utcnow())
        return status.phase in TERMINAL_PHASES

    def sync_slack(self, obj: dict, spec: RemediationSpec, before: RemediationStatus,
                   after: RemediationStatus) -> None:
        """Post the approval message once per request; update it when the request is decided."""
        slack = self.ctx.slack
        request = after.approval
        if slack is None or not slack.enabled or request is None:
            return
        try:
            if after.phase == "AwaitingApproval" and not request.slack_ts and request.slack_channel:
                if time.monotonic() < self.slack_retry_at:
                    return
                # Posted before a crash or a lost status write? Adopt that message rather than post another.
                found = request.request_id and request.requested_at and find_request_message(
                    slack, request.slack_channel, request.request_id, parse_time(request.requested_at).timestamp())
                channel, ts = found or post_message(
                    slack, request.slack_channel, f"Approval needed: {self.name}",
                    messages.request_blocks(self.namespace, self.name, spec, after), request.request_id)
                failpoints.hit("after-slack-post")
                posted = after.model_copy(update={"approval": request.model_copy(
                    update={"slack_channel": channel, "slack_ts": ts})})
                self.persist(obj, posted)  # on a 409 the next tick finds the message by its request id
            elif before.phase == "AwaitingApproval" and after.phase != "AwaitingApproval" and request.slack_ts:
                update_message(slack, request.slack_channel or "", request.slack_ts,
                               f"{self.name}: {after.phase}", messages.decided_blocks(self.name, after))
        except SlackUnavailable as e:
            self.slack_retry_at = time.monotonic() + 30
            log.warning("slack unavailable; approvals still work with `remediator approve`",
                        extra={"remediation": f"{self.namespace}/{self.name}", "error": str(e)})

    def refuse(self, obj: dict, status: RemediationStatus, problem: str) -> bool:
        """End a Remediation that points outside its own namespace (made by hand, with no CEL/admission
        policy to stop it). Written directly, not through `persist`: no Event or metric names the other
        namespace's target or Runbook."""
        refused = state.transition(status, "Failed", f"refused: {problem}", utcnow())
        try:
            self.ctx.resources.replace_status("Remediation", self.namespace, self.name,
                                              {**obj, "status": refused.wire()})
        except ApiException as e:
            if e.status in (404, 409):
                return False
            raise
        metrics.REFUSALS.labels("cross-namespace-remediation").inc()
        log.warning("remediation refused", extra={"remediation": f"{self.namespace}/{self.name}",
                                                  "reason": problem})
        return True

    def claim(self, spec: RemediationSpec, status: RemediationStatus, runbook: RunbookSpec | None, index: int,
              now: datetime) -> claims.ClaimDecision:
        assert self.uid is not None
        return target_claims.take(self.ctx.api, spec.target, self.namespace, self.uid, self.name,
                                  parse_duration(pinned(status, index, runbook).timeout), now)

    def load_runbook(self, spec: RemediationSpec) -> dict | None:
        return self.ctx.resources.get("Runbook", spec.runbook.name, spec.runbook.namespace)

    def persist(self, obj: dict, status: RemediationStatus) -> dict | None:
        status = claims.released(status)
        body = {**obj, "status": status.wire()}
        try:
            stored = self.ctx.resources.replace_status("Remediation", self.namespace, self.name, body)
        except ApiException as e:
            if e.status in (404, 409):  # gone, or someone wrote first: re-read next tick
                return None
            raise
        before = RemediationStatus.model_validate(obj.get("status") or {})
        if claims.step_over(before, status):  # after the write that says so
            target_claims.release(self.ctx.api, RemediationSpec.model_validate(obj["spec"]).target, self.namespace,
                                  obj["metadata"].get("uid") or "")
        count_outcome(obj, before, status)
        tracing.finished(obj, before, status)
        metrics.observe_approval(before, status)
        events.record_transition(self.ctx.api, self.namespace, self.name, obj["metadata"].get("uid"),
                                 RemediationSpec.model_validate(obj["spec"]).target, before, status, utcnow())
        return stored

    def persist_outcome(self, obj: dict, status: RemediationStatus, outcome: Outcome,
                        effect: engine.Act) -> tuple[dict | None, RemediationStatus]:
        """Record what an action did. The action has happened: if another writer got there first (409),
        fold the outcome into the fresh object and write again, rather than leave the step Intended and
        let the next tick's keyed replay record "already applied" without what it changed."""
        for _ in range(OUTCOME_WRITES):
            after = outcome(status)
            stored = self.persist(obj, after)
            if stored is not None:
                return stored, after
            obj = self.ctx.resources.get("Remediation", self.name, self.namespace)
            if obj is None:
                return None, after
            status = RemediationStatus.model_validate(obj.get("status") or {})
            if not awaits_outcome(status, effect):  # recorded already, or moved on (e.g. cancelled)
                log.warning("action outcome not recorded: the Remediation moved on meanwhile",
                            extra={"remediation": f"{self.namespace}/{self.name}", "phase": status.phase,
                                   "key": effect.key})
                return obj, status
        return None, after

    def act(self, spec: RemediationSpec, status: RemediationStatus, effect: engine.Act,
            runbook: RunbookSpec | None, policy: RemediationPolicySpec | None) -> Outcome | None:
        """Run the step's action; how to fold its result into a status, or None while it is in progress."""
        step = pinned(status, effect.index, runbook)
        caps = policy_select.caps_for(policy, self.namespace)
        request = actions.ActionRequest(action=step.action, target=spec.target, key=effect.key, step=step,
                                        dry_run=effect.dry_run, max_replicas=caps.max_replicas,
                                        max_memory=caps.max_memory, max_pods=caps.max_pods)
        try:
            with tracing.stage(self.uid, "act", tracing.step_attributes(self.namespace, self.name, spec, step,
                                                                        effect.key)) as span:
                account = planning.action_identity(status.plan, runbook, status.service_account_name)
                result = actions.execute(self.ctx.action_api(self.namespace, account), request)
                span.set_attribute("result", result.message[:256])
        except actions.ActionError as e:
            metrics.ACTIONS.labels(step.action, "retry" if e.retryable else "error").inc()
            if e.status == 403:
                metrics.REFUSALS.labels("forbidden-action").inc()
            if e.retryable:
                raise
            message, failed_at = str(e), utcnow()
            return lambda current: engine.action_failed(current, effect.index, message, failed_at)
        metrics.ACTIONS.labels(step.action, "replayed" if result.replayed else
                               ("applied" if result.done else "in-progress")).inc()
        if result.done and not result.replayed and len(status.steps) == 1 and status.started_at:
            metrics.SIGNAL_TO_ACTION.observe((utcnow() - parse_time(status.started_at)).total_seconds())
        if not result.done:  # e.g. a drain waiting on a PodDisruptionBudget: same key again next tick
            return None
        self.observations, self.query_readings = [], {}
        done_at = utcnow()
        evidence = [*result.evidence, *change_evidence(result.changes, engine.ts(done_at))]
        return lambda current: engine.action_done(current, effect.index, result.message, evidence, done_at,
                                                  replayed=result.replayed)

    def probe(self, spec: RemediationSpec, status: RemediationStatus, effect: engine.Probe,
              runbook: RunbookSpec | None) -> RemediationStatus:
        step = pinned(status, effect.index, runbook)
        record = engine.find_record(status, effect.index)
        self.observations.append(probes.observe(self.ctx.api, spec.target))
        started, timeout = parse_time(record.applied_at), parse_duration(step.timeout)
        external = self.query_verdicts(spec, step.verify, started, timeout)
        verdict = verdicts.verdict(step.verify, self.observations, started=started, timeout=timeout, now=utcnow(),
                                   external=external)
        return engine.verification_judged(status, effect.index, verdict.state, list(verdict.reasons),
                                          list(verdict.evidence), utcnow(), spec.signal.starts_at)

    def query_verdicts(self, spec: RemediationSpec, verify: Verify, started: datetime,
                       timeout) -> dict[str, verdicts.Verdict]:
        """Verdicts of the PromQL checks; readings accumulate across ticks of this step."""
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
            readings = query_verdicts.compact([*self.query_readings.get(name, []), reading], op, threshold)
            self.query_readings[name] = readings
            out[name] = query_verdicts.query_verdict(readings, op, threshold, parse_duration(check.for_),
                                                     started, timeout, reading.at, what)
        return out

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


def pinned(status: RemediationStatus, index: int, runbook: RunbookSpec | None):
    """The step as planned; the engine escalated already when it is neither pinned nor in the Runbook."""
    step = planning.pinned_step(status.plan, index, runbook)
    assert step is not None, f"step {index} is neither pinned nor in the Runbook"
    return step


def change_evidence(changes: dict, at: str) -> list[Evidence]:
    """What the action changed on the target (e.g. the container image before and after), as evidence."""
    return [Evidence(kind="change", detail=path, value=f"{change.get('before')!r} -> {change.get('after')!r}"[:512],
                     at=at) for path, change in sorted(changes.items())][:MAX_CHANGE_EVIDENCE]


def awaits_outcome(status: RemediationStatus, effect: engine.Act) -> bool:
    """The status still holds the intent `effect` carried out, with no outcome recorded."""
    record = engine.find_record(status, effect.index)
    return status.phase not in TERMINAL_PHASES and record is not None and record.phase == "Intended" \
        and record.idempotency_key == effect.key


def check_condition(name: str, check) -> tuple[str, float, str]:
    """(operator, threshold, words) of a PromQL check; sloRecovered is "worst burn / threshold < 1"."""
    if name == "promql":
        return check.op, check.threshold, f"{check.query} {check.op} {check.threshold:g}"
    return "<", 1.0, f"SLO {check.slo} burning under its alert thresholds"


def load_policy(ctx: OperatorContext, namespace: str) -> RemediationPolicySpec | None:
    return effective_policy(ctx.resources.list("RemediationPolicy"), namespace, labels_of_namespace(ctx, namespace))


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
    status (every ended Remediation is folded there), not from the Remediations, which retention deletes."""
    if runbook is None or not runbook.adaptive or status.phase != "Pending":
        return None
    body = ctx.resources.get("Runbook", spec.runbook.name, spec.runbook.namespace) or {}
    stats = RunbookStatus.model_validate(body.get("status") or {})
    if not stats.signal_stats_complete:  # the sweep has not counted the earlier ones yet: count them here
        ref = spec.runbook
        stats = runbook_stats.backfill(stats, ended_of(ctx, ref.namespace, {ref.name})[ref.name])
    return adaptive.history(stats, adaptive.signal_type(spec))


def needs_guards(status: RemediationStatus) -> bool:
    return status.phase in ("Pending", "Planned") or (
        status.phase == "Acting" and engine.find_record(status, status.current_step or 0) is None)


def parse_time(value: str | None) -> datetime:
    if not value:
        return utcnow()
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
