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
    # a Unix time is a guess at what the sender meant: refused, not read as one
    (payload(alerts=[{"status": "firing", "labels": {"a": "b"}, "startsAt": 1700000000}]), "startsAt"),
    (payload(alerts=[{"status": "firing", "labels": {"a": "b"}, "startsAt": "1700000000.5"}]), "startsAt"),
    # valid RFC 3339, but no instant Python can hold in UTC
    (payload(alerts=[{"status": "firing", "labels": {"a": "b"}, "startsAt": "0001-01-01T00:00:00+01:00"}]),
     "startsAt: Value error, time '0001-01-01T00:00:00+01:00' is out of range"),
    (payload(alerts=[{"status": "firing", "labels": {"a": "b"}, "startsAt": "2026-11-25T11:58:00Z",
                      "endsAt": "9999-12-31T23:59:59-01:00"}]), "endsAt"),
    # a lone UTF-16 surrogate is valid JSON but no text: it could not be hashed or named
    (payload(alerts=[{"status": "firing", "labels": {"a": "\ud800"}, "startsAt": "2026-11-25T11:58:00Z"}]),
     "labels.a: Value error, not Unicode text"),
    (payload(alerts=[{"status": "firing", "labels": {"\udc00": "b"}, "startsAt": "2026-11-25T11:58:00Z"}]),
     "not Unicode text"),
    (payload(alerts=[{"status": "firing", "labels": {"a": "b"}, "fingerprint": "\ud83d",
                      "startsAt": "2026-11-25T11:58:00Z"}]), "fingerprint"),
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


def grafana(**over):
    """Grafana-managed alerting's webhook contact point payload, as Grafana's documentation shows it."""
    body = {"receiver": "My Super Webhook", "status": "firing", "orgId": 1, "alerts": [{
        "status": "firing", "labels": {"alertname": "High memory usage", "team": "blue", "zone": "us-1"},
        "annotations": {"description": "The system has high memory usage", "summary": "zone us-1"},
        "startsAt": "2021-10-12T09:51:03.157076+02:00", "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "https://play.grafana.org/alerting/1afz29v7z/edit", "fingerprint": "c6eadffa33fcdf37",
        "silenceURL": "https://play.grafana.org/alerting/silence/new", "dashboardURL": "", "panelURL": "",
        "values": {"B": 44.23943737541908, "C": 1}}],
        "groupLabels": {}, "commonLabels": {"team": "blue"}, "commonAnnotations": {},
        "externalURL": "https://play.grafana.org/", "version": "1", "groupKey": "{}:{}", "truncatedAlerts": 0,
        "title": "[FIRING:1] (High memory usage blue us-1)", "state": "alerting", "message": "**Firing**"}
    body.update(over)
    return body


def test_a_grafana_alerting_webhook_payload_becomes_a_signal():
    parsed = parse_payload(grafana())
    assert parsed.sender == "grafana" and parse_payload(payload()).sender == "alertmanager"
    signal = to_signal(parsed.alerts[0])
    assert signal.source == "alertmanager", "Runbooks' alert triggers take it like any Alertmanager alert"
    assert signal.name == "High memory usage" and signal.fingerprint == "c6eadffa33fcdf37"
    assert signal.starts_at == "2021-10-12T07:51:03.157076Z" and signal.summary == "zone us-1"


@pytest.mark.parametrize("body,where", [
    (grafana(orgId="one"), "orgId"),
    (grafana(orgId="1"), "orgId"),
    (grafana(orgId=True), "orgId"),
    ({k: v for k, v in grafana().items() if k != "orgId"}, "orgId"),
    (grafana(version=None), "version"),
    ({k: v for k, v in payload().items() if k != "version"}, "version: missing"),
    (grafana(version="2"), "version: '2'"),
])
def test_each_sender_is_known_by_its_own_shape(body, where):
    with pytest.raises(PayloadError) as err:
        parse_payload(body)
    assert where in str(err.value)


def test_a_group_of_more_than_a_thousand_alerts_is_refused_naming_the_limit():
    one = payload()["alerts"][0]
    parse_payload(payload(alerts=[one] * 1000))
    with pytest.raises(PayloadError) as err:
        parse_payload(payload(alerts=[one] * 1001))
    assert "alerts" in str(err.value) and "1000" in str(err.value)


def test_a_long_or_crowded_annotation_is_cut_and_the_alert_kept():
    alert = dict(payload()["alerts"][0], annotations={"description": "x" * 50_000,
                                                       **{f"a{i:03}": "y" for i in range(100)}})
    parsed = parse_payload(payload(alerts=[alert])).alerts[0]
    assert len(parsed.annotations) == 64
    assert len(parsed.annotations["a000"]) == 1 and "a099" not in parsed.annotations
    assert parsed.annotations["description"].endswith("…"), "the human text is kept first"
    alone = parse_payload(payload(alerts=[dict(alert, annotations={"description": "x" * 50_000})])).alerts[0]
    assert len(alone.annotations["description"]) == 4096 and alone.annotations["description"].endswith("…")


def test_one_alert_with_more_than_64_labels_refuses_the_whole_group_naming_it():
    good = {"status": "firing", "labels": {"alertname": "HighErrorRate"}, "startsAt": "2026-11-25T11:58:00Z"}
    crowded = {**good, "labels": {f"l{i}": "v" for i in range(65)}}
    with pytest.raises(PayloadError, match=r"alerts\.1\.labels: .*at most 64 entries"):
        parse_payload(payload(alerts=[good, crowded]))
    assert len(parse_payload(payload(alerts=[good, {**good, "labels": dict(list(crowded["labels"].items())[:64])}]))
               .alerts) == 2


def test_the_zero_end_alertmanager_sends_for_a_firing_alert_is_accepted():
    alert = parse_payload(payload(alerts=[{"status": "firing", "labels": {"a": "b"}, "startsAt": "2026-11-25T11:58:00Z",
                                           "endsAt": "0001-01-01T00:00:00Z"}])).alerts[0]
    assert alert.endsAt.year == 1


def test_a_lone_surrogate_in_an_annotation_is_kept_as_a_replacement_character_and_the_error_text_is_unicode():
    alert = parse_payload(payload(alerts=[{"status": "firing", "labels": {"a": "b"}, "startsAt": "2026-11-25T11:58:00Z",
                                           "annotations": {"summary": "x\ud800y"}}])).alerts[0]
    assert alert.annotations == {"summary": "x\ufffdy"}
    with pytest.raises(PayloadError) as err:
        parse_payload(payload(alerts=[{"status": "firing", "labels": {"\udc00": "b"}, "startsAt": "2026-11-25T11:58:00Z"}]))
    str(err.value).encode("utf-8")  # a message that can be logged and sent back


def test_alerts_the_sender_left_out_are_counted_from_the_payload_and_a_value_that_is_no_count_loses_nothing():
    assert parse_payload(payload(truncatedAlerts=7)).truncatedAlerts == 7
    for odd in (-1, 1.5, None, "3", True):
        assert parse_payload(payload(truncatedAlerts=odd)).truncatedAlerts == 0
