"""The plain-text summary ``milestone-sim run`` prints: fund flows, timeline, KPIs, expectations."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..analysis.tables import KPI_NAMES, MONEY_KPIS, flow_sums
from ..core.units import format_duration, format_money

if TYPE_CHECKING:
    from ..experiments.batch import Result

TIMELINE_MAX = 80


def _table(rows: list[list[str]], right: set[int]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(row)]
        lines.append("  " + "  ".join(cells).rstrip())
        if n == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def fund_flows(result: Result) -> str:
    """Per contract and in total: funded, released, bonus, refunded, fees, still in escrow."""
    d = result.digits
    first = result.runs[0]
    led = first.ledger
    header = ["contract", "state", "funded", "released", "bonus", "refunded", "fees", "in escrow"]
    rows = [header]
    flows = ("funded", "released", "bonus", "refunded", "fees")
    for spec in result.scenario.contracts:
        sums = flow_sums(led[led["contract"] == spec.id])
        rows.append(
            [
                spec.id,
                (first.contract_states or {})[spec.id],
                *(format_money(int(sums.get(f, 0)), d) for f in flows),
                format_money((first.escrow_by_contract or {})[spec.id], d),
            ]
        )
    escrow = sum((first.escrow_by_contract or {}).values())
    rows.append(["total", "", *(format_money(first.totals[f], d) for f in flows), format_money(escrow, d)])
    return f"Fund flows ({result.scenario.policy.currency})\n" + _table(rows, {2, 3, 4, 5, 6, 7})


def timeline(result: Result) -> str:
    """The event log of a small scripted run, one line per event."""
    ev = result.runs[0].events
    d = result.digits
    lines = ["Timeline"]
    for row in ev.head(TIMELINE_MAX).itertuples(index=False):
        where = f"{row.contract}/{row.milestone}" if row.milestone else row.contract
        amount = format_money(int(row.amount), d) if row.amount else ""
        mark = "REJECTED " + row.rule if row.outcome == "rejected" else ""
        text = f"  {format_duration(row.time):>8}  {where:<12} {row.actor:<10} {row.action:<18} {amount:>10}"
        note = f"{mark}  {row.message}".strip() if mark else row.message
        lines.append(f"{text}  {note}".rstrip())
    if len(ev) > TIMELINE_MAX:
        lines.append(f"  ... {len(ev) - TIMELINE_MAX} more events in events.csv")
    return "\n".join(lines)


def kpi_table(result: Result) -> str:
    """KPI means with 95% intervals across replications."""
    rows = [["kpi", "mean", "95% interval", "n"]]
    for name in KPI_NAMES:
        k = result.kpis[name]
        fmt = _fmt_money if name in MONEY_KPIS else _fmt_num
        interval = "" if k["ci_low"] is None else f"[{fmt(k['ci_low'])}, {fmt(k['ci_high'])}]"
        rows.append([name, "-" if k["mean"] is None else fmt(k["mean"]), interval, str(k["n"])])
    currency = result.scenario.policy.currency
    head = f"KPIs (mean over replications, 95% t-interval; money in {currency}, times in days)\n"
    return head + _table(rows, {1, 3})


def _fmt_money(x: float) -> str:
    return f"{x:,.2f}"


def _fmt_num(x: float) -> str:
    if float(x).is_integer() and abs(x) >= 1:
        return f"{int(x):,}"
    return f"{x:.4g}" if abs(x) < 1 else f"{x:,.2f}"


def summary(result: Result) -> str:
    """The whole printed summary of a run."""
    sc = result.scenario
    head = f"{sc.title}\n  policy {sc.policy.policy}, seed {result.seed}, {len(result.runs)} replication(s)"
    parts = [head]
    if sc.is_population:
        parts.append(kpi_table(result))
    else:
        parts.append(fund_flows(result))
        if result.events_mode == "full":
            parts.append(timeline(result))
    if sc.expectations and result.events_mode == "full":
        checks = result.check()
        bad = [c for c in checks if not c.ok]
        line = f"Expectations: {len(checks) - len(bad)} of {len(checks)} hold"
        parts.append(line + "".join("\n  " + c.describe().replace("\n", "\n  ") for c in bad))
    return "\n\n".join(parts)


def _size(n: int) -> str:
    """A file size in bytes, KiB, MiB or GiB, three significant figures."""
    size = float(n)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{n} B" if unit == "B" else f"{size:.3g} {unit}"
        size /= 1024
    return f"{size:.3g} GiB"


def table_sizes(written: dict[str, int]) -> str:
    """The files a run wrote and their sizes, one line: ``events.parquet 1.2 MiB, ...``."""
    if not written:
        return ""
    total = sum(written.values())
    files = ", ".join(f"{name} {_size(n)}" for name, n in written.items())
    return f"tables ({_size(total)}): {files}"
