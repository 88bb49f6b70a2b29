"""Verification probes read the target and its pods from watch-fed copies (controller/targets.py), and only
where a copy is as new as the step's action."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings, strategies as st
from kubernetes import client

from remediator.api.models import ObjectRef, RolloutCompleteCheck
from remediator.controller import targets
from remediator.core.pod_health import pod_observation, pod_observation_of, selects
from remediator.verification import probes, verdicts
from remediator.verification.observations import Observation

KEY = "rem-a.0.restartrollout"
POD = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "web-1", "namespace": "shop", "uid": "u1", "labels": {"app": "web", "pod-template-hash": "5d8f"},
                 "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d8f", "uid": "rs1",
                                      "controller": True}]},
    "spec": {"nodeName": "node-a", "containers": [{"name": "app", "image": "web:1"}]},
    "status": {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "False"}],
        "containerStatuses": [{
            "name": "app", "image": "web:1", "imageID": "", "ready": False, "restartCount": 3,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}},
        }],
    },
}


def deployment(generation: int, observed: int, keys: str | None, updated: int = 2) -> dict:
    meta = {"name": "web", "namespace": "shop", "generation": generation, "uid": "d1"}
    if keys is not None:
        meta["annotations"] = {"remediator.dev/action-keys": keys}
    return {"metadata": meta, "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}},
            "status": {"observedGeneration": observed, "replicas": 2, "updatedReplicas": updated,
                       "readyReplicas": 2, "availableReplicas": 2}}


class NoApiserver:
    """An ApiClient stand-in that fails the test if anything reaches the apiserver."""

    def param_serialize(self, **kwargs):
        raise AssertionError(f"the probe asked the apiserver: {kwargs.get('resource_path')}")


class AnsweringApiserver:
    """Answers GETs from a dict of path -> JSON, and counts them."""

    def __init__(self, answers: dict[str, dict]):
        self.answers, self.asked = answers, []

    def param_serialize(self, method, resource_path, **_):
        self.asked.append(resource_path)
        return (resource_path,)

    def call_api(self, path):
        body = json.dumps(self.answers[path]).encode()

        class Response:
            status = 200

            def read(self):
                return body
        return Response()


def watches_holding(*objects: tuple[str, dict]) -> targets.TargetWatches:
    """TargetWatches whose copies of namespace `shop` are already primed with these (kind, object) pairs."""
    watches = targets.TargetWatches(api=None)
    watched = watches._namespaces["shop"] = targets.Namespace()
    for kind in ("Deployment", "Pod"):
        held = targets.Objects(targets.compact_pod if kind == "Pod" else targets.compact_workload)
        held.replace([held.compact(obj) for k, obj in objects if k == kind])
        watched.kinds[kind] = held
    return watches


def test_a_pod_read_as_json_is_observed_as_the_client_model_of_it_is():
    model = client.ApiClient()._ApiClient__deserialize(POD, "V1Pod")
    assert pod_observation_of(POD) == pod_observation(model)
    assert pod_observation_of(POD).oom_killed_containers == ("app",)
    assert (pod_observation_of(POD).owner, pod_observation_of(POD).deployment) == ("ReplicaSet/web-5d8f", "web")


@pytest.mark.parametrize("selector, labels, selected", [
    ({"matchLabels": {"app": "web"}}, {"app": "web", "tier": "1"}, True),
    ({"matchLabels": {"app": "web"}}, {"app": "api"}, False),
    ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["1", "2"]}]}, {"tier": "2"}, True),
    ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["1"]}]}, {}, False),
    ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["1"]}]}, {}, True),
    ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["1"]}]}, {"tier": "1"}, False),
    ({"matchExpressions": [{"key": "canary", "operator": "Exists"}]}, {"canary": ""}, True),
    ({"matchExpressions": [{"key": "canary", "operator": "DoesNotExist"}]}, {"canary": ""}, False),
    ({}, {"app": "web"}, False),
    ({"matchExpressions": [{"key": "app", "operator": "Like", "values": ["w"]}]}, {"app": "web"}, False),
])
def test_a_label_selector_selects_the_pods_the_apiserver_would(selector, labels, selected):
    assert selects(selector, labels) is selected


def test_a_watched_workload_from_before_the_action_is_not_trusted_and_the_probe_reads_the_apiserver():
    # the copy still shows the old generation fully rolled out: judged on it, the restart would pass at once
    stale = watches_holding(("Deployment", deployment(4, 4, keys="older-key")), ("Pod", POD))
    fresh = deployment(5, 4, keys=f"older-key,{KEY}", updated=0)
    api = AnsweringApiserver({"/apis/apps/v1/namespaces/shop/deployments/web": fresh})
    seen = probes.observe(api, ObjectRef(kind="Deployment", name="web", namespace="shop"), watched=stale, key=KEY)
    assert api.asked == ["/apis/apps/v1/namespaces/shop/deployments/web"]
    assert (seen.rollout.generation, seen.rollout.observed_generation) == (5, 4)
    now = datetime.now(UTC)
    judged = verdicts.rollout_complete(RolloutCompleteCheck(), seen, now - timedelta(seconds=5), timedelta(minutes=2),
                                       now)
    assert judged.state != "passed"


def test_once_the_watched_copy_carries_the_step_key_a_probe_asks_the_apiserver_nothing():
    watches = watches_holding(("Deployment", deployment(5, 5, keys=f"older-key,{KEY}")), ("Pod", POD),
                              ("Pod", {**POD, "metadata": {**POD["metadata"], "name": "other", "labels": {}}}),
                              ("Pod", {**POD, "metadata": {**POD["metadata"], "name": "leaving",
                                                           "deletionTimestamp": "2026-01-01T00:00:00Z"}}))
    seen = probes.observe(NoApiserver(), ObjectRef(kind="Deployment", name="web", namespace="shop"),
                          at=datetime.now(UTC), watched=watches, key=KEY)
    assert isinstance(seen, Observation) and seen.exists
    assert (seen.rollout.generation, seen.rollout.observed_generation, seen.rollout.updated) == (5, 5, 2)
    assert [p.name for p in seen.pods] == ["web-1"]  # selected, and not the one being deleted


def test_a_probe_without_a_key_never_trusts_a_watched_workload():
    watches = watches_holding(("Deployment", deployment(5, 5, keys=KEY)))
    assert watches.workload("Deployment", "shop", "web", None) is None
    assert watches.workload("Deployment", "shop", "web", KEY) is not None


def test_the_watched_copies_keep_only_what_the_probes_read():
    big = {**POD, "metadata": {**POD["metadata"], "managedFields": [{"x": "y" * 1000}],
                               "annotations": {"huge": "z" * 10000}}}
    kept = targets.compact_pod(big)
    assert "managedFields" not in kept["metadata"] and "annotations" not in kept["metadata"]
    assert "containers" not in kept["spec"] and pod_observation_of(kept) == pod_observation_of(POD)


def test_namespaces_idle_for_long_stop_being_watched_and_their_watches_are_told_to_stop():
    watches = watches_holding()
    watched = watches._namespaces["shop"]
    watched.used -= targets.IDLE_SECONDS + 1
    watches._drop_idle(watched.used + targets.IDLE_SECONDS + 2)
    assert watches.watched() == [] and watched.stopped.is_set()


def test_copies_whose_watch_broke_are_not_read_until_the_watch_hears_again():
    watches = watches_holding(("Pod", POD))
    held = watches._namespaces["shop"].kinds["Pod"]
    held.live = False  # the watch failed: pods may have changed unseen
    assert watches.pods("shop") is None
    held.observe("MODIFIED", POD)
    assert [p["metadata"]["name"] for p in watches.pods("shop")] == ["web-1"]


def test_a_broken_watch_marks_its_copies_not_live(monkeypatch):
    held = targets.Objects(targets.compact_pod)
    feed = targets.WatchedFeed("pods/shop", lambda **kw: None, held.replace, held.observe, objects=held)

    def dropped(self, stopped):
        raise ConnectionError("connection reset")
    monkeypatch.setattr(targets.Feed, "_watch_once", dropped)
    with pytest.raises(ConnectionError):
        feed._watch_once(None)
    assert held.live is False


class Listed:
    def __init__(self, items):
        self.data = json.dumps({"metadata": {"resourceVersion": "7"}, "items": items}).encode()


def test_a_namespace_with_more_pods_than_the_bound_is_not_held_and_probes_list_as_before(monkeypatch):
    monkeypatch.setattr(targets, "MAX_OBJECTS", 3)
    many = [{**POD, "metadata": {**POD["metadata"], "name": f"web-{i}"}} for i in range(4)]
    monkeypatch.setattr(targets, "lister", lambda api, kind, namespace: lambda **kw: Listed(many))
    watches = targets.TargetWatches(api=None)
    assert watches.pods("shop") is None
    assert "Pod" not in watches._namespaces["shop"].kinds, "nothing held, and no watch started"
    assert watches.pods("shop") is None, "and not listed again at once"


def test_no_new_namespace_is_watched_once_the_copies_hold_the_bound(monkeypatch):
    monkeypatch.setattr(targets, "MAX_HELD", 1)
    watches = watches_holding(("Pod", POD))
    monkeypatch.setattr(targets, "lister", lambda api, kind, namespace: pytest.fail("listed past the bound"))
    assert watches.pods("other") is None
    assert watches.pods("shop") is not None, "what is held is still read"


LABELS = st.dictionaries(st.sampled_from(["app", "tier", "pod-template-hash"]), st.sampled_from(["web", "db", "1"]),
                         max_size=3)
EVENTS = st.lists(st.tuples(st.sampled_from(["ADDED", "MODIFIED", "DELETED"]), st.sampled_from(["a", "b", "c", "d"]),
                            LABELS), max_size=30)


@settings(max_examples=200, deadline=None)
@given(listed=st.dictionaries(st.sampled_from(["a", "b", "c"]), LABELS), events=EVENTS, wanted=LABELS)
def test_the_label_index_finds_the_pods_a_scan_of_the_namespace_would_after_any_events(listed, events, wanted):
    def pod(name: str, labels: dict) -> dict:
        return {**POD, "metadata": {**POD["metadata"], "name": name, "labels": labels}}
    held = targets.Objects(targets.compact_pod)
    held.replace([held.compact(pod(name, labels)) for name, labels in listed.items()])
    for event_type, name, labels in events:
        held.observe(event_type, pod(name, labels))
    scanned = sorted(p["metadata"]["name"] for p in held.items()
                     if all(p["metadata"].get("labels", {}).get(k) == v for k, v in wanted.items()))
    found = [p["metadata"]["name"] for p in held.items(wanted)]
    assert sorted(found) == scanned and (not wanted or found == scanned), "by name, as a LIST orders them"


def test_a_relabelled_pod_leaves_the_selection_of_its_old_labels():
    watches = watches_holding(("Pod", POD))
    held = watches._namespaces["shop"].kinds["Pod"]
    assert [p["metadata"]["name"] for p in watches.pods("shop", {"app": "web"})] == ["web-1"]
    held.observe("MODIFIED", {**POD, "metadata": {**POD["metadata"], "labels": {"app": "api"}}})
    assert watches.pods("shop", {"app": "web"}) == [] and len(watches.pods("shop", {"app": "api"})) == 1
    held.observe("DELETED", POD)
    assert watches.pods("shop", {"app": "api"}) == [] and held._by_label == {}, "nothing left behind"
    assert watches.pods("shop", {"app": ["web"]}) == [], "a label value that is not a string selects none"
    held.observe("ADDED", {**POD, "metadata": {**POD["metadata"], "labels": {"app": ["web"], "tier": "1"}}})
    assert [p["metadata"]["name"] for p in watches.pods("shop", {"tier": "1"})] == ["web-1"], \
        "a malformed label is left out of the index, the pod is not"
