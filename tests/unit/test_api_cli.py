"""`remediator validate FILE...`, and how commands are registered."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from remediator import cli
from remediator.cli import COMMANDS, Command, build_parser, main
from tests.unit.test_api_validation import BAD_RUNBOOKS, broken, good_policy, good_runbook


@pytest.fixture
def files(tmp_path):
    def write(name: str, *docs) -> str:
        path = tmp_path / name
        path.write_text(yaml.safe_dump_all(docs) if docs and not isinstance(docs[0], str) else "".join(docs))
        return str(path)
    return write


def test_valid_files_exit_zero(files, capsys):
    assert main(["validate", files("a.yaml", good_runbook()), files("b.yaml", good_policy())]) == 0
    assert capsys.readouterr().out == ""


def test_an_invalid_document_exits_one_naming_file_document_kind_name_and_field(files, capsys):
    bad = broken(good_runbook, next(b for b in BAD_RUNBOOKS if b.id == "min above max"), name="bad-scale")
    path = files("runbooks.yaml", good_policy(), bad)
    assert main(["validate", path]) == 1
    assert capsys.readouterr().out.splitlines() == [(
        f"{path}: doc 2 (Runbook/bad-scale): spec.steps[1].scale: "
        "minReplicas must be <= maxReplicas (minReplicas 5 > maxReplicas 3)")]


def test_one_bad_file_among_good_ones_fails_the_run(files):
    bad = broken(good_runbook, next(b for b in BAD_RUNBOOKS if b.id == "bad risk"))
    assert main(["validate", files("good.yaml", good_runbook()), files("bad.yaml", bad)]) == 1


def test_a_missing_file_or_broken_yaml_exits_one_saying_which(files, tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope.yaml"), files("broken.yaml", "a: [\n")]) == 1
    out = capsys.readouterr().out
    assert f"{tmp_path / 'nope.yaml'}: cannot read:" in out
    assert f"{tmp_path / 'broken.yaml'}: invalid YAML:" in out


def test_yaml_nested_too_deeply_exits_one_saying_so_not_a_traceback(tmp_path, capsys):
    deep = tmp_path / "deep.yaml"
    deep.write_text("spec: " + "[" * 5000 + "]" * 5000 + "\n")
    assert main(["validate", str(deep)]) == 1
    assert f"{deep}: nested too deeply" in capsys.readouterr().out


def test_validate_needs_at_least_one_file():
    with pytest.raises(SystemExit) as exited:
        main(["validate"])
    assert exited.value.code == 2


def test_commands_are_registered_in_one_place_and_may_nest():
    ran = []
    extra = Command("slo explain", "explain an SLO", lambda p: p.add_argument("name"),
                    lambda args: ran.append(args.name) or 0)
    args = build_parser((*COMMANDS, extra)).parse_args(["slo", "explain", "web"])
    assert args.run(args) == 0 and ran == ["web"]
    assert {c.name for c in COMMANDS} >= {"validate", "run", "slo rules"}


def test_only_the_invoked_command_adds_its_arguments_so_validate_loads_no_operator_code():
    def explode(parser: argparse.ArgumentParser) -> None:
        raise AssertionError("the run command's arguments were built for `validate`")

    commands = (Command("run", "", explode, lambda a: 0), *[c for c in COMMANDS if c.name != "run"])
    args = build_parser(commands, argv=["validate", "x.yaml"]).parse_args(["validate", "x.yaml"])
    assert args.files == ["x.yaml"]


def test_the_console_script_entry_point_is_main():
    assert cli.main is main


def test_slo_rules_prints_rules_for_each_slo_file(tmp_path, capsys):
    slo = tmp_path / "slo.yaml"
    slo.write_text((Path(__file__).resolve().parents[2] / "e2e" / "demo" / "slo.yaml").read_text())
    assert main(["slo", "rules", "-f", str(slo), "-n", "shop"]) == 0
    groups = yaml.safe_load(capsys.readouterr().out)["groups"]
    alerts = [r for r in groups[0]["rules"] if "alert" in r]
    assert [a["labels"]["severity"] for a in alerts] == ["page", "page", "ticket"]
    assert all(a["labels"]["namespace"] == "shop" and a["labels"]["deployment"] == "web" for a in alerts)


def test_slo_rules_refuses_an_invalid_slo_naming_the_field(tmp_path, capsys):
    slo = tmp_path / "slo.yaml"
    slo.write_text("apiVersion: remediator.dev/v1alpha1\nkind: ServiceLevelObjective\nmetadata: {name: x}\n"
                   "spec: {service: web, target: {name: web}, objective: 120, sli: {badTotal: {bad: 'x', "
                   "total: 'y'}}}\n")
    assert main(["slo", "rules", "-f", str(slo)]) == 1
    assert "objective" in capsys.readouterr().err
