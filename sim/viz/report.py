"""The HTML report of a run: one self-contained ``report.html`` plus the charts as PNG files.

``report.html`` needs no network and no JavaScript: CSS is inline and every chart is embedded as
a base64 PNG data URI. Sections: the scenario and its resolved policy, key figures (KPIs with 95%
intervals), fund flows (ledger totals), charts, and the expectations' outcomes. Output is
deterministic for the same result: no timestamps, and PNGs are written without the software tag.

Figures are rendered with the Agg canvas attached to each figure (``FigureCanvasAgg(fig)``), so
writing a report never switches matplotlib's global backend, even inside Jupyter.
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import __version__
from ..analysis.tables import KPI_NAMES, MONEY_KPIS, flow_sums
from ..core.units import format_duration
from ..inputs.scenario import StateCheck
from . import plots

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..analysis.expect import CheckResult
    from ..experiments.batch import Result
    from ..inputs.scenario import Expectation

#: Section ids of report.html, in order (tests look for each).
SECTIONS = ("scenario", "policy", "kpis", "fund-flows", "why", "charts", "expectations")
#: the most rows the "why" table shows (the rest: ``milestone-sim explain``)
WHY_ROWS = 400

KPI_LABELS = {
    "contracts": "Contracts",
    "milestones": "Milestones",
    "milestones_closed": "Milestones closed",
    "funded_total": "Funded into escrow",
    "released_total": "Released to freelancers (gross)",
    "bonus_total": "Bonuses",
    "refunded_total": "Refunded to clients",
    "fees_total": "Platform fees",
    "approved_share": "Approved by the client",
    "auto_approved_share": "Auto-approved (review window ran out)",
    "refunded_share": "Refunded (on request or by silence)",
    "disputed_share": "Decided by the platform after a dispute",
    "time_to_payment_days_mean": "Time to payment, mean",
    "time_to_payment_days_p50": "Time to payment, median",
    "time_to_payment_days_p90": "Time to payment, 90th percentile",
    "escrow_float_avg": "Escrow float, time-weighted mean",
    "escrow_float_max": "Escrow float, maximum",
    "dispute_wait_days_mean": "Wait for a dispute agent, mean",
    "time_to_available_days_mean": "Time until the freelancer can withdraw (after the hold), mean",
    "time_to_available_days_p50": "Time until the freelancer can withdraw, median",
    "time_to_available_days_p90": "Time until the freelancer can withdraw, 90th percentile",
    "escrow_age_p50_days": "Time a milestone's money spent in escrow, median",
    "escrow_age_p90_days": "Time a milestone's money spent in escrow, 90th percentile",
}

CHART_CAPTIONS = {
    "balances": "Top: money held in escrow (and in a security hold, if the policy has one). "
    "Bottom: money paid out so far: to freelancers net of fees, refunds to clients, platform fees.",
    "aging": "Escrow held at each day end, split by how long that money has been in escrow (aging.csv); "
    "with the event log the stack adds up to the escrow balance to the cent, without it it is estimated "
    "from the milestones table.",
    "flows": "The last point of each line is that flow's total in the ledger (see Fund flows).",
    "timeline": "Each contract and milestone over time: phases as bars, who acted as markers, and the "
    "review and refund windows as brackets (dotted where a timer was stopped before it ran out).",
    "time_to_payment": "Days from a milestone's first submission to its release; the dashed line is the "
    "review window after which a silent client's milestone is released automatically.",
    "outcomes": (
        "How closed milestones ended; with replications, whiskers are 95% intervals of the share. "
        "The footnote counts milestones that did not close: open (in flight), cancelled, never funded."
    ),
    "sankey": "Where the clients' money went: what they paid on the left; what freelancers received net "
    "of fees, platform fees, refunds and what is still held in escrow on the right.",
    "dispute_queue": "Disputes waiting for a platform agent (the team is a capacity-limited queue).",
}

CSS = """
:root { --ink: #1d2330; --muted: #5b6475; --line: #d8dde6; --bg: #f6f7f9; --ok: #1a7f37; --bad: #c62828; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
  font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 28px 32px 48px; background: #fff; }
h1 { font-size: 26px; margin: 0 0 6px; line-height: 1.25; }
h2 { font-size: 20px; margin: 36px 0 12px; padding-bottom: 6px; border-bottom: 2px solid var(--line); }
h3 { font-size: 16px; margin: 22px 0 8px; }
p.meta, p.note, figcaption, .muted { color: var(--muted); }
p.meta { margin: 0 0 6px; }
nav { margin: 14px 0 0; font-size: 14px; }
nav a { margin-right: 14px; color: #2456a6; text-decoration: none; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 10px; font-size: 14px; }
th, td { padding: 5px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: #eef1f5; font-weight: 600; }
tbody tr:nth-child(even) { background: #fafbfc; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.total td { font-weight: 600; border-top: 2px solid var(--line); }
code { font: 12.5px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; color: #3b4252; }
.badge { display: inline-block; padding: 0 7px; border-radius: 9px; font-size: 12px; font-weight: 600; }
.badge.ok { background: #e3f4e8; color: var(--ok); }
.badge.bad { background: #fdeaea; color: var(--bad); }
.badge.set { background: #fff1d6; color: #8a5a00; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 18px; margin: 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
figure { margin: 18px 0 26px; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { font-size: 13.5px; margin-top: 6px; }
details pre { background: #f3f5f8; padding: 10px 12px; overflow-x: auto; font-size: 12.5px; }
ul.problems { margin: 4px 0 0; padding-left: 18px; color: var(--bad); }
footer { margin-top: 40px; font-size: 13px; color: var(--muted); }
"""


# ------------------------------------------------------------------------------ formatting


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _money(cents: int, result: Result) -> str:
    return plots.money_text(int(cents), result.digits)


def _fmt_kpi(name: str, value: float | None, currency: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if name in MONEY_KPIS:
        return f"{value:,.2f} {currency}"
    if name.endswith("_share"):
        return f"{100 * value:.1f}%"
    if "_days_" in name or name.endswith("_days"):
        return f"{value:.2f} days"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.1f}"


def _table(head: list[str], rows: list[list[str]], num: set[int], total_last: bool = False) -> str:
    """An HTML table; cells are already escaped HTML; columns in ``num`` are right-aligned."""

    def cls(i: int) -> str:
        return ' class="num"' if i in num else ""

    out = ["<table>", "<thead><tr>"]
    out += [f"<th{cls(i)}>{h}</th>" for i, h in enumerate(head)]
    out.append("</tr></thead><tbody>")
    for n, row in enumerate(rows):
        tr = ' class="total"' if total_last and n == len(rows) - 1 else ""
        out.append(f"<tr{tr}>" + "".join(f"<td{cls(i)}>{c}</td>" for i, c in enumerate(row)) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


# ------------------------------------------------------------------------------ sections


def _scenario_section(result: Result) -> str:
    sc = result.scenario
    facts = [
        ("Scenario file", f"<code>{_e(sc.path.as_posix())}</code>"),
        ("Kind", "population (sampled contracts)" if sc.is_population else "scripted contracts"),
        ("Policy", f"<code>{_e(sc.policy.policy)}</code> — {_e(sc.policy.title)}"),
        ("Seed", _e(result.seed)),
        ("Replications", _e(len(result.runs))),
        (
            "Event log",
            "full" if result.events_requested == "full" else "none (aggregates and daily balances only)",
        ),
        ("Start (t = 0)", _e(sc.start.isoformat()) if sc.start else "not set: times are days since t = 0"),
        ("Horizon", _e(format_duration(sc.until)) if sc.until is not None else "until nothing is pending"),
    ]
    if not sc.is_population:
        facts.append(("Contracts", _e(", ".join(c.id for c in sc.contracts))))
    body = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)
    out = f'<section id="scenario"><h2>Scenario</h2><dl class="facts">{body}</dl>'
    if sc.is_population and isinstance(sc.raw, dict) and "population" in sc.raw:
        import yaml

        try:
            text = yaml.safe_dump(
                sc.raw["population"], sort_keys=False, allow_unicode=True, default_flow_style=None, width=100
            )
        except yaml.YAMLError:
            text = repr(sc.raw["population"])
        out += f"<details><summary>Population settings</summary><pre>{_e(text)}</pre></details>"
    return out + "</section>"


def _flatten(data: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(data, dict):
        out: list[tuple[str, Any]] = []
        for key, value in data.items():
            out += _flatten(value, f"{prefix}{key}.")
        return out
    return [(prefix.rstrip("."), data)]


def _policy_value(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        if not value:
            return "none"
        if all(isinstance(v, dict) for v in value):
            return "<br>".join(_fee_text(v) for v in value)
        return _e(", ".join(str(v) for v in value))
    return _e(value)


def _fee_text(fee: dict[str, Any]) -> str:
    parts = [f"{fee.get('percent', 0)}%"]
    if fee.get("fixed"):
        parts.append(f"+ {fee['fixed']}")
    return _e(f"{fee.get('name', 'fee')}: {' '.join(parts)} on {fee.get('on')}, paid by {fee.get('payer')}")


def _policy_section(result: Result, diagram: str | None = None) -> str:
    sc = result.scenario
    resolved = sc.policy.resolved()
    overridden = {str(k) for k, _ in sc.overrides}
    rows = []
    for key, value in _flatten({k: v for k, v in resolved.items() if k not in ("policy", "title")}):
        mark = ' <span class="badge set">overridden</span>' if key in overridden else ""
        rows.append([f"<code>{_e(key)}</code>{mark}", _policy_value(value)])
    note = (
        f'<p class="note">The policy <code>{_e(sc.policy.policy)}</code> as this run used it, after '
        "<code>extends</code> and overrides.</p>"
    )
    figure = ""
    if diagram is not None:
        from .policy_diagram import pack_mermaid

        figure = (
            f'<figure id="policy-diagram">{diagram}'
            "<figcaption>Milestone states, the actions between them and each procedure's stages "
            "(solid: an action or answer, dashed: a timer), from the transition table and this pack "
            "(<code>policy_diagram.svg</code>). Mermaid text: <code>milestone-sim policies --diagram "
            f"{_e(sc.policy.policy)}</code>.</figcaption></figure>"
            f"<details><summary>Mermaid</summary><pre>{_e(pack_mermaid(sc.policy))}</pre></details>"
        )
    table = _table(["key", "value"], rows, set())
    return f'<section id="policy"><h2>Policy</h2>{note}{figure}{table}</section>'


def _kpi_section(result: Result) -> str:
    cur = str(result.scenario.policy.currency)
    reps = len(result.runs)
    rows = []
    for name in KPI_NAMES:
        k = result.kpis[name]
        lo, hi = k["ci_low"], k["ci_high"]
        if lo is not None:  # every KPI is >= 0 and a share <= 1: show the interval within that range
            lo = max(lo, 0.0)
            hi = min(hi, 1.0) if name.endswith("_share") else hi
        interval = "–" if lo is None else f"{_fmt_kpi(name, lo, cur)} … {_fmt_kpi(name, hi, cur)}"
        rows.append(
            [
                f"{_e(KPI_LABELS.get(name, name))}<br><code>{_e(name)}</code>",
                _e(_fmt_kpi(name, k["mean"], cur)),
                _e(interval),
                _e(k["n"]),
            ]
        )
    if reps > 1:
        note = (
            f"Mean over {reps} replications with a 95% t-interval (clipped to the possible range: no "
            "KPI is negative and no share exceeds 100%); n counts replications with a value."
        )
    else:
        note = "One replication: no interval. Run with more replications for 95% intervals."
    note += " Shares are of closed milestones; time to payment runs from first submission to release."
    table = _table(["KPI", "mean", "95% interval", "n"], rows, {1, 2, 3})
    return f'<section id="kpis"><h2>Key figures</h2><p class="note">{_e(note)}</p>{table}</section>'


FLOW_NAMES = {
    "funded": "funded",
    "released": "released",
    "bonus": "bonus",
    "refunded": "refunded",
    "fees": "fees",
}


def _escrow_left(result: Result, replication: int) -> int:
    """What escrow holds at the end of a replication (fees never come out of escrow)."""
    try:
        return plots.money_flows(result, replication)["out"]["in escrow"]
    except ValueError:  # events="none" with client-paid fees: escrow is still funded - out
        tot = result.runs[replication].totals
        return int(tot["funded"]) - int(tot["released"]) - int(tot["refunded"])


def _fund_flows_section(result: Result) -> str:
    cur = str(result.scenario.policy.currency)
    flows = list(FLOW_NAMES)
    head = ["", *flows, "still in escrow"]
    parts = [
        '<section id="fund-flows"><h2>Fund flows</h2>',
        f'<p class="note">Ledger totals in {_e(cur)}: funded (clients into escrow), released (escrow to '
        "freelancers, gross of their fees), bonus (clients straight to freelancers), refunded (escrow "
        "back to clients), fees (to the platform), and what escrow still holds at the end.</p>",
    ]
    reps = len(result.runs)
    if reps == 1:
        rt = result.runs[0]
        rows = []
        if not result.scenario.is_population and result.events_mode == "full":
            led = rt.ledger
            for spec in result.scenario.contracts:
                mine = led[led["contract"] == spec.id]
                sums = flow_sums(mine)
                into = int(mine.loc[mine["to_account"] == f"escrow:{spec.id}", "amount"].sum())
                out_ = int(mine.loc[mine["from_account"] == f"escrow:{spec.id}", "amount"].sum())
                rows.append(
                    [
                        f"contract <code>{_e(spec.id)}</code>",
                        *(_e(_money(int(sums.get(f, 0)), result)) for f in flows),
                        _e(_money(into - out_, result)),
                    ]
                )
        rows.append(
            [
                "total",
                *(_e(_money(int(rt.totals[f]), result)) for f in flows),
                _e(_money(_escrow_left(result, 0), result)),
            ]
        )
        parts.append(_table(head, rows, set(range(1, len(head))), total_last=True))
        if not result.scenario.is_population and result.events_mode == "full":
            parts.append(_accounts_table(result))
    else:
        rows = []
        per_rep = {f: np.array([rt.totals[f] for rt in result.runs], dtype=float) for f in flows}
        per_rep["escrow"] = np.array([_escrow_left(result, i) for i in range(reps)], dtype=float)
        scale = 10.0**result.digits
        for key, label in [*FLOW_NAMES.items(), ("escrow", "still in escrow")]:
            mean, lo, hi = plots.t_interval(per_rep[key] / scale)
            lo = max(lo, 0.0)
            rows.append(
                [
                    _e(label),
                    _e(f"{mean:,.2f}"),
                    _e(f"{lo:,.2f} … {hi:,.2f}"),
                    _e(_money(int(per_rep[key].min()), result)),
                    _e(_money(int(per_rep[key].max()), result)),
                ]
            )
        parts.append(
            f'<p class="note">Per replication ({reps} replications): mean with a 95% interval, and the '
            "smallest and largest exact total.</p>"
        )
        parts.append(_table(["flow", "mean", "95% interval", "min", "max"], rows, {1, 2, 3, 4}))
    parts.append("</section>")
    return "".join(parts)


def _accounts_table(result: Result) -> str:
    led = result.runs[0].ledger
    if led.empty:
        return ""
    bal: dict[str, int] = {}
    for acct in result.runs[0].accounts:
        bal[acct] = 0
    for frm, to, amt in zip(led["from_account"], led["to_account"], led["amount"], strict=True):
        amt = int(amt)
        bal[frm] = bal.get(frm, 0) + (amt if frm.startswith("client:") else -amt)
        bal[to] = bal.get(to, 0) + (-amt if to.startswith("client:") else amt)
    rows = [[f"<code>{_e(a)}</code>", _e(_money(v, result))] for a, v in sorted(bal.items())]
    return (
        "<h3>Final balance of every account</h3>"
        '<p class="note">A client account holds what the client paid, net of refunds.</p>'
        + _table(["account", "balance"], rows, {1})
    )


def _chart_section(result: Result, charts: list[tuple[str, str, bytes]]) -> str:
    parts = ['<section id="charts"><h2>Charts</h2>']
    if not charts:
        parts.append('<p class="note">No chart applies: no money moved in this run.</p>')
    for name, title, png in charts:
        data = base64.b64encode(png).decode("ascii")
        parts.append(
            f'<figure id="chart-{_e(name)}"><img src="data:image/png;base64,{data}" alt="{_e(title)}">'
            f"<figcaption><strong>{_e(title)}.</strong> {_e(CHART_CAPTIONS.get(name, ''))} "
            f"(<code>{_e(name)}.png</code>)</figcaption></figure>"
        )
    skipped = [n for n in plots.CHARTS if n not in {c[0] for c in charts}]
    if skipped:
        items = "".join(f"<li><code>{_e(n)}</code>: {_e(plots.NOT_APPLICABLE[n])}</li>" for n in skipped)
        parts.append(f'<p class="note">Not drawn for this run:</p><ul class="muted">{items}</ul>')
    parts.append("</section>")
    return "".join(parts)


def _expectation_text(exp: Expectation, result: Result) -> str:
    spec = exp.spec
    if isinstance(spec, StateCheck):
        at = spec.at
        bits = [f"at {'the end' if at == 'end' else format_duration(float(at))}:"]
        for ref, state in spec.milestones.items():
            bits.append(f"milestone {ref} is {state}")
        for ref, state in spec.contracts.items():
            bits.append(f"contract {ref} is {state}")
        for acct, cents in spec.balances.items():
            bits.append(f"balance {acct} = {_money(cents, result)}")
        for flow, cents in spec.totals.items():
            bits.append(f"total {flow} = {_money(cents, result)}")
        return bits[0] + " " + "; ".join(bits[1:])
    items = []
    for key, value in spec.items():
        if key == "at":
            value = format_duration(float(value))
        elif key == "amount":
            value = _money(int(value), result)
        items.append(f"{key}={value}")
    return {"event": "an event", "no_event": "no event", "rejected": "a rejection"}.get(
        exp.kind, exp.kind
    ) + f" with {', '.join(items)}"


def _why_section(result: Result) -> str:
    """Each money movement and refused action of a scripted run, with the rules that decided it."""
    head = '<section id="why"><h2>Why the money moved</h2>'
    if result.scenario.is_population or result.events_mode != "full":
        return (
            head + '<p class="note">Shown for scripted runs with the full event log; for a sampled '
            "population, <code>milestone-sim explain OUT_DIR --contract ID</code> explains one "
            "contract.</p></section>"
        )
    frame = result.explain(quiet=True)
    rows = []
    for row in frame.head(WHY_ROWS).itertuples(index=False):
        where = f"{row.contract}/{row.milestone}" if row.milestone else str(row.contract)
        why = str(row.why).split("\n", 1)[1] if "\n" in str(row.why) else ""
        rows.append(
            [
                _e(format_duration(float(row.time))),
                f"<code>{_e(where)}</code>",
                _e(f"{row.actor} {row.action}") + ("" if row.outcome == "accepted" else " (refused)"),
                "<br>".join(_e(part) for part in str(row.postings).split("; ")),
                _e(why).replace("\n", "<br>"),
            ]
        )
    more = (
        f'<p class="note">The first {WHY_ROWS} of {len(frame)} rows; '
        "<code>milestone-sim explain OUT_DIR</code> prints them all.</p>"
        if len(frame) > WHY_ROWS
        else ""
    )
    return head + _table(["time", "milestone", "action", "money", "why"], rows, set()) + more + "</section>"


def _expectations_section(result: Result) -> str:
    sc = result.scenario
    head = '<section id="expectations"><h2>Expectations</h2>'
    if not sc.expectations:
        return head + '<p class="note">This scenario states no expectations.</p></section>'
    if result.events_mode != "full":
        return head + '<p class="note">Not checked: expectations need the full event log.</p></section>'
    checks: list[CheckResult] = result.check()
    bad = sum(not c.ok for c in checks)
    reps = len(result.runs)
    summary = f"{len(checks) - bad} of {len(checks)} hold" + (
        f" (over {reps} replications)" if reps > 1 else ""
    )
    badge = (
        '<span class="badge ok">all hold</span>' if not bad else f'<span class="badge bad">{bad} fail</span>'
    )
    rows = []
    for c in checks:
        status = '<span class="badge ok">holds</span>' if c.ok else '<span class="badge bad">fails</span>'
        text = _e(_expectation_text(c.expectation, result))
        if not c.ok:
            text += '<ul class="problems">' + "".join(f"<li>{_e(p)}</li>" for p in c.problems) + "</ul>"
        rows.append([status, f"<code>{_e(c.where)}</code>", text])
    return (
        head
        + f"<p>{badge} {_e(summary)}</p>"
        + _table(["", "where", "expectation"], rows, set())
        + "</section>"
    )


# ------------------------------------------------------------------------------ writing


def render_png(fig: Figure) -> bytes:
    """The figure as PNG bytes, rendered by Agg, without metadata that would vary between runs."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def render_svg(fig: Figure) -> str:
    """The figure as an ``<svg>`` element to inline in HTML: no XML prologue, no date, fixed ids."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": "milestone-sim", "svg.fonttype": "none"}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _chart_title(fig: Figure, name: str) -> str:
    title = fig._suptitle.get_text() if fig._suptitle is not None else ""
    if not title and fig.axes:
        title = fig.axes[0].get_title()
    return (title.split("\n")[0] or name.replace("_", " ")).strip()


def write_charts(result: Result, out_dir: str | Path) -> list[tuple[str, str, bytes]]:
    """Write every applicable chart as ``<name>.png`` into out_dir; return (name, title, png)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in plots.applicable(result):
        fig = plots.CHART_FUNCTIONS[name](result)
        png = render_png(fig)
        (out / f"{name}.png").write_bytes(png)
        written.append((name, _chart_title(fig, name), png))
    return written


def render_html(result: Result, charts: list[tuple[str, str, bytes]], diagram: str | None = None) -> str:
    """The whole report as an HTML string (charts given as PNG bytes, the pack's diagram as SVG)."""
    sc = result.scenario
    nav = "".join(
        f'<a href="#{s}">{label}</a>'
        for s, label in zip(
            SECTIONS,
            ("Scenario", "Policy", "Key figures", "Fund flows", "Why", "Charts", "Expectations"),
            strict=True,
        )
    )
    reps = len(result.runs)
    meta = (
        f"policy <code>{_e(sc.policy.policy)}</code> · seed {_e(result.seed)} · "
        f"{reps} replication{'s' if reps != 1 else ''} · {_e(sc.policy.currency)}"
    )
    body = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(sc.title)} — milestone-sim report</title>",
        f"<style>{CSS}</style></head><body><main>",
        f'<header><h1>{_e(sc.title)}</h1><p class="meta">{meta}</p><nav>{nav}</nav></header>',
        _scenario_section(result),
        _policy_section(result, diagram),
        _kpi_section(result),
        _fund_flows_section(result),
        _why_section(result),
        _chart_section(result, charts),
        _expectations_section(result),
        f"<footer>Written by milestone-sim {_e(__version__)}. Money is exact to the cent in the CSV "
        "files beside this report; charts show major units.</footer>",
        "</main></body></html>",
    ]
    return "\n".join(body) + "\n"


def write_report(result: Result, out_dir: str | Path) -> Path:
    """Write the applicable charts as PNG and a self-contained ``report.html``; return its path."""
    out = Path(out_dir)
    charts = write_charts(result, out)
    from .policy_diagram import pack_figure

    diagram = render_svg(pack_figure(result.scenario.policy))
    (out / "policy_diagram.svg").write_text(diagram, encoding="utf-8", newline="\n")
    path = out / "report.html"
    path.write_text(render_html(result, charts, diagram), encoding="utf-8", newline="\n")
    return path
