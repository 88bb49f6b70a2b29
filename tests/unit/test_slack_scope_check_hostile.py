"""The start-up scope check against a Slack (or a proxy in front of it) that answers oddly, on a real socket:
the operator starts either way, and turns Slack off only when Slack said which scopes the token lacks."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from remediator.approvals.slack import SlackConfig, refuse_without_scopes
from remediator.secrets import FileSecret


def answer(tmp_path, status: int, body: bytes, headers: dict | None = None):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    (tmp_path / "token").write_text("xoxb-1")
    cfg = SlackConfig(FileSecret(str(tmp_path / "token")), FileSecret(None),
                      f"http://127.0.0.1:{server.server_address[1]}/api/")
    try:
        return refuse_without_scopes(cfg), cfg
    finally:
        server.shutdown()
        server.server_close()


def test_a_slack_answering_json_that_is_not_an_object_does_not_stop_the_operator_starting(tmp_path):
    refused, cfg = answer(tmp_path, 200, b"[1, 2]")
    assert refused is None and cfg.enabled


def test_an_answer_without_the_scopes_header_leaves_slack_on_as_it_cannot_say_what_is_missing(tmp_path):
    refused, cfg = answer(tmp_path, 200, b'{"ok": true}')
    assert refused is None and cfg.enabled, "a proxy that drops x-oauth-scopes is not a token without scopes"


def test_an_answer_with_an_empty_scopes_header_turns_slack_off(tmp_path):
    refused, cfg = answer(tmp_path, 200, b'{"ok": true}', {"x-oauth-scopes": ""})
    assert not cfg.enabled and "chat:write" in refused
