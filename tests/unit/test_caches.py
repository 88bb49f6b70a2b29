"""The watch-fed caches: what the index hands the guards, and how the caches follow LIST + watch events."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

from remediator.api.models import CircuitBreaker, Guard, ObjectRef, RemediationPolicySpec, RunbookRef
from remediator.controller import guard_facts
from remediator.controller.caches import PAGE, Feed, guard_fields, NamespaceLabels, PolicyCache, RemediationIndex
from remediator.controller.ingest import RunbookCache
from remediator.core.plan import guards
from remediator.core.plan.guard_inputs import past_remediation
from remediator.records.metrics import request_labels

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
TERMINAL = ["Succeeded", "Failed", "Escalated", "Skipped", "Cancelled"]


def stamp(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def body(name: str, namespace: str = "shop", runbook: str = "restart", target: str = "web", phase: str = "Pending",
         started: datetime = NOW, finished: datetime | None = None, acted: bool = True) -> dict:
    status = {"phase": phase, "startedAt": stamp(started)}
    if finished:
        status["finishedAt"] = stamp(finished)
    if acted:
        status["steps"] = [{"phase": "Succeeded" if phase == "Succeeded" else "Failed"}]
    return {"metadata": {"name": name, "namespace": namespace, "creationTimestamp": stamp(started)},
            "spec": {"runbook": {"name": runbook, "namespace": namespace},
                     "target": {"kind": "Deployment", "namespace": namespace, "name": target}},
            "status": status}


def names(history) -> set[str]:
    return {p.name for p in history}


def test_the_guards_get_open_ones_the_targets_own_and_recent_ones_but_not_old_ones_of_other_targets():
    index = RemediationIndex()
    index.replace([
        body("open-elsewhere", namespace="other", target="api", phase="Acting", started=NOW - timedelta(days=9)),
        body("old-same-target", phase="Succeeded", started=NOW - timedelta(days=5),
             finished=NOW - timedelta(days=5)),
        body("recent-elsewhere", target="db", phase="Failed", started=NOW - timedelta(minutes=50),
             finished=NOW - timedelta(minutes=40)),
        body("old-elsewhere", target="db", phase="Failed", started=NOW - timedelta(days=3),
             finished=NOW - timedelta(days=3)),
    ])
    got = index.for_guards("Deployment/shop/web", NOW - timedelta(hours=1))
    assert names(got) == {"open-elsewhere", "old-same-target", "recent-elsewhere"}


def test_an_update_moves_a_remediation_out_of_the_open_ones_and_a_deletion_drops_it():
    index = RemediationIndex()
    index.observe("ADDED", body("a", phase="Acting"))
    assert names(index.open()) == {"a"}
    index.observe("MODIFIED", body("a", phase="Succeeded", finished=NOW))
    assert index.open() == [] and names(index.of_target("Deployment/shop/web")) == {"a"}
    assert [p.phase for p in index.in_namespace("shop")] == ["Succeeded"]
    index.observe("DELETED", body("a", phase="Succeeded", finished=NOW))
    assert len(index) == 0 and index.of_target("Deployment/shop/web") == []
    assert index.for_guards("Deployment/shop/web", NOW - timedelta(days=365)) == []


def test_a_finished_time_moves_the_entry_in_the_time_index():
    index = RemediationIndex()
    index.observe("ADDED", body("a", target="db", phase="Acting", started=NOW - timedelta(hours=5)))
    index.observe("MODIFIED", body("a", target="db", phase="Failed", started=NOW - timedelta(hours=5),
                                   finished=NOW - timedelta(minutes=5)))
    assert names(index.for_guards("Deployment/shop/web", NOW - timedelta(hours=1))) == {"a"}
    assert index.for_guards("Deployment/shop/web", NOW - timedelta(minutes=1)) == []


def random_history(rng: random.Random, count: int) -> list[dict]:
    out = []
    for i in range(count):
        phase = rng.choice(["Acting", "Verifying", "Pending", *TERMINAL * 3])
        started = NOW - timedelta(minutes=rng.randint(0, 60 * 24 * 30))
        finished = started + timedelta(minutes=rng.randint(0, 30)) if phase in TERMINAL else None
        out.append(body(f"r{i}", namespace=rng.choice(["shop", "pay"]), runbook=rng.choice(["restart", "rollback"]),
                        target=rng.choice(["web", "api", "db", "cache"]), phase=phase, started=started,
                        finished=finished, acted=rng.random() < 0.7))
    return out


def test_every_guard_decides_the_same_from_the_index_as_from_the_whole_history():
    rng = random.Random(20)
    policy = RemediationPolicySpec.model_validate({
        "circuitBreaker": {"failures": 3, "window": "6h"}, "stormHoldoff": {"targets": 4, "window": "2h"},
        "concurrency": {"maxActive": 5, "maxPerNamespace": 2}})
    for _ in range(30):
        history = random_history(rng, 300)
        index = RemediationIndex()
        index.replace(history)
        for namespace in ("shop", "pay"):
            for target in ("web", "db"):
                ref = ObjectRef(kind="Deployment", namespace=namespace, name=target)
                since = NOW - guard_facts.look_back(policy)

                def verdict(past):
                    return guards.check_guards(guards.GuardContext(
                        now=NOW, runbook=RunbookRef(name="restart", namespace=namespace), guard=Guard(cooldown="3d"),
                        policy=policy, target=ref, history=past, action="rolloutRestart", target_replicas=3,
                        pods_touched=1, remediation_name="r0"))
                whole = verdict([past_remediation(o) for o in history])
                assert verdict(index.for_guards(guards.target_key(ref), since)) == whole


def test_the_look_back_is_the_longest_guard_window_and_skips_an_unreadable_one():
    wide = RemediationPolicySpec.model_validate({"circuitBreaker": {"window": "12h"},
                                                 "stormHoldoff": {"window": "90m"}})
    assert guard_facts.look_back(wide) == timedelta(hours=12)
    assert guard_facts.look_back(None) >= guards.RATE_WINDOW
    unreadable = RemediationPolicySpec().model_copy(update={
        "circuit_breaker": CircuitBreaker.model_construct(failures=3, window="soon")})
    assert guard_facts.look_back(unreadable) >= guards.RATE_WINDOW


def test_a_remediation_is_held_as_the_fields_the_guards_read_and_they_judge_it_the_same():
    whole = body("r", phase="Failed", started=NOW - timedelta(minutes=3), finished=NOW)
    whole["status"]["timeline"] = [{"at": stamp(NOW), "kind": "Note", "message": "x" * 4000}]
    whole["spec"]["signal"] = {"source": "manual", "name": "n", "labels": {"a": "b" * 1000}}
    kept = guard_fields(whole)
    assert past_remediation(kept) == past_remediation(whole)
    assert len(json.dumps(kept)) < 500 < len(json.dumps(whole))


def test_the_index_holds_one_copy_of_a_runbook_key_target_key_and_phase_and_forgets_it_with_the_last_holder():
    index = RemediationIndex()
    for name in "ab":
        index.observe("ADDED", json.loads(json.dumps(body(name, phase="Succeeded"))))
    first, second = index.of_target("Deployment/shop/web")
    assert first.runbook_key is second.runbook_key and first.target_key is second.target_key
    assert first.phase is second.phase
    for name in "ab":
        index.observe("DELETED", body(name))
    assert len(index) == 0 and len(index._strings) == 0, "a deleted tenant's keys are not kept"


def test_the_index_hands_the_sweep_each_ended_remediation_at_the_version_it_saw_and_whether_it_may_go():
    index = RemediationIndex()
    ended = NOW - timedelta(days=40)

    def version(obj: dict, rv: str, **meta) -> dict:
        obj["metadata"].update(resourceVersion=rv, **meta)
        return obj
    index.replace([guard_fields(version(body("open", phase="Acting"), "1")),
                   guard_fields(version(body("unfolded", phase="Failed", finished=ended), "2"))])
    folded = body("folded", phase="Succeeded", started=ended, finished=ended)
    folded["status"]["foldedIntoRunbook"] = True
    index.observe("ADDED", version(folded, "3"))
    owed = body("owed", phase="Escalated", finished=ended)  # its signal's end known, not yet recorded
    owed["status"].update(foldedIntoRunbook=True, signalResolvedAt=stamp(ended))
    index.observe("ADDED", version(owed, "4"))
    going = body("going", phase="Succeeded", finished=ended)
    going["status"]["foldedIntoRunbook"] = True
    index.observe("MODIFIED", version(going, "5", deletionTimestamp=stamp(NOW)))
    seen = {c.name: (c.resource_version, c.folded, c.deleting, c.finished_at) for c in index.ended()}
    assert seen == {"unfolded": ("2", False, False, ended), "folded": ("3", True, False, ended),
                    "owed": ("4", True, False, ended), "going": ("5", True, True, ended)}, "open ones are not ended"
    assert index.unfinished() == ([("shop", "open", "Acting")], [("shop", "folded"), ("shop", "going"),
                                                                 ("shop", "owed"), ("shop", "unfolded")]), \
        "a folded Succeeded one owes its end (no restoredAt), and an owed end is work for a replica taking over"
    index.observe("MODIFIED", version(folded, "9"))
    index.observe("DELETED", going)
    assert {c.name: c.resource_version for c in index.ended()} == {"unfolded": "2", "folded": "9", "owed": "4"}


def test_a_sweep_judges_the_index_and_lists_no_remediation(monkeypatch):
    from kubernetes.client.rest import ApiException

    from remediator.controller import retention
    from remediator.controller.caches import Caches
    from remediator.controller.context import Settings

    deleted: list[tuple[str, str, str]] = []

    def delete(group, version, namespace, plural, name, body):
        if name == "moved-on":
            raise ApiException(status=409, reason="Conflict: the precondition failed")
        deleted.append((namespace, name, body.preconditions.resource_version))

    def never(*args, **kwargs):
        raise AssertionError("the sweep listed Remediations")
    ctx = SimpleNamespace(
        caches=Caches(), settings=Settings(namespaces=("shop", "other")), serves=lambda ns: ns in ("shop", "other"),
        resources=SimpleNamespace(list=lambda kind, namespace=None: [], custom=SimpleNamespace(
            delete_namespaced_custom_object=delete, list_cluster_custom_object=never,
            list_namespaced_custom_object=never)))
    ctx.caches.primed.set()
    monkeypatch.setattr(retention, "labels_of_namespace", lambda ctx, namespace: {})
    long_ago = NOW - timedelta(days=40)
    for name, namespace, rv in (("old", "shop", "11"), ("moved-on", "shop", "12"), ("unserved", "elsewhere", "13"),
                                ("old", "other", "14")):
        obj = body(name, namespace=namespace, phase="Succeeded", started=long_ago, finished=long_ago)
        obj["status"]["foldedIntoRunbook"] = True
        obj["metadata"]["resourceVersion"] = rv
        ctx.caches.remediations.observe("ADDED", obj)
    assert retention.sweep(ctx, ["shop"], now=NOW) == {"deleted": 1, "changed": 1}
    assert deleted == [("shop", "old", "11")]
    assert retention.sweep(ctx, None, now=NOW) == {"deleted": 2, "changed": 1}, "every served namespace"
    assert deleted[1:] == [("other", "old", "14"), ("shop", "old", "11")]


def test_a_sweep_judges_only_what_is_old_enough_to_go_and_still_completes_the_runbooks_statistics(monkeypatch):
    from kubernetes.client.rest import ApiException

    from remediator.controller import retention
    from remediator.controller.caches import Caches
    from remediator.core.report import retention as core

    judged, completed = [], []
    policies = [{"metadata": {"name": name}, "spec": {"namespaces": [namespace],
                                                      "retention": {"terminalRemediations": keep}}}
                for name, namespace, keep in (("brief", "brief", "2d"), ("forever", "archive", "999999d"))]
    runbooks = {"shop": [{"metadata": {"name": "restart"}, "spec": {"guard": {"cooldown": "60d"}}}]}

    def labels(ctx, namespace):
        if namespace == "gone":
            raise ApiException(status=404, reason="namespaces gone not found")
        return {}
    ctx = SimpleNamespace(caches=Caches(), settings=SimpleNamespace(), serves=lambda ns: ns != "elsewhere",
                          resources=SimpleNamespace(list=lambda kind, namespace=None: policies
                                                    if kind == "RemediationPolicy" else runbooks.get(namespace, [])))
    ctx.caches.primed.set()
    monkeypatch.setattr(retention, "labels_of_namespace", labels)
    monkeypatch.setattr(retention, "complete_signal_stats", lambda ctx, namespace, runbooks: completed.append(
        namespace) or {r["metadata"]["name"] for r in runbooks})
    monkeypatch.setattr(retention.retention, "select", lambda candidates, keep_of, now: judged.extend(
        f"{c.namespace}/{c.name}" for c in candidates) or [])
    kept = core.kept_for(None, None)[0]  # no policy: the default retention, or a longer guard window
    minutes = timedelta(minutes=5)
    for name, namespace, age in (("young", "shop", kept - minutes), ("old", "shop", kept + minutes),
                                 ("in-cooldown", "shop", kept + timedelta(days=1)),  # its Runbook's keep: 60d
                                 ("young", "fresh", timedelta(days=1)), ("old", "elsewhere", kept * 2),
                                 ("young", "brief", timedelta(days=2) - minutes), ("old", "brief", timedelta(days=3)),
                                 ("old", "gone", kept * 2), ("old", "archive", kept * 100)):
        obj = body(name, namespace=namespace, phase="Succeeded", started=NOW - age, finished=NOW - age)
        obj["status"]["foldedIntoRunbook"] = True
        ctx.caches.remediations.observe("ADDED", obj)
    ctx.caches.remediations.observe("ADDED", body("open", namespace="busy", phase="Acting", started=NOW - kept * 2))

    retention.sweep(ctx, None, now=NOW)

    assert sorted(judged) == ["brief/old", "shop/in-cooldown", "shop/old"], \
        "young, open, unserved ones and those of a namespace being deleted are not even judged"
    assert sorted(completed) == ["archive", "brief", "fresh", "shop"], \
        "every served namespace with ended ones gets complete statistics, those of only young ones too"


def test_policies_and_namespace_labels_follow_list_and_watch_events():
    policies = PolicyCache()
    policies.replace([{"metadata": {"name": "a", "resourceVersion": "1"}, "spec": {"mode": "dryRun"}}])
    policies.observe("ADDED", {"metadata": {"name": "b"}, "spec": {}})
    policies.observe("DELETED", {"metadata": {"name": "a"}})
    assert policies.items() == [{"metadata": {"name": "b"}, "spec": {}}]
    labels = NamespaceLabels()
    labels.replace([{"metadata": {"name": "shop", "labels": {"tier": "prod"}}}])
    labels.observe("MODIFIED", {"metadata": {"name": "shop", "labels": {"tier": "dev"}}})
    assert labels.get("shop") == {"tier": "dev"}
    labels.observe("DELETED", {"metadata": {"name": "shop"}})
    assert labels.get("shop") is None


def test_the_runbook_cache_keeps_an_invalid_runbook_for_the_loop_and_forgets_a_deleted_or_unlisted_one():
    cache = RunbookCache()
    cache.observe("ADDED", {"metadata": {"name": "bad", "namespace": "shop", "generation": 2, "resourceVersion": "4"},
                            "spec": {"steps": "not a list"}, "status": {"folded": ["u1"]}})
    assert cache.body("shop", "bad") == {"metadata": {"name": "bad", "namespace": "shop", "generation": 2,
                                                      "resourceVersion": "4"},
                                         "spec": {"steps": "not a list"}, "status": {"folded": ["u1"]}}
    assert cache.in_namespace("shop") == [] and ("shop", "bad") in cache.invalid
    cache.observe("DELETED", {"metadata": {"name": "bad", "namespace": "shop"}})
    assert cache.body("shop", "bad") is None and not cache.invalid
    cache.observe("ADDED", {"metadata": {"name": "gone", "namespace": "pay", "generation": 1}, "spec": {}})
    cache.replace_all([])
    assert cache.body("pay", "gone") is None


def test_priming_reads_every_page_and_resumes_the_watch_from_the_last_version():
    pages = {None: {"metadata": {"continue": "p2", "resourceVersion": "10"}, "items": [{"n": 1}, {"n": 2}]},
             "p2": {"metadata": {"resourceVersion": "11"}, "items": [{"n": 3}]}}
    asked = []

    def lister(**kwargs):
        asked.append(kwargs)
        return SimpleNamespace(data=json.dumps(pages[kwargs.get("_continue")]).encode())
    got = []
    feed = Feed("things", lister, got.extend, lambda *_: None, keep=lambda item: item["n"] != 2)
    assert feed.prime() == 2 and got == [{"n": 1}, {"n": 3}]
    assert feed.resource_version == "11" and all(k["limit"] == PAGE for k in asked)


def test_requests_are_counted_by_the_verb_and_resource_rbac_would_name():
    base = "https://kube:6443"
    assert request_labels("GET", f"{base}/apis/remediator.dev/v1alpha1/remediations") == ("list", "remediations")
    assert request_labels("GET", f"{base}/apis/remediator.dev/v1alpha1/namespaces/shop/remediations/r1") == \
        ("get", "remediations")
    assert request_labels("PUT", f"{base}/apis/remediator.dev/v1alpha1/namespaces/shop/remediations/r1/status") == \
        ("update", "remediations/status")
    assert request_labels("GET", f"{base}/api/v1/namespaces/shop") == ("get", "namespaces")
    assert request_labels("GET", f"{base}/api/v1/namespaces?watch=True&resourceVersion=5") == ("watch", "namespaces")
    assert request_labels("PATCH", f"{base}/apis/apps/v1/namespaces/shop/deployments/web?dryRun=All") == \
        ("patch", "deployments")
    assert request_labels("GET", f"{base}/api/v1/namespaces/shop/pods?limit=1") == ("list", "pods")


def test_a_watch_answered_410_gone_lists_again_and_replaces_what_the_cache_held():
    import threading

    from kubernetes.client.rest import ApiException

    stopped = threading.Event()
    lists = iter([[{"n": 1}], [{"n": 2}]])
    watches = []

    def lister(watch=False, **kwargs):
        if not watch:
            return SimpleNamespace(data=json.dumps({"metadata": {"resourceVersion": "5"}, "items": next(lists)}))
        watches.append(kwargs.get("resource_version"))
        if len(watches) == 2:
            stopped.set()
        raise ApiException(status=410 if len(watches) == 1 else 500)
    replaced = []
    feed = Feed("things", lister, replaced.append, lambda *_: None)
    feed.prime()
    feed.follow(stopped)
    assert replaced == [[{"n": 1}], [{"n": 2}]] and watches == ["5", "5"]


class Streamed:
    """A watch response as the apiserver sends it: 200, then one JSON event per line."""

    status = 200

    def __init__(self, *events: dict):
        self.lines = [json.dumps(e).encode() + b"\n" for e in events]

    def stream(self, amt=None, decode_content=False):
        yield from self.lines

    def close(self):
        pass

    def release_conn(self):
        pass


def test_a_watch_whose_version_expired_mid_stream_lists_again_instead_of_retrying_it_forever():
    """The apiserver reports an expired resourceVersion (compaction, a restart) as an ERROR event with code 410
    inside a 200 watch stream, not as an HTTP 410."""
    import threading

    stopped = threading.Event()
    lists = iter([[{"n": 1}], [{"n": 2}]])
    watches = []
    relisted = threading.Event()
    gone = {"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 410,
                                        "reason": "Expired", "message": "too old resource version: 5 (900)"}}

    def lister(watch=False, **kwargs):
        if not watch:
            items = next(lists, None)
            if items is None or items == [{"n": 2}]:
                stopped.set()
                relisted.set()
            return SimpleNamespace(data=json.dumps({"metadata": {"resourceVersion": "5"}, "items": items or []}))
        watches.append(kwargs.get("resource_version"))
        return Streamed(gone)
    replaced = []
    feed = Feed("things", lister, replaced.append, lambda *_: None)
    feed.prime()
    threading.Thread(target=feed.follow, args=(stopped,), daemon=True).start()
    assert relisted.wait(10), f"no re-list after the expired watch, only watches again: {watches}"
    stopped.set()
    assert replaced[:2] == [[{"n": 1}], [{"n": 2}]], f"no re-list after the expired watch: {replaced}, {watches}"


def test_a_relabel_the_watch_delivers_while_a_missed_namespace_is_read_is_not_overwritten_by_that_read(
        monkeypatch):
    from remediator.controller import caches as caches_module

    ctx = SimpleNamespace(api=None, caches=caches_module.Caches())
    ctx.caches.primed.set()

    class Core:
        def __init__(self, _api):
            pass

        def read_namespace(self, name):
            read = SimpleNamespace(metadata=SimpleNamespace(labels={"tier": "dev"}))
            # meanwhile the watch delivers the namespace and then its relabelling
            ctx.caches.namespaces.observe("ADDED", {"metadata": {"name": name, "labels": {"tier": "dev"}}})
            ctx.caches.namespaces.observe("MODIFIED", {"metadata": {"name": name, "labels": {"tier": "prod"}}})
            return read
    monkeypatch.setattr(guard_facts.client, "CoreV1Api", Core)
    guard_facts.labels_of_namespace(ctx, "shop")
    assert ctx.caches.namespaces.get("shop") == {"tier": "prod"}, "the older read replaced the watch's newer labels"
