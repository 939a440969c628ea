"""Paired comparison of two policies (or any two variants) on common random numbers.

``compare`` plays variant A and variant B on the same seeds, so replication ``r`` of both sees the
same contracts and the same behaviour; the KPI differences B − A are taken replication by
replication, with a paired t-interval and a significance flag.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import __version__
from ..analysis.tables import KPI_NAMES
from ..core.yamlio import InputError, Problem
from ..inputs.scenario import Scenario
from .batch import check_counts
from .executors import Backend
from .outdir import prepare_in_place
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
) -> CompareResult:
    """Play variants A and B on the same seeds and test each KPI's paired difference (B − A).

    ``a``/``b`` are a policy pack name or path, or a mapping of factors (``{"review.window":
    "3d"}``, may include ``"policy"``); None means the scenario as written. A difference is
    significant when its 95% paired t-interval excludes zero. A and B must differ (in policy,
    population or horizon): comparing a variant with itself is refused.
    """
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
