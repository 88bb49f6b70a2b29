"""Delete ended Remediations past their retention (core.retention decides which), on the active replica only.

Not a kopf timer: those put kopf's finalizer on every object they watch. The sweep judges the watch-fed index
of Remediations (controller/caches.py), so it lists nothing, and deletes each with a precondition on the
resourceVersion the index saw: one that changed since (re-opened, re-folded, re-created under the same name) is
not deleted; the next sweep judges it again. The backfill of a Runbook's statistics still reads the objects
whole, in pages (limit/continue), once.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from kubernetes import client
from kubernetes.client.rest import ApiException
from pydantic import ValidationError

from ..api.models import (
    GROUP,
    TERMINAL_PHASES,
    VERSION,
    Guard,
    RemediationPolicySpec,
    RemediationSpec,
    RemediationStatus,
    RunbookStatus,
)
from ..core.plan import adaptive
from ..core.match import policy_select
from ..core.report import retention, runbook_stats
from ..records import metrics
from . import caches, chores
from .caches import PAGE  # a page of 500 left ~10 MiB more resident here too
from .context import OperatorContext
from .guard_facts import labels_of_namespace

log = logging.getLogger("remediator.retention")
STANDBY_POLL_SECONDS = 5.0


def pages(ctx: OperatorContext, namespace: str | None) -> Iterator[list[dict]]:
    """Remediations in pages of PAGE; an expired continue token (410) ends this sweep early."""
    custom = ctx.resources.custom
    token = None
    while True:
        kwargs = {"limit": PAGE, **({"_continue": token} if token else {})}
        try:
            out = custom.list_cluster_custom_object(GROUP, VERSION, "remediations", **kwargs) if namespace is None \
                else custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "remediations", **kwargs)
        except ApiException as e:
            if e.status == 410:
                return
            raise
        yield out.get("items", [])
        token = (out.get("metadata") or {}).get("continue")
        if not token:
            return


# what of a Remediation's status the backfill reads; validating only these skips the timeline's bytes
BACKFILL_FIELDS = ("phase", "finishedAt", "foldedIntoRunbook", "steps")


def ended_of(ctx: OperatorContext, namespace: str, runbooks: set[str]) -> dict[str, list[runbook_stats.Ended]]:
    """Per Runbook name: the backfill's compact record of each of the namespace's ended Remediations, read in
    pages (one page of whole objects in memory at a time). A Runbook one of whose Remediations cannot be read
    (written by another version, say) is left out, not counted short: it stays incomplete, and said."""
    out: dict[str, list[runbook_stats.Ended]] = {name: [] for name in runbooks}
    unreadable: set[str] = set()
    for page in pages(ctx, namespace):
        for o in page:
            ref = (o.get("spec") or {}).get("runbook") or {}
            status = o.get("status") or {}
            if ref.get("namespace") != namespace or ref.get("name") not in out or \
                    status.get("phase") not in TERMINAL_PHASES:
                continue
            try:
                record = runbook_stats.ended(
                    o["metadata"]["uid"], adaptive.signal_type(RemediationSpec.model_validate(o.get("spec"))),
                    RemediationStatus.model_validate({k: status[k] for k in BACKFILL_FIELDS if k in status}))
            except ValidationError as e:
                if ref["name"] not in unreadable:
                    log.warning("an ended Remediation cannot be read: its Runbook's statistics stay incomplete",
                                extra={"remediation": f"{namespace}/{o['metadata'].get('name')}",
                                       "runbook": f"{namespace}/{ref['name']}", "error": str(e)[:300]})
                unreadable.add(ref["name"])
                continue
            if record is not None:
                out[ref["name"]].append(record)
    return {name: records for name, records in out.items() if name not in unreadable}


def complete_signal_stats(ctx: OperatorContext, namespace: str, runbooks: list[dict]) -> set[str]:
    """Count, once, the Remediations folded before signalStats existed into each Runbook's signalStats; the
    names of the Runbooks whose statistics are complete afterwards (a 409 leaves one for the next sweep)."""
    todo = [r for r in runbooks if not (r.get("status") or {}).get("signalStatsComplete")]
    done = {r["metadata"]["name"] for r in runbooks} - {r["metadata"]["name"] for r in todo}
    ended = ended_of(ctx, namespace, {r["metadata"]["name"] for r in todo}) if todo else {}
    for body in todo:
        name = body["metadata"]["name"]
        if name not in ended:  # one of its Remediations could not be read (said by ended_of): kept until it can
            continue
        new = runbook_stats.backfill(RunbookStatus.model_validate(body.get("status") or {}), ended[name])
        try:
            ctx.resources.custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, "runbooks", name, {
                "metadata": {"resourceVersion": body["metadata"]["resourceVersion"]},
                "status": {"signalStats": new.wire()["signalStats"], "signalStatsComplete": True}})
            done.add(name)
        except ApiException as e:
            if e.status in (403, 422):  # refused for good (RBAC, an admission policy): kept, and said
                log.warning("could not complete a Runbook's statistics; its incidents are kept until it can",
                            extra={"runbook": f"{namespace}/{name}", "status": e.status, "reason": e.reason})
            elif e.status not in (404, 409):
                raise
    return done


class Keeps(NamedTuple):
    of: Callable[[retention.Candidate], retention.Keep]  # how long this one stays
    # none of the namespace's goes younger (None: none goes at all); its Runbooks' statistics completed first
    least: Callable[[str], timedelta | None]


def keep_lookup(ctx: OperatorContext) -> Keeps:
    """How long each Remediation stays: its namespace's effective policy and its Runbook's cooldown, each read
    once a sweep; forever while its Runbook's statistics are not complete (they are completed here first)."""
    policies = [(p["metadata"]["name"], p.get("spec") or {}) for p in ctx.resources.list("RemediationPolicy")]
    namespace_policy: dict[str, RemediationPolicySpec | None] = {}
    cooldowns: dict[str, dict[str, str]] = {}
    complete: dict[str, set[str]] = {}
    kept: dict[tuple[str, str], retention.Keep] = {}  # one answer per Runbook reference a sweep: 10,000 share few

    def keep_of(candidate: retention.Candidate) -> retention.Keep:
        key = (candidate.namespace, candidate.runbook_key)
        if key not in kept:
            kept[key] = keep_for(*key)
        return kept[key]

    def policy_of(namespace: str) -> tuple[bool, RemediationPolicySpec | None]:
        """Whether the namespace is still there (not being deleted, with its Remediations), and its policy."""
        if namespace not in namespace_policy:
            try:
                labels = labels_of_namespace(ctx, namespace)
            except ApiException as e:
                if e.status != 404:
                    raise
                return False, None
            namespace_policy[namespace] = policy_select.effective_policy(policies, namespace, labels)
        return True, namespace_policy[namespace]

    def read_runbooks(namespace: str) -> None:
        if namespace not in cooldowns:
            runbooks = ctx.resources.list("Runbook", namespace)
            cooldowns[namespace] = {r["metadata"]["name"]: ((r.get("spec") or {}).get("guard") or {}).get(
                "cooldown", Guard().cooldown) for r in runbooks}
            complete[namespace] = complete_signal_stats(ctx, namespace, runbooks)

    def least(namespace: str) -> timedelta | None:
        there, policy = policy_of(namespace)
        if not there:
            return None
        read_runbooks(namespace)  # the ladder reads complete statistics, whether or not anything goes
        return retention.kept_for(policy, None)[0]

    def keep_for(namespace: str, runbook_key: str) -> retention.Keep:
        there, policy = policy_of(namespace)
        if not there:
            return retention.UNTIL_COUNTED
        read_runbooks(namespace)
        runbook_namespace, _, runbook = runbook_key.partition("/")
        # a Runbook acts only in its own namespace: a reference elsewhere was refused and holds no cooldown
        own = runbook_namespace == namespace and runbook in cooldowns[namespace]
        if own and runbook not in complete[namespace]:
            return retention.UNTIL_COUNTED
        return retention.kept_for(policy, cooldowns[namespace][runbook] if own else None)
    return Keeps(keep_of, least)


def delete(ctx: OperatorContext, verdict: retention.Verdict) -> str:
    """deleted | changed (its resourceVersion moved on since the index saw it: kept) | gone."""
    options = client.V1DeleteOptions(preconditions=client.V1Preconditions(resource_version=verdict.resource_version))
    try:
        ctx.resources.custom.delete_namespaced_custom_object(
            GROUP, VERSION, verdict.namespace, "remediations", verdict.name, body=options)
    except ApiException as e:
        if e.status == 404:
            return "gone"
        if e.status == 409:
            return "changed"
        raise
    log.info("deleted an ended remediation", extra={"remediation": f"{verdict.namespace}/{verdict.name}",
                                                    "reason": verdict.reason})
    return "deleted"


def sweep(ctx: OperatorContext, namespaces: list[str] | None, active: Callable[[], bool] = lambda: True,
          now: datetime | None = None) -> Counter:
    """One pass over the served namespaces (None: every one served), judged from the watch-fed index; stops as
    soon as this replica is not active. A version the index saw late is not deleted (409): the next sweep
    judges it again."""
    now = now or datetime.now(UTC)
    keeps = keep_lookup(ctx)
    within = set(namespaces) if namespaces is not None else None

    def least(namespace: str) -> timedelta | None:
        if (within is not None and namespace not in within) or not ctx.serves(namespace):
            return None
        return keeps.least(namespace)
    # only those old enough to go: judging (and allocating) all 10,000 of a history held up the incidents meanwhile
    candidates = caches.ensure(ctx).remediations.ended(least, now)
    results: Counter = Counter()
    for verdict in retention.select(sorted(candidates, key=lambda c: (c.namespace, c.name)), keeps.of, now):
        if not active():
            return results
        result = delete(ctx, verdict)
        metrics.RETENTION_DELETES.labels(result).inc()
        results[result] += 1
    return results


FIRST_SWEEP_AFTER = 60.0  # seconds after start


async def sweep_periodically(ctx: OperatorContext, active: Callable[[], bool],
                             namespaces: Callable[[], list[str]]) -> None:
    def sweep_once() -> None:
        with metrics.RETENTION_SWEEP_SECONDS.time():
            results = sweep(ctx, namespaces() if ctx.settings.namespaces else None, active)
        if results:
            log.info("retention sweep", extra=dict(results))

    every = ctx.settings.retention_sweep_seconds
    # not in the start-up burst of LISTs and watches; a replica just made active sweeps soon
    await chores.every(every, active, sweep_once, "retention sweep",
                       first_after=min(every, FIRST_SWEEP_AFTER), standby_poll=STANDBY_POLL_SECONDS)
