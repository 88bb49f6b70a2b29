"""The change journal leaves out the operator's own autoscaler lease (its raise of an HPA's floor and the restore
at the lease's end), so a later incident's probable cause never blames the operator; a human's edit during the
lease is still a change."""

from __future__ import annotations

import json
from datetime import timedelta

from remediator.core.plan.autoscalers import LEASE_ORIGINAL, LEASE_REMEDIATION, LEASE_WRITTEN
from remediator.signals.changes import ChangeJournal
from tests.unit.test_change_journal import NOW, stamp

HPA = {"metadata": {"name": "web", "namespace": "shop", "creationTimestamp": stamp(NOW - timedelta(days=1))},
       "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 2, "maxReplicas": 10}}


def hpa(minimum: int, maximum: int = 10, leased: bool = False) -> dict:
    annotations = {LEASE_REMEDIATION: "shop/r1", LEASE_ORIGINAL: json.dumps({"maxReplicas": 10, "minReplicas": 2}),
                   LEASE_WRITTEN: json.dumps({"maxReplicas": 10, "minReplicas": 5})} if leased else {}
    return {"metadata": {**HPA["metadata"], "annotations": annotations},
            "spec": {**HPA["spec"], "minReplicas": minimum, "maxReplicas": maximum}}


def test_the_operators_own_hpa_raise_and_restore_are_not_changes_in_the_journal():
    journal = ChangeJournal()
    journal.observe_hpa(hpa(2), NOW - timedelta(minutes=9))
    journal.observe_hpa(hpa(5, leased=True), NOW - timedelta(minutes=6))  # the lease's raise
    journal.observe_hpa(hpa(2), NOW - timedelta(minutes=3))  # its restore, the lease annotations dropped
    assert journal.changes("shop", {"HorizontalPodAutoscaler/web"}, NOW) == []


def test_a_human_edit_of_a_leased_hpa_is_still_a_change():
    journal = ChangeJournal()
    journal.observe_hpa(hpa(2), NOW - timedelta(minutes=9))
    journal.observe_hpa(hpa(5, leased=True), NOW - timedelta(minutes=6))
    journal.observe_hpa(hpa(5, maximum=4, leased=True), NOW - timedelta(minutes=3))  # not what the lease wrote
    [change] = journal.changes("shop", {"HorizontalPodAutoscaler/web"}, NOW)
    assert change.what == "HorizontalPodAutoscaler/web changed: maxReplicas 10 → 4"
