"""Charts of a run as matplotlib Figures: balances, escrow aging, flows, timeline, time to payment, outcomes,
Sankey.

Every function takes a :class:`~sim.experiments.batch.Result` and returns a ``matplotlib.figure.Figure`` built
without pyplot, so nothing here touches the global backend or pyplot's figure registry: notebooks
display and restyle the figures, and :mod:`sim.viz.report` saves them with the Agg canvas.

Conventions:

- The x axis of time charts counts **days since the start of the run (t = 0)**; when the scenario
  has a ``start`` date, the axis label names it ("Days since start (2026-01-05)"). Days rather than
  calendar dates keep scripted scenarios (which rarely set ``start``) and populations alike.
- Money is stored in integer minor units; charts divide by ``10**digits`` for display only and
  label the axis with the currency (large amounts get a ``k``/``M`` suffix on the ticks).
- Charts of one replication (balances, flows, timeline, Sankey) take ``replication=0`` by default
  and say so in the title when there are several; outcomes and time to payment use all of them.
- Every text is shown literally: a scenario title, contract or milestone id, party name or label
  with ``$`` is never read as TeX (every Text of a chart has ``parse_math=False``).
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.text import Text
from matplotlib.ticker import FuncFormatter, MaxNLocator

from ..core.units import format_duration
from ..money.ledger import FEE_FLOWS
from ..policy.calendar import Clock
from ..policy.model import show_duration

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from ..analysis.tables import RunTables
    from ..experiments.batch import Result

#: Chart names in report order; each is a function of this module and a method of ``Plotter``.
CHARTS = ("balances", "aging", "flows", "timeline", "time_to_payment", "outcomes", "sankey", "dispute_queue")

#: Outcomes of closed milestones, in display order, with readable labels.
OUTCOMES = {
    "approved": "approved\nby client",
    "auto_approved": "auto-approved\n(review window)",
    "refunded": "refunded",
    "auto_refunded": "auto-refunded\n(no answer)",
    "resolved": "resolved by\nthe platform",
}
#: Outcomes of milestones that did not close (see ``engine.final_outcome``), as the outcome chart names them.
NOT_CLOSED = {
    "open": "still open (in flight)",
    "cancelled": "cancelled (offer declined, withdrawn or expired)",
    "never_funded": "never funded (contract ended or never offered)",
}

#: Milestone and contract phases drawn as bars on the timeline.
PHASE_COLORS = {
    "planned": "#e8e8e8",
    "funded": "#9ecae1",
    "submitted": "#fdd08a",
    "changes_requested": "#fdae6b",
    "refund_requested": "#fc9fb5",
    "disputed": "#d7301f",
    "offered": "#dadaeb",
    "active": "#bcbddc",
    "ended": "#e0e0e0",
}
PHASE_LABELS = {
    "funded": "funded (in escrow)",
    "submitted": "submitted (in review)",
    "changes_requested": "changes requested",
    "refund_requested": "refund requested",
    "disputed": "disputed",
}
CLOSE_MARKERS = {"released": "#2ca02c", "refunded": "#d62728", "resolved": "#8c564b", "deleted": "#999999"}
ACTOR_MARKERS = {"client": "^", "freelancer": "o", "platform": "s"}

LINE_COLORS = {
    "escrow": "#1f77b4",
    "pending": "#17becf",
    "funded": "#1f77b4",
    "released": "#2ca02c",
    "freelancer": "#2ca02c",
    "bonus": "#bcbd22",
    "refunded": "#d62728",
    "fees": "#9467bd",
}

#: funded is drawn wide and pale underneath, so a release of everything funded stays visible
FLOW_STYLES: dict[str, dict[str, Any]] = {
    "funded": {"lw": 5.0, "alpha": 0.35, "zorder": 2},
    "released": {"lw": 1.8, "zorder": 3},
    "bonus": {"lw": 1.6, "zorder": 3, "ls": "-."},
    "refunded": {"lw": 1.8, "zorder": 3, "ls": "--"},
    "fees": {"lw": 1.6, "zorder": 3, "ls": ":"},
}

#: escrow by age of the money, young (pale) to old (dark, warm): one colour per bucket of ``aging``
AGE_COLORS = {"0-7": "#c6dbef", "7-14": "#6baed6", "14-30": "#2171b5", "30-90": "#fd8d3c", "90+": "#b30000"}
#: at most this many day ends are drawn as stacked bars; more as a stacked area
AGING_BARS_MAX = 62

WIDE = (10.0, 4.8)
LABEL_STEP_PT = 10.0  # vertical step between stacked event labels on the timeline


# ------------------------------------------------------------------------------ helpers


def _scale(result: Result) -> float:
    return float(10**result.digits)


def _currency(result: Result) -> str:
    return str(result.scenario.policy.currency)


def _run(result: Result, replication: int) -> RunTables:
    if not 0 <= replication < len(result.runs):
        raise ValueError(f"replication must be in [0, {len(result.runs) - 1}], got {replication}")
    return result.runs[replication]


def _of_reps(result: Result, replication: int) -> str:
    n = len(result.runs)
    return f" — replication {replication + 1} of {n}" if n > 1 else ""


class ChartFigure(Figure):
    """A plain matplotlib Figure that also shows itself in Jupyter without pyplot or ``%matplotlib``."""

    def _repr_png_(self) -> bytes:
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        if not isinstance(self.canvas, FigureCanvasAgg):
            FigureCanvasAgg(self)
        buf = io.BytesIO()
        self.savefig(buf, format="png", metadata={"Software": None})
        return buf.getvalue()


def _figure(size: tuple[float, float] = WIDE) -> Figure:
    return ChartFigure(figsize=size, dpi=110, layout="constrained")


def literal_text(fig: Figure) -> Figure:
    """Show every text of ``fig`` literally: no ``$...$`` mathtext in titles, ids or labels.

    Tick labels are created before they are switched off, so that fixed labels (ids on the
    timeline) keep the setting when the figure is drawn.
    """
    for ax in fig.axes:
        ax.get_xticklabels()
        ax.get_yticklabels()
    for text in fig.findobj(Text):
        text.set_parse_math(False)
    return fig


def _literal(chart: Callable[..., Figure]) -> Callable[..., Figure]:
    @functools.wraps(chart)
    def draw(*args: Any, **kwargs: Any) -> Figure:
        return literal_text(chart(*args, **kwargs))

    return draw


def money_text(cents: int, digits: int) -> str:
    """Exact money with thousands separators: 525889753 -> '5,258,897.53'."""
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(int(cents)), 10**digits)
    return f"{sign}{whole:,}" + (f".{frac:0{digits}d}" if digits else "")


def _money_formatter(top: float) -> FuncFormatter:
    """Tick labels in major units, with a k/M suffix chosen from the largest value plotted."""
    if top >= 1e6:
        div, suffix = 1e6, "M"
    elif top >= 1e4:
        div, suffix = 1e3, "k"
    else:
        div, suffix = 1.0, ""

    def fmt(value: float, _pos: int | None = None) -> str:
        v = value / div
        text = f"{v:,.2f}".rstrip("0").rstrip(".")
        if text in ("-0", ""):
            text = "0"
        return f"{text}{suffix}" if text != "0" else "0"

    return FuncFormatter(fmt)


def _money_axis(ax: Axes, result: Result, top: float, what: str = "Amount") -> None:
    ax.yaxis.set_major_formatter(_money_formatter(abs(top)))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]))
    ax.set_ylabel(f"{what} ({_currency(result)})")


def _legend_right(ax: Axes, **kw: Any) -> None:
    """A legend outside the axes, on the right, so it never hides data."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False, borderaxespad=0, **kw)


def _time_xlim(ax: Axes, end: float) -> None:
    """Days 0..end with a little room, so steps at t = 0 and at the end stay visible."""
    end = max(end, 1.0)
    ax.set_xlim(-0.015 * end, 1.03 * end)


def time_label(result: Result) -> str:
    """The label of every time axis: days since t = 0, naming the calendar start when known."""
    start = result.scenario.start
    return f"Days since start ({start.isoformat()})" if start else "Days since start of the run"


def _step_line(
    ax: Any, times: Any, values: Any, end: float, kind: str, label: str, maxima: list[float], lw: float = 1.6
) -> None:
    """A step line of a balance up to the run's end, in its kind's colour; its maximum joins ``maxima``."""
    t, v = _step_to_end(times, values, end)
    ax.step(t, v, where="post", color=LINE_COLORS[kind], lw=lw, label=label)
    maxima.append(float(v.max()))


def _step_to_end(times: np.ndarray, values: np.ndarray, end: float) -> tuple[np.ndarray, np.ndarray]:
    """Prepend (0, 0) and extend the last value to ``end`` so a step line spans the whole run."""
    t = np.concatenate(([0.0], times, [max(end, times[-1] if len(times) else 0.0)]))
    v = np.concatenate(([0.0], values, [values[-1] if len(values) else 0.0]))
    return t, v


def _cumulative(ledger: pd.DataFrame, flow: str, scale: float) -> tuple[np.ndarray, np.ndarray]:
    if flow == "fees":  # stage fees count as fees; a fee the platform returns counts against them
        named = ledger["flow"].where(~ledger["flow"].isin(FEE_FLOWS), "fees")
        rows = ledger[named == "fees"]
        rows = rows.assign(amount=rows["amount"].where(rows["from_account"] != "platform", -rows["amount"]))
    else:
        rows = ledger[ledger["flow"] == flow]
    if rows.empty:
        return np.array([]), np.array([])
    sums = rows.groupby("time", sort=True)["amount"].sum().cumsum()
    return sums.index.to_numpy(dtype=float), sums.to_numpy(dtype=np.int64) / scale


def _client_fees(ledger: pd.DataFrame) -> int:
    """Fees the clients paid, less those the platform returned to them."""
    fee = ledger["flow"].isin(FEE_FLOWS)
    paid = ledger[fee & ledger["from_account"].str.startswith("client:")]["amount"].sum()
    back = ledger[
        fee & (ledger["from_account"] == "platform") & ledger["to_account"].str.startswith("client:")
    ]
    return int(paid - back["amount"].sum())


def t_interval(values: np.ndarray) -> tuple[float, float, float]:
    """Mean and 95% t-interval (the interval collapses to the mean when n < 2)."""
    n = len(values)
    mean = float(values.mean()) if n else math.nan
    if n < 2:
        return mean, mean, mean
    from scipy import stats

    half = float(stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / math.sqrt(n))
    return mean, mean - half, mean + half


# ------------------------------------------------------------------------------ balances, flows


@_literal
def balances(result: Result, replication: int = 0) -> Figure:
    """Money held in escrow over time (top) and cumulative money paid out (bottom).

    The top panel is a stock: escrow, plus money in a security hold when the policy has one.
    The bottom panel shows where money ended up so far: paid to freelancers (net of fees),
    refunded to clients, and platform fees. With ``events="none"`` balances are daily
    snapshots and refunds are not recorded over time, so that line is left out.
    """
    rt = _run(result, replication)
    bal = rt.balances
    scale = _scale(result)
    if bal.empty:
        raise ValueError("no money moved in this run: there are no balances to draw")
    fig = _figure((10.0, 6.4))
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[1, 1.2])
    times = bal["time"].to_numpy(dtype=float)
    tops = [0.0]
    _step_line(
        top,
        times,
        bal["escrow"].to_numpy(dtype=np.int64) / scale,
        rt.end,
        "escrow",
        "held in escrow",
        tops,
        lw=1.6,
    )
    pending = bal["freelancer_pending"].to_numpy(dtype=np.int64)
    if pending.any():
        _step_line(top, times, pending / scale, rt.end, "pending", "released, in security hold", tops, lw=1.4)
    top.set_ylim(bottom=0)
    _money_axis(top, result, max(tops), "Balance")
    top.set_title("Money held over time", loc="left", fontsize=10)
    _legend_right(top)

    lows = [0.0]
    paid = bal["freelancer"].to_numpy(dtype=np.int64) / scale
    _step_line(bottom, times, paid, rt.end, "freelancer", "paid to freelancers (net)", lows)
    if result.events_mode == "full":
        rt_, rv = _cumulative(rt.ledger, "refunded", scale)
        if len(rt_):
            _step_line(bottom, rt_, rv, rt.end, "refunded", "refunded to clients", lows)
    fees = bal["platform"].to_numpy(dtype=np.int64)
    if fees.any():
        _step_line(bottom, times, fees / scale, rt.end, "fees", "platform fees", lows)
    bottom.set_ylim(bottom=0)
    _money_axis(bottom, result, max(lows), "Cumulative")
    bottom.set_title("Money paid out so far", loc="left", fontsize=10)
    _legend_right(bottom)
    bottom.set_xlabel(time_label(result))
    _time_xlim(bottom, rt.end)
    for ax in (top, bottom):
        ax.grid(True, alpha=0.3)
    fig.suptitle(f"Balances over time{_of_reps(result, replication)}", fontsize=12)
    return fig


def stack_aging(ax: Any, table: pd.DataFrame, scale: float) -> float:
    """Draw an aging table (``aging.csv``) on ``ax``, stacked by age, youngest at the bottom, with
    its legend; return the largest total drawn (major units). Up to two months of day ends are
    bars, one per day end; longer tables a stacked area. Shared by runs' and audits' charts."""
    names = [n for n in AGE_COLORS if n in table.columns]
    times = table["time"].to_numpy(dtype=float)
    values = [table[n].to_numpy(dtype=np.int64) / scale for n in names]
    labels = [f"{n} days" for n in names]
    colors = [AGE_COLORS[n] for n in names]
    if len(times) <= AGING_BARS_MAX:
        gaps = np.diff(times, prepend=0.0)
        width = 0.8 * np.minimum(gaps, np.append(gaps[1:], gaps[-1]))  # bars around a part-day end stay apart
        bottom = np.zeros(len(times))
        for v, label, color in zip(values, labels, colors, strict=True):
            ax.bar(times, v, width=width, bottom=bottom, color=color, label=label, edgecolor="white", lw=0.4)
            bottom = bottom + v
    else:
        ax.stackplot(times, *values, labels=labels, colors=colors, lw=0)
    total = float(np.sum(values, axis=0).max())
    ax.set_ylim(0, 1.05 * total)
    ax.grid(True, alpha=0.3)
    ax.set_axisbelow(True)
    handles, texts = ax.get_legend_handles_labels()
    ax.legend(  # oldest on top, as stacked
        handles[::-1],
        texts[::-1],
        title="age of the money",
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=9,
        title_fontsize=9,
        frameon=False,
        borderaxespad=0,
    )
    return total


@_literal
def aging(result: Result, replication: int = 0) -> Figure:
    """Escrow held at each day end, stacked by the age of the money (``result.aging``).

    Up to two months of day ends are stacked bars, one per day end; longer runs a stacked area.
    Without the event log the split is estimated from the milestones table, and the title says so.
    """
    rt = _run(result, replication)
    table = result.aging
    if "replication" in table.columns:
        table = table[table["replication"] == rt.replication]
    names = [n for n in AGE_COLORS if n in table.columns]
    if table.empty or not table[names].to_numpy().any():
        raise ValueError("no money was held in escrow at a day end: there is no aging to draw")
    fig = _figure()
    ax = fig.subplots()
    total = stack_aging(ax, table, _scale(result))
    _time_xlim(ax, rt.end)
    _money_axis(ax, result, total, "Held in escrow")
    ax.set_xlabel(time_label(result) + ", at each day end")
    note = "" if result.events_mode == "full" else " (estimated from the milestones)"
    ax.set_title(f"Escrow by age of the money{note}{_of_reps(result, replication)}")
    return fig


@_literal
def flows(result: Result, replication: int = 0) -> Figure:
    """Cumulative flows between accounts (funded, released, bonus, refunded, fees) over time.

    The last point of each line is that flow's total in the ledger (``result.totals``).
    Needs the full event log.
    """
    rt = _run(result, replication)
    if result.events_mode != "full":
        raise ValueError("cumulative flows need the full ledger (run with events='full')")
    scale = _scale(result)
    fig = _figure()
    ax = fig.subplots()
    names = {
        "funded": "funded (clients → escrow)",
        "released": "released (escrow →\nfreelancers, gross)",
        "bonus": "bonus (clients →\nfreelancers)",
        "refunded": "refunded (escrow → clients)",
        "fees": "fees (→ platform)",
    }
    top = 0.0
    drawn = 0
    for flow, label in names.items():
        t, v = _cumulative(rt.ledger, flow, scale)
        if not len(t):
            continue
        t, v = _step_to_end(t, v, rt.end)
        style = FLOW_STYLES[flow]
        ax.step(t, v, where="post", color=LINE_COLORS[flow], label=label, gid=flow, **style)
        top = max(top, float(v.max()))
        drawn += 1
    if not drawn:
        raise ValueError("no money moved in this run: there are no flows to draw")
    ax.set_ylim(bottom=0)
    _time_xlim(ax, rt.end)
    _money_axis(ax, result, top, "Cumulative amount")
    ax.set_xlabel(time_label(result))
    ax.grid(True, alpha=0.3)
    _legend_right(ax)
    ax.set_title(f"Cumulative flows between accounts{_of_reps(result, replication)}")
    return fig


# ------------------------------------------------------------------------------ timeline


def _segments(rows: pd.DataFrame, end: float) -> list[tuple[float, float, str]]:
    """(start, stop, state) of each state a contract or milestone was in, in order."""
    times = rows["time"].to_numpy(dtype=float)
    states = rows["state"].tolist()
    out = []
    for i, state in enumerate(states):
        stop = times[i + 1] if i + 1 < len(times) else end
        out.append((float(times[i]), float(stop), state))
    return out


@_literal
def timeline(result: Result, replication: int = 0, contracts: Iterable[str] | None = None) -> Figure:
    """One row per contract and milestone: phases as bars, events as markers, timers as brackets.

    Bars show how long a milestone was funded, in review, with changes requested, under a refund
    request or in dispute; markers show who acted (▲ client, ● freelancer, ■ platform, ✕ rejected);
    the dashed brackets under a bar are the review windows opened by each submission and the
    refund response windows, so the reader sees why money moved when it did. For population
    results pass ``contracts=[...]`` to pick a few contracts (needs ``events="full"``).
    """
    rt = _run(result, replication)
    if result.events_mode != "full":
        raise ValueError("the timeline needs the full event log (run with events='full')")
    states: pd.DataFrame = rt.states
    events = rt.events
    if contracts is None:
        if result.scenario.is_population:
            raise ValueError("pass contracts=[...] to draw the timeline of a population run")
        chosen = [c.id for c in result.scenario.contracts]
    else:
        chosen = list(contracts)
    if not chosen:
        raise ValueError("no contracts to draw")
    pol = result.scenario.policy
    clock = Clock(pol.calendar.calendar(), result.scenario.start)
    # the windows that end in an automatic decision: none for review.on_timeout: nothing, and
    # the refund window only where the pack has the refund: shorthand (days, or business days)
    review = pol.review.window if pol.review.on_timeout == "approve" else None
    refund = pol.refund.response_window if pol.refund is not None else None
    ms = rt.milestones
    d = result.digits

    rows: list[tuple[str, str, str]] = []  # (contract, milestone, label)
    for cid in chosen:
        rows.append((cid, "", f"contract {cid}"))
        mids = list(ms.loc[(ms["contract"] == cid) & (ms["state"] != "credit"), "milestone"])
        extra = states[(states["contract"] == cid) & (states["milestone"] != "")]["milestone"]
        mids += [m for m in dict.fromkeys(extra) if m not in mids]
        for mid in mids:
            amt = ms.loc[(ms["contract"] == cid) & (ms["milestone"] == mid), "amount"]
            label = f"{mid}  {money_text(int(amt.iloc[0]), d)}" if len(amt) else mid
            rows.append((cid, mid, label))
    index = {(c, m): i for i, (c, m, _) in enumerate(rows)}

    ev_mask = events["contract"].isin(chosen)
    horizon = max(
        rt.end,
        float(events.loc[ev_mask, "time"].max()) if ev_mask.any() else 0.0,
        float(states["time"].max()) if len(states) else 0.0,
    )
    sel = states[states["contract"].isin(chosen)]
    # (row, opened, stopped, would end, kind): a timer runs from opened until it fires or the
    # milestone leaves the state it guards (stopped); the rest is drawn faint
    windows: list[tuple[int, float, float, float, str]] = []
    for (cid, mid), grp in sel.groupby(["contract", "milestone"], sort=False):
        for start, stop, state in _segments(grp, horizon):
            if state == "submitted" and review is not None:
                ends = start + clock.days(start, review)  # a bd window: its actual length from start
                windows.append((index[(cid, mid)], start, stop, ends, "review"))
            elif state == "refund_requested" and refund is not None:
                ends = start + clock.days(start, refund)
                windows.append((index[(cid, mid)], start, stop, ends, "refund"))
    # the axis ends with the run; a timer still running at the end (not a stopped one) may reach past it
    x_max = max([horizon, *(w[3] for w in windows if w[2] >= w[3])]) if windows else horizon
    x_max = max(x_max, 1.0)
    # timers stack in levels under their row when they overlap; rows make room for them
    levels: list[int] = []
    row_levels = [0] * len(rows)
    placed: dict[int, list[tuple[float, float]]] = {}
    for i, start, _stopped, ends, _kind in windows:
        taken = placed.setdefault(i, [])
        level = sum(1 for a, b in taken if a < ends and start < b)
        taken.append((start, ends))
        levels.append(level)
        row_levels[i] = max(row_levels[i], level + 1)
    # events: a marker each; one label per (row, time), labels stacked where they would overlap
    marks: list[tuple[int, float, bool, str]] = []
    labels: dict[tuple[int, float], list[str]] = {}
    paid = _client_paid(rt.ledger, chosen)
    for row in events[ev_mask].itertuples(index=False):
        i = index.get((row.contract, row.milestone), index[(row.contract, "")])
        t = float(row.time)
        rejected = row.outcome == "rejected"
        marks.append((i, t, rejected, row.actor))
        text = f"{row.action} ✕ {row.rule}" if rejected else row.action
        out = 0 if rejected else paid.pop((row.contract, row.milestone, t), 0)
        if out and (out != row.amount or row.action != "fund"):  # fees, credit reused, bonuses
            text += f" ({'paid' if row.action == 'fund' else 'client paid'} {money_text(out, d)})"
        here = labels.setdefault((i, t), [])
        if text not in here:
            here.append(text)
    days_per_char = 4.3 / (560.0 / (x_max * 1.12))  # 7.5 pt text on an axis ~560 pt wide
    label_level: dict[tuple[int, float], int] = {}
    label_levels = [1] * len(rows)
    for i in range(len(rows)):
        ends: list[float] = []  # where the last label of each level ends, in days
        for key in sorted(k for k in labels if k[0] == i):
            t = key[1]
            width = (len(", ".join(labels[key])) + 2) * days_per_char
            level = next((n for n, e in enumerate(ends) if e <= t), len(ends))
            if level == len(ends):
                ends.append(0.0)
            ends[level] = t + width
            label_level[key] = level
        label_levels[i] = max(1, len(ends))
    step = LABEL_STEP_PT / 57.6  # one label level in row units (a row is 0.8 in = 57.6 pt)
    y_of: list[float] = []
    y = step * (label_levels[0] - 1)
    for i in range(len(rows)):
        if i:
            y += 1.0 + 0.25 * row_levels[i - 1] + step * (label_levels[i] - 1)
        y_of.append(y)
    ypos = {key: y_of[i] for key, i in index.items()}
    span_y = y_of[-1] + 0.25 * row_levels[-1]

    height = 1.6 + 0.8 * (span_y + 1)
    fig = _figure((10.0, max(3.8, height)))
    ax = fig.subplots()
    bar_h = 0.34
    seen = set()
    for (cid, mid), grp in sel.groupby(["contract", "milestone"], sort=False):
        y = ypos[(cid, mid)]
        seen.add((cid, mid))
        for start, stop, state in _segments(grp, horizon):
            if state in PHASE_COLORS and stop > start:
                ax.broken_barh(
                    [(start, stop - start)],
                    (y - bar_h / 2, bar_h),
                    facecolors=PHASE_COLORS[state],
                    edgecolor="#555555" if state in PHASE_LABELS else "none",
                    linewidth=0.5,
                    gid=f"phase:{state}",
                )
                if not mid and state in ("offered", "active", "ended") and stop - start > x_max * 0.08:
                    ax.text(
                        (start + stop) / 2, y, state, ha="center", va="center", fontsize=8, color="#333333"
                    )
            elif state in CLOSE_MARKERS or (not mid and state in ("withdrawn", "declined", "expired")):
                color = CLOSE_MARKERS.get(state, "#555555")
                ax.plot([start, start], [y - bar_h / 2, y + bar_h / 2], color=color, lw=2.5)
                ax.annotate(
                    state,
                    (start, y),
                    xytext=(10, 0),
                    textcoords="offset points",
                    va="center",
                    fontsize=8.5,
                    fontweight="bold",
                    color=color,
                )
    for cid, mid, _label in rows:
        if mid and (cid, mid) not in seen:
            i = index[(cid, mid)]
            after = max([0.0, *(t for r, t, _rej, _a in marks if r == i)])
            ax.annotate(
                "never funded",
                (after, y_of[i]),
                xytext=(8, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
                color="#777777",
            )

    # timers: brackets under the bars
    for (i, start, stopped, ends, kind), level in zip(windows, levels, strict=True):
        yy = y_of[i] + bar_h / 2 + 0.12 + 0.22 * level
        color = "#b07000" if kind == "review" else "#c2185b"
        live = min(stopped, ends)
        ax.plot([start, live], [yy, yy], ls="--", lw=1.3, color=color, gid=f"window:{kind}")
        ax.plot([start, start], [yy - 0.05, yy + 0.05], lw=1.2, color=color)
        if live < ends:  # stopped: drawn faint up to where it would have ended, within the run
            ax.plot([live, min(ends, x_max)], [yy, yy], ls=":", lw=1.0, color=color, alpha=0.45)
            if ends <= x_max:
                ax.plot([ends, ends], [yy - 0.05, yy + 0.05], lw=1.2, color=color, alpha=0.45)
        else:
            ax.plot([ends, ends], [yy - 0.07, yy + 0.07], lw=1.8, color=color)
        span = format_duration(ends - start)
        note = " (stopped)" if live < ends else ""
        ax.annotate(
            f"{kind} window {span}{note}",
            (start, yy),
            xytext=(4, 0),
            textcoords="offset points",
            ha="left",
            va="center",
            fontsize=7.5,
            color=color,
            bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none"},
        )

    # events: one marker per event
    for i, t, rejected, actor in marks:
        y = y_of[i]
        if rejected:
            ax.plot([t], [y], marker="X", ms=9, color="#d62728", mec="white", zorder=5, ls="none")
        else:
            marker = ACTOR_MARKERS.get(actor, "o")
            ax.plot([t], [y], marker=marker, ms=7, color="#333333", mec="white", zorder=5, ls="none")
    for (i, t), texts in labels.items():
        ax.annotate(
            ", ".join(texts),
            (t, y_of[i] - bar_h / 2),
            xytext=(-2, 3 + LABEL_STEP_PT * label_level[(i, t)]),
            textcoords="offset points",
            fontsize=7.5,
            ha="left",
            va="bottom",
            color="#222222",
        )

    ax.set_yticks(y_of, [label for _, _, label in rows])
    for tick, (_, mid, _) in zip(ax.get_yticklabels(), rows, strict=True):
        if not mid:
            tick.set_fontweight("bold")
    ax.set_ylim(span_y + 0.65, -0.85)
    ax.set_xlim(-x_max * 0.02, x_max * 1.1)
    ax.set_xlabel(time_label(result))
    ax.set_ylabel(f"Contract / milestone (amount, {_currency(result)})")
    ax.grid(True, axis="x", alpha=0.3)
    handles: list[Any] = [
        Patch(facecolor=PHASE_COLORS[s], edgecolor="#555555", label=lbl) for s, lbl in PHASE_LABELS.items()
    ]
    handles += [
        Line2D([], [], marker="^", ls="none", color="#333333", label="client"),
        Line2D([], [], marker="o", ls="none", color="#333333", label="freelancer"),
        Line2D([], [], marker="s", ls="none", color="#333333", label="platform"),
        Line2D([], [], marker="X", ls="none", color="#d62728", label="rejected"),
    ]
    if review is not None:
        handles.append(
            Line2D([], [], ls="--", color="#b07000", label=f"review window ({show_duration(review)})")
        )
    if refund is not None:
        handles.append(
            Line2D([], [], ls="--", color="#c2185b", label=f"refund window ({show_duration(refund)})")
        )
    handles += [
        Line2D([], [], ls=":", color="#777777", label="timer stopped"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=6, fontsize=8, frameon=False)
    title = result.scenario.title if not result.scenario.is_population else "Contract timeline"
    ax.set_title(f"Timeline: {title}{_of_reps(result, replication)}", fontsize=11)
    return fig


def _client_paid(ledger: pd.DataFrame, contracts: list[str]) -> dict[tuple[str, str, float], int]:
    """What clients paid (fundings, bonuses, client fees) per (contract, milestone, time)."""
    if ledger.empty:
        return {}
    rows = ledger[ledger["from_account"].str.startswith("client:") & ledger["contract"].isin(contracts)]
    sums = rows.groupby(["contract", "milestone", "time"], sort=False)["amount"].sum()
    return {(c, m, float(t)): int(v) for (c, m, t), v in sums.items()}


# ------------------------------------------------------------------------------ distributions


def payment_times(result: Result) -> pd.DataFrame:
    """Paid milestones with their time to payment (first submission to release), all replications."""
    ms = result.milestones
    paid = ms[ms["outcome"].isin(("approved", "auto_approved")) & ms["first_submitted_at"].notna()]
    out = paid.assign(days=paid["closed_at"] - paid["first_submitted_at"])
    return out


SMALL_N = 20  # below this many paid milestones, one bar per milestone reads better than a histogram


@_literal
def time_to_payment(result: Result) -> Figure:
    """Days from first submission to release, split by who released, the review window marked.

    Milestones auto-approved pile up at (or after, when changes were asked) the review window;
    the client's own approvals come earlier. All replications are pooled. Fewer than
    ``SMALL_N`` paid milestones (a scripted run) are drawn one bar each, labelled.
    """
    paid = payment_times(result)
    if paid.empty:
        raise ValueError("no milestone was paid after a submission in this run")
    pol = result.scenario.policy
    written = pol.review.window
    window_label = format_duration(written) if isinstance(written, float) else show_duration(written)
    if isinstance(written, float):
        window = written
    else:  # business days: the length depends on the day of submission; mark the longest one
        clock = Clock(pol.calendar.calendar(), result.scenario.start)
        lengths = {clock.days(float(t), written) for t in paid["first_submitted_at"]}
        window = max(lengths)
        window_label += (" = " if len(lengths) == 1 else ", up to ") + format_duration(window)
    days = paid["days"].to_numpy(dtype=float)
    kinds = {
        "approved": ("approved by client", "#2ca02c"),
        "auto_approved": ("auto-approved (review window ran out)", "#ff7f0e"),
    }
    n = len(days)
    med = float(np.median(days))
    if n < SMALL_N:
        fig = _figure((10.0, max(3.2, 1.8 + 0.45 * n)))
        ax = fig.subplots()
        ordered = paid.sort_values(["first_submitted_at", "contract", "milestone"]).reset_index(drop=True)
        rep = "replication" in ordered.columns and ordered["replication"].nunique() > 1
        names = [
            (f"r{int(r.replication) + 1} " if rep else "") + f"{r.contract}/{r.milestone}"
            for r in ordered.itertuples(index=False)
        ]
        ax.barh(
            range(n),
            ordered["days"],
            color=[kinds[o][1] for o in ordered["outcome"]],
            height=0.55,
            gid="payment",
        )
        for i, v in enumerate(ordered["days"]):
            ax.annotate(
                f"{format_duration(float(v))}",
                (v, i),
                xytext=(4, 0),
                textcoords="offset points",
                va="center",
                fontsize=9,
            )
        ax.set_yticks(range(n), names)
        ax.set_ylim(n - 0.5, -0.5)
        ax.set_ylabel("Milestone")
        hi = max(float(days.max()), window) * 1.15
        ax.grid(True, axis="x", alpha=0.3)
    else:
        fig = _figure()
        ax = fig.subplots()
        top = max(float(days.max()), window)
        width = 0.5 if top <= 40 else (1.0 if top <= 120 else math.ceil(top / 100))
        bins = np.arange(0.0, top + 2 * width, width)
        hi = float(bins[-1])
        groups = [paid.loc[paid["outcome"] == k, "days"].to_numpy(dtype=float) for k in kinds]
        ax.hist(
            groups,
            bins=bins,
            stacked=True,
            color=[c for _, c in kinds.values()],
            edgecolor="white",
            linewidth=0.3,
        )
        reps = len(result.runs)
        ax.set_ylabel("Milestones" + (f" (all {reps} replications)" if reps > 1 else ""))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:,.0f}"))
        ax.grid(True, axis="y", alpha=0.3)
    ax.axvline(window, color="black", ls="--", lw=1.2)
    ax.annotate(
        f"review window {window_label}",
        (window, 1.0),
        xycoords=("data", "axes fraction"),
        xytext=(4, -4),
        textcoords="offset points",
        va="top",
        fontsize=9,
    )
    if n >= SMALL_N:
        ax.axvline(med, color="#555555", ls=":", lw=1.2)
        ax.annotate(
            f"median {med:.1f} d",
            (med, 0.9),
            xycoords=("data", "axes fraction"),
            xytext=(4, -4),
            textcoords="offset points",
            va="top",
            fontsize=9,
            color="#555555",
        )
    counts = paid["outcome"].value_counts()
    handles = [
        Patch(color=color, label=f"{label} ({int(counts.get(k, 0)):,})")
        for k, (label, color) in kinds.items()
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=2, fontsize=9, frameon=False)
    ax.set_xlim(0, hi)
    ax.set_xlabel("Days from first submission to release")
    ax.set_title(f"Time to payment of {n:,} paid milestone{'s' if n != 1 else ''}")
    return fig


def outcome_shares(result: Result) -> pd.DataFrame:
    """Share of closed milestones per outcome: mean and 95% interval over replications, and counts."""
    ms = result.milestones
    reps = ms["replication"] if "replication" in ms.columns else pd.Series(0, index=ms.index)
    closed = ms[ms["outcome"].isin(list(OUTCOMES))]
    counts = pd.crosstab(reps[closed.index], closed["outcome"]).reindex(
        index=sorted(set(reps)), columns=list(OUTCOMES), fill_value=0
    )
    totals = counts.sum(axis=1)
    shares = counts.div(totals.where(totals > 0), axis=0)
    rows = []
    for name in OUTCOMES:
        values = shares[name].dropna().to_numpy(dtype=float)
        mean, lo, hi = t_interval(values)
        rows.append(
            {
                "outcome": name,
                "share": mean,
                "ci_low": lo if len(values) > 1 else None,
                "ci_high": hi if len(values) > 1 else None,
                "count": int(counts[name].sum()),
                "n": len(values),
            }
        )
    return pd.DataFrame(rows).set_index("outcome")


@_literal
def outcomes(result: Result) -> Figure:
    """Outcome mix of closed milestones (share), with 95% intervals across replications."""
    table = outcome_shares(result)
    total = int(table["count"].sum())
    if total == 0:
        raise ValueError("no milestone was closed in this run")
    reps = len(result.runs)
    fig = _figure((10.0, 4.6))
    ax = fig.subplots()
    x = np.arange(len(table))
    share = table["share"].fillna(0).to_numpy(dtype=float) * 100
    colors = ["#2ca02c", "#ff7f0e", "#7f7f7f", "#d62728", "#8c564b"]
    ax.bar(x, share, color=colors, width=0.6, label="mean share")
    tops = share.copy()
    if reps > 1:
        # a share lives in [0, 100]: the t-interval of few replications is clipped to that range
        lo = np.clip(table["ci_low"].astype(float).fillna(0).to_numpy() * 100, 0, 100)
        hi = np.clip(table["ci_high"].astype(float).fillna(0).to_numpy() * 100, 0, 100)
        err = np.vstack([np.clip(share - lo, 0, None), np.clip(hi - share, 0, None)])
        ax.errorbar(x, share, yerr=err, fmt="none", ecolor="black", capsize=5, lw=1.2, label="95% interval")
        tops = np.maximum(share, hi)
    for xi, s, top, (_, row) in zip(x, share, tops, table.iterrows(), strict=True):
        text = f"{s:.1f}%"
        if reps == 1:
            text += f"\n({row['count']:,})"
        ax.annotate(text, (xi, top), xytext=(0, 3), textcoords="offset points", ha="center", fontsize=9)
    ax.set_xticks(x, [OUTCOMES[o] for o in table.index], fontsize=9)
    ax.set_ylim(0, max(float(tops.max()) * 1.18, 10))
    ax.set_ylabel("Share of closed milestones (%)")
    ax.set_xlabel("Outcome")
    ax.grid(True, axis="y", alpha=0.3)
    note = f"{total:,} closed milestone{'s' if total != 1 else ''}"
    if reps > 1:
        note += f" over {reps} replications, bars: mean, whiskers: 95% interval"
    counts = result.milestones["outcome"].value_counts()
    others = [f"{int(counts[k]):,} {label}" for k, label in NOT_CLOSED.items() if counts.get(k, 0)]
    ax.set_title(f"Outcome mix\n{note}", fontsize=11)
    if others:  # milestones that did not close, by why: a footnote under the chart
        fig.supxlabel("Not closed, not counted: " + " · ".join(others), fontsize=8.5, color="#444444")
    return fig


# ------------------------------------------------------------------------------ Sankey


def _kind(account: pd.Series) -> pd.Series:
    return account.str.split(":", n=1).str[0]


def money_flows(result: Result, replication: int = 0) -> dict[str, dict[str, int]]:
    """Where the money went, in minor units: ``{"in": {...}, "out": {...}}``; the two sums match.

    In: funded into escrow, bonuses and client fees paid by clients. Out: freelancers' net
    receipts, platform fees, refunds back to clients, and what is still held in escrow at the
    end. Computed from the ledger; with ``events="none"`` from the cumulative totals, which is
    exact unless clients pay fees (then the split is unknown and this raises ValueError).
    """
    rt = _run(result, replication)
    tot = {k: int(v) for k, v in rt.totals.items()}
    funded, released, bonus = tot["funded"], tot["released"], tot["bonus"]
    refunded, fees = tot["refunded"], tot["fees"]
    if result.events_mode == "full":
        led = rt.ledger
        src, dst = _kind(led["from_account"]), _kind(led["to_account"])
        amount = led["amount"].astype("int64")

        def net(kind: str) -> int:
            return int(amount[dst == kind].sum()) - int(amount[src == kind].sum())

        client_fees = int(amount[(src == "client") & (dst == "platform")].sum())
        escrow, freelancers, platform = net("escrow"), net("freelancer"), net("platform")
    else:
        payers = {f.payer for f in result.scenario.policy.fees}
        if fees and "client" in payers:
            raise ValueError("clients pay fees under this policy: the Sankey needs events='full'")
        client_fees, platform = 0, fees
        escrow = funded - released - refunded
        freelancers = released + bonus - fees
    return {
        "in": {"funded": funded, "bonus": bonus, "client fees": client_fees},
        "out": {
            "freelancers": freelancers,
            "platform fees": platform,
            "refunded": refunded,
            "in escrow": escrow,
        },
    }


@_literal
def sankey(result: Result, replication: int = 0) -> Figure:
    """A Sankey diagram of where the clients' money went (matplotlib.sankey), amounts labelled.

    Left: what clients paid (into escrow, bonuses, client fees). Right: what freelancers received
    net of fees, platform fees, refunds, and what is still in escrow at the end of the run.
    """
    from matplotlib.sankey import Sankey

    mf = money_flows(result, replication)
    total = sum(mf["in"].values())
    if total <= 0:
        raise ValueError("no money moved in this run")
    d = result.digits
    scale = _scale(result)
    cur = _currency(result)
    in_labels = {
        "funded": "funded into escrow",
        "bonus": "bonus (paid directly)",
        "client fees": "client fees",
    }
    out_labels = {
        "freelancers": "freelancers (net)",
        "platform fees": "platform fees",
        "refunded": "refunded to clients",
        "in escrow": "still in escrow",
    }
    flows_: list[float] = []
    labels: list[str] = []
    orient: list[int] = []
    ins = [(k, v) for k, v in mf["in"].items() if v > 0]
    outs = [(k, v) for k, v in mf["out"].items() if v > 0]
    # the largest flow on each side goes straight; smaller ones branch up or down, alternating
    for items, names, sign in ((ins, in_labels, 1), (outs, out_labels, -1)):
        big = max(items, key=lambda kv: kv[1])[0]
        turn = 1
        for key, cents in items:
            flows_.append(sign * cents / scale)
            pct = 100.0 * cents / total
            labels.append(f"{names[key]}\n{money_text(cents, d)} {cur} ({pct:.1f}%)")
            if key == big:
                orient.append(0)
            else:
                orient.append(turn)
                turn = -turn

    fig = _figure((10.0, 5.6))
    ax = fig.subplots()
    ax.set_axis_off()
    sk = Sankey(
        ax=ax, scale=1.0 / (total / scale), unit=None, gap=0.35, head_angle=120, margin=0.25, offset=0.2
    )
    sk.add(
        flows=flows_,
        labels=labels,
        orientations=orient,
        pathlengths=[0.45 if o else 0.25 for o in orient],
        trunklength=1.4,
        facecolor="#9ecae1",
        edgecolor="#3a6f96",
        lw=1.0,
    )
    diagrams = sk.finish()
    ax.set_aspect("equal", adjustable="box")  # Sankey fixes both limits: keep them, fit the box
    dg = diagrams[0]
    dg.text.set_text("")
    for text, tip, o, f in zip(dg.texts, dg.tips, orient, flows_, strict=True):
        text.set_fontsize(9)
        if o == 0:  # straight flows: label beside the arrow, not on it
            text.set_position((tip[0] + (0.08 if f < 0 else -0.08), tip[1]))
            text.set_horizontalalignment("left" if f < 0 else "right")
    ax.set_title(
        f"Where the money went ({cur}){_of_reps(result, replication)}\n"
        f"clients paid {money_text(total, d)} {cur} in total",
        fontsize=11,
    )
    return fig


# ------------------------------------------------------------------------------ disputes


@_literal
def dispute_queue(result: Result) -> Figure:
    """Disputes waiting for a platform agent over time, one line per replication."""
    queues = [(rt.replication, rt.dispute_queue) for rt in result.runs if rt.dispute_queue is not None]
    if not queues:
        raise ValueError("no dispute was queued in this run (or it ran with events='none')")
    fig = _figure()
    ax = fig.subplots()
    end = max(rt.end for rt in result.runs)
    top = 0
    many = len(queues) > 1
    for i, (rep, q) in enumerate(queues):
        t = q["time"].to_numpy(dtype=float)
        v = q["queue"].to_numpy(dtype=float)
        t, v = _step_to_end(t, v, end)
        ax.step(
            t,
            v,
            where="post",
            lw=1.0 if many else 1.5,
            alpha=0.55 if many and i else 1.0,
            label=f"replication {rep + 1}" if many else "disputes waiting",
        )
        top = max(top, int(v.max()))
    pop = result.scenario.population
    if pop is not None:
        pop = pop.for_policy(result.scenario.policy.policy)
    agents = getattr(pop, "dispute_agents", None)
    sizes = pop.team_sizes() if pop is not None else []
    wait = result.kpis.get("dispute_wait_days_mean", {}).get("mean")
    sub = []
    if len(sizes) > 1:  # a scheduled team: its size on a second axis
        team = ax.twinx()
        st = np.array([t for t, _ in sizes] + [end], dtype=float)
        sv = np.array([n for _, n in sizes] + [sizes[-1][1]], dtype=float)
        team.step(st, sv, where="post", color="0.35", lw=1.2, ls="--", label="agents on the team")
        team.set_ylabel("Agents on the team (dashed)")
        team.set_ylim(0, max(sv) * 1.25)
        team.yaxis.set_major_locator(MaxNLocator(integer=True))
        sub.append("team " + " → ".join(str(n) for _, n in sizes))
    elif agents:
        sub.append(f"{agents} agent{'s' if agents != 1 else ''}")
    if wait is not None:
        sub.append(f"mean wait {wait:.1f} days")
    ax.set_xlabel(time_label(result))
    ax.set_ylabel("Disputes waiting for an agent")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(0, max(top, 1) * 1.1)
    _time_xlim(ax, end)
    ax.grid(True, alpha=0.3)
    if many and len(queues) <= 10:
        fig.legend(loc="outside lower center", fontsize=8, frameon=False, ncol=min(5, len(queues)))
    ax.set_title("Dispute queue length" + (f" ({', '.join(sub)})" if sub else ""))
    return fig


# ------------------------------------------------------------------------------ which apply


#: Why a chart is left out when it does not apply.
NOT_APPLICABLE = {
    "balances": "no money moved",
    "aging": "no money was held in escrow at a day end",
    "flows": "needs the full event log (events='full') and some money moving",
    "timeline": "drawn for scripted scenarios (for a population: result.plot.timeline(contracts=[...]))",
    "time_to_payment": "no milestone was paid after a submission",
    "outcomes": "no milestone was closed",
    "sankey": "no money moved (or clients pay fees and the event log was not kept)",
    "dispute_queue": "no dispute queued for the platform's team (scripts settle their own disputes)",
}


def _has_aging(result: Result) -> bool:
    table = result.aging
    if "replication" in table.columns:
        table = table[table["replication"] == result.runs[0].replication]
    return bool(table[[n for n in AGE_COLORS if n in table.columns]].to_numpy().any())


def applicable(result: Result) -> list[str]:
    """Names of the charts (of :data:`CHARTS`) that have something to show for this result."""
    rt = result.runs[0]
    full = result.events_mode == "full"
    out = []
    if not rt.balances.empty:
        out.append("balances")
    if not rt.balances.empty and _has_aging(result):
        out.append("aging")
    if full and not rt.ledger.empty:
        out.append("flows")
    if full and not result.scenario.is_population and len(rt.states):
        out.append("timeline")
    if not payment_times(result).empty:
        out.append("time_to_payment")
    if result.milestones["outcome"].isin(list(OUTCOMES)).any():
        out.append("outcomes")
    try:
        if sum(money_flows(result)["in"].values()) > 0:
            out.append("sankey")
    except ValueError:
        pass
    if any(r.dispute_queue is not None for r in result.runs):
        out.append("dispute_queue")
    return out


CHART_FUNCTIONS: dict[str, Callable[..., Figure]] = {
    "balances": balances,
    "aging": aging,
    "flows": flows,
    "timeline": timeline,
    "time_to_payment": time_to_payment,
    "outcomes": outcomes,
    "sankey": sankey,
    "dispute_queue": dispute_queue,
}


class Plotter:
    """The charts of one Result as methods: ``result.plot.balances()``, ``result.plot.sankey()``..."""

    def __init__(self, result: Result) -> None:
        self.result = result

    def __repr__(self) -> str:
        return f"Plotter(charts={self.available()})"

    def available(self) -> list[str]:
        """The charts that apply to this result."""
        return applicable(self.result)

    def all(self) -> dict[str, Figure]:
        """Every applicable chart, by name."""
        return {name: CHART_FUNCTIONS[name](self.result) for name in self.available()}

    def balances(self, replication: int = 0) -> Figure:
        """Escrow held over time and cumulative money paid out."""
        return balances(self.result, replication)

    def aging(self, replication: int = 0) -> Figure:
        """Escrow at each day end, stacked by the age of the money."""
        return aging(self.result, replication)

    def flows(self, replication: int = 0) -> Figure:
        """Cumulative flows between accounts."""
        return flows(self.result, replication)

    def timeline(self, replication: int = 0, contracts: Iterable[str] | None = None) -> Figure:
        """Contract timeline: phases, events, review and refund windows."""
        return timeline(self.result, replication, contracts)

    def time_to_payment(self) -> Figure:
        """Distribution of time to payment with the review window marked."""
        return time_to_payment(self.result)

    def outcomes(self) -> Figure:
        """Outcome mix of closed milestones, with intervals."""
        return outcomes(self.result)

    def sankey(self, replication: int = 0) -> Figure:
        """Where the money went."""
        return sankey(self.result, replication)

    def dispute_queue(self) -> Figure:
        """Dispute queue length over time."""
        return dispute_queue(self.result)
