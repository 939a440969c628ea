"""Results as DataFrames, the KPIs of FORMAT.md section 6, and the writers of the output folder.

Money columns hold integer minor units (int64) in every DataFrame, so sums stay exact; CSV files
show them as plain decimals ("500.00") and KPIs report them in major units.

The milestones table adds up to the ledger: each of its money columns ``funded``, ``released``,
``bonus``, ``refunded`` and ``fees`` sums, over all rows, to that flow's total (``totals``), to
the cent. A row is a milestone (deleted ones included, with state and outcome ``deleted``); its
flows are the postings that name it. Postings that name no milestone are contract credit: the
credit refunded to the client (a contract-level refund, an offer refund) or released to the
freelancer by a dispute decision. They go in one extra row per contract, milestone ``(credit)``,
state and outcome ``credit``, amount 0, present only when such money moved. The KPI
``milestones`` counts neither deleted nor ``(credit)`` rows.

Times in CSV files are written with 9 decimals of a day and no trailing zeros: the engine's grid
is 1 ms (1/86,400,000 d), and 9 decimals (86.4 microseconds) are enough for every written time to
read back to its exact tick.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core.units import format_duration, format_money
from ..engine.simulation import EVENT_COLUMNS, Simulation
from ..machine.contract import TERMINAL
from ..money.ledger import FEE_FLOWS, KINDS
from .aging import BUCKET_COLUMNS, held_days


def flow_sums(ledger: pd.DataFrame) -> pd.Series:
    """Postings summed by flow, as the flow totals count them: a procedure's ``stage_fee`` is a fee,
    and a fee the platform returns (a posting from ``platform``) lowers the fees."""
    if ledger.empty:
        return pd.Series(dtype="int64")
    flow = ledger["flow"].where(~ledger["flow"].isin(FEE_FLOWS), "fees")
    returned = (flow == "fees") & (ledger["from_account"] == "platform")
    amount = ledger["amount"].where(~returned, -ledger["amount"])
    return amount.groupby(flow).sum()


#: ``event``: the row of events.csv (0 = its first data row) whose decision made the posting
LEDGER_COLUMNS = ("time", "from_account", "to_account", "flow", "amount", "contract", "milestone", "event")
MILESTONE_COLUMNS = (
    "contract",
    "milestone",
    "amount",
    "due",
    "state",
    "funded_at",
    "first_submitted_at",
    "closed_at",
    "held_days",
    "outcome",
    "funded",
    "released",
    "refunded",
    "bonus",
    "fees",
    "change_requests",
    "submissions",
    "late",
)
#: the kinds in time order, freelancers' total, and money held for clients last (it came later)
BALANCE_COLUMNS = ("time", *KINDS[:5], "freelancer", "client_balance")
MONEY_COLUMNS = {
    "amount",
    "funded",
    "released",
    "refunded",
    "bonus",
    "fees",
    *KINDS,
    "freelancer",
    *BUCKET_COLUMNS,
}
#: columns of days written as times (9 decimals, no trailing zeros)
TIME_COLUMNS = ("time", "due", "funded_at", "first_submitted_at", "closed_at", "held_days")
KPI_NAMES = (
    "contracts",
    "milestones",
    "milestones_closed",
    "funded_total",
    "released_total",
    "bonus_total",
    "refunded_total",
    "fees_total",
    "approved_share",
    "auto_approved_share",
    "refunded_share",
    "disputed_share",
    "time_to_payment_days_mean",
    "time_to_payment_days_p50",
    "time_to_payment_days_p90",
    "escrow_float_avg",
    "escrow_float_max",
    "dispute_wait_days_mean",
    "time_to_available_days_mean",
    "time_to_available_days_p50",
    "time_to_available_days_p90",
    "escrow_age_p50_days",
    "escrow_age_p90_days",
)
MONEY_KPIS = {
    "funded_total",
    "released_total",
    "bonus_total",
    "refunded_total",
    "fees_total",
    "escrow_float_avg",
    "escrow_float_max",
}


@dataclass
class RunTables:
    """The tables and aggregates of one replication."""

    replication: int
    events: pd.DataFrame
    ledger: pd.DataFrame
    milestones: pd.DataFrame
    balances: pd.DataFrame
    totals: dict[str, int]
    kpis: dict[str, float]
    end: float
    #: every state change: time, contract, milestone ("" for the contract), state
    states: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=STATE_COLUMNS))
    #: every account the run opened, sorted
    accounts: list[str] = field(default_factory=list)
    #: scripted runs: each contract's final state and escrow (None for populations)
    contract_states: dict[str, str] | None = None
    escrow_by_contract: dict[str, int] | None = None
    #: the dispute team's queue length over time, when there was a queue
    dispute_queue: pd.DataFrame | None = None
    #: every contract's milestones as opened (``contracts.csv``, the CONTRACTS of an audit)
    contracts: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=CONTRACT_COLUMNS))

    @property
    def extra(self) -> dict[str, Any]:
        """The typed fields above as the dict earlier versions had (read-only; kept for notebooks)."""
        out: dict[str, Any] = {"states": self.states, "accounts": self.accounts}
        if self.contract_states is not None:
            out["contract_states"] = self.contract_states
        if self.escrow_by_contract is not None:
            out["escrow_by_contract"] = self.escrow_by_contract
        if self.dispute_queue is not None:
            out["dispute_queue"] = self.dispute_queue
        return out


STATE_COLUMNS = ("time", "contract", "milestone", "state")
#: contracts.csv: one row per milestone as the contract was opened (FORMAT section 10's CONTRACTS)
CONTRACT_COLUMNS = ("contract", "client", "freelancer", "milestone", "amount", "due")


def _frame(rows: list[tuple], columns: tuple[str, ...]) -> pd.DataFrame:
    df = pd.DataFrame.from_records(rows, columns=list(columns))
    for col in columns:
        if col in MONEY_COLUMNS:
            df[col] = df[col].astype("int64")
        elif col == "time":
            df[col] = df[col].astype("float64")
        elif col == "event":
            df[col] = df[col].astype("int64")
    return df


def _explained(sim: Simulation) -> list[tuple]:
    """Event rows with their decision spelt out: ``policy_keys`` and ``source`` joined with ``;``,
    and the ``cause`` of an automatic event as ``submit at 5d`` (FORMAT section 9)."""
    if sim.versions:
        return _explained_dated(sim)
    policy = sim.policy
    seen: dict[tuple[str, ...], tuple[str, str]] = {}
    rows = []
    for row in sim.rec.events:
        keys, cause = row[-3], row[-2]
        text = seen.get(keys)
        if text is None:
            named, sources = policy.sourced(keys)
            text = (";".join(named), ";".join(sources))
            seen[keys] = text
        rows.append(
            (*row[:-3], *text, f"{cause[0]} at {format_duration(cause[1])}" if cause else "", row[-1])
        )
    return rows


#: the last part of the keys that give a timer its length: an automatic event of a dated pack
#: cites them from the version in force when its timer started (it kept that length)
TIMER_LENGTHS = frozenset(
    {"window", "response_window", "after_release", "after_refund", "expires_after", "starts_after"}
    | {"notices", "answer_within", "after", "by"}
)


def _explained_dated(sim: Simulation) -> list[tuple]:
    """As :func:`_explained`, each key's source read from the version that decided, which the
    last column names by its first date (``policy_version``)."""
    versions = sim.versions
    seen: dict[tuple[int, int, tuple[str, ...]], tuple[str, str, str]] = {}
    rows = []
    for row, i in zip(sim.rec.events, sim.rec.versions, strict=True):
        keys, cause = row[-3], row[-2]
        started = cause[2] if cause and len(cause) > 2 else i  # a timer keeps its starting length
        text = seen.get((i, started, keys))
        if text is None:
            named, sources = versions[i].policy.sourced(keys)
            if started != i:
                lengths = versions[started].policy.sourced(keys)
                sources = [
                    b if k.rpartition(".")[2] in TIMER_LENGTHS else a
                    for k, a, b in zip(named, sources, lengths[1], strict=True)
                ]
            text = (";".join(named), ";".join(sources), versions[i].shown)
            seen[(i, started, keys)] = text
        shown = f"{cause[0]} at {format_duration(cause[1])}" if cause else ""
        rows.append((*row[:-3], text[0], text[1], shown, row[-1], text[2]))
    return rows


def tables_from(sim: Simulation, replication: int, end: float, digits: int = 2) -> RunTables:
    """Collect one finished simulation into DataFrames and per-replication KPIs."""
    columns = (*EVENT_COLUMNS, "policy_version") if sim.versions else EVENT_COLUMNS
    events = _frame(_explained(sim), columns)
    ledger = _frame(
        [
            (p.time, p.from_account, p.to_account, p.flow, p.amount, p.contract, p.milestone, e)
            for p, e in zip(sim.ledger.postings, sim.rec.posting_events, strict=True)
        ],
        LEDGER_COLUMNS,
    )
    milestones = milestone_frame(sim, end)
    bal_rows = [(*row[:6], row[3] + row[4], row[6]) for row in sim.rec.balances]
    balances = _frame(bal_rows, BALANCE_COLUMNS)
    totals = dict(sim.ledger.totals)
    kpis = compute_kpis(sim, milestones, totals, end, digits)
    tables = RunTables(replication, events, ledger, milestones, balances, totals, kpis, end)
    contracts = pd.DataFrame.from_records(sim.rec.contracts, columns=list(CONTRACT_COLUMNS))
    tables.contracts = contracts.astype({"amount": "int64", "due": "float64"})
    return tables


def milestone_frame(sim: Simulation, end: float | None = None) -> pd.DataFrame:
    """One row per milestone, in contract arrival order: retired contracts' and live ones'.

    ``held_days`` counts a milestone still holding escrow up to ``end``, the run's end (by default
    the horizon, else the time now)."""
    from ..engine.simulation import ROW_OUTCOMES, ROW_STATES, RetiredMilestones

    live = RetiredMilestones()
    for cid, c in sim.contracts.items():
        live.add(sim.index[cid], c)
    parts = []
    for store in (sim.retired, live):
        data: dict[str, Any] = {"contract": store.contract, "milestone": store.milestone}
        for name, arr in store.cols.items():
            data[name] = (
                np.frombuffer(arr, dtype=arr.typecode) if len(arr) else np.array([], dtype=arr.typecode)
            )
        parts.append(pd.DataFrame(data))
    df = pd.concat(parts, ignore_index=True) if len(sim.retired) else parts[1]
    df = df.sort_values("contract_index", kind="stable", ignore_index=True)
    df["state"] = pd.Categorical.from_codes(df["state"].astype("int8"), categories=list(ROW_STATES))
    df["outcome"] = pd.Categorical.from_codes(df["outcome"].astype("int8"), categories=list(ROW_OUTCOMES))
    df["state"] = df["state"].astype(str)
    df["outcome"] = df["outcome"].astype(str)
    df["late"] = df["late"].astype(bool)
    for col in RetiredMilestones.INT:  # money and counts: int64 whatever the array type
        df[col] = df[col].astype("int64")
    if end is None:
        end = sim.until if sim.until is not None else sim.env.now
    df["held_days"] = held_days(df, end)
    return df[list(MILESTONE_COLUMNS)]


def compute_kpis(
    sim: Simulation, milestones: pd.DataFrame, totals: dict[str, int], end: float, digits: int
) -> dict[str, float]:
    """The KPIs of one replication (money in major units)."""
    scale = 10.0**digits
    outcome = milestones["outcome"]
    closed = int(milestones["state"].isin(TERMINAL).sum())
    paid = milestones[outcome.isin(("approved", "auto_approved")) & milestones["first_submitted_at"].notna()]
    ttp = (paid["closed_at"] - paid["first_submitted_at"]).to_numpy(dtype=float)
    tta = ttp + _hold_days(sim, paid["closed_at"].to_numpy(dtype=float))
    horizon = sim.until if sim.until is not None else end
    held = milestones["held_days"].dropna().to_numpy(dtype=float)  # funded milestones

    def share(mask: pd.Series) -> float:
        return float(mask.sum()) / closed if closed else math.nan

    return {
        "contracts": float(len(sim.order)),
        "milestones": float((~milestones["state"].isin(("deleted", "credit"))).sum()),
        "milestones_closed": float(closed),
        "funded_total": totals["funded"] / scale,
        "released_total": totals["released"] / scale,
        "bonus_total": totals["bonus"] / scale,
        "refunded_total": totals["refunded"] / scale,
        "fees_total": totals["fees"] / scale,
        "approved_share": share(outcome == "approved"),
        "auto_approved_share": share(outcome == "auto_approved"),
        "refunded_share": share(outcome.isin(("refunded", "auto_refunded"))),
        "disputed_share": share(outcome == "resolved"),
        "time_to_payment_days_mean": float(ttp.mean()) if len(ttp) else math.nan,
        "time_to_payment_days_p50": float(np.percentile(ttp, 50)) if len(ttp) else math.nan,
        "time_to_payment_days_p90": float(np.percentile(ttp, 90)) if len(ttp) else math.nan,
        "escrow_float_avg": (sim.rec.escrow_area / horizon / scale) if horizon > 0 else 0.0,
        "escrow_float_max": sim.rec.escrow_max / scale,
        "dispute_wait_days_mean": float(np.mean(sim.dispute_waits)) if sim.dispute_waits else math.nan,
        "time_to_available_days_mean": float(tta.mean()) if len(tta) else math.nan,
        "time_to_available_days_p50": float(np.percentile(tta, 50)) if len(tta) else math.nan,
        "time_to_available_days_p90": float(np.percentile(tta, 90)) if len(tta) else math.nan,
        "escrow_age_p50_days": float(np.percentile(held, 50)) if len(held) else math.nan,
        "escrow_age_p90_days": float(np.percentile(held, 90)) if len(held) else math.nan,
    }


def _hold_days(sim: Simulation, released_at: np.ndarray) -> np.ndarray | float:
    """The clearance each release waits before the freelancer may withdraw it (``hold.after_release``,
    in days from the release; business days counted on the scenario's calendar)."""
    hold = sim.policy.hold.after_release
    if isinstance(hold, (int, float)):
        return float(hold)
    return np.array([sim.clock.days(t, hold) for t in released_at], dtype=float)


def summarize_kpis(per_rep: list[dict[str, float]]) -> dict[str, dict[str, float | int | None]]:
    """Mean and 95% t-interval of each KPI across replications (interval null when n = 1)."""
    from scipy import stats

    out: dict[str, dict[str, float | int | None]] = {}
    for name in KPI_NAMES:
        values = np.array([r[name] for r in per_rep if not math.isnan(r[name])], dtype=float)
        n = len(values)
        if n == 0:
            out[name] = {"mean": None, "ci_low": None, "ci_high": None, "n": 0}
            continue
        mean = float(values.mean())
        if n == 1:
            out[name] = {"mean": _clean(mean), "ci_low": None, "ci_high": None, "n": 1}
            continue
        half = float(stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / math.sqrt(n))
        high = mean + half
        if name.endswith("_share"):
            high = min(high, 1.0)
        out[name] = {  # every KPI is >= 0 (shares <= 1): the interval is clipped to that range
            "mean": _clean(mean),
            "ci_low": _clean(max(mean - half, 0.0)),
            "ci_high": _clean(high),
            "n": n,
        }
    return out


def _clean(x: float) -> float:
    """Round away float noise for reports (12 significant digits)."""
    return float(f"{x:.12g}")


# ------------------------------------------------------------------------------ exports


def _fmt_time(t: float) -> str:
    """A time in days with 9 decimals and no trailing zeros: exact on the 1 ms grid."""
    if t is None or (isinstance(t, float) and math.isnan(t)):
        return ""
    text = f"{t:.9f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def export_frame(df: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """A copy fit for CSV: money as decimal strings, times without float noise."""
    out = df.copy()
    for col in out.columns:
        if col in MONEY_COLUMNS and pd.api.types.is_integer_dtype(out[col]):  # not contracts' freelancer ids
            out[col] = [format_money(int(v), digits) for v in out[col]]
        elif col in TIME_COLUMNS:
            out[col] = [_fmt_time(v) for v in out[col]]
    return out


def write_csv(df: pd.DataFrame, path: Path, digits: int = 2) -> None:
    """Write a table as CSV with exact money and clean times (LF line endings)."""
    export_frame(df, digits).to_csv(path, index=False, lineterminator="\n")


#: how a run's tables are written (``--format``): csv (the default for scripted runs) or parquet
#: (the default for populations: no text formatting, a tenth of the size)
TABLE_FORMATS = ("csv", "parquet")


def _decimal_money(values: pd.Series, digits: int) -> Any:
    """Integer minor units as an exact Parquet DECIMAL(38, digits) column: 1250 cents is 12.50.

    The decimal's unscaled 128-bit integer is the count of minor units, so the column is built
    from the integers' bytes (low word, then the sign word) with no arithmetic and no rounding.
    """
    import pyarrow as pa

    if values.isna().any():  # a nullable integer column with gaps: exact through Decimal
        from decimal import Decimal

        return pa.array(
            [None if pd.isna(v) else Decimal(int(v)).scaleb(-digits) for v in values],
            type=pa.decimal128(38, digits),
        )
    v = values.to_numpy(dtype=np.int64)
    words = np.empty((len(v), 2), dtype="<i8")
    words[:, 0] = v
    words[:, 1] = v >> 63  # sign extension of the high word
    return pa.Array.from_buffers(pa.decimal128(38, digits), len(v), [None, pa.py_buffer(words.tobytes())])


def write_parquet(df: pd.DataFrame, path: Path, digits: int = 2) -> None:
    """Write a table as Parquet: money exact as DECIMAL(38, digits), times as float days.

    Deterministic: the same table gives the same bytes (no timestamps in the file's metadata).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns, names = [], []
    for col in df.columns:
        series = df[col]
        if col in MONEY_COLUMNS and pd.api.types.is_integer_dtype(series):
            columns.append(_decimal_money(series, digits))
        else:
            columns.append(pa.Array.from_pandas(series))
        names.append(str(col))
    pq.write_table(pa.table(columns, names=names), path, compression="zstd")


def write_table_as(df: pd.DataFrame, folder: Path, name: str, digits: int, fmt: str = "csv") -> Path:
    """Write table ``name`` into ``folder`` as ``name.csv`` or ``name.parquet``; its path."""
    if fmt not in TABLE_FORMATS:
        raise ValueError(f"unknown table format {fmt!r}: one of {', '.join(TABLE_FORMATS)}")
    path = folder / f"{name}.{fmt}"
    (write_parquet if fmt == "parquet" else write_csv)(df, path, digits)
    return path


def write_json(data: Any, path: Path) -> None:
    """Write JSON deterministically (sorted keys, fixed separators, trailing newline)."""
    path.write_text(json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n", encoding="utf-8")
