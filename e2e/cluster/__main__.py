"""python -m e2e.cluster build|up|down|status|env"""

from __future__ import annotations

import argparse
import json
import sys

from . import build as build_mod
from . import control_plane as cp


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.cluster", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="compile the pinned binaries into the cache (no-op when cached)")
    up = sub.add_parser("up", help="start the control plane with KWOK nodes, or reuse the running one")
    up.add_argument("--port", type=int, default=None, help="kube-apiserver port (default: a free one)")
    sub.add_parser("down", help="stop the control plane and remove its state (idempotent)")
    sub.add_parser("status", help="print the control plane's state as JSON")
    sub.add_parser("env", help="print `export KUBECONFIG=...` and a PATH with kubectl and helm")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            build_mod.build()
        elif args.command == "up":
            print(cp.up(args.port))
        elif args.command == "down":
            cp.down()
        elif args.command == "status":
            print(json.dumps(cp.status(), indent=2))
        elif args.command == "env":
            print(f"export KUBECONFIG={cp.kubeconfig_path()}")
            print(f'export PATH="{cp.tools_dir()}:$PATH"')
    except (build_mod.BuildError, cp.ClusterError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
