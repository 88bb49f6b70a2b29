"""The benchmark's history is what the operator leaves behind: a restart into it owes nothing, so the history
round measures the loop beside 10,000 ended Remediations, not a one-time backfill of them."""

from __future__ import annotations

from remediator.controller import runbook_status
from e2e.bench.signal_to_action import history_remediation


def test_the_benchmarks_ended_remediations_owe_the_operator_no_write():
    for i in (0, 1, 9999):
        _, status = history_remediation("bench", i)
        assert not runbook_status.pending(status, alerting=True), status
