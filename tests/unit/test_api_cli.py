"""`remediator validate FILE...`, and how commands are registered."""

from __future__ import annotations

import argparse

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


def test_validate_needs_at_least_one_file():
    with pytest.raises(SystemExit) as exited:
        main(["validate"])
    assert exited.value.code == 2


def test_commands_are_registered_in_one_place_and_may_nest():
    ran = []
    extra = Command("slo rules", "print recording rules", lambda p: p.add_argument("name"),
                    lambda args: ran.append(args.name) or 0)
    args = build_parser((*COMMANDS, extra)).parse_args(["slo", "rules", "web"])
    assert args.run(args) == 0 and ran == ["web"]
    assert {c.name for c in COMMANDS} >= {"validate", "run"}


def test_only_the_invoked_command_adds_its_arguments_so_validate_loads_no_operator_code():
    def explode(parser: argparse.ArgumentParser) -> None:
        raise AssertionError("the run command's arguments were built for `validate`")

    commands = (Command("run", "", explode, lambda a: 0), *[c for c in COMMANDS if c.name != "run"])
    args = build_parser(commands, argv=["validate", "x.yaml"]).parse_args(["validate", "x.yaml"])
    assert args.files == ["x.yaml"]


def test_the_console_script_entry_point_is_main():
    assert cli.main is main
