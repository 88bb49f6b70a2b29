"""Verdicts: did the step work? Pure — observations and times in, a Verdict out.

A step's `Verify` lists checks; all that are set must pass. Each check gives
one of four states:

    pending       not decided yet; look again
    passed        the observations since the step started show it worked
    failed        the timeout passed (or a definite failure appeared) and the
                  evidence shows failure: ProgressDeadlineExceeded, crashlooping,
                  OOMKilled or not-Ready pods, restarts that kept rising
    inconclusive  the target is gone, or the timeout passed with no evidence
                  either way

Never "passed" without evidence: only observations taken after the step
started count, and an empty pod list proves nothing. A verdict reads the
observation in hand and the step's readings (`readings`: when each run of the
pods began), so it judges the same after a restart of the operator. A step that declares no
check gets a default one that is evidence too: a workload's rollout complete
and its pods Ready with unchanged restarts for 30s; a Pod Ready for 30s; a
Node (cordonDrain) recovery: its watched condition healthy again, or every pod
the drain evicted replaced by a Running, Ready pod of the same controller on
another node (`node_recovered`). The PromQL checks
(`promql`, `sloRecovered`) are judged elsewhere; their verdicts come in as
`external` and a missing one is pending until the timeout, then inconclusive.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from remediator.api.models import (
    Evidence,
    NodeConditionTrigger,
    PodsReadyCheck,
    Reading,
    RolloutCompleteCheck,
    RunbookSpec,
    Signal,
    Verify,
)
from remediator.core.plan.nodes import EVICTED, READY, UNREPLACEABLE
from remediator.core.durations import format_time, parse_duration, parse_time
from remediator.verification.observations import (
    PROGRESS_DEADLINE_EXCEEDED,
    Observation,
    PodObservation,
    failing_reasons,
    rollout_progress,
)
from remediator.verification.readings import first_restarts, fold_pods, ready_since, restarts_untold

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Rollout")
VerdictState = Literal["pending", "passed", "failed", "inconclusive"]
EXTERNAL_CHECKS = ("promql", "sloRecovered")


@dataclass(frozen=True)
class Verdict:
    state: VerdictState
    reasons: list[str] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)


def verdict(
    verify: Verify,
    observations: Sequence[Observation],
    started: datetime,
    timeout: timedelta,
    now: datetime,
    external: Mapping[str, Verdict] | None = None,
    drained: Drained | None = None,
) -> Verdict:
    """The verdict over a list of observations, folded into readings as the loop folds them tick by tick."""
    since = observations_since(observations, started)
    readings: list[Reading] = []
    for o in since:
        readings = fold_pods(readings, o)
    return judge(verify, since[-1] if since else None, readings, started, timeout, now, external, drained)


def judge(
    verify: Verify,
    latest: Observation | None,
    readings: Sequence[Reading],
    started: datetime,
    timeout: timedelta,
    now: datetime,
    external: Mapping[str, Verdict] | None = None,
    drained: Drained | None = None,
) -> Verdict:
    """The step's verdict from the observation in hand and the step's readings (`latest` already folded in):
    every declared check combined (failed > gone > pending > inconclusive > passed)."""
    if latest is not None and latest.at < started:
        latest = None
    readings = [r for r in readings if r.check == "pods"]  # podsReady's runs count from `started` only
    checks = check_verdicts(verify, latest, readings, started, timeout, now, external or {}, drained)
    reasons = [f"{name}: {r}" for name, v in checks.items() for r in v.reasons]
    evidence = [e for v in checks.values() for e in v.evidence]
    states = {v.state for v in checks.values()}
    if "failed" in states:
        return Verdict("failed", reasons, evidence)
    if latest is not None and not latest.exists:
        return Verdict("inconclusive", reasons, evidence)
    for state in ("pending", "inconclusive"):
        if state in states:
            return Verdict(state, reasons, evidence)
    return Verdict("passed", reasons, evidence)


def check_verdicts(
    verify: Verify,
    latest: Observation | None,
    readings: Sequence[Reading],
    started: datetime,
    timeout: timedelta,
    now: datetime,
    external: Mapping[str, Verdict],
    drained: Drained | None = None,
) -> dict[str, Verdict]:
    checks: dict[str, Verdict] = {}
    if verify.rollout_complete:
        checks["rolloutComplete"] = rollout_complete(verify.rollout_complete, latest, started, timeout, now)
    if verify.pods_ready:
        checks["podsReady"] = pods_ready(verify.pods_ready, latest, readings, started, timeout, now)
    for name, declared in (("promql", verify.promql), ("sloRecovered", verify.slo_recovered)):
        if declared:
            checks[name] = external_verdict(name, external, started, timeout, now)
    if not checks:
        checks = default_checks(latest, readings, started, timeout, now, drained)
    return checks


DEFAULT_READY_WINDOW = "30s"


def default_checks(
    latest: Observation | None, readings: Sequence[Reading], started: datetime, timeout: timedelta, now: datetime,
    drained: Drained | None = None,
) -> dict[str, Verdict]:
    """The checks of a step that declares none: evidence still, never "the target exists"."""
    kind = latest.target.kind if latest else None
    ready = pods_ready(PodsReadyCheck(window=DEFAULT_READY_WINDOW), latest, readings, started, timeout, now)
    if kind in WORKLOAD_KINDS:
        rollout = rollout_complete(RolloutCompleteCheck(), latest, started, timeout, now)
        return {"rolloutComplete (default)": rollout, "podsReady (default)": ready}
    if kind == "Pod":
        return {"podsReady (default)": ready}
    if latest is None:  # nothing to judge yet, whatever the kind
        return {"observation": _no_evidence_yet(None, now - started >= timeout, timeout) or Verdict("pending")}
    return {"nodeRecovered (default)": node_recovered(drained or Drained(), latest, started, timeout, now)}


def observations_since(observations: Sequence[Observation], started: datetime) -> list[Observation]:
    """Only what was seen after the step started is evidence about the step."""
    return sorted((o for o in observations if o.at >= started), key=lambda o: o.at)


# ---------------------------------------------------------------- rolloutComplete


def rollout_complete(
    check: RolloutCompleteCheck,
    latest: Observation | None,
    started: datetime,
    timeout: timedelta,
    now: datetime,
) -> Verdict:
    """All replicas updated and available at the current generation, as kubectl rollout status says."""
    if check.timeout:
        timeout = parse_duration(check.timeout)
    timed_out = now - started >= timeout
    early = _no_evidence_yet(latest, timed_out, timeout)
    if early or latest is None:
        return early
    if latest.rollout is None:
        return Verdict("inconclusive", [f"{latest.target.kind} has no rollout to wait for"])
    complete, message = rollout_progress(latest.rollout)
    seen = _evidence("rollout", message, latest, _replica_summary(latest))
    if complete:
        return Verdict("passed", [message], [seen])
    deadline = latest.rollout.condition("Progressing")
    exceeded = deadline is not None and deadline.reason == PROGRESS_DEADLINE_EXCEEDED
    if exceeded and deadline.updated_at is not None and deadline.updated_at >= started:
        return Verdict("failed", [f"{PROGRESS_DEADLINE_EXCEEDED}: {deadline.message}"], [seen])
    if not timed_out:
        return Verdict("pending", [message], [seen])
    failures = _pod_failures(latest)
    if exceeded:
        failures.insert(0, f"{PROGRESS_DEADLINE_EXCEEDED}: {deadline.message}")
    if failures:
        return Verdict(
            "failed",
            [f"not complete after {_fmt(timeout)}: {message}", *failures],
            [seen, *_failure_evidence(latest)],
        )
    return Verdict(
        "inconclusive", [f"not complete after {_fmt(timeout)}: {message}; no failure seen"], [seen]
    )


def _replica_summary(o: Observation) -> str:
    r = o.rollout
    return f"{r.updated} updated, {r.available} available of {r.desired}" if r else ""


# ---------------------------------------------------------------- podsReady


def pods_ready(
    check: PodsReadyCheck,
    latest: Observation | None,
    readings: Sequence[Reading],
    started: datetime,
    timeout: timedelta,
    now: datetime,
) -> Verdict:
    """Every pod Ready, with the same pods and restart counts, from the reading that began the run (as
    recorded, maybe by another replica) to the observation in hand, spanning `window`."""
    window = parse_duration(check.window)
    timed_out = now - started >= timeout
    early = _no_evidence_yet(latest, timed_out, timeout)
    if early or latest is None:
        return early
    # a run recorded before the step began (by a replica whose clock ran behind) is no run of the step; the
    # restart counts the pods began with are kept whenever they were recorded
    since = ready_since([r for r in readings if parse_time(r.at) >= started], latest)
    span = latest.at - since if since else timedelta(0)
    if since:
        summary = f"{len(latest.pods)} pods Ready, restarts unchanged for {_fmt(span)}"
        if span >= window:
            return Verdict(
                "passed",
                [f"{summary} (window {_fmt(window)})"],
                [_evidence("pods", summary, latest, _restart_summary(latest))],
            )
    waiting = f"Ready and stable for {_fmt(span)} of {_fmt(window)}" if since else _not_ready_summary(latest)
    if not timed_out:
        return Verdict("pending", [waiting])
    failures = _pod_failures(latest) + _restart_increases(readings, latest)
    if failures:
        return Verdict("failed", [f"not stable after {_fmt(timeout)}", *failures], _failure_evidence(latest))
    return Verdict("inconclusive", [f"not stable after {_fmt(timeout)}: {waiting}; no failure seen"])


def _restart_summary(o: Observation) -> str:
    return ", ".join(f"{p.name}={p.restarts}" for p in o.pods)


def _not_ready_summary(o: Observation) -> str:
    if not o.pods:
        return "no pods"
    not_ready = [p.name for p in o.pods if not p.ready]
    return f"{len(not_ready)} of {len(o.pods)} pods not Ready" if not_ready else "restart counts changed"


def _restart_increases(readings: Sequence[Reading], latest: Observation) -> list[str]:
    first = first_restarts(readings)
    unnamed = None if restarts_untold(readings) else 0  # untold: what an unnamed pod began with is not known
    began = {p.uid: first.get(p.uid, unnamed) for p in latest.pods}
    return [
        f"pod {p.name} restarted {p.restarts - began[p.uid]} times during the step"
        for p in latest.pods
        if began[p.uid] is not None and p.restarts > began[p.uid]
    ]


# ---------------------------------------------------------------- external and none


def external_verdict(
    name: str, external: Mapping[str, Verdict], started: datetime, timeout: timedelta, now: datetime
) -> Verdict:
    """A check judged elsewhere (PromQL): its verdict as given, or pending until the timeout."""
    if name in external:
        return external[name]
    if now - started >= timeout:
        return Verdict("inconclusive", [f"no result within {_fmt(timeout)}"])
    return Verdict("pending", ["waiting for a result"])


# ---------------------------------------------------------------- nodeRecovered



@dataclass(frozen=True)
class EvictedOwner:
    namespace: str
    owner: str  # the controller, "Kind/name"
    pods: tuple[str, ...]  # the names of its pods the drain evicted


@dataclass(frozen=True)
class Drained:
    """What a Node's verdict needs from the step record and the Runbook: the condition watched, the evicted
    pods by controller, and the pods no controller replaces."""

    watched: NodeConditionTrigger = field(default_factory=lambda: READY)
    evicted: tuple[EvictedOwner, ...] = ()
    unreplaceable: tuple[str, ...] = ()


def drained_from(evidence: Sequence[Evidence], runbook: RunbookSpec | None, signal: Signal | None) -> Drained:
    """The Node verdict's input, from the drain's recorded evidence and the trigger that set it off (a drain
    set off by an alert watches Ready)."""
    evicted, bare = [], []
    for e in evidence:
        if e.kind == EVICTED and e.detail.count("/") == 2:
            namespace, kind, name = e.detail.split("/")
            evicted.append(EvictedOwner(namespace, f"{kind}/{name}", tuple(p for p in (e.value or "").split(",") if p)))
        elif e.kind == UNREPLACEABLE:
            bare.append(e.detail)
    return Drained(watched_condition(runbook, signal), tuple(evicted), tuple(bare))


def watched_condition(runbook: RunbookSpec | None, signal: Signal | None) -> NodeConditionTrigger:
    if runbook is not None and signal is not None and signal.source == "nodeCondition":
        for trigger in runbook.triggers:
            if trigger.node_condition is not None and trigger.node_condition.type == signal.name:
                return trigger.node_condition
    return READY


def healthy_status(condition: str) -> str:
    """Ready is healthy True; a pressure or a condition of the user's is healthy False."""
    return "True" if condition == "Ready" else "False"


def node_recovered(drained: Drained, latest: Observation | None, started: datetime, timeout: timedelta,
                   now: datetime) -> Verdict:
    """Passed when the Node's watched condition is healthy again, or when every controller the drain evicted
    pods of has at least that many pods Running and Ready on other nodes. A pod with no controller is never
    replaced and never counts; nothing evicted means only the Node's recovery can pass."""
    timed_out = now - started >= timeout
    early = _no_evidence_yet(latest, timed_out, timeout)
    if early or latest is None:
        return early
    node, watched = latest.target.name, drained.watched.type
    status = latest.conditions.get(watched)
    healthy = healthy_status(watched)
    if status == healthy and status not in drained.watched.statuses:
        said = f"node {node} is healthy again: {watched}={status}"
        return Verdict("passed", [said], [_evidence("node", said, latest, f"{watched}={status}")])
    condition = f"node {node} still {watched}={status or 'missing'} (healthy: {healthy})"
    replaced, missing = [], []
    for owner in drained.evicted:
        mine = [p for p in latest.elsewhere if p.namespace == owner.namespace and same_controller(p, owner.owner)
                and p.node != node]  # unscheduled (no node yet) included: a replacement with no room
        # a Job's replacement that already ran to the end is as good as one still running
        done = ("Running", "Succeeded") if owner.owner.startswith("Job/") else ("Running",)
        running = sum(1 for p in mine if (p.ready and p.phase == "Running") or p.phase in done[1:])
        # a replacement still starting (Pending for want of room, not Ready) means an evicted pod is not back,
        # however many pods of that controller ran elsewhere before the drain; finished Job pods are not waiting
        pending = sorted(p.name for p in mine if not (p.ready and p.phase == "Running")
                         and p.phase not in ("Succeeded", "Failed"))
        line = f"{owner.owner} in {owner.namespace}: {running} of {len(owner.pods)} Running and Ready elsewhere"
        if running >= len(owner.pods) and not pending:
            replaced.append(line)
        else:
            missing.append(f"{line}; not rescheduled: {', '.join(owner.pods)}"
                           + (f" (replacements not Ready yet: {', '.join(pending)})" if pending else ""))
    stays = [f"{pod} has no controller: nothing replaces it" for pod in drained.unreplaceable]
    if drained.evicted and not missing:
        count = sum(len(o.pods) for o in drained.evicted)
        said = f"the {count} pod(s) evicted from node {node} run elsewhere: {'; '.join(replaced)}"
        return Verdict("passed", [said, *stays], [_evidence("pods", said, latest)])
    nothing = [] if drained.evicted else [f"no pod with a controller was evicted from node {node}: only its "
                                          f"recovery verifies the step"]
    reasons = [condition, *missing, *nothing, *stays]
    if not timed_out:
        return Verdict("pending", reasons)
    reasons[0] = f"not recovered after {_fmt(timeout)}: {condition}"
    if missing:
        return Verdict("failed", reasons, [_evidence("pods", m, latest) for m in missing])
    return Verdict("inconclusive", reasons, [_evidence("node", condition, latest)])


# ---------------------------------------------------------------- shared


def same_controller(pod: PodObservation, owner: str) -> bool:
    """The pod belongs to the evicted pods' controller, or to a newer ReplicaSet of its Deployment (a rollout
    during verification replaces the ReplicaSet the drain recorded)."""
    if pod.owner == owner:
        return True
    kind, _, name = owner.partition("/")
    return kind == "ReplicaSet" and pod.deployment is not None and name.rpartition("-")[0] == pod.deployment


def _no_evidence_yet(latest: Observation | None, timed_out: bool, timeout: timedelta) -> Verdict | None:
    """The verdict when there is nothing to judge: no observation yet, or the target is gone."""
    if latest is None:
        if timed_out:
            return Verdict("inconclusive", [f"no observation within {_fmt(timeout)}"])
        return Verdict("pending", ["no observation since the step started"])
    if not latest.exists:
        what = f"{latest.target.kind} {latest.target.name}"
        return Verdict(
            "inconclusive", [f"{what} is gone"], [_evidence("target", f"{what} not found", latest)]
        )
    return None


def _pod_failures(o: Observation) -> list[str]:
    return [f"pod {p.name}: {', '.join(failing_reasons(p))}" for p in o.pods if failing_reasons(p)]


def _failure_evidence(o: Observation) -> list[Evidence]:
    return [
        _evidence("pod", f"{p.name} failing", o, ", ".join(failing_reasons(p)))
        for p in o.pods
        if failing_reasons(p)
    ]


def _evidence(kind: str, detail: str, o: Observation, value: str | None = None) -> Evidence:
    return Evidence(kind=kind, detail=detail, value=value or None, at=format_time(o.at))




def _fmt(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes}m{seconds}s" if minutes and seconds else f"{minutes}m" if minutes else f"{seconds}s"
