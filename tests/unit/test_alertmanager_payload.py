"""Alertmanager v4 payloads parse strictly where it matters and explain refusals."""

import pytest

from remediator.signals.alertmanager import PayloadError, fingerprint, parse_payload, to_signal


def payload(**over):
    alert = {"status": "firing", "labels": {"alertname": "HighErrorRate", "namespace": "shop",
                                            "deployment": "web", "severity": "page"},
             "annotations": {"summary": "5xx over 5%"}, "startsAt": "2026-11-25T11:58:00.123Z",
             "endsAt": "0001-01-01T00:00:00Z", "fingerprint": "a1b2c3"}
    body = {"version": "4", "status": "firing", "receiver": "remediator", "groupKey": "{}:{}",
            "alerts": [alert], "truncatedAlerts": 0}
    body.update(over)
    return body


def test_a_real_alertmanager_payload_becomes_a_signal():
    signal = to_signal(parse_payload(payload()).alerts[0])
    assert signal.name == "HighErrorRate" and signal.fingerprint == "a1b2c3"
    assert signal.starts_at == "2026-11-25T11:58:00.123000Z"
    assert signal.severity == "page" and signal.summary == "5xx over 5%"


@pytest.mark.parametrize("body,where", [
    (payload(version="3"), "version"),
    (payload(alerts=[]), "alerts"),
    (payload(status="pending"), "status"),
    ([], "body"),
    (payload(alerts=[{"status": "firing", "labels": {"a": 1}, "startsAt": "2026-11-25T11:58:00Z"}]), "labels"),
    (payload(alerts=[{"status": "firing", "labels": {"a": "b"}, "startsAt": "yesterday"}]), "startsAt"),
    (payload(alerts=[{"status": "firing", "labels": {"a": "b"}, "startsAt": "2026-11-25T11:58:00"}]),
     "startsAt"),
])
def test_malformed_payloads_are_refused_naming_the_field(body, where):
    with pytest.raises(PayloadError) as err:
        parse_payload(body)
    assert where in str(err.value)


def test_missing_fingerprint_is_derived_stably_from_the_labels():
    a = parse_payload(payload(alerts=[{"status": "firing", "labels": {"x": "1", "y": "2"},
                                       "startsAt": "2026-11-25T11:58:00Z"}])).alerts[0]
    b = parse_payload(payload(alerts=[{"status": "firing", "labels": {"y": "2", "x": "1"},
                                       "startsAt": "2026-11-25T11:58:00Z"}])).alerts[0]
    assert fingerprint(a) == fingerprint(b) != ""
