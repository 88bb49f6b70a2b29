"""Per-namespace webhook tokens: a Secret of a well-known name that a namespace's admins create in it.

Read with GET on that one name (RBAC grants nothing else: `resourceNames`), cached for a few seconds so a
rotated token takes effect quickly and a flood costs the apiserver nothing. A namespace with the Secret has
opted in: only its token, on its own path, may start its remediations. No Secret, no token of its own.
Invented namespace names cost a bounded amount: the cache is bounded, and reads of names not cached are
rate-limited as a whole (then the caller is told to retry).
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cachetools import TTLCache
from kubernetes import client
from kubernetes.client.rest import ApiException

from ..core.match import tenancy
from ..core.match.rate_limit import Limit, RateLimiter
from ..kube import retry_transient
from ..secrets import same_secret


@dataclass(frozen=True)
class NamespaceToken:
    opted_in: bool  # the Secret exists
    token: bytes | None = None  # None when it holds no usable token: then nothing authenticates


NOT_OPTED_IN = NamespaceToken(False)
LOOKUPS = Limit(rate=50, burst=500)  # Secret reads for namespaces not cached, all callers together
# ... and per caller first, so one sender inventing names cannot spend everyone's budget (a tenant's own
# Alertmanager needs one read per TTL for its one namespace)
CALLER_LOOKUPS = Limit(rate=2, burst=20)


class TooManyLookups(Exception):
    """More namespaces not in the cache than the lookup budget allows: retry after `wait` seconds."""

    def __init__(self, wait: float):
        super().__init__(f"too many namespace token lookups; retry in {wait:.1f}s")
        self.wait = wait


class TenantTokens:
    def __init__(self, api: client.ApiClient, secret_name: str, key: str = "token", ttl: float = 10.0,
                 max_namespaces: int = 4096, lookups: Limit = LOOKUPS,
                 clock: Callable[[], float] = time.monotonic):
        self.core = client.CoreV1Api(api)
        self.secret_name = secret_name
        self.key = key
        self._lock = threading.Lock()
        # Bounded: namespaces beyond it are looked up again, never kept (distinct names cost no memory).
        self._cache: TTLCache = TTLCache(maxsize=max_namespaces, ttl=ttl, timer=clock)
        self._lookups, self._lookup_limit, self._clock = RateLimiter(max_callers=1), lookups, clock
        self._callers = RateLimiter()

    @property
    def enabled(self) -> bool:
        return bool(self.secret_name)

    def token(self, namespace: str, caller: str | None = None) -> NamespaceToken:
        """The namespace's token, or NOT_OPTED_IN. Raises ApiException when the apiserver cannot say,
        TooManyLookups when this caller, or all callers, asked about too many namespaces not cached lately.
        `caller`: who asks before being authenticated, spending a budget of its own first; None for the shared
        route's sender, already authenticated, whose one delivery may concern every namespace of an outage."""
        if not self.enabled:
            return NOT_OPTED_IN
        with self._lock:
            cached = self._cache.get(namespace)
            now = self._clock()
            wait = 0.0 if cached is not None else (
                (caller is not None and self._callers.take((caller,), CALLER_LOOKUPS, now)) or
                self._lookups.take((), self._lookup_limit, now))
        if cached is not None:
            return cached
        if wait:
            raise TooManyLookups(wait)
        value = self._read(namespace)
        with self._lock:
            self._cache[namespace] = value
        return value

    @retry_transient
    def _read(self, namespace: str) -> NamespaceToken:
        try:
            secret = self.core.read_namespaced_secret(self.secret_name, namespace)
        except ApiException as e:
            if e.status == 404:
                return NOT_OPTED_IN
            raise
        try:
            value = base64.b64decode((secret.data or {}).get(self.key) or "", validate=True).strip()
        except (binascii.Error, ValueError):
            value = b""
        # an existing Secret without a usable token still opts in: nothing authenticates until it is fixed
        return NamespaceToken(True, value or None)

    def matches(self, namespace: str, presented: bytes, caller: str | None = None) -> bool:
        """Whether `presented` is the namespace's token; the caller is not authenticated yet, so its reads count
        against its own budget (an unknown address shares one)."""
        return same_secret(self.token(namespace, caller or "unknown").token, presented)

    def admit(self, labels: Mapping[str, str], path_namespace: str | None,
              served: Callable[[str], bool]) -> tenancy.Admission:
        """Whether an alert may act, by the route it came on: a namespace's own path, or the shared one."""
        if path_namespace is not None:
            return tenancy.on_namespace_route(path_namespace, labels)
        namespace = labels.get(tenancy.NAMESPACE_LABEL) or ""
        # a namespace this operator does not serve (or that cannot exist) is ignored further on: no Secret read
        opted_in = tenancy.can_be_a_namespace(namespace) and served(namespace) and self.token(namespace).opted_in
        return tenancy.on_shared_route(labels, opted_in)

    def __repr__(self) -> str:  # never show the values
        return f"TenantTokens(secret={self.secret_name!r}, cached={len(self._cache)})"
