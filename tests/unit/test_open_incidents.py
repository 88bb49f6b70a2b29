"""Alerts about a target join its open incident, or the finished one they started before."""

from remediator.api.models import RemediationSpec
from remediator.controller.ingest import OpenIncidents

SPEC = RemediationSpec.model_validate({
    "signal": {"source": "alertmanager", "name": "HighErrorRate", "fingerprint": "f1"},
    "runbook": {"name": "rb", "namespace": "shop"},
    "target": {"kind": "Deployment", "namespace": "shop", "name": "web"}}).wire()
KEY = OpenIncidents.key_of("shop", RemediationSpec.model_validate(SPEC))


def body(name: str, phase: str, finished_at: str | None = None) -> dict:
    return {"metadata": {"name": name, "namespace": "shop"}, "spec": SPEC,
            "status": {"phase": phase, **({"finishedAt": finished_at} if finished_at else {})}}


def test_an_open_remediation_is_the_incident_until_it_finishes():
    incidents = OpenIncidents()
    incidents.observe("ADDED", body("am-1", "Acting"))
    assert incidents.open_one(KEY) == "am-1"
    incidents.observe("MODIFIED", body("am-1", "Succeeded", "2026-11-25T10:05:00Z"))
    assert incidents.open_one(KEY) is None


def test_an_alert_that_started_before_the_incident_finished_was_already_handled():
    incidents = OpenIncidents()
    incidents.observe("MODIFIED", body("am-1", "Succeeded", "2026-11-25T10:05:00Z"))
    assert incidents.handled_by(KEY, "2026-11-25T10:04:59Z") == "am-1"
    assert incidents.handled_by(KEY, "2026-11-25T10:05:01Z") is None, "a later alert is a new incident"
    assert incidents.handled_by(KEY, "2026-11-25T10:05:00Z") is None, "so is one stamped in the same second"
    assert incidents.handled_by(KEY, None) is None and incidents.handled_by(KEY, "not a time") is None


def test_a_deleted_remediation_is_forgotten_as_open_but_its_history_stays():
    incidents = OpenIncidents()
    incidents.observe("MODIFIED", body("am-1", "Failed", "2026-11-25T10:05:00Z"))
    incidents.observe("ADDED", body("am-2", "Acting"))
    incidents.observe("DELETED", body("am-2", "Acting"))
    assert incidents.open_one(KEY) is None
    assert incidents.handled_by(KEY, "2026-11-25T10:00:00Z") == "am-1"
