"""The real Flux controllers on the local control plane: the control for every GitOps test.

If Flux did not revert a live edit, or did not apply a new commit, a test of the operator's pause/resume
would prove nothing; this one shows the controllers built from Flux's modules do both, at their interval.
"""

from __future__ import annotations

import time

import pytest
import yaml
from kubernetes import client

from tests.support.flux import OWNER_NAME_LABEL, OWNER_NAMESPACE_LABEL
from tests.support.waiting import wait_for
from tests.support.workloads import deployment

pytestmark = [pytest.mark.integration, pytest.mark.slow]

INTERVAL = 10  # seconds, the Kustomization's and the GitRepository's


def image_of(apps: client.AppsV1Api, namespace: str, name: str) -> str | None:
    try:
        return apps.read_namespaced_deployment(name, namespace).spec.template.spec.containers[0].image
    except client.ApiException as e:
        if e.status == 404:
            return None
        raise


def test_flux_applies_a_commit_reverts_a_manual_image_change_within_its_interval_and_applies_the_next_commit(
        flux, kube_api, namespace):
    apps = client.AppsV1Api(kube_api)
    repo = flux.create_repo(namespace)
    repo.commit({"app/web.yaml": yaml.safe_dump(deployment("web", replicas=1, image="registry.local/web:1.0"))},
                "web 1.0")
    flux.apply(kube_api, namespace, "web", repo, path="./app", interval=f"{INTERVAL}s")

    wait_for(lambda: flux.applied_revision(kube_api, namespace, "web") == repo.flux_revision(), timeout=90,
             what=f"Flux applying {repo.flux_revision()} (status: {flux.kustomization_status(kube_api, namespace, 'web')})")
    live = apps.read_namespaced_deployment("web", namespace)
    assert live.spec.template.spec.containers[0].image == "registry.local/web:1.0"
    assert live.metadata.labels[OWNER_NAME_LABEL] == "web"
    assert live.metadata.labels[OWNER_NAMESPACE_LABEL] == namespace

    # A hand edit, as an operator's rollback would be: Flux puts Git's image back at its next reconcile.
    apps.patch_namespaced_deployment("web", namespace, {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": "registry.local/web:0.9-manual"}]}}}})
    edited = time.monotonic()
    assert image_of(apps, namespace, "web") == "registry.local/web:0.9-manual"
    wait_for(lambda: image_of(apps, namespace, "web") == "registry.local/web:1.0", timeout=3 * INTERVAL,
             what="Flux reverting the hand edit")
    reverted_after = time.monotonic() - edited
    # Within one interval plus the controller's jitter and a loaded 2-core machine's slack.
    assert reverted_after <= INTERVAL * 1.5 + 5, f"reverted only after {reverted_after:.1f}s"

    second = repo.commit({"app/web.yaml": yaml.safe_dump(deployment("web", replicas=1,
                                                                    image="registry.local/web:2.0"))}, "web 2.0")
    wait_for(lambda: image_of(apps, namespace, "web") == "registry.local/web:2.0", timeout=6 * INTERVAL,
             what="Flux applying the new commit")
    wait_for(lambda: flux.applied_revision(kube_api, namespace, "web") == f"main@sha1:{second}", timeout=INTERVAL,
             what="the Kustomization reporting the new revision")
