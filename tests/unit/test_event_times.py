"""Event times the apiserver accepts: the client drops a zero microsecond part, which a MicroTime needs."""

from datetime import UTC, datetime

from remediator.records.events import with_micros


def test_a_whole_minute_instant_keeps_a_microsecond_so_its_event_is_not_refused():
    grid = datetime(2026, 12, 1, 16, 5, tzinfo=UTC)  # an anomaly's grid instant
    assert with_micros(grid).isoformat() == "2026-12-01T16:05:00.000001+00:00"
    now = datetime(2026, 12, 1, 16, 5, 7, 250, tzinfo=UTC)
    assert with_micros(now) == now
