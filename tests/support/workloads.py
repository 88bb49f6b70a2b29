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
