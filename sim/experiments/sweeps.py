"""Policy what-ifs: parameter sweeps on common random numbers (``paired`` compares two variants).

A *factor* is any policy key (``review.window``), any population parameter
(``population.client.review.delay``), or the scenario's ``policy`` (a pack name or path) or
``until``. ``sweep`` plays every variant of a grid (the full factorial by default, paired values
with ``zip=True``); ``compare`` plays two variants. Every variant runs replication ``r`` on the
same seed, so each contract draws the same random numbers under every variant (common random
numbers), and a paired comparison subtracts replication by replication.

Runs go through ``sim.experiments.executors`` (in-process, local processes or Dask); each run's milestone
rows land in ``<out>/parts/`` and only KPIs come back, so results are the same, row for row,
whatever the backend and the number of workers.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import json
import math
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import __version__
from ..analysis.tables import KPI_NAMES, MONEY_KPIS, summarize_kpis
from ..core.units import UnitError, parse_duration, parse_rate
from ..core.yamlio import InputError, Problem, load_text
from ..inputs.population_spec import stalling_stages
from ..inputs.scenario import SCENARIO_KEYS, Scenario, load_scenario, scenario_from_data
from .batch import check_counts
from .executors import Backend, RunOutcome, RunTask, make_backend, map_runs, read_part_outcome
from .outdir import prepare_in_place, replace_file

_zip = zip  # ``sweep(zip=...)`` shadows the builtin inside it

#: KPIs printed and charted when none are chosen.
DEFAULT_KPIS = ("auto_approved_share", "refunded_share", "time_to_payment_days_mean", "escrow_float_avg")
GRID_SOURCE = "<command line --grid>"


# ------------------------------------------------------------------------------ factors


def factor_kind(key: str, source: str = GRID_SOURCE) -> str:
    """``scenario`` (edits the scenario file: population.*, policy, until) or ``policy`` (an override)."""
    head = key.split(".", 1)[0]
    if head == "population" or key in ("policy", "until"):
        return "scenario"
    if head in ("seed", "replications"):
        raise _problem(source, f"{key!r} is not a factor; use --{head} (or the {head}= argument)", key)
    if head in SCENARIO_KEYS:
        raise _problem(
            source,
            f"{key!r} cannot be a factor; factors are policy keys (review.window), "
            "population parameters (population.client.review.delay), policy or until",
            key,
        )
    return "policy"


def parse_grid_option(text: str, source: str = GRID_SOURCE) -> tuple[str, list[Any]]:
    """Split ``KEY=V1,V2,...`` into the key and its values, each read as YAML.

    The values are a YAML flow sequence, so mappings may contain commas:
    ``population.client.review.delay={exponential: {mean: 2d}},{exponential: {mean: 5d}}``.
    """
    key, eq, raw = text.partition("=")
    key, raw = key.strip(), raw.strip()
    if not eq or not key or not raw:
        raise _problem(source, f"expected KEY=V1,V2,... (e.g. review.window=7d,14d), got {text!r}")
    flow = raw if raw.startswith("[") and raw.endswith("]") else f"[{raw}]"
    try:
        values = load_text(flow, source).data
    except InputError:
        raise _problem(
            source, f"cannot read the values {raw!r} (write V1,V2,... as YAML scalars)", key
        ) from None
    if not isinstance(values, list) or not values or any(v is None for v in values):
        raise _problem(source, f"no values (or an empty one) in {raw!r}", key)
    return key, values


def label(value: Any) -> str:
    """A value as the user would write it: ``7d``, ``20``, ``{exponential: {mean: 3d}}``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (dict, list)):
        import yaml

        return yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False).strip()
    return str(value)


def numeric(values: Sequence[Any]) -> tuple[list[float], str] | None:
    """Values as numbers for a chart's x axis, with a unit: durations in days, rates per day."""
    out: list[float] = []
    units: set[str] = set()
    for v in values:
        if isinstance(v, bool) or v is None:
            return None
        if isinstance(v, (int, float)):
            out.append(float(v))
            continue
        if not isinstance(v, str):
            return None
        for parse, unit in ((parse_duration, "days"), (parse_rate, "per day")):
            try:
                out.append(parse(v))
                if any(ch.isalpha() for ch in v):
                    units.add(unit)
                break
            except UnitError:
                continue
        else:
            return None
    if len(units) > 1:
        return None
    return out, (units.pop() if units else "")


def with_factors(base: Scenario, values: Mapping[str, Any], source: str = GRID_SOURCE) -> Scenario:
    """The base scenario with factor values applied, validated like a scenario file.

    Policy keys only: the policy is reloaded with the overrides and the rest of ``base`` is kept
    as it is (in-memory changes included); otherwise the scenario is rebuilt from its data.
    """
    values = {k: _plain(v) for k, v in values.items()}
    policy_only = all(factor_kind(k, source) == "policy" for k in values)
    data = copy.deepcopy(base.raw)
    n_file = len(data.get("policy_overrides") or {})
    over = list(base.overrides[n_file:])  # the caller's --set overrides; the file's come from data
    allow = list(getattr(base, "allow", ()))
    for key, value in values.items():
        if factor_kind(key, source) == "policy":
            over.append((key, value))
            continue
        if key == "policy" and isinstance(value, str) and Path(value).is_file():
            value = str(Path(value).resolve())  # a path on the command line is relative to the cwd
            allow.append(Path(value).parent)  # the caller named this pack: its folder may be read
        _set_path(data, key.split("."), value, source, key)
    try:
        if policy_only:
            return base.with_overrides(list(values.items()))
        rebuilt = scenario_from_data(data, base.path, over, allow=tuple(allow))
        return _kept_in_memory(base, rebuilt, values)
    except InputError as exc:
        context = ", ".join(f"{k}={label(v)}" for k, v in values.items())
        problems = [
            Problem(source, None, None, p.message + (f" (in {context})" if len(values) > 1 else ""), p.key)
            for p in exc.problems
        ]
        raise InputError(problems) from None


def _kept_in_memory(base: Scenario, rebuilt: Scenario, values: Mapping[str, Any]) -> Scenario:
    """``rebuilt`` (from ``base``'s file data) with what the caller changed on ``base`` in memory
    (``dataclasses.replace(scenario, until=30.0)``) and the factors do not set: the title, until,
    seed, replications and start, and, when money has the same minor units under the new pack,
    the population or contracts themselves."""
    keep: dict[str, Any] = {
        name: getattr(base, name)
        for name in ("title", "until", "seed", "replications", "start")
        if name not in values
    }
    if rebuilt.policy.digits == base.policy.digits:
        if base.population is not None and not any(k.startswith("population") for k in values):
            stalls = stalling_stages(base.population, rebuilt.policy)
            if stalls:
                raise InputError([Problem(str(base.path), None, None, m, "population") for _n, m in stalls])
            keep["population"] = base.population
        if base.contracts and not any(k.startswith("contracts") for k in values):
            keep["contracts"] = base.contracts
    return dataclasses.replace(rebuilt, **keep)


def apply_factors(
    scenario: Scenario, values: Mapping[str, Any], source: str = "<command line --set>"
) -> Scenario:
    """The scenario with ``{key: value}`` applied: what ``--set`` does on every command.

    A key is anything a ``--grid`` factor can be: a policy key (``review.window``), a population
    parameter (``population.platform.dispute_agents``), ``policy`` or ``until``. The same code
    path as the variants of a sweep, so ``--set K=V`` and ``--grid K=V`` mean the same thing.
    """
    if not values:
        return scenario
    problems: list[Problem] = []
    for key in values:
        try:
            factor_kind(key, source)
        except InputError as exc:
            problems.extend(exc.problems)
    if problems:
        raise InputError(problems)
    return with_factors(scenario, values, source)


def _set_path(data: dict, parts: list[str], value: Any, source: str, key: str) -> None:
    node = data
    for i, part in enumerate(parts[:-1]):
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = {}
        if not isinstance(nxt, dict):
            where = ".".join(parts[: i + 1])
            raise _problem(source, f"cannot set {key}: {where} is {label(nxt)}, not a mapping", key)
        node = nxt
    node[parts[-1]] = value


def _plain(value: Any) -> Any:
    """numpy scalars (from np.linspace and friends) as plain Python values."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def _problem(source: str, message: str, key: str | None = None) -> InputError:
    return InputError([Problem(source, None, None, message, key)])


# ------------------------------------------------------------------------------ variants


@dataclass(frozen=True)
class Variant:
    """One point of a sweep: its factor values and the scenario they make."""

    id: int
    values: tuple[tuple[str, Any], ...]
    scenario: Scenario = field(repr=False)
    key: str = ""  # fingerprint of the resolved inputs

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={label(v)}" for k, v in self.values) or "as written"


def _dists(obj: Any, seen: set[int] | None = None) -> list[Any]:
    """Every Dist reachable from a Population (dataclass fields, tuples, dicts), in a fixed order."""
    import dataclasses

    from ..inputs.distributions import Dist

    seen = set() if seen is None else seen
    if id(obj) in seen:
        return []
    seen.add(id(obj))
    if isinstance(obj, Dist):
        return [obj]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = []
        for f in dataclasses.fields(obj):
            out.extend(_dists(getattr(obj, f.name), seen))
        return out
    if isinstance(obj, (list, tuple)):
        return [d for item in obj for d in _dists(item, seen)]
    if isinstance(obj, dict):
        return [d for k in sorted(obj, key=str) for d in _dists(obj[k], seen)]
    return []


@lru_cache(maxsize=1)
def code_digest() -> str:
    """A digest of the installed code: every ``.py`` file and built-in pack of the sim package.

    Computed once per process; a changed engine or rule invalidates every stored part.
    """
    root = Path(__file__).resolve().parent.parent  # sim/, from sim/experiments/sweeps.py
    h = hashlib.sha256(__version__.encode())
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in (".py", ".yaml", ".yml"))
    for path in files:
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


def _input_files(scenario: Scenario) -> list[Path]:
    """The scenario file itself: what the packs and CSVs it names hold is in the fingerprint as read
    (the resolved policy, every distribution's values)."""
    return [scenario.path] if scenario.path.is_file() else []


def fingerprint(scenario: Scenario) -> str:
    """A digest of everything that decides a run's numbers (for --resume).

    It covers the scenario as read and as changed in memory, the resolved policy, the values of
    every distribution (an empirical CSV's values, not only its row count), the bytes of the
    input files and the installed code.
    """
    h = hashlib.sha256()
    payload = {
        "scenario": scenario.raw,
        "overrides": scenario.overrides,
        "policy": scenario.policy.resolved(),
        "until": scenario.until,
        "population": repr(scenario.population),  # in-memory changes too
        "contracts": repr(scenario.contracts),
        "version": __version__,
        "code": code_digest(),
    }
    h.update(json.dumps(payload, sort_keys=True, default=str).encode())
    for dist in _dists(scenario.population):
        h.update(f"{dist.name}{dist.params!r}".encode())
        if dist.values is not None:
            h.update(np.ascontiguousarray(dist.values).tobytes())
    for path in _input_files(scenario):
        h.update(path.as_posix().encode() + b"\0")
        try:
            h.update(path.read_bytes())
        except OSError:
            h.update(b"<unreadable>")
    return h.hexdigest()[:20]


def _behaviour(population: Any) -> str:
    """A population's parameters without where they were written (positions are not behaviour)."""
    import dataclasses

    if population is None or not dataclasses.is_dataclass(population):
        return repr(population)
    return repr(
        [
            (f.name, getattr(population, f.name))
            for f in dataclasses.fields(population)
            if not isinstance(getattr(population, f.name), Problem)
        ]
    )


def same_inputs(a: Scenario, b: Scenario) -> bool:
    """True when two scenarios would play the same runs (whatever way they were written)."""

    def key(sc: Scenario) -> str:
        h = hashlib.sha256()
        payload = {
            "policy": sc.policy.resolved(),
            "until": sc.until,
            "population": _behaviour(sc.population),
            "contracts": repr(sc.contracts),
        }
        h.update(json.dumps(payload, sort_keys=True, default=str).encode())
        for dist in _dists(sc.population):
            if dist.values is not None:
                h.update(np.ascontiguousarray(dist.values).tobytes())
        return h.hexdigest()

    return key(a) == key(b)


def build_variants(
    base: Scenario, grid: Mapping[str, Sequence[Any]], zip: bool = False, source: str = GRID_SOURCE
) -> list[Variant]:
    """Every variant of the grid, validated before anything runs (all problems at once)."""
    if not grid:
        raise _problem(source, "a sweep needs at least one factor, e.g. --grid review.window=7d,14d")
    keys = list(grid)
    lists: list[list[Any]] = []
    problems: list[Problem] = []
    for key in keys:
        raw = grid[key]
        values = [raw] if isinstance(raw, (str, bytes, Mapping)) or not isinstance(raw, Sequence) else raw
        values = [_plain(v) for v in values]
        if not values:
            problems.append(Problem(source, None, None, "no values", key))
        try:
            factor_kind(key)
        except InputError as exc:
            problems.extend(exc.problems)
        if not zip:
            seen = [label(v) for v in values]
            dups = sorted({s for s in seen if seen.count(s) > 1})
            if dups:
                problems.append(Problem(source, None, None, f"value(s) listed twice: {', '.join(dups)}", key))
        lists.append(values)
    if zip and len({len(v) for v in lists}) > 1:
        sizes = ", ".join(f"{k}: {len(v)}" for k, v in _zip(keys, lists))
        problems.append(
            Problem(source, None, None, f"--zip pairs values, so every factor needs as many ({sizes})")
        )
    if problems:
        raise InputError(problems)
    if len(keys) > 1:  # check each value on its own first: errors then name one factor only
        for key, values in _zip(keys, lists):
            for value in values:
                try:
                    with_factors(base, {key: value}, source)
                except InputError as exc:
                    problems.extend(exc.problems)
        if problems:
            raise InputError(list(dict.fromkeys(problems)))
    combos = list(_zip(*lists)) if zip else list(itertools.product(*lists))
    variants = []
    for i, combo in enumerate(combos):
        values = dict(_zip(keys, combo))
        try:
            sc = with_factors(base, values, source)
        except InputError as exc:
            problems.extend(exc.problems)
            continue
        variants.append(Variant(i, tuple(values.items()), sc, fingerprint(sc)))
    if problems:
        raise InputError(list(dict.fromkeys(problems)))
    currencies = sorted({v.scenario.policy.currency for v in variants})
    if len(currencies) > 1:  # one table, one chart axis: money of two currencies would be mixed
        which = ", ".join(
            f"{v.scenario.policy.policy} ({v.scenario.policy.currency})"
            for v in {v.scenario.policy.policy: v for v in variants}.values()
        )
        raise _problem(
            source,
            f"the variants count money in {' and '.join(currencies)} ({which}): a sweep puts every "
            "variant in one table and chart and has no exchange rate. Compare packs of different "
            "currencies with compare --policy A --policy B (each in its own currency, or --fx "
            f"{next(c for c in currencies if c != variants[0].scenario.policy.currency)}=RATE to "
            "convert), or sweep packs of one currency",
            "policy",
        )
    return variants


# ------------------------------------------------------------------------------ running


#: the names of the part files this tool writes (and so may delete), and of their temporary files
PART_NAME = re.compile(r"v\d{4,}-r\d{5,}\.parquet")
PART_TMP = re.compile(r"\.v\d{4,}-r\d{5,}\.parquet\.\d+-[0-9a-f]{8}\.tmp")


def _part_name(variant: int, replication: int) -> str:
    return f"v{variant:04d}-r{replication:05d}.parquet"


def run_variants(
    variants: Sequence[Variant],
    *,
    replications: int,
    seed: int,
    out: Path | None,
    resume: bool = False,
    backend: str | Backend = "processes",
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool | None = None,
) -> tuple[list[RunOutcome], list[Path]]:
    """Play ``replications`` runs of every variant on the same seeds; outcomes sorted by (variant, rep).

    Part files go to ``out/parts/`` (a temporary folder, removed afterwards, when ``out`` is None).
    With ``resume``, parts already written for the same inputs are reused, not recomputed.
    """
    if replications < 1:
        raise _problem("<arguments>", f"replications must be at least 1, got {replications}")
    if resume and out is None:
        raise _problem("<arguments>", "resume needs an output folder (out=...)")
    own = not isinstance(backend, Backend)
    be = make_backend(backend, workers, scheduler) if own else backend
    try:
        be.workers  # noqa: B018 - connects to a Dask scheduler now: a bad address fails before any writing
        return _run_tasks(variants, replications, seed, out, resume, be, progress)
    finally:
        if own:
            be.close()


def _run_tasks(
    variants: Sequence[Variant],
    replications: int,
    seed: int,
    out: Path | None,
    resume: bool,
    backend: Backend,
    progress: bool | None,
) -> tuple[list[RunOutcome], list[Path]]:
    temp = out is None
    parts_dir = Path(tempfile.mkdtemp(prefix="milestone-sim-parts-")) if temp else Path(out) / "parts"
    parts_dir = parts_dir.resolve()  # workers (Dask ones too) may not share our working directory
    parts_dir.mkdir(parents=True, exist_ok=True)
    tasks = [
        RunTask(
            v.scenario,
            v.id,
            r,
            seed,
            str(parts_dir / _part_name(v.id, r)),
            f"{v.key}:{seed}:{r}",
            "none",  # KPIs need no event log
        )
        for v in variants
        for r in range(replications)
    ]
    wanted = {Path(t.part).name for t in tasks if t.part}
    for stale in parts_dir.iterdir():  # only files named as this tool names its parts
        if PART_TMP.fullmatch(stale.name) or (
            PART_NAME.fullmatch(stale.name) and (not resume or stale.name not in wanted)
        ):  # a temporary file of an interrupted run; a part of another grid, or of a fresh start
            stale.unlink()
    try:
        reused = {}
        if resume:
            for t in tasks:
                found = read_part_outcome(t)
                if found is not None:
                    reused[(t.variant, t.replication)] = found
        todo = [t for t in tasks if (t.variant, t.replication) not in reused]
        outcomes = list(reused.values())
        outcomes.extend(map_runs(todo, backend, progress=progress) if todo else [])
    finally:
        if temp:
            shutil.rmtree(parts_dir, ignore_errors=True)
    outcomes.sort(key=lambda o: (o.variant, o.replication))
    paths = [] if temp else [Path(t.part) for t in tasks if t.part]
    return outcomes, paths


def runs_frame(
    variants: Sequence[Variant],
    outcomes: Sequence[RunOutcome],
    seed: int,
    extra: dict[str, list] | None = None,
) -> pd.DataFrame:
    """The tidy table: variant, factor columns, replication, seed, every KPI."""
    keys = [k for k, _ in variants[0].values] if variants else []
    by_id = {v.id: v for v in variants}
    cols: dict[str, list[Any]] = {"variant": [o.variant for o in outcomes]}
    for name, values in (extra or {}).items():
        cols[name] = [values[o.variant] for o in outcomes]
    for i, key in enumerate(keys):
        raw = [by_id[o.variant].values[i][1] for o in outcomes]
        is_num = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw)
        cols[key] = raw if is_num else [label(v) for v in raw]
    cols["replication"] = [o.replication for o in outcomes]
    cols["seed"] = [seed] * len(outcomes)
    for name in KPI_NAMES:
        cols[name] = [float(o.kpis.get(name, math.nan)) for o in outcomes]
    df = pd.DataFrame(cols)
    for name in ("variant", "replication", "seed"):
        df[name] = df[name].astype("int64")
    return df


def _timings(outcomes: Sequence[RunOutcome]) -> pd.DataFrame:
    """How long each run took in its worker (not part of the results: it varies run to run)."""
    return pd.DataFrame(
        {
            "variant": [o.variant for o in outcomes],
            "replication": [o.replication for o in outcomes],
            "seconds": [o.seconds for o in outcomes],
            "cpu_seconds": [o.cpu_seconds for o in outcomes],
            "reused": [o.reused for o in outcomes],
        }
    )


def write_table(df: pd.DataFrame, stem: Path) -> None:
    """``stem``.parquet (exact) and ``stem``.csv (12 significant digits, LF), each written whole."""
    replace_file(stem.with_suffix(".parquet"), lambda tmp: df.to_parquet(tmp, index=False))
    replace_file(
        stem.with_suffix(".csv"),
        lambda tmp: df.to_csv(tmp, index=False, float_format="%.12g", lineterminator="\n"),
    )


def write_text(path: Path, text: str) -> None:
    replace_file(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_figure(fig: Any, path: Path) -> None:
    replace_file(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))


def check_kpis(kpis: Sequence[str] | None, source: str = "<command line --kpi>") -> tuple[str, ...]:
    if not kpis:
        return DEFAULT_KPIS
    bad = [k for k in kpis if k not in KPI_NAMES]
    if bad:
        raise _problem(source, f"unknown KPI(s) {', '.join(bad)}; KPIs: {', '.join(KPI_NAMES)}")
    return tuple(dict.fromkeys(kpis))


def format_kpi(
    kpi: str,
    mean: float | None,
    low: float | None = None,
    high: float | None = None,
    ref: float | None = None,
) -> str:
    """A KPI value for a printed table, with decimals chosen by the KPI's kind (``ref``: its scale)."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    # the scale: the reference's, or the value's own when it is larger (a difference against a
    # reference of 0, such as fees against a pack without fees, is shown like the value itself)
    scale = abs(mean) if ref is None or math.isnan(ref) else max(abs(ref), abs(mean))
    if kpi.endswith("_share"):
        digits = 3
    elif "_days_" in kpi:
        digits = 2
    elif kpi in ("contracts", "milestones", "milestones_closed"):
        digits = 0 if float(mean).is_integer() else 1
    else:  # money
        digits = 0 if scale >= 1000 else 2
    text = _no_negative_zero(f"{mean:,.{digits}f}")
    if low is not None and high is not None and not math.isnan(low):
        text += f" ± {_no_negative_zero(f'{(high - low) / 2:,.{digits}f}')}"
    return text


def _no_negative_zero(text: str) -> str:
    """``-0.00`` (a tiny negative number, or -0.0) printed as ``0.00``."""
    if text.startswith("-") and not any(ch in "123456789" for ch in text):
        return text[1:]
    return text


# ------------------------------------------------------------------------------ sweep


@dataclass
class SweepResult:
    """A finished sweep: one row per (variant, replication) with every KPI, and the variants."""

    runs: pd.DataFrame
    variants: list[Variant]
    factors: tuple[str, ...]
    zip: bool
    seed: int
    replications: int
    out: Path | None = None
    parts: list[Path] = field(default_factory=list, repr=False)
    timings: pd.DataFrame | None = field(default=None, repr=False)  # per run: seconds, cpu_seconds, reused

    @cached_property
    def summary(self) -> pd.DataFrame:
        """Long table: variant, factors, kpi, mean, ci_low, ci_high, n (95% t-interval)."""
        rows = []
        fcols = list(self.factors)
        for vid, group in self.runs.groupby("variant", sort=True):
            first = group.iloc[0]
            stats = summarize_kpis(group[list(KPI_NAMES)].to_dict("records"))
            for name in KPI_NAMES:
                rows.append({"variant": vid, **{f: first[f] for f in fcols}, "kpi": name, **stats[name]})
        df = pd.DataFrame(rows, columns=["variant", *fcols, "kpi", "mean", "ci_low", "ci_high", "n"])
        cols = ["mean", "ci_low", "ci_high"]
        df[cols] = df[cols].astype("float64")  # an unknown interval (n < 2) is NaN
        return df

    def table(self, kpis: Sequence[str] | None = None) -> pd.DataFrame:
        """Per variant, each KPI as 'mean ± half-width of the 95% interval' (text, for printing)."""
        kpis = check_kpis(kpis, "<kpis>")
        s = self.summary.set_index(["variant", "kpi"])
        rows = []
        for v in self.variants:
            row: dict[str, Any] = {"variant": v.id}
            row.update({k: label(val) for k, val in v.values})
            for name in kpis:
                r = s.loc[(v.id, name)]
                row[name] = format_kpi(name, r["mean"], r["ci_low"], r["ci_high"])
            rows.append(row)
        return pd.DataFrame(rows)

    def milestones(self) -> pd.DataFrame:
        """Every run's milestone rows (variant, replication first), read back from the part files."""
        if not self.parts:
            raise ValueError("no part files: run the sweep with out=... to keep the milestone rows")
        return pd.read_parquet([str(p) for p in self.parts]).sort_values(
            ["variant", "replication"], kind="stable", ignore_index=True
        )

    def plot(self, kpis: Sequence[str] | None = None) -> Any:
        """A matplotlib Figure: each chosen KPI against each numeric factor, with 95% intervals."""
        return plot_sweep(self, check_kpis(kpis, "<kpis>"))

    def write(
        self, out: str | Path, kpis: Sequence[str] | None = None, charts: bool = True, force: bool = False
    ) -> Path:
        """sweep.parquet/.csv (tidy runs), summary.parquet/.csv, sweep.json and sweep.png.

        ``out`` must be new, empty or made by this tool (``force=True`` takes another folder).
        """
        out = Path(out)
        prepare_in_place(out, force=force, source="<out>")
        write_table(self.runs, out / "sweep")
        write_table(self.summary, out / "summary")
        manifest = {
            "tool": {"name": "milestone-sim", "version": __version__},
            "scenario": self.variants[0].scenario.path.as_posix() if self.variants else None,
            "design": "zip" if self.zip else "full factorial",
            "factors": list(self.factors),
            "seed": self.seed,
            "replications": self.replications,
            "variants": [
                {
                    "variant": v.id,
                    "values": {k: label(val) for k, val in v.values},
                    "policy_overrides": {k: label(val) for k, val in v.scenario.overrides},
                    "fingerprint": v.key,
                }
                for v in self.variants
            ],
        }
        write_text(out / "sweep.json", json.dumps(manifest, indent=2) + "\n")
        if charts:
            write_figure(self.plot(kpis), out / "sweep.png")
        return out


def sweep(
    scenario: str | Path | Scenario,
    grid: Mapping[str, Sequence[Any]],
    *,
    zip: bool = False,
    replications: int | None = None,
    seed: int | None = None,
    workers: int | None = None,
    backend: str | Backend = "processes",
    scheduler: str | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    overrides: Mapping[str, Any] | None = None,
    kpis: Sequence[str] | None = None,
    charts: bool = True,
    progress: bool | None = None,
    force: bool = False,
) -> SweepResult:
    """Play every variant of ``grid`` on the same seeds and return one row per run.

    ``grid`` maps factors to values: ``{"review.window": ["7d", "14d"], "population.platform.
    dispute_agents": [2, 3]}``. The design is the full factorial (every combination); with
    ``zip=True`` the i-th values of all factors go together (all lists must be as long).
    ``replications``/``seed`` default to the scenario's. ``backend``: ``processes`` (default,
    ``workers`` processes, all CPUs by default), ``inprocess``, ``dask`` (``scheduler`` address, or
    a local cluster), or a ``sim.experiments.executors.Backend``. With ``out``, writes the tables, the part
    files and a chart there; ``resume`` reuses the parts a previous run of the same sweep wrote.
    ``out`` must be new, empty or a folder this tool made (``force=True`` takes another one); the
    tool deletes in it only the part files it names itself.
    """
    base = base_scenario(scenario, overrides)
    variants = build_variants(base, grid, zip, GRID_SOURCE)
    kpis = check_kpis(kpis, "<kpis>")
    seed = base.seed if seed is None else seed
    reps = base.replications if replications is None else replications
    check_counts(reps, seed)
    outdir = None if out is None else prepare_out(out, force)
    outcomes, parts = run_variants(
        variants,
        replications=reps,
        seed=seed,
        out=outdir,
        resume=resume,
        backend=backend,
        workers=workers,
        scheduler=scheduler,
        progress=progress,
    )
    result = SweepResult(
        runs_frame(variants, outcomes, seed),
        variants,
        tuple(grid),
        zip,
        seed,
        reps,
        outdir,
        parts,
        _timings(outcomes),
    )
    if outdir is not None:
        result.write(outdir, kpis, charts, force=True)
    return result


def prepare_out(out: str | Path, force: bool = False) -> Path:
    """The output folder of a sweep or comparison: checked, created and marked before any run."""
    prepare_in_place(out, force=force, source="<out>")
    return Path(out)


def base_scenario(scenario: str | Path | Scenario, overrides: Mapping[str, Any] | None) -> Scenario:
    if isinstance(scenario, Scenario):
        if overrides:
            return with_factors(scenario, dict(overrides), "<overrides>")
        return scenario
    return load_scenario(scenario, list((overrides or {}).items()))


# ------------------------------------------------------------------------------ charts


def _kpi_axis(name: str, currency: str) -> str:
    return f"{name} ({currency})" if name in MONEY_KPIS else name


def plot_sweep(result: SweepResult, kpis: Sequence[str]) -> Any:
    """KPI means (95% intervals as error bars) against each numeric factor; by variant otherwise."""
    from matplotlib.figure import Figure

    summary = result.summary
    variants = result.variants
    currency = variants[0].scenario.policy.currency if variants else ""
    num = {}
    for i, key in enumerate(result.factors):
        values = [v.values[i][1] for v in variants]
        parsed = numeric(values)
        if parsed is not None and len(set(parsed[0])) > 1:
            num[key] = (i, parsed)
    rows = max(1, len(num))
    fig = Figure(figsize=(4.2 * len(kpis), 3.2 * rows), layout="constrained")
    axes = fig.subplots(rows, len(kpis), squeeze=False)
    stats = summary.set_index(["variant", "kpi"])
    if not num:  # no numeric factor: one point per variant
        for j, name in enumerate(kpis):
            ax = axes[0][j]
            ids = [v.id for v in variants]
            m = np.array([_num(stats.loc[(i, name), "mean"]) for i in ids])
            lo = np.array([_num(stats.loc[(i, name), "ci_low"]) for i in ids])
            hi = np.array([_num(stats.loc[(i, name), "ci_high"]) for i in ids])
            ax.errorbar(range(len(ids)), m, yerr=error_bars(m, lo, hi), fmt="o", capsize=3)
            ticks = [chart_literal(v.label) for v in variants]
            ax.set_xticks(range(len(ids)), ticks, rotation=30, ha="right", fontsize=7)
            ax.set_title(_kpi_axis(name, currency), fontsize=9)
        return fig
    for r, (key, (i, (xs, unit))) in enumerate(num.items()):
        groups: dict[str, list[tuple[float, int]]] = {}
        for v, x in _zip(variants, xs):
            others = ", ".join(f"{k}={label(val)}" for j, (k, val) in enumerate(v.values) if j != i)
            groups.setdefault("" if result.zip else others, []).append((x, v.id))
        for c, name in enumerate(kpis):
            ax = axes[r][c]
            for legend, pts in groups.items():
                pts.sort()
                x = np.array([p[0] for p in pts])
                m = np.array([_num(stats.loc[(p[1], name), "mean"]) for p in pts])
                lo = np.array([_num(stats.loc[(p[1], name), "ci_low"]) for p in pts])
                hi = np.array([_num(stats.loc[(p[1], name), "ci_high"]) for p in pts])
                ax.errorbar(
                    x,
                    m,
                    yerr=error_bars(m, lo, hi),
                    marker="o",
                    capsize=3,
                    label=chart_literal(legend) or None,
                )
            ax.set_xlabel(chart_literal(f"{key} ({unit})" if unit else key), fontsize=8)
            ax.set_title(_kpi_axis(name, currency), fontsize=9)
            if len(groups) > 1 and len(groups) <= 8 and c == 0:
                ax.legend(fontsize=6)
    return fig


def chart_literal(text: str) -> str:
    """A user's text shown as written in a chart: ``$...$`` is not read as TeX."""
    return text.replace("$", r"\$")


def _num(x: Any) -> float:
    return math.nan if x is None else float(x)


def error_bars(m: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Error bar lengths; zero where the interval is unknown (one replication)."""
    below = np.nan_to_num(m - lo, nan=0.0)
    above = np.nan_to_num(hi - m, nan=0.0)
    return np.vstack([np.clip(below, 0, None), np.clip(above, 0, None)])
