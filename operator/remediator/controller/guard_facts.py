"""Gather what the guards need from the cluster, then let core.guards decide."""

from __future__ import annotations

import concurrent.futures
import json
import re

from dataclasses import dataclass, field
from datetime import datetime

from kubernetes import client
from kubernetes.client.rest import ApiException

from ..actions import base as actions
from ..api.models import (
    RemediationPolicySpec,
    RemediationSpec,
    RemediationStatus,
    RunbookSpec,
)
from ..core import engine, guards, planning, policy_select, risk, state
from ..core.freeze import freeze_status
from ..core.guard_inputs import namespace_share, past_remediation, pods_touched, recent_failures
from ..records import metrics
from ..signals.changes import digest
from .context import OperatorContext


@dataclass(frozen=True)
class TargetFacts:
    replicas: int | None = None  # spec.replicas of a Deployment or StatefulSet; None for other kinds or when gone
    labels: dict[str, str] = field(default_factory=dict)


def read_target(ctx: OperatorContext, target) -> TargetFacts:
    """The target's labels and, for a replicated workload, its desired replicas: one read."""
    apps, core = client.AppsV1Api(ctx.api), client.CoreV1Api(ctx.api)
    read = {"Deployment": apps.read_namespaced_deployment, "StatefulSet": apps.read_namespaced_stateful_set,
            "DaemonSet": apps.read_namespaced_daemon_set, "Pod": core.read_namespaced_pod}.get(target.kind)
    try:
        if target.kind == "Node":
            return TargetFacts(labels=core.read_node(target.name).metadata.labels or {})
        if read is None:
            return TargetFacts()
        found = read(target.name, target.namespace or "")
    except ApiException as e:
        if e.status == 404:
            return TargetFacts()
        raise
    replicas = found.spec.replicas if target.kind in ("Deployment", "StatefulSet") else None
    return TargetFacts(replicas, found.metadata.labels or {})


READS = concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="guard-facts")


@dataclass(frozen=True)
class StepFacts:
    """What the shell observed about the next step: guard verdict, risk input, what a dry run would change."""

    guards: guards.GuardVerdict | None = None
    risk_input: risk.RiskInput | None = None
    planned_changes: tuple[str, ...] = ()


def step_facts(ctx: OperatorContext, name: str, spec: RemediationSpec, status: RemediationStatus,
               runbook: RunbookSpec | None, policy: RemediationPolicySpec | None, now: datetime) -> StepFacts:
    if runbook is None:
        return StepFacts()
    steps = status.plan or planning.plan(runbook, engine.cause_kind(status))
    index = planning.next_step(steps, status.steps)
    if index is None:
        return StepFacts()
    action = steps[index].action
    target = spec.target
    # The reads do not depend on each other: issue them together, so planning waits for the slowest, not the sum.
    reads = {
        "target": READS.submit(read_target, ctx, target),
        "history": READS.submit(ctx.resources.list, "Remediation"),
        "dry_run": READS.submit(dry_run_step, ctx, name, spec, runbook.steps[index], index, policy,
                                runbook.service_account_name),
        "namespace_pods": READS.submit(namespace_pods, ctx, target.namespace),
        "namespace_labels": READS.submit(labels_of_namespace, ctx, target.namespace),
    }
    got = {key: future.result() for key, future in reads.items()}
    replicas = got["target"].replicas
    touched = pods_touched(action, replicas)
    history = [past_remediation(o) for o in got["history"]]
    verdict = guards.check_guards(guards.GuardContext(
        now=now, runbook=spec.runbook, guard=runbook.guard, policy=policy, target=target,
        history=history, action=action, target_replicas=replicas,
        pods_touched=touched, remediation_name=name,
    ))
    for decision in verdict.decisions:
        metrics.GUARD_DECISIONS.labels(decision.guard, "allowed" if decision.allowed else "blocked").inc()
    dry_run, changes = got["dry_run"]
    freeze = freeze_status(policy.freeze_windows if policy else [], now)
    inp = risk.RiskInput(
        declared=steps[index].risk, action=action, pods_touched=touched or 0, workload_replicas=replicas or 0,
        namespace_share=namespace_share(got["namespace_pods"] if touched else None, touched),
        namespace_labels=got["namespace_labels"], target_labels=got["target"].labels,
        recent_failures=recent_failures(history, spec, now), in_freeze_window=freeze.inside,
        next_freeze_in=freeze.next_starts_in, dry_run=dry_run, probable_cause=engine.cause_kind(status),
    )
    return StepFacts(verdict, inp, tuple(changes))


def dry_run_step(ctx: OperatorContext, name: str, spec: RemediationSpec, step, index: int,
                 policy: RemediationPolicySpec | None, service_account: str | None = None) -> tuple[str, list[str]]:
    """Server-side dry run of the step, as the identity that will act:
    ("succeeded"|"failed"|"unavailable", what it would change)."""
    caps = policy_select.caps_for(policy, spec.target.namespace or "")
    request = actions.ActionRequest(
        action=step.action, target=spec.target, key=state.idempotency_key(name, index, step.action), step=step,
        dry_run=True, max_replicas=caps.max_replicas, max_memory=caps.max_memory, max_pods=caps.max_pods)
    try:
        result = actions.execute(ctx.action_api(spec.runbook.namespace, service_account), request)
    except actions.ActionError as e:
        return ("unavailable" if e.retryable else "failed"), [f"dry run refused: {e}"]
    return "succeeded", change_lines(result.changes)[:20]


# Where values may be secrets (env values, a last-applied-configuration annotation holding the whole spec,
# command lines): shown as digests, as the change journal does; the rest (replicas, images...) as is.
SECRET_BEARING = re.compile(r"\.env\[|\.envFrom|annotations\[|\.args\b|\.command\b")


def change_lines(changes: dict) -> list[str]:
    """A dry run's diff as lines for humans (status, Slack): `path: before -> after`, digests where secrets may be."""
    def shown(path: str, value) -> str:
        if value is None or not SECRET_BEARING.search(path):
            return repr(value)
        return f"sha256:{digest(value)}"
    return [f"{path}: {shown(path, change.get('before'))} -> {shown(path, change.get('after'))}"
            for path, change in sorted(changes.items())]


def labels_of_namespace(ctx: OperatorContext, namespace: str | None) -> dict[str, str]:
    if not namespace:
        return {}
    return client.CoreV1Api(ctx.api).read_namespace(namespace).metadata.labels or {}


def namespace_pods(ctx: OperatorContext, namespace: str | None) -> int | None:
    """How many pods the namespace has, without fetching them: one item plus the apiserver's count of the rest."""
    if not namespace:
        return None
    response = client.CoreV1Api(ctx.api).list_namespaced_pod(namespace, limit=1, _preload_content=False)
    page = json.loads(response.data)
    remaining = (page.get("metadata") or {}).get("remainingItemCount")
    if remaining is not None or not (page.get("metadata") or {}).get("continue"):
        return len(page.get("items") or []) + (remaining or 0)
    return len(client.CoreV1Api(ctx.api).list_namespaced_pod(namespace).items)  # no count given: count them
