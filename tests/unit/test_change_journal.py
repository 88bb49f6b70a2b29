"""The change journal (signals/changes.py) fed with objects as the apiserver returns them: no cluster, no I/O."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from remediator.api.models import (
    ObjectRef,
    ProbableCause,
    RemediationSpec,
    RemediationStatus,
    RunbookRef,
    Signal,
)
from remediator.approvals.messages import request_blocks
from remediator.controller import targets
from remediator.core.engine import engine
from remediator.signals.changes import ChangeJournal, describe_template_change, selected_pods, summarise_template
from remediator.core.durations import format_time

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def stamp(moment: datetime) -> str:
    return format_time(moment)


def template(image="web:1.4", env=None, volumes=None, annotations=None) -> dict:
    return {"metadata": {"labels": {"app": "web", "pod-template-hash": "abc"}, "annotations": annotations or {}},
            "spec": {"containers": [{"name": "app", "image": image, "env": env or []}],
                     "volumes": volumes or []}}


def replicaset(revision: int, created: datetime, tpl: dict, name=None, owner="web", history=None,
               updated: datetime | None = None) -> dict:
    annotations = {"deployment.kubernetes.io/revision": str(revision)}
    if history:
        annotations["deployment.kubernetes.io/revision-history"] = history
    return {"metadata": {"name": name or f"{owner}-{revision}", "namespace": "shop", "annotations": annotations,
                         "creationTimestamp": stamp(created),
                         "managedFields": [{"manager": "kube-controller-manager", "operation": "Update",
                                            "time": stamp(updated or created)}],
                         "ownerReferences": [{"kind": "Deployment", "name": owner, "controller": True}]},
            "spec": {"template": tpl}}


def test_a_new_revision_is_recorded_as_a_rollout_with_the_images_it_changed():
    journal = ChangeJournal()
    journal.observe_replicaset(replicaset(1, NOW - timedelta(days=2), template("web:1.4")), NOW)
    journal.observe_replicaset(replicaset(2, NOW - timedelta(minutes=3), template("web:1.5")), NOW)
    [change] = journal.changes("shop", {"Deployment/web"}, NOW)
    assert change.kind == "rollout" and change.revision == "2" and change.at == NOW - timedelta(minutes=3)
    assert change.what == "Deployment/web revision 2 rolled out: image web:1.4 → web:1.5"
    assert change.before != change.after


def test_the_first_revision_is_the_deployments_creation_and_not_a_change():
    journal = ChangeJournal()
    journal.observe_replicaset(replicaset(1, NOW - timedelta(minutes=1), template()), NOW)
    assert journal.changes("shop", {"Deployment/web"}, NOW) == []


def test_seeing_the_same_revision_again_records_nothing_new():
    journal = ChangeJournal()
    for _ in range(3):
        journal.observe_replicaset(replicaset(1, NOW - timedelta(hours=2), template("web:1.4")), NOW)
        journal.observe_replicaset(replicaset(2, NOW - timedelta(minutes=3), template("web:1.5")), NOW)
    assert len(journal.changes("shop", {"Deployment/web"}, NOW)) == 1


def test_a_rollback_to_an_earlier_template_leaves_no_rollout_to_blame():
    journal = ChangeJournal()
    journal.observe_replicaset(replicaset(1, NOW - timedelta(days=2), template("web:1.4")), NOW)
    journal.observe_replicaset(replicaset(2, NOW - timedelta(minutes=30), template("web:1.5")), NOW)
    journal.observe_replicaset(replicaset(3, NOW - timedelta(days=2), template("web:1.4"), name="web-1", history="1",
                                          updated=NOW - timedelta(minutes=2)), NOW)
    assert journal.changes("shop", {"Deployment/web"}, NOW) == [], \
        "revision 2 was undone, and rolling back the rollback would bring web:1.5 back"
    journal.observe_replicaset(replicaset(4, NOW - timedelta(minutes=1), template("web:1.6")), NOW)
    [change] = journal.changes("shop", {"Deployment/web"}, NOW)
    assert change.what == "Deployment/web revision 4 rolled out: image web:1.4 → web:1.6"


def test_changes_outside_the_window_are_dropped_and_each_object_keeps_a_bounded_number():
    journal = ChangeJournal(window=timedelta(minutes=30), per_object=3)
    journal.observe_replicaset(replicaset(1, NOW - timedelta(days=1), template("web:0")), NOW)
    journal.observe_replicaset(replicaset(2, NOW - timedelta(minutes=40), template("web:1")), NOW)
    assert journal.changes("shop", {"Deployment/web"}, NOW) == []
    for revision in range(3, 9):
        journal.observe_replicaset(replicaset(revision, NOW - timedelta(minutes=20 - revision),
                                              template(f"web:{revision}")), NOW)
    kept = journal.changes("shop", {"Deployment/web"}, NOW)
    assert [c.revision for c in kept] == ["6", "7", "8"]
    assert journal.changes("shop", {"Deployment/web"}, NOW + timedelta(minutes=25)) == []


def test_a_secret_reference_change_is_a_secret_change_named_never_valued():
    before = summarise_template(template(env=[{"name": "TOKEN", "valueFrom": {"secretKeyRef": {
        "name": "api-token-v1", "key": "token"}}}]))
    after = summarise_template(template(env=[{"name": "TOKEN", "valueFrom": {"secretKeyRef": {
        "name": "api-token-v2", "key": "token"}}}]))
    assert describe_template_change(before, after) == (
        "secretChange", "Secret refs +api-token-v2 -api-token-v1; env TOKEN")


def test_a_literal_env_value_is_kept_only_as_a_digest():
    summary = summarise_template(template(env=[{"name": "PASSWORD", "value": "hunter2-very-secret"}]))
    assert "hunter2-very-secret" not in repr(summary)
    kind, what = describe_template_change(summary, summarise_template(template(env=[
        {"name": "PASSWORD", "value": "other-value"}])))
    assert (kind, what) == ("rollout", "env PASSWORD")


def test_a_checksum_annotation_of_a_secret_is_a_secret_change_and_a_plain_restart_a_rollout():
    plain = summarise_template(template())
    checksum = summarise_template(template(annotations={"checksum/secret": "0f3c"}))
    restart = summarise_template(template(annotations={"kubectl.kubernetes.io/restartedAt": "2026-11-25T09:00:00Z"}))
    assert describe_template_change(plain, checksum) == ("secretChange", "annotation checksum/secret changed")
    assert describe_template_change(plain, restart) == ("rollout", "restarted")


def test_a_mounted_configmap_swapped_is_a_config_change():
    before = summarise_template(template(volumes=[{"name": "cfg", "configMap": {"name": "web-config-1"}}]))
    after = summarise_template(template(volumes=[{"name": "cfg", "configMap": {"name": "web-config-2"}}]))
    assert describe_template_change(before, after) == ("configChange", "ConfigMap refs +web-config-2 -web-config-1")
    assert after.config_maps == frozenset({"web-config-2"})


def test_an_image_change_with_a_secret_change_is_a_rollout():
    before = summarise_template(template("web:1", volumes=[{"name": "s", "secret": {"secretName": "a"}}]))
    after = summarise_template(template("web:2", volumes=[{"name": "s", "secret": {"secretName": "b"}}]))
    assert describe_template_change(before, after)[0] == "rollout"


def test_a_replica_change_of_a_known_deployment_is_a_scale_change():
    journal = ChangeJournal()
    dep = {"metadata": {"name": "web", "namespace": "shop"}, "spec": {"replicas": 2}}
    journal.observe_deployment(dep, NOW - timedelta(minutes=5))
    journal.observe_deployment(dep, NOW - timedelta(minutes=4))
    journal.observe_deployment({**dep, "spec": {"replicas": 5}}, NOW - timedelta(minutes=3))
    [change] = journal.changes("shop", {"Deployment/web"}, NOW)
    assert (change.kind, change.what) == ("scaleChange", "Deployment/web scaled 2 → 5")


def test_a_configmap_is_recorded_by_key_names_and_rebuilt_from_its_last_update():
    journal = ChangeJournal()
    meta = {"name": "web-config", "namespace": "shop", "creationTimestamp": stamp(NOW - timedelta(days=1)),
            "managedFields": [{"manager": "kubectl", "operation": "Update", "time": stamp(NOW - timedelta(minutes=7))}]}
    journal.observe_configmap({"metadata": meta, "data": {"mode": "fast"}}, NOW)
    [rebuilt] = journal.changes("shop", {"ConfigMap/web-config"}, NOW)
    assert rebuilt.at == NOW - timedelta(minutes=7) and rebuilt.kind == "configChange"
    rewritten = {**meta, "managedFields": [{"manager": "kubectl", "operation": "Update",
                                            "time": stamp(NOW - timedelta(seconds=30))}]}
    journal.observe_configmap({"metadata": rewritten, "data": {"mode": "slow-and-secretive"}}, NOW)
    live = max(journal.changes("shop", {"ConfigMap/web-config"}, NOW), key=lambda c: c.at)
    assert live.what == "ConfigMap/web-config changed keys mode" and "slow-and-secretive" not in repr(live)
    assert live.at == NOW - timedelta(seconds=30), "dated by the apiserver's write, not when it was seen"


def test_an_hpa_change_is_recorded_and_the_hpa_is_known_to_scale_its_target():
    journal = ChangeJournal()
    hpa = {"metadata": {"name": "web", "namespace": "shop", "creationTimestamp": stamp(NOW - timedelta(days=1))},
           "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 2, "maxReplicas": 10}}
    journal.observe_hpa(hpa, NOW - timedelta(minutes=9))
    journal.observe_hpa({**hpa, "spec": {**hpa["spec"], "maxReplicas": 3}}, NOW - timedelta(minutes=2))
    assert journal.hpas_for("shop", "Deployment/web") == {"HorizontalPodAutoscaler/web"}
    [change] = journal.changes("shop", {"HorizontalPodAutoscaler/web"}, NOW)
    assert change.what == "HorizontalPodAutoscaler/web changed: maxReplicas 10 → 3"


def test_a_node_cordoned_or_not_ready_is_a_node_change_found_cluster_wide():
    journal = ChangeJournal()
    node = {"metadata": {"name": "n1", "creationTimestamp": stamp(NOW - timedelta(days=3))},
            "spec": {}, "status": {"conditions": [{"type": "Ready", "status": "True",
                                                   "lastTransitionTime": stamp(NOW - timedelta(days=3))}]}}
    journal.observe_node(node, NOW - timedelta(minutes=10))
    journal.observe_node({**node, "spec": {"unschedulable": True}}, NOW - timedelta(minutes=1))
    [change] = journal.changes("shop", {"Node/n1"}, NOW)
    assert change.namespace is None and change.what == "Node/n1 unschedulable False → True"


def pending(probable) -> tuple[RemediationSpec, RemediationStatus]:
    spec = RemediationSpec(signal=Signal(source="alertmanager", name="HighErrorRate"),
                           runbook=RunbookRef(name="rb", namespace="shop"),
                           target=ObjectRef(kind="Deployment", namespace="shop", name="web"))
    return spec, RemediationStatus(probable_cause=probable)


def test_the_persisted_cause_is_the_kind_the_plan_uses_and_unknown_without_one():
    found = ProbableCause(kind="rollout", summary="Deployment/web revision 2 rolled out")
    assert engine.cause_kind(pending(found)[1]) == "rollout"
    assert engine.cause_kind(pending(None)[1]) is None


def test_the_approval_message_shows_the_probable_cause_and_its_evidence():
    found = ProbableCause.model_validate({
        "kind": "rollout", "summary": "Deployment/web revision 2 rolled out: image web:1.4 → web:1.5, 3m40s before",
        "changes": [{"kind": "rollout", "object": "Deployment/web", "at": "2026-11-25T09:56:20Z", "score": 100,
                     "what": "Deployment/web revision 2 rolled out: image web:1.4 → web:1.5"}]})
    spec, status = pending(found)
    text = "\n".join(b["text"]["text"] for b in request_blocks("shop", "r1", spec, status) if b.get("text")
                     and b["type"] == "section")
    assert "*Probable cause: rollout*" in text
    assert "• 100/100 Deployment/web revision 2 rolled out: image web:1.4 → web:1.5 at 2026-11-25T09:56:20Z" in text


def test_a_ready_node_seen_first_is_no_change_however_recent_its_ready_transition():
    journal = ChangeJournal()
    node = {"metadata": {"name": "n1", "creationTimestamp": stamp(NOW - timedelta(minutes=30))}, "spec": {},
            "status": {"conditions": [{"type": "Ready", "status": "True",
                                       "lastTransitionTime": stamp(NOW - timedelta(seconds=5))}]}}
    journal.observe_node(node, NOW)
    assert journal.changes(None, {"Node/n1"}, NOW) == []
    down = {**node, "metadata": {**node["metadata"], "name": "n2"},
            "status": {"conditions": [{"type": "Ready", "status": "False",
                                       "lastTransitionTime": stamp(NOW - timedelta(minutes=4))}]}}
    journal.observe_node(down, NOW)
    [change] = journal.changes(None, {"Node/n2"}, NOW)
    assert (change.what, change.at) == ("Node/n2 Ready=False", NOW - timedelta(minutes=4))


def controller_revision(revision: int, created: datetime, tpl: dict, owner="db", kind="StatefulSet",
                        name=None) -> dict:
    return {"metadata": {"name": name or f"{owner}-{revision}", "namespace": "shop",
                         "creationTimestamp": stamp(created),
                         "ownerReferences": [{"kind": kind, "name": owner, "controller": True}]},
            "data": {"spec": {"template": {**tpl, "$patch": "replace"}}}, "revision": revision}


def test_a_statefulset_or_daemonset_revision_is_a_rollout_from_its_controller_revisions():
    for kind in ("StatefulSet", "DaemonSet"):
        journal = ChangeJournal()
        journal.observe_controllerrevision(controller_revision(1, NOW - timedelta(days=1), template("db:1"),
                                                               kind=kind), NOW)
        journal.observe_controllerrevision(controller_revision(2, NOW - timedelta(minutes=4), template("db:2"),
                                                               kind=kind), NOW)
        [change] = journal.changes("shop", {f"{kind}/db"}, NOW)
        assert change.kind == "rollout" and change.revision == "2"
        assert change.what == f"{kind}/db revision 2 rolled out: image db:1 → db:2"


def test_a_controller_revision_brought_back_by_a_rollback_leaves_no_rollout_to_blame():
    bad = controller_revision(2, NOW - timedelta(minutes=20), template("db:2"))
    watched, primed = ChangeJournal(), ChangeJournal()
    # watched: revision 1's object comes back under number 3
    watched.observe_controllerrevision(controller_revision(1, NOW - timedelta(days=1), template("db:1")), NOW)
    watched.observe_controllerrevision(bad, NOW)
    watched.observe_controllerrevision(controller_revision(3, NOW - timedelta(days=1), template("db:1"),
                                                           name="db-1"), NOW)
    # rebuilt at start: only revisions 2 and 3 are there, and 3 is older than 2
    primed.observe_controllerrevision(bad, NOW)
    primed.observe_controllerrevision(controller_revision(3, NOW - timedelta(days=1), template("db:1"),
                                                          name="db-1"), NOW)
    assert watched.changes("shop", {"StatefulSet/db"}, NOW) == []
    assert primed.changes("shop", {"StatefulSet/db"}, NOW) == []


def test_an_argo_rollouts_replicasets_are_its_revisions():
    journal = ChangeJournal()
    for revision, image, created in ((1, "web:1", NOW - timedelta(days=1)), (2, "web:2", NOW - timedelta(minutes=2))):
        rs = replicaset(revision, created, template(image))
        rs["metadata"]["annotations"] = {"rollout.argoproj.io/revision": str(revision)}
        rs["metadata"]["ownerReferences"] = [{"kind": "Rollout", "name": "web", "controller": True}]
        journal.observe_replicaset(rs, NOW)
    [change] = journal.changes("shop", {"Rollout/web"}, NOW)
    assert change.what == "Rollout/web revision 2 rolled out: image web:1 → web:2"


class PodLister:
    """The pod LIST of a CoreV1Api, answering `items` as JSON and remembering each selector asked."""

    def __init__(self, items: list[dict]):
        self.items, self.selectors = items, []

    def list_namespaced_pod(self, namespace, label_selector=None, _preload_content=True):
        self.selectors.append(label_selector)
        return SimpleNamespace(data=json.dumps({"items": self.items}).encode())


def pod_on(name: str, labels: dict, node: str) -> dict:
    return {"metadata": {"name": name, "labels": labels}, "spec": {"nodeName": node}}


def test_the_cause_reads_the_targets_pods_from_the_watch_that_follows_their_namespace_without_a_list():
    lister = PodLister([])
    watched = [pod_on("web-1", {"app": "web", "pod-template-hash": "abc"}, "node-a"),
               pod_on("db-1", {"app": "db"}, "node-b"), pod_on("bare", {}, "node-c")]

    found = selected_pods(lister, "shop", {"matchLabels": {"app": "web"}}, lambda namespace, labels: watched)

    assert [p["spec"]["nodeName"] for p in found] == ["node-a"] and lister.selectors == []


def test_the_cause_lists_the_targets_pods_by_selector_where_no_watch_follows_the_namespace():
    lister = PodLister([pod_on("web-1", {"app": "web", "tier": "front"}, "node-a")])

    found = selected_pods(lister, "shop", {"matchLabels": {"app": "web", "tier": "front"}},
                          lambda namespace, labels: None)

    assert [p["metadata"]["name"] for p in found] == ["web-1"] and lister.selectors == ["app=web,tier=front"]


def test_the_cause_lookup_in_a_namespace_no_probe_watches_lists_by_selector_and_starts_no_watch(monkeypatch):
    watches = targets.TargetWatches(api=None)
    monkeypatch.setattr(targets, "lister", lambda *a: pytest.fail("a whole-namespace LIST to start a watch"))
    lister = PodLister([pod_on("web-1", {"app": "web"}, "node-a")])

    found = selected_pods(lister, "big", {"matchLabels": {"app": "web"}}, watches.pods_if_watched)

    assert [p["metadata"]["name"] for p in found] == ["web-1"] and lister.selectors == ["app=web"]
    assert watches.watched() == []


def test_the_cause_lookup_reads_the_copies_of_a_namespace_a_probe_already_watches(monkeypatch):
    def lister(api, kind, namespace):
        return lambda **kw: SimpleNamespace(data=json.dumps({"metadata": {"resourceVersion": "1"}, "items": [
            pod_on("web-1", {"app": "web"}, "node-a"), pod_on("db-1", {"app": "db"}, "node-b")]}).encode())
    monkeypatch.setattr(targets, "lister", lister)
    monkeypatch.setattr(targets.threading, "Thread", lambda **kw: SimpleNamespace(start=lambda: None))
    watches = targets.TargetWatches(api=None)
    assert len(watches.pods("big")) == 2  # a probe's (or the guards') watch of the namespace
    lister_calls = PodLister([])

    found = selected_pods(lister_calls, "big", {"matchLabels": {"app": "web"}}, watches.pods_if_watched)

    assert [p["metadata"]["name"] for p in found] == ["web-1"] and lister_calls.selectors == []


def cause_lookup_lists(monkeypatch, journal: ChangeJournal, deployment_revision: str, sets: list[dict],
                       kind: str = "Deployment", uid: str = "") -> list:
    """The revision LISTs (label selectors) a cause lookup of `kind` shop/web, annotated with
    `deployment_revision`, makes."""
    from remediator.signals import changes
    listed = []

    def as_json(call, namespace, **kw):
        listed.append(kw.get("label_selector"))
        return {"items": sets}
    monkeypatch.setattr(changes, "as_json", as_json)
    monkeypatch.setattr(changes.client, "AppsV1Api", lambda api: SimpleNamespace(
        list_namespaced_replica_set=None, list_namespaced_controller_revision=lambda namespace, label_selector: (
            listed.append(label_selector), SimpleNamespace(items=[]))[1]))
    read = {"kind": kind, "metadata": {"name": "web", "namespace": "shop", "resourceVersion": "9", "uid": uid,
                                       "annotations": {"deployment.kubernetes.io/revision": deployment_revision}},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template()}}
    spec = RemediationSpec(signal=Signal(source="alertmanager", name="HighErrorRate"),
                           runbook=RunbookRef(name="restart", namespace="shop"),
                           target=ObjectRef(kind=kind, name="web", namespace="shop"))
    changes.target_of(None, journal, spec, watched_pods=lambda namespace, labels: [], read=read)
    return listed


def test_the_cause_lookup_lists_no_replicasets_when_the_journal_holds_the_deployments_current_revision(monkeypatch):
    journal = ChangeJournal()
    journal.observe_replicaset(replicaset(1, NOW - timedelta(days=2), template("web:1.4")), NOW)
    journal.observe_replicaset(replicaset(2, NOW - timedelta(minutes=3), template("web:1.5")), NOW)

    assert cause_lookup_lists(monkeypatch, journal, "2", []) == []


def test_the_cause_lookup_lists_the_replicasets_of_a_revision_the_watch_has_not_brought_yet(monkeypatch):
    journal = ChangeJournal()
    journal.observe_replicaset(replicaset(1, NOW - timedelta(days=2), template("web:1.4")), NOW)
    newer = replicaset(2, datetime.now(UTC) - timedelta(minutes=3), template("web:1.5"))

    assert cause_lookup_lists(monkeypatch, journal, "2", [newer]) == ["app=web"]
    assert [c.revision for c in journal.changes("shop", {"Deployment/web"}, datetime.now(UTC))] == ["2"]
    assert cause_lookup_lists(monkeypatch, journal, "2", [newer]) == [], "the first lookup's LIST taught the journal"


def test_the_cause_lookup_lists_the_replicasets_of_a_deployment_without_a_revision_annotation(monkeypatch):
    journal = ChangeJournal()
    journal.observe_replicaset(replicaset(1, NOW - timedelta(days=2), template("web:1.4")), NOW)

    assert cause_lookup_lists(monkeypatch, journal, "", []) == ["app=web"]


def test_the_cause_lookup_lists_a_statefulsets_controller_revisions_each_time(monkeypatch):
    assert cause_lookup_lists(monkeypatch, ChangeJournal(), "1", [], kind="StatefulSet") == ["app=web"]


def owned_by(rs: dict, uid: str) -> dict:
    rs["metadata"]["ownerReferences"] = [{**ref, "uid": uid} for ref in rs["metadata"]["ownerReferences"]]
    return rs


def test_a_deployment_made_again_under_its_name_numbers_its_rollouts_anew(monkeypatch):
    journal = ChangeJournal()
    for revision in (1, 2, 3):
        journal.observe_replicaset(owned_by(replicaset(revision, NOW - timedelta(days=4 - revision),
                                                       template(f"web:1.{revision}"), name=f"old-{revision}"),
                                            "uid-old"), NOW)
    journal.observe_replicaset(owned_by(replicaset(1, NOW - timedelta(minutes=9), template("web:2.0")), "uid-new"),
                               NOW)
    assert cause_lookup_lists(monkeypatch, journal, "2", [], uid="uid-new") == ["app=web"], \
        "revision 2 of the old Deployment is not the new one's"

    journal.observe_replicaset(owned_by(replicaset(2, NOW - timedelta(minutes=3), template("web:2.1")), "uid-new"),
                               NOW)

    assert [c.what for c in journal.changes("shop", {"Deployment/web"}, NOW) if c.revision == "2"] == [
        "Deployment/web revision 2 rolled out: image web:2.0 → web:2.1"]
    assert cause_lookup_lists(monkeypatch, journal, "2", [], uid="uid-new") == []


def test_a_replicaset_on_its_way_out_is_no_revision():
    journal = ChangeJournal()
    journal.observe_replicaset(replicaset(1, NOW - timedelta(days=2), template("web:1.4")), NOW)
    leaving = replicaset(2, NOW - timedelta(minutes=3), template("web:1.5"))
    leaving["metadata"]["deletionTimestamp"] = stamp(NOW)
    journal.observe_replicaset(leaving, NOW)
    assert journal.changes("shop", {"Deployment/web"}, NOW) == []


def test_a_replicaset_that_names_a_deployment_without_being_its_controllers_is_no_revision_of_it():
    journal = ChangeJournal()
    journal.observe_replicaset(replicaset(1, NOW - timedelta(days=2), template("web:1.4")), NOW)
    forged = replicaset(2, NOW - timedelta(minutes=3), template("evil:1"))
    forged["metadata"]["ownerReferences"] = [{"kind": "Deployment", "name": "web"}]  # anyone may write this
    journal.observe_replicaset(forged, NOW)
    assert journal.changes("shop", {"Deployment/web"}, NOW) == []


def test_a_pods_target_names_only_the_workload_of_its_controlling_replicaset(monkeypatch):
    from remediator.signals import changes

    def owner(kind: str, name: str, controller: bool) -> dict:
        return {"kind": kind, "name": name, "controller": controller}
    pod = {"metadata": {"name": "web-1", "namespace": "shop", "ownerReferences": [
        owner("ReplicaSet", "planted", False), owner("ReplicaSet", "web-7d9", True)]}, "spec": {"containers": []}}
    sets = {"planted": [SimpleNamespace(kind="Deployment", name="billing", controller=True)],
            "web-7d9": [SimpleNamespace(kind="Deployment", name="web", controller=True),
                        SimpleNamespace(kind="Deployment", name="other", controller=False)]}
    read_sets = []

    def read_replica_set(name, namespace):
        read_sets.append(name)
        return SimpleNamespace(metadata=SimpleNamespace(owner_references=sets[name]))
    monkeypatch.setattr(changes, "as_json", lambda call, name, namespace: pod)
    monkeypatch.setattr(changes.client, "CoreV1Api", lambda api: SimpleNamespace(read_namespaced_pod=None))
    monkeypatch.setattr(changes.client, "AppsV1Api", lambda api: SimpleNamespace(
        read_namespaced_replica_set=read_replica_set))
    spec = RemediationSpec(signal=Signal(source="alertmanager", name="PodCrashLooping"),
                           runbook=RunbookRef(name="restart", namespace="shop"),
                           target=ObjectRef(kind="Pod", name="web-1", namespace="shop"))

    target = changes.target_of(None, ChangeJournal(), spec)

    assert read_sets == ["web-7d9"] and target.references == frozenset({"Deployment/web"})
