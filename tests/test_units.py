"""Money and durations (FORMAT.md section 1): exact cents, never rounded; durations in days."""

from __future__ import annotations

from decimal import Decimal

import pytest

from sim.core.units import (
    UnitError,
    format_duration,
    format_money,
    parse_duration,
    parse_money,
    parse_rate,
    percent_of,
    to_major,
)

# ------------------------------------------------------------------------------ parse_money


@pytest.mark.parametrize(
    ("value", "cents"),
    [
        ("19.99", 1999),
        (500.5, 50050),
        (500, 50000),
        ("500", 50000),
        ("500.5", 50050),
        (500.00, 50000),
        ("5.00", 500),
        (5.1, 510),
        (0.01, 1),
        (0.03, 3),
        ("0.10", 10),
        (" 7 ", 700),
        ("1_000", 100000),
        ("+5", 500),
        (19.99, 1999),  # the float 19.99 is not 19.99 exactly, yet reads as 1999 cents
        (1e12, 10**14),
        ("1e12", 10**14),
        (123456789.12, 12345678912),
    ],
)
def test_parse_money_exact_cents(value, cents):
    result = parse_money(value)
    assert result == cents
    assert type(result) is int


@pytest.mark.parametrize("value", [5.005, "5.005", "0.001", 0.001, 250.999, "1.234"])
def test_parse_money_rejects_more_decimals_than_the_currency_has(value):
    with pytest.raises(UnitError, match="more than 2 decimal places"):
        parse_money(value)


def test_float_noise_is_rejected_not_rounded():
    # 0.1 + 0.2 == 0.30000000000000004: rounding it to 0.30 would hide a bug in the input
    with pytest.raises(UnitError, match="decimal places"):
        parse_money(0.1 + 0.2)


@pytest.mark.parametrize("value", [0, 0.0, "0", "0.00", "-0", -1, -0.01, "-5", -500.5])
def test_parse_money_rejects_zero_and_negative(value):
    with pytest.raises(UnitError, match="greater than zero"):
        parse_money(value)


def test_parse_money_allow_zero_accepts_zero_only():
    assert parse_money(0, allow_zero=True) == 0
    assert parse_money("0.00", allow_zero=True) == 0
    with pytest.raises(UnitError):
        parse_money(-1, allow_zero=True)


def test_parse_money_allow_zero_message_does_not_claim_zero_is_forbidden():
    with pytest.raises(UnitError) as info:
        parse_money(-1, allow_zero=True)
    assert "greater than zero" not in str(info.value)
    assert "-1" in str(info.value)


@pytest.mark.parametrize("value", [True, False, None])
def test_parse_money_rejects_bool_and_none(value):
    with pytest.raises(UnitError, match="expected an amount"):
        parse_money(value)


@pytest.mark.parametrize("value", ["lots", "", "5 USD", "$5", "1,000.00", [5], {"a": 5}, b"5"])
def test_parse_money_rejects_text_and_containers(value):
    with pytest.raises(UnitError, match="expected an amount"):
        parse_money(value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), "nan", "inf", "Infinity"])
def test_parse_money_rejects_non_finite(value):
    with pytest.raises(UnitError, match="finite"):
        parse_money(value)


def test_parse_money_respects_currency_digits():
    assert parse_money(500, 0) == 500  # JPY: no minor unit
    with pytest.raises(UnitError, match="more than 0 decimal places"):
        parse_money(500.5, 0)
    assert parse_money("1.234", 3) == 1234


def test_unit_error_is_a_value_error():
    assert issubclass(UnitError, ValueError)


# ------------------------------------------------------------------------------ format_money


@pytest.mark.parametrize(
    ("cents", "text"),
    [
        (50000, "500.00"),
        (1999, "19.99"),
        (50050, "500.50"),
        (1, "0.01"),
        (10, "0.10"),
        (0, "0.00"),
        (-5, "-0.05"),
        (-50050, "-500.50"),
        (10**22, "100000000000000000000.00"),
    ],
)
def test_format_money(cents, text):
    assert format_money(cents) == text


def test_format_money_zero_digit_currency():
    assert format_money(700, 0) == "700"


@pytest.mark.parametrize("text", ["0.01", "19.99", "500.50", "333.33", "123456789.12"])
def test_money_round_trips(text):
    assert format_money(parse_money(text)) == text


def test_to_major_is_exact_decimal():
    assert to_major(33333) == Decimal("333.33")
    assert to_major(1) == Decimal("0.01")


# ------------------------------------------------------------------------------ percent_of


@pytest.mark.parametrize(
    ("cents", "mode", "fee"),
    [
        (33333, "half_up", 3333),  # 10% of 333.33 = 33.333 -> 33.33
        (33335, "half_up", 3334),  # 33.335 -> 33.34
        (33325, "half_up", 3333),  # 33.325 -> 33.33 (half away from zero)
        (33325, "half_even", 3332),  # 33.325 -> 33.32 (to even)
        (33335, "half_even", 3334),  # 33.335 -> 33.34 (to even)
        (33339, "down", 3333),  # 33.339 -> 33.33
        (33331, "up", 3334),  # 33.331 -> 33.34
        (5, "half_up", 1),  # 0.005 -> 0.01
        (5, "half_even", 0),  # 0.005 -> 0.00
        (5, "down", 0),
        (5, "up", 1),
        (50000, "half_up", 5000),  # exact: no rounding at all
        (50000, "up", 5000),
    ],
)
def test_percent_of_rounds_by_named_mode(cents, mode, fee):
    assert percent_of(cents, Decimal(10), mode) == fee


def test_percent_of_default_is_half_up():
    assert percent_of(33325, Decimal(10)) == 3333
    assert percent_of(1, Decimal(50)) == 1  # 0.005 -> 0.01


def test_percent_of_fractional_percent():
    # 2.75% of 1000.00 = 27.50 exactly; of 333.33 = 9.166575 -> 9.17
    assert percent_of(100000, Decimal("2.75")) == 2750
    assert percent_of(33333, Decimal("2.75")) == 917


def test_percent_of_returns_int():
    assert type(percent_of(33333, Decimal(5))) is int


def _exact_fee(cents: int, percent: str, mode: str) -> int:
    """The fee by integer arithmetic only: percent as a ratio of integers, rounded by hand."""
    whole, _, frac = percent.partition(".")
    num, den = cents * int(whole + frac), 100 * 10 ** len(frac)
    q, r = divmod(num, den)
    if mode == "down":
        return q
    if mode == "up":
        return q + (r > 0)
    if 2 * r > den or (2 * r == den and (mode == "half_up" or q % 2 == 1)):
        return q + 1
    return q


@pytest.mark.parametrize("mode", ["half_up", "half_even", "down", "up"])
@pytest.mark.parametrize(
    ("cents", "percent"),
    [
        (999_999_999_999_999, "49.99999999999999999999999999999"),  # off by a cent with 28 digits
        (10**15, "12.34567890123456789012345678905"),
        (10**15 - 1, "50.00000000000000000000000000001"),
        (333_333_333_333_333, "0.0000000000000000000000000000015"),
        (1, "50"),
        (3, "50"),
    ],
)
def test_percent_of_is_exact_beyond_decimal_precision(cents, percent, mode):
    assert percent_of(cents, Decimal(percent), mode) == _exact_fee(cents, percent, mode)


def test_percent_of_was_wrong_by_a_cent_with_decimal_context():
    # 999999999999999 x 49.99999999999999999999999999999 % = 499999999999999.4999...: rounds down
    assert percent_of(999_999_999_999_999, Decimal("49.99999999999999999999999999999")) == 499_999_999_999_999


def test_parse_money_with_a_huge_exponent_is_a_unit_error():
    for text in ("1e999999", "1e99999999999", "-1e999999"):
        with pytest.raises(UnitError, match="larger than the largest supported"):
            parse_money(text)
    with pytest.raises(UnitError, match="more than 2 decimal places"):
        parse_money("1e-9999999")
    assert parse_money("1e3") == 100000
    assert parse_money("5.00000000000000000000000000000000") == 500


def test_parse_money_never_rounds_beyond_decimal_precision():
    with pytest.raises(UnitError, match="more than 2 decimal places"):
        parse_money("1.000000000000000000000000000001")


def test_parse_money_message_cuts_a_long_input():
    with pytest.raises(UnitError) as info:
        parse_money("1" * 5000)
    assert len(str(info.value)) < 150


def test_durations_and_rates_are_bounded():
    with pytest.raises(UnitError, match=r"longer than the longest supported \(1,000 years = 365250d\)"):
        parse_duration(1e308)
    with pytest.raises(UnitError, match="longest supported"):
        parse_duration("9" * 400 + "d")
    with pytest.raises(UnitError, match=r"highest supported \(10,000,000/d\)"):
        parse_rate("10000000000/d")
    assert parse_rate("10000000/d") == 1e7


def test_percent_of_unknown_mode():
    with pytest.raises(KeyError):
        percent_of(100, Decimal(10), "banker")


# ------------------------------------------------------------------------------ durations


@pytest.mark.parametrize(
    ("value", "days"),
    [
        ("14d", 14.0),
        ("36h", 1.5),
        ("1d12h", 1.5),
        ("0.5d", 0.5),
        (".5d", 0.5),
        ("90min", 90 / 1440),
        ("1w", 7.0),
        ("2w3d", 17.0),
        ("30s", 30 / 86400),
        ("1h30min", 1.5 / 24),
        ("0d", 0.0),
        (" 14d ", 14.0),
        (14, 14.0),
        (2.5, 2.5),
        (0, 0.0),
    ],
)
def test_parse_duration(value, days):
    assert parse_duration(value) == pytest.approx(days, abs=1e-12)
    assert isinstance(parse_duration(value), float)


@pytest.mark.parametrize(
    "value",
    ["-1d", "14x", "", "d", "14", "1.d", "1e3d", "1dd", "nan", "fourteen days", "14 days", "d14", "-0.5h"],
)
def test_parse_duration_rejects_unreadable(value):
    with pytest.raises(UnitError, match="duration"):
        parse_duration(value)


def test_parse_duration_error_says_what_is_allowed():
    with pytest.raises(UnitError) as info:
        parse_duration("14x")
    message = str(info.value)
    assert "'14x'" in message
    assert "w, d, h, min, s" in message


@pytest.mark.parametrize("value", [-1, -0.5, float("nan")])
def test_parse_duration_rejects_negative_and_non_finite_numbers(value):
    with pytest.raises(UnitError, match="zero or positive"):
        parse_duration(value)


@pytest.mark.parametrize("value", [True, False, None, [1], {"d": 1}])
def test_parse_duration_rejects_other_types(value):
    with pytest.raises(UnitError, match="expected a duration"):
        parse_duration(value)


@pytest.mark.parametrize(
    ("days", "text"),
    [
        (14.0, "14d"),
        (1.5, "1d12h"),
        (0.25, "6h"),
        (0, "0d"),
        (7, "7d"),
        (90 / 1440, "1h30min"),
        (1 / 86400, "1s"),
        (1 / 3, "8h"),
        (0.1, "2h24min"),
    ],
)
def test_format_duration(days, text):
    assert format_duration(days) == text


@pytest.mark.parametrize("text", ["14d", "1d12h", "6h", "1h30min", "5d", "30s", "2d3h4min5s"])
def test_duration_round_trips(text):
    assert format_duration(parse_duration(text)) == text


# ------------------------------------------------------------------------------ rates


@pytest.mark.parametrize(
    ("value", "per_day"),
    [("40/d", 40.0), ("2/h", 48.0), ("1/w", 1 / 7), ("1.5 / d", 1.5), ("1/min", 1440.0)],
)
def test_parse_rate(value, per_day):
    assert parse_rate(value) == pytest.approx(per_day)


@pytest.mark.parametrize("value", ["40", 40, "40/x", "-1/d", "0/d", "/d", "", None, True, "40/day"])
def test_parse_rate_rejects(value):
    with pytest.raises(UnitError, match="rate"):
        parse_rate(value)


@pytest.mark.parametrize("value", [1e20, "1e16", 10**16])
def test_parse_money_rejects_amounts_beyond_int64_safety(value):
    with pytest.raises(UnitError, match="larger than the largest supported"):
        parse_money(value)
