"""The CRDs committed in charts/remediator/crds/ are exactly what the models generate."""

from __future__ import annotations

from pathlib import Path

from remediator.chart_crds import differences

CRD_DIR = Path(__file__).resolve().parents[2] / "charts" / "remediator" / "crds"


def test_committed_crds_match_the_models():
    problems = differences(CRD_DIR)
    assert not problems, "\n".join(
        [*problems, "regenerate with: python -m remediator.chart_crds --write charts/remediator/crds/"])


def test_the_chart_command_writes_the_crds_and_then_finds_them_current(tmp_path, capsys):
    from remediator.chart_crds import main

    assert main(["--check", str(tmp_path)]) == 1
    assert "missing" in capsys.readouterr().err
    assert main(["--write", str(tmp_path)]) == 0
    assert main(["--check", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in CRD_DIR.glob("remediator.dev_*.yaml"))
