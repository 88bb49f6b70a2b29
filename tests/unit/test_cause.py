"""Probable cause ranking (core/plan/cause.py): tables of changes against a breach."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from remediator.core.plan.cause import Change, Target, rank, to_status

BREACH = datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)
WEB = Target("Deployment", "shop", "web", frozenset({"ConfigMap/web-config", "HorizontalPodAutoscaler/web",
                                                     "Node/node-1"}))


def change(kind="rollout", obj="Deployment/web", before=timedelta(minutes=3, seconds=40), namespace="shop",
           what=None, revision=None) -> Change:
    return Change(kind=kind, object=obj, namespace=namespace, at=BREACH - before,
                  what=what or f"{obj} {kind}", revision=revision)


ROLLOUT = change(what="Deployment/web revision 2 rolled out: image web:1.4 → web:1.5", revision="2")


def test_a_rollout_of_the_target_before_the_breach_is_the_probable_cause_and_says_when():
    found = rank(WEB, [ROLLOUT], BREACH, "the error-rate burn")
    assert found.kind == "rollout"
    assert found.summary == ("Deployment/web revision 2 rolled out: image web:1.4 → web:1.5, 3m40s before the "
                             "error-rate burn began; nothing else changed on web or what it references in the "
                             "1h before the error-rate burn began")
    assert found.ranked[0].score == 100
    assert found.ranked[0].reasons == ("+50 changed Deployment/web itself", "+50 within 5m before the breach began")


@pytest.mark.parametrize("before, points", [
    (timedelta(0), 50), (timedelta(minutes=5), 50), (timedelta(minutes=5, seconds=1), 35),
    (timedelta(minutes=15), 35), (timedelta(minutes=16), 20), (timedelta(minutes=30), 20),
    (timedelta(minutes=31), 10), (timedelta(hours=1), 10),
])
def test_closer_changes_score_higher_by_bands(before, points):
    found = rank(WEB, [change(before=before)], BREACH)
    assert found.ranked[0].score == 50 + points


def test_a_change_older_than_the_window_is_ignored_with_its_reason():
    found = rank(WEB, [change(before=timedelta(hours=1, seconds=1), what="old rollout")], BREACH)
    assert found.kind == "none" and not found.ranked
    assert found.ignored == ("old rollout: 1h1s before the breach began, outside the 1h window",)


def test_the_window_is_a_parameter():
    found = rank(WEB, [change(before=timedelta(hours=2))], BREACH, window=timedelta(hours=3))
    assert found.kind == "rollout" and found.ranked[0].score == 60


def test_a_change_after_the_breach_began_is_never_its_cause():
    late = change(before=timedelta(seconds=-20), what="Deployment/web revision 3 rolled out")
    found = rank(WEB, [late], BREACH)
    assert found.kind == "none"
    assert found.ignored == ("Deployment/web revision 3 rolled out: 20s after the breach began, so not its cause",)


def test_a_change_at_the_very_second_the_breach_began_counts():
    assert rank(WEB, [change(before=timedelta(0))], BREACH).kind == "rollout"


@pytest.mark.parametrize("candidate, relation, score", [
    (change(), "target", 100),
    (change("configChange", "ConfigMap/web-config"), "referenced", 80),
    (change("hpaChange", "HorizontalPodAutoscaler/web"), "referenced", 80),
    (change("nodeChange", "Node/node-1", namespace=None), "referenced", 80),
])
def test_the_target_itself_outranks_what_it_references(candidate, relation, score):
    ranked = rank(WEB, [candidate], BREACH).ranked[0]
    assert (ranked.relation, ranked.score) == (relation, score)


@pytest.mark.parametrize("unrelated", [
    change("configChange", "ConfigMap/other-config"),
    change(obj="Deployment/api"),
    change(namespace="elsewhere"),
    change("nodeChange", "Node/node-9", namespace=None),
])
def test_changes_to_objects_the_target_does_not_reference_are_not_candidates(unrelated):
    found = rank(WEB, [unrelated], BREACH)
    assert found.kind == "none"
    assert found.ignored == ("1 change(s) touched neither Deployment/web nor what it references",)


def test_a_referenced_change_right_before_the_breach_beats_an_older_rollout_of_the_target():
    config = change("configChange", "ConfigMap/web-config", before=timedelta(minutes=1))
    old_rollout = change(before=timedelta(minutes=40))
    found = rank(WEB, [old_rollout, config], BREACH)
    assert [r.change.kind for r in found.ranked] == ["configChange", "rollout"]
    assert [r.score for r in found.ranked] == [80, 60]
    assert "1 other candidate(s), next Deployment/web rollout (score 60 against 80)" in found.summary


def test_ties_rank_the_target_first_then_the_most_recent_then_by_name():
    target_old = change(before=timedelta(minutes=20))  # 50 + 20 = 70
    ref_recent = change("hpaChange", "HorizontalPodAutoscaler/web", before=timedelta(minutes=10))  # 30 + 35 = 65
    ref_a = change("configChange", "ConfigMap/web-config", before=timedelta(minutes=12))  # 65
    node = change("nodeChange", "Node/node-1", namespace=None, before=timedelta(minutes=12))  # 65
    found = rank(WEB, [node, ref_a, ref_recent, target_old], BREACH)
    assert [r.change.object for r in found.ranked] == [
        "Deployment/web", "HorizontalPodAutoscaler/web", "ConfigMap/web-config", "Node/node-1"]
    assert found.ranked[2].reasons[-1].endswith("the more recent ranks first")
    assert found.ranked[3].reasons[-1].endswith("ordered by name")


def test_a_rollout_of_the_target_outranks_a_more_recent_change_of_a_reference_in_the_next_band():
    target = change(before=timedelta(minutes=40))  # 50 + 10
    ref = change("configChange", "ConfigMap/web-config", before=timedelta(minutes=20))  # 30 + 20
    found = rank(WEB, [ref, target], BREACH)
    assert [(r.change.object, r.score) for r in found.ranked] == [("Deployment/web", 60), ("ConfigMap/web-config", 50)]


def test_no_change_at_all_is_the_finding_none_with_a_reason():
    found = rank(WEB, [], BREACH, "HighErrorRate")
    assert found.kind == "none" and found.ranked == ()
    assert found.summary == ("nothing changed on web or what it references in the 1h before HighErrorRate began "
                             "(2026-11-25T10:00:00Z): no probable cause among recent changes")


def test_only_the_top_five_are_kept_and_the_status_is_bounded():
    many = [change(before=timedelta(minutes=m), what=f"rollout {m}", revision=str(m)) for m in range(1, 9)]
    found = rank(WEB, many, BREACH)
    assert len(found.ranked) == 5 and found.ranked[0].change.what == "rollout 1"
    status = to_status(found)
    assert status.kind == "rollout" and len(status.changes) == 5
    assert status.changes[0].at == "2026-11-25T09:59:00Z" and status.changes[0].score == 100
    assert status.breach_start == "2026-11-25T10:00:00Z"
    assert "7 other candidate(s)" in status.summary


def test_a_node_target_matches_changes_to_that_node():
    node = Target("Node", None, "node-1")
    assert rank(node, [change("nodeChange", "Node/node-1", namespace=None)], BREACH).kind == "nodeChange"


def test_a_change_without_a_timezone_or_of_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="timezone"):
        Change("rollout", "Deployment/web", "shop", datetime(2026, 1, 1), "x")
    with pytest.raises(ValueError, match="change kind"):
        Change("imageChange", "Deployment/web", "shop", BREACH, "x")  # type: ignore[arg-type]


def test_a_naive_breach_start_is_refused():
    with pytest.raises(ValueError, match="breach_start"):
        rank(WEB, [], datetime(2026, 1, 1))
