"""A drained Node's verdict from hand-made observations: recovered when its watched condition is healthy again
or when every pod the drain evicted has a Ready replacement of the same controller on another node."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from remediator.actions.drain import evicted_by_controller
from remediator.api.models import Evidence, NodeConditionTrigger, ObjectRef, RunbookSpec, Signal, Verify
from remediator.verification.observations import Observation, PodObservation
from remediator.verification.verdicts import Drained, EvictedOwner, drained_from, judge

START = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
TIMEOUT = timedelta(minutes=2)
NODE = ObjectRef(kind="Node", name="a")
WEB = EvictedOwner("shop", "ReplicaSet/web-1", ("web-1-x", "web-1-y"))
DRAINED = Drained(evicted=(WEB,))


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


def pod(name: str, node: str = "b", owner: str = "ReplicaSet/web-1", ready: bool = True, phase: str = "Running",
        namespace: str = "shop") -> PodObservation:
    return PodObservation(name, f"uid-{name}", ready=ready, phase=phase, node=node, namespace=namespace, owner=owner)


def seen(seconds: float, ready: str = "False", elsewhere: tuple = (), **conditions: str) -> Observation:
    return Observation(at(seconds), NODE, True, conditions={"Ready": ready, **conditions}, elsewhere=elsewhere)


def judged(drained: Drained, observation: Observation | None, now: float):
    return judge(Verify(), observation, [], START, TIMEOUT, at(now), drained=drained)


def test_a_drained_node_passes_once_its_ready_condition_is_true_again():
    v = judged(DRAINED, seen(10, ready="True"), now=10)
    assert v.state == "passed", v.reasons
    assert "node a is healthy again: Ready=True" in v.reasons[0]
    assert v.evidence[0].kind == "node" and v.evidence[0].value == "Ready=True"


def test_a_pressure_condition_counts_as_healthy_when_it_is_false_not_when_it_is_true():
    pressure = Drained(watched=NodeConditionTrigger(type="MemoryPressure", statuses=["True"], **{"for": "1m"}))
    assert judged(pressure, seen(10, ready="True", MemoryPressure="True"), now=10).state == "pending"
    v = judged(pressure, seen(10, ready="False", MemoryPressure="False"), now=10)
    assert v.state == "passed" and "MemoryPressure=False" in v.reasons[0]


def test_a_drained_node_passes_once_every_evicted_pod_runs_ready_elsewhere_under_the_same_controller():
    v = judged(DRAINED, seen(10, elsewhere=(pod("web-1-p"), pod("web-1-q", node="c"))), now=10)
    assert v.state == "passed", v.reasons
    assert "the 2 pod(s) evicted from node a run elsewhere" in v.reasons[0]
    assert "ReplicaSet/web-1 in shop: 2 of 2 Running and Ready elsewhere" in v.reasons[0]


def test_replacements_must_be_as_many_ready_running_pods_of_that_controller_off_the_node():
    not_enough = (
        pod("web-1-p"),
        pod("web-1-q", ready=False, phase="Pending"),  # not Ready yet
        pod("web-1-r", node="a"),  # on the drained node itself
        pod("other-1", owner="ReplicaSet/other"),  # another controller
        pod("web-1-s", namespace="elsewhere"),  # same name, another namespace
    )
    v = judged(DRAINED, seen(10, elsewhere=not_enough), now=10)
    assert v.state == "pending", v.reasons
    assert any("1 of 2 Running and Ready elsewhere; not rescheduled: web-1-x, web-1-y" in r for r in v.reasons)
    assert any("replacements not Ready yet: web-1-q" in r for r in v.reasons)


def test_at_the_timeout_a_node_neither_recovered_nor_replaced_fails_naming_the_pods_not_rescheduled():
    v = judged(DRAINED, seen(130), now=130)
    assert v.state == "failed", v.reasons
    assert v.reasons[0].startswith("nodeRecovered (default): not recovered after 2m: node a still Ready=False")
    assert any("not rescheduled: web-1-x, web-1-y" in r for r in v.reasons)
    assert v.evidence and v.evidence[0].kind == "pods"


def test_pods_without_a_controller_never_pass_the_step_and_the_reasons_say_nothing_replaces_them():
    bare = Drained(unreplaceable=("shop/lonely",))
    v = judged(bare, seen(10, elsewhere=(pod("web-1-p"),)), now=10)
    assert v.state == "pending"
    assert any("shop/lonely has no controller: nothing replaces it" in r for r in v.reasons)
    assert any("no pod with a controller was evicted from node a" in r for r in v.reasons)
    assert judged(bare, seen(130), now=130).state == "inconclusive"
    assert judged(bare, seen(130, ready="True"), now=130).state == "passed", "its recovery still verifies"


def test_a_node_verdict_before_any_observation_waits_and_a_gone_node_is_inconclusive():
    assert judged(DRAINED, None, now=10).state == "pending"
    gone = Observation(at(10), NODE, False)
    assert judged(DRAINED, gone, now=10).state == "inconclusive"


def test_the_verdict_reads_the_drains_evidence_and_the_condition_of_the_trigger_that_fired():
    runbook = RunbookSpec.model_validate({
        "triggers": [{"nodeCondition": {"type": "Ready", "for": "1m"}},
                     {"nodeCondition": {"type": "DiskPressure", "statuses": ["True"], "for": "1m"}}],
        "target": {"kind": "Node", "name": "{{ labels.node }}"},
        "steps": [{"name": "drain", "action": "cordonDrain"}]})
    owners = {"shop/web-1-x": "ReplicaSet/web-1", "shop/web-1-y": "ReplicaSet/web-1", "shop/db-0": "StatefulSet/db",
              "shop/blocked": "ReplicaSet/web-1"}
    evidence = [*evicted_by_controller(owners, {"shop/blocked": "PDB"}),
                Evidence(kind="unreplaceable", detail="shop/lonely"), Evidence(kind="pod", detail="ignored")]
    disk = drained_from(evidence, runbook, Signal(source="nodeCondition", name="DiskPressure"))
    assert disk.watched.type == "DiskPressure" and disk.watched.statuses == ["True"]
    assert disk.evicted == (EvictedOwner("shop", "ReplicaSet/web-1", ("web-1-x", "web-1-y")),
                            EvictedOwner("shop", "StatefulSet/db", ("db-0",)))
    assert disk.unreplaceable == ("shop/lonely",)
    by_alert = drained_from(evidence, runbook, Signal(source="alertmanager", name="DiskPressure"))
    assert by_alert.watched.type == "Ready", "a drain an alert set off waits for Ready"


def test_the_drains_record_as_stored_in_the_remediation_status_gives_a_restarted_operator_the_same_verdict():
    from remediator.api.models import RemediationStatus, StepRecord

    owners = {"shop/web-1-x": "ReplicaSet/web-1", "shop/web-1-y": "ReplicaSet/web-1"}
    record = StepRecord(index=0, name="drain", action="cordonDrain", idempotency_key="k", phase="Applied",
                        applied_at="2025-01-01T12:00:00Z", evidence=evicted_by_controller(owners, {}))
    stored = RemediationStatus(phase="Verifying", steps=[record]).wire()  # what the apiserver keeps
    restarted = RemediationStatus.model_validate(json.loads(json.dumps(stored))).steps[0]
    half = seen(10, elsewhere=(pod("web-1-p"),))
    assert drained_from(restarted.evidence, None, None) == DRAINED
    assert judged(drained_from(restarted.evidence, None, None), half, now=10).reasons == \
        judged(DRAINED, half, now=10).reasons


def test_a_replacement_still_pending_is_not_outweighed_by_pods_of_that_controller_already_running_elsewhere():
    # web-1 had 3 pods on other nodes before the drain; the 2 evicted ones' replacements cannot be scheduled
    before = (pod("web-1-p"), pod("web-1-q", node="c"), pod("web-1-r", node="c"))
    stuck = (pod("web-1-s", node=None, ready=False, phase="Pending"), pod("web-1-t", node="c", ready=False))
    v = judged(DRAINED, seen(10, elsewhere=before + stuck), now=10)
    assert v.state == "pending", v.reasons
    assert any("replacements not Ready yet: web-1-s, web-1-t" in r for r in v.reasons), v.reasons
    assert judged(DRAINED, seen(130, elsewhere=before + stuck), now=130).state == "failed"


def test_finished_job_pods_elsewhere_do_not_hold_back_a_drained_nodes_verdict():
    job = Drained(evicted=(EvictedOwner("shop", "Job/batch", ("batch-x",)),))
    done = (pod("batch-y", owner="Job/batch"), pod("batch-old", owner="Job/batch", ready=False, phase="Succeeded"))
    assert judged(job, seen(10, elsewhere=done), now=10).state == "passed"


def test_a_deployment_rolled_out_during_verification_replaces_the_evicted_pods_with_its_new_replicaset():
    rolled = PodObservation("web-2-p", "u1", ready=True, node="b", namespace="shop", owner="ReplicaSet/web-2",
                            deployment="web")
    again = PodObservation("web-2-q", "u2", ready=True, node="c", namespace="shop", owner="ReplicaSet/web-2",
                           deployment="web")
    v = judged(DRAINED, seen(10, elsewhere=(rolled, again)), now=10)
    assert v.state == "passed", v.reasons
    # another namespace's Deployment of the same name never stands in
    foreign = tuple(PodObservation(p.name, p.uid, ready=True, node="b", namespace="tenant", owner=p.owner,
                                   deployment="web") for p in (rolled, again))
    assert judged(DRAINED, seen(10, elsewhere=foreign), now=10).state == "pending"


def test_a_pod_names_its_deployment_only_when_its_replicaset_carries_the_pods_template_hash():
    from types import SimpleNamespace as NS

    from remediator.core.pod_health import deployment_of

    def made(owner: str, labels: dict) -> NS:
        ref = NS(kind=owner.split("/")[0], name=owner.split("/")[1], controller=True)
        return NS(metadata=NS(owner_references=[ref], labels=labels))

    assert deployment_of(made("ReplicaSet/web-7d9f", {"pod-template-hash": "7d9f"})) == "web"
    assert deployment_of(made("ReplicaSet/web-7d9f", {})) is None  # a ReplicaSet of its own
    assert deployment_of(made("ReplicaSet/web-7d9f", {"pod-template-hash": "other"})) is None
    assert deployment_of(made("StatefulSet/db", {"pod-template-hash": "db"})) is None


def test_an_evicted_job_pod_whose_replacement_already_succeeded_elsewhere_counts_as_replaced():
    job = Drained(evicted=(EvictedOwner("shop", "Job/batch", ("batch-x",)),))
    finished = pod("batch-y", owner="Job/batch", ready=False, phase="Succeeded")
    assert judged(job, seen(10, elsewhere=(finished,)), now=10).state == "passed"
    not_a_job = pod("web-1-z", ready=False, phase="Succeeded")
    assert judged(DRAINED, seen(10, elsewhere=(not_a_job,)), now=10).state == "pending"
