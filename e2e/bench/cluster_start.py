"""Figures for the local control plane: build times, `up` time, memory, disk.

    python -m e2e.bench.cluster_start [--fresh]

--fresh takes the cluster down first so `up` is measured from nothing
(state dir included); without it a running cluster is reused and that reuse
is what is timed. Prints a table and writes e2e/bench/results/cluster_start.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import psutil

from e2e.cluster import build, control_plane
from e2e.cluster import versions as v

RESULTS = Path(__file__).with_name("results")


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def rss_by_component() -> dict[str, float]:
    out = {}
    for name, pid in control_plane.control_plane_pids().items():
        try:
            out[name] = psutil.Process(pid).memory_info().rss / 2**20
        except psutil.Error:
            continue
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fresh", action="store_true", help="take the cluster down first")
    args = parser.parse_args()

    t0 = time.monotonic()
    build.build()
    warm_build = time.monotonic() - t0
    cold = json.loads(build.build_times_file().read_text()) if build.build_times_file().is_file() else {}

    if args.fresh:
        control_plane.down()
    t0 = time.monotonic()
    control_plane.up()
    up_seconds = time.monotonic() - t0

    rss = rss_by_component()
    figures = {
        "versions": dict(v.BINARIES),
        "cold_build_seconds_by_group": cold,
        "cold_build_seconds_total": round(sum(cold.values()), 1),
        "warm_build_seconds": round(warm_build, 2),
        "up_seconds": round(up_seconds, 2),
        "up_mode": "fresh" if args.fresh else "reuse-or-restart",
        "control_plane_rss_mib": {k: round(x, 1) for k, x in sorted(rss.items())},
        "control_plane_rss_mib_total": round(sum(rss.values()), 1),
        "cache_bin_mib": round(dir_size(v.bin_dir()) / 2**20, 1),
        "go_build_cache_note": "Go's module and build caches (~/go, ~/.cache/go-build) are extra",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cluster_start.json").write_text(json.dumps(figures, indent=2))
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")
    if cold:
        print(f"{'warm/cold build ratio':<{width}}  {warm_build / max(sum(cold.values()), 1e-9):.5f}")


if __name__ == "__main__":
    main()
