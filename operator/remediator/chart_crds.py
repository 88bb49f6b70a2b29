"""Write the CRDs that `remediator.api.crds` generates into the chart, or check the chart's copies.

    python -m remediator.chart_crds --write charts/remediator/crds/
    python -m remediator.chart_crds --check charts/remediator/crds/   # exit 1 when stale

The file side of the generator: `api` stays models and pure generation.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .api.crds import generated_files
from .api.models import GROUP


def differences(directory: Path) -> list[str]:
    """What differs between the committed CRDs in `directory` and freshly generated ones."""
    wanted = generated_files()
    problems = []
    for name, text in sorted(wanted.items()):
        path = directory / name
        if not path.exists():
            problems.append(f"{path}: missing")
        elif path.read_text() != text:
            problems.append(f"{path}: differs from the models")
    for path in sorted(directory.glob(f"{GROUP}_*.yaml")):
        if path.name not in wanted:
            problems.append(f"{path}: no model generates it any more")
    return problems


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in generated_files().items():
        path = directory / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m remediator.chart_crds",
                                     description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", metavar="DIR", type=Path, help="write one YAML file per CRD into DIR")
    action.add_argument("--check", metavar="DIR", type=Path,
                        help="exit 1 if DIR's CRDs are not the generated ones")
    args = parser.parse_args(argv)
    if args.write:
        for path in write(args.write):
            print(f"wrote {path}")
        return 0
    problems = differences(args.check)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print("regenerate with: python -m remediator.chart_crds --write " + str(args.check), file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
