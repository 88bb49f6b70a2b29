"""Pinned versions of everything the local control plane is built from.

One Kubernetes minor with the etcd its go.mod requires; kwok, helm and
kubeconform releases whose go directive the machine's Go (1.26) builds.
"""

import os
from pathlib import Path

KUBERNETES = "v1.34.4"
ETCD = "v3.6.4"  # what k8s.io/kubernetes v1.34.4's go.mod requires
KWOK = "v0.8.0"
HELM = "v3.21.4"
KUBECONFORM = "v0.8.0"  # validates rendered manifests against schemas generated from the apiserver
# Flux: the newest releases whose go directive is 1.26 (v1.10.x needs go 1.27)
FLUX_SOURCE = "v1.9.6"
FLUX_KUSTOMIZE = "v1.9.6"
# Dependencies of those releases at versions the module proxy reachable here does not serve: the nearest served one.
FLUX_PINS = {"github.com/fluxcd/pkg/artifact": "v0.18.0"}  # v0.18.3 asked for


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "remediator"


def bin_dir() -> Path:
    return cache_dir() / "bin"


# name -> version: each binary lives at bin_dir()/<name>-<version>
BINARIES = {
    "kube-apiserver": KUBERNETES,
    "kube-controller-manager": KUBERNETES,
    "kube-scheduler": KUBERNETES,
    "kubectl": KUBERNETES,
    "etcd": ETCD,
    "kwok": KWOK,
    "kwokctl": KWOK,
    "helm": HELM,
    "kubeconform": KUBECONFORM,
    "source-controller": FLUX_SOURCE,
    "kustomize-controller": FLUX_KUSTOMIZE,
}

# What each use needs: the control plane always; the rest only when a command asks for it.
CONTROL_PLANE = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok", "kwokctl"]
EXTRAS = {
    "helm": ["helm"],
    "kubeconform": ["kubeconform"],
    "flux": ["source-controller", "kustomize-controller"],
}


def binary_path(name: str) -> Path:
    return bin_dir() / f"{name}-{BINARIES[name]}"
