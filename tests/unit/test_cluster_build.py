"""What each command compiles: the control plane always, helm / kubeconform / Flux only when asked."""

from __future__ import annotations

import pytest

from e2e.cluster import build
from e2e.cluster import versions as v


@pytest.fixture
def recorded_groups(tmp_path, monkeypatch):
    """build() with every group's compile step replaced by a recorder writing stand-in binaries."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(build, "check_go", lambda: None)
    calls: list[str] = []

    def fake(names):
        def compile_group(workdir):
            calls.append("+".join(names))
            for name in names:
                v.binary_path(name).write_text("#!/bin/sh\n")
        return compile_group

    monkeypatch.setattr(build, "GROUPS", [(names, fake(names)) for names, _ in build.GROUPS])
    return calls


def test_the_demo_build_compiles_the_control_plane_and_no_helm_kubeconform_or_flux(recorded_groups):
    build.build([])
    built = {n for group in recorded_groups for n in group.split("+")}
    assert built == set(v.CONTROL_PLANE)
    assert not built & {"helm", "kubeconform", "source-controller", "kustomize-controller"}


def test_asking_for_flux_compiles_only_flux_once_the_control_plane_is_cached(recorded_groups):
    build.build([])
    recorded_groups.clear()
    build.build(["flux"])
    assert recorded_groups == ["source-controller+kustomize-controller"]
    build.build(["flux"])
    assert recorded_groups == ["source-controller+kustomize-controller"], "a cached build compiles nothing"


def test_the_build_prints_what_it_compiles_with_versions_and_an_estimate(recorded_groups, capsys):
    build.build(["flux"])
    out = capsys.readouterr().out
    assert f"source-controller+kustomize-controller {v.FLUX_SOURCE}" in out
    assert f"etcd {v.ETCD}" in out
    assert "about " in out and " min" in out


def test_an_unknown_extra_is_refused_naming_the_choices(recorded_groups):
    with pytest.raises(build.BuildError, match="unknown extra fluxx: choose from helm, kubeconform, flux"):
        build.build(["fluxx"])
    assert recorded_groups == []


def test_the_wrapper_copies_a_gomods_version_pins_but_not_its_local_replaces():
    gomod = """module github.com/fluxcd/kustomize-controller
replace github.com/fluxcd/kustomize-controller/api => ./api
replace github.com/opencontainers/go-digest => github.com/opencontainers/go-digest v1.0.1-0.2022
replace (
\tsigs.k8s.io/kustomize/api => sigs.k8s.io/kustomize/api v0.21.1
\tgithub.com/x/y => github.com/other/y v1.0.0
)
"""
    assert build.pinned_replaces(gomod) == {"github.com/opencontainers/go-digest": "v1.0.1-0.2022",
                                            "sigs.k8s.io/kustomize/api": "v0.21.1"}
