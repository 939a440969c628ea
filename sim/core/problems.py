"""The problem collector: every problem of a file, gathered so they are reported at once.

Readers of input files (scenarios, population blocks, distributions) share it, so it lives here,
below them all.
"""

from __future__ import annotations

import difflib
import math
from typing import Any

from .units import UnitError, parse_duration, parse_money
from .yamlio import Doc, Loc, Problem


class Collector:
    """Collects problems so a file reports all of them at once."""

    def __init__(self, doc: Doc) -> None:
        self.doc = doc
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []

    def warn(self, loc: Loc, message: str) -> None:
        self.warnings.append(self.doc.problem(loc, message))

    def misspelt(self, data: dict, key: str) -> bool:
        """True if ``data`` has a key that looks like a misspelling of ``key`` (reported as unknown)."""
        others = [k for k in data if isinstance(k, str) and k != key]
        return bool(difflib.get_close_matches(key, others, n=1))

    def missing(self, data: dict, key: str, loc: Loc, message: str | None = None) -> None:
        """Report a required key that is missing, unless a misspelling of it was reported already."""
        if not self.misspelt(data, key):
            self.add(loc, message or f"required key {key!r} is missing")

    def add(self, loc: Loc, message: str, *, key: bool = False) -> None:
        self.problems.append(self.doc.problem(loc, message, key=key))

    def money(
        self, value: Any, loc: Loc, digits: int, *, allow_zero: bool = False, allow_negative: bool = False
    ) -> int | None:
        try:
            return parse_money(value, digits, allow_zero=allow_zero, allow_negative=allow_negative)
        except UnitError as exc:
            self.add(loc, str(exc))
            return None

    def duration(self, value: Any, loc: Loc) -> float | None:
        try:
            return parse_duration(value)
        except UnitError as exc:
            self.add(loc, str(exc))
            return None

    def keys(self, data: dict, allowed: tuple[str, ...], loc: Loc) -> None:
        for key in data:
            if key not in allowed:
                hint = difflib.get_close_matches(key, allowed, n=1)
                msg = f"unknown key {key!r}"
                if hint:
                    msg += f" (did you mean {hint[0]!r}?)"
                msg += f"; allowed: {', '.join(allowed)}"
                self.add((*loc, key), msg, key=True)

    def text(self, data: dict, key: str, loc: Loc, *, required: bool = True) -> str | None:
        value = data.get(key)
        if value is None:
            if required:
                self.missing(data, key, loc)
            return None
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
            self.add((*loc, key), f"expected a name, got {shown}")
            return None
        return str(value)

    def ident(self, data: dict, key: str, loc: Loc, what: str) -> str | None:
        """A contract or party id: a name that account names can hold (not empty, no ':' or '/')."""
        value = self.text(data, key, loc)
        if value is None:
            return None
        if not value.strip():
            self.add((*loc, key), f"a {what} id must not be empty")
            return None
        if ":" in value or "/" in value:
            self.add(
                (*loc, key),
                f"{what} ids may not contain ':' or '/' (they name accounts and milestones, "
                f"e.g. freelancer:ana and c1/m1); got {value!r}",
            )
            return None
        return value

    def free_text(self, data: dict, key: str, what: str) -> str | None:
        """A free-text value (a title, a description): text as written, never a list, map or number.

        A plain scalar that YAML would type (``description: 1e999``, ``scenario: 12``) is taken as
        the text it was written as; ``data`` is updated to hold that text, so outputs show it.
        """
        value = data.get(key)
        if value is None:
            return None
        if not isinstance(value, str) and (key,) in self.doc.texts:
            value = data[key] = self.doc.texts[(key,)]
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            value = data[key] = str(value)  # in-memory data (sweeps): a finite number reads as itself
        if not isinstance(value, str):
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
            self.add((key,), f"{what} is text; got {shown} (a {type(value).__name__}): put it in quotes")
            return None
        return value
