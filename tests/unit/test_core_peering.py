"""The loops outside kopf run on the replica kopf's peering made active, by kopf's own records and rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from remediator.core.engine.peering import is_active

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def record(priority: int, seen_ago: float = 5, lifetime: int = 60) -> dict:
    return {"priority": priority, "lifetime": lifetime, "lastseen": (NOW - timedelta(seconds=seen_ago)).isoformat()}


def test_the_highest_live_priority_is_active_and_the_other_stands_by_naming_who_is_ahead():
    status = {"replica-a": record(200), "replica-b": record(100)}
    assert is_active({"shop": status}, "replica-a", 200, NOW).active
    standby = is_active({"shop": status}, "replica-b", 100, NOW)
    assert not standby.active and "replica-a" in standby.reason


def test_a_standby_takes_over_once_the_active_ones_record_is_stale():
    status = {"replica-a": record(200, seen_ago=61), "replica-b": record(100)}
    assert is_active({"shop": status}, "replica-b", 100, NOW).active


def test_equal_priorities_both_stand_by_as_kopf_freezes_them():
    status = {"replica-a": record(100), "replica-b": record(100)}
    assert not is_active({"shop": status}, "replica-a", 100, NOW).active
    assert not is_active({"shop": status}, "replica-b", 100, NOW).active


def test_a_replica_not_yet_announced_or_missing_a_peering_object_does_nothing():
    assert not is_active({"shop": {"replica-a": record(200)}}, "replica-b", 300, NOW).active
    verdict = is_active({"shop": {"replica-b": record(300)}, "payments": None}, "replica-b", 300, NOW)
    assert not verdict.active and "payments" in verdict.reason
    assert not is_active({}, "replica-b", 300, NOW).active
