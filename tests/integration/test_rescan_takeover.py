"""A replica taking over re-reads the failing pods it remembers: gone or recovered ones are not judged again."""

from __future__ import annotations

import pytest

from remediator.controller import handlers
from remediator.controller.context import OperatorContext, Settings
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def test_taking_over_forgets_remembered_pods_that_were_deleted_or_recovered_meanwhile(cluster, kube_api):
    cluster.deploy("web", replicas=1)
    ready = wait_for(lambda: [p for p in cluster.core.list_namespaced_pod(cluster.ns).items
                              if any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])],
                     what="a Ready pod")[0]
    ctx = OperatorContext(api=kube_api, settings=Settings(namespaces=(cluster.ns,)))
    stale = {"conditions": [{"type": "Ready", "status": "False"}]}  # as last seen before the watch paused
    ctx.failing_pods = {
        (cluster.ns, ready.metadata.name): {"metadata": {"name": ready.metadata.name}, "status": stale},
        (cluster.ns, "deleted-meanwhile"): {"metadata": {"name": "deleted-meanwhile"}, "status": stale},
    }
    handlers.refresh_failing_pods(ctx)
    assert ctx.failing_pods == {}
