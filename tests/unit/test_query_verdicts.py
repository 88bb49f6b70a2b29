"""PromQL checks: pass only on an unbroken run of good readings; no data or no Prometheus is never success."""

from datetime import datetime, timedelta, timezone

from remediator.api.models import MAX_READINGS, StepRecord
from remediator.verification.query_verdicts import QueryReading, fold_query, query_history, query_verdict

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
FOR = timedelta(seconds=30)
TIMEOUT = timedelta(minutes=2)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def good(seconds: float, value: float = 0.001) -> QueryReading:
    return QueryReading(at(seconds), value, f"errors = {value}")


def bad(seconds: float, value: float = 0.4) -> QueryReading:
    return QueryReading(at(seconds), value, f"errors = {value}")


def down(seconds: float) -> QueryReading:
    return QueryReading(at(seconds), None, "errors", error="connection refused")


def empty(seconds: float) -> QueryReading:
    return QueryReading(at(seconds), None, "errors = no data")


def judge(readings, now: float, started: float = 0):
    return query_verdict(readings, "<", 0.01, FOR, at(started), TIMEOUT, at(now), "errors < 0.01")


def test_condition_held_for_the_whole_duration_passes_with_the_values_as_evidence():
    v = judge([bad(0), good(5), good(20), good(35)], now=35)
    assert v.state == "passed"
    assert "held for 30s" in v.reasons[0]
    assert [e.value for e in v.evidence] == ["0.001", "0.001"]
    assert all(e.kind == "promql" for e in v.evidence)


def test_condition_held_for_less_than_the_duration_is_pending():
    v = judge([good(0), good(20)], now=20)
    assert v.state == "pending"
    assert "holds" in v.reasons[0] and "held 20s of 30s" in v.reasons[0]


def test_a_bad_reading_restarts_the_run():
    assert judge([good(0), good(20), bad(25), good(30), good(50)], now=50).state == "pending"


def test_an_unreachable_prometheus_breaks_the_run_and_never_passes():
    assert judge([good(0), down(15), good(31)], now=31).state == "pending"


def test_prometheus_gone_at_the_timeout_is_inconclusive_and_says_since_when():
    v = judge([bad(0), down(60), down(90), down(120)], now=120)
    assert v.state == "inconclusive"
    assert "Prometheus has not answered since 2026-11-25T12:01:00Z" in v.reasons[0]


def test_no_data_at_the_timeout_is_inconclusive():
    v = judge([empty(0), empty(120)], now=120)
    assert v.state == "inconclusive" and "no data" in v.reasons[0]


def test_no_reading_at_all_at_the_timeout_is_inconclusive():
    assert judge([], now=120).state == "inconclusive"


def test_data_that_never_meets_the_condition_fails_at_the_timeout():
    v = judge([bad(0), bad(60), bad(120)], now=120)
    assert v.state == "failed" and "does not hold after 2m" in v.reasons[0]


def test_a_run_too_short_at_the_timeout_fails_and_says_how_long_it_held():
    v = judge([bad(0), good(110), good(120)], now=120)
    assert v.state == "failed" and "held only 10s of the 30s" in v.reasons[0]


def test_readings_from_before_the_step_started_do_not_count():
    assert judge([good(0), good(40), good(50)], now=50, started=30).state == "pending"


def test_every_comparison_operator_is_honoured():
    for op, threshold, value, holds in [("<", 1, 0.5, True), ("<=", 1, 1, True), (">", 1, 1, False),
                                        (">=", 1, 1, True), ("==", 1, 1, True), ("!=", 1, 1, False)]:
        readings = [QueryReading(at(0), value, "x"), QueryReading(at(30), value, "x")]
        v = query_verdict(readings, op, threshold, FOR, at(0), TIMEOUT, at(30), "x")
        assert (v.state == "passed") == holds, (op, threshold, value)


def judged_from_the_record(readings: list[QueryReading], now: float, hold_for=FOR, timeout=TIMEOUT):
    """Fold each reading into a step record, persisted and read back between ticks (as after a restart of
    the operator), then judge the run starts kept plus the reading in hand."""
    record = StepRecord(index=0, name="s", action="rollback", idempotency_key="k", phase="Applied")
    for r in readings:
        kept = fold_query(record.readings, "promql", r, "<", 0.01)
        record = StepRecord.model_validate(record.model_copy(update={"readings": kept}).wire())
    history = query_history(record.readings, "promql", readings[-1])
    return record, query_verdict(history, "<", 0.01, hold_for, at(0), timeout, at(now), "x")


def test_readings_kept_in_the_step_record_judge_as_the_whole_history_does():
    flapping = [good(0), bad(5), good(10), down(15), down(20), empty(25), good(30), good(40), good(70)]
    for n in range(1, len(flapping) + 1):
        seen = flapping[:n]
        now = seen[-1].at.timestamp() - T0.timestamp()
        whole = query_verdict(seen, "<", 0.01, FOR, at(0), TIMEOUT, at(now), "x")
        assert judged_from_the_record(seen, now)[1] == whole, n


def test_a_long_hold_keeps_only_run_starts_in_the_record_and_still_passes():
    long_hold = [bad(0)] + [good(t) for t in range(1, 700)]
    record, v = judged_from_the_record(long_hold, 699, hold_for=timedelta(minutes=10), timeout=timedelta(hours=1))
    assert [r.at for r in record.readings] == ["2026-11-25T12:00:00.000000Z", "2026-11-25T12:00:01.000000Z"]
    assert v.state == "passed" and "held for 11m38s" in v.reasons[0]
    outage = [good(t) for t in range(0, 300)] + [down(t) for t in range(300, 700)]
    assert judged_from_the_record(outage, 700)[1].reasons == \
        query_verdict(outage, "<", 0.01, FOR, at(0), TIMEOUT, at(700), "x").reasons


def test_a_flapping_query_keeps_a_bounded_record_that_judges_the_latest_run():
    flaps = [good(t) if t % 2 else bad(t) for t in range(0, 400)] + [good(t) for t in range(400, 431)]
    record, v = judged_from_the_record(flaps, 430)
    assert len(record.readings) == MAX_READINGS // 3
    assert v.state == "passed" and "held for 31s" in v.reasons[0], "from the last bad reading at 398s"


def test_a_step_record_full_of_readings_stays_under_8_kilobytes():
    import json

    from remediator.verification.readings import fold_pods
    from tests.unit.test_verdicts import DEPLOYMENT, pod, seen

    record = StepRecord(index=0, name="s", action="rollback", idempotency_key="k", phase="Applied")
    kept = record.readings
    for t in range(300):  # 50 pods replaced at every look, flapping queries with long answers and errors
        kept = fold_pods(kept, seen(t, None, tuple(pod(f"web-{t}-{i}", uid=f"{t:08d}-0000-0000-0000-{i:012d}",
                                                       ready=bool(t % 2)) for i in range(50)), target=DEPLOYMENT))
        for check in ("promql", "sloRecovered"):
            r = QueryReading(at(t), 0.5 if t % 3 else None, "x" * 2000, error="e" * 2000 if t % 3 == 1 else "")
            kept = fold_query(kept, check, r, "<", 0.01)
    stored = StepRecord.model_validate(record.model_copy(update={"readings": kept}).wire())
    assert len(stored.readings) == MAX_READINGS
    assert len(json.dumps(stored.wire())) < 8_000


def test_the_evidence_of_a_run_read_back_from_the_record_keeps_the_whole_query():
    query = "sum(rate(errors_total{service=\"web\"}[5m])) / sum(rate(requests_total{service=\"web\"}[5m]))" * 6
    seen = [bad(0)] + [QueryReading(at(t), 0.001, f"{query} = 0.001") for t in (5, 20, 35)]
    v = judged_from_the_record(seen, 35)[1]
    assert v == query_verdict(seen, "<", 0.01, FOR, at(0), TIMEOUT, at(35), "x")
    assert [e.detail for e in v.evidence] == [f"held from: {query} = 0.001", f"held until: {query} = 0.001"]
