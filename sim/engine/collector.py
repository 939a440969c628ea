"""Python's cyclic garbage collector, paused while an event loop runs.

A run keeps many long-lived objects (live contracts, their milestones, the event queue) and makes
almost no reference cycles, yet the generational collector keeps re-scanning the survivors: at a
million milestones that was about 40% of the time (``bench/bench_scale.py``). The engine therefore
pauses the collector for the loop and collects once at the end, the safe point. Reference counting
still frees every acyclic object at once, so memory is unchanged (measured in the benchmarks).

The pause is process-wide and re-entrant across threads (the threaded sweep backend runs loops
side by side): the first loop in disables the collector, the last one out restores it as it was.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["paused"]

_lock = threading.Lock()
_depth = 0
_was_enabled = False


@contextmanager
def paused() -> Iterator[None]:
    """Disable the cyclic collector inside the block; the last block out collects and restores it."""
    global _depth, _was_enabled
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            last = _depth == 0
            restore = last and _was_enabled
        if last:
            gc.collect()
            if restore:
                gc.enable()
