"""`remediator resolve` run again after the operator refused it (the incident was still running)."""

from __future__ import annotations

from kubernetes.client.rest import ApiException

from remediator.approvals import kubernetes as cli


class Apiserver:
    """remediationapprovals by name, 409 on a name taken, as the apiserver; the operator refuses each one."""

    def __init__(self, *_):
        pass

    created: dict = {}

    def get_namespaced_custom_object(self, group, version, namespace, plural, name):
        if plural == "remediations":
            return {"metadata": {"name": name, "uid": "0123456789-uid"}}
        return {**self.created[name], "status": {"outcome": "refused-already-decided", "message": "still Running"}}

    def create_namespaced_custom_object(self, group, version, namespace, plural, body):
        if body["metadata"]["name"] in self.created:
            raise ApiException(status=409, reason="Conflict")
        self.created[body["metadata"]["name"]] = body


def test_a_resolve_refused_while_the_incident_ran_can_be_run_again_once_it_ended(monkeypatch):
    monkeypatch.setattr(cli.client, "CustomObjectsApi", Apiserver)
    monkeypatch.setattr(cli, "whoami", lambda api: ("alice", []))
    Apiserver.created = {}
    first = cli.resolve_incident(None, "shop", "r1", "restarted the db")
    again = cli.resolve_incident(None, "shop", "r1", "restarted the db")
    assert first["metadata"]["name"] != again["metadata"]["name"]
    assert again["spec"]["requestId"] == "0123456789-uid" and again["spec"]["decision"] == "resolve"
