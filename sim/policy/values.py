"""The value types of policy packs: money, durations, business days, dates, percentages.

Each is a pydantic annotated type whose validator turns the written value (``"19.99"``, ``14d``,
``5bd``, ``2026-12-25``) into its exact internal form, or raises a message naming what was wrong.
``RulesModel`` is the base of every part of a pack.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainValidator, ValidationInfo

from ..core.units import UnitError, format_duration, parse_duration, parse_money
from .calendar import TIMEZONES, WEEKDAYS, BusinessDays, parse_business_days


def _money(value: Any, info: ValidationInfo) -> int:
    digits = (info.context or {}).get("digits", 2)
    try:
        return parse_money(value, digits)
    except UnitError as exc:
        raise ValueError(str(exc)) from None


def _duration(value: Any) -> float:
    try:
        return parse_duration(value)
    except UnitError as exc:
        raise ValueError(str(exc)) from None


def _policy_duration(value: Any) -> float | BusinessDays:
    """A policy window: a plain duration (float days, as always) or business days (``5bd``)."""
    if isinstance(value, BusinessDays):
        return value
    bd = parse_business_days(value)
    if bd is not None:
        return bd
    try:
        return parse_duration(value)
    except UnitError as exc:
        if isinstance(value, str):
            raise ValueError(f"{exc}, or a whole number of business days (5bd)") from None
        raise ValueError(str(exc)) from None


def show_duration(duration: float | BusinessDays) -> str:
    """A policy duration as written: ``14d``, ``1d12h``, ``5bd``."""
    return str(duration) if isinstance(duration, BusinessDays) else format_duration(duration)


def _weekday(value: Any) -> int:
    if isinstance(value, str) and value.strip().lower() in WEEKDAYS:
        return WEEKDAYS.index(value.strip().lower())
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    raise ValueError(f"unknown weekday {shown}; allowed: {', '.join(WEEKDAYS)}")


def _timezone(value: Any) -> str:
    if value in TIMEZONES:
        return value
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    raise ValueError(
        f"timezone {shown} is not supported: only {', '.join(TIMEZONES)} "
        "(time zones with daylight saving are not implemented)"
    )


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{shown} is not a date of the calendar") from None
    raise ValueError(f"expected a date like 2026-12-25, got {shown}")


def _percent(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected a percentage such as 10 or 2.75, got {value!r}")
    try:
        dec = Decimal(repr(value) if isinstance(value, float) else str(value))
    except InvalidOperation:
        raise ValueError(f"expected a percentage such as 10 or 2.75, got {value!r}") from None
    if not dec.is_finite() or dec < 0 or dec > 100:
        raise ValueError(f"percent must be between 0 and 100, got {value!r}")
    return dec


Money = Annotated[int, BeforeValidator(_money)]
Duration = Annotated[float, BeforeValidator(_duration)]
#: a policy window: float days, or BusinessDays for ``5bd``
PolicyDuration = Annotated[float | BusinessDays, PlainValidator(_policy_duration)]
Weekday = Annotated[int, PlainValidator(_weekday)]
Timezone = Annotated[str, PlainValidator(_timezone)]
Date = Annotated[dt.date, PlainValidator(_date)]
Percent = Annotated[Decimal, BeforeValidator(_percent)]
LockedPart = Literal["amount", "due_date", "order", "delete"]


class RulesModel(BaseModel):
    """Base of every part of a pack: unknown keys are errors; values never change after loading."""

    model_config = ConfigDict(extra="forbid", frozen=True)
