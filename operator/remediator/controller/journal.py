"""The change journal's watches (signals/changes.py): our own LIST+WATCH per kind (caches.Feed), not kopf's.

kopf turned each ReplicaSet, Deployment and ControllerRevision event into a cause, a logger, a progress check and
a handler call before the journal folded it in: a rollout is a dozen such events, and that was a quarter of the
operator's CPU per incident. A Feed decodes each event once and hands it to the journal.

Like the caches', these watches run on a standby replica too (kopf paused its own there), so a replica that
takes over has a journal as current as the active one's. They use their own connections: a watch holds its
connection for minutes, and would otherwise take it from the pool the loop's calls share.
"""

from __future__ import annotations

import copy
import functools
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timezone

from kubernetes import client
from kubernetes.client.rest import ApiException

from ..kube import ApiClient
from ..records import metrics
from ..signals import changes
from . import caches
from .caches import Feed
from .context import OperatorContext

log = logging.getLogger("remediator.journal")


def observer(ctx: OperatorContext, observe: Callable[[dict, datetime], None]) -> Callable[[str, dict], None]:
    """A watch event into the journal: a deletion forgets the object, anything else is observed."""
    def seen(event_type: str, obj: dict) -> None:
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace")
        if namespace and not ctx.serves(namespace):
            return
        if event_type == "DELETED":
            ctx.changes.forget(namespace, f"{obj.get('kind')}/{meta.get('name')}")
        else:
            observe(obj, datetime.now(timezone.utc))
    return seen


def listed(seen: Callable[[str, dict], None], order: Callable[[dict], int] | None = None):
    """A Feed's `replace`: what a (re-)LIST returns, observed one by one (revisions in order, as at start)."""
    def replace(items: list[dict]) -> None:
        for item in sorted(items, key=order) if order else items:
            seen("", item)
    return replace


def feeds(ctx: OperatorContext, api: client.ApiClient) -> list[Feed]:
    """One Feed per journal kind and served namespace (one cluster-wide per kind when a served namespace is a
    pattern, or all are served); Nodes come from the caches' node watch (`caches.feeds`)."""
    apps, core, autoscaling = client.AppsV1Api(api), client.CoreV1Api(api), client.AutoscalingV2Api(api)
    journal = ctx.changes
    kinds = [
        ("replicasets", apps.list_namespaced_replica_set, apps.list_replica_set_for_all_namespaces,
         journal.observe_replicaset, changes.revision_of),
        ("controllerrevisions", apps.list_namespaced_controller_revision,
         apps.list_controller_revision_for_all_namespaces, journal.observe_controllerrevision,
         lambda cr: cr.get("revision") or 0),
        ("deployments", apps.list_namespaced_deployment, apps.list_deployment_for_all_namespaces,
         journal.observe_deployment, None),
        ("horizontalpodautoscalers", autoscaling.list_namespaced_horizontal_pod_autoscaler,
         autoscaling.list_horizontal_pod_autoscaler_for_all_namespaces, journal.observe_hpa, None),
    ]
    if ctx.settings.configmap_journal:  # the chart turns it off where it grants no ConfigMap reads
        kinds.append(("configmaps", core.list_namespaced_config_map, core.list_config_map_for_all_namespaces,
                      journal.observe_configmap, None))
    served = ctx.settings.namespaces
    exact = [ns for ns in served if not any(c in ns for c in "*?[")]
    scopes: list[str | None] = list(exact) if served and len(exact) == len(served) else [None]
    out = []
    for what, namespaced, cluster, observe, order in kinds:
        seen = observer(ctx, observe)
        for namespace in scopes:
            lister = functools.partial(namespaced, namespace) if namespace else cluster
            out.append(Feed(f"journal/{what}" + (f"/{namespace}" if namespace else ""), lister,
                            listed(seen, order), seen))
    return out


def start(ctx: OperatorContext) -> list[threading.Thread]:
    """Follow every journal kind, each in a thread until ctx's caches stop. Each lists first (the journal was
    rebuilt already, `app.prime_changes`: observing an object again adds nothing), retrying while it cannot."""
    configuration = copy.deepcopy(ctx.api.configuration)  # the operator's identity, a pool of its own
    configuration.connection_pool_maxsize = len(feeds(ctx, ctx.api)) + 2
    api = metrics.count_requests(ApiClient(configuration))
    listed_feeds = feeds(ctx, api)
    stopped = ctx.caches.stopped
    threads = []
    for feed in listed_feeds:
        def follow(feed=feed) -> None:
            try:
                feed.prime()
            except ApiException as e:
                if e.status in (403, 404):  # as at start (changes.prime): said once, that kind left out
                    log.warning("change journal: cannot list %s, their changes are not seen", feed.what,
                                extra={"status": e.status})
                    return
                feed._relist(stopped)
            except Exception:  # noqa: BLE001  the apiserver unreachable: listed again until it answers
                feed._relist(stopped)
            feed.follow(stopped)
        thread = threading.Thread(target=follow, name=f"watch-{feed.what}", daemon=True)
        thread.start()
        threads.append(thread)
    caches.RUNNING.add(ctx.caches)
    return threads
