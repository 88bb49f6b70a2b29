"""The rollout counts: counted once, pruned to the retention, capped; what the report makes of them."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

from remediator.core.report import dora_keys, maturity, rollout_counts
from remediator.core.report.rollout_counts import Linked, Seen, merge, tallies
from remediator.signals.changes import ChangeJournal
from tests.unit.test_maturity import T0, caused, obj, records, z

TODAY = T0.date()


def seen(revision: int, at: datetime = T0, workload: str = "Deployment/web", uid: str = "u1") -> Seen:
    return Seen(revision, workload, uid, at)


def days_of(doc: dict, workload: str = "Deployment/web") -> dict[str, int]:
    return doc["workloads"][workload]["days"]


def test_a_restart_replaying_the_same_history_counts_no_rollout_twice():
    first = merge(rollout_counts.empty("shop"), [seen(1, T0 - timedelta(days=1)), seen(2), seen(3)], [], TODAY)
    replayed = merge(first, [seen(2), seen(3), seen(1, T0 - timedelta(days=1)), seen(4)], [], TODAY)
    assert days_of(replayed) == {"2026-10-31": 1, "2026-11-01": 3}
    assert replayed["workloads"]["Deployment/web"]["revision"] == 4
    assert merge(replayed, [seen(4)], [], TODAY) == replayed


def test_a_deployment_deleted_and_created_again_under_the_same_name_counts_its_new_revisions():
    old = merge(rollout_counts.empty("shop"), [seen(1), seen(2), seen(3)], [Linked("Deployment/web", 3, T0)], TODAY)
    new = merge(old, [seen(1, uid="u2"), seen(2, uid="u2")], [], TODAY)
    assert days_of(new) == {"2026-11-01": 5}
    assert new["workloads"]["Deployment/web"] | {"days": None} == {
        "uid": "u2", "revision": 2, "days": None, "failed": {}, "retired": ["u1"]}
    assert merge(new, [seen(3, uid="u1")], [], TODAY) == new, "the deleted one, replayed from a stale copy"


def test_days_past_the_retention_are_pruned_and_a_replayed_rollout_that_old_is_not_counted_again():
    doc = merge(rollout_counts.empty("shop"), [seen(1, T0 - timedelta(days=40)), seen(2, T0 - timedelta(days=30)),
                                               seen(3, T0)], [], TODAY)
    assert days_of(doc) == {"2026-10-02": 1, "2026-11-01": 1}
    later = merge(doc, [], [], TODAY + timedelta(days=1))
    assert days_of(later) == {"2026-11-01": 1}
    gone = merge(later, [seen(1, T0 - timedelta(days=40))], [], TODAY + timedelta(days=31))
    assert gone["workloads"] == {}, "nothing in range: the workload's entry goes; its old history adds nothing"


def test_a_rollout_named_by_several_incidents_is_one_failure():
    doc = merge(rollout_counts.empty("shop"), [seen(7)], [Linked("Deployment/web", 7, T0)] * 2, TODAY)
    doc = merge(doc, [], [Linked("Deployment/web", 7, T0 + timedelta(hours=1))], TODAY)
    assert doc["workloads"]["Deployment/web"]["failed"] == {"7": "2026-11-01"}


def test_the_cap_keeps_the_workloads_that_rolled_out_last():
    many = [seen(1, T0 - timedelta(days=i), workload=f"Deployment/w{i}") for i in range(5)]
    doc = merge(rollout_counts.empty("shop"), many, [], TODAY, cap=3)
    assert sorted(doc["workloads"]) == ["Deployment/w0", "Deployment/w1", "Deployment/w2"]


def test_workloads_with_the_longest_names_are_dropped_oldest_first_before_the_document_outgrows_a_configmap():
    many = [seen(1, T0 - timedelta(days=i % 30), workload=f"Deployment/{i:04}-" + "x" * 240, uid=f"{i:036}")
            for i in range(rollout_counts.CAP)]
    doc = merge(rollout_counts.empty("shop"), many, [], TODAY, max_bytes=100_000)
    assert len(rollout_counts.encode(doc)) <= 100_000
    assert 0 < len(doc["workloads"]) < rollout_counts.CAP
    assert f"Deployment/0000-{'x' * 240}" in doc["workloads"], "the most recent rollouts are kept"


def test_a_recreated_workload_seen_in_one_batch_with_its_predecessor_counts_each_once():
    batch = [seen(1, T0, uid="new"), seen(4, T0 - timedelta(hours=3), uid="old"),
             seen(5, T0 - timedelta(hours=2), uid="old"), seen(2, T0 + timedelta(hours=1), uid="new")]
    doc = merge(rollout_counts.empty("shop"), batch, [], TODAY)
    assert days_of(doc) == {"2026-10-31": 2, "2026-11-01": 2}
    assert doc["workloads"]["Deployment/web"]["uid"] == "new"
    assert merge(doc, batch, [], TODAY) == doc, "a replay of the new one's revisions adds nothing"


def test_five_hundred_workloads_rolling_out_every_day_for_the_retention_fit_a_configmap():
    doc = rollout_counts.empty("shop")
    for day in reversed(range(rollout_counts.KEEP_DAYS)):
        at = T0 - timedelta(days=day)
        doc = merge(doc, [seen(100 - day, at, f"Deployment/workload-with-a-long-name-{i:03}", f"{i:036}")
                          for i in range(500)], [], TODAY)
    size = len(rollout_counts.encode(doc).encode())
    print("bytes for 500 workloads x 31 days:", size)
    assert size < 700_000, size  # a ConfigMap holds 1 MiB
    assert sum(sum(e["days"].values()) for e in doc["workloads"].values()) == 500 * rollout_counts.KEEP_DAYS


def test_unreadable_stored_counts_start_afresh_and_a_broken_entry_is_left_out():
    assert rollout_counts.decode("not json", "shop") == rollout_counts.empty("shop")
    doc = {"namespace": "x", "workloads": {"Deployment/web": {"uid": "u", "revision": 2, "days": {"2026-11-01": 2}},
                                           "Deployment/bad": {"revision": "two", "days": {}}}}
    [tally] = tallies(rollout_counts.decode(json.dumps(doc), "shop"))
    assert (tally.namespace, tally.workload, tally.days) == ("shop", "Deployment/web", {date(2026, 11, 1): 2})


def history(revisions, workload="Deployment/web", uid="u1", at=T0 - timedelta(hours=2)):
    return [dora_keys.Rollout(at, "shop", workload, str(r), uid) for r in revisions]


def test_stored_counts_and_the_replicaset_history_add_up_without_counting_a_rollout_twice():
    # counted: revisions 1..5 (3 yesterday, 2 today), 5 named by an incident; the history still has 4..7
    tally = rollout_counts.Tally("shop", "Deployment/web", "u1", 5,
                                 {date(2026, 10, 31): 3, date(2026, 11, 1): 2}, {5: date(2026, 11, 1)})
    incident = caused(obj("bad", "Escalated"), revision="5")
    keys = dora_keys.keys(history(range(4, 8)), records(incident), T0 - timedelta(days=2), None,
                          T0 + timedelta(days=1), [tally])
    assert (keys.rollouts, keys.failed, keys.failed_rollouts) == (7, 1, ["shop/Deployment/web revision 5"])
    assert keys.per_workload == {"shop/Deployment/web": 7}


def test_counted_days_outside_the_range_and_a_recreated_workloads_history_are_told_apart():
    tally = rollout_counts.Tally("shop", "Deployment/web", "old", 9, {date(2026, 10, 1): 9}, {9: date(2026, 10, 1)})
    keys = dora_keys.keys(history([1, 2], uid="new"), [], T0 - timedelta(days=7), None, T0, [tally])
    assert (keys.rollouts, keys.failed) == (2, 0), "October is out of range; the new Deployment's 1 and 2 count"
    again = rollout_counts.Tally("shop", "Deployment/web", "new", 2, {date(2026, 11, 1): 2}, {}, ("old",))
    keys = dora_keys.keys(history([10, 11], uid="old"), [], T0 - timedelta(days=7), None, T0 + timedelta(days=1),
                          [again])
    assert keys.rollouts == 2, "the deleted one's ReplicaSets, not yet collected, were counted in their time"


def test_the_report_reads_its_rollouts_from_the_counts_when_the_history_is_gone():
    tally = rollout_counts.Tally("shop", "Deployment/web", "u1", 20, {date(2026, 10, 31): 10, date(2026, 11, 1): 10},
                                 {12: date(2026, 10, 31), 19: date(2026, 11, 1)})
    inventory = maturity.Inventory(rollouts_known=True, tallies=(tally,), rollouts_source="counts")
    rep = maturity.report([], inventory, maturity.Scope(T0 - timedelta(days=1), T0 + timedelta(days=1)),
                          T0 + timedelta(days=1))
    placed = {p.name: p for p in rep.dora}
    assert (rep.figures.delivery.rollouts, rep.figures.delivery.failed) == (20, 2)
    assert placed["change failure rate"].level == "elite"  # 10 %
    assert placed["deployment frequency"].level == "elite"  # 10 a day


def test_lead_time_names_why_no_gitops_owner_can_tell_it():
    rep = maturity.report([], maturity.Inventory())
    [lead] = [p for p in rep.dora if p.name == "lead time for changes"]
    assert lead.level is None
    assert "lastAppliedRevision" in lead.evidence[0] and "deployedAt" in lead.evidence[0]
    assert maturity.DEFINITIONS["leadTimeForChanges"] == lead.evidence[0]


def replicaset(revision: int, created: datetime, history: str | None = None) -> dict:
    annotations = {"deployment.kubernetes.io/revision": str(revision),
                   **({"deployment.kubernetes.io/revision-history": history} if history else {})}
    return {"metadata": {"namespace": "shop", "name": f"web-{revision}", "creationTimestamp": z(created),
                         "annotations": annotations,
                         "ownerReferences": [{"kind": "Deployment", "name": "web", "uid": "u1", "controller": True}]},
            "spec": {"template": {"spec": {"containers": [{"name": "web", "image": f"web:{revision}"}]}}}}


def test_the_journal_tells_the_counts_each_revision_once_and_a_rollback_at_the_moment_it_is_seen():
    told = []
    journal = ChangeJournal(on_rollout=lambda *a: told.append(a))
    now = T0 + timedelta(hours=1)
    for rs in (replicaset(1, T0 - timedelta(hours=3)), replicaset(2, T0 - timedelta(hours=2)),
               replicaset(2, T0 - timedelta(hours=2)), replicaset(3, T0 - timedelta(hours=3), history="1")):
        journal.observe_replicaset(rs, now)
    assert told == [("shop", "Deployment/web", "u1", 1, T0 - timedelta(hours=3)),
                    ("shop", "Deployment/web", "u1", 2, T0 - timedelta(hours=2)),
                    ("shop", "Deployment/web", "u1", 3, now)]


def test_merging_is_order_free_for_what_two_replicas_saw():
    a, b = [seen(1), seen(2)], [seen(2), seen(3)]
    assert merge(merge({}, a, [], TODAY), b, [], TODAY) == merge(merge({}, a + b, [], TODAY), [], [], TODAY)
    assert UTC  # times are UTC: days are UTC days


def test_an_exported_counts_configmap_gives_the_report_its_rollouts_and_the_definitions_name_the_source(
        tmp_path, capsys):
    from remediator.cli import main

    doc = {"version": 1, "namespace": "shop", "workloads": {"Deployment/web": {
        "uid": "u1", "revision": 6, "days": {"2026-10-31": 4, "2026-11-01": 2}, "failed": {"5": "2026-11-01"}}}}
    counts = {"kind": "ConfigMap", "metadata": {"namespace": "remediator", "name": "remediator-rollouts-shop",
                                                "labels": {"remediator.dev/rollout-counts": "shop"}},
              "data": {"counts.json": json.dumps(doc)}}
    history_rs = {"kind": "ReplicaSet", "metadata": {
        "namespace": "shop", "name": "web-7", "creationTimestamp": z(T0), "annotations": {
            "deployment.kubernetes.io/revision": "7"},
        "ownerReferences": [{"kind": "Deployment", "name": "web", "uid": "u1", "controller": True}]}}
    path = tmp_path / "export.json"
    path.write_text(json.dumps({"kind": "List", "items": [counts, history_rs]}))
    assert main(["report", "-f", str(path), "--since", z(T0 - timedelta(days=1)), "--until",
                 z(T0 + timedelta(days=1)), "--output", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    delivery = out["figures"]["delivery"]
    assert (delivery["rollouts"], delivery["failedRollouts"]) == (7, 1)
    assert "rollout counts" in delivery["source"] and "ReplicaSet history" in delivery["source"]
    assert "remediator-rollouts-<namespace>" in out["definitions"]["deploymentFrequency"]
    assert "remediator-rollouts-<namespace>" in out["definitions"]["doraChangeFailureRate"]


def test_a_range_shorter_than_a_day_is_widened_to_the_counted_days_start_so_the_rate_is_not_inflated():
    tally = rollout_counts.Tally("shop", "Deployment/web", "u1", 4, {date(2026, 11, 1): 4})
    keys = dora_keys.keys([], [], T0 + timedelta(hours=23), None, T0 + timedelta(hours=24), [tally])
    assert (keys.rollouts, keys.days) == (4, 1.0)
    assert keys.per_day(keys.rollouts) == 4.0


def test_a_statefulsets_controller_revisions_are_counted_as_its_rollouts():
    told = []
    journal = ChangeJournal(on_rollout=lambda *a: told.append(a))
    for revision in (1, 2):
        journal.observe_controllerrevision({"revision": revision, "metadata": {
            "namespace": "shop", "name": f"db-{revision}", "creationTimestamp": z(T0 + timedelta(hours=revision)),
            "ownerReferences": [{"kind": "StatefulSet", "name": "db", "uid": "s1", "controller": True}]},
            "data": {"spec": {"template": {"spec": {"containers": [{"name": "db", "image": f"db:{revision}"}]}}}}},
            T0 + timedelta(hours=3))
    assert [(ns, w, uid, rev) for ns, w, uid, rev, _ in told] == [("shop", "StatefulSet/db", "s1", 1),
                                                                 ("shop", "StatefulSet/db", "s1", 2)]


def test_a_remediation_whose_probable_cause_is_a_rollout_is_a_failed_change_and_any_other_is_not():
    from remediator.records.rollout_counts import RolloutCounter

    counter = RolloutCounter(None, "remediator")
    bad = caused(obj("bad", "Escalated"), revision="5")
    bad["spec"]["target"]["namespace"] = "shop"
    counter.heard(bad)
    counter.heard(obj("fine"))  # no probable cause
    forged = caused(obj("forged"), revision="five")
    counter.heard(forged)
    assert counter._linked == {"shop": {Linked("Deployment/web", 5, T0 - timedelta(hours=1))}}


def configmap(where: str, rollouts: int) -> dict:
    """shop's stored counts, as exported from namespace `where`."""
    doc = {"workloads": {"Deployment/web": {"uid": "u1", "revision": rollouts,
                                            "days": {"2026-11-01": rollouts}, "failed": {}}}}
    return {"kind": "ConfigMap", "metadata": {"namespace": where, "name": "remediator-rollouts-shop",
                                              "labels": {"remediator.dev/rollout-counts": "shop"}},
            "data": {"counts.json": json.dumps(doc)}}


def test_counts_of_one_namespace_found_in_two_namespaces_are_not_trusted_and_a_note_says_so(tmp_path, capsys):
    from remediator.cli import main

    path = tmp_path / "export.json"
    # a tenant of "mallory" forges shop's counts next to the operator's own
    path.write_text(json.dumps({"kind": "List", "items": [configmap("remediator", 6), configmap("mallory", 60)]}))
    assert main(["report", "-f", str(path), "--since", z(T0 - timedelta(days=1)), "--until",
                 z(T0 + timedelta(days=1)), "--output", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["figures"]["delivery"]["rollouts"] == 0
    assert out["notes"][-1:] == ["rollout counts of shop found in namespaces mallory, remediator: none of them used (give "
                            "--counts-namespace, the operator's namespace); its rollouts come from the ReplicaSet "
                            "history"]


def test_a_hand_edited_entry_of_the_wrong_shape_is_dropped_and_the_rest_still_merges():
    text = json.dumps({"workloads": {"Deployment/web": {"uid": "u1", "revision": "abc", "days": {}},
                                     "Deployment/api": {"uid": "u2", "revision": 1, "days": {"2026-11-01": 1}}}})
    doc = merge(rollout_counts.decode(text, "shop"), [seen(1)], [], TODAY)
    assert days_of(doc) == {"2026-11-01": 1} and days_of(doc, "Deployment/api") == {"2026-11-01": 1}


def test_a_remediation_naming_another_namespaces_rollout_adds_no_failure_there():
    other = caused(obj("elsewhere"), revision="3")
    other["spec"]["target"]["namespace"] = "payments"  # a Remediation in shop, targeting payments
    assert rollout_counts.named_rollout(other) is None


def test_a_tenants_replicaset_with_an_unreadable_revision_breaks_neither_the_journal_nor_the_report():
    from remediator.signals.changes import revision_of

    told = []
    journal = ChangeJournal(on_rollout=lambda *a: told.append(a))
    for odd in ("²", "9" * 5000, "٣"):  # isdigit() is True for each; int() refuses the first two
        rs = replicaset(1, T0 - timedelta(hours=1))
        rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = odd
        journal.observe_replicaset(rs, T0)  # ignored, not raised: the start-up rebuild reads every namespace
        assert revision_of(rs) == 0
    assert told == []
    tally = rollout_counts.Tally("shop", "Deployment/web", "u1", 5, {date(2026, 11, 1): 5}, {})
    keys = dora_keys.keys(history(["²", "9" * 5000, "6"]), [], T0 - timedelta(days=2), None,
                          T0 + timedelta(days=1), [tally])
    assert keys.rollouts == 8, "the counted 5, and each history entry the counts cannot place"


def test_a_namespace_whose_counts_cannot_be_written_does_not_hold_back_the_others_and_keeps_its_own():
    import pytest
    from kubernetes.client.rest import ApiException

    from remediator.records.rollout_counts import RolloutCounter

    counter = RolloutCounter(None, "remediator")
    written = []

    def write(namespace, seen, linked, now):
        if namespace == "aaa":  # sorted first: a conflict storm, an admission webhook saying no, a 500
            raise ApiException(status=500, reason="Internal Server Error")
        written.append(namespace)
    counter.write = write
    for namespace in ("aaa", "shop", "zoo"):
        counter.seen(namespace, "Deployment/web", "u1", 1, T0)
    with pytest.raises(ApiException):
        counter.flush(now=T0)
    assert written == ["shop", "zoo"]
    assert counter.pending() == {"aaa"}


def test_counts_namespace_also_picks_the_operators_counts_out_of_an_exported_file(tmp_path, capsys):
    from remediator.cli import main

    path = tmp_path / "export.json"
    path.write_text(json.dumps({"kind": "List", "items": [configmap("remediator", 6), configmap("mallory", 60)]}))
    # what the note about a forgery tells the reader to do must work on an export as on the cluster
    assert main(["report", "-f", str(path), "--counts-namespace", "remediator", "--since", z(T0 - timedelta(days=1)),
                 "--until", z(T0 + timedelta(days=1)), "--output", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["figures"]["delivery"]["rollouts"] == 6
    assert not any("rollout counts" in n for n in out["notes"])


def test_counts_found_in_more_than_one_namespace_are_named_in_a_note_even_when_no_namespace_is_claimed_twice(
        tmp_path, capsys):
    from remediator.cli import main

    forged = configmap("mallory", 60)
    forged["metadata"]["labels"]["remediator.dev/rollout-counts"] = "quiet"  # counts the operator never wrote
    path = tmp_path / "export.json"
    path.write_text(json.dumps({"kind": "List", "items": [configmap("remediator", 6), forged]}))
    assert main(["report", "-f", str(path), "--since", z(T0 - timedelta(days=1)), "--until",
                 z(T0 + timedelta(days=1)), "--output", "json"]) == 0
    notes = json.loads(capsys.readouterr().out)["notes"]
    assert any(n.startswith("rollout counts found in several namespaces (mallory, remediator)") for n in notes), notes


def test_a_stored_entry_with_negative_counts_is_left_out_of_the_report():
    doc = {"namespace": "shop", "workloads": {
        "Deployment/web": {"uid": "u1", "revision": 3, "days": {"2026-11-01": -50}, "failed": {}},
        "Deployment/api": {"uid": "u2", "revision": -1, "days": {"2026-11-01": 1}, "failed": {}},
        "Deployment/ok": {"uid": "u3", "revision": 2, "days": {"2026-11-01": 2}, "failed": {}}}}
    assert [t.workload for t in tallies(doc)] == ["Deployment/ok"]


def test_a_daemonsets_controller_revisions_and_an_argo_rollouts_replicasets_are_counted_as_their_rollouts():
    told = []
    journal = ChangeJournal(on_rollout=lambda *a: told.append(a))
    later = T0 + timedelta(hours=3)
    journal.observe_controllerrevision({"revision": 1, "metadata": {
        "namespace": "shop", "name": "agent-1", "creationTimestamp": z(T0),
        "ownerReferences": [{"kind": "DaemonSet", "name": "agent", "uid": "d1", "controller": True}]},
        "data": {"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "agent:1"}]}}}}}, later)
    rs = replicaset(4, T0 + timedelta(hours=1))
    rs["metadata"]["annotations"] = {"rollout.argoproj.io/revision": "4"}
    rs["metadata"]["ownerReferences"] = [{"kind": "Rollout", "name": "shop-ui", "uid": "r1", "controller": True}]
    journal.observe_replicaset(rs, later)
    assert [(ns, w, uid, rev) for ns, w, uid, rev, _ in told] == [("shop", "DaemonSet/agent", "d1", 1),
                                                                 ("shop", "Rollout/shop-ui", "r1", 4)]


def test_a_standby_keeps_only_the_last_periods_of_rollouts_and_the_active_replica_writes_them_all():
    from remediator.records.rollout_counts import RolloutCounter

    class Recording(RolloutCounter):
        def write(self, namespace, seen, linked, now):
            self.written = getattr(self, "written", {}) | {namespace: seen}

    counter = Recording(None, "remediator")
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    for i in range(100_000):  # a standby's journal hears every rollout of the cluster
        counter.seen("shop", f"Deployment/web-{i % 50}", f"u{i % 50}", i, now - timedelta(seconds=100_000 - i))
    assert counter.flush_or_forget(lambda: False, keep_seconds=60, now=now) == 0
    assert {s.revision for s in counter._seen["shop"]} == set(range(100_000 - 60, 100_000))
    assert counter.flush_or_forget(lambda: True, keep_seconds=60, now=now) == 1  # taken over: written
    assert len(counter.written["shop"]) == 60 and counter.pending() == set()
