"""Kubernetes resource quantities ("64Mi", "1.5Gi", "500M", "1e3", "250m") as exact numbers.

Pure: text in, `Fraction` out, and back. The grammar is the apiserver's
(k8s.io/apimachinery/pkg/api/resource): a signed decimal number followed by a
binary suffix (Ki Mi Gi Ti Pi Ei), a decimal suffix (n u m "" k M G T P E) or
a decimal exponent (e3, E-2). Fractions keep "0.1Gi" exact, so a limit raised
by a factor never drifts by float rounding.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from types import MappingProxyType

BINARY = MappingProxyType(
    {
        "Ki": 2**10,
        "Mi": 2**20,
        "Gi": 2**30,
        "Ti": 2**40,
        "Pi": 2**50,
        "Ei": 2**60,
    }
)
DECIMAL = MappingProxyType(
    {
        "n": Fraction(1, 10**9),
        "u": Fraction(1, 10**6),
        "m": Fraction(1, 10**3),
        "": Fraction(1),
        "k": Fraction(10**3),
        "M": Fraction(10**6),
        "G": Fraction(10**9),
        "T": Fraction(10**12),
        "P": Fraction(10**15),
        "E": Fraction(10**18),
    }
)

_QUANTITY = re.compile(
    r"^(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?:(?P<exponent>[eE][+-]?[0-9]+)|(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$"
)


class QuantityError(ValueError):
    """The text is not a Kubernetes quantity."""


def parse_quantity(text: str) -> Fraction:
    """The exact value of a quantity: parse_quantity("1.5Gi") == 1610612736."""
    match = _match(text)
    number = Fraction(match["number"])
    if match["exponent"]:
        return number * Fraction(10) ** int(match["exponent"][1:])
    return number * unit_of(text)


def unit_of(text: str) -> Fraction:
    """What one unit of the quantity's suffix is worth: unit_of("64Mi") == 1048576, unit_of("1e3") == 1."""
    suffix = _match(text)["suffix"] or ""
    return Fraction(BINARY[suffix]) if suffix in BINARY else DECIMAL[suffix]


def is_binary(text: str) -> bool:
    """True for quantities written with a power-of-two suffix (Ki, Mi, Gi …)."""
    return (_match(text)["suffix"] or "") in BINARY


def _match(text: str) -> re.Match:
    match = _QUANTITY.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise QuantityError(f"not a quantity: {text!r}")
    return match


def to_bytes(text: str) -> int:
    """A memory quantity in whole bytes, rounded up (the apiserver rounds memory up too)."""
    return math.ceil(parse_quantity(text))


def format_bytes(value: int, binary: bool = True) -> str:
    """The shortest exact spelling of a byte count in one suffix family: 100663296 -> "96Mi"."""
    if value < 0:
        raise QuantityError(f"a memory size cannot be negative: {value}")
    units = BINARY if binary else {k: int(v) for k, v in DECIMAL.items() if v >= 1000}
    for suffix, size in sorted(units.items(), key=lambda item: -item[1]):
        if value and value % size == 0:
            return f"{value // size}{suffix}"
    return str(value)


def round_up_to(value: Fraction | int, unit: int) -> int:
    """The smallest whole multiple of `unit` that is >= value."""
    if unit < 1:
        raise QuantityError(f"unit must be a positive whole number: {unit}")
    return math.ceil(Fraction(value) / unit) * unit


def scale_memory(text: str, factor: float) -> str:
    """Multiply a memory quantity in its own suffix family: ("64Mi", 1.3) -> "84Mi", ("1Gi", 1.5) -> "1536Mi".

    The result is rounded up to a whole unit of the quantity's own suffix, but
    never coarser than Mi (binary) or M (decimal) nor finer than a byte, so
    1.5 x 1Gi is 1536Mi rather than 2Gi.
    """
    if factor <= 0:
        raise QuantityError(f"factor must be positive: {factor}")
    binary = is_binary(text)
    raised = parse_quantity(text) * Fraction(str(factor))
    unit = min(max(int(unit_of(text)), 1), BINARY["Mi"] if binary else int(DECIMAL["M"]))
    return format_bytes(round_up_to(raised, unit), binary=binary)
