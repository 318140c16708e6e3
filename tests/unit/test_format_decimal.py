"""`money.format_decimal`: the fixed-point text of a decimal, whatever its exponent."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from ledger.money import format_decimal


@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_the_text_is_the_fixed_point_format_of_the_value(value: Decimal) -> None:
    text = format_decimal(value)
    assert text == format(abs(value) if value.is_zero() else value, "f")
    assert "E" not in text
    assert Decimal(text) == value


def test_exponents_small_large_and_zeros_are_written_out() -> None:
    cases = {
        "1E-7": "0.0000001",
        "1.5E-6": "0.0000015",
        "0.000001": "0.000001",
        "1E+2": "100",
        "-2.50": "-2.50",
        "0E-8": "0.00000000",
        "-0.00": "0.00",
        "-0E+3": "0",
        "123456789012345678901234567890.123": "123456789012345678901234567890.123",
    }
    assert {text: format_decimal(Decimal(text)) for text in cases} == cases
    assert format_decimal(None) is None
