"""Start, reuse, inspect and stop the local control plane.

kwokctl's binary runtime runs etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok-controller as local processes on loopback, with
certificates and a kubeconfig of its own. We hand it our built binaries and
stages, then register KWOK nodes.
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
import time
from pathlib import Path

from . import versions as v
from .build import ensure_built

CLUSTER = os.environ.get("REMEDIATOR_CLUSTER_NAME", "remediator")
NODES = 3
STAGES = Path(__file__).with_name("stages.yaml")


class ClusterError(RuntimeError):
    """A problem the user can act on; printed without a traceback."""


def log(msg: str) -> None:
    print(f"[cluster] {msg}", flush=True)


def workdir() -> Path:
    return v.cache_dir() / "kwok"


def cluster_dir() -> Path:
    return workdir() / "clusters" / CLUSTER


def kubeconfig_path() -> Path:
    return cluster_dir() / "kubeconfig.yaml"


def tools_dir() -> Path:
    """A PATH entry with plain names (kubectl, helm, ...) for the versioned binaries."""
    d = v.cache_dir() / "path"
    d.mkdir(parents=True, exist_ok=True)
    for name in v.BINARIES:
        link = d / name
        target = v.binary_path(name)
        if not target.is_file():  # an extra this machine has not built: no dangling name on PATH
            link.unlink(missing_ok=True)
            continue
        if not link.is_symlink() or os.readlink(link) != str(target):
            link.unlink(missing_ok=True)
            link.symlink_to(target)
    return d


def tool_env() -> dict[str, str]:
    env = dict(os.environ)
    env["KWOK_WORKDIR"] = str(workdir())
    env["PATH"] = f"{tools_dir()}{os.pathsep}{env.get('PATH', '')}"
    return env


def run(args: list[str], check: bool = True, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, env=tool_env(), capture_output=True, text=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise ClusterError(f"{' '.join(args[:4])} ... failed:\n{(proc.stderr or proc.stdout)[-3000:]}")
    return proc


def kubectl(*args: str, check: bool = True, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    return run([str(v.binary_path("kubectl")), "--kubeconfig", str(kubeconfig_path()), *args],
               check=check, timeout=timeout, **kw)


def apiserver_ready() -> bool:
    if not kubeconfig_path().is_file():
        return False
    try:
        return kubectl("get", "--raw", "/readyz", check=False, timeout=10).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def node_manifest(i: int) -> dict:
    name = f"kwok-node-{i}"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
                "topology.kubernetes.io/zone": f"zone-{i % 3}",
            },
        },
        "status": {
            "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "5000"},
            "capacity": {"cpu": "64", "memory": "256Gi", "pods": "5000"},
        },
    }


def ensure_nodes(count: int = NODES, timeout: float = 120) -> None:
    docs = {"apiVersion": "v1", "kind": "List", "items": [node_manifest(i) for i in range(count)]}
    kubectl("apply", "-f", "-", input=json.dumps(docs))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready_nodes() >= count:
            return
        time.sleep(0.5)
    raise ClusterError(f"only {ready_nodes()}/{count} KWOK nodes became Ready within {timeout:.0f}s")


def ready_nodes() -> int:
    out = kubectl("get", "nodes", "-o", "json", check=False).stdout
    try:
        items = json.loads(out)["items"]
    except (ValueError, KeyError):
        return 0
    return sum(
        1 for n in items
        if any(c["type"] == "Ready" and c["status"] == "True" for c in n.get("status", {}).get("conditions", []))
    )


def create(port: int | None) -> None:
    if port is not None and not port_free(port):
        raise ClusterError(f"port {port} on 127.0.0.1 is busy: choose another with --port, or stop what holds it")
    args = [
        str(v.binary_path("kwokctl")), "create", "cluster", "--name", CLUSTER,
        "--runtime", "binary",
        "--kube-apiserver-binary", str(v.binary_path("kube-apiserver")),
        "--kube-controller-manager-binary", str(v.binary_path("kube-controller-manager")),
        "--kube-scheduler-binary", str(v.binary_path("kube-scheduler")),
        "--kwok-controller-binary", str(v.binary_path("kwok")),
        "--etcd-binary", str(v.binary_path("etcd")),
        "--kube-authorization", "--kube-admission",
        "--config", str(STAGES),
        "--kubeconfig", "",
        "--timeout", "4m", "--wait", "2m",
    ]
    if port is not None:
        args += ["--kube-apiserver-port", str(port)]
    log(f"creating cluster {CLUSTER!r} (kwokctl, binary runtime)")
    proc = run(args, check=False, timeout=400)
    if proc.returncode != 0:
        text = proc.stderr + proc.stdout
        hint = ""
        if "address already in use" in text:
            hint = "\na port it needs is busy: stop what holds it, or pass another --port."
        raise ClusterError(f"kwokctl create cluster failed:{hint}\n{text[-3000:]}")


def up(port: int | None = None) -> Path:
    """Bring the cluster up, reusing a running one; returns the kubeconfig path."""
    ensure_built()
    with lifecycle_lock():  # test workers and other sessions starting at once: one creates, the rest reuse
        return up_locked(port)


@contextlib.contextmanager
def lifecycle_lock():
    workdir().mkdir(parents=True, exist_ok=True)
    with open(workdir() / f".{CLUSTER}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def up_locked(port: int | None) -> Path:
    started = time.monotonic()
    if apiserver_ready():
        log(f"reusing the running cluster {CLUSTER!r}")
    elif cluster_dir().exists():
        # The processes ended (session over, machine restarted): the cluster is disposable, so a fresh
        # one in seconds beats resuming an etcd whose peers and leases went stale.
        log(f"state dir {cluster_dir()} exists but its control plane is not running: recreating it")
        down()
        create(port)
        if not wait_ready(120):
            raise ClusterError("the recreated apiserver did not become ready within 120s; "
                               "see the logs under " + str(cluster_dir() / "logs"))
    else:
        create(port)
        if not wait_ready(120):
            raise ClusterError("the apiserver did not become ready within 120s; see `python -m e2e.cluster status`")
    ensure_nodes()
    log(f"ready in {time.monotonic() - started:.1f}s: {ready_nodes()} nodes; KUBECONFIG={kubeconfig_path()}")
    return kubeconfig_path()


def wait_ready(timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if apiserver_ready():
            return True
        time.sleep(0.5)
    return False


def down() -> None:
    if not cluster_dir().exists():
        log(f"no cluster {CLUSTER!r}: nothing to do")
        return
    from . import flux  # its processes live beside the control plane's

    flux.stop()
    kwokctl = v.binary_path("kwokctl")
    if kwokctl.is_file():
        run([str(kwokctl), "delete", "cluster", "--name", CLUSTER], check=False, timeout=120)
    shutil.rmtree(cluster_dir(), ignore_errors=True)
    log(f"cluster {CLUSTER!r} deleted")


def status() -> dict:
    info = {
        "cluster": CLUSTER,
        "stateDir": str(cluster_dir()),
        "exists": cluster_dir().exists(),
        "kubeconfig": str(kubeconfig_path()),
        "apiserverReady": apiserver_ready(),
        "binariesCached": {n: v.binary_path(n).is_file() for n in v.BINARIES},
    }
    info["readyNodes"] = ready_nodes() if info["apiserverReady"] else 0
    return info


def control_plane_pids() -> dict[str, int]:
    """Component name -> pid, from the pid files kwokctl keeps in the state dir."""
    pids = {}
    for pidfile in (cluster_dir() / "pids").glob("*.pid"):
        try:
            pids[pidfile.stem] = int(pidfile.read_text().strip())
        except ValueError:
            continue
    return pids


def restart_component(name: str, down_for: float = 0.0) -> int:
    """SIGKILL a control-plane process (e.g. "kube-apiserver") and start it again with the same command line,
    environment and working directory, after `down_for` seconds; returns the new pid. For chaos drills."""
    pidfile = cluster_dir() / "pids" / f"{name}.pid"
    pid = int(pidfile.read_text().strip())
    proc = Path(f"/proc/{pid}")
    argv = [a.decode() for a in (proc / "cmdline").read_bytes().split(b"\0") if a]
    env = dict(e.decode().split("=", 1) for e in (proc / "environ").read_bytes().split(b"\0") if b"=" in e)
    cwd = os.readlink(proc / "cwd")
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(down_for)
    log_path = cluster_dir() / "logs" / f"{name}.restarted.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        new = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    pidfile.write_text(str(new.pid))
    return new.pid


def restart_apiserver(down_for: float = 0.0, watch_for: float = 20.0) -> int:
    """`restart_component("kube-apiserver")`, leaving the cluster whole: the controller-manager and the
    scheduler exit when they cannot renew their leader lease meanwhile; whichever of them does within
    `watch_for` seconds is started again with its own command line."""
    dependents = {}
    for name in ("kube-controller-manager", "kube-scheduler"):
        pidfile = cluster_dir() / "pids" / f"{name}.pid"
        proc = Path(f"/proc/{int(pidfile.read_text().strip())}")
        dependents[name] = (proc, [a.decode() for a in (proc / "cmdline").read_bytes().split(b"\0") if a],
                            dict(e.decode().split("=", 1) for e in (proc / "environ").read_bytes().split(b"\0")
                                 if b"=" in e), os.readlink(proc / "cwd"))
    pid = restart_component("kube-apiserver", down_for)
    deadline = time.monotonic() + watch_for
    while dependents and time.monotonic() < deadline:
        for name, (proc, argv, env, cwd) in list(dependents.items()):
            if not proc.exists():
                with open(cluster_dir() / "logs" / f"{name}.restarted.log", "ab") as out:
                    new = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                           start_new_session=True)
                (cluster_dir() / "pids" / f"{name}.pid").write_text(str(new.pid))
                del dependents[name]
        time.sleep(0.5)
    return pid


def pause_component(name: str, seconds: float) -> None:
    """SIGSTOP a control-plane process for `seconds`, then SIGCONT it (e.g. etcd stalling)."""
    pid = int((cluster_dir() / "pids" / f"{name}.pid").read_text().strip())
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        os.kill(pid, signal.SIGCONT)
