"""The paths users take: every shipped Runbook under every shipped RemediationPolicy (and under none), on the real
control plane, each driven by its real trigger, and `remediator simulate` agreeing with the live loop.

One namespace per Runbook and policy (a cell). Policies whose limits allow it share a test (the storm hold-off and
cluster-wide concurrency count every namespace: production-strict's cells run alone); a test's cells are served by
one operator process and run at once: set up every cell, fire every trigger, then poll them all. Nothing is
shortened: the Runbook files are applied as shipped (their verify windows included; a node Runbook's trigger leaves
out the other cells' nodes, and its node's NotReady is dated back past the trigger's 5m rather than waited out), and so is the policy file,
except that its `namespaces` is pointed at the cells' namespaces (so it governs them and nothing else on a shared
cluster) and its name is made unique. production-strict keeps its own namespaceSelector; the cells are labelled `environment: production`, as a
production namespace would be.

Where the policy's approval rule asks for votes, they are cast as the users a user would ask (RemediationApproval
objects created as those users, through impersonation); a vote the rule does not allow is refused with a reason
naming the rule. Outcomes are read from the cluster: the Remediation's status and the Deployment itself.

Approvers: alice and bob are in the Kubernetes group `sre`, carol and dave in `sre-leads`.
"""

from __future__ import annotations

import copy
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from remediator.api.models import NodeConditionTrigger, RemediationPolicySpec, RunbookSpec
from remediator.approvals.kubernetes import cast_vote
from remediator.core.report import simulation
from remediator.core.plan.cause import Change
from remediator.core.durations import format_time, parse_duration, parse_time
from remediator.core.plan.guard_inputs import past_remediation
from remediator.core.plan.sizing import Strategy
from remediator.core.plan.nodes import node_fact
from remediator.signals import pods
from remediator.signals.nodes import node_signals
from remediator.signals.alertmanager import parse_payload, to_signal
from tests.integration.conftest import GROUP, VERSION, Cluster
from tests.integration.test_kubernetes_approvals import as_user
from tests.support.operator import OperatorProcess, alert, alert_payload
from tests.support.waiting import wait_for

# runs alone: many cells at once: storm hold-off and concurrency count every namespace
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.serial]

ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = {p.stem: yaml.safe_load(p.read_text()) for p in sorted((ROOT / "runbooks").glob("*.yaml"))}
POLICIES = {p.stem: yaml.safe_load(p.read_text()) for p in sorted((ROOT / "policies").glob("*.yaml"))}
NO_POLICY = "no-policy"
VOTERS = {"alice": "sre", "bob": "sre", "carol": "sre-leads", "dave": "sre-leads"}
TERMINAL = {"Succeeded", "Failed", "Escalated", "Skipped", "Expired", "Denied", "Cancelled"}
FIRST_DECISIONS = ("Acting", "AwaitingApproval", "Skipped")


@dataclass(frozen=True)
class Acts:
    """Acts alone, then its verification passes."""

    action: str


@dataclass(frozen=True)
class Waits:
    """Waits for `approvers` votes at risk `level`; `refused` votes are refused (the rule does not allow them),
    then `allowed` votes make it act. With no allowed voters it keeps waiting and touches nothing."""

    level: str
    approvers: int
    action: str
    refused: tuple[str, ...] = ()
    allowed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Refused:
    """Skipped before acting: the guard `guard` blocks it, its reason saying `says`; nothing is touched."""

    guard: str
    says: str


NODE_RUNBOOK = "node-notready-cordon-drain"
CELL_LABEL = "remediator.dev/matrix-cell"
# Nodes are the cluster's: no shipped policy (nor none) lets a namespace act on them; a cluster admin's bounds
# entry must (allowNodeActions). The cell's Node is one of its own, turned NotReady.
NODE_ACTIONS_REFUSED = Refused("bounds", "a RemediationPolicy bounds entry for it must set allowNodeActions: true")

# What a user would expect of each cell. The risk levels are the scores the cells get: one Deployment of 2 pods
# (1 for the scale-out) alone in its namespace, so a rolling step touches 1 of 2 replicas, half the namespace's pods
# (+20 points; a third, +15, for the rollback, whose bad revision's pod is there too); rollback (+10, -10 for the
# rollout that caused it) and raiseMemory (+5) add their own; a production namespace adds 15. Without a policy the
# default rules ask high and critical risk for approvers but name none: nobody can approve, and a vote is told so.
EXPECTED: dict[tuple[str, str], Acts | Waits | Refused] = {
    **{(policy, NODE_RUNBOOK): NODE_ACTIONS_REFUSED for policy in (NO_POLICY, *POLICIES)},
    (NO_POLICY, "bad-rollout-rollback"): Waits("high", 1, "rollback", refused=("alice",)),
    (NO_POLICY, "crashloop-restart"): Acts("restartRollout"),
    (NO_POLICY, "high-latency-scale-out"): Acts("scale"),
    (NO_POLICY, "oomkilled-raise-memory"): Waits("high", 1, "raiseMemory", refused=("alice",)),
    ("default", "bad-rollout-rollback"): Waits("high", 1, "rollback", refused=("carol",), allowed=("alice",)),
    ("default", "crashloop-restart"): Acts("restartRollout"),
    ("default", "high-latency-scale-out"): Acts("scale"),
    ("default", "oomkilled-raise-memory"): Waits("high", 1, "raiseMemory", allowed=("bob",)),
    ("production-strict", "bad-rollout-rollback"): Waits("critical", 2, "rollback", refused=("alice",),
                                                         allowed=("carol", "dave")),
    ("production-strict", "crashloop-restart"): Waits("medium", 1, "restartRollout", allowed=("bob",)),
    ("production-strict", "high-latency-scale-out"): Acts("scale"),
    ("production-strict", "oomkilled-raise-memory"): Waits("high", 1, "raiseMemory", allowed=("alice",)),
}
REPLICAS = {"high-latency-scale-out": 1}  # the others run 2


def limits(policy: str) -> RemediationPolicySpec:
    return RemediationPolicySpec.model_validate(POLICIES[policy]["spec"] if policy != NO_POLICY else {})


def together() -> list[tuple[str, ...]]:
    """Policies whose cells can run at once: the storm hold-off and the cluster-wide concurrency cap count every
    namespace, so a group's cells must stay under each member's limits (production-strict's 5 targets: alone).
    A policy whose storm hold-off has fewer targets than it has cells runs its node cell ("policy:runbook") first,
    alone, at the head of the group before (that group's wait for the storm window to pass is paid already)."""
    groups: list[list[str]] = []
    for policy in (NO_POLICY, *POLICIES):
        trial = [*(groups[-1] if groups else []), policy]
        cells = len(trial) * len(RUNBOOKS)
        if groups and all(cells < limits(p).storm_holdoff.targets and cells <= limits(p).concurrency.max_active
                          for p in trial):
            groups[-1] = trial
        else:
            if groups and len(RUNBOOKS) >= limits(policy).storm_holdoff.targets:
                groups[-1].insert(0, f"{policy}:{NODE_RUNBOOK}")
            groups.append([policy])
    return [tuple(g) for g in groups]


def runbooks_of(entry: str, group: tuple[str, ...]) -> tuple[str, list[str]]:
    """(policy, its runbooks in this group) for a group entry: "policy" (less a node cell run earlier) or
    "policy:runbook" (that cell alone)."""
    policy, _, alone = entry.partition(":")
    if alone:
        return policy, [alone]
    early = {r for g in together() for e in g for p, _, r in [e.partition(":")] if r and p == policy}
    return policy, [r for r in RUNBOOKS if r not in early]


def test_every_cell_of_the_matrix_has_an_expected_outcome():
    """A Runbook or policy added to the library must say what users should see under every policy."""
    cells = {(policy, runbook) for policy in (NO_POLICY, *POLICIES) for runbook in RUNBOOKS}
    assert set(EXPECTED) == cells, {"missing": sorted(cells - set(EXPECTED)), "stale": sorted(set(EXPECTED) - cells)}


@dataclass
class Cell:
    policy: str
    runbook: str
    cluster: Cluster
    expected: Acts | Waits | Refused
    name: str = ""  # the Remediation
    node: str = ""  # the cell's own KWOK node, for a Runbook that acts on Nodes
    spec: dict = field(default_factory=dict)  # the Runbook as applied
    signals: list = field(default_factory=list)  # what triggered it, as the operator received it
    changes: tuple[Change, ...] = ()  # what the change journal would hold
    pods: int = 0  # pods in the namespace when the trigger fired
    generation: int = 0  # the Deployment's, when the trigger fired

    @property
    def ns(self) -> str:
        return self.cluster.ns


@pytest.fixture
def cells_for(kube_api, crds, kubeconfig, tmp_path):
    """Builds the cells of one policy: namespaces, voters' RBAC, the policy, Runbooks, Deployments, an operator.
    Afterwards everything is deleted, and the Remediations waited out, so the next policy's storm hold-off
    (cluster-wide) does not count these targets."""
    made: list[Cell] = []
    policies: list[str] = []
    operators: list[OperatorProcess] = []
    nodes: list[str] = []
    core = client.CoreV1Api(kube_api)
    custom = client.CustomObjectsApi(kube_api)

    def build(group: tuple[str, ...]) -> tuple[list[Cell], OperatorProcess]:
        suffix = uuid.uuid4().hex[:5]
        cells = []
        for entry in group:
            policy, runbooks = runbooks_of(entry, group)
            labels = {"remediator.dev/test": "true"}
            if policy == "production-strict":
                labels |= POLICIES[policy]["spec"]["namespaceSelector"]["matchLabels"]
            mine = []
            for runbook in runbooks:
                ns = f"mx-{policy[:10]}-{runbook[:14]}-{suffix}".replace("--", "-")
                core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns, labels=labels)))
                mine.append(Cell(policy, runbook, Cluster(kube_api, ns), EXPECTED[(policy, runbook)]))
            cells += mine
            made.extend(mine)
            if policy != NO_POLICY:
                doc = POLICIES[policy]
                name = policy_name(policy, suffix)
                body = {**copy.deepcopy(doc), "metadata": {"name": name}}
                body["spec"]["namespaces"] = [c.ns for c in mine]  # the one change to the shipped file
                custom.create_cluster_custom_object(GROUP, VERSION, "remediationpolicies", body)
                policies.append(name)
        op = OperatorProcess(kubeconfig, [c.ns for c in cells], tmp_path)
        operators.append(op)
        for cell in cells:
            allow_voting(kube_api, cell.ns)
            doc = RUNBOOKS[cell.runbook]
            spec = copy.deepcopy(doc["spec"])
            if "nodeCondition" in spec["triggers"][0]:
                cell.node = own_node(core, cell.ns)
                nodes.append(cell.node)
                # the one change to a node Runbook: it leaves out the other cells' nodes (each cell's incident is
                # about its own node); the cluster's other nodes still count for minHealthy
                spec["triggers"][0]["nodeCondition"]["selector"] = {"matchExpressions": [{
                    "key": CELL_LABEL, "operator": "NotIn", "values": sorted(c.ns for c in cells if c is not cell)}]}
            cell.spec = spec
            cell.cluster.apply_runbook(doc["metadata"]["name"], spec)
            cell.cluster.deploy("web", replicas=REPLICAS.get(cell.runbook, 2))
        op.start()
        return cells, op

    yield build
    for op in operators:
        op.stop()
    for name in policies:
        custom.delete_cluster_custom_object(GROUP, VERSION, "remediationpolicies", name)
    for name in nodes:
        core.delete_node(name)
    for cell in made:
        core.delete_namespace(cell.ns, propagation_policy="Background")
    wait_for(lambda: not any(cell.cluster.remediations() for cell in made), timeout=120,
             what="the cells' Remediations deleted")


def own_node(core: client.CoreV1Api, namespace: str) -> str:
    """A KWOK node of the cell's own, tainted so no other pod lands on it: turning it NotReady harms no one."""
    name = f"mx-node-{namespace[-5:]}-{uuid.uuid4().hex[:4]}"
    core.create_node({"metadata": {"name": name, "annotations": {"kwok.x-k8s.io/node": "fake"},
                                   "labels": {"kubernetes.io/hostname": name, "type": "kwok", CELL_LABEL: namespace}},
                      "spec": {"taints": [{"key": "remediator.dev/test-node", "value": name, "effect": "NoSchedule"}]}})
    wait_for(lambda: ready_status(core.read_node(name)) == "True", what=f"node {name} Ready")
    return name


def ready_status(node) -> str | None:
    return next((c.status for c in node.status.conditions or [] if c.type == "Ready"), None)


def policy_name(policy: str, suffix: str) -> str:
    return f"{POLICIES[policy]['metadata']['name']}-{suffix}"


def allow_voting(api: client.ApiClient, namespace: str) -> None:
    """The groups the policies name may create votes here and read the Remediation they vote on."""
    rbac = client.RbacAuthorizationV1Api(api)
    rbac.create_namespaced_role(namespace, {
        "metadata": {"name": "voter"},
        "rules": [{"apiGroups": [GROUP], "resources": ["remediationapprovals"], "verbs": ["create", "get"]},
                  {"apiGroups": [GROUP], "resources": ["remediations"], "verbs": ["get"]}]})
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": "voter"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "voter"},
        "subjects": [{"kind": "Group", "name": group, "apiGroup": "rbac.authorization.k8s.io"}
                     for group in sorted(set(VOTERS.values()))]})


# ---------------------------------------------------------------- triggers


def prepare(cell: Cell) -> None:
    """What must be true before the trigger: for the rollback, a bad revision rolled out."""
    if cell.runbook == "bad-rollout-rollback":
        cell.cluster.bad_rollout("web")
        wait_for(lambda: len(cell.cluster.revisions()) == 2, what=f"{cell.ns}: bad revision")
        rs = next(rs for rs in cell.cluster.apps.list_namespaced_replica_set(cell.ns).items
                  if rs.metadata.annotations.get("deployment.kubernetes.io/revision") == "2")
        cell.changes = (Change(kind="rollout", object="Deployment/web", namespace=cell.ns,
                               at=rs.metadata.creation_timestamp, revision="2",
                               what="Deployment/web revision 2 rolled out: image registry.local/web:bad"),)
        # The new revision's surge pod exists before the incident begins (it never becomes Ready).
        wait_for(lambda: len(cell.cluster.core.list_namespaced_pod(cell.ns).items) == 3,
                 what=f"{cell.ns}: the bad revision's pod")


def fire(cell: Cell, operator: OperatorProcess) -> None:
    """The Runbook's real trigger: a pod failing as its podState names, or the alert its matchers name."""
    cell.pods = len(cell.cluster.core.list_namespaced_pod(cell.ns).items)
    cell.generation = cell.cluster.apps.read_namespaced_deployment("web", cell.ns).metadata.generation
    trigger = RUNBOOKS[cell.runbook]["spec"]["triggers"][0]
    if "nodeCondition" in trigger:
        cell.signals = node_not_ready(cell, NodeConditionTrigger.model_validate(trigger["nodeCondition"]))
        return
    if "podState" in trigger:
        failure = {"CrashLoopBackOff": "crashloop", "OOMKilled": "oomkilled"}[trigger["podState"]["states"][0]]
        pod = cell.cluster.core.list_namespaced_pod(cell.ns, label_selector="app=web").items[0].metadata.name
        cell.cluster.core.patch_namespaced_pod(pod, cell.ns, {"metadata": {"labels": {
            "remediator.dev/kwok-fail": failure}}})
        cell.signals = wait_for(lambda: failing_signals(cell, pod), interval=0.05,
                                what=f"{cell.ns}: pod {pod} reported failing")
        return
    names = {m["name"]: m["value"] for m in trigger["alert"]["matchers"]}
    alertname = names["alertname"].split("|")[-1]  # HighErrorRate|ErrorBudgetBurn: either fires it
    began = format_time(datetime.now(timezone.utc))  # after the rollout, if any
    sent = alert(cell.ns, "web", alertname=alertname, fingerprint=f"mx-{cell.runbook}", starts_at=began)
    assert operator.post_alerts(alert_payload([sent])).status_code == 200
    cell.signals = [to_signal(parse_payload(alert_payload([sent])).alerts[0])]


def node_not_ready(cell: Cell, trigger: NodeConditionTrigger) -> list:
    """The KWOK stage turns the cell's node NotReady; then its Ready condition is dated back past the trigger's
    `for`, as if it had been NotReady that long (the shipped 5m are not waited out). Returns the node's signals
    as the operator's node edge derives them from what the apiserver serves."""
    core = cell.cluster.core
    core.patch_node(cell.node, {"metadata": {"labels": {"remediator.dev/kwok-node": "notready"}}})
    wait_for(lambda: ready_status(core.read_node(cell.node)) == "False", what=f"{cell.node} NotReady")
    since = format_time(datetime.now(timezone.utc) - parse_duration(trigger.for_) - timedelta(seconds=30))
    core.patch_node_status(cell.node, {"status": {"conditions": [{
        "type": "Ready", "status": "False", "lastTransitionTime": since, "reason": "NodeStatusUnknown",
        "message": "matrix: NotReady since before the trigger's duration"}]}})
    node = node_fact(cell.cluster.api.sanitize_for_serialization(core.read_node(cell.node)))
    status, turned = node.conditions["Ready"]
    assert status == "False" and parse_time(turned) == parse_time(since), node.conditions
    return node_signals(node, {cell.ns: [trigger]}, datetime.now(timezone.utc))


def failing_signals(cell: Cell, pod: str) -> list:
    """The pod's signals as the operator's pod handler derives them from what the apiserver serves (read at once:
    the restart it sets off replaces the pod)."""
    try:
        found = cell.cluster.core.read_namespaced_pod(pod, cell.ns)
    except ApiException:
        return []
    return pods.pod_signals(cell.cluster.api.sanitize_for_serialization(found), datetime.now(timezone.utc))


def storm_room(custom: client.CustomObjectsApi, group: tuple[str, ...], cells: list[Cell]) -> str | None:
    """None when the storm hold-off, which counts failing targets cluster-wide, leaves room for every cell;
    else what fills it. On a shared cluster other tests' incidents count too: the matrix waits them out."""
    items = custom.list_cluster_custom_object(GROUP, VERSION, "remediations")["items"]
    now = datetime.now(timezone.utc)
    ours = {c.ns for c in cells}
    for entry in group:
        policy, alone = entry.partition(":")[0], bool(entry.partition(":")[2])
        storm = limits(policy).storm_holdoff
        window = parse_duration(storm.window)
        others = {p.target_key for obj in items if obj["metadata"]["namespace"] not in ours
                  for p in [past_remediation(obj)] if p.started_at and now - p.started_at < window}
        if len(others) + (1 if alone else len(cells)) >= storm.targets:  # a cell alone decides before the rest
            return f"{len(others)} other target(s) failed in the last {storm.window}: {sorted(others)[:5]}"
    return None


def remediation_of(cell: Cell) -> dict | None:
    items = cell.cluster.remediations()
    assert len(items) <= 1, f"{cell.ns}: one incident, one Remediation: {[i['metadata']['name'] for i in items]}"
    return items[0] if items else None


def first_decision(status: dict) -> dict | None:
    """The loop's first decision after planning, from the timeline: {kind, at, message}."""
    return next((t for t in status.get("timeline") or [] if t["kind"] in FIRST_DECISIONS), None)


# ---------------------------------------------------------------- verdicts, live and simulated


def live_verdict(status: dict) -> tuple:
    decided = first_decision(status)
    assert decided is not None, status
    if decided["kind"] == "Acting":
        return ("act", status["plan"][status["steps"][0]["index"]]["action"])
    if decided["kind"] == "AwaitingApproval":
        return ("awaitApproval", status["approval"]["level"], status["approval"]["required"])
    return ("skip", decided["message"].split(" -> Skipped: ", 1)[-1])  # the reason, as simulate words it


def expected_verdict(expected: Acts | Waits | Refused) -> tuple:
    if isinstance(expected, Acts):
        return ("act", expected.action)
    if isinstance(expected, Waits):
        return ("awaitApproval", expected.level, expected.approvers)
    return ("skip", expected.guard)


def simulated_verdict(sim: simulation.AlertSimulation) -> tuple:
    if sim.outcome == "act":
        assert sim.guards is not None
        return ("act", sim.guards.action)
    if sim.outcome == "awaitApproval":
        assert sim.approval is not None
        return ("awaitApproval", sim.approval.level, sim.approval.approvers)
    return (sim.outcome, sim.phase_reason)


def simulate_cell(cell: Cell, live: dict, history: list[dict], policies: list[dict]) -> simulation.AlertSimulation:
    """`remediator simulate` (its core function) given what a user can know: the signal, the Runbook and policy
    files, the cluster's Remediations and policies, the target's replicas, labels and strategy, the namespace's
    labels and pods, what changed, and that the apiserver's dry run would succeed; at the loop's decision time."""
    status = live["status"]
    now = parse_time(next(t["at"] for t in status["timeline"] if t["kind"] == "Planned"))
    # The cluster's Remediations, read after the decision, less this incident's own (simulate would call this
    # delivery a duplicate of it); simulate leaves out those created after `now`.
    history = [h for h in history if h["metadata"]["uid"] != live["metadata"]["uid"]]
    dep = cell.cluster.apps.read_namespaced_deployment("web", cell.ns)
    rolling = dep.spec.strategy.rolling_update
    ns_labels = cell.cluster.core.read_namespace(cell.ns).metadata.labels or {}
    doc = RUNBOOKS[cell.runbook]
    if cell.node:  # the target is the Node: its labels, its pods (none: it is tainted) and the cluster's Nodes
        core = cell.cluster.core
        settings = simulation.Settings(
            now=now, namespace_labels=ns_labels, target_labels=core.read_node(cell.node).metadata.labels or {},
            namespace_pods=cell.pods, server_dry_run="succeeded", changes=cell.changes, pods=(),
            nodes=tuple(node_fact(cell.cluster.api.sanitize_for_serialization(n)) for n in core.list_node().items))
    else:
        settings = simulation.Settings(
            now=now, replicas=REPLICAS.get(cell.runbook, 2), namespace_labels=ns_labels,
            target_labels=dep.metadata.labels or {}, namespace_pods=cell.pods, server_dry_run="succeeded",
            changes=cell.changes, strategy=Strategy(dep.spec.strategy.type, rolling.max_unavailable,
                                                    rolling.max_surge))
    result = simulation.simulate(
        [simulation.IncomingAlert("firing", s) for s in cell.signals],
        [simulation.RunbookDoc(doc["metadata"]["name"], RunbookSpec.model_validate(cell.spec or doc["spec"]))],
        [simulation.PolicyDoc(p["metadata"]["name"], p["spec"]) for p in policies],
        history, settings)
    matched = [a for a in result.alerts if a.outcome != "unmatched"]
    assert len(matched) == 1, [(a.alert, a.outcome, a.summary) for a in result.alerts]
    return matched[0]


# ---------------------------------------------------------------- what the cluster shows once it acted


def check_acted(cell: Cell) -> None:
    dep = cell.cluster.apps.read_namespaced_deployment("web", cell.ns)
    if cell.runbook == "crashloop-restart":
        assert "kubectl.kubernetes.io/restartedAt" in (dep.spec.template.metadata.annotations or {})
    elif cell.runbook == "high-latency-scale-out":
        assert dep.spec.replicas == 3, "1 replica + step 2, within minReplicas 2 and maxReplicas 10"
    elif cell.runbook == "oomkilled-raise-memory":
        assert dep.spec.template.spec.containers[0].resources.limits["memory"] == "96Mi", "64Mi x 1.5"
    elif cell.runbook == "bad-rollout-rollback":
        assert sorted(cell.cluster.revisions().values()) == ["2", "3"], "revision 1 rolled back in as 3"
        assert "remediator.dev/kwok-fail" not in (dep.spec.template.metadata.labels or {})
    else:
        pytest.fail(f"no check of what {cell.runbook} changes: add one")


def vote(kube_api, cell: Cell, user: str) -> dict:
    return cast_vote(as_user(kube_api, user, VOTERS[user]), cell.ns, cell.name, "approve", "matrix")["status"]


# ---------------------------------------------------------------- the matrix


@pytest.mark.parametrize("group", together(), ids="+".join)
def test_every_shipped_runbook_reaches_what_users_expect_under_the_policy(group, cells_for, kube_api):
    began = time.monotonic()
    custom = client.CustomObjectsApi(kube_api)
    cells, operator = cells_for(group)
    suffix = cells[0].ns.rsplit("-", 1)[1]
    for cell in cells:
        prepare(cell)
    crowded = [storm_room(custom, group, cells)]
    while crowded[-1] is not None and time.monotonic() - began < 330:  # a storm window and a half at most
        time.sleep(5)
        crowded.append(storm_room(custom, group, cells))
    assert crowded[-1] is None, f"no room under the storm hold-off for {len(cells)} cells: {crowded[-1]}"
    for cell in cells:
        fire(cell, operator)
        if f"{cell.policy}:{cell.runbook}" in group:  # decided before the group's other incidents count
            wait_for(lambda c=cell: (lambda r: r and first_decision(r.get("status") or {}))(remediation_of(c)),
                     timeout=60, what=f"{cell.ns}: its first decision, alone")

    # 1. Every cell's first decision is the expected one, and simulate's, given the same inputs, is the same.
    def decided():
        found = {c.ns: remediation_of(c) for c in cells}
        return found if all(r and first_decision(r.get("status") or {}) for r in found.values()) else None
    live = wait_for(decided, timeout=120, what="every cell's first decision")
    history = custom.list_cluster_custom_object(GROUP, VERSION, "remediations")["items"]
    policies = custom.list_cluster_custom_object(GROUP, VERSION, "remediationpolicies")["items"]
    problems = []
    for cell in cells:
        obj = live[cell.ns]
        cell.name, status = obj["metadata"]["name"], obj["status"]
        got = live_verdict(status)
        want = expected_verdict(cell.expected)
        if isinstance(cell.expected, Refused) and got[0] == "skip" and cell.expected.says in got[1] \
                and got[1].startswith(f"guard blocked: {cell.expected.guard}: ") and "minHealthy" not in got[1]:
            got = ("skip", cell.expected.guard)  # blocked by that guard alone (minHealthy allows: 1 node down)
        if got != want:
            problems.append(f"{cell.policy} x {cell.runbook}: the loop did {got}, expected {want}; {status['reason']}; "
                            f"risk {status.get('risk')}")
        sim = simulate_cell(cell, obj, history, policies)
        if simulated_verdict(sim) != live_verdict(status):
            problems.append(f"{cell.policy} x {cell.runbook}: simulate says {simulated_verdict(sim)}, "
                            f"the loop did {got}; "
                            f"simulated risk {sim.risk}, live risk {status.get('risk')}")
        governing = sim.policy.name if sim.policy else None
        if governing != (None if cell.policy == NO_POLICY else policy_name(cell.policy, suffix)):
            problems.append(f"{cell.policy} x {cell.runbook}: simulate finds policy {governing} governing")
    assert not problems, "\n".join(problems)
    decided_after = time.monotonic() - began

    # 2. Votes: those the rule does not allow are refused and name the rule; the allowed ones make it act.
    acting = [c for c in cells if isinstance(c.expected, Acts) or isinstance(c.expected, Waits) and c.expected.allowed]
    # production-strict acts on 3 targets at once, cluster-wide: let the cells that act alone end first.
    if len(acting) > min(limits(p.partition(":")[0]).concurrency.max_active for p in group):
        alone = [c for c in cells if isinstance(c.expected, Acts)]
        wait_for(lambda: all(c.cluster.remediation(c.name)["status"]["phase"] in TERMINAL for c in alone),
                 timeout=180, what="the cells that act alone finished")
    for cell in cells:
        if not isinstance(cell.expected, Waits):
            continue
        for user in cell.expected.refused:
            result = vote(kube_api, cell, user)
            assert result["outcome"] == "refused-not-allowed", (cell.policy, cell.runbook, user, result)
            rule = f"the {cell.expected.level} rule" if not cell.expected.allowed else f"{cell.expected.level} risk"
            assert rule in result["message"], (cell.policy, cell.runbook, result["message"])
        for user in cell.expected.allowed:
            result = vote(kube_api, cell, user)
            assert result["outcome"] == "accepted", (cell.policy, cell.runbook, user, result)

    # 3. What acts is verified and the Deployment shows it; what nobody may approve still waits, untouched.
    final = wait_for(lambda: (lambda s: s if all(s[c.ns]["phase"] in TERMINAL for c in acting) else None)(
        {c.ns: c.cluster.remediation(c.name)["status"] for c in cells}), timeout=300,
        what="every approved or unattended cell finished")
    for cell in cells:
        status = final[cell.ns]
        if cell in acting:
            assert status["phase"] == "Succeeded", (cell.policy, cell.runbook, status["reason"])
            assert [s["action"] for s in status["steps"]] == [cell.expected.action], (cell.policy, cell.runbook)
            check_acted(cell)
        elif isinstance(cell.expected, Refused):
            assert status["phase"] == "Skipped" and not status.get("steps"), (cell.policy, cell.runbook, status)
            assert cell.expected.says in status["reason"], (cell.policy, cell.runbook, status["reason"])
            assert not cell.cluster.core.read_node(cell.node).spec.unschedulable, "the node was not cordoned"
        else:
            assert status["phase"] == "AwaitingApproval", (cell.policy, cell.runbook, status["reason"])
            assert status["steps"] == []
            generation = cell.cluster.apps.read_namespaced_deployment("web", cell.ns).metadata.generation
            assert generation == cell.generation, f"{cell.policy} x {cell.runbook}: the Deployment changed"
    print(f"\n{'+'.join(group)}: first decisions after {decided_after:.0f}s, all outcomes after "
          f"{time.monotonic() - began:.0f}s")
