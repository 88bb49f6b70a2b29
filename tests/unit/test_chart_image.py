"""The container image's Dockerfile agrees with the chart and the package (no container engine here to build it)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "remediator"
DOCKERFILE = CHART / "image" / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def base_images() -> list[str]:
    args = dict(a.split("=", 1) for w, a in instructions() if w == "ARG" and "=" in a)
    images = []
    for word, rest in instructions():
        if word == "FROM":
            image = rest.split()[0]
            images.append(re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image))
    return images


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (w, _) in enumerate(steps) if w == "FROM")
    return steps[last_from:]


def test_build_is_multi_stage_from_a_slim_python_pinned_to_a_patch_release():
    images = base_images()
    assert len(images) >= 2, "a builder stage and a runtime stage"
    for image in images:
        assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", image), f"{image} is not pinned to a patch release"


def test_runtime_stage_copies_only_the_virtualenv_and_runs_as_the_charts_non_root_user():
    stage = final_stage()
    copies = [rest for word, rest in stage if word == "COPY"]
    assert copies and all(c.startswith("--from=builder ") for c in copies), copies
    [user] = [rest for word, rest in stage if word == "USER"]
    uid = user.split(":")[0]
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    # runAsNonRoot can only be verified by the kubelet for a numeric user
    assert uid.isdigit() and int(uid) != 0
    assert int(uid) == values["podSecurityContext"]["runAsUser"]


def test_entrypoint_is_the_packages_run_command():
    [entrypoint] = [rest for word, rest in final_stage() if word == "ENTRYPOINT"]
    assert entrypoint == '["remediator", "run"]'
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["remediator"] == "remediator.cli:main"


def test_dockerignore_lets_through_everything_the_build_copies():
    allowed = [line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.startswith("!")]
    for word, rest in instructions():
        if word == "COPY" and not rest.startswith("--from"):
            for source in rest.split()[:-1]:
                assert source in allowed and (ROOT / source).exists(), f"COPY {source} is ignored or missing"


def test_pip_tools_in_the_builder_are_pinned():
    installs = [rest for word, rest in instructions() if word == "RUN" and "pip install" in rest]
    pinned = re.findall(r'"([\w-]+)==[\d.]+"', " ".join(installs))
    assert {"pip", "setuptools", "wheel"} <= set(pinned)
