"""Node remediation on the real control plane: KWOK nodes of the test's own turned NotReady by the
`remediator.dev/kwok-node=notready` stage, the operator's nodeCondition trigger fed by its Node watch, the drain
through the Eviction API with the real disruption controller, the minHealthy guard, and the uncordon once Ready.
The shared KWOK nodes are never touched: no other test's pods lose their node."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from kubernetes import client, utils

from remediator.actions.drain import DRAIN_STARTED_ANNOTATION
from remediator.api.models import ObjectRef, Signal
from remediator.controller import claims as target_claims
from remediator.controller.context import OperatorContext, Settings
from remediator.core.durations import format_time, parse_time
from remediator.kube import Resources
from remediator.core.plan.nodes import CORDONED_FOR_ANNOTATION
from tests.integration.conftest import GROUP, VERSION
from remediator.actions import execute
from tests.integration.test_actions import TAINT, create_daemon_set_and_unmanaged_pods, key, pinned, request, uids, wait_rolled_out
from tests.integration.test_operator_loop import NO_APPROVALS
from tests.support.waiting import wait_for
from tests.support.workloads import deployment

# runs alone: Nodes: minHealthy counts every Node
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.serial]

NOTREADY = "remediator.dev/kwok-node"
OWN = "remediator.dev/test-nodes"
TERMINAL = {"Succeeded", "Failed", "Escalated", "Skipped"}
NODE_ACTIONS = {**NO_APPROVALS, "bounds": [{"allowedActions": ["cordonDrain"], "allowNodeActions": True}]}


@pytest.fixture
def own_nodes(kube_api) -> Callable[[], str]:
    """Makes KWOK nodes of this test's own (tainted: only its pinned pods land there); deletes them after."""
    core = client.CoreV1Api(kube_api)
    made: list[str] = []
    run = uuid.uuid4().hex[:8]

    def make() -> str:
        name = f"t-node-{uuid.uuid4().hex[:6]}"
        core.create_node({
            "metadata": {"name": name, "annotations": {"kwok.x-k8s.io/node": "fake"},
                         "labels": {"kubernetes.io/hostname": name, "type": "kwok", OWN: run}},
            "spec": {"taints": [{"key": TAINT, "value": name, "effect": "NoSchedule"}]},
            "status": {"allocatable": {"cpu": "32", "memory": "64Gi", "pods": "110"},
                       "capacity": {"cpu": "32", "memory": "64Gi", "pods": "110"}}})
        made.append(name)
        wait_for(lambda: ready(core.read_node(name)) == "True", what=f"node {name} Ready")
        return name

    # the test's Runbooks select these nodes only: another test's NotReady node is none of their business
    make.selector = {"matchLabels": {OWN: run}}
    yield make
    for name in made:
        core.delete_node(name)


def ready(node) -> str | None:
    return next((c.status for c in node.status.conditions or [] if c.type == "Ready"), None)


def set_not_ready(api: client.ApiClient, node: str, on: bool) -> None:
    client.CoreV1Api(api).patch_node(node, {"metadata": {"labels": {NOTREADY: "notready" if on else None}}})


def on_node(manifest: dict, node: str) -> dict:
    """Pinned to the node, and tolerating its not-ready taint, so the taint manager does not evict before we do."""
    pinned(manifest, node)["spec"]["template"]["spec"]["tolerations"].append(
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"})
    return manifest


def node_runbook(for_: str, min_healthy: str, selector: dict | None = None) -> dict:
    return {
        "triggers": [{"nodeCondition": {"type": "Ready", "statuses": ["False", "Unknown"], "for": for_,
                                        "selector": selector or {}}}],
        "target": {"kind": "Node", "name": "{{ labels.node }}"},
        "steps": [{"name": "drain", "action": "cordonDrain", "risk": "low", "timeout": "8s",
                   "drain": {"timeout": "2s", "minHealthy": min_healthy}}],
    }


def test_a_node_not_ready_past_the_duration_is_cordoned_and_drained_around_a_budget_then_uncordoned_once_ready(
        cluster, operator, own_nodes, kube_api):
    node, _spare = own_nodes(), own_nodes()  # the spare stays Ready: minHealthy 1 of the 2 selected is kept
    cluster.apply_policy(NODE_ACTIONS)
    cluster.apply_runbook("node-notready", node_runbook("3s", "1", own_nodes.selector))
    for name in ("web", "batch"):
        utils.create_from_dict(kube_api, on_node(deployment(name, replicas=1), node), namespace=cluster.ns)
        wait_rolled_out(kube_api, cluster.ns, name)
    policy = client.PolicyV1Api(kube_api)
    policy.create_namespaced_pod_disruption_budget(cluster.ns, {
        "metadata": {"name": "web"}, "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}})
    wait_for(lambda: policy.read_namespaced_pod_disruption_budget("web", cluster.ns).status.observed_generation,
             what="the disruption controller saw the PDB")
    web, batch = uids(kube_api, cluster.ns, "app=web"), uids(kube_api, cluster.ns, "app=batch")

    set_not_ready(kube_api, node, True)
    core = client.CoreV1Api(kube_api)
    turned = wait_for(lambda: next((c.last_transition_time for c in core.read_node(node).status.conditions
                                    if c.type == "Ready" and c.status == "False"), None), what=f"{node} NotReady")
    found = wait_for(cluster.remediations, timeout=60, what="a Remediation for the NotReady node")
    assert len(found) == 1, [r["metadata"]["name"] for r in found]
    remediation = found[0]
    assert remediation["spec"]["target"] == {"kind": "Node", "name": node}
    assert remediation["spec"]["signal"]["source"] == "nodeCondition"
    opened = parse_time(remediation["metadata"]["creationTimestamp"])
    assert (opened - turned).total_seconds() >= 3, "not before the condition held for the trigger's 3s"

    status = cluster.wait_phase(remediation["metadata"]["name"], TERMINAL, timeout=90)["status"]
    assert status["phase"] in ("Failed", "Escalated") and status["steps"], status["reason"]
    step = status["steps"][0]
    assert f"blocked by PodDisruptionBudget {cluster.ns}/web" in step["message"], step
    assert "not finished within the step's timeout 8s" in step["message"], step
    drained = core.read_node(node)
    assert drained.spec.unschedulable and drained.metadata.annotations[CORDONED_FOR_ANNOTATION].endswith(" Ready=False")
    assert uids(kube_api, cluster.ns, "app=web") == web, "the pod its budget keeps is never forced"
    assert not batch & uids(kube_api, cluster.ns, "app=batch"), "the pod no budget keeps was evicted"

    set_not_ready(kube_api, node, False)
    back = wait_for(lambda: (lambda n: n if not n.spec.unschedulable else None)(core.read_node(node)), timeout=30,
                    what=f"{node} uncordoned once Ready")
    assert ready(back) == "True"
    assert CORDONED_FOR_ANNOTATION not in (back.metadata.annotations or {})
    assert DRAIN_STARTED_ANNOTATION not in (back.metadata.annotations or {})
    assert len(cluster.remediations()) == 1, "recovery opens no incident"


def test_min_healthy_stops_the_drain_when_too_many_nodes_are_unhealthy_and_says_which(
        cluster, operator, own_nodes, kube_api):
    first, second = own_nodes(), own_nodes()
    cluster.apply_policy(NODE_ACTIONS)
    # minHealthy counts the nodes the trigger selects: these two, both NotReady, where 100% must stay healthy
    cluster.apply_runbook("node-notready", node_runbook("1s", "100%", own_nodes.selector))
    for node in (first, second):
        set_not_ready(kube_api, node, True)

    done = wait_for(lambda: (lambda items: items if len(items) == 2 and all(
        (r.get("status") or {}).get("phase") in TERMINAL for r in items) else None)(cluster.remediations()),
        timeout=60, what="a Remediation per NotReady node, each decided")
    core = client.CoreV1Api(kube_api)
    for remediation in done:
        status = remediation["status"]
        assert status["phase"] == "Skipped" and not status.get("steps"), status
        assert "minHealthy" in status["reason"] and "too many Nodes are unhealthy" in status["reason"], status["reason"]
        target = remediation["spec"]["target"]["name"]
        assert "of 2 Node(s) healthy without " + target in status["reason"], "it counts the nodes its trigger selects"
        assert f"{target} (Ready=False)" in status["reason"], status["reason"]
    assert not core.read_node(first).spec.unschedulable and not core.read_node(second).spec.unschedulable


def test_a_nodes_claim_is_one_for_the_cluster_so_two_namespaces_never_drain_it_at_once(cluster, kube_api):
    core = client.CoreV1Api(kube_api)
    other = f"{cluster.ns}-b"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=other)))
    try:
        target = ObjectRef(kind="Node", name=f"t-claim-{uuid.uuid4().hex[:6]}")
        held = []
        for namespace in (cluster.ns, other):
            client.CustomObjectsApi(kube_api).create_namespaced_custom_object(
                GROUP, VERSION, namespace, "runbooks", {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Runbook",
                                                        "metadata": {"name": "node"}, "spec": node_runbook("1s", "1")})
            ctx = OperatorContext(api=kube_api, settings=Settings(namespaces=(namespace,)))
            signal = Signal(source="nodeCondition", name="Ready", fingerprint=namespace,
                            starts_at=format_time(datetime.now(UTC)),
                            labels={"namespace": namespace, "node": target.name, "status": "False",
                                    "heldSeconds": "60"})
            created = ctx.intake.firing(signal)
            assert created.outcome == "created", created.reasons
            held.append(Resources(kube_api).get("Remediation", created.name, namespace))
        now = datetime.now(UTC)

        def take(remediation):
            meta = remediation["metadata"]
            return target_claims.take(kube_api, target, meta["namespace"], meta["uid"], meta["name"],
                                      timedelta(minutes=2), now, cluster_namespace=cluster.ns)

        first, second = held
        assert take(first).op == "create"
        refused = take(second)
        assert not refused.granted and f"claimed by Remediation {first['metadata']['name']}" in refused.reason
        client.CustomObjectsApi(kube_api).patch_namespaced_custom_object_status(
            GROUP, VERSION, cluster.ns, "remediations", first["metadata"]["name"], {"status": {"phase": "Succeeded"}})
        taken = take(second)
        assert taken.op == "takeover" and "finished or gone" in taken.reason, "its holder was found in its namespace"
        lease = client.CoordinationV1Api(kube_api).read_namespaced_lease(taken.lease, cluster.ns)
        assert lease.metadata.owner_references is None, "an owner in another namespace would get it collected"
        target_claims.release(kube_api, target, other, second["metadata"]["uid"], cluster_namespace=cluster.ns)
        assert taken.lease not in {item.metadata.name for item in
                                   client.CoordinationV1Api(kube_api).list_namespaced_lease(cluster.ns).items}
    finally:
        core.delete_namespace(other)


def recovery_runbook(selector: dict, timeout: str) -> dict:
    runbook = node_runbook("2s", "1", selector)
    runbook["steps"][0]["timeout"] = timeout
    return runbook


def drain_remediation(cluster, kube_api, node: str) -> dict:
    set_not_ready(kube_api, node, True)
    found = wait_for(cluster.remediations, timeout=60, what="a Remediation for the NotReady node")
    assert len(found) == 1 and found[0]["spec"]["target"]["name"] == node, found
    return cluster.wait_phase(found[0]["metadata"]["name"], TERMINAL, timeout=90)


def test_a_drained_node_is_verified_once_its_evicted_pods_run_ready_on_another_node(
        cluster, operator, own_nodes, kube_api):
    first = own_nodes()
    cluster.apply_policy(NODE_ACTIONS)
    cluster.apply_runbook("node-notready", recovery_runbook(own_nodes.selector, "40s"))
    web = deployment("web", replicas=2)
    web["spec"]["template"]["spec"].update(nodeSelector=own_nodes.selector["matchLabels"], tolerations=[
        {"key": TAINT, "operator": "Exists"},
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}])
    utils.create_from_dict(kube_api, web, namespace=cluster.ns)
    wait_rolled_out(kube_api, cluster.ns, "web")
    evicted = uids(kube_api, cluster.ns, "app=web")
    second = own_nodes()  # made after the pods ran on the first: the scheduler's only other place for them

    status = drain_remediation(cluster, kube_api, first)["status"]
    assert status["phase"] == "Succeeded", status["reason"]
    assert "run elsewhere" in status["reason"] and "2 of 2 Running and Ready elsewhere" in status["reason"], \
        status["reason"]
    core = client.CoreV1Api(kube_api)
    assert ready(core.read_node(first)) == "False", "verified by the pods, not by the node's recovery"
    now = core.list_namespaced_pod(cluster.ns, label_selector="app=web").items
    assert {p.spec.node_name for p in now if p.status.phase == "Running"} == {second}
    assert not evicted & {p.metadata.uid for p in now}


def test_a_drained_node_whose_pods_cannot_run_elsewhere_is_not_verified_and_names_them(
        cluster, operator, own_nodes, kube_api):
    node, _spare = own_nodes(), own_nodes()  # the spare keeps minHealthy 1, but nothing pinned to the node fits it
    cluster.apply_policy(NODE_ACTIONS)
    cluster.apply_runbook("node-notready", recovery_runbook(own_nodes.selector, "8s"))
    utils.create_from_dict(kube_api, on_node(deployment("pinned", replicas=1), node), namespace=cluster.ns)
    wait_rolled_out(kube_api, cluster.ns, "pinned")
    name = next(iter(client.CoreV1Api(kube_api).list_namespaced_pod(cluster.ns, label_selector="app=pinned")
                     .items)).metadata.name

    status = drain_remediation(cluster, kube_api, node)["status"]
    assert status["phase"] in ("Failed", "Escalated"), status["reason"]
    step = status["steps"][0]
    assert step["result"] == "failed", step
    assert f"not rescheduled: {name}" in step["message"] and "0 of 1 Running and Ready elsewhere" in step["message"]
    assert "still Ready=False" in step["message"], step["message"]


def test_a_drain_over_several_calls_reports_every_pod_it_evicted_by_controller_and_the_pods_nothing_replaces(
        cluster, own_nodes, kube_api):
    node = own_nodes()
    utils.create_from_dict(kube_api, pinned(deployment("web", replicas=2), node), namespace=cluster.ns)
    create_daemon_set_and_unmanaged_pods(kube_api, cluster.ns, node)
    wait_rolled_out(kube_api, cluster.ns, "web")
    policy = client.PolicyV1Api(kube_api)
    # one of the two may go: the first call evicts one, its replacement cannot start (pinned to the cordoned
    # node), so the budget holds the other until it is deleted
    policy.create_namespaced_pod_disruption_budget(cluster.ns, {
        "metadata": {"name": "web"}, "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}})
    wait_for(lambda: policy.read_namespaced_pod_disruption_budget("web", cluster.ns).status.observed_generation,
             what="the disruption controller saw the PDB")
    web = client.CoreV1Api(kube_api).list_namespaced_pod(cluster.ns, label_selector="app=web").items
    k = key()

    first = execute(kube_api, request("cordonDrain", None, node, k, kind="Node", drain={"timeout": "3s"}))
    assert not first.done, first.message
    policy.delete_namespaced_pod_disruption_budget("web", cluster.ns)
    # the second call is what a restarted operator makes: it finds on the node only the pod still there
    last = execute(kube_api, request("cordonDrain", None, node, k, kind="Node", drain={"timeout": "30s"}))

    assert last.done and last.replayed, last.message
    owner = next(o for o in web[0].metadata.owner_references if o.controller)
    assert [(e.detail, sorted(e.value.split(","))) for e in last.evidence if e.kind == "evicted"] == [
        (f"{cluster.ns}/ReplicaSet/{owner.name}", sorted(p.metadata.name for p in web))]
    assert [e.detail for e in last.evidence if e.kind == "unreplaceable"] == [f"{cluster.ns}/bare"]


def test_a_drained_node_whose_pods_cannot_run_elsewhere_is_verified_once_it_is_ready_again(
        cluster, operator, own_nodes, kube_api):
    node, _spare = own_nodes(), own_nodes()
    cluster.apply_policy(NODE_ACTIONS)
    cluster.apply_runbook("node-notready", recovery_runbook(own_nodes.selector, "60s"))
    utils.create_from_dict(kube_api, on_node(deployment("pinned", replicas=1), node), namespace=cluster.ns)
    wait_rolled_out(kube_api, cluster.ns, "pinned")

    set_not_ready(kube_api, node, True)
    found = wait_for(cluster.remediations, timeout=60, what="a Remediation for the NotReady node")
    name = found[0]["metadata"]["name"]
    cluster.wait_phase(name, {"Verifying"}, timeout=60)
    set_not_ready(kube_api, node, False)

    status = cluster.wait_phase(name, TERMINAL, timeout=60)["status"]
    assert status["phase"] == "Succeeded", status["reason"]
    assert f"node {node} is healthy again: Ready=True" in status["reason"], status["reason"]


def test_the_node_probe_sees_a_replacement_that_cannot_be_scheduled_when_the_evicted_pods_span_namespaces(
        cluster, own_nodes, kube_api):
    from remediator.actions.drain import EVICTS_ANNOTATION
    from remediator.verification.probes import observe

    node = own_nodes()
    core = client.CoreV1Api(kube_api)
    record = {f"{cluster.ns}/web-x": "ReplicaSet/web-1", "default/other-x": "ReplicaSet/other-1"}
    core.patch_node(node, {"metadata": {"annotations": {EVICTS_ANNOTATION: f"k {json.dumps(record)}"}}})
    core.create_namespaced_pod(cluster.ns, {"metadata": {"name": "web-y"}, "spec": {
        "nodeSelector": {"no-such-node": "x"}, "containers": [{"name": "c", "image": "web"}]}})
    seen = observe(kube_api, ObjectRef(kind="Node", name=node))
    assert [(p.name, p.node, p.phase) for p in seen.elsewhere if p.namespace == cluster.ns] == [
        ("web-y", None, "Pending")], "a replacement with no room must hold the Node's verdict back"
