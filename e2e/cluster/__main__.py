"""python -m e2e.cluster build|up|down|status|env [--with helm,kubeconform,flux]

The control plane is always built; the extras only when named (--with, or REMEDIATOR_WITH=flux,...).
`up --with flux` also starts Flux's source-controller and kustomize-controller and a Git server on loopback."""

from __future__ import annotations

import argparse
import json
import os
import sys

from . import build as build_mod
from . import control_plane as cp
from . import versions as v


def extras(text: str) -> list[str]:
    names = [x.strip() for x in text.split(",") if x.strip()]
    if names == ["all"]:
        return list(v.EXTRAS)
    unknown = sorted(set(names) - set(v.EXTRAS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown {', '.join(unknown)}: choose from {', '.join(v.EXTRAS)} or all")
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.cluster", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="compile the pinned binaries into the cache (no-op when cached)")
    up = sub.add_parser("up", help="start the control plane with KWOK nodes, or reuse the running one")
    up.add_argument("--port", type=int, default=None, help="kube-apiserver port (default: a free one)")
    for p in (build, up):
        p.add_argument("--with", dest="extras", type=extras, default=os.environ.get("REMEDIATOR_WITH", ""),
                       help=f"also build (and for `up`, start) these: {', '.join(v.EXTRAS)} or all "
                            "(default: $REMEDIATOR_WITH)")
    sub.add_parser("down", help="stop the control plane and remove its state (idempotent)")
    sub.add_parser("status", help="print the control plane's state as JSON")
    sub.add_parser("env", help="print `export KUBECONFIG=...` and a PATH with kubectl and helm")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            build_mod.build(args.extras)
        elif args.command == "up":
            build_mod.ensure_built(args.extras)
            path = cp.up(args.port)
            if "flux" in args.extras:
                from . import flux

                flux.up()
            print(path)
        elif args.command == "down":
            cp.down()
        elif args.command == "status":
            from . import flux

            print(json.dumps(cp.status() | {"flux": flux.info()}, indent=2))
        elif args.command == "env":
            print(f"export KUBECONFIG={cp.kubeconfig_path()}")
            print(f'export PATH="{cp.tools_dir()}:$PATH"')
    except (build_mod.BuildError, cp.ClusterError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
