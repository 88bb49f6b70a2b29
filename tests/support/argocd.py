"""Argo CD's Application and ApplicationSet CRDs from its Go module's manifests (pinned, cached), for tests of
the operator's side against the real apiserver. The Argo CD controller itself is not run here: a test plays its
part by writing what it would (status.sync.revision)."""

from __future__ import annotations

import json
import os
import subprocess
import zipfile
from pathlib import Path

MODULE, VERSION = "github.com/argoproj/argo-cd/v3", "v3.6.1"
CRDS = ("application-crd.yaml", "applicationset-crd.yaml")
APPLICATION = ("argoproj.io", "v1alpha1", "applications")
APPLICATIONSET = ("argoproj.io", "v1alpha1", "applicationsets")


def cache_dir() -> Path:
    return Path(os.environ.get("REMEDIATOR_CACHE", Path.home() / ".cache" / "remediator")) / "crds" / \
        f"argo-cd-{VERSION}"


def crd_files() -> list[Path]:
    """The CRD files, taken from the module zip the go command downloaded and checked against the checksum
    database. Its go.mod asks for a newer Go than builds here, so `go mod download` reports an error after
    verifying the zip; only the zip's manifests are used, nothing is compiled."""
    dest = cache_dir()
    if not all((dest / name).is_file() for name in CRDS):
        out = subprocess.run(["go", "mod", "download", "-json", f"{MODULE}@{VERSION}"], capture_output=True,
                             text=True, timeout=600, check=False, env={**os.environ, "GOTOOLCHAIN": "local"})
        info = json.loads(out.stdout or "{}")
        zipped = Path(info.get("Zip") or "/nonexistent")
        if not zipped.is_file() or not zipped.with_suffix(".ziphash").is_file():
            raise RuntimeError(f"cannot download {MODULE}@{VERSION}: {info.get('Error') or out.stderr}")
        dest.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(zipped) as z:
            for name in CRDS:
                (dest / name).write_bytes(z.read(f"{MODULE}@{VERSION}/manifests/crds/{name}"))
    return [dest / name for name in CRDS]


def application(name: str, namespace: str, automated: dict | None, revision: str = "abc123",
                annotations: dict | None = None, owner_references: list | None = None) -> dict:
    sync = {"automated": automated} if automated is not None else {}
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": name, "namespace": namespace, "annotations": annotations or {},
                         **({"ownerReferences": owner_references} if owner_references else {})},
            "spec": {"project": "default", "destination": {"server": "https://kubernetes.default.svc",
                                                           "namespace": namespace},
                     "source": {"repoURL": "https://git.example/web.git", "path": "app", "targetRevision": "main"},
                     "syncPolicy": sync},
            "status": {"sync": {"status": "Synced", "revision": revision},
                       # what the Argo CD controller records it applied: the operator checks the target is there
                       "resources": [{"group": "apps", "version": "v1", "kind": "Deployment", "namespace": namespace,
                                      "name": name}]}}


def application_set(name: str, namespace: str) -> dict:
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"generators": [], "template": {"metadata": {"name": "{{name}}"}, "spec": {
                "project": "default", "destination": {"server": "https://kubernetes.default.svc"}}}}}


def tracking_id(app_namespace: str, app: str, namespace: str, deployment: str) -> str:
    """The annotation Argo CD puts on what it applies, for an Application outside the argocd namespace."""
    return f"{app_namespace}_{app}:apps/Deployment:{namespace}/{deployment}"
