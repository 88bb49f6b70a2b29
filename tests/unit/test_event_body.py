"""Events are posted as plain JSON: the same document the client's models would have sent."""

from datetime import UTC, datetime

from kubernetes import client

from remediator.records.events import INSTANCE, event_body, event_name, with_micros


def test_an_event_posted_as_json_is_the_document_the_client_model_would_send():
    now = datetime(2026, 12, 1, 16, 5, tzinfo=UTC)
    regarding = {"api_version": "remediator.dev/v1alpha1", "kind": "Remediation", "name": "am-1",
                 "namespace": "shop", "uid": "u-1"}
    model = client.EventsV1Event(
        metadata=client.V1ObjectMeta(name=event_name("am-1", "k", "Planned"), namespace="shop"),
        event_time=with_micros(now), reporting_controller="remediator.dev/operator",
        reporting_instance=INSTANCE[:128], action="Remediate", reason="Planned", note="n" * 2000, type="Normal",
        regarding=client.V1ObjectReference(**regarding))
    expected = client.ApiClient().sanitize_for_serialization(model)
    body = event_body("shop", regarding, "Planned", "n" * 2000, "Normal", "k", now)

    assert body == {"apiVersion": "events.k8s.io/v1", "kind": "Event", **{
        k: v for k, v in expected.items() if k not in ("apiVersion", "kind")}, "note": "n" * 1024}


def test_a_target_without_a_namespace_is_regarded_without_one():
    body = event_body("default", {"api_version": "v1", "kind": "Node", "name": "n1", "namespace": None},
                      "RemediationActing", "x", "Normal", "k", datetime(2026, 12, 1, tzinfo=UTC))
    assert body["regarding"] == {"apiVersion": "v1", "kind": "Node", "name": "n1"}
