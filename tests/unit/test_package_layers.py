"""The tree shows the loop: the stage packages import one way.

verification reads the cluster through the actions' client calls (`actions.kube.call`), so actions must not
import verification back; what an action needs to judge a pod's health is pure and lives in
`core.pod_health`.
"""

import ast
from pathlib import Path

import remediator

PACKAGE = Path(remediator.__file__).parent


def imports_between_packages() -> dict[tuple[str, str], set[str]]:
    """(importing package, imported package) -> the imports, for remediator's subpackages."""
    edges: dict[tuple[str, str], set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        module = parts[:-1] if parts[-1] == "__init__" else parts
        here = module if path.name == "__init__.py" else module[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name.split(".") for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = list(here[: len(here) - node.level + 1]) if node.level else []
                targets = [base + (node.module.split(".") if node.module else [])]
            else:
                continue
            for target in targets:
                if target[:1] == ["remediator"] and len(target) > 1 and len(module) > 1 and target[1] != module[1]:
                    edges.setdefault((module[1], target[1]), set()).add(f"{'.'.join(module)} -> {'.'.join(target)}")
    return edges


def test_actions_do_not_import_verification():
    assert imports_between_packages().get(("actions", "verification"), set()) == set()


def test_no_two_stage_packages_import_each_other():
    edges = imports_between_packages()
    cycles = {tuple(sorted(pair)) for pair in edges if pair[::-1] in edges}
    # api's admission rules reuse core's parsers (durations, regexes, PromQL scope): one grammar for both
    assert cycles <= {("api", "core")}, {pair: edges[pair] for pair in edges if tuple(sorted(pair)) in cycles}


def test_a_crash_looping_pod_reads_as_failing_and_names_its_oom_killed_container():
    from types import SimpleNamespace as O

    from remediator.core.pod_health import failing_reasons, pod_observation

    app = O(name="app", restart_count=4, state=O(waiting=O(reason="CrashLoopBackOff"), terminated=None),
            last_state=O(terminated=O(reason="OOMKilled")))
    pod = O(metadata=O(name="web-1", uid="u1"), spec=O(node_name="n1"),
            status=O(phase="Running", container_statuses=[app], init_container_statuses=None,
                     conditions=[O(type="Ready", status="False")]))
    seen = pod_observation(pod)
    assert failing_reasons(seen) == ["CrashLoopBackOff", "OOMKilled"]
    assert seen.oom_killed_containers == ("app",) and seen.restarts == 4


def test_the_api_package_touches_no_files():
    """api/ is the typed models and pure CRD generation; reading and writing files is the edges' job
    (`remediator.chart_crds` writes the chart's CRDs, the CLI reads the YAML it validates)."""
    for path in (PACKAGE / "api").glob("*.py"):
        tree = ast.parse(path.read_text())
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | \
            {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        modules = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names} | \
            {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not names & {"open", "read_text", "write_text", "read_bytes", "write_bytes"}, path.name
        assert not modules & {"pathlib", "os", "argparse", "io", "shutil"}, path.name
