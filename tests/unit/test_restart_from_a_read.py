"""restartRollout handed the deciding tick's read of its target: it writes from it without a GET of its own,
and trusts nothing but a read of that very target (no apiserver: the calls are recorded)."""

from __future__ import annotations

import dataclasses
from concurrent.futures import Future, ThreadPoolExecutor
from types import SimpleNamespace

import pytest

from remediator.actions import kube as action_kube
from remediator import kube
from remediator.actions import restart
from remediator.actions.base import KEYS_ANNOTATION, ActionError, ActionRequest
from remediator.api.models import ObjectRef, Step
from remediator.controller import guard_facts
from remediator.controller.context import OperatorContext, Settings
from tests.support.waiting import wait_for

TARGET = ObjectRef(kind="Deployment", namespace="shop", name="web")


def deployment(name: str = "web", namespace: str = "shop", kind: str = "Deployment", keys: str = "") -> dict:
    annotations = {KEYS_ANNOTATION: keys} if keys else {}
    return {"kind": kind, "metadata": {"name": name, "namespace": namespace, "resourceVersion": "41",
                                       "annotations": annotations}, "spec": {"template": {}}}


@pytest.fixture
def calls(monkeypatch) -> list[str]:
    made: list[str] = []

    def request_json(api, method, path, body=None, query=None, content_type=None):
        made.append(method)
        return deployment() if method == "GET" else {**deployment(), "spec": body["spec"]}
    monkeypatch.setattr(action_kube, "request_json", request_json)
    return made


def request(read: dict | None) -> ActionRequest:
    return ActionRequest(action="restartRollout", target=TARGET, key="am-1.step-0",
                         step=Step(name="restart", action="restartRollout"), read=read)


def test_a_restart_given_its_targets_read_patches_without_reading_again(calls):
    assert restart.run(None, request(deployment())).done
    assert calls == ["PATCH"]


@pytest.mark.parametrize("other", [deployment(name="api"), deployment(namespace="billing"),
                                   deployment(kind="StatefulSet")], ids=["name", "namespace", "kind"])
def test_a_read_of_another_object_is_not_trusted_and_the_target_is_read(calls, other):
    restart.run(None, request(other))
    assert calls == ["GET", "PATCH"]


def test_a_read_already_carrying_the_key_is_a_replay_that_writes_nothing(calls):
    assert restart.run(None, request(deployment(keys="am-1.step-0"))).replayed
    assert calls == []


@pytest.mark.parametrize("default_account, runbook_account, shared", [
    ("", None, True), ("acts", None, False), ("", "runbook-sa", False)],
    ids=["as-the-operator", "chart-default-account", "runbook-account"])
def test_an_impersonated_tenant_reads_its_target_itself_so_its_rbac_still_bounds_the_step(
        default_account, runbook_account, shared):
    ctx = OperatorContext(api=kube.ApiClient(), settings=Settings(action_service_account=default_account))
    read = deployment()
    assert ctx.own_read(runbook_account, read) is (read if shared else None)


@pytest.mark.parametrize("given, reads", [(deployment(), 0), (deployment(name="api"), 1),
                                          (deployment(namespace="billing"), 1), (deployment(kind="StatefulSet"), 1)],
                         ids=["its-own", "another-name", "another-namespace", "another-kind"])
def test_the_guard_facts_and_the_cause_lookup_trust_only_a_read_of_their_target(monkeypatch, given, reads):
    from remediator.api.models import RemediationSpec
    from remediator.signals import changes
    made: list[str] = []

    def read(*_):
        made.append("GET")
        return deployment()
    monkeypatch.setattr(guard_facts, "read_object_json", read)
    monkeypatch.setattr(changes, "read_workload_json", read)
    ctx = OperatorContext(api=kube.ApiClient(), settings=Settings())
    guard_facts.read_target(ctx, TARGET, "restartRollout", given)
    spec = RemediationSpec.model_validate({"signal": {"source": "alertmanager", "name": "HighErrorRate"},
                                           "runbook": {"name": "restart", "namespace": "shop"},
                                           "target": {"kind": "Deployment", "name": "web", "namespace": "shop"}})
    changes.target_of(ctx.api, changes.ChangeJournal(), spec, read=given)
    assert made == ["GET"] * (2 * reads)


@pytest.fixture
def sent(monkeypatch) -> SimpleNamespace:
    """`calls`: (method, body, query) of each; a PATCH answers the object as patched, or 403 once `refuse` is set."""
    made = SimpleNamespace(calls=[], refuse=False)

    def request_json(api, method, path, body=None, query=None, content_type=None):
        made.calls.append((method, body, query))
        if method == "PATCH" and made.refuse:
            raise action_kube.ApiException(status=403, reason="Forbidden")
        return deployment() if method == "GET" else {**deployment(), "spec": body["spec"]}
    monkeypatch.setattr(action_kube, "request_json", request_json)
    return made


def dry_run(read) -> ActionRequest:
    return dataclasses.replace(request(read), dry_run=True)


def test_a_dry_run_goes_out_while_the_targets_read_is_still_on_its_way(sent):
    reading: Future = Future()
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(restart.run, None, dry_run(reading))
        try:
            wait_for(lambda: sent.calls, timeout=5, interval=0.01, what="the dry run sent")
            assert not running.done(), "it waits for the read to judge what the dry run would change"
        finally:
            reading.set_result(deployment())
        result = running.result(timeout=5)
    [(method, body, query)] = sent.calls
    assert method == "PATCH" and query == [("dryRun", "All")] and "resourceVersion" not in body["metadata"]
    assert result.done and not result.replayed and "would restart" in result.message
    assert list(result.changes) == ["spec.template.metadata.annotations[kubectl.kubernetes.io/restartedAt]"]


def test_a_dry_run_beside_a_read_already_carrying_the_key_is_a_replay(sent):
    assert restart.run(None, dry_run(done(deployment(keys="am-1.step-0")))).replayed


def test_a_dry_run_beside_a_read_of_a_paused_deployment_is_refused_as_kubectl_would(sent):
    paused = {**deployment(), "spec": {"paused": True, "template": {}}}
    with pytest.raises(ActionError, match="paused"):
        restart.run(None, dry_run(done(paused)))


def test_a_dry_run_the_apiserver_refuses_beside_its_read_fails_with_the_apiservers_answer(sent):
    sent.refuse = True
    with pytest.raises(ActionError) as refused:
        restart.run(None, dry_run(done(deployment())))
    assert refused.value.status == 403


def test_a_dry_run_beside_a_read_that_found_nothing_reads_the_target_itself(sent):
    assert restart.run(None, dry_run(done(None))).done
    assert [method for method, *_ in sent.calls] == ["PATCH", "GET"]


def test_a_change_landing_between_the_read_and_the_dry_run_beside_it_is_not_shown_as_the_restarts(monkeypatch):
    made = []

    def request_json(api, method, path, body=None, query=None, content_type=None):
        made.append(method)
        if method == "GET":
            return deployment()
        if "resourceVersion" not in body["metadata"]:  # unguarded: lands on what another writer left
            return {**deployment(), "metadata": {**deployment()["metadata"], "resourceVersion": "42"},
                    "spec": {**body["spec"], "replicas": 5}}
        if body["metadata"]["resourceVersion"] != "42":
            raise action_kube.ApiException(status=409, reason="Conflict")
        return {**deployment(), "spec": {**body["spec"], "replicas": 5}}
    monkeypatch.setattr(action_kube, "request_json", request_json)
    newer = {**deployment(), "metadata": {**deployment()["metadata"], "resourceVersion": "42"}, "spec": {
        "template": {}, "replicas": 5}}
    monkeypatch.setattr(restart, "read_object_json", lambda *_: newer)

    result = restart.run(None, dry_run(done(deployment())))

    assert made == ["PATCH"] * 3, "beside the read; guarded from it: a 409; read again, guarded again"
    assert list(result.changes) == ["spec.template.metadata.annotations[kubectl.kubernetes.io/restartedAt]"]


def done(read) -> Future:
    future: Future = Future()
    future.set_result(read)
    return future
