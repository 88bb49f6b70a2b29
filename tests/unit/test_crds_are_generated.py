"""The CRDs committed in charts/remediator/crds/ are exactly what the models generate."""

from __future__ import annotations

from pathlib import Path

from remediator.api.crds import differences

CRD_DIR = Path(__file__).resolve().parents[2] / "charts" / "remediator" / "crds"


def test_committed_crds_match_the_models():
    problems = differences(CRD_DIR)
    assert not problems, "\n".join(
        [*problems, "regenerate with: python -m remediator.api.crds --write charts/remediator/crds/"])
