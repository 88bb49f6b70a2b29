"""Node remediation's pure parts: the nodeCondition trigger, the signals a Node sends, the minHealthy guard,
recovery, and where a Node's claim lives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from remediator.api.models import (
    Guard,
    NodeConditionTrigger,
    ObjectRef,
    RunbookRef,
    RunbookSpec,
)
from remediator.controller.claims import lease_namespace
from remediator.core.durations import format_time
from remediator.core.engine.state import remediation_name
from remediator.core.match.matching import RunbookEntry, match_signal
from remediator.core.plan import claims
from remediator.core.plan.guards import GuardContext, check_guards
from remediator.core.plan.nodes import (
    CORDONED_FOR_ANNOTATION,
    NodeFact,
    cordoned_for,
    min_healthy_decision,
    recovered,
    required_healthy,
)
from remediator.signals.nodes import node_signals

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def ago(seconds: int) -> str:
    return format_time(NOW - timedelta(seconds=seconds))


def node(name: str, ready: str = "True", since: int = 3600, **extra) -> NodeFact:
    conditions = {"Ready": (ready, ago(since)), **{k: (v, ago(since)) for k, v in extra.pop("conditions", {}).items()}}
    return NodeFact(name=name, conditions=conditions, **extra)


def trigger(**kw) -> NodeConditionTrigger:
    return NodeConditionTrigger.model_validate({"type": "Ready", "for": "5m", **kw})


def runbook(namespace: str, **trig) -> RunbookEntry:
    spec = RunbookSpec.model_validate({
        "triggers": [{"nodeCondition": {"type": "Ready", "for": "5m", **trig}}],
        "target": {"kind": "Node", "name": "{{ labels.node }}"},
        "steps": [{"name": "drain", "action": "cordonDrain"}]})
    return RunbookEntry(namespace=namespace, name="node-notready", generation=1, spec=spec)


# ---------------------------------------------------------------- signals and matching


def test_a_node_not_ready_past_the_duration_signals_the_namespaces_whose_runbook_takes_it_and_matches_there():
    sick = node("n1", ready="False", since=400, labels={"pool": "web"})
    signals = node_signals(sick, {"platform": [trigger()], "tenant": [trigger(**{"for": "10m"})]}, NOW)

    assert [(s.labels["namespace"], s.name, s.labels["status"]) for s in signals] == [("platform", "Ready", "False")]
    signal = signals[0]
    assert signal.source == "nodeCondition" and signal.labels["node"] == "n1" and signal.labels["pool"] == "web"
    assert signal.starts_at == ago(400), "the incident starts when the condition turned"
    result = match_signal(signal, "platform", [runbook("platform")])
    assert result.matched and result.target == ObjectRef(kind="Node", name="n1"), result.reasons
    assert "has Ready=False for 400s (at least 5m)" in result.reasons[0]
    assert remediation_name(signal.source, signal.fingerprint, signal.starts_at, "platform").startswith("node-")


def test_a_node_not_ready_for_less_than_the_duration_sends_no_signal_and_would_not_match():
    sick = node("n1", ready="Unknown", since=120)
    assert node_signals(sick, {"platform": [trigger()]}, NOW) == []
    forced = node_signals(sick, {"platform": [trigger(**{"for": "1m"})]}, NOW)[0]
    verdict = match_signal(forced, "platform", [runbook("platform")])
    assert not verdict.matched and "Ready=Unknown held 120s, the trigger wants 5m" in verdict.rejected[0][1]


def test_a_pressure_condition_of_the_users_choice_and_a_selector_decide_which_nodes_signal():
    full = node("n1", conditions={"DiskPressure": "True"}, since=900, labels={"pool": "db"})
    other = node("n2", conditions={"DiskPressure": "True"}, since=900, labels={"pool": "web"})
    disk = trigger(type="DiskPressure", statuses=["True"], selector={"matchLabels": {"pool": "db"}})
    assert [s.labels["condition"] for s in node_signals(full, {"ops": [disk]}, NOW)] == ["DiskPressure"]
    assert node_signals(other, {"ops": [disk]}, NOW) == []
    assert node_signals(node("n3", since=900), {"ops": [disk]}, NOW) == [], "a healthy node sends nothing"


def test_one_transition_is_one_incident_and_a_later_transition_is_a_new_one():
    first = node_signals(node("n1", ready="False", since=400), {"p": [trigger()]}, NOW)[0]
    again = node_signals(node("n1", ready="False", since=460), {"p": [trigger()]}, NOW + timedelta(seconds=60))[0]
    later = node_signals(node("n1", ready="False", since=400), {"p": [trigger()]}, NOW + timedelta(hours=2))[0]
    assert first.fingerprint == later.fingerprint, "the same transition, seen later: the same incident"
    assert first.fingerprint != again.fingerprint


def test_a_node_label_named_namespace_or_node_never_redirects_the_signal():
    sick = node("n1", ready="False", since=400, labels={"namespace": "victim", "node": "other"})
    signal = node_signals(sick, {"platform": [trigger()]}, NOW)[0]
    assert signal.labels["namespace"] == "platform" and signal.labels["node"] == "n1"


# ---------------------------------------------------------------- minHealthy


def test_min_healthy_counts_nodes_healthy_by_the_runbooks_condition_and_refuses_below_it():
    nodes = [node("a", ready="False"), node("b", ready="Unknown"), node("c"), node("d")]
    refused = min_healthy_decision(nodes, "a", [trigger()], "3")
    assert not refused.allowed
    assert "2 of 4 Node(s) healthy without a (by Ready not False/Unknown), minHealthy 3 needs 3" in refused.reason
    assert "unhealthy: a (Ready=False), b (Ready=Unknown)" in refused.reason
    assert min_healthy_decision(nodes, "a", [trigger()], "50%").allowed


def test_min_healthy_percent_rounds_up_and_draining_a_healthy_node_counts_it_out():
    assert required_healthy("51%", 4) == 3 and required_healthy("100%", 3) == 3 and required_healthy("0%", 9) == 0
    nodes = [node("a"), node("b"), node("c")]
    # draining a healthy node (an alert set it off) leaves 2 of 3: 51% of 3 rounds up to 2
    assert min_healthy_decision(nodes, "a", [], "51%").allowed
    assert not min_healthy_decision(nodes, "a", [], "100%").allowed


def test_a_cordoned_node_does_not_count_as_healthy():
    nodes = [node("a", ready="False"), node("b", unschedulable=True), node("c")]
    decision = min_healthy_decision(nodes, "a", [trigger()], "2")
    assert not decision.allowed and "b (cordoned)" in decision.reason


def test_the_guards_refuse_a_drain_that_would_leave_too_few_healthy_nodes_and_say_why():
    context = GuardContext(
        now=NOW, runbook=RunbookRef(namespace="platform", name="node-notready"), guard=Guard(), policy=None,
        target=ObjectRef(kind="Node", name="a"), history=(), action="cordonDrain", target_replicas=None,
        pods_touched=0, nodes=(node("a", ready="False"), node("b", ready="False"), node("c")),
        node_triggers=(trigger(),), min_healthy="51%")
    verdict = check_guards(context)
    blocked = [d for d in verdict.decisions if d.guard == "minHealthy"]
    assert not verdict.allowed and not blocked[0].allowed and "too many Nodes are unhealthy" in blocked[0].reason
    unknown = check_guards(GuardContext(**{**context.__dict__, "nodes": None}))
    assert any(d.guard == "minHealthy" and not d.allowed and "unknown" in d.reason for d in unknown.decisions)


# ---------------------------------------------------------------- recovery


def test_a_node_cordoned_for_its_conditions_is_uncordoned_only_once_none_of_them_holds():
    sick = node("n1", ready="False", conditions={"MemoryPressure": "True", "DiskPressure": "False"})
    record = cordoned_for("rem-1/0/cordonDrain", sick)
    assert record == "rem-1/0/cordonDrain MemoryPressure=True,Ready=False"
    cordoned = NodeFact(name="n1", unschedulable=True, conditions=sick.conditions,
                        annotations={CORDONED_FOR_ANNOTATION: record})
    assert recovered(cordoned) == (False, "still MemoryPressure=True, Ready=False")
    half = NodeFact(name="n1", unschedulable=True, annotations={CORDONED_FOR_ANNOTATION: record},
                    conditions={"Ready": ("True", None), "MemoryPressure": ("True", None)})
    assert not recovered(half)[0]
    well = NodeFact(name="n1", unschedulable=True, annotations={CORDONED_FOR_ANNOTATION: record},
                    conditions={"Ready": ("True", None), "MemoryPressure": ("False", None)})
    assert recovered(well)[0]


def test_a_node_cordoned_while_healthy_or_uncordoned_by_a_human_is_left_alone():
    assert cordoned_for("k", node("n1")) is None, "an alert drained a healthy node: a human decides when it is back"
    back = NodeFact(name="n1", unschedulable=False, conditions={"Ready": ("True", None)},
                    annotations={CORDONED_FOR_ANNOTATION: "k Ready=False"})
    assert not recovered(back)[0]
    gone = NodeFact(name="n1", unschedulable=True, conditions={}, annotations={CORDONED_FOR_ANNOTATION: "k Ready=False"})
    assert recovered(gone) == (False, "still Ready missing"), "a Ready condition that vanished is not recovery"


# ---------------------------------------------------------------- the claim on a Node


def test_a_nodes_claim_is_one_lease_for_the_cluster_whichever_namespace_the_remediation_lives_in():
    n1 = ObjectRef(kind="Node", name="n1")
    assert lease_namespace(n1, "team-a", "remediator") == lease_namespace(n1, "team-b", "remediator") == "remediator"
    web = ObjectRef(kind="Deployment", namespace="shop", name="web")
    assert lease_namespace(web, "shop", "remediator") == "shop"


def test_a_claim_lease_in_another_namespace_names_its_holder_there_and_has_no_owner_the_collector_would_miss():
    decision = claims.decide(None, "uid-1", "rem-1", False, lease_name="remediator-target-node-n1",
                             namespace="remediator", target="Node/n1", now=NOW, duration=timedelta(minutes=2))
    body = claims.lease_body(decision, "Node/n1", None, holder_namespace="team-a")
    assert "ownerReferences" not in body["metadata"]
    view = claims.lease_view(body)
    assert view.holder_namespace == "team-a" and view.holder_name == "rem-1"
    beside = claims.lease_body(decision, "Node/n1", None, holder_namespace="remediator")
    assert beside["metadata"]["ownerReferences"][0]["uid"] == "uid-1"


# ---------------------------------------------------------------- the edge reads the watch-fed cache only


class RecordingIntake:
    def __init__(self):
        self.signals = []

    def firing(self, signal):
        self.signals.append(signal)
        return type("Result", (), {"outcome": "created"})()


def test_the_node_edge_sends_signals_from_the_watch_fed_cache_without_an_apiserver_call():
    from types import SimpleNamespace

    from remediator.controller import nodes as node_edge
    from remediator.controller.caches import Caches
    from remediator.controller.ingest import RunbookCache

    caches = Caches()
    caches.nodes.replace([
        {"metadata": {"name": "sick", "resourceVersion": "7"},
         "status": {"conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": ago(600)}]}},
        {"metadata": {"name": "well", "resourceVersion": "8"},
         "status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": ago(600)}]}}])
    caches.primed.set()
    runbooks = RunbookCache()
    entry = runbook("platform")
    runbooks.put("platform", entry.name, 1, entry.spec.wire())
    runbooks.put("elsewhere", entry.name, 1, entry.spec.wire())  # not served: sent nothing
    intake = RecordingIntake()
    ctx = SimpleNamespace(api=None, caches=caches, runbooks=runbooks, intake=intake,
                          serves=lambda namespace: namespace == "platform")  # api=None: any call would fail

    node_edge.look_once(ctx, NOW)

    assert [(s.labels["namespace"], s.labels["node"]) for s in intake.signals] == [("platform", "sick")]


def test_a_signal_that_cannot_be_sent_does_not_keep_a_recovered_node_cordoned(monkeypatch):
    from types import SimpleNamespace

    from remediator.actions import drain
    from remediator.controller import nodes as node_edge
    from remediator.controller.caches import Caches
    from remediator.controller.ingest import RunbookCache

    caches = Caches()
    caches.nodes.replace([{"metadata": {"name": "sick", "resourceVersion": "7"},
                           "status": {"conditions": [{"type": "Ready", "status": "False",
                                                      "lastTransitionTime": ago(600)}]}}])
    caches.primed.set()
    runbooks = RunbookCache()
    entry = runbook("platform")
    runbooks.put("platform", entry.name, 1, entry.spec.wire())
    looked_at = []
    monkeypatch.setattr(drain, "uncordon_recovered", lambda api, body: looked_at.append(body["metadata"]["name"]))

    def broken(*_):
        raise ValueError("a trigger the operator cannot read")
    monkeypatch.setattr(node_edge.node_signals, "node_signals", broken)
    ctx = SimpleNamespace(api=None, caches=caches, runbooks=runbooks, intake=RecordingIntake(),
                          serves=lambda namespace: True)

    node_edge.look_once(ctx, NOW)

    assert looked_at == ["sick"]
