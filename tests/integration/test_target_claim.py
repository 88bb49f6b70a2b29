"""Two Remediations for one target, planned at the same moment: the apiserver's Lease lets exactly one act."""

from __future__ import annotations

import concurrent.futures
import contextvars
import threading
from datetime import UTC, datetime, timedelta

import pytest
from kubernetes import client

from remediator.api.models import Signal
from remediator.controller import claims as target_claims
from remediator.controller import guard_facts, reconcile
from remediator.controller.context import OperatorContext, Settings
from remediator.core.plan import claims
from tests.integration.conftest import GROUP, VERSION
from tests.integration.test_operator_loop import NO_APPROVALS
from remediator.core.durations import format_time

pytestmark = pytest.mark.integration

RESTART = {
    "triggers": [{"alert": {"matchers": [{"name": "alertname", "value": "HighErrorRate"}]}}],
    "target": {"kind": "Deployment", "name": "{{ labels.deployment }}"},
    "steps": [{"name": "restart", "action": "restartRollout", "risk": "low", "timeout": "2m"}],
    # Let both through the guards: the claim, not the guard's count of active Remediations, must decide.
    "guard": {"cooldown": "0s", "maxRunsPerHour": 10, "maxConcurrentPerTarget": 2},
}


def incident(ctx: OperatorContext, ns: str, fingerprint: str) -> str:
    """A Remediation created through an intake of its own, as two replicas would each make one."""
    signal = Signal(source="alertmanager", name="HighErrorRate", fingerprint=fingerprint,
                    starts_at=format_time(datetime.now(UTC)),
                    labels={"alertname": "HighErrorRate", "namespace": ns, "deployment": "web"})
    created = ctx.intake.firing(signal)
    assert created.outcome == "created", created.reasons
    return created.name


def test_two_remediations_planned_at_once_for_one_target_make_one_act_and_the_other_names_the_holder(
        cluster, kube_api, monkeypatch):
    cluster.apply_policy(NO_APPROVALS)
    cluster.apply_runbook("restart", RESTART)
    cluster.deploy("web", replicas=2)
    names = [incident(OperatorContext(api=kube_api, settings=Settings(namespaces=(cluster.ns,))), cluster.ns, f)
             for f in ("replica-a", "replica-b")]

    # Both loops observe their guards before either has written anything: the race the claim must settle.
    observed = threading.Barrier(2, timeout=30)
    real_step_facts = guard_facts.step_facts

    def step_facts_then_wait(*args, **kwargs):
        facts = real_step_facts(*args, **kwargs)
        if threading.current_thread().name.startswith("race"):
            observed.wait()
        return facts
    monkeypatch.setattr(guard_facts, "step_facts", step_facts_then_wait)

    ctx = OperatorContext(api=kube_api, settings=Settings(namespaces=(cluster.ns,)))
    loops = [reconcile.Loop(ctx, cluster.ns, name) for name in names]
    with concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="race") as pool:
        list(pool.map(lambda loop: contextvars.copy_context().run(loop.tick), loops))
    for _ in range(3):  # record the outcomes
        for loop in loops:
            contextvars.copy_context().run(loop.tick)

    statuses = {name: cluster.remediation(name).get("status") or {} for name in names}
    acted = [n for n, s in statuses.items() if s.get("steps")]
    assert len(acted) == 1, {n: (s.get("phase"), s.get("reason")) for n, s in statuses.items()}
    holder = acted[0]
    other = next(n for n in names if n != holder)
    assert statuses[other]["phase"] == "Skipped", statuses[other]
    assert f"claimed by Remediation {holder}" in statuses[other]["reason"]
    restarts = cluster.apps.read_namespaced_deployment("web", cluster.ns).metadata.annotations or {}
    assert len([k for k in restarts.get("remediator.dev/action-keys", "").split(",") if k]) == 1

    # The holder recorded its claim with the intent; once its step is over the Lease is gone.
    lease = claims.lease_name("Deployment", "web")
    timeline = " ".join(e.get("message", "") for e in statuses[holder].get("timeline") or [])
    assert "Intended" in " ".join(e.get("kind", "") for e in statuses[holder]["timeline"]), timeline
    coordination = client.CoordinationV1Api(kube_api)
    if statuses[holder]["phase"] in ("Acting", "Verifying"):
        assert coordination.read_namespaced_lease(lease, cluster.ns).spec.holder_identity == \
            cluster.remediation(holder)["metadata"]["uid"]


def test_the_claim_is_released_when_the_step_ends(cluster, kube_api):
    cluster.apply_policy(NO_APPROVALS)
    cluster.apply_runbook("restart", RESTART)
    cluster.deploy("web", replicas=1)
    ctx = OperatorContext(api=kube_api, settings=Settings(namespaces=(cluster.ns,)))
    name = incident(ctx, cluster.ns, "only-one")
    loop = reconcile.Loop(ctx, cluster.ns, name)
    coordination = client.CoordinationV1Api(kube_api)
    lease = claims.lease_name("Deployment", "web")
    seen_held = False
    for _ in range(120):
        if contextvars.copy_context().run(loop.tick) is None:
            break
        status = cluster.remediation(name).get("status") or {}
        if status.get("phase") in ("Acting", "Verifying"):
            held = coordination.read_namespaced_lease(lease, cluster.ns)
            assert held.spec.holder_identity == cluster.remediation(name)["metadata"]["uid"]
            assert held.spec.lease_duration_seconds == 180  # the step's 2m timeout + 60s
            seen_held = True
        threading.Event().wait(0.5)
    status = cluster.remediation(name)["status"]
    assert seen_held and status["phase"] in ("Succeeded", "Escalated", "Failed"), status.get("reason")
    assert status.get("claim") is None
    assert not [item for item in coordination.list_namespaced_lease(cluster.ns).items
                if item.metadata.name == lease]


def test_a_claim_held_by_an_open_remediation_is_refused_and_taken_over_once_it_finished(cluster, kube_api):
    cluster.apply_policy(NO_APPROVALS)
    cluster.apply_runbook("restart", RESTART)
    first, second = (cluster.remediation(incident(OperatorContext(api=kube_api, settings=Settings(
        namespaces=(cluster.ns,))), cluster.ns, f)) for f in ("holder", "waiter"))
    target = reconcile.RemediationSpec.model_validate(first["spec"]).target
    now = datetime.now(UTC)

    def take(remediation):
        meta = remediation["metadata"]
        return target_claims.take(kube_api, target, cluster.ns, meta["uid"], meta["name"], timedelta(minutes=2), now)

    assert take(first).op == "create"
    refused = take(second)
    assert not refused.granted and f"claimed by Remediation {first['metadata']['name']}" in refused.reason
    cluster.custom.patch_namespaced_custom_object_status(GROUP, VERSION, cluster.ns, "remediations",
                                                         first["metadata"]["name"], {"status": {"phase": "Succeeded"}})
    taken = take(second)
    assert taken.op == "takeover" and "finished or gone" in taken.reason
    lease = client.CoordinationV1Api(kube_api).read_namespaced_lease(claims.lease_name("Deployment", "web"), cluster.ns)
    assert lease.spec.holder_identity == second["metadata"]["uid"] and lease.spec.lease_transitions == 1


def claimed_lease(cluster, kube_api) -> tuple[dict, client.V1Lease]:
    """A Remediation that claimed Deployment web through this process, and its Lease as written."""
    cluster.apply_policy(NO_APPROVALS)
    cluster.apply_runbook("restart", RESTART)
    holder = cluster.remediation(incident(OperatorContext(api=kube_api, settings=Settings(
        namespaces=(cluster.ns,))), cluster.ns, "holder"))
    target = reconcile.RemediationSpec.model_validate(holder["spec"]).target
    assert target_claims.take(kube_api, target, cluster.ns, holder["metadata"]["uid"], holder["metadata"]["name"],
                              timedelta(minutes=2), datetime.now(UTC)).op == "create"
    return holder, client.CoordinationV1Api(kube_api).read_namespaced_lease(claims.lease_name("Deployment", "web"),
                                                                            cluster.ns)


def release(kube_api, holder: dict) -> None:
    target = reconcile.RemediationSpec.model_validate(holder["spec"]).target
    target_claims.release(kube_api, target, holder["metadata"]["namespace"], holder["metadata"]["uid"])


def leases_named_for_web(kube_api, namespace: str) -> list[client.V1Lease]:
    return [item for item in client.CoordinationV1Api(kube_api).list_namespaced_lease(namespace).items
            if item.metadata.name == claims.lease_name("Deployment", "web")]


def test_a_claim_this_process_wrote_is_released_without_reading_its_lease(cluster, kube_api, monkeypatch):
    holder, _ = claimed_lease(cluster, kube_api)
    monkeypatch.setattr(target_claims, "read_lease", lambda *a: pytest.fail("the Lease was read before release"))

    release(kube_api, holder)

    assert leases_named_for_web(kube_api, cluster.ns) == []


def test_a_lease_taken_over_since_this_process_wrote_it_is_left_to_its_new_holder(cluster, kube_api):
    holder, lease = claimed_lease(cluster, kube_api)
    lease.spec.holder_identity = "another-remediation-uid"
    client.CoordinationV1Api(kube_api).replace_namespaced_lease(lease.metadata.name, cluster.ns, lease)

    release(kube_api, holder)

    [kept] = leases_named_for_web(kube_api, cluster.ns)
    assert kept.spec.holder_identity == "another-remediation-uid"


def test_a_lease_renewed_by_its_holder_since_this_process_wrote_it_is_still_released(cluster, kube_api):
    holder, lease = claimed_lease(cluster, kube_api)
    lease.spec.renew_time = datetime.now(UTC) + timedelta(seconds=5)  # written by the holder's next owner
    client.CoordinationV1Api(kube_api).replace_namespaced_lease(lease.metadata.name, cluster.ns, lease)

    release(kube_api, holder)

    assert leases_named_for_web(kube_api, cluster.ns) == []
