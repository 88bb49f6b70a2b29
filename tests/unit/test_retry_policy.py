"""The one retry policy (remediator.kube): transient faults are retried, the apiserver's answers are not.

A 409 means another writer got there first (the caller re-reads), a 403/404/422 would be answered the same
way again: each goes back to the caller after one call. A 5xx, a connection error or a timeout is retried.
"""

import pytest
import tenacity
import urllib3
from kubernetes.client.rest import ApiException

from remediator import kube
from remediator.actions import kube as action_kube
from remediator.actions.base import ActionError, Conflict


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    monkeypatch.setattr(kube, "RETRYING", kube.RETRYING.copy(wait=tenacity.wait_none()))


class Flaky:
    """Fails with `error` the first `failures` calls, then answers "ok"."""

    def __init__(self, error: BaseException, failures: int = 1):
        self.error, self.failures, self.calls = error, failures, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "ok"


ANSWERS = [pytest.param(ApiException(status=s), id=str(s)) for s in (400, 403, 404, 409, 422, 429)]
TRANSIENT = [
    pytest.param(ApiException(status=503), id="503"),
    pytest.param(ApiException(status=500), id="500"),
    pytest.param(ApiException(status=0, reason="SSL handshake failed"), id="no-status"),
    pytest.param(ConnectionRefusedError(), id="connection-refused"),
    pytest.param(urllib3.exceptions.ReadTimeoutError(None, "/apis", "read timed out"), id="read-timeout"),
    pytest.param(urllib3.exceptions.NewConnectionError(None, "connection refused"), id="new-connection"),
    pytest.param(TimeoutError(), id="timeout"),
]


@pytest.mark.parametrize("error", ANSWERS)
def test_an_apiserver_answer_is_not_retried(error):
    fn = Flaky(error)
    with pytest.raises(ApiException):
        kube.call_retrying(fn)
    assert fn.calls == 1


@pytest.mark.parametrize("error", TRANSIENT)
def test_a_transient_fault_is_retried_until_it_passes(error):
    fn = Flaky(error, failures=kube.ATTEMPTS - 1)
    assert kube.call_retrying(fn) == "ok"
    assert fn.calls == kube.ATTEMPTS


def test_a_fault_that_lasts_is_raised_itself_after_the_last_attempt():
    fn = Flaky(ApiException(status=503), failures=99)
    with pytest.raises(ApiException) as raised:
        kube.call_retrying(fn)
    assert raised.value.status == 503 and fn.calls == kube.ATTEMPTS


def test_the_decorator_used_on_custom_resources_follows_the_same_policy():
    conflict, unavailable = Flaky(ApiException(status=409)), Flaky(ApiException(status=503))
    with pytest.raises(ApiException):
        kube.retry_transient(conflict)()
    assert kube.retry_transient(unavailable)() == "ok"
    assert (conflict.calls, unavailable.calls) == (1, 2)


@pytest.mark.parametrize(("status", "error"), [(409, Conflict), (403, ActionError), (404, ActionError)])
def test_an_action_call_turns_an_answer_into_its_error_after_one_call(status, error):
    fn = Flaky(ApiException(status=status))
    with pytest.raises(error) as raised:
        action_kube.call(fn)
    assert raised.value.status == status and fn.calls == 1


@pytest.mark.parametrize("error", TRANSIENT)
def test_an_action_call_retries_a_transient_fault_like_every_other_call(error):
    fn = Flaky(error, failures=kube.ATTEMPTS - 1)
    assert action_kube.call(fn) == "ok"
    assert fn.calls == kube.ATTEMPTS


def test_an_action_call_that_never_gets_through_is_a_retryable_error():
    fn = Flaky(ConnectionResetError(), failures=99)
    with pytest.raises(ActionError) as raised:
        action_kube.call(fn)
    assert raised.value.retryable and fn.calls == kube.ATTEMPTS


class FlakyCustomObjects:
    """The client's CustomObjectsApi whose reads fail with `error` the first `failures` times."""

    def __init__(self, error: BaseException, failures: int):
        self.read = Flaky(error, failures)

    def __call__(self, api):
        return self

    def get_namespaced_custom_object(self, *args):
        return {"read": self.read()}


@pytest.mark.parametrize(("error", "calls", "found"), [
    pytest.param(ApiException(status=0, reason="connection reset"), 2, {"read": "ok"}, id="no-status-retried"),
    pytest.param(ApiException(status=404), 1, None, id="not-found-after-one-call"),
])
def test_a_gitops_owner_read_follows_the_one_policy(monkeypatch, error, calls, found):
    from remediator.controller import gitops
    objects = FlakyCustomObjects(error, failures=1)
    monkeypatch.setattr(gitops.client, "CustomObjectsApi", objects)
    assert gitops.get(None, {"Kustomization": ("kustomize.toolkit.fluxcd.io", "v1", "kustomizations")},
                      "Kustomization", "apps", "web") == found
    assert objects.read.calls == calls
