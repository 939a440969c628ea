"""SimPy's Environment, extended with the engine's scheduling API (as SimPy's own subclasses do).

The engine schedules plain callbacks, not processes: a callback at a priority, after a delay
snapped to a millisecond grid. This subclass is the one place that knows how SimPy keeps its
queue; the rest of the engine uses only its public methods (``call_in``, ``pending``,
``scheduled``) and SimPy's (``now``, ``peek``, ``step``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from heapq import heappop, heappush
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

    def run_until(self, until: float | None, idle: Callable[[int], bool]) -> None:
        """Process the queue in order, as repeated ``step()`` calls would, until it is empty, its next
        entry is after ``until``, or ``idle(entries waiting)`` says nothing left can matter.

        The loop is SimPy's ``step`` written out once (pop, swap the callbacks for None, call them,
        raise an event's unhandled failure), so a run makes one Python call per entry instead of
        four (``pending``, ``peek``, ``step``, and ``step``'s own). SimPy's own events (the dispute
        team's resource requests) go through it unchanged.
        """
        queue = self._queue
        while queue:
            if until is not None and queue[0][0] > until:
                return
            if idle(len(queue)):
                return
            self._now, _, _, event = heappop(queue)
            callbacks, event.callbacks = event.callbacks, None
            for callback in callbacks:
                callback(event)
            if not event._ok and not hasattr(event, "_defused"):
                exc = type(event._value)(*event._value.args)  # as simpy.Environment.step raises it
                exc.__cause__ = event._value
                raise exc

    def scheduled(self) -> Iterator[tuple[float, Any]]:
        """The waiting entries with their times, in no particular order."""
        for when, _priority, _eid, entry in self._queue:
            yield when, entry
