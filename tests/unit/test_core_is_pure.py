"""remediator.core and remediator.api never touch the network, a subprocess or the clock.

Read from the source with `ast`, so a violation is caught even in a branch no
test executes. Every module found is checked: a new file is covered the day it
is added.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import remediator

PACKAGE = Path(remediator.__file__).resolve().parent
PURE_PACKAGES = ("core", "api")

# Modules whose import means I/O, network or process control (prefix match on the dotted name).
FORBIDDEN_MODULES = (
    "kopf", "kubernetes", "aiohttp", "requests", "urllib", "urllib3", "httpx", "socket", "http",
    "slack_sdk", "subprocess", "ssl", "smtplib", "ftplib", "grpc", "selectors", "asyncio",
)
# The edges of the package itself: pure code may not reach them indirectly either.
FORBIDDEN_INTERNAL = (
    "remediator.controller", "remediator.signals", "remediator.actions", "remediator.records",
    "remediator.approvals.slack", "remediator.verification.probes", "remediator.kube", "remediator.secrets",
    "remediator.cli",
)
# Reading the clock: core takes `now` as an argument.
# datetime.now/utcnow/today on any receiver; the `time` module's clocks (and `import time` at all).
CLOCK_CALLS = {"now", "utcnow", "today"}
TIME_MODULE_CLOCKS = {"time", "time_ns", "monotonic", "monotonic_ns", "perf_counter", "perf_counter_ns",
                      "process_time"}
CLOCK_MODULES = {"time"}


def pure_modules() -> list[Path]:
    return sorted(p for package in PURE_PACKAGES for p in (PACKAGE / package).rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(tree: ast.Module, path: Path) -> list[tuple[int, str]]:
    """Every module an import statement names, relative imports resolved, with line numbers."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names.append((node.lineno, base))
            names += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Call) and _called_name(node.func) in {"__import__", "import_module"}:
            names.append((node.lineno, "<dynamic import>"))
    return names


def forbidden_import(name: str) -> bool:
    if name == "<dynamic import>":
        return True
    return any(name == bad or name.startswith(bad + ".") for bad in (*FORBIDDEN_MODULES, *FORBIDDEN_INTERNAL))


def clock_reads(tree: ast.Module) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and (
            node.func.attr in CLOCK_CALLS
            or (node.func.attr in TIME_MODULE_CLOCKS and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "time")
        ):
            found.append((node.lineno, ast.unparse(node.func)))
        elif isinstance(node, ast.Import) and any(a.name in CLOCK_MODULES for a in node.names):
            found.append((node.lineno, "import time"))
        elif isinstance(node, ast.ImportFrom) and node.module in CLOCK_MODULES:
            found.append((node.lineno, f"from {node.module} import ..."))
    return found


def _called_name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def test_the_walk_finds_the_pure_modules():
    names = {module_name(p) for p in pure_modules()}
    assert {"remediator.core.match.matching", "remediator.core.plan.guards", "remediator.core.engine.state",
            "remediator.api.models"} <= names


@pytest.mark.parametrize("path", pure_modules(), ids=module_name)
def test_pure_module_imports_nothing_that_does_io(path: Path):
    bad = [f"line {line}: {name}" for line, name in imported_names(_parsed(path), path) if forbidden_import(name)]
    assert not bad, f"{module_name(path)} must stay pure but imports: {', '.join(bad)}"


@pytest.mark.parametrize("path", [p for p in pure_modules() if p.relative_to(PACKAGE).parts[0] == "core"], ids=module_name)
def test_core_module_never_reads_the_clock(path: Path):
    reads = clock_reads(_parsed(path))
    assert not reads, (f"{module_name(path)} reads the clock ({', '.join(f'line {n}: {c}' for n, c in reads)}); "
                       "take `now: datetime` as an argument instead")


@pytest.mark.parametrize("source, offender", [
    ("import kopf\n", "kopf"),
    ("from kubernetes.client import CoreV1Api\n", "kubernetes.client"),
    ("import urllib.request\n", "urllib.request"),
    ("from http import client\n", "http"),
    ("from ..controller import ingest\n", "remediator.controller"),
    ("import importlib\nimportlib.import_module('socket')\n", "<dynamic import>"),
])
def test_the_import_check_catches_io_imports(source, offender):
    fake = PACKAGE / "core" / "fake.py"
    names = [name for _, name in imported_names(ast.parse(source), fake)]
    assert any(forbidden_import(n) and n.startswith(offender) for n in names), names


@pytest.mark.parametrize("source", [
    "from datetime import datetime\nx = datetime.now()\n",
    "import datetime\nx = datetime.datetime.utcnow()\n",
    "import time\n",
    "from time import monotonic\n",
    "from datetime import date\nx = date.today()\n",
    "x = time.monotonic()\n",
])
def test_the_clock_check_catches_clock_reads(source):
    assert clock_reads(ast.parse(source))


def test_the_checks_let_plain_pure_code_through():
    source = "from __future__ import annotations\nimport re\nfrom datetime import datetime, timedelta\n" \
             "from remediator.api.models import Signal\nfrom .durations import parse_duration\n" \
             "def f(now: datetime): return now + timedelta(seconds=1)\n"
    tree = ast.parse(source)
    assert not [n for _, n in imported_names(tree, PACKAGE / "core" / "fake.py") if forbidden_import(n)]
    assert not clock_reads(tree)
