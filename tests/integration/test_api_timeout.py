"""A call to an apiserver that accepts the connection and never answers (half-open, hung) ends as a transient
timeout instead of holding its loop worker or chore for good."""

from __future__ import annotations

import socket
import threading
import time

import pytest

pytestmark = [pytest.mark.integration]


@pytest.fixture
def silent_apiserver(tmp_path):
    """A kubeconfig whose server accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    threading.Thread(target=accept, daemon=True).start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(f"""apiVersion: v1
kind: Config
clusters: [{{name: silent, cluster: {{server: "http://127.0.0.1:{server.getsockname()[1]}"}}}}]
users: [{{name: u, user: {{token: t}}}}]
contexts: [{{name: silent, context: {{cluster: silent, user: u}}}}]
current-context: silent
""")
    yield str(kubeconfig), held
    stop.set()
    for conn in held:
        conn.close()
    server.close()


def swallow(call, *args) -> None:
    try:
        call(*args)
    except Exception:  # the control call fails once the server closes, after the test
        pass


def test_a_call_the_apiserver_never_answers_fails_as_a_transient_timeout(silent_apiserver, monkeypatch):
    from kubernetes import client

    from remediator import kube

    kubeconfig, held = silent_apiserver
    monkeypatch.setattr(kube, "REQUEST_TIMEOUT", (1.0, 1.0))
    api = kube.load_api_client(kubeconfig)
    # control: the plain client, as the operator used it before, is still waiting when ours has given up
    plain = client.ApiClient(api.configuration)
    hung = threading.Thread(target=lambda: swallow(kube.request_json, plain, "GET", "/api/v1/namespaces/x"),
                            daemon=True)
    hung.start()

    started = time.monotonic()
    with pytest.raises(Exception) as raised:
        kube.request_json(api, "GET", "/api/v1/namespaces/x")
    took = time.monotonic() - started
    assert kube.transient(raised.value), repr(raised.value)  # so the one retry policy decides what next
    # one read timeout, one connection: urllib3 retries a GET's read timeout 3 times by default (4 min at 60 s
    # per call, then the retry policy's ATTEMPTS of that); the control's connection is the other one
    assert took < 2.5 and len(held) == 2, (took, len(held))
    assert hung.is_alive(), "without a default timeout the same call would still be waiting"

    impersonated = kube.impersonating(api, "shop", "remediator-actions")
    with pytest.raises(Exception) as raised:
        kube.request_json(impersonated, "GET", "/api/v1/namespaces/x")
    assert kube.transient(raised.value), repr(raised.value)
