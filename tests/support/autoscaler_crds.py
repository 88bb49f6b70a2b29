"""KEDA's ScaledObject CRD and the VerticalPodAutoscaler CRD, from their Go modules' own manifests (pinned; the Go
module cache keeps them). Only the CRDs: neither KEDA nor the VPA runs here, the tests check the operator's side."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from e2e.cluster.build import go_env

KEDA = ("github.com/kedacore/keda/v2", "v2.21.0", "config/crd/bases/keda.sh_scaledobjects.yaml")
VPA = ("k8s.io/autoscaler/vertical-pod-autoscaler", "v1.8.1", "deploy/vpa-v1-crd-gen.yaml")


def manifest(module: str, version: str, path: str) -> Path:
    out = subprocess.run(["go", "mod", "download", "-json", f"{module}@{version}"], capture_output=True, text=True,
                         env=go_env(), timeout=600, check=True, cwd="/")
    return Path(json.loads(out.stdout)["Dir"]) / path


def install(kubectl: str) -> None:
    for pinned in (KEDA, VPA):
        proc = subprocess.run([kubectl, "apply", "--server-side", "-f", str(manifest(*pinned))],
                              capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr
    for crd in ("scaledobjects.keda.sh", "verticalpodautoscalers.autoscaling.k8s.io"):
        subprocess.run([kubectl, "wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s"],
                       capture_output=True, text=True, timeout=90, check=True)
