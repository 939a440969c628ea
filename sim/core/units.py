"""Money as integer minor units and durations as float days: parsing and formatting.

Money never touches float arithmetic: an amount is parsed from its decimal text into an
``int`` count of minor units (cents for USD) and formatted back from that integer. An amount
with more decimals than the currency has is an error, never rounded.
"""

from __future__ import annotations

import math
import re
from decimal import (
    ROUND_CEILING,
    ROUND_FLOOR,
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    Decimal,
    InvalidOperation,
)
from fractions import Fraction

#: minor-unit digits of the currencies the packs may name
CURRENCY_DIGITS: dict[str, int] = {"USD": 2, "EUR": 2, "GBP": 2, "CAD": 2, "AUD": 2, "JPY": 0}

ROUNDING_MODES = {
    "half_up": ROUND_HALF_UP,
    "half_even": ROUND_HALF_EVEN,
    "down": ROUND_FLOOR,
    "up": ROUND_CEILING,
}

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(w|d|h|min|s)")
_UNIT_DAYS = {"w": 7.0, "d": 1.0, "h": 1.0 / 24.0, "min": 1.0 / 1440.0, "s": 1.0 / 86400.0}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*/\s*(w|d|h|min|s)\s*$")


#: the largest amount in minor units (10^15: ten trillion dollars); beyond it int64 totals could overflow
MAX_MINOR = 10**15
#: the longest duration or horizon, in days (1,000 years of 365.25 days): event times stay exact on
#: the engine's millisecond grid far below this
MAX_DAYS = 365_250.0
#: the highest arrival rate, per day (a run is bounded by the number of contracts it expects too)
MAX_RATE_PER_DAY = 10_000_000.0


def _short(text: object, limit: int = 40, *, quote: bool = True) -> str:
    """``repr`` of a value (``quote=False``: a text as is), cut to ``limit`` characters.

    So that a message never quotes a long input.
    """
    shown = text if isinstance(text, str) and not quote else repr(text)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


class UnitError(ValueError):
    """A money amount, duration or rate that cannot be read; the message says what is allowed."""


def parse_money(
    value: object, digits: int = 2, *, allow_zero: bool = False, allow_negative: bool = False
) -> int:
    """Parse ``500``, ``500.5`` or ``"19.99"`` into minor units; reject extra decimals and <= 0.

    ``allow_negative`` admits any sign (a party's net position, FORMAT section 7).
    """
    if isinstance(value, bool) or value is None:
        raise UnitError(f"expected an amount such as 500 or 19.99, got {_short(value)}")
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise UnitError(f"expected a finite amount, got {_short(value)}")
        text = repr(value)  # shortest round-trip text: 5.005 stays "5.005"
    elif isinstance(value, str):
        text = value.strip().replace("_", "")
    elif isinstance(value, Decimal):  # a Parquet DECIMAL column (run --format parquet): exact
        text = str(value)
    else:
        raise UnitError(f"expected an amount such as 500 or 19.99, got {type(value).__name__}")
    try:
        dec = Decimal(text)
    except InvalidOperation:
        raise UnitError(f"expected an amount such as 500 or 19.99, got {_short(value)}") from None
    if not dec.is_finite():
        raise UnitError(f"expected a finite amount, got {_short(value)}")
    shown = _short(text, quote=False)
    too_large = f"amount {shown} is larger than the largest supported ({MAX_MINOR // 10**digits:,})"
    # exact integer arithmetic on the decimal's digits: no context precision, no overflow traps
    sign, digit_tuple, exponent = dec.as_tuple()
    assert isinstance(exponent, int)
    coeff_digits = "".join(map(str, digit_tuple)).rstrip("0")
    if not coeff_digits:
        cents = 0
    else:
        exponent += len(digit_tuple) - len(coeff_digits)  # the trailing zeros moved into the exponent
        if dec.adjusted() + digits > 18:  # far above MAX_MINOR: say so without building the number
            raise UnitError(too_large)
        if exponent < -digits:
            raise UnitError(
                f"amount {shown} has more than {digits} decimal places; amounts are never rounded"
            )
        cents = int(coeff_digits) * 10 ** (exponent + digits)
        if sign:
            cents = -cents
    if allow_negative:
        if abs(cents) > MAX_MINOR:
            raise UnitError(too_large)
        return cents
    if cents < 0 and allow_zero:
        raise UnitError(f"amount must not be negative, got {shown}")
    if cents < 0 or (cents == 0 and not allow_zero):
        raise UnitError(f"amount must be greater than zero, got {shown}")
    if cents > MAX_MINOR:
        raise UnitError(too_large)
    return cents


def format_money(cents: int, digits: int = 2) -> str:
    """Format minor units as a plain decimal string: 50000 -> '500.00', -5 -> '-0.05'."""
    if digits == 0:
        return str(cents)
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(int(cents)), 10**digits)
    return f"{sign}{whole}.{frac:0{digits}d}"


def to_major(cents: int, digits: int = 2) -> Decimal:
    """Minor units as an exact Decimal in major units (for reports)."""
    return Decimal(int(cents)).scaleb(-digits)


def percent_of(cents: int, percent: Decimal, rounding: str = "half_up") -> int:
    """``percent`` % of an amount, rounded to a whole minor unit by the named mode.

    Exact rational arithmetic (no decimal context precision): ``half_up`` rounds halves away from
    zero, ``half_even`` to the even neighbour, ``down`` toward minus infinity and ``up`` toward plus
    infinity (for the non-negative amounts fees are taken of: truncate, and round any fraction up).
    """
    ROUNDING_MODES[rounding]  # an unknown mode is a KeyError, as with the Decimal modes
    exact = Fraction(int(cents)) * Fraction(percent) / 100
    num, den = exact.numerator, exact.denominator
    if rounding == "down":
        return num // den
    if rounding == "up":
        return -(-num // den)
    if rounding == "half_even":
        return round(exact)
    half_away = (2 * abs(num) + den) // (2 * den)  # floor(|x| + 1/2)
    return half_away if num >= 0 else -half_away


def parse_duration(value: object) -> float:
    """Parse a duration into days: a number (days) or ``14d``, ``36h``, ``1d12h``, ``0.5d``."""
    if isinstance(value, bool) or value is None:
        raise UnitError(f"expected a duration such as 14d, 36h or 1d12h, got {_short(value)}")
    if isinstance(value, (int, float)):
        days = float(value)
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        if text.startswith("-"):
            raise UnitError(f"duration must be zero or positive, got {_short(value)}")
        pos, days = 0, 0.0
        for match in _DURATION_PART.finditer(text):
            if match.start() != pos:
                break
            days += float(match.group(1)) * _UNIT_DAYS[match.group(2)]
            pos = match.end()
        if not text or pos != len(text):
            raise UnitError(
                f"cannot read duration {value!r}: write a number of days or <number><unit> parts "
                "with units w, d, h, min, s (e.g. 14d, 36h, 1d12h)"
            )
    else:
        raise UnitError(f"expected a duration such as 14d, got {type(value).__name__}")
    if math.isnan(days) or days < 0:
        raise UnitError(f"duration must be zero or positive, got {_short(value)}")
    if days > MAX_DAYS:
        raise UnitError(
            f"duration {_short(value)} is longer than the longest supported (1,000 years = {MAX_DAYS:.0f}d)"
        )
    return days


def format_duration(days: float) -> str:
    """Format days compactly: 14.0 -> '14d', 1.5 -> '1d12h', 0.25 -> '6h'."""
    if days == 0:
        return "0d"
    total_s = round(days * 86400)
    if abs(total_s - days * 86400) > 1e-6:
        return f"{days:g}d"
    d, rem = divmod(total_s, 86400)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    parts = [
        f"{d}d" if d else "",
        f"{h}h" if h else "",
        f"{m}min" if m else "",
        f"{s}s" if s else "",
    ]
    return "".join(parts)


def parse_rate(value: object) -> float:
    """Parse an arrival rate such as ``40/d`` or ``2/h`` into events per day (units required)."""
    if isinstance(value, str):
        match = _RATE.match(value)
        if match:
            rate = float(match.group(1)) / _UNIT_DAYS[match.group(2)]
            if rate <= 0:
                raise UnitError(f"rate must be greater than zero, got {_short(value)}")
            if rate > MAX_RATE_PER_DAY:
                raise UnitError(
                    f"rate {_short(value)} is higher than the highest supported ({MAX_RATE_PER_DAY:,.0f}/d)"
                )
            return rate
    raise UnitError(f"expected a rate with its time unit such as 40/d or 2/h, got {_short(value)}")
