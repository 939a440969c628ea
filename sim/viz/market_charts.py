"""Charts of a comparison of packs (``sim.compare(policies=[...])``) as matplotlib Figures.

Three charts, each a function of a :class:`~sim.experiments.paired.PacksResult`:

- ``kpis``: small multiples of the main KPIs, one bar per pack (mean over replications, whiskers
  for the 95% interval), a star over each pack whose paired difference with the first pack is
  significant. A money KPI is in each pack's own currency; when the packs' currencies differ it is
  drawn in the first pack's currency at the given exchange rates, or, without rates, hatched in
  the pack's own currency (and its difference is not tested).
- ``time_to_payment``: the empirical CDF of the days from a milestone's first submission to its
  release (``closed_at − first_submitted_at`` of approved and auto-approved milestones, every
  replication pooled): one line per pack, the first one wide and pale so that lines on top of it
  stay visible.
- ``money``: where the money went, one stacked bar per pack: to freelancers (net of their fees),
  platform fees, refunds and what is still in escrow, as shares of everything the clients paid
  (funded into escrow, bonuses and client fees), so that packs in different currencies compare.

The house style of :mod:`sim.viz.plots`: figures built without pyplot (``ChartFigure``), 110 dpi,
constrained layout, and every text shown literally (``parse_math=False``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator, PercentFormatter

from ..analysis.tables import MONEY_KPIS
from ..experiments.paired import MONEY_SEGMENTS, PacksResult
from ..experiments.sweeps import check_kpis
from .plots import LINE_COLORS, ChartFigure, literal_text

#: the KPIs the side-by-side chart shows when none are chosen
MAIN_KPIS = (
    "fees_total",
    "released_total",
    "escrow_float_avg",
    "auto_approved_share",
    "refunded_share",
    "disputed_share",
    "time_to_payment_days_mean",
    "time_to_available_days_mean",
)
#: one colour per pack, in pack order (the first pack, the reference, in grey)
PACK_COLORS = (
    "#7f7f7f",
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
)
LINE_STYLES = ("-", "--", "-.", ":")
SEGMENT_COLORS = {
    "freelancers_net": LINE_COLORS["freelancer"],
    "fees": LINE_COLORS["fees"],
    "refunded": LINE_COLORS["refunded"],
    "in_escrow": LINE_COLORS["escrow"],
}
#: the file stems of the charts, in the order they are drawn
CHARTS = ("kpis", "time_to_payment", "money")


def _figure(size: tuple[float, float]) -> Figure:
    return ChartFigure(figsize=size, dpi=110, layout="constrained")


def pack_color(i: int) -> str:
    return PACK_COLORS[i % len(PACK_COLORS)]


def _amount_formatter(top: float) -> FuncFormatter:
    """Tick labels with a k/M suffix chosen from the largest value plotted."""
    div, suffix = (1e6, "M") if top >= 1e6 else ((1e3, "k") if top >= 1e4 else (1.0, ""))

    def fmt(value: float, _pos: int | None = None) -> str:
        text = f"{value / div:,.2f}".rstrip("0").rstrip(".")
        return "0" if text in ("0", "-0", "") else f"{text}{suffix}"

    return FuncFormatter(fmt)


def _wrap(text: str, width: int = 14) -> str:
    """A pack label on two lines at most, broken at ``_``, ``-`` or a space near the middle."""
    if len(text) <= width:
        return text
    cuts = [i for i, ch in enumerate(text) if ch in "_- " and 0 < i < len(text) - 1]
    if not cuts:
        return text
    cut = min(cuts, key=lambda i: abs(i - len(text) / 2))
    return text[: cut + 1] + "\n" + text[cut + 1 :]


# ------------------------------------------------------------------------------ KPIs side by side


def kpis(result: PacksResult, names: Sequence[str] | None = None) -> Figure:
    """Small multiples: one panel per KPI, one bar per pack, 95% intervals, stars for significance."""
    chosen = check_kpis(names, "<kpis>") if names else MAIN_KPIS
    n = len(result.packs)
    cols = min(4, len(chosen))
    rows = math.ceil(len(chosen) / cols)
    width = max(2.6, 0.55 * n + 1.2)
    fig = _figure((width * cols, 2.9 * rows + 0.9))
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    s = result.summary.set_index(["pack", "kpi"])
    d = result.diff.set_index(["pack", "kpi"])
    base = result.base_currency
    currencies = result.currencies
    mixed = len(set(currencies)) > 1
    for ax, name in zip(axes, chosen, strict=False):
        money = name in MONEY_KPIS
        factors, hatched = [], []
        for cur in currencies:
            rate = 1.0 if cur == base else result.fx.get(cur)
            own = money and rate is None  # another currency, no rate: drawn as it is, hatched
            factors.append(1.0 if (not money or own) else rate)
            hatched.append(own)
        mean = np.array([_value(s.loc[(i, name), "mean"]) * f for i, f in enumerate(factors)])
        lo = np.array([_value(s.loc[(i, name), "ci_low"]) * f for i, f in enumerate(factors)])
        hi = np.array([_value(s.loc[(i, name), "ci_high"]) * f for i, f in enumerate(factors)])
        x = np.arange(n)
        bars = ax.bar(x, np.nan_to_num(mean), color=[pack_color(i) for i in range(n)], width=0.7)
        for bar, own in zip(bars, hatched, strict=True):
            if own:
                bar.set_hatch("///")
                bar.set_edgecolor("white")
        known = ~np.isnan(lo) & ~np.isnan(hi)
        err = np.vstack([np.where(known, mean - lo, 0), np.where(known, hi - mean, 0)])
        ax.errorbar(
            x,
            np.nan_to_num(mean),
            yerr=np.clip(np.nan_to_num(err), 0, None),
            fmt="none",
            ecolor="black",
            capsize=3,
            lw=1.0,
        )
        tops = np.nan_to_num(np.where(known, hi, mean))
        top = float(max(tops.max(initial=0.0), 0.0))
        for i in range(1, n):
            if bool(d.loc[(i, name), "significant"]):
                ax.annotate(
                    "*",
                    (i, tops[i]),
                    xytext=(0, 1),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize=13,
                    fontweight="bold",
                )
        for i in range(n):
            if math.isnan(mean[i]):
                ax.annotate(
                    "no value",
                    (i, 0),
                    xytext=(0, 2),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    rotation=90,
                    color="#555555",
                )
        ax.set_ylim(0, top * 1.18 if top > 0 else 1.0)
        ax.set_xticks(
            x,
            [
                _wrap(lbl) + (f" ({cur})" if own else "")
                for lbl, cur, own in zip(result.labels, currencies, hatched, strict=True)
            ],
            fontsize=7,
            rotation=30 if n > 3 else 0,
            ha="right" if n > 3 else "center",
        )
        ax.yaxis.set_major_locator(MaxNLocator(nbins=5))
        if name.endswith("_share"):
            ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=None))
        elif money:
            ax.yaxis.set_major_formatter(_amount_formatter(top))
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(True, axis="y", alpha=0.3)
        ax.set_title(_kpi_title(result, name, mixed), fontsize=8.5)
    for ax in axes[len(chosen) :]:
        ax.set_axis_off()
    reps = result.replications
    rates = ", ".join(f"1 {c} = {r:g} {base}" for c, r in result.fx.items())
    note = (
        f"Mean of {reps} replication{'s' if reps != 1 else ''} on the same seeds, whiskers: 95% interval; "
        f"* the paired difference with {result.labels[0]} is significant at 95%"
    )
    if mixed and rates:
        note += f"\nMoney in {base} at {rates}"
    elif mixed:
        note += f"\nHatched: money in the pack's own currency, not {base} (no exchange rate: not compared)"
    fig.suptitle(note, fontsize=8.5)
    return literal_text(fig)


def _kpi_title(result: PacksResult, name: str, mixed: bool) -> str:
    if name not in MONEY_KPIS:
        return name
    if not mixed or result.fx:
        return f"{name} ({result.base_currency})"
    return f"{name} (own currency)"


def _value(x: Any) -> float:
    return math.nan if x is None else float(x)


# ------------------------------------------------------------------------------ time to payment


def time_to_payment(result: PacksResult) -> Figure:
    """Empirical CDFs of the days from first submission to release, one line per pack."""
    paid = result.payment_days()
    if paid.empty:
        raise ValueError("no milestone was paid after a submission under any pack")
    fig = _figure((10.0, 5.0))
    ax = fig.subplots()
    top = 0.0
    handles = []
    for i, lbl in enumerate(result.labels):
        days = np.sort(paid.loc[paid["pack"] == i, "days"].to_numpy(dtype=float))
        style = {"lw": 5.0, "alpha": 0.35, "zorder": 2} if i == 0 else {"lw": 1.6, "zorder": 3}
        style["ls"] = "-" if i == 0 else LINE_STYLES[(i - 1) % len(LINE_STYLES)]
        if len(days):
            y = np.arange(1, len(days) + 1) / len(days)
            ax.step(
                np.concatenate(([0.0], days)),
                np.concatenate(([0.0], y)),
                where="post",
                color=pack_color(i),
                **style,
            )
            top = max(top, float(days[-1]))
            text = f"{lbl}: {len(days):,} paid, median {float(np.median(days)):.1f} d"
        else:
            text = f"{lbl}: no milestone paid"
        handles.append(
            Line2D(
                [], [], color=pack_color(i), **{k: v for k, v in style.items() if k != "zorder"}, label=text
            )
        )
    ax.set_xlim(0, max(top, 1.0) * 1.02)
    ax.set_ylim(0, 1.02)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_ylabel("Share of paid milestones paid within x days")
    reps = result.replications
    ax.set_xlabel(
        "Days from first submission to release (closed_at − first_submitted_at of approved and "
        f"auto-approved milestones; {reps} replication{'s' if reps != 1 else ''} pooled)",
        fontsize=9,
    )
    ax.grid(True, alpha=0.3)
    ax.legend(handles=handles, loc="lower right", fontsize=8.5, frameon=True, framealpha=0.9)
    ax.set_title("Time to payment per pack (empirical CDF)", fontsize=11)
    return literal_text(fig)


# ------------------------------------------------------------------------------ where the money went


def money(result: PacksResult) -> Figure:
    """One stacked bar per pack: where the clients' money went, as shares of what they paid."""
    table = result.money
    n = len(result.packs)
    fig = _figure((10.0, 1.6 + 0.62 * n))
    ax = fig.subplots()
    y = np.arange(n)
    left = np.zeros(n)
    narrow: dict[int, float] = {}  # per bar, where the last label above it sits
    for seg, text in MONEY_SEGMENTS.items():
        rows = table[table["segment"] == seg].set_index("pack").reindex(range(n))
        share = rows["share"].fillna(0.0).to_numpy(dtype=float)
        ax.barh(
            y,
            share,
            left=left,
            color=SEGMENT_COLORS[seg],
            height=0.6,
            label=text,
            edgecolor="white",
            linewidth=0.5,
        )
        for yi, (lo, w) in enumerate(zip(left, share, strict=True)):
            if w >= 0.045:  # a label fits inside
                ax.annotate(
                    f"{100 * w:.1f}%",
                    (lo + w / 2, yi),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white",
                    fontweight="bold",
                )
            elif w >= 0.001:  # too narrow: the label goes just above the bar, in the segment's colour
                x = lo + w / 2
                # a narrow neighbour's label already there: this one goes below the bar instead
                below = x - narrow.get(yi, -1.0) < 0.035
                narrow[yi] = -1.0 if below else x
                ax.annotate(
                    f"{100 * w:.1f}%",
                    (x, yi + 0.3 if below else yi - 0.3),
                    xytext=(0, -1 if below else 1),
                    textcoords="offset points",
                    ha="center",
                    va="top" if below else "bottom",
                    fontsize=7,
                    color=SEGMENT_COLORS[seg],
                    fontweight="bold",
                )
        left += share
    paid = table.drop_duplicates("pack").set_index("pack").reindex(range(n))
    names = [
        f"{_wrap(lbl, 22)}\n{_amount(float(paid.loc[i, 'clients_paid']))} {paid.loc[i, 'currency']} paid"
        for i, lbl in enumerate(result.labels)
    ]
    ax.set_yticks(y, names, fontsize=8)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_xlabel(
        "Share of what the clients paid (funded into escrow + bonuses + client fees), mean of "
        f"{result.replications} replication{'s' if result.replications != 1 else ''}",
        fontsize=9,
    )
    handles = [Patch(color=SEGMENT_COLORS[k], label=v) for k, v in MONEY_SEGMENTS.items()]
    fig.legend(handles=handles, loc="outside lower center", ncol=4, fontsize=8.5, frameon=False)
    ax.set_title("Where the money went, per pack", fontsize=11)
    return literal_text(fig)


def _amount(x: float) -> str:
    if math.isnan(x):
        return "-"
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:,.2f}"


# ------------------------------------------------------------------------------ all


def draw_all(result: PacksResult, names: Sequence[str] | None = None) -> dict[str, Figure]:
    """Every chart that has something to show, by file stem (``time_to_payment`` needs paid milestones
    and the part files of ``out=``)."""
    out = {"kpis": kpis(result, names)}
    with contextlib.suppress(ValueError):  # nothing paid, or no part files to read
        out["time_to_payment"] = time_to_payment(result)
    if (result.money["clients_paid"] > 0).any():
        out["money"] = money(result)
    return out


def install() -> None:
    """Let ``PacksResult.write`` and ``PacksResult.charts`` draw these charts."""
    PacksResult.charter = draw_all


__all__ = ["CHARTS", "MAIN_KPIS", "draw_all", "install", "kpis", "money", "time_to_payment"]
