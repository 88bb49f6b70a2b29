"""A namespace label that cannot name a namespace never reaches the apiserver."""

import pytest

from remediator.api.models import Signal
from remediator.controller.ingest import Intake, RunbookCache


class NoApiserver:
    def __getattr__(self, name):
        raise AssertionError(f"the apiserver was called ({name})")


@pytest.mark.parametrize("label", ["../etc", "Web", "a" * 64, "x y", "", "-shop"])
def test_a_signal_whose_namespace_label_is_not_a_namespace_name_is_unmatched_without_an_apiserver_call(label):
    intake = Intake(NoApiserver(), RunbookCache())
    signal = Signal(source="alertmanager", name="HighErrorRate", fingerprint="f1",
                    labels={"alertname": "HighErrorRate", "namespace": label})
    for result in (intake.firing(signal), intake.resolved(signal)):
        assert result.outcome == "unmatched" and "not a namespace name" in result.reasons[0]
