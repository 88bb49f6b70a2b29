"""Secrets read from mounted files, re-read when the file changes (rotation), never logged."""

from __future__ import annotations

import hmac
import os
import threading


def same_secret(expected: bytes | None, presented: bytes) -> bool:
    """Constant-time comparison; False when there is no secret to compare with (or nothing was presented)."""
    return bool(expected) and bool(presented) and hmac.compare_digest(expected, presented)


class FileSecret:
    """A secret kept in a file (a mounted Kubernetes Secret); rotated files are picked up."""

    def __init__(self, path: str | None):
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[float, int] | None = None
        self._value: bytes | None = None

    def value(self) -> bytes | None:
        if not self.path:
            return None
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        stamp = (st.st_mtime, st.st_size)
        with self._lock:
            if stamp != self._stamp:
                with open(self.path, "rb") as fh:
                    self._value = fh.read().strip() or None
                self._stamp = stamp
            return self._value

    def matches(self, presented: bytes) -> bool:
        """Constant-time comparison; False when no secret is configured."""
        return same_secret(self.value(), presented)

    def __repr__(self) -> str:  # never show the value
        return f"FileSecret(path={self.path!r})"
