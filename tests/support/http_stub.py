"""Small loopback HTTP stand-ins for the tests (Prometheus, an OTLP receiver): how they answer."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler


def answer(handler: BaseHTTPRequestHandler, body: bytes, content_type: str = "application/json") -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def answer_json(handler: BaseHTTPRequestHandler, payload: object) -> None:
    answer(handler, json.dumps(payload).encode())


class QuietHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass
