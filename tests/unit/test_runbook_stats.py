from remediator.api.models import RemediationStatus, RunbookStatus
from remediator.core.report.runbook_stats import fold

SIGNAL = "alertmanager/HighErrorRate"


def ended(phase="Succeeded", ttr=None, steps=()):
    return RemediationStatus.model_validate({
        "phase": phase, "finishedAt": "2026-12-01T15:00:00Z", "timeToRecoverSeconds": ttr,
        "steps": [{"index": i, "name": n, "action": "scale", "idempotencyKey": f"k{i}", "phase": p}
                  for i, (n, p) in enumerate(steps)]})


def test_an_ended_remediation_sets_last_remediation_and_counts_each_step_by_outcome():
    after = fold(RunbookStatus(), "u1", "r1", ended("Succeeded", 30.0, [("restart", "Failed"), ("scale", "Succeeded")]), SIGNAL)
    assert after.last_remediation.name == "r1" and after.last_remediation.phase == "Succeeded"
    assert after.last_remediation.finished_at == "2026-12-01T15:00:00Z"
    assert {(s.name, s.succeeded, s.failed) for s in after.step_stats} == {("restart", 0, 1), ("scale", 1, 0)}
    assert after.median_time_to_recover_seconds == 30.0


def test_a_remediation_folded_twice_counts_once():
    once = fold(RunbookStatus(), "u1", "r1", ended("Failed", steps=[("restart", "Failed")]), SIGNAL)
    assert fold(once, "u1", "r1", ended("Failed", steps=[("restart", "Failed")]), SIGNAL) is None
    assert once.step_stats[0].failed == 1


def test_an_open_remediation_changes_nothing():
    assert fold(RunbookStatus(), "u1", "r1", ended("Acting"), SIGNAL) is None


def test_median_time_to_recover_is_over_the_last_twenty_recoveries_only():
    status = RunbookStatus()
    for i in range(25):  # 1000s five times, then 1..20: the 1000s fall out of the window
        status = fold(status, f"u{i}", f"r{i}", ended("Succeeded", 1000.0 if i < 5 else float(i - 4)), SIGNAL)
    assert status.recent_recovery_seconds == [float(i) for i in range(1, 21)]
    assert status.median_time_to_recover_seconds == 10.5


def test_an_escalated_remediation_leaves_the_recovery_times_alone():
    status = fold(RunbookStatus(), "u1", "r1", ended("Succeeded", 10.0), SIGNAL)
    after = fold(status, "u2", "r2", ended("Escalated", None, [("restart", "Inconclusive")]), SIGNAL)
    assert after.median_time_to_recover_seconds == 10.0 and after.last_remediation.phase == "Escalated"


def test_the_folded_list_is_bounded():
    status = RunbookStatus()
    for i in range(150):
        status = fold(status, f"u{i}", f"r{i}", ended("Denied"), SIGNAL)
    assert len(status.folded) == 100 and status.folded[-1] == "u149"


def test_an_older_remediation_folded_late_counts_but_does_not_become_the_last_one():
    newer = fold(RunbookStatus(), "u2", "r2", ended("Succeeded", 20.0), SIGNAL)
    older = ended("Failed", steps=[("restart", "Failed")]).model_copy(update={"finished_at": "2026-12-01T14:00:00Z"})
    after = fold(newer, "u1", "r1", older, SIGNAL)
    assert after.last_remediation.name == "r2" and after.step_stats[0].failed == 1
