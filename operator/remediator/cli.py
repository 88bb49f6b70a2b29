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
    parser.add_argument("files", nargs="+", metavar="PATH",
                        help="YAML files (several documents each allowed) or directories of them")


def run_validate(args: argparse.Namespace) -> int:
    """Check Runbook/RemediationPolicy YAML with the apiserver's rules; exit 1 when any is invalid."""
    from pathlib import Path

    from remediator.api.validation import UnreadableYaml, validate_text

    failed = False
    for name in map(str, _yaml_files(args.files)):
        try:
            documents = validate_text(Path(name).read_text())
        except (OSError, UnicodeDecodeError) as e:
            print(f"{name}: cannot read: {e}")
            failed = True
            continue
        except UnreadableYaml as e:
            print(f"{name}: invalid YAML: {e}")
            failed = True
            continue
        except RecursionError:  # the YAML parser and the models recurse per level
            print(f"{name}: nested too deeply to be a Runbook or a policy")
            failed = True
            continue
        for document in documents:
            for problem in document.problems:
                print(f"{name}: {document.label}: {problem}")
        failed |= any(not d.valid for d in documents)
        if documents and all(d.valid for d in documents):
            print(f"{name}: {len(documents)} document(s) valid", file=sys.stderr)
    return 1 if failed else 0


# ---------------------------------------------------------------- simulate: the logic is core/report/simulation.py


def add_simulate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--alert", required=True, metavar="FILE",
                        help="an Alertmanager webhook payload (version 4 JSON), one alert object, or a list of them")
    parser.add_argument("--runbooks", required=True, nargs="+", metavar="PATH",
                        help="Runbook YAML files or directories (several documents per file allowed)")
    parser.add_argument("--policy", nargs="+", default=[], metavar="FILE",
                        help="RemediationPolicy YAML files or directories (default: none, the default guardrails)")
    parser.add_argument("--history", metavar="FILE",
                        help="exported Remediations (`kubectl get remediations -A -o json`); default: none")
    parser.add_argument("--replicas", type=int, metavar="N",
                        help="the target's replicas (default: unknown, which the blast-radius guard blocks on)")
    parser.add_argument("--namespace", metavar="NS",
                        help="where Runbooks without metadata.namespace live (default: the alert's namespace)")
    parser.add_argument("--namespace-label", action="append", default=[], metavar="KEY=VALUE",
                        help="a label of the alert's namespace, for policy selection and risk (repeatable)")
    parser.add_argument("--target-label", action="append", default=[], metavar="KEY=VALUE",
                        help="a label of the target object, e.g. remediator.dev/criticality=high (repeatable)")
    parser.add_argument("--namespace-pods", type=int, metavar="N",
                        help="pods in the alert's namespace, for the risk's namespace share (default: unknown)")
    parser.add_argument("--server-dry-run", choices=("succeeded", "failed", "unavailable"), default="unavailable",
                        help="what the apiserver's dry run of the step would answer; it cannot run offline "
                             "(default: unavailable)")
    parser.add_argument("--changes", metavar="FILE",
                        help="recent changes (YAML/JSON list of {kind, object, at, what, namespace, before, after, "
                             "revision}) to rank as the probable cause; an empty list means nothing changed "
                             "(default: the cause is unknown)")
    parser.add_argument("--reference", action="append", default=[], metavar="KIND/NAME",
                        help="an object the target references, e.g. ConfigMap/web-config, Node/n1 (repeatable)")
    parser.add_argument("--change-window", default="1h", metavar="DURATION",
                        help="how far before the breach a change can be its cause (default 1h)")
    parser.add_argument("--hpa", metavar="MIN:MAX",
                        help="an HPA with these minReplicas:maxReplicas targets the workload: a scale step is shown "
                             "as the raise of its floor under a lease (default: no autoscaler)")
    parser.add_argument("--now", metavar="TIME", help="RFC 3339 time to simulate at (default: now)")
    parser.add_argument("--output", choices=("text", "json"), default="text")


def _hpa_bounds(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    low, _, high = text.partition(":")
    if not (low.isdigit() and high.isdigit()) or not 0 < int(low) <= int(high) <= 100_000:
        raise ValueError(f"--hpa wants MIN:MAX with 0 < MIN <= MAX, got {text!r}")
    return int(low), int(high)


def run_simulate(args: argparse.Namespace) -> int:
    """What the operator would do with an alert: match, plan, risk, approval, guards. Acts on nothing."""
    import json
    from datetime import UTC, datetime

    from remediator.core.report import simulation
    from remediator.core.durations import parse_duration

    try:
        now = datetime.now(UTC) if args.now is None else _aware_time(args.now)
        settings = simulation.Settings(
            now=now, replicas=args.replicas, runbook_namespace=args.namespace,
            namespace_labels=dict(_key_value(text, "--namespace-label") for text in args.namespace_label),
            target_labels=dict(_key_value(text, "--target-label") for text in args.target_label),
            namespace_pods=args.namespace_pods, server_dry_run=args.server_dry_run,
            changes=None if args.changes is None else _load_changes(args.changes),
            references=frozenset(_reference(text) for text in args.reference),
            change_window=parse_duration(args.change_window), hpa=_hpa_bounds(args.hpa))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    runbooks, runbook_problems = _load_resources(args.runbooks, "Runbook")
    policies, policy_problems = _load_resources(args.policy, "RemediationPolicy")
    alerts, alert_problems = _load_alerts(args.alert)
    history, history_problems = _load_history(args.history)
    problems = runbook_problems + policy_problems + alert_problems + history_problems
    if problems:
        print("\n".join(problems))
        return 1
    if not runbooks:
        print(f"{', '.join(args.runbooks)}: no Runbook found")
        return 1
    result = simulation.simulate(
        alerts,
        [simulation.RunbookDoc(name, spec, namespace, origin=origin) for name, namespace, spec, origin in runbooks],
        [simulation.PolicyDoc(name, spec) for name, _, spec, _ in policies],
        history, settings)
    if args.output == "json":
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(simulation.render_text(result), end="")
    return 0


def _load_changes(name: str) -> tuple:
    """The changes of a --changes file; ValueError naming the file, the entry and the field."""
    import yaml

    from remediator.core.plan.cause import Change
    from remediator.core.durations import parse_time

    try:
        with open(name) as f:
            raw = yaml.safe_load(f) or []
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise ValueError(f"{name}: cannot read changes: {e}") from None
    if not isinstance(raw, list):
        raise ValueError(f"{name}: changes must be a list of {{kind, object, at, ...}}")  # noqa: TRY004
    changes = []
    for index, item in enumerate(raw):
        where = f"{name}: changes[{index}]"
        if not isinstance(item, dict):
            raise ValueError(f"{where}: must be a mapping")  # noqa: TRY004  reported as a usage error
        for key in ("kind", "object", "at"):
            if not item.get(key):
                raise ValueError(f"{where}.{key}: required")
        try:
            at = parse_time(str(item["at"]))
            changes.append(Change(kind=item["kind"], object=str(item["object"]), namespace=item.get("namespace"),
                                  at=at, what=str(item.get("what") or f"{item['object']} {item['kind']}"),
                                  before=str(item.get("before", "")), after=str(item.get("after", "")),
                                  revision=None if item.get("revision") is None else str(item["revision"])))
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
    return tuple(changes)


def _reference(text: str) -> str:
    kind, sep, name = text.partition("/")
    if not sep or not kind or not name:
        raise ValueError(f"--reference wants KIND/NAME, got {text!r}")
    return text


def _key_value(text: str, option: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"{option} wants KEY=VALUE, got {text!r}")
    return key, value


def _aware_time(text: str):
    from remediator.core.durations import parse_time

    return parse_time(text)


def _yaml_files(paths: Sequence[str]) -> list:
    from pathlib import Path

    files = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
        else:
            files.append(path)
    return files


def _load_resources(paths: Sequence[str], kind: str) -> tuple[list[tuple], list[str]]:
    """(name, namespace, spec, origin) of each `kind` document in the files, or the validation messages."""
    from remediator.api.models import RunbookSpec
    from remediator.api.validation import UnreadableYaml, describe, is_ours_or_unknown, parse_documents

    found: list[tuple] = []
    problems: list[str] = []
    for path in _yaml_files(paths):
        try:
            docs = [(i, d) for i, d in parse_documents(path.read_text()) if is_ours_or_unknown(d)]
        except (OSError, UnicodeDecodeError) as e:
            problems.append(f"{path}: cannot read: {e}")
            continue
        except UnreadableYaml as e:
            problems.append(f"{path}: invalid YAML: {e}")
            continue
        for index, doc in docs:
            document = describe(index, doc)
            problems += [f"{path}: {document.label}: {problem}" for problem in document.problems]
            if document.problems or document.kind != kind:
                continue
            metadata = doc.get("metadata") or {}
            spec = RunbookSpec.model_validate(doc["spec"]) if kind == "Runbook" else doc["spec"]
            found.append((document.name, metadata.get("namespace"), spec, f"{path} doc {index}"))
    return found, problems


def _read_json(name: str) -> tuple[object, str | None]:
    """The file's JSON, or the problem reading it."""
    import json

    try:
        with open(name) as f:
            return json.load(f), None
    except (OSError, UnicodeDecodeError) as e:
        return None, f"{name}: cannot read: {e}"
    except ValueError as e:
        return None, f"{name}: not JSON: {e}"


def _load_alerts(name: str) -> tuple[list, list[str]]:
    from pydantic import ValidationError

    from remediator.core.report.simulation import IncomingAlert
    from remediator.signals.alertmanager import AlertmanagerAlert, PayloadError, parse_payload, to_signal

    raw, problem = _read_json(name)
    if problem:
        return [], [problem]
    try:
        if isinstance(raw, dict) and "alerts" in raw:
            alerts = parse_payload(raw).alerts
        else:
            items = raw if isinstance(raw, list) else [raw]
            # A lone alert (as `amtool` or the v2 API show one) may lack the webhook's status string.
            alerts = [AlertmanagerAlert.model_validate(
                {**item, "status": item.get("status") if isinstance(item.get("status"), str) else "firing"})
                if isinstance(item, dict) else AlertmanagerAlert.model_validate(item) for item in items]
    except PayloadError as e:
        return [], [f"{name}: not an Alertmanager payload: {e}"]
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "alert"
        return [], [f"{name}: not an alert: {where}: {first['msg']}"]
    if not alerts:
        return [], [f"{name}: no alerts"]
    return [IncomingAlert(a.status, to_signal(a)) for a in alerts], []


def _load_history(name: str | None) -> tuple[list[dict], list[str]]:
    if name is None:
        return [], []
    raw, problem = _read_json(name)
    if problem:
        return [], [problem]
    items = raw.get("items", [raw]) if isinstance(raw, dict) else raw
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        return [], [f"{name}: expected a Remediation, a list of them, or a List with items"]
    return [i for i in items if i.get("kind", "Remediation") == "Remediation"], []


# ---------------------------------------------------------------- run: the operator, in controller/main.py


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    from remediator.controller.main import add_run_arguments as add

    add(parser)


def run_operator(args: argparse.Namespace) -> int:
    from remediator.controller.main import run

    return run(args)


# ---------------------------------------------------------------- approve / deny, through the apiserver


def add_slo_rules_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--filename", action="append", required=True, metavar="PATH",
                        help="ServiceLevelObjective YAML file or directory (repeatable)")
    parser.add_argument("-n", "--namespace", default="default",
                        help="namespace of SLOs whose metadata names none (default: default)")
    parser.add_argument("--format", choices=["rules", "prometheusrule"], default="rules",
                        help="a Prometheus rule file, or a prometheus-operator PrometheusRule per SLO")


def run_slo_rules(args: argparse.Namespace) -> int:
    """Recording and alerting rules equivalent to the operator's own evaluation, for Prometheus to run."""
    import yaml

    from remediator.api.slo import ServiceLevelObjectiveSpec
    from remediator.core.slo.burn_rate import prometheus_rules

    found, problems = _load_resources(args.filename, "ServiceLevelObjective")
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems or not found:
        if not found and not problems:
            print("no ServiceLevelObjective found in the given files", file=sys.stderr)
        return 1
    documents, groups = [], []
    for name, namespace, spec, _origin in found:
        rules = prometheus_rules(name, namespace or args.namespace, ServiceLevelObjectiveSpec.model_validate(spec))
        groups += rules["groups"]
        documents.append({"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
                          "metadata": {"name": f"{name}-slo", "namespace": namespace or args.namespace,
                                       "labels": {"app.kubernetes.io/managed-by": "remediator"}},
                          "spec": rules})
    if args.format == "rules":
        documents = [{"groups": groups}]
    print(yaml.safe_dump_all(documents, sort_keys=False, allow_unicode=True, width=1000), end="")
    return 0


def add_vote_arguments(parser: argparse.ArgumentParser) -> None:
    from remediator.approvals.kubernetes import add_arguments

    add_arguments(parser)


def run_approve(args: argparse.Namespace) -> int:
    from remediator.approvals.kubernetes import run

    return run(args, "approve")


def run_deny(args: argparse.Namespace) -> int:
    from remediator.approvals.kubernetes import run

    return run(args, "deny")


def add_resolve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("remediation", metavar="NAME")
    parser.add_argument("-n", "--namespace", required=True)
    parser.add_argument("--note", required=True, help="what fixed it, for the record (up to 1024 characters)")
    parser.add_argument("--kubeconfig", default=None)


def run_resolve(args: argparse.Namespace) -> int:
    from remediator.approvals.kubernetes import resolve

    return resolve(args)


# ---------------------------------------------------------------- report: figures in core/report/maturity.py


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    from remediator.records.report import add_arguments

    add_arguments(parser)


def run_report(args: argparse.Namespace) -> int:
    from remediator.records.report import run

    return run(args)


# ---------------------------------------------------------------- registry

COMMANDS: tuple[Command, ...] = (
    Command("run", "run the operator (kopf, webhooks, /metrics and /healthz on one port)",
            add_run_arguments, run_operator),
    Command("validate", "check Runbook, RemediationPolicy... YAML offline, as the apiserver would",
            add_validate_arguments, run_validate),
    Command("simulate", "what the operator would do with an alert, offline: match, plan, risk, approval, guards",
            add_simulate_arguments, run_simulate),
    Command("slo rules", "Prometheus recording and alerting rules for ServiceLevelObjectives (sloth-style)",
            add_slo_rules_arguments, run_slo_rules),
    Command("approve", "approve a waiting Remediation as yourself (RBAC decides whether you may)",
            add_vote_arguments, run_approve),
    Command("deny", "deny a waiting Remediation as yourself (RBAC decides whether you may)",
            add_vote_arguments, run_deny),
    Command("resolve", "mark an escalated incident over (service restored by people), as yourself, with a note",
            add_resolve_arguments, run_resolve),
    Command("report", "MTTR, auto-remediation share, failure rate, SLO coverage; DORA bands and AIOps levels",
            add_report_arguments, run_report),
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
