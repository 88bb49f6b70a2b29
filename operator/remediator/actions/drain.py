"""cordonDrain: what `kubectl drain NODE` does, without --force.

1. Cordon: set `spec.unschedulable` and record the key on the Node, in one
   patch guarded by resourceVersion.
2. Evict every evictable pod through the Eviction API (policy/v1), so the
   apiserver enforces PodDisruptionBudgets: 429 means "not now", and we try
   again later rather than delete. Pods of DaemonSets (their controller ignores
   the cordon) and mirror pods (the kubelet owns them) are skipped; so are pods
   no controller would recreate (kubectl refuses those without --force).
3. Wait for the evicted pods to be gone, each call within the drain's timeout.

Before evicting, each call records on the Node (`remediator.dev/drain-evicts`) the pods it evicts with their
controllers, merged with what earlier calls under the key recorded; the outcome turns that into step evidence
(`evicted` per controller, `unreplaceable` for pods with none), which the Node's verdict reads.

A call that runs out of time returns done=False with the pods still blocked:
calling again with the same key continues it (the Node already carries the
key). The step's timeout bounds the whole drain, across calls and restarts: the
cordon records when the drain under this key started (annotation
`remediator.dev/drain-started`), and once the step's timeout has passed since
then a drain still blocked fails (ActionError DrainTimedOut, not retryable),
naming what holds each pod, e.g. "blocked by PodDisruptionBudget shop/web".
If someone uncordoned the node in between, we stop rather than fight them.

Uncordon once the node recovers: the cordon also records the node's bad conditions then
(`remediator.dev/cordoned-for`, see core.plan.nodes); `uncordon_recovered` uncordons a node whose recorded
conditions no longer hold, in one patch guarded by the resourceVersion it judged that also drops the record,
so it happens once, and never to a node a human cordoned again afterwards (no record on it). A node cordoned
while healthy (an alert set the drain off) records nothing and stays cordoned for a human.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client

from remediator.actions.base import (
    KEYS_ANNOTATION,
    ActionError,
    ActionRequest,
    ActionResult,
    Conflict,
    changes_between,
    evidence,
    is_recorded,
    keys_with,
    require_kind,
    reread_on_conflict,
)
from remediator.actions.kube import MERGE_PATCH, as_dict, call, dry_run_arg, patch_object, read_object
from remediator.api.models import DrainParams
from remediator.core.durations import format_time, parse_duration, parse_time
from remediator.core.plan.guard_inputs import drain_skip_reason  # the guards count the same pods
from remediator.core.plan.nodes import (
    CORDONED_FOR_ANNOTATION,
    EVICTED,
    UNREPLACEABLE,
    cordoned_for,
    node_fact,
    recovered,
)
from remediator.core.pod_health import controller_of

DRAIN_STARTED_ANNOTATION = "remediator.dev/drain-started"  # "<key> <RFC 3339 time>"
# "<key> <JSON {"ns/pod": "Kind/controller"}>": the pods the drain under key evicts, recorded before it evicts
# them, so a drain that takes several calls (or a restart) still reports every pod it evicted, by controller
EVICTS_ANNOTATION = "remediator.dev/drain-evicts"
# The Eviction API's 429 names the budget in its cause (k8s.io/kubernetes pkg/registry/core/pod/storage/eviction.go).
BUDGET_CAUSE = re.compile(r"The disruption budget (\S+) needs")
# kubectl waits 5s before retrying an eviction a PodDisruptionBudget refused
RETRY_BLOCKED_AFTER = 5.0
POLL = 0.5


def run(api: client.ApiClient, req: ActionRequest) -> ActionResult:
    require_kind(req, ("Node",))
    params = req.step.drain or DrainParams()
    node, was_recorded, changes = reread_on_conflict(lambda: cordon(api, req))
    found = pods_on(api, node.metadata.name)
    skipped, to_evict = classify(found)
    bare = sorted(qualified(p) for p in found if controller_of(p) is None and qualified(p) in skipped)
    if req.dry_run:
        blocked = {
            name: why for name, why in evict_all(api, to_evict, params, True).items() if why != "evicted"
        }
        owners = {qualified(p): controller_of(p) or "" for p in to_evict}
        return outcome(req, node.metadata.name, was_recorded, to_evict, blocked, skipped, changes, owners, bare)
    owners = record_evicts(api, node, req.key, to_evict)
    step_ends = drain_started(api, node, req.key) + parse_duration(req.step.timeout)
    budget = min(parse_duration(params.timeout), max(timedelta(0), step_ends - datetime.now(UTC)))
    blocked = evict_until_gone(api, node.metadata.name, to_evict, params, time.monotonic() + budget.total_seconds())
    if blocked and datetime.now(UTC) >= step_ends:
        raise ActionError(
            "DrainTimedOut",
            f"drain of node {node.metadata.name} not finished within the step's timeout {req.step.timeout}: "
            + "; ".join(f"{name} {why}" for name, why in sorted(blocked.items())),
        )
    return outcome(req, node.metadata.name, was_recorded, to_evict, blocked, skipped, changes, owners, bare)


def record_evicts(api: client.ApiClient, node: Any, key: str, to_evict: list[Any]) -> dict[str, str]:
    """Every pod the drain under `key` evicts, with its controller: what earlier calls recorded and this one's,
    written on the Node before evicting."""
    recorded_key, recorded = recorded_evicts((node.metadata.annotations or {}).get(EVICTS_ANNOTATION))
    known = recorded if recorded_key == key else {}
    merged = {**known, **{qualified(p): controller_of(p) or "" for p in to_evict}}
    if merged != known or recorded_key != key:  # an earlier drain's record goes, even when this one evicts none
        body = {"metadata": {"annotations": {EVICTS_ANNOTATION: f"{key} {json.dumps(merged, sort_keys=True)}"}}}
        patch_object(api, "Node", node.metadata.name, None, body, content_type=MERGE_PATCH)
    return merged


def recorded_evicts(annotation: str | None) -> tuple[str, dict]:
    """(key, {"ns/pod": "Kind/controller"}) of an EVICTS_ANNOTATION; a malformed record reads as empty."""
    key, _, text = (annotation or "").partition(" ")
    try:
        pods = json.loads(text or "{}")
    except ValueError:
        return key, {}
    return key, pods if isinstance(pods, dict) else {}


def drain_started(api: client.ApiClient, node: Any, key: str) -> datetime:
    """When the drain under `key` started, as the cordon recorded it; recorded now if it is missing."""
    recorded = (node.metadata.annotations or {}).get(DRAIN_STARTED_ANNOTATION, "")
    recorded_key, _, at = recorded.partition(" ")
    if recorded_key == key:
        try:
            return parse_time(at)
        except ValueError:
            pass
    now = datetime.now(UTC)
    body = {"metadata": {"annotations": {DRAIN_STARTED_ANNOTATION: f"{key} {format_time(now)}"}}}
    patch_object(api, "Node", node.metadata.name, None, body, content_type=MERGE_PATCH)
    return now


# ---------------------------------------------------------------- cordon


def cordon(api: client.ApiClient, req: ActionRequest) -> tuple[Any, bool, dict]:
    """(node, key was already recorded, changes): cordon and record the key, or check a replay may go on."""
    node = read_object(api, "Node", req.target.name, None)
    if is_recorded(node.metadata.annotations, req.key):
        if not node.spec.unschedulable:
            raise ActionError(
                "Uncordoned",
                f"node {node.metadata.name} was uncordoned after the drain under key "
                f"{req.key} started; not continuing it",
            )
        return node, True, {}
    before = as_dict(api, node)
    body = {
        "metadata": {
            "resourceVersion": node.metadata.resource_version,
            "annotations": {
                KEYS_ANNOTATION: keys_with(node.metadata.annotations, req.key),
                DRAIN_STARTED_ANNOTATION: f"{req.key} {format_time(datetime.now(UTC))}",
                # what recovery means for this node (None: it was healthy, no automatic uncordon)
                CORDONED_FOR_ANNOTATION: cordoned_for(req.key, node_fact(before)),
            },
        },
        "spec": {"unschedulable": True},
    }
    after = patch_object(
        api, "Node", node.metadata.name, None, body, dry_run=req.dry_run, content_type=MERGE_PATCH
    )
    return after, False, changes_between(before, as_dict(api, after))


def uncordon_recovered(api: client.ApiClient, node: dict) -> str | None:
    """Uncordon `node` (the wire dict, as a watch saw it) if it recovered from what it was drained for; what
    was done, or None. A 409 (the node changed since) leaves it to the next look."""
    done, why = recovered(node_fact(node))
    if not done:
        return None
    meta = node.get("metadata") or {}
    body = {"metadata": {"resourceVersion": meta.get("resourceVersion"),
                         "annotations": {CORDONED_FOR_ANNOTATION: None, DRAIN_STARTED_ANNOTATION: None,
                                         EVICTS_ANNOTATION: None}},
            "spec": {"unschedulable": None}}
    try:
        patch_object(api, "Node", meta.get("name", ""), None, body, content_type=MERGE_PATCH)
    except Conflict:
        return None
    return f"uncordoned: {why}"


# ---------------------------------------------------------------- pods


def pods_on(api: client.ApiClient, node: str) -> list[Any]:
    core = client.CoreV1Api(api)
    return call(core.list_pod_for_all_namespaces, field_selector=f"spec.nodeName={node}").items


def classify(pods: list[Any]) -> tuple[dict[str, str], list[Any]]:
    """(skipped pod -> why, pods to evict) as kubectl drain's default filters decide."""
    skipped, to_evict = {}, []
    for pod in pods:
        why = skip_reason(pod)
        if why:
            skipped[qualified(pod)] = why
        else:
            to_evict.append(pod)
    return skipped, to_evict


def skip_reason(pod: Any) -> str | None:
    controller = controller_of(pod)
    return drain_skip_reason(pod.metadata.annotations, controller.partition("/")[0] if controller else None,
                             pod.metadata.deletion_timestamp is not None)


def qualified(pod: Any) -> str:
    return f"{pod.metadata.namespace}/{pod.metadata.name}"


# ---------------------------------------------------------------- evict


def evict_until_gone(
    api: client.ApiClient, node: str, pods: list[Any], params: DrainParams, deadline: float
) -> dict[str, str]:
    """Evict and wait until every pod is gone or the deadline passes; pod -> why it is still there."""
    remaining = {qualified(p): p for p in pods}
    why: dict[str, str] = {}
    next_try: dict[str, float] = {}
    while True:
        remaining = still_present(api, node, remaining)
        due = [
            p
            for name, p in remaining.items()
            if next_try.get(name, 0) <= time.monotonic() and p.metadata.deletion_timestamp is None
        ]
        for name, answer in evict_all(api, due, params, False).items():
            why[name] = answer
            if answer != "evicted":
                next_try[name] = time.monotonic() + RETRY_BLOCKED_AFTER
        if not remaining or time.monotonic() >= deadline:
            return {name: still_there_because(why.get(name)) for name in remaining}
        time.sleep(max(0.0, min(POLL, deadline - time.monotonic())))


def still_there_because(answer: str | None) -> str:
    # None: the pod was already terminating when we found it, so we never asked
    return "terminating" if answer in (None, "evicted") else answer


def still_present(api: client.ApiClient, node: str, pods: dict[str, Any]) -> dict[str, Any]:
    """The pods (same UID) still on the node, refreshed (so we see deletionTimestamp)."""
    current = {qualified(p): p for p in pods_on(api, node)}
    return {
        name: current[name]
        for name, pod in pods.items()
        if name in current and current[name].metadata.uid == pod.metadata.uid
    }


def evict_all(api: client.ApiClient, pods: list[Any], params: DrainParams, dry_run: bool) -> dict[str, str]:
    return {qualified(p): evict(api, p, params, dry_run) for p in pods}


def evict(api: client.ApiClient, pod: Any, params: DrainParams, dry_run: bool) -> str:
    """Ask the Eviction API to evict one pod: 'evicted', or why not (a PDB refused, …)."""
    core = client.CoreV1Api(api)
    options = client.V1DeleteOptions(
        grace_period_seconds=params.grace_period_seconds,
        preconditions=client.V1Preconditions(uid=pod.metadata.uid),
        dry_run=["All"] if dry_run else None,
    )
    body = client.V1Eviction(
        metadata=client.V1ObjectMeta(name=pod.metadata.name, namespace=pod.metadata.namespace),
        delete_options=options,
    )
    try:
        call(
            core.create_namespaced_pod_eviction,
            pod.metadata.name,
            pod.metadata.namespace,
            body,
            dry_run=dry_run_arg(dry_run),
        )
        return "evicted"
    except Conflict:
        return "evicted"  # the UID changed: our pod is already gone
    except ActionError as e:
        if e.status == 404:
            return "evicted"
        if e.status == 429:
            budgets = refusing_budgets(e.__cause__, pod.metadata.namespace)
            if budgets:
                return f"blocked by PodDisruptionBudget {', '.join(budgets)} ({e.message})"
            return f"eviction refused, retry later: {e.message}"
        raise


def refusing_budgets(refusal: Any, namespace: str) -> list[str]:
    """namespace/name of the PodDisruptionBudgets the apiserver names in an eviction's 429, from its causes."""
    try:
        causes = json.loads(getattr(refusal, "body", None) or "{}").get("details", {}).get("causes") or []
    except (TypeError, ValueError, AttributeError):
        return []
    return [f"{namespace}/{m.group(1)}" for c in causes if (m := BUDGET_CAUSE.search(str(c.get("message", ""))))]


# ---------------------------------------------------------------- result


def evicted_by_controller(owners: dict[str, str], blocked: dict[str, str]) -> list:
    """The step evidence the Node's verdict reads (verification.verdicts.drained_from): per controller, the
    names of its pods evicted (in this call or an earlier one under the key)."""
    by: dict[str, list[str]] = {}
    for name, owner in sorted(owners.items()):
        if name not in blocked and owner:
            namespace, _, pod = name.partition("/")
            by.setdefault(f"{namespace}/{owner}", []).append(pod)
    return [evidence(EVICTED, owner, ",".join(pods)) for owner, pods in sorted(by.items())]


def outcome(
    req: ActionRequest,
    node: str,
    was_recorded: bool,
    to_evict: list[Any],
    blocked: dict[str, str],
    skipped: dict[str, str],
    changes: dict,
    owners: dict[str, str],
    bare: list[str],
) -> ActionResult:
    evicted = [qualified(p) for p in to_evict if qualified(p) not in blocked]
    for name in evicted:
        changes[f"pod[{name}]"] = {
            "before": f"on {node}",
            "after": "would be evicted" if req.dry_run else "evicted",
        }
    for name, why in blocked.items():
        changes[f"pod[{name}]"] = {"before": f"on {node}", "after": f"still on {node}: {why}"}
    verb = "dry run: would drain" if req.dry_run else "drained"
    if blocked:
        verb = "dry run: would not fully drain" if req.dry_run else "drain not finished for"
    summary = f"{len(evicted)} evicted, {len(blocked)} still there, {len(skipped)} skipped"
    return ActionResult(
        done=not blocked,
        replayed=was_recorded,
        message=f"{verb} node {node}: {summary}"
        + ("; call again with the same key to continue" if blocked and not req.dry_run else ""),
        evidence=[evidence("pod", f"{name}: {why}") for name, why in blocked.items()]
        + [evidence("pod", f"{name} skipped: {why}") for name, why in skipped.items()]
        + [evidence("drain", summary, node)]
        + evicted_by_controller(owners, blocked) + [evidence(UNREPLACEABLE, name) for name in bare],
        changes=changes,
    )
