"""Compile the control plane's binaries from the Go module proxy, cached by version.

k8s.io/kubernetes and etcd's server module carry `replace` directives into
their own source trees, so `go install pkg@version` refuses them; a
throw-away wrapper module that requires them and pins each replaced module to
its published version builds them instead. kwok, helm and kubeconform install directly.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import versions as v


class BuildError(RuntimeError):
    pass


def log(msg: str) -> None:
    print(f"[cluster build] {msg}", flush=True)


def go_env() -> dict[str, str]:
    env = dict(os.environ)
    env["GOTOOLCHAIN"] = "local"
    env["GOFLAGS"] = "-mod=mod -buildvcs=false"
    env.setdefault("CGO_ENABLED", "0")
    return env


def run_go(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        ["go", *args], cwd=cwd, env=env or go_env(), capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise BuildError(f"go {' '.join(args)} failed in {cwd}:\n{proc.stderr[-4000:]}")
    return proc.stdout


def check_go() -> None:
    if shutil.which("go") is None:
        raise BuildError("Go is not on PATH; install Go >= 1.26 to build the control plane")
    out = subprocess.run(["go", "env", "GOVERSION"], capture_output=True, text=True,
                         env=go_env()).stdout.strip()
    m = re.match(r"go(\d+)\.(\d+)", out)
    if not m or (int(m.group(1)), int(m.group(2))) < (1, 26):
        raise BuildError(f"Go {out or '?'} is too old: kwok {v.KWOK} and helm {v.HELM} need go >= 1.26")


def missing(names: list[str]) -> list[str]:
    return [n for n in names if not v.binary_path(n).is_file()]


def install(built: Path, name: str) -> None:
    """Move a built binary into the cache atomically, so a half-written file never counts."""
    dest = v.binary_path(name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".partial")
    shutil.copyfile(built, tmp)
    tmp.chmod(0o755)
    tmp.replace(dest)


def module_gomod(module: str, version: str, workdir: Path) -> str:
    info = json.loads(run_go(["mod", "download", "-json", f"{module}@{version}"], workdir))
    if info.get("Error"):
        raise BuildError(f"cannot download {module}@{version}: {info['Error']}")
    return Path(info["GoMod"]).read_text()


def published(modules: dict[str, str], workdir: Path) -> dict[str, str]:
    """Keep the module versions the proxy serves: a few staging modules (samples) are never published."""
    proc = subprocess.run(["go", "mod", "download", "-json", *(f"{m}@{ver}" for m, ver in modules.items())],
                          cwd=workdir, env=go_env(), capture_output=True, text=True)
    infos = json.loads("[" + re.sub(r"}\s*{", "},{", proc.stdout.strip()) + "]") if proc.stdout.strip() else []
    ok = {i["Path"] for i in infos if not i.get("Error")}
    skipped = sorted(set(modules) - ok)
    if skipped:
        log(f"not published, left unpinned: {', '.join(skipped)}")
    return {m: ver for m, ver in modules.items() if m in ok}


def replaced_modules(gomod: str) -> list[str]:
    """Module paths that a go.mod replaces with a local directory (its staging tree)."""
    return sorted(set(re.findall(r"^\s*(?:replace\s+)?(\S+)\s+=>\s+\.\.?/", gomod, re.M)))


def go_binary_name(pkg: str) -> str:
    """The file name `go build -o DIR/` gives a main package: its last element, less a /vN suffix."""
    parts = pkg.split("/")
    return parts[-2] if re.fullmatch(r"v\d+", parts[-1]) else parts[-1]


def pinned_replaces(gomod: str) -> dict[str, str]:
    """`replace X => X vN` lines of a go.mod (a module pinned to another published version)."""
    return dict(re.findall(r"^\s*(?:replace\s+)?(\S+)\s+=>\s+\1\s+(v\S+)\s*$", gomod, re.M))


def build_wrapper(label: str, requires: dict[str, str], replaces: dict[str, str],
                  imports: list[str], mains: dict[str, str], ldflags: str,
                  godebug: str | None = None, tools: list[str] = (), tidy: list[str] = ()) -> None:
    """Build `mains` (binary name -> main package) inside a generated wrapper module.
    `tools` lists main packages to keep in the module graph (a main package cannot be imported)."""
    with tempfile.TemporaryDirectory(prefix=f"remediator-{label}-") as tmpdir:
        wd = Path(tmpdir)
        lines = ["module local/wrapper", "", "go 1.26", ""]
        if godebug:
            lines += [f"godebug {godebug}", ""]
        lines += ["require ("] + [f"\t{m} {ver}" for m, ver in requires.items()] + [")", ""]
        if replaces:
            lines += ["replace ("] + [f"\t{m} => {m} {ver}" for m, ver in replaces.items()] + [")", ""]
        if tools:
            lines += ["tool ("] + [f"\t{t}" for t in tools] + [")"]
        (wd / "go.mod").write_text("\n".join(lines) + "\n")
        if imports:
            (wd / "tools.go").write_text(
                "package wrapper\n\nimport (\n" + "".join(f'\t_ "{i}"\n' for i in imports) + ")\n"
            )
        log(f"{label}: resolving modules")
        run_go(["mod", "tidy", *tidy], wd)
        out = wd / "out"
        out.mkdir()
        log(f"{label}: compiling {', '.join(mains)} (this takes minutes on a cold cache)")
        run_go(["build", "-trimpath", "-ldflags", ldflags, "-o", str(out) + "/", *mains.values()], wd)
        for name, pkg in mains.items():
            install(out / go_binary_name(pkg), name)


def build_kubernetes(workdir: Path) -> None:
    ver = v.KUBERNETES
    gomod = module_gomod("k8s.io/kubernetes", ver, workdir)
    staging = published({m: "v0" + ver[2:] for m in replaced_modules(gomod)}, workdir)
    godebug = (re.search(r"^godebug\s+(\S+)", gomod, re.M) or [None, None])[1]
    major, minor = ver[1:].split(".")[:2]
    stamp = []
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        stamp += [f"-X {pkg}.gitVersion={ver}", f"-X {pkg}.gitMajor={major}",
                  f"-X {pkg}.gitMinor={minor}", f"-X {pkg}.gitTreeState=clean"]
    mains = {n: f"k8s.io/kubernetes/cmd/{n}" for n in
             ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")}
    build_wrapper(
        "kubernetes", {"k8s.io/kubernetes": ver, **staging}, staging,
        ["k8s.io/kubernetes/cmd/kube-apiserver/app",
         "k8s.io/kubernetes/cmd/kube-controller-manager/app",
         "k8s.io/kubernetes/cmd/kube-scheduler/app",
         "k8s.io/kubectl/pkg/cmd"],
        mains, "-s -w " + " ".join(stamp), godebug,
    )


def build_etcd(workdir: Path) -> None:
    ver = v.ETCD
    mods = [f"go.etcd.io/etcd/{m}/v3" for m in ("api", "client/pkg", "client", "pkg", "server")]
    pinned = {m: ver for m in mods}
    build_wrapper("etcd", pinned, pinned, ["go.etcd.io/etcd/server/v3/etcdmain"],
                  {"etcd": "go.etcd.io/etcd/server/v3"}, "-s -w")


def build_flux(workdir: Path) -> None:
    """source-controller and kustomize-controller: each replaces its ./api module with its own tree and pins
    a few dependencies; the wrapper requires the published api modules and copies those pins."""
    controllers = {"source-controller": v.FLUX_SOURCE, "kustomize-controller": v.FLUX_KUSTOMIZE}
    requires, replaces = {}, {}
    for name, ver in controllers.items():
        module = f"github.com/fluxcd/{name}"
        gomod = module_gomod(module, ver, workdir)
        requires |= {module: ver, f"{module}/api": ver}
        replaces |= pinned_replaces(gomod)
    replaces |= v.FLUX_PINS
    # The wrapper has no source: the controllers' main packages are its tools. `tidy -e`: modules only their
    # tests import (helmtestserver) are not served here and are not needed to build.
    build_wrapper("flux", requires, replaces, [], {n: f"github.com/fluxcd/{n}" for n in controllers},
                  "-s -w", tools=[f"github.com/fluxcd/{n}" for n in controllers], tidy=["-e"])


def go_install(label: str, pkgs: dict[str, str], ldflags: str, workdir: Path) -> None:
    with tempfile.TemporaryDirectory(prefix=f"remediator-{label}-") as gobin:
        env = go_env() | {"GOBIN": gobin, "GOFLAGS": "-buildvcs=false"}
        log(f"{label}: compiling {', '.join(pkgs)}")
        run_go(["install", "-trimpath", "-ldflags", ldflags, *pkgs.values()], workdir, env)
        for name in pkgs:
            install(Path(gobin) / name, name)


def build_kwok(workdir: Path) -> None:
    ver = v.KWOK
    ld = (f"-s -w -X sigs.k8s.io/kwok/pkg/consts.Version={ver.lstrip('v')}"
          f" -X sigs.k8s.io/kwok/pkg/consts.KubeVersion={v.KUBERNETES.lstrip('v')}")
    go_install("kwok", {n: f"sigs.k8s.io/kwok/cmd/{n}@{ver}" for n in ("kwok", "kwokctl")}, ld, workdir)


def build_helm(workdir: Path) -> None:
    go_install("helm", {"helm": f"helm.sh/helm/v3/cmd/helm@{v.HELM}"},
               f"-s -w -X helm.sh/helm/v3/internal/version.version={v.HELM}"
               " -X helm.sh/helm/v3/internal/version.gitTreeState=clean", workdir)


def build_kubeconform(workdir: Path) -> None:
    go_install("kubeconform", {"kubeconform": f"github.com/yannh/kubeconform/cmd/kubeconform@{v.KUBECONFORM}"},
               "-s -w", workdir)


GROUPS = [
    (["etcd"], build_etcd),
    (["kwok", "kwokctl"], build_kwok),
    (["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"], build_kubernetes),
    (["helm"], build_helm),
    (["kubeconform"], build_kubeconform),
    (["source-controller", "kustomize-controller"], build_flux),
]

# Cold-cache seconds per group, as measured by a cold `.ci/run` on this project's 2-core machine otherwise idle
# (empty Go module and build caches; the groups built in this order, each reusing what the previous ones compiled,
# while apt and pip ran): the estimate printed before compiling, until this machine records its own in
# build-times.json. On a machine busy with other work: etcd 313 s, kwok 498 s, Kubernetes 418 s, helm 234 s.
COLD_SECONDS = {
    "etcd": 74,
    "kwok+kwokctl": 111,
    "kube-apiserver+kube-controller-manager+kube-scheduler+kubectl": 310,
    "helm": 68,
    "kubeconform": 4,
    "source-controller+kustomize-controller": 311,  # in the background at nice 19 while pytest ran
}


@contextlib.contextmanager
def build_lock():
    v.bin_dir().mkdir(parents=True, exist_ok=True)
    with open(v.bin_dir() / ".build.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def needed(extras: list[str] = ()) -> list[str]:
    """The binaries a command needs: the control plane plus the named extras (keys of versions.EXTRAS)."""
    unknown = sorted(set(extras) - set(v.EXTRAS))
    if unknown:
        raise BuildError(f"unknown extra {', '.join(unknown)}: choose from {', '.join(v.EXTRAS)}")
    return v.CONTROL_PLANE + [n for e in extras for n in v.EXTRAS[e]]


def estimate(key: str) -> float:
    path = build_times_file()
    known = json.loads(path.read_text()) if path.is_file() else {}
    return known.get(key, COLD_SECONDS.get(key, 300))


def build(extras: list[str] = ()) -> dict[str, float]:
    """Build what the control plane and the named extras need and is not cached yet; returns seconds per group."""
    want = set(needed(extras))
    timings: dict[str, float] = {}
    started = time.monotonic()
    with build_lock():
        todo = [(names, fn) for names, fn in GROUPS if set(names) & want and missing(names)]
        if not todo:
            log(f"cached in {v.bin_dir()}: " + ", ".join(f"{n} {v.BINARIES[n]}" for n in sorted(want)))
            return timings
        check_go()
        total = sum(estimate("+".join(names)) for names, _ in todo)
        log("to compile (once; cached by version in " + str(v.bin_dir()) + "): "
            + "; ".join(f"{'+'.join(n)} {v.BINARIES[n[0]]}" for n, _ in todo)
            + f" -- about {total / 60:.0f} min on 2 cores")
        with tempfile.TemporaryDirectory(prefix="remediator-go-") as wd:
            for names, fn in todo:
                key = "+".join(names)
                log(f"building {', '.join(names)} {v.BINARIES[names[0]]} (about {estimate(key) / 60:.0f} min)")
                t0 = time.monotonic()
                fn(Path(wd))
                timings[key] = time.monotonic() - t0
                log(f"built {', '.join(names)} in {timings[key]:.0f}s (total {time.monotonic() - started:.0f}s)")
                record_build_times({key: timings[key]})
    return timings


def build_times_file() -> Path:
    return v.cache_dir() / "build-times.json"


def record_build_times(timings: dict[str, float]) -> None:
    """Keep how long each group took when it was last really compiled (read by e2e/bench)."""
    path = build_times_file()
    known = json.loads(path.read_text()) if path.is_file() else {}
    known.update({k: round(t, 1) for k, t in timings.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(known, indent=2, sort_keys=True))


def ensure_built(extras: list[str] = ()) -> None:
    if missing(needed(extras)):
        build(extras)


if __name__ == "__main__":  # pragma: no cover
    try:
        build()
    except BuildError as e:
        sys.exit(str(e))
