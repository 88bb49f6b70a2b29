"""Fixtures shared by every tier.

Integration tests talk to a real apiserver: the cluster named by KUBECONFIG
when it is set, otherwise the local control plane (brought up, or reused).
Each test gets a namespace of its own, deleted afterwards.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def kubeconfig() -> str:
    given = os.environ.get("KUBECONFIG")
    if given:
        return given
    from e2e.cluster import control_plane

    try:
        path = control_plane.up()
    except control_plane.ClusterError as e:
        pytest.fail(f"local control plane could not start: {e}", pytrace=False)
    os.environ["KUBECONFIG"] = str(path)
    os.environ["PATH"] = f"{control_plane.tools_dir()}{os.pathsep}{os.environ['PATH']}"
    return str(path)


@pytest.fixture(scope="session")
def kube_api(kubeconfig):
    """A kubernetes.client.ApiClient for the test cluster, with admin rights."""
    from kubernetes import config

    return config.new_client_from_config(config_file=kubeconfig)


@pytest.fixture(scope="session")
def tool(kubeconfig):
    """Path of a CLI tool (kubectl, helm) matching the cluster: the built one, else the one on PATH."""
    def find(name: str) -> str:
        found = shutil.which(name)
        if not found:
            pytest.fail(f"{name} is not on PATH", pytrace=False)
        return found

    return find


@pytest.fixture
def namespace(kube_api, request):
    from kubernetes import client

    core = client.CoreV1Api(kube_api)
    base = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower())[:40].strip("-")
    name = f"t-{base}-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(
        name=name, labels={"remediator.dev/test": "true"})))
    yield name
    core.delete_namespace(name, propagation_policy="Background")


