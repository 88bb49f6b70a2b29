from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from remediator.api.models import DURATION_PATTERN
from remediator.core.durations import (
    format_ago,
    format_duration,
    format_time,
    micro_time,
    parse_duration,
    parse_time,
)


@pytest.mark.parametrize("text, expected", [
    ("30s", timedelta(seconds=30)),
    ("5m", timedelta(minutes=5)),
    ("1h30m", timedelta(hours=1, minutes=30)),
    ("7d", timedelta(days=7)),
    ("2w", timedelta(weeks=2)),
    ("250ms", timedelta(milliseconds=250)),
    ("1m500ms", timedelta(minutes=1, milliseconds=500)),
    ("0s", timedelta(0)),
    ("90s", timedelta(seconds=90)),
    ("1h1h", timedelta(hours=2)),
])
def test_parse_duration_reads_every_unit_the_crd_accepts(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "5", "m", "1.5h", "-5m", "5 m", " 5m", "5m ", "5M", "1y", "1h-30m", "+5s", "5mm"])
def test_parse_duration_refuses_what_the_crd_refuses_and_names_the_value(text):
    assert not re.match(DURATION_PATTERN, text)
    with pytest.raises(ValueError, match=re.escape(repr(text))):
        parse_duration(text)


def test_parse_duration_refuses_a_non_string_with_a_clear_message():
    with pytest.raises(ValueError, match="must be a string"):
        parse_duration(300)  # type: ignore[arg-type]


def test_parse_duration_says_too_long_instead_of_overflowing():
    with pytest.raises(ValueError, match="too long"):
        parse_duration("99999999999999w")


@pytest.mark.parametrize("delta, text", [
    (timedelta(minutes=3, seconds=40), "3m40s"),
    (timedelta(0), "0s"),
    (timedelta(hours=1), "1h"),
    (timedelta(days=1, hours=2, minutes=3, seconds=4, milliseconds=5), "1d2h3m4s5ms"),
    (timedelta(milliseconds=1500), "1s500ms"),
    (timedelta(microseconds=999), "0s"),
    (timedelta(weeks=2), "14d"),
])
def test_format_duration_writes_the_shortest_exact_text(delta, text):
    assert format_duration(delta) == text


def test_format_duration_refuses_a_negative_span():
    with pytest.raises(ValueError, match="negative"):
        format_duration(timedelta(seconds=-1))


@given(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3650)))
def test_format_then_parse_gives_the_same_duration_to_the_millisecond(delta):
    text = format_duration(delta)
    assert re.match(DURATION_PATTERN, text)
    assert parse_duration(text) == timedelta(milliseconds=delta // timedelta(milliseconds=1))


def test_format_ago_reads_to_the_second_and_never_negative():
    assert format_ago(timedelta(minutes=4, microseconds=7)) == "4m"
    assert format_ago(timedelta(seconds=-30)) == "0s"


def test_times_are_written_in_utc_with_z_and_read_back_with_any_offset():
    moment = datetime(2024, 5, 1, 12, 0, 30, 999, tzinfo=timezone(timedelta(hours=2)))
    assert format_time(moment) == "2024-05-01T10:00:30Z"
    assert parse_time("2024-05-01T10:00:30Z") == datetime(2024, 5, 1, 10, 0, 30, tzinfo=UTC)
    assert parse_time("2024-05-01T12:00:30+02:00") == parse_time("2024-05-01T10:00:30Z")


@pytest.mark.parametrize("text", ["2024-05-01T10:00:00", "yesterday", ""])
def test_parse_time_refuses_a_time_without_offset_or_garbage(text):
    with pytest.raises(ValueError):
        parse_time(text)


def test_format_time_refuses_a_naive_datetime():
    with pytest.raises(ValueError, match="timezone"):
        format_time(datetime(2024, 5, 1))


@pytest.mark.parametrize(("text", "expected"), [
    ("2024-05-01T10:00:30Z", datetime(2024, 5, 1, 10, 0, 30, tzinfo=UTC)),
    ("2024-05-01t10:00:30z", datetime(2024, 5, 1, 10, 0, 30, tzinfo=UTC)),
    ("2024-05-01 10:00:30Z", datetime(2024, 5, 1, 10, 0, 30, tzinfo=UTC)),
    ("2024-05-01T10:00:30.25Z", datetime(2024, 5, 1, 10, 0, 30, 250000, tzinfo=UTC)),
    ("2024-05-01T10:00:30.123456Z", datetime(2024, 5, 1, 10, 0, 30, 123456, tzinfo=UTC)),
    ("2024-05-01T10:00:30.123456789Z", datetime(2024, 5, 1, 10, 0, 30, 123456, tzinfo=UTC)),  # Go's nanoseconds
    ("2024-05-01T05:30:30-04:30", datetime(2024, 5, 1, 10, 0, 30, tzinfo=UTC)),
    (" 2024-05-01T10:00:30+00:00\n", datetime(2024, 5, 1, 10, 0, 30, tzinfo=UTC)),
])
def test_parse_time_reads_z_offsets_and_any_fraction_as_the_same_instant(text, expected):
    parsed = parse_time(text)
    assert parsed == expected and parsed.tzinfo is not None


@pytest.mark.parametrize("text", ["20240501T100030Z", "2024-05-01", "2024-02-30T10:00:00Z", "2024-05-01T10:00Z",
                                  "2024-05-01T10:00:30+0200", None, 1714557630])
def test_parse_time_refuses_what_is_not_rfc_3339(text):
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_time(text)


def test_parse_time_names_a_missing_offset():
    with pytest.raises(ValueError, match="no UTC offset"):
        parse_time("2024-05-01T10:00:30.5")


def test_whole_second_and_micro_times_round_trip_in_utc_with_z():
    whole = datetime(2024, 5, 1, 10, 0, 30, tzinfo=UTC)
    assert format_time(whole) == "2024-05-01T10:00:30Z"
    assert micro_time(whole) == "2024-05-01T10:00:30.000000Z"  # six digits even when zero
    fine = datetime(2024, 5, 1, 12, 0, 30, 42, tzinfo=timezone(timedelta(hours=2)))
    assert micro_time(fine) == "2024-05-01T10:00:30.000042Z"
    assert parse_time(micro_time(fine)) == fine and parse_time(format_time(fine)) == whole


def test_micro_times_sort_as_text_in_time_order():
    moments = [datetime(2024, 5, 1, 10, 0, 30, tzinfo=UTC) + timedelta(microseconds=m) for m in (0, 1, 500000)]
    assert sorted(micro_time(m) for m in moments) == [micro_time(m) for m in moments]


def test_micro_time_refuses_a_naive_datetime():
    with pytest.raises(ValueError, match="timezone"):
        micro_time(datetime(2024, 5, 1))
