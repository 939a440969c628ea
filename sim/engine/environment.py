"""SimPy's Environment, extended with the engine's scheduling API (as SimPy's own subclasses do).

The engine schedules plain callbacks, not processes: a callback at a priority, after a delay
snapped to a millisecond grid. This subclass is the one place that knows how SimPy keeps its
queue; the rest of the engine uses only its public methods (``call_in``, ``pending``,
``scheduled``) and SimPy's (``now``, ``peek``, ``step``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from heapq import heappush
from typing import Any

import simpy
from simpy.core import NORMAL, URGENT

#: every event time is snapped to a millisecond grid, so that 8d2h + 14d and 22d2h, which differ in
#: the last bit as floats, are the same instant and "a timer ending at T fires first" holds exactly
TICKS_PER_DAY = 86_400_000
#: priority after every action at the same time: horizon, snapshots, progress ticks
LATE = 2

__all__ = ["LATE", "NORMAL", "TICKS_PER_DAY", "URGENT", "Environment", "Scheduled"]


class Scheduled:
    """A scheduled callback: the least an entry needs for ``Environment.step`` to process it.

    SimPy's step pops ``(time, priority, id, event)``, swaps ``event.callbacks`` for None, calls
    them, and checks the event's outcome. A full ``simpy.Event`` costs more to create and schedule.
    ``callbacks`` is None once it has run.
    """

    __slots__ = ("_ok", "_value", "callbacks")

    def __init__(self, callback: Callable[[Any], None]) -> None:
        self.callbacks: list[Callable[[Any], None]] | None = [callback]
        self._ok = True
        self._value = None


class Environment(simpy.Environment):
    """A ``simpy.Environment`` that schedules plain callbacks on a millisecond grid."""

    def call_in(self, delay: float, entry: Scheduled, priority: int = NORMAL) -> Scheduled:
        """Schedule ``entry`` to run ``delay`` days from now (snapped to the grid) at ``priority``."""
        when = round((self._now + delay) * TICKS_PER_DAY) / TICKS_PER_DAY
        heappush(self._queue, (when, priority, next(self._eid), entry))
        return entry

    def pending(self) -> int:
        """How many entries (callbacks, timeouts, resource events) are waiting in the queue."""
        return len(self._queue)

    def scheduled(self) -> Iterator[tuple[float, Any]]:
        """The waiting entries with their times, in no particular order."""
        for when, _priority, _eid, entry in self._queue:
            yield when, entry
