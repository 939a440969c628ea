"""Distributions of population scenarios, parsed with positions and sampled from numpy Generators.

A distribution is written as a bare value (a constant) or ``{name: {params}}``: exponential
(mean), lognormal (median, sigma), gamma (mean, cv), uniform (low, high), triangular (low, mode,
high), poisson (mean), empirical (file, column: a CSV beside the scenario). Parameters take the
units of what is sampled: durations (``3d``), amounts (``250``) or plain numbers.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .units import UnitError, parse_duration, parse_money

if TYPE_CHECKING:
    from .scenario import _Collector
    from .yamlio import Loc

KINDS = ("duration", "money", "count", "number")
PARAMS: dict[str, tuple[str, ...]] = {
    "exponential": ("mean",),
    "lognormal": ("median", "sigma"),
    "gamma": ("mean", "cv"),
    "uniform": ("low", "high"),
    "triangular": ("low", "mode", "high"),
    "poisson": ("mean",),
    "empirical": ("file", "column"),
}
#: parameters that are shapes (plain numbers), not values in the sampled unit
SHAPE_PARAMS = {"sigma", "cv"}


@dataclass(frozen=True)
class Dist:
    """A sampler: ``draw(rng)`` gives one value in the unit of its kind (days, major units, count)."""

    name: str
    params: tuple[tuple[str, float], ...]
    mean: float
    draw: Callable[[np.random.Generator], float]

    def describe(self) -> str:
        inner = ", ".join(f"{k}={v:g}" for k, v in self.params)
        return f"{self.name}({inner})"


def constant(value: float) -> Dist:
    """A distribution that always gives ``value``."""
    return Dist("constant", (("value", value),), value, lambda rng: value)


def _value(col: _Collector, raw: Any, loc: Loc, kind: str, digits: int) -> float | None:
    """A parameter or constant in the unit of ``kind``, as float (days, major units, number)."""
    try:
        if kind == "duration":
            return parse_duration(raw)
        if kind == "money":
            return parse_money(raw, digits) / 10**digits
    except UnitError as exc:
        col.add(loc, str(exc))
        return None
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
        col.add(loc, f"expected a number, got {raw!r}")
        return None
    return float(raw)


def parse_dist(col: _Collector, raw: Any, loc: Loc, kind: str, base: Path, digits: int = 2) -> Dist | None:
    """Parse a distribution of values of ``kind``; report problems to ``col`` and return None."""
    if not isinstance(raw, dict):
        value = _value(col, raw, loc, kind, digits)
        if value is None:
            return None
        if value < 0:
            col.add(loc, "a constant must not be negative")
            return None
        return constant(value)
    if len(raw) != 1:
        col.add(loc, f"a distribution is one of {', '.join(PARAMS)}, e.g. {{exponential: {{mean: 3d}}}}")
        return None
    name, params = next(iter(raw.items()))
    ploc = (*loc, name)
    if name not in PARAMS:
        col.add(loc, f"unknown distribution {name!r}; allowed: {', '.join(PARAMS)}", key=True)
        return None
    if not isinstance(params, dict):
        col.add(ploc, f"{name} takes a mapping of {', '.join(PARAMS[name])}")
        return None
    col.keys(params, PARAMS[name], ploc)
    missing = [p for p in PARAMS[name] if p not in params]
    if missing:
        col.add(ploc, f"{name} needs {', '.join(missing)}")
        return None
    if name == "empirical":
        return _empirical(col, params, ploc, kind, base, digits)
    values: dict[str, float] = {}
    for key in PARAMS[name]:
        v = _value(col, params[key], (*ploc, key), "number" if key in SHAPE_PARAMS else kind, digits)
        if v is None:
            return None
        values[key] = v
    return _build(col, name, values, ploc, kind)


def _build(col: _Collector, name: str, v: dict[str, float], loc: Loc, kind: str) -> Dist | None:
    def bad(msg: str) -> None:
        col.add(loc, msg)

    if name == "exponential":
        mean = v["mean"]
        if mean <= 0:
            return bad("exponential mean must be greater than zero")
        return Dist(name, (("mean", mean),), mean, lambda rng: rng.exponential(mean))
    if name == "lognormal":
        median, sigma = v["median"], v["sigma"]
        if median <= 0 or sigma < 0:
            return bad("lognormal needs median > 0 and sigma >= 0")
        mu = math.log(median)
        return Dist(
            name,
            (("median", median), ("sigma", sigma)),
            median * math.exp(sigma**2 / 2),
            lambda rng: rng.lognormal(mu, sigma),
        )
    if name == "gamma":
        mean, cv = v["mean"], v["cv"]
        if mean <= 0 or cv <= 0:
            return bad("gamma needs mean > 0 and cv > 0")
        shape, scale = 1.0 / cv**2, mean * cv**2
        return Dist(name, (("mean", mean), ("cv", cv)), mean, lambda rng: rng.gamma(shape, scale))
    if name == "uniform":
        low, high = v["low"], v["high"]
        if low < 0 or high < low:
            return bad("uniform needs 0 <= low <= high")
        return Dist(
            name, (("low", low), ("high", high)), (low + high) / 2, lambda rng: rng.uniform(low, high)
        )
    if name == "triangular":
        low, mode, high = v["low"], v["mode"], v["high"]
        if low < 0 or not low <= mode <= high or low == high:
            return bad("triangular needs 0 <= low <= mode <= high and low < high")
        return Dist(
            name,
            (("low", low), ("mode", mode), ("high", high)),
            (low + mode + high) / 3,
            lambda rng: rng.triangular(low, mode, high),
        )
    if name == "poisson":
        mean = v["mean"]
        if mean <= 0:
            return bad("poisson mean must be greater than zero")
        if kind != "count":
            return bad("poisson gives whole counts; use it for counts only")
        return Dist(name, (("mean", mean),), mean, lambda rng: float(rng.poisson(mean)))
    raise AssertionError(name)


def _empirical(col: _Collector, params: dict, loc: Loc, kind: str, base: Path, digits: int) -> Dist | None:
    file, column = params["file"], params["column"]
    if not isinstance(file, str) or not isinstance(column, str):
        col.add(loc, "empirical takes file: <csv beside the scenario> and column: <name>")
        return None
    path = (base / file).resolve()
    where = (*loc, "file")
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames:
                col.add(where, f"{file} is empty: it needs a header row and values")
                return None
            if column not in reader.fieldnames:
                col.add(
                    (*loc, "column"),
                    f"{file} has no column {column!r}; columns: {', '.join(reader.fieldnames)}",
                )
                return None
            values = []
            for n, row in enumerate(reader, start=2):
                cell = (row.get(column) or "").strip()
                if cell == "":
                    continue
                try:
                    if kind == "duration":
                        values.append(parse_duration(_num_or_text(cell)))
                    elif kind == "money":
                        values.append(parse_money(cell, digits) / 10**digits)
                    else:
                        values.append(float(cell))
                        if not math.isfinite(values[-1]) or values[-1] < 0:
                            raise UnitError("values must be finite and not negative")
                except (UnitError, ValueError) as exc:
                    col.add(where, f"{file} line {n}, column {column}: cannot read {cell!r} ({exc})")
                    return None
    except OSError as exc:
        col.add(where, f"cannot read {file} beside the scenario: {exc.strerror}")
        return None
    except csv.Error as exc:
        col.add(where, f"{file} is not a valid CSV file: {exc}")
        return None
    if not values:
        col.add(where, f"{file} has no values in column {column!r}")
        return None
    arr = np.array(values, dtype=float)
    n = len(arr)
    return Dist(
        "empirical",
        (("values", float(n)),),
        float(arr.mean()),
        lambda rng: float(arr[rng.integers(n)]),
    )


def _num_or_text(cell: str) -> Any:
    try:
        return float(cell)
    except ValueError:
        return cell


def parse_mix(
    col: _Collector, raw: Any, loc: Loc, names: tuple[str, ...], *, extra: tuple[str, ...] = ()
) -> tuple[tuple[str, float], ...] | None:
    """A probability mix such as {approve: 0.8, request_changes: 0.2}: known names, sums to 1."""
    if not isinstance(raw, dict):
        col.add(loc, f"expected probabilities of {', '.join(names)} that add up to 1")
        return None
    col.keys(raw, (*names, *extra), loc)
    out = []
    for name in names:
        if name not in raw:
            continue
        p = raw[name]
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
            col.add((*loc, name), f"a probability is a number from 0 to 1, got {p!r}")
            return None
        out.append((name, float(p)))
    total = sum(p for _, p in out)
    if abs(total - 1.0) > 1e-9:
        col.add(loc, f"probabilities add up to {total:g}, not 1 ({', '.join(f'{n}: {p:g}' for n, p in out)})")
        return None
    return tuple(out)


def pick(mix: tuple[tuple[str, float], ...], u: float) -> str:
    """The mix entry a uniform draw ``u`` in [0, 1) falls in."""
    acc = 0.0
    for name, p in mix:
        acc += p
        if u < acc:
            return name
    return mix[-1][0]
