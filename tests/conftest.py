"""Fixtures shared by every tier.

Integration tests talk to a real apiserver: the cluster named by KUBECONFIG
when it is set, otherwise the local control plane (brought up, or reused).
Each test gets a namespace of its own, deleted afterwards.
"""

from __future__ import annotations

import contextlib
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
def flux(kubeconfig):
    """Flux's source-controller and kustomize-controller (and a Git server) on the local control plane, built on
    first use and started once per session; a test that asks for them fails, with the reason, if they cannot be
    had (never a silent skip). See tests/support/flux.py."""
    from e2e.cluster import build, control_plane, flux as flux_cluster
    from tests.support.flux import Flux

    if os.environ.get("KUBECONFIG") != str(control_plane.kubeconfig_path()):
        pytest.fail(f"the flux fixture runs Flux on the local control plane only; KUBECONFIG={kubeconfig}",
                    pytrace=False)
    try:
        return Flux(flux_cluster.up())
    except (build.BuildError, control_plane.ClusterError) as e:
        pytest.fail(f"Flux could not be built or started: {e}", pytrace=False)


@pytest.fixture(autouse=True)
def in_process_watches_end_with_the_test():
    """Operator contexts a test makes in-process start watch threads; they end with the test (left running,
    they watch namespaces long deleted and log as the interpreter exits, which aborts it). Parked, not stopped for
    good: a context that outlives the test (module- or session-scoped) primes and follows again when next read."""
    yield
    from remediator.controller import caches

    caches.park_all()


def pytest_collection_modifyitems(items):
    """`-m flux` / `-m "not flux"` select the tests that need the real Flux controllers; they run last, so the
    Flux build that e2e/run-tests starts in the background has the other tiers' time to finish."""
    for item in items:
        if "flux" in getattr(item, "fixturenames", ()):
            item.add_marker("flux")
            item.add_marker("serial")  # one Flux for the cluster, and its reconciles are timed
            # the first one may wait for that build to finish (minutes when cold); a test's own timeout wins
            item.add_marker(pytest.mark.timeout(1800))
    items.sort(key=run_order)  # stable: keeps the order within each file


def run_order(item) -> int:
    """Files whose tests may share the cluster first, then the `serial` modules (under pytest-xdist they run one
    at a time: together they hold the other workers back once, not once each), the Flux tests last."""
    if item.get_closest_marker("flux") is not None:
        return 2
    module = item.getparent(pytest.Module)
    return int(module is not None and module.get_closest_marker("serial") is not None)


GATED = pytest.StashKey[bool]()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    """Under pytest-xdist, a `serial` module runs alone on the shared cluster (tests/support/serial_gate.py)."""
    gate = serial_gate(item.config)
    if gate is None or item.stash.get(GATED, False):  # once per item, however many conftests hold this hook
        yield
        return
    item.stash[GATED] = True
    gate.enter(item)
    try:
        yield
    finally:
        gate.leave(item, nextitem)


def serial_gate(config):
    from tests.support.serial_gate import SerialGate, gate_directory

    if not hasattr(config, "remediator_serial_gate"):
        directory = gate_directory()
        config.remediator_serial_gate = SerialGate(directory) if directory else None
    return config.remediator_serial_gate


@pytest.fixture(scope="session")
def kube_api(kubeconfig):
    """A kubernetes.client.ApiClient for the test cluster, with admin rights."""
    from kubernetes import config

    return config.new_client_from_config(config_file=kubeconfig)


@pytest.fixture(scope="session")
def tool(kubeconfig):
    """Path of a CLI tool (kubectl, helm) matching the cluster: the built one, else the one on PATH."""
    def find(name: str) -> str:
        from e2e.cluster import build, control_plane, versions

        extra = next((e for e, names in versions.EXTRAS.items() if name in names), None)
        if extra and build.missing([name]) and shutil.which(name) is None:
            try:  # helm and kubeconform are built only for the commands that use them
                build.build([extra])
            except build.BuildError as e:
                pytest.fail(f"{name} could not be built: {e}", pytrace=False)
            control_plane.tools_dir()
        found = shutil.which(name)
        if not found:
            pytest.fail(f"{name} is not on PATH", pytrace=False)
        return found

    return find


@pytest.fixture
def namespace(kube_api, request):
    from kubernetes import client

    from remediator.api.models import GROUP, VERSION

    core = client.CoreV1Api(kube_api)
    base = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower())[:40].strip("-")
    name = f"t-{base}-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(
        name=name, labels={"remediator.dev/test": "true"})))
    yield name
    # Its Remediations go at once, not when the namespace controller gets to them: the storm hold-off counts
    # every namespace's incidents of the last 5 minutes, and under xdist another worker's tests are planning.
    with contextlib.suppress(client.ApiException):
        client.CustomObjectsApi(kube_api).delete_collection_namespaced_custom_object(
            GROUP, VERSION, name, "remediations")
    core.delete_namespace(name, propagation_policy="Background")


def pytest_terminal_summary(terminalreporter):
    """Where the suite's time goes, by test file (setup, call and teardown): what to cut to keep CI short."""
    seconds: dict[str, float] = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) in ("setup", "call", "teardown"):
                path = report.nodeid.split("::", 1)[0]
                seconds[path] = seconds.get(path, 0.0) + report.duration
    if not seconds:
        return
    terminalreporter.write_sep("=", f"time by test file (top 25 of {len(seconds)}; all: {sum(seconds.values()):.0f} s)")
    for path, spent in sorted(seconds.items(), key=lambda item: -item[1])[:25]:
        terminalreporter.write_line(f"{spent:8.1f}s  {path}")
