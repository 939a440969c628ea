"""Dated policy values (FORMAT section 8): a key whose value changes on given dates.

A dated value is written ``{values: {2016-06-01: ..., 2023-05-03: ...}}`` wherever a value goes;
inside a list entry (a fee) the dated part sits beside the entry's fixed keys (``name``, ``payer``,
``on``) and each date's value is a mapping merged onto them. Each date's value is in force from that
date (00:00 on the pack's calendar) until the next date.

This module works on plain data only: it finds the dated values of a merged pack, checks how they
were written (dates of the calendar, in order, keys that may change over time), and lays out the
data of each *version*: the pack as it stood from one date until the next. The loader
(``model.load_policy``) validates each version as a whole pack, so a dated value of the wrong type
is reported at its date's line.

A dated value that overrides a plain one (an extending pack or ``policy_overrides`` writing
``review.window: {values: {2027-03-01: 10d}}``) keeps the plain value in force before its first
date: under the key :data:`BEGIN`.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

Loc = tuple[str | int, ...]

#: the date under which a plain value overridden by a dated one is kept: in force before every date
BEGIN = "0001-01-01"
#: sections of a pack that stay the same for the whole run
FIXED_SECTIONS = frozenset({"policy", "title", "extends", "currency", "calendar", "transition"})
#: keys the engine and the population read once per run: they cannot change over time
FIXED_KEYS = frozenset({"milestones.funding", "milestones.fund_from_balance", "refund.to"})
#: what a procedure's stage may change over time: its window, its fee and what silence does
STAGE_KEYS = frozenset({"window", "fee", "on_timeout"})
MAX_DATES = 200

_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def is_dated(value: Any) -> bool:
    """True for ``{values: {...}}`` (and a list entry carrying ``values:`` beside its own keys)."""
    return isinstance(value, dict) and "values" in value


@dataclass(frozen=True)
class DatedNode:
    """One dated value of a merged pack: where it is, its dates (sorted), the entry's fixed keys."""

    loc: Loc
    dates: tuple[str, ...]
    fixed: tuple[str, ...]

    @property
    def first(self) -> str:
        return self.dates[0]


def show(date: str) -> str:
    """A version's first date as printed: ``2023-05-03``, or ``start`` for :data:`BEGIN`."""
    return "start" if date == BEGIN else date


def parse_date(text: str) -> dt.date:
    return dt.date.min if text == BEGIN else dt.date.fromisoformat(text)


def _where_allowed(loc: Loc) -> str | None:
    """Why a dated value may not stand at ``loc``, or None when it may."""
    names = [p for p in loc if isinstance(p, str)]
    if not loc:
        return "a whole pack cannot be dated: date its values"
    if loc[0] in FIXED_SECTIONS:
        return f"{loc[0]} cannot change over time: it holds for the whole run"
    dotted = ".".join(names)
    if dotted in FIXED_KEYS:
        return f"{dotted} cannot change over time: the engine reads it once per run"
    if len(loc) == 1 and loc[0] != "fees":
        return f"date the values inside {loc[0]}, not the whole section"
    if loc[0] == "fees" and (len(loc) != 2 or not isinstance(loc[1], int)):
        return "date a fee as a whole entry (name, payer, on and values:)"
    if loc[0] in ("procedures", "dormancy"):
        stage_key = (
            len(loc) == 5 and loc[0] == "procedures" and loc[2] == "stages" and isinstance(loc[3], int)
        )
        if not (stage_key and loc[4] in STAGE_KEYS) and not (loc[0] == "dormancy" and len(loc) == 2):
            return (
                "inside procedures only a stage's window, fee and on_timeout may change over time "
                "(which procedures and stages exist holds for the whole run)"
            )
    return None


def written_problems(data: Any, loc: Loc = ()) -> list[tuple[Loc, str, bool]]:
    """Problems of the dated values as one document wrote them: ``(location, message, at_key)``.

    Checked per document, before packs are merged, so "in order" means in the order written.
    """
    out: list[tuple[Loc, str, bool]] = []
    if is_dated(data):
        values = data["values"]
        why = _where_allowed(loc)
        if why:
            return [((*loc, "values"), why, True)]
        if not isinstance(values, dict) or not values:
            return [((*loc, "values"), "values: maps dates to values, e.g. {2023-05-03: 10d}", False)]
        if len(values) > MAX_DATES:
            return [((*loc, "values"), f"{len(values)} dates: the most supported is {MAX_DATES}", False)]
        fixed = [k for k in data if k != "values"]
        if fixed and not (loc and loc[0] == "fees"):
            return [((*loc, fixed[0]), "a dated value has only values: (dates and their values)", True)]
        last = None
        for key, value in values.items():
            text = str(key)
            if not _ISO.match(text):
                out.append(((*loc, "values", key), f"expected a date like 2023-05-03, got {text!r}", True))
                continue
            try:
                dt.date.fromisoformat(text)
            except ValueError:
                out.append(((*loc, "values", key), f"{text} is not a date of the calendar", True))
                continue
            if last is not None and text <= last:
                out.append(
                    ((*loc, "values", key), f"dates must be in order: {text} comes after {last}", True)
                )
            last = text
            if fixed and not isinstance(value, dict):
                out.append(
                    ((*loc, "values", key), "a dated fee's value is a mapping of its dated keys", False)
                )
            out.extend(_nested(value, (*loc, "values", key)))
        return out
    if isinstance(data, dict):
        for key, value in data.items():
            out.extend(written_problems(value, (*loc, key)))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            out.extend(written_problems(value, (*loc, i)))
    return out


def _nested(value: Any, loc: Loc) -> list[tuple[Loc, str, bool]]:
    if is_dated(value):
        return [((*loc, "values"), "a dated value cannot hold another dated value", True)]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _nested(v, (*loc, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _nested(v, (*loc, i))]
    return []


def find(data: Any, loc: Loc = ()) -> list[DatedNode]:
    """Every dated value of a merged pack (already checked by :func:`written_problems`)."""
    if is_dated(data):
        dates = tuple(sorted(str(d) for d in data["values"]))
        return [DatedNode(loc, dates, tuple(k for k in data if k != "values"))]
    if isinstance(data, dict):
        return [n for key, value in data.items() for n in find(value, (*loc, key))]
    if isinstance(data, list):
        return [n for i, value in enumerate(data) for n in find(value, (*loc, i))]
    return []


def version_dates(nodes: list[DatedNode]) -> list[str]:
    """The first date of each version: from the day every dated key has a value, each change."""
    start = max(n.first for n in nodes)
    return sorted({d for n in nodes for d in n.dates if d >= start})


def chosen(node: DatedNode, date: str) -> str:
    """The date of the value of ``node`` in force on ``date`` (the latest not after it)."""
    return max(d for d in node.dates if d <= date)


def at(data: Any, nodes: list[DatedNode], date: str) -> Any:
    """The pack's data as in force on ``date``: every dated value replaced by its version."""

    def resolve(value: Any, loc: Loc) -> Any:
        node = by_loc.get(loc)
        if node is not None:
            picked = value["values"][_key(value["values"], chosen(node, date))]
            if node.fixed:
                return {**{k: value[k] for k in node.fixed}, **(picked if isinstance(picked, dict) else {})}
            return picked
        if isinstance(value, dict):
            return {k: resolve(v, (*loc, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v, (*loc, i)) for i, v in enumerate(value)]
        return value

    by_loc = {n.loc: n for n in nodes}
    return resolve(data, ())


def _key(values: dict, date: str) -> Any:
    for key in values:
        if str(key) == date:
            return key
    raise KeyError(date)


def source_loc(nodes: list[DatedNode], date: str, loc: Loc) -> Loc:
    """Where the value at ``loc`` of the version of ``date`` was written in the merged data."""
    for node in nodes:
        n = len(node.loc)
        if loc[:n] == node.loc:
            rest = loc[n:]
            if rest and rest[0] in node.fixed:
                return loc
            return (*node.loc, "values", chosen(node, date), *rest)
    return loc
