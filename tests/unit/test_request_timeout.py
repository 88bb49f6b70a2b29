"""A call to an apiserver that never answers gives up after one read timeout, not after urllib3's retries of it."""

from __future__ import annotations

import socket
import threading
import time

import pytest


@pytest.fixture
def silent_apiserver(tmp_path):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

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
    for conn in held:
        conn.close()
    server.close()


def test_a_get_the_apiserver_never_answers_fails_after_one_read_timeout_as_a_transient_error(
        silent_apiserver, monkeypatch):
    from remediator import kube

    kubeconfig, held = silent_apiserver
    monkeypatch.setattr(kube, "REQUEST_TIMEOUT", (1.0, 1.0))
    api = kube.load_api_client(kubeconfig)
    started = time.monotonic()
    with pytest.raises(Exception) as raised:
        kube.request_json(api, "GET", "/api/v1/namespaces/x")
    took = time.monotonic() - started
    assert kube.transient(raised.value), repr(raised.value)
    # urllib3 retries a GET's read timeout 3 times by default: 4 read timeouts (4 min at 60 s) per call, and the
    # one retry policy then tries the call ATTEMPTS times
    assert took < 2.5 and len(held) == 1, (took, len(held))
