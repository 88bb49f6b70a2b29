"""`remediator report -f FILE`: exported records in, a table, JSON or a PNG out."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from remediator.cli import main
from tests.unit.test_maturity import T0, approval, obj, succeeded, z

SINCE = ["--since", z(T0 - timedelta(days=1)), "--until", z(T0 + timedelta(days=1))]


def as_list(*items: dict) -> dict:
    return {"apiVersion": "v1", "kind": "List", "items": items}


def workload(namespace: str, name: str, kind: str = "Deployment") -> dict:
    return {"kind": kind, "metadata": {"namespace": namespace, "name": name}}


def slo(namespace: str, target: str) -> dict:
    return {"kind": "ServiceLevelObjective", "metadata": {"namespace": namespace, "name": f"{target}-slo"},
            "spec": {"service": target, "target": {"kind": "Deployment", "name": target}}}


def namespace(name: str, **labels: str) -> dict:
    return {"kind": "Namespace", "metadata": {"name": name, "labels": labels}}


@pytest.fixture
def export(tmp_path):
    def write(*items: dict, name: str = "export.json") -> str:
        path = tmp_path / name
        path.write_text(json.dumps(as_list(*items)))
        return str(path)
    return write


def remediations(*items: dict) -> list[dict]:
    return [{**i, "kind": "Remediation"} for i in items]


def test_json_output_carries_the_figures_and_placements(export, capsys):
    path = export(*remediations(*succeeded(5, ttr=600.0), obj("gated", ttr=1200, approval=approval("approved"))),
                  workload("shop", "web"), workload("shop", "db", "StatefulSet"), slo("shop", "web"))
    assert main(["report", "-f", path, *SINCE, "--output", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["figures"]["incidents"] == 6
    assert out["figures"]["timeToRestore"]["every"] == {"count": 6, "medianSeconds": 600.0, "p90Seconds": 1200.0,
                                                        "lowerBound": False, "medianExact": True}
    assert "timeToRestore" in out["definitions"]
    assert out["figures"]["sloCoverage"] == {"part": 1, "whole": 2, "percent": 50.0,
                                             "byNamespace": {"shop": {"part": 1, "whole": 2, "percent": 50.0}},
                                             "systemNamespacesExcluded": []}
    assert out["figures"]["neededApproval"]["part"] == 1
    assert out["dora"][0] == {"name": "time to restore service", "level": "elite",
                              "evidence": ["median 10m over 6 incidents (operator 6; p90 20m)"], "missingForNext": []}


def test_the_table_says_when_the_sample_is_too_small(export, capsys):
    path = export(*remediations(*succeeded(2)), workload("shop", "web"))
    assert main(["report", "-f", path, *SINCE]) == 0
    out = capsys.readouterr().out
    assert "note: 2 closed incident(s) in range; figures are shown, but levels need at least 5" in out
    assert "time to restore service: not placed" in out
    assert "evidence: 2 incidents are too few to place you (need at least 5)" in out
    assert "shop/restart" in out


def test_a_team_label_selects_its_namespaces(export, capsys):
    path = export(*remediations(*succeeded(3), obj("books-1", namespace="books", runbook="r")),
                  namespace("shop", team="checkout"), namespace("books", team="catalogue"))
    assert main(["report", "-f", path, *SINCE, "--label", "team=catalogue", "-o", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["scope"]["namespaces"] == ["books"]
    assert out["figures"]["incidents"] == 1
    assert out["figures"]["sloCoverage"] is None  # the export holds no workloads


def test_a_label_without_exported_namespaces_is_an_error_saying_what_to_export(export, capsys):
    path = export(*remediations(*succeeded(1)))
    assert main(["report", "-f", path, "--label", "team=x"]) == 1
    assert "export them too (kubectl get namespaces -o json" in capsys.readouterr().err


@pytest.mark.parametrize("flags, message", [
    (["--since", "yesterday"], "--since wants an RFC 3339 time"),
    (["--since", "1d", "--until", "2d"], "--since ("),
    (["--label", "team"], "--label wants KEY=VALUE"),
])
def test_bad_flags_exit_one_naming_the_flag(export, capsys, flags, message):
    assert main(["report", "-f", export(*remediations(*succeeded(1))), *flags]) == 1
    assert message in capsys.readouterr().err


def test_a_broken_record_exits_one_naming_it(export, capsys):
    bad = obj("broken")
    bad["status"]["timeToRecoverSeconds"] = "fast"
    assert main(["report", "-f", export(*remediations(bad)), *SINCE]) == 1
    assert "Remediation shop/broken: status.timeToRecoverSeconds" in capsys.readouterr().err


def test_plot_writes_a_png(export, tmp_path, capsys):
    target = tmp_path / "report.png"
    path = export(*remediations(*succeeded(3), obj("esc", "Escalated")))
    assert main(["report", "-f", path, *SINCE, "--plot", str(target)]) == 0
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_plot_draws_weekly_time_to_restore_by_who_restored_it_and_the_auto_remediated_share():
    from remediator.core.report import maturity
    from remediator.records.report import draw
    from tests.unit.test_maturity import mixed_history, records

    figure = draw(maturity.weekly(records(*mixed_history()), now=T0 + timedelta(days=1)))
    left, right = figure.axes
    bars = {c.get_label(): [round(b.get_height(), 3) for b in c] for c in left.containers}
    # T0 is a Sunday: one week; medians in hours: operator 90s, humans 20m, unresolved 20h (21h and 19h open)
    assert bars == {"operator": [0.025], "humans": [0.333], "unresolved": [20.0]}
    assert list(right.lines[0].get_ydata()) == [50.0]  # 2 of the 4 the operator could act on


def test_a_missing_kubeconfig_is_an_error_suggesting_an_export(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert main(["report", "--kubeconfig", str(tmp_path / "nope")]) == 1
    assert "no cluster to read (give --kubeconfig, or -f an exported file)" in capsys.readouterr().err


def test_an_empty_range_says_there_is_nothing_to_place(export, capsys):
    assert main(["report", "-f", export(*remediations(*succeeded(2))), "--since", "1h"]) == 0
    out = capsys.readouterr().out
    assert "note: no closed incidents in range: no figures to give and nothing to place" in out
    assert "automation: not placed" in out


def replicaset(namespace: str, deployment: str, revision: str, created: str) -> dict:
    return {"kind": "ReplicaSet", "metadata": {
        "namespace": namespace, "name": f"{deployment}-{revision}", "creationTimestamp": created,
        "annotations": {"deployment.kubernetes.io/revision": revision},
        "ownerReferences": [{"kind": "Deployment", "name": deployment, "controller": True}]}}


def test_an_export_with_replicasets_gives_dora_keys_and_the_table_shows_every_incident(export, capsys):
    from tests.unit.test_maturity import mixed_history

    rollouts = [replicaset("shop", "web", str(r), z(T0 - timedelta(hours=h))) for h, r in ((5, 6), (1, 7))]
    rollouts += [replicaset("books", "api", str(h), z(T0 + timedelta(hours=h))) for h in (1, 2, 3)]
    orphan = {"kind": "ReplicaSet", "metadata": {"namespace": "shop", "name": "by-hand", "creationTimestamp": z(T0)}}
    path = export(*remediations(*mixed_history()), *rollouts, orphan, workload("shop", "web"),
                  workload("kube-system", "coredns"), slo("shop", "web"))
    assert main(["report", "-f", path, *SINCE, "--output", "json"]) == 0
    delivery = json.loads(capsys.readouterr().out)["figures"]["delivery"]
    assert (delivery["rollouts"], delivery["failedRollouts"], delivery["changeFailureRate"]) == (5, 1, 20.0)
    assert delivery["rolloutsThatDegradedService"] == ["shop/Deployment/web revision 7"]
    assert main(["report", "-f", path, *SINCE]) == 0
    table = capsys.readouterr().out
    assert "unresolved (open at the end)  2: shop/failed, shop/skipped" in table
    assert "auto-remediated                 50 % (2/4); shown apart: Skipped 1, dryRun 1" in table
    assert "system namespaces left out: kube-system" in table


def test_without_replicasets_the_dora_change_failure_rate_is_not_measured(export, capsys):
    assert main(["report", "-f", export(*remediations(*succeeded(6))), *SINCE, "--output", "json"]) == 0
    dora = {p["name"]: p for p in json.loads(capsys.readouterr().out)["dora"]}
    assert dora["change failure rate"]["level"] is None
    assert dora["change failure rate"]["evidence"][0].startswith("not measured")


def test_system_namespaces_are_left_out_of_slo_coverage_and_the_flag_replaces_them(export, capsys):
    path = export(*remediations(*succeeded(1)), workload("shop", "web"), workload("kube-system", "coredns"),
                  workload("platform", "ingress"), slo("shop", "web"))
    assert main(["report", "-f", path, *SINCE, "--output", "json"]) == 0
    coverage = json.loads(capsys.readouterr().out)["figures"]["sloCoverage"]
    assert (coverage["part"], coverage["whole"], coverage["systemNamespacesExcluded"]) == (1, 2, ["kube-system"])
    assert main(["report", "-f", path, *SINCE, "--output", "json", "--system-namespace", "platform"]) == 0
    coverage = json.loads(capsys.readouterr().out)["figures"]["sloCoverage"]
    assert (coverage["part"], coverage["whole"], coverage["systemNamespacesExcluded"]) == (1, 2, ["platform"])
    assert set(coverage["byNamespace"]) == {"shop", "kube-system"}
