"""The `remediator` command.

Each subcommand is a pair of functions, one adding its arguments to a parser
and one running it (returning the exit code), registered in COMMANDS below.
A name with a space ("slo rules") nests under its first word. Only the
invoked command's arguments are added, and each command imports what it needs
inside its functions, so `remediator validate` runs without kopf or a cluster.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    name: str  # "validate", or "slo rules" for a nested one
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


# ---------------------------------------------------------------- validate


def add_validate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="YAML files, several documents each allowed")


def run_validate(args: argparse.Namespace) -> int:
    """Check Runbook/RemediationPolicy YAML with the apiserver's rules; exit 1 when any is invalid."""
    from remediator.api.validation import UnreadableYaml, validate_file

    failed = False
    for name in args.files:
        try:
            documents = validate_file(name)
        except (OSError, UnicodeDecodeError) as e:
            print(f"{name}: cannot read: {e}")
            failed = True
            continue
        except UnreadableYaml as e:
            print(f"{name}: invalid YAML: {e}")
            failed = True
            continue
        for document in documents:
            for problem in document.problems:
                print(f"{name}: {document.label}: {problem}")
        failed |= any(not d.valid for d in documents)
        if documents and all(d.valid for d in documents):
            print(f"{name}: {len(documents)} document(s) valid", file=sys.stderr)
    return 1 if failed else 0


# ---------------------------------------------------------------- run: the operator, in controller/main.py


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    from remediator.controller.main import add_run_arguments as add

    add(parser)


def run_operator(args: argparse.Namespace) -> int:
    from remediator.controller.main import run

    return run(args)


# ---------------------------------------------------------------- approve / deny, through the apiserver


def add_vote_arguments(parser: argparse.ArgumentParser) -> None:
    from remediator.approvals.kubernetes import add_arguments

    add_arguments(parser)


def run_approve(args: argparse.Namespace) -> int:
    from remediator.approvals.kubernetes import run

    return run(args, "approve")


def run_deny(args: argparse.Namespace) -> int:
    from remediator.approvals.kubernetes import run

    return run(args, "deny")


# ---------------------------------------------------------------- registry

COMMANDS: tuple[Command, ...] = (
    Command("run", "run the operator (kopf, webhooks, /metrics and /healthz on one port)",
            add_run_arguments, run_operator),
    Command("validate", "check Runbook, RemediationPolicy... YAML offline, as the apiserver would",
            add_validate_arguments, run_validate),
    Command("approve", "approve a waiting Remediation as yourself (RBAC decides whether you may)",
            add_vote_arguments, run_approve),
    Command("deny", "deny a waiting Remediation as yourself (RBAC decides whether you may)",
            add_vote_arguments, run_deny),
)


def build_parser(
    commands: Sequence[Command] = COMMANDS, argv: Sequence[str] | None = None
) -> argparse.ArgumentParser:
    """The parser; with `argv`, only the command it invokes gets its arguments (and imports)."""
    parser = argparse.ArgumentParser(prog="remediator", description="Closed-loop remediation for Kubernetes.")
    groups: dict[tuple[str, ...], argparse._SubParsersAction] = {
        (): parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    }
    parents: dict[tuple[str, ...], argparse.ArgumentParser] = {(): parser}
    for command in commands:
        words = tuple(command.name.split())
        for depth in range(1, len(words)):  # make "slo" before "slo rules"
            prefix = words[:depth]
            if prefix not in parents:
                parents[prefix] = groups[prefix[:-1]].add_parser(
                    prefix[-1], help=f"{' '.join(prefix)} commands")
                groups[prefix] = parents[prefix].add_subparsers(
                    dest="_".join(("command", *prefix)), metavar="COMMAND", required=True)
        sub = groups[words[:-1]].add_parser(words[-1], help=command.help, description=command.help)
        if argv is None or list(argv[:len(words)]) == list(words):
            command.add_arguments(sub)
        sub.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv=argv).parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
