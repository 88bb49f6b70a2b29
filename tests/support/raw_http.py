"""HTTP/1.1 over a bare socket: a request sent in TCP segments of our choosing, header bytes as given.

`requests` sends a body in one go and refuses headers that are not text; real senders do neither
promise, so the edge is tested with the bytes on the wire under our control.
"""

from __future__ import annotations

import itertools
import json
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class RawResponse:
    status: int
    body: bytes

    def json(self):
        return json.loads(self.body)


def post_in_segments(port: int, path: str, body: bytes, headers: dict[str, str | bytes] | None = None,
                     cuts: Sequence[int] = (), pause: float = 0.05, timeout: float = 60) -> RawResponse:
    """POST `body`, sending the request head with the body's first bytes, then cutting the body at each
    offset in `cuts`, `pause` seconds between segments (TCP_NODELAY: each send leaves on its own)."""
    head = b"".join([f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
                     f"Content-Length: {len(body)}\r\n".encode(),
                     *(name.encode() + b": " + (value if isinstance(value, bytes) else value.encode()) + b"\r\n"
                       for name, value in (headers or {}).items()),
                     b"\r\n"])
    bounds = [0, *sorted(c for c in cuts if 0 < c < len(body)), len(body)]
    segments = [body[a:b] for a, b in itertools.pairwise(bounds)]
    segments[0] = head + segments[0]
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i, segment in enumerate(segments):
            if i:
                time.sleep(pause)
            try:
                sock.sendall(segment)
            except (BrokenPipeError, ConnectionResetError):
                break  # the server answered early (e.g. 413) and closed; its answer is still readable
        received = bytearray()
        while chunk := _recv(sock):
            received += chunk
    head_end = received.index(b"\r\n\r\n")
    status = int(bytes(received[:head_end]).split(b" ", 2)[1])
    return RawResponse(status, bytes(received[head_end + 4:]))


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except ConnectionResetError:
        return b""
