"""Distributions of population scenarios, parsed with positions and sampled from numpy Generators.

A distribution is written as a bare value (a constant) or ``{name: {params}}``: exponential
(mean), lognormal (median, sigma), gamma (mean, cv), uniform (low, high), triangular (low, mode,
high), poisson (mean), empirical (file, column: a CSV beside the scenario). Parameters take the
units of what is sampled: durations (``3d``), amounts (``250``) or plain numbers.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.units import MAX_MINOR, UnitError, parse_duration, parse_money
from ..core.yamlio import InputError, allowed_roots, confined, outside_message, read_text_bounded

if TYPE_CHECKING:
    from ..core.problems import Collector
    from ..core.yamlio import Loc

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

#: the largest lognormal sigma (e^(10 z) already spans 40 orders of magnitude at z = 4)
MAX_SIGMA = 10.0
#: the largest gamma coefficient of variation
MAX_CV = 100.0
#: the largest poisson mean (counts)
MAX_POISSON_MEAN = 1_000_000.0
#: the largest plain number (fractions such as bonus_fraction: 1,000 times the milestone at most)
MAX_NUMBER = 1_000.0
#: the largest empirical CSV file, in bytes
MAX_CSV_BYTES = 16 * 1024 * 1024


class Dist:
    """A sampler: ``draw(rng)`` gives one value in the unit of its kind (days, major units, count).

    Built from its name and parameters, so it pickles (for process and Dask workers) even though
    ``draw`` is a fast closure.
    """

    __slots__ = ("draw", "mean", "name", "params", "values")

    def __init__(
        self, name: str, params: tuple[tuple[str, float], ...], values: np.ndarray | None = None
    ) -> None:
        self.name = name
        self.params = params
        self.values = values
        self.mean, self.draw = _sampler(name, dict(params), values)

    def __reduce__(self) -> tuple:
        return (Dist, (self.name, self.params, self.values))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Dist)
            and (self.name, self.params) == (other.name, other.params)
            and np.array_equal(
                self.values if self.values is not None else [],
                other.values if other.values is not None else [],
            )
        )

    def __hash__(self) -> int:
        return hash((self.name, self.params))

    def __repr__(self) -> str:
        return f"Dist({self.describe()})"

    def describe(self) -> str:
        inner = ", ".join(f"{k}={v:g}" for k, v in self.params)
        return f"{self.name}({inner})"


def _sampler(
    name: str, p: dict[str, float], values: np.ndarray | None
) -> tuple[float, Callable[[np.random.Generator], float]]:
    """The mean and a draw function of a distribution whose parameters were validated."""
    if name == "constant":
        value = p["value"]
        return value, lambda rng: value
    if name == "exponential":
        mean = p["mean"]
        return mean, lambda rng: rng.exponential(mean)
    if name == "lognormal":
        mu, sigma = math.log(p["median"]), p["sigma"]
        return p["median"] * math.exp(sigma**2 / 2), lambda rng: rng.lognormal(mu, sigma)
    if name == "gamma":
        mean, cv = p["mean"], p["cv"]
        shape, scale = 1.0 / cv**2, mean * cv**2
        return mean, lambda rng: rng.gamma(shape, scale)
    if name == "uniform":
        low, high = p["low"], p["high"]
        return (low + high) / 2, lambda rng: rng.uniform(low, high)
    if name == "triangular":
        low, mode, high = p["low"], p["mode"], p["high"]
        return (low + mode + high) / 3, lambda rng: rng.triangular(low, mode, high)
    if name == "poisson":
        mean = p["mean"]
        return mean, lambda rng: float(rng.poisson(mean))
    if name == "empirical":
        assert values is not None
        arr, n = values, len(values)
        return float(arr.mean()), lambda rng: float(arr[rng.integers(n)])
    raise ValueError(f"unknown distribution {name!r}")


def constant(value: float) -> Dist:
    """A distribution that always gives ``value``."""
    return Dist("constant", (("value", value),))


def _value(col: Collector, raw: Any, loc: Loc, kind: str, digits: int) -> float | None:
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
        col.add(loc, f"expected a number, got {_cut(raw)}")
        return None
    if kind == "number" and abs(raw) > MAX_NUMBER:
        col.add(loc, f"{raw:g} is larger than the largest supported ({MAX_NUMBER:,.0f})")
        return None
    return float(raw)


def _cut(value: object, limit: int = 40) -> str:
    shown = repr(value)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def parse_dist(
    col: Collector,
    raw: Any,
    loc: Loc,
    kind: str,
    base: Path,
    digits: int = 2,
    *,
    roots: Sequence[Path] | None = None,
) -> Dist | None:
    """Parse a distribution of values of ``kind``; report problems to ``col`` and return None.

    An empirical CSV is read from ``base`` and must lie inside ``roots`` (default: ``base``'s
    tree and the folders of MILESTONE_SIM_ALLOW_PATHS).
    """
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
        return _empirical(col, params, ploc, kind, base, digits, roots)
    values: dict[str, float] = {}
    for key in PARAMS[name]:
        v = _value(col, params[key], (*ploc, key), "shape" if key in SHAPE_PARAMS else kind, digits)
        if v is None:
            return None
        values[key] = v
    return _build(col, name, values, ploc, kind, digits)


def _build(col: Collector, name: str, v: dict[str, float], loc: Loc, kind: str, digits: int) -> Dist | None:
    """Check a distribution's parameters; report an impossible one with what is allowed."""
    problem = None
    if name == "lognormal" and v["sigma"] > MAX_SIGMA:
        problem = f"lognormal sigma must be at most {MAX_SIGMA:g}, got {v['sigma']:g}"
    elif name == "gamma" and v["cv"] > MAX_CV:
        problem = f"gamma cv must be at most {MAX_CV:g}, got {v['cv']:g}"
    elif name == "poisson" and v["mean"] > MAX_POISSON_MEAN:
        problem = f"poisson mean must be at most {MAX_POISSON_MEAN:,.0f}, got {v['mean']:g}"
    if problem:
        col.add(loc, problem)
        return None
    if name in ("exponential", "poisson") and v["mean"] <= 0:
        problem = f"{name} mean must be greater than zero"
    elif name == "poisson" and kind != "count":
        problem = "poisson gives whole counts; use it for counts only"
    elif name == "lognormal" and (v["median"] <= 0 or v["sigma"] < 0):
        problem = "lognormal needs median > 0 and sigma >= 0"
    elif name == "gamma" and (v["mean"] <= 0 or v["cv"] <= 0):
        problem = "gamma needs mean > 0 and cv > 0"
    elif name == "uniform" and (v["low"] < 0 or v["high"] < v["low"]):
        problem = "uniform needs 0 <= low <= high"
    elif name == "triangular" and (
        v["low"] < 0 or not v["low"] <= v["mode"] <= v["high"] or v["low"] == v["high"]
    ):
        problem = "triangular needs 0 <= low <= mode <= high and low < high"
    if problem:
        col.add(loc, problem)
        return None
    dist = Dist(name, tuple((k, v[k]) for k in PARAMS[name]))
    if kind == "money" and dist.mean > MAX_MINOR / 10**digits:
        col.add(
            loc,
            f"{dist.describe()} has a mean amount of {dist.mean:.4g}, above the largest supported amount "
            f"({MAX_MINOR // 10**digits:,}): sampled amounts would overflow",
        )
        return None
    return dist


def _empirical(
    col: Collector,
    params: dict,
    loc: Loc,
    kind: str,
    base: Path,
    digits: int,
    roots: Sequence[Path] | None,
) -> Dist | None:
    file, column = params["file"], params["column"]
    if not isinstance(file, str) or not isinstance(column, str):
        col.add(loc, "empirical takes file: <csv beside the scenario> and column: <name>")
        return None
    where = (*loc, "file")
    allowed = tuple(roots) if roots is not None else allowed_roots(base)
    path = confined(base / file, allowed)
    if path is None:
        col.add(where, outside_message(file, allowed))
        return None
    try:
        text = read_text_bounded(path, MAX_CSV_BYTES, file)
    except InputError as exc:
        problem = exc.problems[0]
        at = ""
        if problem.line is not None and "UTF-8" in problem.message:
            at = f" (line {problem.line}, column {problem.column})"
        col.add(where, problem.message + at)
        return None
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        if not reader.fieldnames:
            col.add(where, f"{file} is empty: it needs a header row and values")
            return None
        if column not in reader.fieldnames:
            names = ", ".join(_cut(n) for n in reader.fieldnames[:50])
            col.add((*loc, "column"), f"{file} has no column {column!r}; columns: {names}")
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
                    if kind == "number" and values[-1] > MAX_NUMBER:
                        raise UnitError(f"the largest supported is {MAX_NUMBER:,.0f}")
            except (UnitError, ValueError) as exc:
                col.add(where, f"{file} line {n}, column {column}: cannot read {_cut(cell)} ({exc})")
                return None
    except csv.Error as exc:
        col.add(where, f"{file} is not a valid CSV file: {exc}")
        return None
    if not values:
        col.add(where, f"{file} has no values in column {column!r}")
        return None
    arr = np.array(values, dtype=float)
    return Dist("empirical", (("values", float(len(arr))),), arr)


def _num_or_text(cell: str) -> Any:
    try:
        return float(cell)
    except ValueError:
        return cell


def parse_mix(
    col: Collector, raw: Any, loc: Loc, names: tuple[str, ...], *, extra: tuple[str, ...] = ()
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
