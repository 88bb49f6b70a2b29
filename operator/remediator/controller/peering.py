"""Which replica runs the loops kopf does not run for us: read the peering records kopf keeps, apply its rule.

`Activity.active` is True on the replica kopf has made active (see core/engine/peering.py); the anomaly watcher and
the failing-pod rescan run only while it is. Without peering (`--peering none`) every replica is active.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import threading
from datetime import UTC, datetime

from kubernetes import client
from kubernetes.client.rest import ApiException

from ..core.engine import peering
from .context import OperatorContext

log = logging.getLogger("remediator.peering")
PEERING_GROUP, PEERING_VERSION = "kopf.dev", "v1"


def own_identity() -> str:
    """kopf's identity for this replica: the pod's name when the chart sets POD_ID, else a unique one."""
    return os.environ.get("POD_ID") or f"{socket.gethostname()}/{os.getpid()}/{random.randrange(16**6):06x}"


class Activity:
    """Whether this replica is the active one; threads read it, one task keeps it current."""

    def __init__(self, ctx: OperatorContext, identity: str, enabled: bool = True):
        self.ctx = ctx
        self.identity = identity
        self.enabled = enabled
        self._active = threading.Event()
        if not enabled:
            self._active.set()
        self.reason = "standalone: no peering" if not enabled else "not yet checked"

    @property
    def active(self) -> bool:
        return self._active.is_set()

    def records(self) -> dict[str, dict | None]:
        """Each served peering object's status; None where it does not exist."""
        custom = client.CustomObjectsApi(self.ctx.api)
        name = self.ctx.settings.peering_name
        if not self.ctx.settings.namespaces:
            return {"cluster": status_of(lambda: custom.get_cluster_custom_object(
                PEERING_GROUP, PEERING_VERSION, "clusterkopfpeerings", name))}
        return {ns: status_of(lambda ns=ns: custom.get_namespaced_custom_object(
            PEERING_GROUP, PEERING_VERSION, ns, "kopfpeerings", name)) for ns in self.served_namespaces()}

    def served_namespaces(self) -> list[str]:
        patterns = self.ctx.settings.namespaces
        if not any(c in p for p in patterns for c in "*?["):
            return list(patterns)
        items = client.CoreV1Api(self.ctx.api).list_namespace().items
        return [ns.metadata.name for ns in items if self.ctx.serves(ns.metadata.name)]

    def check(self) -> bool:
        verdict = peering.is_active(self.records(), self.identity, self.ctx.settings.peering_priority,
                                    datetime.now(UTC))
        if verdict.active != self.active or verdict.reason != self.reason:
            log.info("active replica" if verdict.active else "standby replica", extra={"reason": verdict.reason})
        self.reason = verdict.reason
        (self._active.set if verdict.active else self._active.clear)()
        return verdict.active

    async def follow(self, every: float = 2.0) -> None:
        """Keep `active` current; an unreadable peering counts as standby (doing nothing is the safe side)."""
        while self.enabled:
            try:
                await asyncio.to_thread(self.check)
            except Exception as e:  # noqa: BLE001  a passing apiserver error must not end the watch
                self._active.clear()
                self.reason = f"peering unreadable: {e}"
                log.warning("peering unreadable; standing by", extra={"error": str(e)})
            await asyncio.sleep(every)


def status_of(read) -> dict | None:
    try:
        return read().get("status") or {}
    except ApiException as e:
        if e.status == 404:
            return None
        raise
