"""`remediator report`: read the records (cluster or exported JSON), ask core.maturity, print or plot.

The edge: it lists Remediations, ServiceLevelObjectives, RemediationPolicies, Deployments,
StatefulSets, Runbooks and Namespaces from the apiserver, or takes them from
files exported with `kubectl get ... -A -o json` (any mix of kinds, one List
or object per file). Everything it concludes comes from core.maturity.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ..core.report import dora_keys, maturity, retention, rollout_counts
from .rollout_counts import KEY, LABEL, read_counts
from ..core.durations import format_duration, parse_duration, parse_time

WORKLOAD_KINDS = ("Deployment", "StatefulSet")


@dataclass
class Export:
    """The objects a report reads, whichever way they were fetched."""

    remediations: list[dict] = field(default_factory=list)
    workloads: list[dict] = field(default_factory=list)
    slos: list[dict] = field(default_factory=list)
    runbooks: list[dict] = field(default_factory=list)
    policies: list[dict] = field(default_factory=list)
    namespaces: dict[str, dict[str, str]] | None = None  # name -> labels; None: unknown
    has_inventory: bool = False
    rollouts: list[dora_keys.Rollout] = field(default_factory=list)
    has_rollouts: bool = False
    counts: list[tuple[str, dict]] = field(default_factory=list)  # (where it was stored, document)
    has_tallies: bool = False

    def add(self, item: Mapping[str, Any]) -> None:
        kind = item.get("kind", "Remediation")
        if kind == "Remediation":
            self.remediations.append(dict(item))
        elif kind in WORKLOAD_KINDS:
            self.workloads.append(dict(item))
            self.has_inventory = True
        elif kind == "ServiceLevelObjective":
            self.slos.append(dict(item))
        elif kind == "Runbook":
            self.runbooks.append(dict(item))
        elif kind == "RemediationPolicy":
            self.policies.append(dict(item))
        elif kind == "ReplicaSet":
            rollout = replicaset_rollout(item)
            self.has_rollouts = True
            if rollout is not None:
                self.rollouts.append(rollout)
        elif kind == "ConfigMap" and LABEL in ((item.get("metadata") or {}).get("labels") or {}):
            metadata = item["metadata"]
            self.add_counts(str(metadata.get("namespace", "")),
                            rollout_counts.decode((item.get("data") or {}).get(KEY), metadata["labels"][LABEL]))
        elif kind == "Namespace":
            metadata = item.get("metadata") or {}
            self.namespaces = self.namespaces or {}
            self.namespaces[metadata.get("name", "")] = dict(metadata.get("labels") or {})


    def add_counts(self, where: str, doc: dict) -> None:
        self.has_tallies = True
        self.counts.append((where, doc))

    def claimed_twice(self) -> dict[str, list[str]]:
        """Counted namespaces whose counts were found in more than one namespace: a forgery, or two operators."""
        where: dict[str, set[str]] = {}
        for store, doc in self.counts:
            where.setdefault(str(doc.get("namespace", "")), set()).add(store)
        return {ns: sorted(stores) for ns, stores in where.items() if len(stores) > 1}

    @property
    def tallies(self) -> list[rollout_counts.Tally]:
        doubtful = self.claimed_twice()
        return [t for _, doc in self.counts if doc.get("namespace") not in doubtful
                for t in rollout_counts.tallies(doc)]

    def counts_notes(self) -> list[str]:
        stores = sorted({where for where, _ in self.counts})
        # a forgery of a namespace the operator has not counted is found once: only the second store tells it
        several = [f"rollout counts found in several namespaces ({', '.join(stores)}): whoever may create "
                   f"ConfigMaps in one of them can write counts of a namespace the operator has not counted (give "
                   f"--counts-namespace, the operator's namespace)"] if len(stores) > 1 else []
        return several + [f"rollout counts of {ns} found in namespaces {', '.join(stores)}: none of them used (give "
                f"--counts-namespace, the operator's namespace); its rollouts come from the ReplicaSet history"
                for ns, stores in sorted(self.claimed_twice().items())]

    @property
    def rollouts_source(self) -> str:
        sources = (["the operator's rollout counts (ConfigMaps labelled " + LABEL + ", per workload and UTC day, "
                    f"kept {rollout_counts.KEEP_DAYS} days)"] if self.has_tallies else []) + \
            (["the ReplicaSet history (revisionHistoryLimit per Deployment) for revisions the counts do not hold"]
             if self.has_rollouts else [])
        return "; ".join(sources)


REVISION = "deployment.kubernetes.io/revision"


def replicaset_rollout(rs: Mapping[str, Any]) -> dora_keys.Rollout | None:
    """A Deployment's ReplicaSet with a revision is one rollout, at the ReplicaSet's creation (the history keeps
    revisionHistoryLimit of them, 10 by default: older rollouts are gone from it)."""
    metadata = rs.get("metadata") or {}
    owner = next((o for o in metadata.get("ownerReferences") or [] if o.get("controller")), None)
    revision = (metadata.get("annotations") or {}).get(REVISION)
    if owner is None or owner.get("kind") != "Deployment" or not revision or not metadata.get("creationTimestamp"):
        return None
    try:
        at = parse_time(str(metadata["creationTimestamp"]))
    except ValueError:
        return None
    return dora_keys.Rollout(at, str(metadata.get("namespace", "")), f"Deployment/{owner.get('name', '')}", revision,
                             str(owner.get("uid") or ""))


class ReportError(Exception):
    """Input the report cannot use; the message says which file or flag."""


def read_files(paths: Sequence[str], counts_namespace: str | None = None) -> Export:
    """The export's objects; rollout counts only from `counts_namespace` when given (as read from the cluster)."""
    export = Export()
    for path in paths:
        try:
            with open(path) as f:
                raw = json.load(f)
        except (OSError, UnicodeDecodeError) as e:
            raise ReportError(f"{path}: cannot read: {e}") from None
        except ValueError as e:
            raise ReportError(f"{path}: not JSON: {e}") from None
        items = raw.get("items", [raw]) if isinstance(raw, dict) else raw
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ReportError(f"{path}: expected an object, a list of them, or a List with items")
        for item in items:
            metadata = item.get("metadata") if isinstance(item.get("metadata"), dict) else {}
            if counts_namespace and item.get("kind") == "ConfigMap" and metadata.get("namespace") != counts_namespace:
                continue
            export.add(item)
    return export


def read_cluster(kubeconfig: str | None, counts_namespace: str | None = None) -> Export:
    import urllib3
    from kubernetes.client.rest import ApiException
    from kubernetes.config import ConfigException

    try:
        return list_cluster(kubeconfig, counts_namespace)
    except ConfigException as e:
        raise ReportError(f"no cluster to read (give --kubeconfig, or -f an exported file): {e}") from None
    except ApiException as e:
        raise ReportError(f"the apiserver refused a list: {e.status} {e.reason}") from None
    except (OSError, urllib3.exceptions.HTTPError) as e:  # connection refused, DNS, TLS
        raise ReportError(f"cannot reach the apiserver: {e}") from None


def list_cluster(kubeconfig: str | None, counts_namespace: str | None = None) -> Export:
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    from ..kube import Resources, load_api_client

    api = load_api_client(kubeconfig)
    resources = Resources(api)
    apps = client.AppsV1Api(api)
    export = Export(has_inventory=True)
    for item in resources.list("Remediation"):
        export.add(item)
    for item in resources.list("ServiceLevelObjective"):
        export.add(item)
    for item in resources.list("Runbook"):
        export.add(item)
    for item in resources.list("RemediationPolicy"):
        export.add(item)
    for kind, items in (("Deployment", apps.list_deployment_for_all_namespaces().items),
                        ("StatefulSet", apps.list_stateful_set_for_all_namespaces().items)):
        export.workloads += [{"kind": kind, "metadata": {"namespace": w.metadata.namespace, "name": w.metadata.name}}
                             for w in items]
    try:
        replicasets = apps.list_replica_set_for_all_namespaces().items
        export.has_rollouts = True
    except ApiException as e:
        if e.status != 403:
            raise
        replicasets = []  # a reader who may not list ReplicaSets gets every other figure; DORA's say "not measured"
    for rs in replicasets:
        owners = [{"kind": o.kind, "name": o.name, "controller": o.controller, "uid": o.uid}
                  for o in rs.metadata.owner_references or []]
        rollout = replicaset_rollout({"metadata": {
            "namespace": rs.metadata.namespace, "ownerReferences": owners, "annotations": rs.metadata.annotations,
            "creationTimestamp": rs.metadata.creation_timestamp.isoformat()}})
        if rollout is not None:
            export.rollouts.append(rollout)
    try:
        for where, doc in read_counts(api, counts_namespace):
            export.add_counts(where, doc)
    except ApiException as e:
        if e.status != 403:
            raise  # a reader who may not read the counts gets the ReplicaSet history alone
    export.namespaces = {ns.metadata.name: dict(ns.metadata.labels or {})
                         for ns in client.CoreV1Api(api).list_namespace().items}
    return export


def inventory(export: Export, system: Sequence[str] = maturity.SYSTEM_NAMESPACES) -> maturity.Inventory:
    def key(item: Mapping[str, Any], kind: str, name: str) -> tuple[str, str, str]:
        return (str((item.get("metadata") or {}).get("namespace", "")), kind, name)

    workloads = frozenset(key(w, w["kind"], str(w["metadata"].get("name", ""))) for w in export.workloads)
    targets = set()
    for slo in export.slos:
        target = (slo.get("spec") or {}).get("target") or {}
        if target.get("name"):
            targets.add(key(slo, target.get("kind", "Deployment"), target["name"]))
    adaptive = sum(1 for rb in export.runbooks if (rb.get("spec") or {}).get("adaptive"))
    return maturity.Inventory(workloads, frozenset(targets), adaptive, known=export.has_inventory,
                              system_namespaces=tuple(system), rollouts=tuple(export.rollouts),
                              rollouts_known=export.has_rollouts or export.has_tallies,
                              rollouts_source=export.rollouts_source, tallies=tuple(export.tallies))


def parse_moment(text: str, now: datetime, flag: str) -> datetime:
    """An RFC 3339 time, or a duration meaning that long ago (30d, 12h)."""
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        return parse_time(text)
    except ValueError:
        raise ReportError(f"{flag} wants an RFC 3339 time (2026-11-01T00:00:00Z) or a duration ago (30d), "
                          f"got {text!r}") from None


def label_pairs(texts: Iterable[str]) -> dict[str, str]:
    pairs = {}
    for text in texts:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise ReportError(f"--label wants KEY=VALUE (a namespace label, e.g. team=payments), got {text!r}")
        pairs[key] = value
    return pairs


def scope_of(args: argparse.Namespace, export: Export, now: datetime) -> maturity.Scope:
    since = parse_moment(args.since, now, "--since") if args.since else None
    until = parse_moment(args.until, now, "--until") if args.until else None
    if since and until and since >= until:
        raise ReportError(f"--since ({since.isoformat()}) must be before --until ({until.isoformat()})")
    namespaces: set[str] | None = set(args.namespace) if args.namespace else None
    wanted = label_pairs(args.label)
    if wanted:
        if export.namespaces is None:
            raise ReportError("--label selects namespaces by their labels, but the files hold no Namespace: "
                              "export them too (kubectl get namespaces -o json > ns.json; -f ns.json)")
        labelled = {ns for ns, labels in export.namespaces.items()
                    if all(labels.get(k) == v for k, v in wanted.items())}
        namespaces = labelled if namespaces is None else namespaces & labelled
    return maturity.Scope(since, until, frozenset(namespaces) if namespaces is not None else None)


def retention_note(export: Export, scope: maturity.Scope, now: datetime) -> str | None:
    """Whether the range reaches back past what retention keeps, for the namespaces in scope (as far as the
    input shows them: a namespace without a policy keeps the default)."""
    known = export.namespaces if export.namespaces is not None else \
        {(r.get("metadata") or {}).get("namespace", ""): {} for r in export.remediations}
    namespaces = {ns: labels for ns, labels in known.items() if scope.namespaces is None or ns in scope.namespaces}
    policies = [((p.get("metadata") or {}).get("name", ""), p.get("spec") or {}) for p in export.policies]
    return retention.coverage_note(scope.since, now, retention.shortest(policies, namespaces))


# ---------------------------------------------------------------- rendering


def seconds(value: float | None) -> str:
    return "n/a" if value is None else format_duration(timedelta(seconds=round(value)))


def render_table(rep: maturity.Report, notes: Sequence[str] = ()) -> str:
    fig = rep.figures
    scope = rep.scope
    lines = [
        (f"remediator report — {scope.since.isoformat() if scope.since else 'the beginning'} to "
        f"{scope.until.isoformat() if scope.until else 'now'}; namespaces: "
        f"{', '.join(sorted(scope.namespaces)) if scope.namespaces is not None else 'all'}"),
        "",
    ]
    lines += [line for note in notes for line in (f"note: {note}", "")]
    if fig.incidents == 0:
        lines += ["note: no closed incidents in range: no figures to give and nothing to place", ""]
    elif fig.incidents < maturity.MIN_SAMPLE:
        lines += [(f"note: {fig.incidents} closed incident(s) in range; figures are shown, but levels need at least "
                  f"{maturity.MIN_SAMPLE}"), ""]
    restore, wait = fig.restore, fig.approval_latency
    bound = "≥ " if restore.lower_bound else ""
    coverage = "unknown (no workloads in the input)" if fig.slo_coverage is None else fig.slo_coverage.text() + (
        f"; system namespaces left out: {', '.join(fig.system_namespaces)}" if fig.system_namespaces else "")
    apart = ", ".join(f"{k} {v}" for k, v in sorted(fig.not_acting.items()))
    failures = fig.change_failures
    rows = [
        ("incidents (closed / open)", f"{fig.incidents} / {fig.open}"),
        ("outcomes", ", ".join(f"{k} {v}" for k, v in sorted(fig.outcomes.items())) or "none"),
        ("time to restore median / p90", (f"{bound}{seconds(restore.every.median)} / {bound}"
                                          f"{seconds(restore.every.p90)} (n={restore.every.count})")),
        *((f"  restored by {who}", f"{seconds(spread.median)} / {seconds(spread.p90)} (n={spread.count})")
          for who, spread in restore.by.items() if spread.count and who != "unresolved"),
        ("  unresolved (open at the end)", f"{restore.by['unresolved'].count}"
         + (f": {', '.join(restore.unresolved[:10])}" if restore.unresolved else "")),
        ("auto-remediated", fig.auto_remediated.text() + (f"; shown apart: {apart}" if apart else "")),
        ("needed approval", fig.needed_approval.text()),
        ("remediation failure rate", (f"{failures.share.text()}: {failures.did_not_restore} did not restore, "
                                      f"{failures.followed_by_worse} followed by a worse signal")),
        ("approval latency median / p90", (f"{seconds(wait.median)} / {seconds(wait.p90)} (n={wait.count}, "
                                          f"{fig.approvals_expired} expired)")),
        ("SLO coverage", coverage),
        *((f"  SLO coverage {ns}", share.text()) for ns, share in sorted(fig.slo_coverage_by_namespace.items())),
        ("adaptive order", fig.learning.text()),
    ]
    if fig.delivery is not None:
        d = fig.delivery
        rows += [("rollouts (led to an incident)", f"{d.rollouts} ({d.failed}) over {d.days:.3g} days"),
                 *((f"  rollouts a day in {ns}", f"{d.per_day(n):g}") for ns, n in sorted(d.per_namespace.items()))]
    lines += table(("figure", "value"), rows)
    if fig.by_runbook:
        lines += ["", *table(("runbook", "incidents", "acted", "succeeded", "success rate"),
                             [(r.runbook, str(r.incidents), str(r.acted), str(r.succeeded), r.success.text())
                              for r in fig.by_runbook])]
    for title, placements in (("DORA", rep.dora), ("AIOps maturity", rep.aiops)):
        lines += ["", title]
        for p in placements:
            lines.append(f"  {p.name}: {p.level or 'not placed'}")
            lines += [f"    evidence: {e}" for e in p.evidence]
            lines += [f"    missing for next level: {m}" for m in p.missing]
    return "\n".join(lines) + "\n"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*header).rstrip(), fmt.format(*("-" * w for w in widths)),
            *(fmt.format(*row).rstrip() for row in rows)]


RESTORERS = (("operator", "tab:green"), ("humans", "tab:orange"), ("itself", "tab:gray"),
             ("unresolved", "tab:red"))


def plot(weeks: Sequence[tuple[datetime, maturity.Figures]], path: str) -> None:
    import matplotlib.pyplot as plt

    fig = draw(weeks)
    try:
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)


def draw(weeks: Sequence[tuple[datetime, maturity.Figures]]):
    """Two panels: median time to restore of each week, one bar per who restored it (unresolved: time open at
    the week's end), with the incident counts; the auto-remediated share of each week."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5))
    if weeks:
        width = 0.8 / len(RESTORERS)
        for i, (who, color) in enumerate(RESTORERS):
            xs, hours, counts = [], [], []
            for n, (_, f) in enumerate(weeks):
                spread = f.restore.by[who]
                if spread.count:
                    xs.append(n + (i - 1.5) * width)
                    hours.append((spread.median or 0) / 3600)
                    counts.append(spread.count)
            if not xs:
                continue  # nobody restored anything this way: no empty entry in the legend
            bars = left.bar(xs, hours, width, color=color, label=who)
            left.bar_label(bars, labels=[f"n={c}" for c in counts], fontsize=7)
        labels = [w.strftime("%d %b") for w, _ in weeks]
        left.set_xticks(range(len(weeks)), labels, rotation=30)
        left.legend(title="restored by")
        shares = [(n, f.auto_remediated) for n, (_, f) in enumerate(weeks) if f.auto_remediated.whole]
        right.plot([n for n, _ in shares], [s.percent for _, s in shares], "o-", color="tab:green")
        for n, share in shares:
            right.annotate(f"{share.part}/{share.whole}", (n, share.percent), textcoords="offset points",
                           xytext=(0, 6), ha="center", fontsize=7)
        right.set_xticks(range(len(weeks)), labels, rotation=30)
        right.set_ylim(0, 105)
    else:
        for ax in (left, right):
            ax.text(0.5, 0.5, "no incidents in range", ha="center", va="center", transform=ax.transAxes)
    left.set_title("time to restore by week (median)")
    left.set_ylabel("hours")
    right.set_title("auto-remediated share by week")
    right.set_ylabel("% of incidents the operator could act on")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", default="30d", metavar="TIME",
                        help="start of the range: RFC 3339 time or a duration ago (default: 30d)")
    parser.add_argument("--until", default=None, metavar="TIME", help="end of the range, exclusive (default: now)")
    parser.add_argument("-n", "--namespace", action="append", default=[], help="only this namespace (repeatable)")
    parser.add_argument("--label", action="append", default=[], metavar="KEY=VALUE",
                        help="only namespaces with this label, e.g. team=payments (repeatable: all must match)")
    parser.add_argument("--output", "-o", choices=("table", "json"), default="table")
    parser.add_argument("--plot", metavar="FILE.png", help="also draw time to restore by week, split by who "
                                                           "restored it, and the auto-remediated share, to this PNG")
    parser.add_argument("--system-namespace", action="append", default=[], metavar="PATTERN",
                        help="namespaces left out of SLO coverage (glob, repeatable; default: "
                             f"{', '.join(maturity.SYSTEM_NAMESPACES)})")
    parser.add_argument("-f", "--file", action="append", default=[], metavar="FILE",
                        help="exported JSON (kubectl get remediations,deploy,sts,rs,servicelevelobjectives,ns,"
                             "remediationpolicies -A -o json; the rollout counts: kubectl get configmaps -l "
                             "remediator.dev/rollout-counts -A -o json) instead of the cluster (repeatable)")
    parser.add_argument("--counts-namespace", default=None, metavar="NAMESPACE",
                        help="the operator's namespace, where its rollout counts are (default: any namespace; "
                             "give it where tenants may create ConfigMaps, or they could forge the counts)")
    parser.add_argument("--kubeconfig", default=None)


def run(args: argparse.Namespace, now: datetime | None = None) -> int:
    now = now or datetime.now(UTC)
    try:
        export = read_files(args.file, args.counts_namespace) if args.file else \
            read_cluster(args.kubeconfig, args.counts_namespace)
        scope = scope_of(args, export, now)
        records = [maturity.Record.from_object(o) for o in export.remediations]
    except (ReportError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    rep = maturity.report(records, inventory(export, args.system_namespace or maturity.SYSTEM_NAMESPACES), scope,
                          now)
    notes = [n for n in (retention_note(export, scope, now), *export.counts_notes()) if n]
    if args.output == "json":
        print(json.dumps({**rep.to_dict(), "notes": notes}, indent=2))
    else:
        print(render_table(rep, notes), end="")
    if args.plot:
        try:
            plot(maturity.weekly(records, scope, now), args.plot)
        except OSError as e:
            print(f"error: cannot write {args.plot}: {e}", file=sys.stderr)
            return 1
    return 0
