"""Small builders for workloads the tests deploy on KWOK nodes."""

from __future__ import annotations


def deployment(name: str, replicas: int = 3, image: str = "registry.local/web:1.0",
               labels: dict[str, str] | None = None, template_labels: dict[str, str] | None = None) -> dict:
    selector = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {**selector, **(labels or {})}},
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 10,
            "selector": {"matchLabels": selector},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
            "template": {
                "metadata": {"labels": {**selector, **(template_labels or {})}},
                "spec": {"containers": [{
                    "name": "app", "image": image,
                    "resources": {"requests": {"cpu": "10m", "memory": "32Mi"},
                                  "limits": {"memory": "64Mi"}},
                }]},
            },
        },
    }


def workload(kind: str, name: str, replicas: int = 2, image: str = "registry.local/web:1.0",
             on_delete: bool = False) -> dict:
    """A Deployment, StatefulSet or DaemonSet of the same pods (a DaemonSet runs one on each KWOK node)."""
    manifest = deployment(name, replicas=replicas, image=image)
    if kind == "Deployment":
        return manifest
    spec = manifest["spec"]
    spec.pop("strategy")
    spec["updateStrategy"] = {"type": "OnDelete"} if on_delete else {"type": "RollingUpdate"}
    if kind == "StatefulSet":
        spec["serviceName"] = name
    else:
        spec.pop("replicas")
    return {**manifest, "kind": kind}


def bad_template_patch(failure: str = "crashloop", image: str = "registry.local/web:bad") -> dict:
    """A new revision whose pods fail on KWOK the way `failure` says (see e2e/cluster/stages.yaml)."""
    return {"spec": {"template": {"metadata": {"labels": {"remediator.dev/kwok-fail": failure}},
                                  "spec": {"containers": [{"name": "app", "image": image}]}}}}
