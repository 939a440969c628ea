"""Business-day calendars: weekends, holidays and ``bd`` durations, as pure date arithmetic.

No SimPy, no clock, no randomness: dates and day offsets only. A policy duration is either a float
(days, as everywhere else) or a :class:`BusinessDays` value (``5bd``). A :class:`Clock` maps the
simulation's time (days from t = 0, which is the scenario's ``start`` date at 00:00 in the
calendar's timezone) onto the calendar and turns a duration into days at the moment a timer starts.

The rule for ``n`` business days from an instant: the end is the n-th business day *after* the
day the window opens, at the same time of day. A 5bd window opened on a Friday at 10:00 ends the
next Friday at 10:00. One opened on a non-business day (a Saturday, a holiday) keeps its time of
day too: Saturday 10:00 + 5bd is the next Friday at 10:00 (Monday is the first business day after
it), the same end as a window opened on the Friday before. Holidays are skipped like weekends (a
holiday on a weekend day changes nothing). ``0bd`` ends when it opens.
"""

from __future__ import annotations

import bisect
import datetime as dt
import re
from dataclasses import dataclass, field

#: weekday names as a calendar's ``weekend`` lists them, Monday first (``date.weekday()`` order)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: the most business days a duration may count (about 1,000 years of five-day weeks)
MAX_BUSINESS_DAYS = 250_000
#: timezones a calendar may name (zoneinfo with daylight saving is not implemented)
TIMEZONES = ("UTC",)

_MS_PER_DAY = 86_400_000
_BD = re.compile(r"^\s*(\d+)\s*bd\s*$")
_BD_LIKE = re.compile(r"^\s*[-+]?[\d._]*\s*bd\s*$")


@dataclass(frozen=True)
class BusinessDays:
    """A duration counted in business days (``5bd``)."""

    n: int

    def __str__(self) -> str:
        return f"{self.n}bd"


def parse_business_days(value: object) -> BusinessDays | None:
    """``BusinessDays`` for a text such as ``5bd``; None for anything that is not a bd duration.

    Raises ValueError for a bd text that is not a whole number of business days (``5.5bd``,
    ``-1bd``) or counts more than MAX_BUSINESS_DAYS.
    """
    if not isinstance(value, str) or not _BD_LIKE.match(value):
        return None
    match = _BD.match(value)
    if not match:
        raise ValueError(
            f"cannot read {value!r}: business days are a whole number >= 0 followed by bd (e.g. 5bd)"
        )
    n = int(match.group(1))
    if n > MAX_BUSINESS_DAYS:
        raise ValueError(f"{value.strip()} is more than the most supported ({MAX_BUSINESS_DAYS:,}bd)")
    return BusinessDays(n)


def is_zero(duration: float | BusinessDays) -> bool:
    """True for a duration of no time (``0d``, ``0bd``)."""
    return duration.n == 0 if isinstance(duration, BusinessDays) else duration == 0


@dataclass(frozen=True)
class Calendar:
    """Which days are business days: not a weekend day (``date.weekday()`` numbers), not a holiday."""

    timezone: str = "UTC"
    weekend: frozenset[int] = frozenset({5, 6})
    holidays: tuple[dt.date, ...] = ()  # sorted, no duplicates
    _sorted: tuple[dt.date, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.weekend) >= 7:
            raise ValueError("a calendar needs at least one business day in the week")
        object.__setattr__(self, "_sorted", tuple(sorted(set(self.holidays))))

    @property
    def is_default(self) -> bool:
        return self == Calendar()

    def is_business_day(self, day: dt.date) -> bool:
        if day.weekday() in self.weekend:
            return False
        i = bisect.bisect_left(self._sorted, day)
        return not (i < len(self._sorted) and self._sorted[i] == day)

    def _weekday_steps(self, day: dt.date, n: int) -> dt.date:
        """The n-th day after ``day`` that is not a weekend day (holidays ignored), n >= 1."""
        per_week = 7 - len(self.weekend)
        weeks = (n - 1) // per_week
        day += dt.timedelta(days=7 * weeks)
        left = n - weeks * per_week
        while left:
            day += dt.timedelta(days=1)
            if day.weekday() not in self.weekend:
                left -= 1
        return day

    def add_business_days(self, day: dt.date, n: int) -> dt.date:
        """The n-th business day after ``day`` (``day`` itself for n = 0)."""
        while n > 0:
            end = self._weekday_steps(day, n)
            # every holiday on a working weekday in (day, end] took one of those steps: make it up
            lo = bisect.bisect_right(self._sorted, day)
            hi = bisect.bisect_right(self._sorted, end)
            n = sum(1 for h in self._sorted[lo:hi] if h.weekday() not in self.weekend)
            day = end
        return day


@dataclass(frozen=True)
class Clock:
    """Simulation time on a calendar: t = 0 is ``start`` at 00:00 in the calendar's timezone.

    Without ``start`` only plain (float) durations can be turned into days; the scenario reader
    requires ``start`` whenever the policy uses business days.
    """

    calendar: Calendar = Calendar()
    start: dt.date | None = None

    def days(self, now: float, duration: float | BusinessDays) -> float:
        """The length in days of ``duration`` started at time ``now`` (a float duration is itself)."""
        if not isinstance(duration, BusinessDays):
            return duration
        if self.start is None:
            raise ValueError(f"a {duration} duration needs the scenario's start date")
        ticks = round(now * _MS_PER_DAY)
        day, time_of_day = divmod(ticks, _MS_PER_DAY)
        opened = self.start + dt.timedelta(days=day)
        ends = self.calendar.add_business_days(opened, duration.n)
        end_ticks = (ends - self.start).days * _MS_PER_DAY + time_of_day
        return end_ticks / _MS_PER_DAY - now

    def date_time(self, t: float) -> str:
        """Time ``t`` as a calendar date and time, ``2026-01-16 10:00`` (seconds when not zero)."""
        if self.start is None:
            raise ValueError("no start date")
        midnight = dt.datetime.combine(self.start, dt.time())
        moment = midnight + dt.timedelta(milliseconds=round(t * _MS_PER_DAY))
        return moment.strftime("%Y-%m-%d %H:%M" if moment.second == 0 else "%Y-%m-%d %H:%M:%S")

    def describe(self, now: float, duration: float | BusinessDays) -> str:
        """``14d`` for a plain duration (as messages always wrote it), ``5bd (on 2026-01-16 10:00)``."""
        if not isinstance(duration, BusinessDays):
            return f"{duration:g}d"
        return f"{duration} (on {self.date_time(now + self.days(now, duration))})"


#: the clock of a scenario without a start date and with the default calendar
PLAIN = Clock()
