"""Paired comparison of policies (or any variants) on common random numbers.

``compare`` plays variant A and variant B on the same seeds, so replication ``r`` of both sees the
same contracts and the same behaviour; the KPI differences B − A are taken replication by
replication, with a paired t-interval and a significance flag.

``compare(policies=[...])`` (``compare_packs``) plays two or more packs the same way: a KPI table
per pack, paired differences of every pack against the first, and, per run, where the money went.
Money of two currencies is never added or subtracted: a pack's money KPIs are in its own currency,
and a money difference across currencies is taken only with an exchange rate (``fx=``).
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from .. import __version__
from ..analysis.tables import KPI_NAMES, MONEY_KPIS, RunTables, summarize_kpis
from ..core.units import CURRENCY_DIGITS
from ..core.yamlio import InputError, Problem
from ..inputs.scenario import Scenario
from .batch import check_counts
from .executors import Backend, RunFailed, RunOutcome, RunTask, make_backend, run_chunk, write_part
from .outdir import prepare_in_place
from .runner import run_replication
from .sweeps import (
    GRID_SOURCE,
    Variant,
    base_scenario,
    chart_literal,
    check_kpis,
    error_bars,
    factor_kind,
    fingerprint,
    format_kpi,
    label,
    prepare_out,
    run_variants,
    runs_frame,
    same_inputs,
    with_factors,
    write_figure,
    write_table,
    write_text,
)


@dataclass
class CompareResult:
    """Two variants on the same seeds: per-replication KPIs and paired differences (B − A)."""

    runs: pd.DataFrame
    diff: pd.DataFrame
    a: Variant
    b: Variant
    seed: int
    replications: int
    out: Path | None = None
    parts: list[Path] = field(default_factory=list, repr=False)

    @property
    def significant(self) -> list[str]:
        """KPIs whose 95% paired interval excludes zero."""
        return list(self.diff.loc[self.diff["significant"], "kpi"])

    def table(self, kpis: Sequence[str] | None = None) -> pd.DataFrame:
        """The differences as text, for printing."""
        d = self.diff if not kpis else self.diff[self.diff["kpi"].isin(check_kpis(kpis, "<kpis>"))]
        rows = []
        for r in d.itertuples():
            if r.n == 0:
                continue
            rows.append(
                {
                    "kpi": r.kpi,
                    "A": format_kpi(r.kpi, r.a_mean),
                    "B": format_kpi(r.kpi, r.b_mean),
                    "B - A": format_kpi(r.kpi, r.diff, ref=r.a_mean),
                    "95% interval": "-"
                    if r.ci_low is None or math.isnan(r.ci_low)
                    else f"[{format_kpi(r.kpi, r.ci_low, ref=r.a_mean)}, "
                    f"{format_kpi(r.kpi, r.ci_high, ref=r.a_mean)}]",
                    "p": "-" if math.isnan(r.p_value) else f"{r.p_value:.3g}",
                    "significant": "yes" if r.significant else "",
                }
            )
        return pd.DataFrame(rows)

    def plot(self) -> Any:
        """A matplotlib Figure: relative differences (B − A, % of A) with paired 95% intervals."""
        return plot_compare(self)

    def write(self, out: str | Path, charts: bool = True, force: bool = False) -> Path:
        """compare.parquet/.csv (differences), runs.parquet/.csv, compare.json, compare.png.

        ``out`` must be new, empty or made by this tool (``force=True`` takes another folder).
        """
        out = Path(out)
        prepare_in_place(out, force=force, source="<out>")
        write_table(self.diff, out / "compare")
        write_table(self.runs, out / "runs")
        manifest = {
            "tool": {"name": "milestone-sim", "version": __version__},
            "scenario": self.a.scenario.path.as_posix(),
            "seed": self.seed,
            "replications": self.replications,
            "a": {"label": self.a.label, "policy": self.a.scenario.policy.resolved()},
            "b": {"label": self.b.label, "policy": self.b.scenario.policy.resolved()},
            "significant": self.significant,
        }
        write_text(out / "compare.json", json.dumps(manifest, indent=2, default=str) + "\n")
        if charts:
            write_figure(self.plot(), out / "compare.png")
        return out


#: differences smaller than this share of a KPI's scale are float noise, counted as zero
NOISE = 1e-9


def paired_differences(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Per KPI: means, mean of B − A over paired replications, its 95% t-interval and p-value."""
    from scipy import stats

    rows = []
    a = a.set_index("replication").sort_index()
    b = b.set_index("replication").sort_index()
    for name in KPI_NAMES:
        pair = pd.DataFrame({"a": a[name], "b": b[name]}).dropna()
        n = len(pair)
        d = (pair["b"] - pair["a"]).to_numpy(dtype=float, copy=True)
        scale = float(max(pair["a"].abs().max(), pair["b"].abs().max())) if n else 0.0
        d[np.abs(d) < NOISE * scale] = 0.0  # float noise of sums taken in another order is no difference
        row = {
            "kpi": name,
            "a_mean": float(pair["a"].mean()) if n else math.nan,
            "b_mean": float(pair["b"].mean()) if n else math.nan,
            "diff": float(d.mean()) if n else math.nan,
            "ci_low": math.nan,
            "ci_high": math.nan,
            "rel_diff": math.nan,
            "p_value": math.nan,
            "significant": False,
            "n": n,
        }
        if n and abs(row["diff"]) < NOISE * scale:
            row["diff"] = 0.0
        if n and abs(row["a_mean"]) > NOISE * scale:
            row["rel_diff"] = row["diff"] / abs(row["a_mean"])
        if n >= 2:
            sd = float(d.std(ddof=1))
            if sd == 0.0:  # every replication moved by the same amount (often: not at all)
                row.update(ci_low=row["diff"], ci_high=row["diff"], p_value=1.0 if row["diff"] == 0 else 0.0)
            else:
                half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
                tstat = row["diff"] / (sd / math.sqrt(n))
                row.update(
                    ci_low=row["diff"] - half,
                    ci_high=row["diff"] + half,
                    p_value=float(2 * stats.t.sf(abs(tstat), n - 1)),
                )
            row["significant"] = bool(row["ci_low"] > 0 or row["ci_high"] < 0)
        rows.append(row)
    return pd.DataFrame(rows)


def _side(spec: str | Path | Mapping[str, Any] | None) -> dict[str, Any]:
    if spec is None:
        return {}
    if isinstance(spec, (str, Path)):
        return {"policy": str(spec)}
    return dict(spec)


def compare(
    scenario: str | Path | Scenario,
    a: str | Path | Mapping[str, Any] | None = None,
    b: str | Path | Mapping[str, Any] | None = None,
    *,
    replications: int | None = None,
    seed: int | None = None,
    workers: int | None = None,
    backend: str | Backend = "processes",
    scheduler: str | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    overrides: Mapping[str, Any] | None = None,
    charts: bool = True,
    progress: bool | None = None,
    sources: tuple[str, str] = ("<compare A>", "<compare B>"),
    force: bool = False,
    policies: Sequence[str | Path | Mapping[str, Any] | None] | None = None,
    fx: Mapping[str, Any] | None = None,
    kpis: Sequence[str] | None = None,
) -> CompareResult | PacksResult:
    """Play variants A and B on the same seeds and test each KPI's paired difference (B − A).

    ``a``/``b`` are a policy pack name or path, or a mapping of factors (``{"review.window":
    "3d"}``, may include ``"policy"``); None means the scenario as written. A difference is
    significant when its 95% paired t-interval excludes zero. A and B must differ (in policy,
    population or horizon): comparing a variant with itself is refused. A and B in two currencies
    are refused: compare them as packs.

    ``policies=[...]`` (two or more, each what ``a`` takes) compares packs instead and returns a
    :class:`PacksResult` (see :func:`compare_packs`); so does ``fx=`` with ``a`` and ``b``.
    ``kpis`` chooses the KPIs the packs' chart shows.
    """
    if policies is not None or fx is not None:
        if policies is not None and (a is not None or b is not None):
            raise InputError(
                [Problem("<arguments>", None, None, "give either a and b, or policies=[...], not both")]
            )
        return compare_packs(
            scenario,
            list(policies) if policies is not None else [a, b],
            fx=fx,
            replications=replications,
            seed=seed,
            workers=workers,
            backend=backend,
            scheduler=scheduler,
            out=out,
            resume=resume,
            overrides=overrides,
            kpis=kpis,
            charts=charts,
            progress=progress,
            force=force,
        )
    base = base_scenario(scenario, overrides)
    problems: list[Problem] = []
    sides: list[Variant] = []
    for i, (spec, src) in enumerate(zip((a, b), sources, strict=False)):
        values = _side(spec)
        try:
            for key in values:
                factor_kind(key)
            sc = with_factors(base, values, src) if values else base
            sides.append(Variant(i, tuple(values.items()), sc, fingerprint(sc)))
        except InputError as exc:
            problems.extend(replace(p, file=src) if p.file == GRID_SOURCE else p for p in exc.problems)
    if problems:
        raise InputError(problems)
    if sides[0].scenario.policy.currency != sides[1].scenario.policy.currency:
        cur_a, cur_b = sides[0].scenario.policy.currency, sides[1].scenario.policy.currency
        raise InputError(
            [
                Problem(
                    "<arguments>" if sources[0] == "<compare A>" else "<command line>",
                    None,
                    None,
                    f"A is in {cur_a} and B in {cur_b}: money of two currencies is never subtracted; "
                    f"compare them as packs (policies=[...], with fx={{'{cur_b}': RATE}} for the money "
                    "differences)",
                )
            ]
        )
    if same_inputs(sides[0].scenario, sides[1].scenario):
        what = "A and B are the same" if (a or b) else "A and B are both the scenario as written"
        raise InputError(
            [
                Problem(
                    "<arguments>" if sources[0] == "<compare A>" else "<command line>",
                    None,
                    None,
                    f"compare needs a difference between A and B ({what}): give --policy or "
                    "--set-a/--set-b (in Python: a= and b=)",
                )
            ]
        )
    seed = base.seed if seed is None else seed
    reps = base.replications if replications is None else replications
    check_counts(reps, seed)
    outdir = None if out is None else prepare_out(out, force)
    outcomes, parts = run_variants(
        sides,
        replications=reps,
        seed=seed,
        out=outdir,
        resume=resume,
        backend=backend,
        workers=workers,
        scheduler=scheduler,
        progress=progress,
    )
    names = {0: "A", 1: "B"}
    labels = {v.id: v.label for v in sides}
    runs = runs_frame([], outcomes, seed, {"side": names, "label": labels})
    diff = paired_differences(runs[runs["side"] == "A"], runs[runs["side"] == "B"])
    result = CompareResult(runs, diff, sides[0], sides[1], seed, reps, outdir, parts)
    if outdir is not None:
        result.write(outdir, charts, force=True)
    return result


def plot_compare(result: CompareResult) -> Any:
    """Horizontal bars per KPI, whiskers for the paired 95% interval.

    Left: B − A as a share of A, for the KPIs where A is not zero. Right (when there are any):
    the absolute difference B − A for the KPIs where A is zero, where a share means nothing.
    Differences below a billionth of the KPI's scale are drawn as zero.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    d = result.diff[result.diff["n"] > 0]
    rel = d[d["rel_diff"].notna()]
    ab = d[d["rel_diff"].isna() & d["diff"].notna()]
    panels = [("rel", rel)] + ([("abs", ab)] if len(ab) else [])
    rows = max(len(rel), len(ab), 4)
    fig = Figure(figsize=(7.5 if len(panels) == 1 else 11, 0.32 * rows + 1.2), layout="constrained")
    widths = [2, 1] if len(panels) == 2 else None  # the absolute panel holds a few KPIs at most
    axes = fig.subplots(1, len(panels), squeeze=False, width_ratios=widths)[0]
    for ax, (kind, part) in zip(axes, panels, strict=False):
        scale = np.maximum(part["a_mean"].abs().to_numpy(), part["b_mean"].abs().to_numpy())
        mid = _denoise(part["diff"].to_numpy(dtype=float), scale)
        lo = _denoise(part["ci_low"].to_numpy(dtype=float), scale)
        hi = _denoise(part["ci_high"].to_numpy(dtype=float), scale)
        if kind == "rel":
            base = part["a_mean"].abs().to_numpy()
            mid, lo, hi = 100 * mid / base, 100 * lo / base, 100 * hi / base
        colors = ["tab:red" if s else "tab:gray" for s in part["significant"]]
        y = np.arange(len(part))
        ax.barh(y, mid, color=colors, xerr=error_bars(mid, lo, hi), capsize=2)
        ax.set_yticks(y, list(part["kpi"]), fontsize=7)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_ylim(rows - 0.5, -0.5)  # the same row pitch in both panels, first KPI on top
        if not np.any(np.nan_to_num(np.abs(np.concatenate([mid, lo, hi])))):
            ax.set_xlim(-1, 1)  # nothing moved: a readable axis, not one scaled to float noise
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.6g}"))
        ax.tick_params(axis="x", labelsize=7)
        label = "B − A, % of A" if kind == "rel" else "B − A where A is 0 (KPI units)"
        ax.set_xlabel(f"{label} (red: significant at 95%)", fontsize=8)
    fig.suptitle(chart_literal(f"A: {result.a.label}\nB: {result.b.label}"), fontsize=8)
    return fig


def _denoise(x: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Values smaller than a billionth of their KPI's scale as zero (NaN stays NaN)."""
    out = x.copy()
    out[np.abs(out) < NOISE * scale] = 0.0
    return out


# ------------------------------------------------------------------------------ two or more packs

#: what each run of a pack comparison records besides its KPIs: the account balances at the end, in
#: major units of the pack's currency (client: what the clients paid, net of what came back)
BALANCE_KEYS = ("clients_net_total", "escrow_end_total", "freelancers_net_total", "platform_total")
#: where the money went, in chart order: what the clients paid, each share of it
MONEY_SEGMENTS = {
    "freelancers_net": "to freelancers (net of their fees)",
    "fees": "platform fees (all payers)",
    "refunded": "refunded to clients",
    "in_escrow": "still in escrow at the end",
}
FX_SOURCE = "<arguments fx>"


def end_balances(tables: RunTables, digits: int) -> dict[str, float]:
    """A run's account balances at its end, by kind, in major units."""
    b = tables.balances
    last = b.iloc[-1] if len(b) else None
    scale = 10.0**digits

    def at(col: str) -> float:
        return float(int(last[col])) / scale if last is not None else 0.0

    return {
        "clients_net_total": at("client"),
        "escrow_end_total": at("escrow"),
        "freelancers_net_total": at("freelancer"),
        "platform_total": at("platform"),
    }


def execute_with_balances(task: RunTask) -> RunOutcome:
    """``executors.execute``, keeping the end balances too (the split of fees by payer needs them)."""
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        tables = run_replication(task.scenario, task.replication, task.seed, task.events)
        kpis = {**tables.kpis, **end_balances(tables, task.scenario.policy.digits)}
        if task.part is not None:
            write_part(tables.milestones, Path(task.part), task, kpis)
    except Exception as exc:
        raise RunFailed(
            f"variant {task.variant}, replication {task.replication}: {type(exc).__name__}: {exc}"
        ) from exc
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return RunOutcome(task.variant, task.replication, kpis, len(tables.milestones), wall, cpu_seconds=cpu)


def run_chunk_with_balances(tasks: Sequence[RunTask]) -> list[RunOutcome]:
    return [execute_with_balances(t) for t in tasks]


class BalancesBackend(Backend):
    """A backend that plays each chunk of runs with ``execute_with_balances``; the rest is ``inner``'s.

    The runs, their seeds and their part files are those of ``executors.execute``; the outcomes
    carry the end balances besides the KPIs (in the part's metadata too, so ``resume`` keeps them).
    """

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.name = inner.name

    @property
    def workers(self) -> int:
        return self.inner.workers

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> Any:
        return self.inner.submit(run_chunk_with_balances if fn is run_chunk else fn, arg)

    def wait_any(self, pending: set[Any]) -> tuple[set[Any], set[Any]]:
        return self.inner.wait_any(pending)

    def cancel(self, pending: set[Any]) -> None:
        self.inner.cancel(pending)

    def close(self) -> None:  # the inner backend belongs to whoever made it
        pass


def parse_fx_option(text: str, source: str = "<command line --fx>") -> tuple[str, str]:
    """``GBP=1.27`` as ``("GBP", "1.27")``; the rate is checked by :func:`check_fx`."""
    code, eq, rate = text.partition("=")
    code, rate = code.strip(), rate.strip()
    if not eq or not code or not rate:
        raise InputError(
            [Problem(source, None, None, f"expected CURRENCY=RATE (e.g. GBP=1.27), got {text!r}")]
        )
    return code, rate


def check_fx(
    fx: Mapping[str, Any] | None,
    currencies: Mapping[str, str],
    base: str,
    source: str = FX_SOURCE,
    option: str = "fx",
) -> dict[str, float]:
    """The exchange rates, checked: ``{code: units of the first pack's currency per unit}``.

    ``currencies`` maps each pack's label to its currency. Every code must be a known currency
    used by a pack other than the first one's, every rate a positive finite number; when any rate
    is given, every currency in play needs one. All problems are reported at once.
    """
    if not fx:
        return {}
    problems: list[str] = []
    rates: dict[str, float] = {}
    in_play = {c for c in currencies.values() if c != base}
    for raw, value in fx.items():
        code = str(raw).strip().upper()
        if code not in CURRENCY_DIGITS:
            problems.append(
                f"unknown currency code {str(raw)!r} in {option}; currencies: {', '.join(CURRENCY_DIGITS)}"
            )
            continue
        if code in rates:
            problems.append(f"{code} is given twice in {option}")
            continue
        if code == base:
            problems.append(
                f"{code} is the first pack's currency: {option} rates are in {base}, so {code} needs none"
            )
            continue
        if code not in in_play:
            packs = _currency_list(currencies)
            problems.append(f"no pack is in {code} (packs: {packs}): drop its rate from {option}")
            continue
        rate = _rate(value)
        if rate is None:
            problems.append(
                f"bad rate {value!r} for {code} in {option}: give a positive number of {base} per {code} "
                f"(e.g. {code}=1.27)"
            )
            continue
        rates[code] = rate
    if not problems:
        for code in sorted(in_play - set(rates)):
            users = ", ".join(lbl for lbl, c in currencies.items() if c == code)
            problems.append(
                f"no exchange rate for {code} (pack {users}): give {_fx_example(option, code)}, "
                f"where 1 {code} = RATE {base} (the first pack's currency)"
            )
    if problems:
        raise InputError([Problem(source, None, None, m) for m in problems])
    return {c: rates[c] for c in sorted(rates)}


def _fx_example(option: str, code: str) -> str:
    return f"{option} {code}=RATE" if option.startswith("--") else f"{option}={{'{code}': RATE}}"


def _currency_list(currencies: Mapping[str, str]) -> str:
    return ", ".join(f"{lbl} in {c}" for lbl, c in currencies.items())


def _rate(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        rate = float(str(value).strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(rate) or rate <= 0:
        return None
    return rate


def build_packs(
    base: Scenario,
    specs: Sequence[str | Path | Mapping[str, Any] | None],
    sources: Sequence[str] | None = None,
    where: str = "<arguments>",
) -> list[Variant]:
    """The packs to compare, validated before anything runs (all problems at once).

    Each spec is a pack name or path, a mapping of factors (may include ``policy``), or None for
    the scenario as written. Two packs that play the same runs are refused.
    """
    srcs = list(sources) if sources is not None else [f"<policies[{i}]>" for i in range(len(specs))]
    if len(specs) < 2:
        raise InputError([Problem(where, None, None, f"comparing packs needs two or more, got {len(specs)}")])
    problems: list[Problem] = []
    packs: list[Variant] = []
    for i, (spec, src) in enumerate(zip(specs, srcs, strict=True)):
        values = _side(spec)
        try:
            for key in values:
                factor_kind(key)
            sc = with_factors(base, values, src) if values else base
            # "+balances": these parts carry the end balances, an A/B comparison's do not
            packs.append(Variant(i, tuple(values.items()), sc, fingerprint(sc) + "+balances"))
        except InputError as exc:
            problems.extend(replace(p, file=src) if p.file == GRID_SOURCE else p for p in exc.problems)
    if problems:
        raise InputError(problems)
    for j in range(1, len(packs)):
        for i in range(j):
            if same_inputs(packs[i].scenario, packs[j].scenario):
                problems.append(
                    Problem(
                        where,
                        None,
                        None,
                        f"packs {i + 1} ({_spec_text(specs[i])}) and {j + 1} ({_spec_text(specs[j])}) "
                        "are the same: every pack must differ from the others",
                    )
                )
                break
    if problems:
        raise InputError(problems)
    return packs


def _spec_text(spec: Any) -> str:
    if spec is None:
        return "the scenario as written"
    if isinstance(spec, (str, Path)):
        return str(spec)
    return ", ".join(f"{k}={label(v)}" for k, v in dict(spec).items()) or "the scenario as written"


def pack_labels(packs: Sequence[Variant], specs: Sequence[Any]) -> list[str]:
    """A short name per pack: its ``policy:`` name (and the other factors given), or what was given
    when two names are alike."""
    names = []
    for v in packs:
        others = ", ".join(f"{k}={label(val)}" for k, val in v.values if k != "policy")
        names.append(v.scenario.policy.policy + (f", {others}" if others else ""))
    if len(set(names)) < len(names):
        names = [
            _spec_text(s) if isinstance(s, (str, Path)) else n for n, s in zip(names, specs, strict=True)
        ]
    if len(set(names)) < len(names):
        names = [f"{i + 1}: {n}" for i, n in enumerate(names)]
    return names


@dataclass
class PacksResult:
    """Two or more packs on the same seeds: KPIs per pack, paired differences against the first.

    ``runs``: one row per (pack, replication), every KPI and the end balances. ``summary``: per
    pack and KPI, the mean and 95% t-interval (``currency`` names a money KPI's currency).
    ``diff``: per pack after the first and KPI, the paired difference pack − first with its 95%
    interval, p-value and significance; a money KPI of another currency than the first pack's is
    converted at its ``fx`` rate, or not compared (``compared`` False) without one. ``money``:
    where the money went per pack (mean amounts and shares of what the clients paid).
    """

    runs: pd.DataFrame
    summary: pd.DataFrame
    diff: pd.DataFrame
    money: pd.DataFrame
    packs: list[Variant]
    labels: list[str]
    fx: dict[str, float]
    seed: int
    replications: int
    out: Path | None = None
    parts: list[Path] = field(default_factory=list, repr=False)
    kpis: tuple[str, ...] | None = None
    #: draws the charts: ``charter(result, kpis) -> {name: Figure}``; sim.viz installs it
    charter: ClassVar[Callable[[PacksResult, Sequence[str] | None], dict[str, Any]] | None] = None

    @property
    def currencies(self) -> list[str]:
        return [v.scenario.policy.currency for v in self.packs]

    @property
    def base_currency(self) -> str:
        return self.currencies[0]

    @property
    def significant(self) -> dict[str, list[str]]:
        """Per pack after the first: the KPIs whose paired 95% interval excludes zero."""
        d = self.diff
        return {lbl: list(d.loc[(d["label"] == lbl) & d["significant"], "kpi"]) for lbl in self.labels[1:]}

    @property
    def not_compared(self) -> dict[str, list[str]]:
        """Per pack after the first: the money KPIs not compared (another currency, no rate)."""
        d = self.diff
        out = {lbl: list(d.loc[(d["label"] == lbl) & ~d["compared"], "kpi"]) for lbl in self.labels[1:]}
        return {k: v for k, v in out.items() if v}

    def table(self, kpis: Sequence[str] | None = None) -> pd.DataFrame:
        """KPIs as rows, packs as columns: 'mean ± half-width of the 95% interval' (text)."""
        names = check_kpis(kpis, "<kpis>") if kpis else KPI_NAMES
        s = self.summary.set_index(["pack", "kpi"])
        mixed = len(set(self.currencies)) > 1
        rows: dict[str, list[str]] = {}
        if mixed:
            rows["currency (money KPIs)"] = list(self.currencies)
        for name in names:
            cells = []
            for i in range(len(self.packs)):
                r = s.loc[(i, name)]
                cells.append(format_kpi(name, _nan(r["mean"]), _nan(r["ci_low"]), _nan(r["ci_high"])))
            shown = f"{name} ({self.base_currency})" if name in MONEY_KPIS and not mixed else name
            rows[shown] = cells
        return pd.DataFrame.from_dict(rows, orient="index", columns=self.labels)

    def diff_table(self, kpis: Sequence[str] | None = None, p_values: bool = True) -> pd.DataFrame:
        """KPIs as rows, packs after the first as columns: 'difference ± half-width [p] [*]' (text)."""
        names = check_kpis(kpis, "<kpis>") if kpis else KPI_NAMES
        d = self.diff.set_index(["pack", "kpi"])
        rows: dict[str, list[str]] = {}
        for name in names:
            cells = []
            for i in range(1, len(self.packs)):
                r = d.loc[(i, name)]
                if not r["compared"]:
                    cells.append(f"n/a: {self.currencies[i]} vs {self.base_currency}")
                    continue
                if r["n"] == 0:
                    cells.append("-")
                    continue
                text = format_kpi(name, r["diff"], r["ci_low"], r["ci_high"], ref=r["first_mean"])
                if p_values and not math.isnan(r["p_value"]):
                    text += f" (p {r['p_value']:.2g})"
                cells.append(text + (" *" if r["significant"] else ""))
            shown = f"{name} ({self.base_currency})" if name in MONEY_KPIS else name
            rows[shown] = cells
        return pd.DataFrame.from_dict(rows, orient="index", columns=self.labels[1:])

    def milestones(self) -> pd.DataFrame:
        """Every run's milestone rows (``pack``, ``replication`` first), read back from the part files."""
        if not self.parts:
            raise ValueError("no part files: compare with out=... to keep the milestone rows")
        df = pd.read_parquet([str(p) for p in self.parts]).rename(columns={"variant": "pack"})
        return df.sort_values(["pack", "replication"], kind="stable", ignore_index=True)

    def payment_days(self) -> pd.DataFrame:
        """Paid milestones (approved or auto-approved after a submission) with ``days`` from their
        first submission to their release (``closed_at − first_submitted_at``), every pack and run:
        the milestones behind the time-to-payment KPIs."""
        ms = self.milestones()
        paid = ms[ms["outcome"].isin(("approved", "auto_approved")) & ms["first_submitted_at"].notna()]
        out = paid[["pack", "replication", "contract", "milestone", "outcome"]].copy()
        out["days"] = (paid["closed_at"] - paid["first_submitted_at"]).to_numpy(dtype=float)
        return out.reset_index(drop=True)

    def charts(self, kpis: Sequence[str] | None = None) -> dict[str, Any]:
        """The charts as matplotlib Figures, by file stem (``kpis``, ``time_to_payment``, ``money``)."""
        if PacksResult.charter is None:
            raise RuntimeError("no chart drawer is installed: import sim.viz.market_charts")
        return PacksResult.charter(self, kpis if kpis is not None else self.kpis)

    def manifest(self) -> dict[str, Any]:
        """What summary.json holds: the packs, their currencies, the seeds and the exchange rates."""
        base = self.base_currency
        return {
            "tool": {"name": "milestone-sim", "version": __version__},
            "scenario": self.packs[0].scenario.path.as_posix(),
            "design": "packs on common random numbers; differences: pack - first pack, paired by replication",
            "seed": self.seed,
            "replications": self.replications,
            "seeds": [{"replication": r, "seed": self.seed} for r in range(self.replications)],
            "base_currency": base,
            "fx": {
                "rates": dict(self.fx),
                "meaning": {c: f"1 {c} = {r:g} {base}" for c, r in self.fx.items()},
            },
            "packs": [
                {
                    "pack": v.id,
                    "label": lbl,
                    "values": {k: label(val) for k, val in v.values},
                    "policy_name": v.scenario.policy.policy,
                    "currency": v.scenario.policy.currency,
                    "fx_rate": 1.0 if cur == base else self.fx.get(cur),
                    "fingerprint": v.key,
                    "policy": v.scenario.policy.resolved(),
                }
                for v, lbl, cur in zip(self.packs, self.labels, self.currencies, strict=True)
            ],
            "significant": self.significant,
            "not_compared": self.not_compared,
        }

    def write(
        self,
        out: str | Path,
        kpis: Sequence[str] | None = None,
        charts: bool = True,
        force: bool = False,
    ) -> Path:
        """summary.parquet/.csv (per pack), differences.parquet/.csv, runs.parquet/.csv,
        money.parquet/.csv, summary.json and the charts (kpis.png, time_to_payment.png, money.png).

        ``out`` must be new, empty or made by this tool (``force=True`` takes another folder).
        """
        out = Path(out)
        prepare_in_place(out, force=force, source="<out>")
        for stale in ("compare.parquet", "compare.csv", "compare.json", "compare.png"):
            (out / stale).unlink(missing_ok=True)  # an A/B comparison's outputs, written here before
        write_table(self.summary, out / "summary")
        write_table(self.diff, out / "differences")
        write_table(self.runs, out / "runs")
        write_table(self.money, out / "money")
        drawn: list[str] = []
        if charts:
            if PacksResult.charter is None:
                warnings.warn(
                    "charts not drawn: no chart drawer is installed (import sim.viz.market_charts)",
                    RuntimeWarning,
                    stacklevel=2,
                )
            else:
                for name, fig in self.charts(kpis).items():
                    write_figure(fig, out / f"{name}.png")
                    drawn.append(f"{name}.png")
        manifest = {**self.manifest(), "charts": drawn}
        write_text(out / "summary.json", json.dumps(manifest, indent=2, default=str) + "\n")
        return out


def _nan(x: Any) -> float:
    return math.nan if x is None else float(x)


def pack_summary(runs: pd.DataFrame, labels: Sequence[str], currencies: Sequence[str]) -> pd.DataFrame:
    """Per pack and KPI: mean and 95% t-interval over replications (as ``sweep``'s summary)."""
    rows = []
    for i, (lbl, cur) in enumerate(zip(labels, currencies, strict=True)):
        group = runs[runs["pack"] == i]
        stats = summarize_kpis(group[list(KPI_NAMES)].to_dict("records"))
        for name in KPI_NAMES:
            money = cur if name in MONEY_KPIS else ""
            rows.append({"pack": i, "label": lbl, "kpi": name, "currency": money, **stats[name]})
    df = pd.DataFrame(rows, columns=["pack", "label", "kpi", "currency", "mean", "ci_low", "ci_high", "n"])
    cols = ["mean", "ci_low", "ci_high"]
    df[cols] = df[cols].astype("float64")
    df["n"] = df["n"].astype("int64")
    return df


def pack_differences(
    runs: pd.DataFrame, labels: Sequence[str], currencies: Sequence[str], fx: Mapping[str, float]
) -> pd.DataFrame:
    """Paired differences pack − first pack, per KPI; money converted to the first pack's currency.

    A money KPI of a pack in another currency is multiplied by its rate (units of the first pack's
    currency per unit) before the difference; without a rate it is not compared (NaN, ``compared``
    False). Money of two currencies is never subtracted.
    """
    base = currencies[0]
    first = runs[runs["pack"] == 0]
    parts = []
    for i in range(1, len(labels)):
        other = runs[runs["pack"] == i].copy()
        cur = currencies[i]
        rate = 1.0 if cur == base else fx.get(cur)
        if rate is not None and rate != 1.0:
            for name in MONEY_KPIS:
                other[name] = other[name] * rate
        d = paired_differences(first, other).rename(columns={"a_mean": "first_mean", "b_mean": "pack_mean"})
        money = d["kpi"].isin(sorted(MONEY_KPIS))
        d["compared"] = ~money if rate is None else True
        if rate is None:
            cols = ["pack_mean", "diff", "ci_low", "ci_high", "rel_diff", "p_value"]
            d.loc[money, cols] = math.nan
            d.loc[money, "significant"] = False
            d.loc[money, "n"] = 0
        d["currency"] = np.where(money & d["compared"], base, "")
        d["fx_rate"] = np.where(money, math.nan if rate is None else rate, math.nan)
        d.insert(0, "label", labels[i])
        d.insert(0, "pack", i)
        parts.append(d)
    cols = [
        "pack",
        "label",
        "kpi",
        "currency",
        "fx_rate",
        "first_mean",
        "pack_mean",
        "diff",
        "ci_low",
        "ci_high",
        "rel_diff",
        "p_value",
        "significant",
        "compared",
        "n",
    ]
    out = pd.concat(parts, ignore_index=True)[cols]
    out["significant"] = out["significant"].astype(bool)
    out["compared"] = out["compared"].astype(bool)
    out["n"] = out["n"].astype("int64")
    return out


def where_money_went(runs: pd.DataFrame, labels: Sequence[str], currencies: Sequence[str]) -> pd.DataFrame:
    """Per pack: the mean amounts (own currency) of where the clients' money went, and each one's share.

    What the clients paid (funded into escrow, bonuses paid directly, client fees) went to the
    freelancers (net of the fees they paid), to the platform (every fee, less fees it returned),
    back to the clients (refunds) or is still in escrow at the end; the four add up to the total,
    from the end balances of each run (clients' net payments plus the refunds).
    """
    rows = []
    for i, (lbl, cur) in enumerate(zip(labels, currencies, strict=True)):
        g = runs[runs["pack"] == i]
        amounts = {
            "freelancers_net": float(g["freelancers_net_total"].mean()),
            "fees": float(g["platform_total"].mean()),
            "refunded": float(g["refunded_total"].mean()),
            "in_escrow": float(g["escrow_end_total"].mean()),
        }
        total = sum(amounts.values())
        funded = float(g["funded_total"].mean())
        for seg, amount in amounts.items():
            rows.append(
                {
                    "pack": i,
                    "label": lbl,
                    "currency": cur,
                    "segment": seg,
                    "amount": amount,
                    "share": amount / total if total > 0 else math.nan,
                    "clients_paid": total,
                    "funded": funded,
                }
            )
    return pd.DataFrame(rows)


def compare_packs(
    scenario: str | Path | Scenario,
    policies: Sequence[str | Path | Mapping[str, Any] | None],
    *,
    fx: Mapping[str, Any] | None = None,
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
    sources: Sequence[str] | None = None,
    where: str = "<arguments>",
    fx_source: str = FX_SOURCE,
    fx_option: str = "fx",
    force: bool = False,
) -> PacksResult:
    """Play two or more packs on the same population and seeds; compare each with the first.

    ``policies``: pack names or paths (or mappings of factors, as ``compare``'s ``a``). Every pack
    plays replication ``r`` on the same seed (common random numbers). ``fx``: ``{"GBP": 1.27}``
    means 1 GBP = 1.27 units of the first pack's currency; with any rate given, every other
    currency in play needs one. Without rates, the money KPIs of a pack in another currency are
    reported in it and not compared. ``kpis``: those the KPI chart shows.
    """
    base = base_scenario(scenario, overrides)
    specs = list(policies)
    packs = build_packs(base, specs, sources, where)
    labels = pack_labels(packs, specs)
    currencies = [v.scenario.policy.currency for v in packs]
    rates = check_fx(fx, dict(zip(labels, currencies, strict=True)), currencies[0], fx_source, fx_option)
    chosen = check_kpis(kpis, "<kpis>") if kpis else None
    seed = base.seed if seed is None else seed
    reps = base.replications if replications is None else replications
    check_counts(reps, seed)
    outdir = None if out is None else prepare_out(out, force)
    own = not isinstance(backend, Backend)
    inner = make_backend(backend, workers, scheduler) if own else backend
    try:
        outcomes, parts = run_variants(
            packs,
            replications=reps,
            seed=seed,
            out=outdir,
            resume=resume,
            backend=BalancesBackend(inner),
            progress=progress,
        )
    finally:
        if own:
            inner.close()
    runs = runs_frame(
        [], outcomes, seed, {"label": dict(enumerate(labels)), "currency": dict(enumerate(currencies))}
    ).rename(columns={"variant": "pack"})
    for key in BALANCE_KEYS:
        runs[key] = [float(o.kpis.get(key, math.nan)) for o in outcomes]
    result = PacksResult(
        runs,
        pack_summary(runs, labels, currencies),
        pack_differences(runs, labels, currencies, rates),
        where_money_went(runs, labels, currencies),
        packs,
        labels,
        rates,
        seed,
        reps,
        outdir,
        parts,
        chosen,
    )
    if outdir is not None:
        result.write(outdir, chosen, charts, force=True)
    return result


def text_blocks(table: pd.DataFrame, width: int = 110, index_name: str = "kpi") -> str:
    """A table with packs as columns as text no wider than ``width``: packs that do not fit on one
    line go to another block, each block repeating the row names."""
    names = [str(i) for i in table.index]
    head = max(len(index_name), *(len(n) for n in names))
    cols = list(table.columns)
    widths = {c: max(len(str(c)), *(len(str(v)) for v in table[c])) for c in cols}
    blocks: list[list[Any]] = []
    line = head
    for c in cols:
        if blocks and line + 2 + widths[c] <= width:
            blocks[-1].append(c)
            line += 2 + widths[c]
        else:
            blocks.append([c])
            line = head + 2 + widths[c]
    out = []
    for block in blocks:
        rows = [index_name.ljust(head) + "".join("  " + str(c).rjust(widths[c]) for c in block)]
        for name, (_, r) in zip(names, table.iterrows(), strict=True):
            rows.append(name.ljust(head) + "".join("  " + str(r[c]).rjust(widths[c]) for c in block))
        out.append("\n".join(rows))
    return "\n\n".join(out)
