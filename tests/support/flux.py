"""Flux objects for tests that run the real Flux controllers (the `flux` fixture starts them).

    def test_x(flux, kube_api, namespace):
        repo = flux.create_repo(namespace)                 # a Git repository served on loopback
        rev = repo.commit({"app/deploy.yaml": yaml.safe_dump(deployment("web"))}, "web 1.0")
        flux.apply(kube_api, namespace, "web", repo, path="./app", interval="10s")
        wait_for(lambda: flux.applied_revision(kube_api, namespace, "web") == repo.flux_revision())
"""

from __future__ import annotations

from dataclasses import dataclass

from kubernetes import client
from kubernetes.client.rest import ApiException

SOURCE = ("source.toolkit.fluxcd.io", "v1", "gitrepositories")
KUSTOMIZE = ("kustomize.toolkit.fluxcd.io", "v1", "kustomizations")
# The labels kustomize-controller puts on every object it applies: how an operator finds the owner.
OWNER_NAME_LABEL = "kustomize.toolkit.fluxcd.io/name"
OWNER_NAMESPACE_LABEL = "kustomize.toolkit.fluxcd.io/namespace"


def git_repository(name: str, namespace: str, url: str, interval: str = "10s", branch: str = "main") -> dict:
    return {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"url": url, "interval": interval, "ref": {"branch": branch}, "timeout": "20s"}}


def kustomization(name: str, namespace: str, source: str, path: str = "./", interval: str = "10s",
                  target_namespace: str | None = None, prune: bool = True) -> dict:
    spec = {"interval": interval, "path": path, "prune": prune, "timeout": "30s", "wait": False,
            "sourceRef": {"kind": "GitRepository", "name": source}}
    if target_namespace:
        spec["targetNamespace"] = target_namespace
    return {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


@dataclass
class Flux:
    """The running Flux of the test session (see e2e/cluster/flux.py): versions, ports, Git server."""

    info: dict

    def create_repo(self, name: str):
        from e2e.cluster import flux

        return flux.create_repo(name)

    def apply(self, api: client.ApiClient, namespace: str, name: str, repo, path: str = "./",
              interval: str = "10s", target_namespace: str | None = None) -> None:
        """A GitRepository and a Kustomization, both `name`, that apply `path` of `repo` every `interval`."""
        custom = client.CustomObjectsApi(api)
        custom.create_namespaced_custom_object(*SOURCE[:2], namespace, SOURCE[2],
                                               git_repository(name, namespace, repo.url, interval))
        custom.create_namespaced_custom_object(*KUSTOMIZE[:2], namespace, KUSTOMIZE[2],
                                               kustomization(name, namespace, name, path, interval,
                                                             target_namespace or namespace))

    @staticmethod
    def kustomization_status(api: client.ApiClient, namespace: str, name: str) -> dict:
        try:
            obj = client.CustomObjectsApi(api).get_namespaced_custom_object(*KUSTOMIZE[:2], namespace,
                                                                            KUSTOMIZE[2], name)
        except ApiException as e:
            if e.status == 404:
                return {}
            raise
        return obj.get("status") or {}

    @classmethod
    def applied_revision(cls, api: client.ApiClient, namespace: str, name: str) -> str | None:
        """The Git revision the Kustomization last applied, as `main@sha1:<sha>`."""
        return cls.kustomization_status(api, namespace, name).get("lastAppliedRevision")
