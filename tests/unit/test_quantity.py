"""Kubernetes quantities: parsed exactly, formatted in the writer's own suffix family."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from remediator.core.quantity import (
    QuantityError,
    format_bytes,
    is_binary,
    parse_quantity,
    round_up_to,
    scale_memory,
    to_bytes,
    unit_of,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("128", 128),
        ("1Ki", 1024),
        ("64Mi", 64 * 2**20),
        ("1.5Gi", 3 * 2**29),
        ("2Ti", 2 * 2**40),
        ("1Pi", 2**50),
        ("1Ei", 2**60),
        ("1k", 1000),
        ("500M", 500_000_000),
        ("2G", 2_000_000_000),
        ("1T", 10**12),
        ("1P", 10**15),
        ("1E", 10**18),
        ("1e3", 1000),
        ("1E3", 1000),
        ("5e-1", Fraction(1, 2)),
        ("250m", Fraction(1, 4)),
        ("10u", Fraction(1, 100_000)),
        ("3n", Fraction(3, 10**9)),
        (".5Ki", 512),
        ("+3k", 3000),
        ("-1Mi", -(2**20)),
        (" 64Mi ", 64 * 2**20),
    ],
)
def test_parses_every_suffix_exactly(text, value):
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "Mi", "64 Mi", "64MB", "64mi", "1.2.3", "1e", "0x10", "64MiB", "--1"])
def test_rejects_what_the_apiserver_rejects(text):
    with pytest.raises(QuantityError, match="not a quantity"):
        parse_quantity(text)


def test_rejects_non_text():
    with pytest.raises(QuantityError):
        parse_quantity(64)  # type: ignore[arg-type]


def test_milli_is_not_mega():
    # the classic trap: "129m" is 0.129 bytes, "129M" is 129 megabytes
    assert parse_quantity("129m") == Fraction(129, 1000)
    assert parse_quantity("129M") == 129_000_000


def test_memory_rounds_up_to_whole_bytes():
    assert to_bytes("250m") == 1
    assert to_bytes("1.5Ki") == 1536


@pytest.mark.parametrize(
    ("text", "unit", "binary"),
    [
        ("64Mi", 2**20, True),
        ("2G", 10**9, False),
        ("1e3", 1, False),
        ("100", 1, False),
        ("250m", Fraction(1, 1000), False),
    ],
)
def test_unit_and_family(text, unit, binary):
    assert unit_of(text) == unit
    assert is_binary(text) is binary


@pytest.mark.parametrize(
    ("value", "binary", "text"),
    [
        (96 * 2**20, True, "96Mi"),
        (2**31, True, "2Gi"),
        (1536, True, "1536"),  # 1.5Ki has no exact whole-unit spelling
        (1_500_000_000, False, "1500M"),
        (2_000_000_000, False, "2G"),
        (1500, False, "1500"),
        (0, True, "0"),
    ],
)
def test_formats_with_the_largest_exact_suffix(value, binary, text):
    assert format_bytes(value, binary=binary) == text


def test_format_rejects_negative_sizes():
    with pytest.raises(QuantityError):
        format_bytes(-1)


@pytest.mark.parametrize(
    ("text", "factor", "raised"),
    [
        ("64Mi", 1.5, "96Mi"),
        ("64Mi", 1.3, "84Mi"),  # 83.2Mi rounds up to a whole Mi
        ("1Gi", 1.5, "1536Mi"),
        ("1Gi", 2, "2Gi"),
        ("1G", 1.5, "1500M"),
        ("100Ki", 1.5, "150Ki"),
        ("1Gi", 1.01, "1035Mi"),  # 1034.24Mi rounds up to a whole Mi
        ("1000", 1.5, "1500"),
        ("100m", 2, "1"),  # sub-byte suffixes round to whole bytes
    ],
)
def test_scale_memory_keeps_the_suffix_family_and_rounds_up(text, factor, raised):
    assert scale_memory(text, factor) == raised
    assert parse_quantity(raised) >= parse_quantity(text) * Fraction(str(factor))


def test_scale_memory_rejects_non_positive_factors():
    with pytest.raises(QuantityError):
        scale_memory("64Mi", 0)


def test_round_up_to_needs_a_whole_unit():
    assert round_up_to(Fraction(5, 2), 1) == 3
    assert round_up_to(1025, 1024) == 2048
    with pytest.raises(QuantityError):
        round_up_to(1, 0)


@given(st.integers(min_value=0, max_value=2**62), st.booleans())
def test_format_then_parse_is_the_identity(value, binary):
    assert parse_quantity(format_bytes(value, binary=binary)) == value
