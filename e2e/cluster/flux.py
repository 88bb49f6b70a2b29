"""Flux on the local control plane: source-controller, kustomize-controller and a loopback Git server.

Started only when asked (`python -m e2e.cluster up --with flux`, REMEDIATOR_WITH=flux, or the pytest fixture
`flux`), as processes beside the control plane, like kube-controller-manager: the cluster's admin kubeconfig,
leader election off, every port (artifact storage, metrics, health, Git) a free one on 127.0.0.1 picked at
start and kept in the cluster's state dir, so several clusters run side by side. Their CRDs come from the same
modules' `config/crd/bases`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from . import build
from . import control_plane as cp
from . import gitserver
from . import versions as v

NAMESPACE = "flux-system"
CONTROLLERS = {"source-controller": v.FLUX_SOURCE, "kustomize-controller": v.FLUX_KUSTOMIZE}
PROCESSES = ("git-server", *CONTROLLERS)


def log(msg: str) -> None:
    print(f"[flux] {msg}", flush=True)


def state_dir() -> Path:
    return cp.cluster_dir() / "flux"


def git_root() -> Path:
    return state_dir() / "git"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def crd_dir(name: str) -> Path:
    """The CRDs of a Flux controller's module, copied into the cache once (next to its binary)."""
    ver = CONTROLLERS[name]
    dest = v.cache_dir() / "crds" / f"{name}-{ver}"
    if dest.is_dir():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    info = json.loads(build.run_go(["mod", "download", "-json", f"github.com/fluxcd/{name}@{ver}"], dest.parent))
    if info.get("Error"):
        raise cp.ClusterError(f"cannot download github.com/fluxcd/{name}@{ver}: {info['Error']}")
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{name}-"))
    for f in (Path(info["Dir"]) / "config" / "crd" / "bases").glob("*.yaml"):
        shutil.copyfile(f, tmp / f.name)
    try:
        tmp.rename(dest)
    except OSError:  # another process copied them first
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def alive(pid: int, name: str) -> bool:
    """Whether `pid` still runs Flux's `name` (a reused pid runs something else). The controllers are known by
    their executable: a process just exec'd reads an empty cmdline until the kernel has set up its arguments, and
    a loaded machine can stay in that window long enough for a check to call a healthy start dead."""
    try:
        if name != "git-server":
            return name in os.path.basename(os.readlink(f"/proc/{pid}/exe"))
        return b"e2e.cluster.gitserver" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def pids() -> dict[str, int]:
    out = {}
    for name in PROCESSES:
        try:
            out[name] = int((state_dir() / f"{name}.pid").read_text())
        except (OSError, ValueError):
            continue
    return out


def info() -> dict:
    """What a test needs: ports, the Git server's URL and root, versions; {} when Flux is not running."""
    path = state_dir() / "flux.json"
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    running = pids()
    data["running"] = all(alive(running.get(n, -1), n) for n in PROCESSES)
    return data


@contextlib.contextmanager
def lifecycle_lock():
    """One starter or stopper of this cluster's Flux at a time, across processes. Without it a second `up` on the
    same cluster (another session, a CLI call) finds Flux still starting, judges it unhealthy and stops it: it
    kills every process in the state dir and reopens the logs, so the first sees all three exit with empty logs."""
    state_dir().mkdir(parents=True, exist_ok=True)
    with open(state_dir() / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def up() -> dict:
    """Start Flux on the running cluster, or reuse the running one; returns `info()`."""
    build.ensure_built(["flux"])
    with lifecycle_lock():
        return start_or_reuse()


def start_or_reuse() -> dict:
    current = info()
    if current.get("running") and healthy(current):
        log(f"reusing Flux on cluster {cp.CLUSTER!r}: git {current['gitURL']}")
        return current
    stop_locked()
    started = time.monotonic()
    install_crds()
    cp.kubectl("create", "namespace", NAMESPACE, check=False)
    for attempt in range(3):
        try:
            start_processes()
            break
        except cp.ClusterError as e:
            # a free port picked here can be taken by another cluster starting at the same moment; any other
            # failure is retried once, and the failure is shown either way
            if attempt == 2 or (attempt == 1 and "address already in use" not in str(e)):
                raise
            log(f"start failed, starting again on other ports: {e}")
    log(f"source-controller {v.FLUX_SOURCE}, kustomize-controller {v.FLUX_KUSTOMIZE} running on cluster "
        f"{cp.CLUSTER!r} in {time.monotonic() - started:.1f}s; git {info()['gitURL']} (repos in {git_root()})")
    return info()


def start_processes() -> None:
    ports = {k: free_port() for k in ("git", "storage", "source-metrics", "source-health",
                                      "kustomize-metrics", "kustomize-health")}
    state_dir().mkdir(parents=True, exist_ok=True)
    git_root().mkdir(parents=True, exist_ok=True)
    storage = state_dir() / "storage"
    storage.mkdir(exist_ok=True)
    common = ["--enable-leader-election=false", "--log-level=info", "--log-encoding=console"]
    commands = {
        "git-server": [sys.executable, "-m", "e2e.cluster.gitserver", "--root", str(git_root()),
                       "--port", str(ports["git"])],
        "source-controller": [
            str(v.binary_path("source-controller")), *common,
            f"--storage-path={storage}", f"--storage-addr=127.0.0.1:{ports['storage']}",
            f"--storage-adv-addr=127.0.0.1:{ports['storage']}",
            f"--metrics-addr=127.0.0.1:{ports['source-metrics']}",
            f"--health-addr=127.0.0.1:{ports['source-health']}"],
        "kustomize-controller": [
            str(v.binary_path("kustomize-controller")), *common,
            "--requeue-dependency=5s",  # a Kustomization created before its source's first artifact: 5 s, not 30
            f"--metrics-addr=127.0.0.1:{ports['kustomize-metrics']}",
            f"--health-addr=127.0.0.1:{ports['kustomize-health']}"],
    }
    env = dict(os.environ, KUBECONFIG=str(cp.kubeconfig_path()), RUNTIME_NAMESPACE=NAMESPACE,
               PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    logs = state_dir() / "logs"
    logs.mkdir(exist_ok=True)
    started: dict[str, subprocess.Popen] = {}
    for name, argv in commands.items():
        with open(logs / f"{name}.log", "wb") as out:  # fresh: a failure shows this start's lines
            started[name] = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                             start_new_session=True, cwd=state_dir())
        (state_dir() / f"{name}.pid").write_text(str(started[name].pid))
    data = {"versions": {**CONTROLLERS}, "ports": ports, "gitURL": f"http://127.0.0.1:{ports['git']}",
            "gitRoot": str(git_root()), "logs": str(logs), "namespace": NAMESPACE}
    (state_dir() / "flux.json").write_text(json.dumps(data, indent=2))
    deadline = time.monotonic() + 120
    while True:
        up = healthy(data)
        # our unreaped children (their pids are ours), looked at after the health check too: a port picked here
        # and taken by another cluster's controller answers /readyz while ours has exited on the bind
        dead = [n for n, proc in started.items() if proc.poll() is not None]
        if up and not dead:
            break
        if dead or time.monotonic() > deadline:
            why = f"{', '.join(exit_status(n, started[n]) for n in dead)}" if dead else "not healthy within 120s"
            tails = "\n".join(f"--- {n}.log\n" + tail(logs / f"{n}.log") for n in (dead or PROCESSES))
            stop_locked()
            raise cp.ClusterError(f"Flux did not start on cluster {cp.CLUSTER!r}: {why}\n{tails}")
        time.sleep(0.3)


def exit_status(name: str, proc: subprocess.Popen) -> str:
    """How a started process ended, for the error: killed by which signal, or its exit code."""
    code = proc.poll()
    if code < 0:
        return f"{name} (pid {proc.pid}) killed by {signal.Signals(-code).name}"
    return f"{name} (pid {proc.pid}) exited with code {code}"


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def healthy(data: dict) -> bool:
    ports = data["ports"]
    urls = [f"http://127.0.0.1:{ports['source-health']}/readyz", f"http://127.0.0.1:{ports['kustomize-health']}/readyz",
            f"{data['gitURL']}/"]
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                resp.read()
        except urllib.error.HTTPError as e:
            if not url.startswith(data["gitURL"]) or e.code >= 500:  # the Git server answers / with a 404
                return False
        except OSError:
            return False
    return True


def install_crds() -> None:
    for name in CONTROLLERS:
        cp.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd_dir(name)), timeout=120)
    cp.kubectl("wait", "--for=condition=Established", "--timeout=60s",
               "crd/gitrepositories.source.toolkit.fluxcd.io", "crd/kustomizations.kustomize.toolkit.fluxcd.io",
               timeout=90)


def started_here() -> list[int]:
    """Flux processes running in this cluster's Flux state dir: ours, even if a crash lost their pid file."""
    here, found = str(state_dir()), []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and os.readlink(proc / "cwd") == here and any(
                    alive(int(proc.name), name) for name in PROCESSES):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def stop() -> None:
    """Stop the Flux processes of this cluster (idempotent); the CRDs and objects stay."""
    if not state_dir().is_dir():
        return
    with lifecycle_lock():
        stop_locked()


def stop_locked() -> None:
    running = started_here()
    for pid in running:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}/cwd").exists() for pid in running):
        time.sleep(0.1)
    for pid in started_here():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for name in PROCESSES:
        (state_dir() / f"{name}.pid").unlink(missing_ok=True)


def create_repo(name: str) -> gitserver.Repo:
    """A new repository on the running Flux's Git server; `repo.url` goes into a GitRepository's spec.url."""
    data = info()
    if not data.get("running"):
        raise cp.ClusterError("Flux is not running: start it with `python -m e2e.cluster up --with flux`")
    return gitserver.create_repo(Path(data["gitRoot"]), data["gitURL"], name)
