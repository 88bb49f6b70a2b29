"""Kubernetes client plumbing shared by the edges: API clients and the one retry policy.

Retries are for transient trouble only: 5xx, connection errors, timeouts.
A 409 means somebody else wrote first: re-read and re-decide, never retry blind.
Any other 4xx is the apiserver's answer (403 RBAC, 404 gone, 422 invalid): a
retry would get the same answer, so it goes back to the caller at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import quote

import urllib3
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from .api.models import GROUP, VERSION

PLURALS = {
    "Runbook": "runbooks",
    "RemediationPolicy": "remediationpolicies",
    "Remediation": "remediations",
    "ServiceLevelObjective": "servicelevelobjectives",
}


T = TypeVar("T")
ATTEMPTS = 5
MERGE_PATCH = "application/merge-patch+json"


def transient(exc: BaseException) -> bool:
    """5xx, or no answer at all (the client's status 0, a connection error, a timeout)."""
    if isinstance(exc, ApiException):
        return exc.status is not None and (exc.status >= 500 or exc.status == 0)
    return isinstance(exc, (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError))


RETRYING = Retrying(
    retry=retry_if_exception(transient),
    wait=wait_random_exponential(multiplier=0.2, max=5),
    stop=stop_after_attempt(ATTEMPTS),
    reraise=True,  # the last error itself, not tenacity's RetryError
)


def call_retrying(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`fn(*args, **kwargs)`, retried with jittered backoff while it fails transiently."""
    return RETRYING.copy()(fn, *args, **kwargs)  # a copy per call: its statistics are per call


def retry_transient(fn: Callable[..., T]) -> Callable[..., T]:
    """`fn` under the one retry policy (`call_retrying`)."""
    @wraps(fn)
    def retried(*args: Any, **kwargs: Any) -> T:
        return call_retrying(fn, *args, **kwargs)
    return retried


def request_json(api: client.ApiClient, method: str, path: str, body: Any = None,
                 query: list[tuple[str, str]] | None = None, content_type: str = "application/json") -> Any:
    """One apiserver call with plain JSON in and out, under the client's own auth and connection pool, but
    without its generated method: that validates every argument (pydantic) and turns the body into a model and
    back, which for a Deployment or an Event costs more CPU than the call itself. Errors raise ApiException."""
    headers = {"Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = content_type
    serialized = api.param_serialize(method=method, resource_path=path, query_params=query or [],
                                     header_params=headers, body=body, auth_settings=["BearerToken"])
    response = api.call_api(*serialized)
    data = response.read()
    if not 200 <= response.status <= 299:
        raise ApiException.from_response(http_resp=response, body=data.decode("utf-8", "replace"), data=None)
    return json.loads(data) if data else None


def as_json(call, *args, **kwargs) -> Any:
    """A generated client call's answer as the apiserver's JSON, without building the client's models first."""
    return json.loads(call(*args, _preload_content=False, **kwargs).data)


WORKLOAD_PLURALS = {"Deployment": "deployments", "StatefulSet": "statefulsets", "DaemonSet": "daemonsets"}


def read_workload_json(api: client.ApiClient, kind: str, name: str, namespace: str) -> dict:
    """A Deployment, StatefulSet, DaemonSet or Argo Rollout as JSON."""
    if kind == "Rollout":
        return client.CustomObjectsApi(api).get_namespaced_custom_object(
            "argoproj.io", "v1alpha1", namespace, "rollouts", name)
    return request_json(api, "GET", f"/apis/apps/v1/namespaces/{quote(namespace, safe='')}/"
                                    f"{WORKLOAD_PLURALS[kind]}/{quote(name, safe='')}")


# A call the apiserver never answers (a half-open connection, a hung apiserver) would hold its thread, and the
# loop worker or chore behind it, for good: a call that sets no timeout of its own gets these (seconds to connect,
# seconds between bytes of the answer), then fails as a timeout, which the retry policy treats as transient.
REQUEST_TIMEOUT = (10.0, 60.0)


class ApiClient(client.ApiClient):
    """The kubernetes client with a default timeout on every call (a watch sets its own)."""

    def call_api(self, method, url, header_params=None, body=None, post_params=None, _request_timeout=None):
        return super().call_api(method, url, header_params, body, post_params,
                                REQUEST_TIMEOUT if _request_timeout is None else _request_timeout)


class Retries(urllib3.util.Retry):
    """urllib3's own retries (3: a refused connect, a pooled connection the apiserver closed), except after a
    read timeout: the call gave the apiserver REQUEST_TIMEOUT already and the one retry policy decides what next.
    Retried here too, a GET on a hung apiserver waited 4 read timeouts (4 min) before each of its ATTEMPTS."""

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
        if isinstance(error, urllib3.exceptions.ReadTimeoutError):
            raise error
        return super().increment(method, url, response, error, _pool, _stacktrace)


# Connections kept open to the apiserver. The client's default (5 per CPU: 10 here) is fewer than the threads that
# call at once (loop workers, guard-fact reads, Event posters, chores): the pool then closes the surplus after
# each call, and the next call pays a new TLS handshake.
POOL_CONNECTIONS = 48


def load_api_client(kubeconfig: str | None = None) -> client.ApiClient:
    """In-cluster config when running in a pod, else KUBECONFIG / ~/.kube/config."""
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    configuration.connection_pool_maxsize = POOL_CONNECTIONS
    configuration.retries = Retries(3)
    return ApiClient(configuration)


def impersonating(api: client.ApiClient, namespace: str, service_account: str) -> client.ApiClient:
    """A client that acts as the ServiceAccount: the apiserver applies that account's RBAC to every call
    (the operator itself needs only `impersonate` on it)."""
    clone = ApiClient(configuration=api.configuration)
    clone.set_default_header("Impersonate-User", f"system:serviceaccount:{namespace}:{service_account}")
    return clone


def object_path(kind: str, namespace: str | None, name: str | None = None) -> str:
    """The REST path of one of our custom resources (the collection when no name is given)."""
    scope = f"/namespaces/{quote(namespace, safe='')}" if namespace is not None else ""
    path = f"/apis/{GROUP}/{VERSION}{scope}/{PLURALS[kind]}"
    return f"{path}/{quote(name, safe='')}" if name is not None else path


class Resources:
    """Typed-enough access to remediator's custom resources; the hot calls (get, create, status write) as plain
    JSON through `request_json`."""

    def __init__(self, api: client.ApiClient):
        self.api = api
        self.custom = client.CustomObjectsApi(api)

    @retry_transient
    def get(self, kind: str, name: str, namespace: str | None = None) -> dict | None:
        try:
            return request_json(self.api, "GET", object_path(kind, namespace, name))
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    @retry_transient
    def list(self, kind: str, namespace: str | None = None, label_selector: str = "") -> list[dict]:
        if namespace is None:
            out = self.custom.list_cluster_custom_object(GROUP, VERSION, PLURALS[kind],
                                                         label_selector=label_selector)
        else:
            out = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS[kind],
                                                            label_selector=label_selector)
        return out.get("items", [])

    @retry_transient
    def create(self, kind: str, namespace: str, body: dict) -> dict:
        return request_json(self.api, "POST", object_path(kind, namespace), body)

    @retry_transient
    def replace_status(self, kind: str, namespace: str, name: str, body: dict) -> dict:
        """Whole-status write guarded by body.metadata.resourceVersion: a stale writer gets 409."""
        return request_json(self.api, "PUT", object_path(kind, namespace, name) + "/status", body)

    @retry_transient
    def patch_status(self, kind: str, namespace: str, name: str, status: dict) -> dict:
        """Merge-patch of the status subresource, for status owned by one writer (e.g. an SLO's evaluation)."""
        return request_json(self.api, "PATCH", object_path(kind, namespace, name) + "/status", {"status": status},
                            content_type=MERGE_PATCH)
