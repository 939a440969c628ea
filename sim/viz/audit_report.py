"""The HTML report of an audit: ``audit.html`` with the findings over time, the money at stake per
rule, and the findings themselves; the two charts are also written as PNG files.

Self-contained like ``report.html`` (inline CSS, charts as data URIs) and deterministic.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import __version__
from ..audit.replay import FINDING_COLUMNS, KINDS
from ..core.units import format_duration, format_money
from .plots import ChartFigure, literal_text, stack_aging
from .report import CSS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..audit.replay import AuditResult

#: the most findings audit.html lists (audit.csv has them all)
ROWS = 500
#: a colour per kind of finding (in the order of KINDS), fixed so charts of two audits compare
COLOURS = dict(
    zip(
        KINDS,
        ("#c0392b", "#e67e22", "#8e44ad", "#2980b9", "#16a085", "#27ae60", "#d35400", "#7f8c8d"),
        strict=True,
    )
)


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _when(result: AuditResult, t: float) -> str:
    """A time of the log as the log wrote it: a UTC timestamp when it had stamps, else days."""
    if result.origin is None:
        return format_duration(t)
    import datetime as dt

    return (result.origin + dt.timedelta(days=t)).strftime("%Y-%m-%d %H:%M")


def _png(fig: Figure) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def findings_over_time(result: AuditResult) -> Figure:
    """Findings per week of the log, stacked by kind."""
    df = result.frame()
    fig = ChartFigure(figsize=(9.0, 3.6), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    weeks = int(max(result.horizon, 1.0) // 7) + 1
    bottom = np.zeros(weeks)
    x = np.arange(weeks) * 7
    for kind, colour in COLOURS.items():
        times = df.loc[df["kind"] == kind, "time"].to_numpy(dtype=float)
        if not len(times):
            continue
        counts = np.bincount((times // 7).astype(int), minlength=weeks)[:weeks]
        ax.bar(x, counts, width=6.4, bottom=bottom, align="edge", color=colour, label=kind)
        bottom += counts
    ax.set_xlabel("day of the log (one bar a week)")
    ax.set_ylabel("findings")
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("Findings per week, by kind")
    if len(df):
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
    else:
        ax.text(0.5, 0.5, "no findings: the log conforms", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlim(0, weeks * 7)
    return literal_text(fig)


def at_stake_by_rule(result: AuditResult) -> Figure:
    """The money at stake per rule, one bar per rule split by kind (major units)."""
    table = result.by_rule()
    d, cur = result.policy.digits, result.policy.currency
    rules = sorted(set(table["rule"])) if len(table) else []
    height = max(2.4, 0.45 * len(rules) + 1.4)
    fig = ChartFigure(figsize=(9.0, height), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    left = np.zeros(len(rules))
    y = np.arange(len(rules))
    for kind, colour in COLOURS.items():
        part = table[table["kind"] == kind]
        if part.empty:
            continue
        values = np.array([part.loc[part["rule"] == r, "at_stake"].sum() / 10**d for r in rules], dtype=float)
        ax.barh(y, values, left=left, color=colour, label=kind)
        left += values
    ax.set_yticks(y, rules)
    ax.invert_yaxis()
    ax.set_xlabel(f"money at stake ({cur})")
    ax.set_title("Money at stake per rule")
    if rules:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
    else:
        ax.set_yticks([])
        ax.text(0.5, 0.5, "nothing at stake", ha="center", va="center", transform=ax.transAxes)
    return literal_text(fig)


def escrow_aging(result: AuditResult) -> Figure:
    """The replayed log's escrow at each day end, stacked by the age of the money (``aging.csv``)."""
    fig = ChartFigure(figsize=(9.0, 3.6), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    table = result.aging
    if len(table) and table.drop(columns="time").to_numpy().any():
        total = stack_aging(ax, table, float(10**result.policy.digits))
        ax.set_ylim(0, 1.05 * total)
    else:
        ax.text(0.5, 0.5, "no money in escrow at a day end", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlim(0, max(result.horizon, 1.0))
    ax.set_xlabel("day of the log, at each day end")
    ax.set_ylabel(f"held in escrow ({result.policy.currency})")
    ax.set_title("Escrow by age of the money, as the log replays")
    return literal_text(fig)


CHARTS = {
    "audit_findings": ("Findings per week", findings_over_time),
    "audit_at_stake": ("Money at stake per rule", at_stake_by_rule),
    "audit_aging": ("Escrow by age of the money", escrow_aging),
}


def render_html(result: AuditResult, charts: list[tuple[str, str, bytes]]) -> str:
    d, cur = result.policy.digits, result.policy.currency
    df = result.frame()
    total = int(df["at_stake"].sum()) if len(df) else 0
    verdict = (
        "The log conforms to the pack."
        if result.conforms
        else f"{len(df):,} finding(s), {format_money(total, d)} {cur} at stake."
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Audit of {_e(Path(result.log).name)} — milestone-sim</title>",
        f"<style>{CSS}</style></head><body><main>",
        f"<header><h1>Audit of <code>{_e(Path(result.log).name)}</code></h1>"
        f'<p class="meta">policy <code>{_e(result.policy.policy)}</code> · {result.rows:,} rows · '
        f"{result.contracts:,} contracts · {result.horizon:,.1f} days of log · tolerance "
        f"{format_duration(result.tolerance)} · {_e(cur)}</p></header>",
        f'<section id="verdict"><h2>Verdict</h2><p>{_e(verdict)}</p>',
    ]
    table = result.by_rule()
    if len(table):
        rows = "".join(
            f"<tr><td><code>{_e(r.rule)}</code></td><td>{_e(r.kind)}</td>"
            f"<td class='num'>{int(r.findings):,}</td>"
            f"<td class='num'>{_e(format_money(int(r.at_stake), d))}</td></tr>"
            for r in table.itertuples()
        )
        parts.append(
            "<table><thead><tr><th>rule</th><th>kind</th><th>findings</th>"
            f"<th>at stake ({_e(cur)})</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    parts.append("</section>")
    parts.append('<section id="charts"><h2>Charts</h2>')
    for name, title, png in charts:
        data = base64.b64encode(png).decode("ascii")
        parts.append(
            f'<figure id="chart-{_e(name)}"><img src="data:image/png;base64,{data}" alt="{_e(title)}">'
            f"<figcaption><strong>{_e(title)}.</strong> (<code>{_e(name)}.png</code>)</figcaption></figure>"
        )
    parts.append("</section>")
    parts.append('<section id="findings"><h2>Findings</h2>')
    if len(df):
        if len(df) > ROWS:
            parts.append(f'<p class="note">The first {ROWS:,} of {len(df):,}; audit.csv has them all.</p>')
        cols = [c for c in FINDING_COLUMNS if c not in ("source", "line")]
        head = "".join(f"<th>{_e(c)}</th>" for c in cols)
        body = []
        for r in df.head(ROWS).itertuples():
            cells = [
                _when(result, r.time),
                r.contract,
                r.milestone,
                r.kind,
                r.rule,
                r.policy_keys.replace(";", " "),
                r.expected,
                r.found,
                format_money(int(r.at_stake), d),
            ]
            body.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
        parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")
    else:
        parts.append("<p>None.</p>")
    parts.append("</section>")
    parts.append(
        f"<footer>Written by milestone-sim {_e(__version__)}. Amounts are exact to the cent in audit.csv; "
        "charts show major units.</footer></main></body></html>"
    )
    return "\n".join(parts) + "\n"


def write_report(result: AuditResult, out_dir: str | Path) -> Path:
    """Write the two charts as PNG and ``audit.html`` into ``out_dir``; return the report's path."""
    out = Path(out_dir)
    charts = []
    for name, (title, draw) in CHARTS.items():
        png = _png(draw(result))
        (out / f"{name}.png").write_bytes(png)
        charts.append((name, title, png))
    path = out / "audit.html"
    path.write_text(render_html(result, charts), encoding="utf-8", newline="\n")
    return path
