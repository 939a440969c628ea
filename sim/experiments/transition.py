"""A policy change on a date, played under each transition mode: ``milestone-sim transition``.

The population runs without the change (the baseline) and with it under ``new_contracts``,
``new_milestones`` and ``immediate`` (FORMAT section 8), every variant on the same seeds (common
random numbers: replication ``r`` of each variant sees the same contracts and the same people).
Contracts are split by when they started: *in flight* (offered before the change and not finished
before it) and *after* (offered on or after it). For each cohort and mode the report gives the money
and time-to-payment KPIs, their paired difference from the baseline with a 95% t-interval, and, over
calendar time, escrow, auto-releases and fees per week.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import __version__
from ..core.yamlio import InputError, Problem
from ..inputs.scenario import Scenario
from ..policy.model import Policy
from .batch import check_counts
from .runner import run_replication

MODES = ("new_contracts", "new_milestones", "immediate")
VARIANTS = ("baseline", *MODES)
COHORTS = ("in_flight", "after")
#: the KPIs of a cohort (money in major units, times in days)
COHORT_KPIS = (
    "contracts",
    "milestones_paid",
    "released_total",
    "refunded_total",
    "fees_total",
    "auto_approved_share",
    "time_to_payment_days_mean",
)


@dataclasses.dataclass
class TransitionResult:
    """What ``transition`` found: per-run cohort KPIs, their paired differences, weekly series."""

    scenario: Scenario
    on: dt.date
    change_t: float
    runs: pd.DataFrame  # replication, variant, cohort, one column per KPI
    table: pd.DataFrame  # cohort, mode, kpi, baseline, with_change, diff, ci_low, ci_high, significant, n
    weekly: pd.DataFrame  # variant, week (its Monday's date), escrow_avg, auto_releases, fees
    changes: dict[str, Any]
    seed: int
    replications: int

    def text(self) -> str:
        """The table as a person reads it: one block per cohort, a row per KPI, a column per mode."""
        lines = [
            f"{self.scenario.title}: the change on {self.on.isoformat()} (t = {self.change_t:g}d) under "
            f"{self.scenario.policy.policy}, {self.replications} replication(s), seed {self.seed}",
            "changed: " + (", ".join(f"{k} = {v}" for k, v in self.changes.items()) or "nothing"),
        ]
        for cohort, title in (
            ("in_flight", "contracts in flight at the change"),
            ("after", "contracts started after it"),
        ):
            part = self.table[self.table["cohort"] == cohort]
            lines.append("")
            lines.append(f"{title}: mean difference from the baseline [95% interval]")
            head = f"{'kpi':<27}{'baseline':>14}" + "".join(f"{m:>34}" for m in MODES)
            lines.append(head)
            for kpi in COHORT_KPIS:
                rows = part[part["kpi"] == kpi].set_index("mode")
                if rows.empty:
                    continue
                base = rows["baseline"].iloc[0]
                cells = []
                for mode in MODES:
                    r = rows.loc[mode]
                    mark = "*" if r["significant"] else " "
                    cells.append(
                        f"{_num(r['diff'])} [{_num(r['ci_low'])}, {_num(r['ci_high'])}]{mark or ' '}"
                    )
                lines.append(f"{kpi:<27}{_num(base):>14}" + "".join(f"{c:>34}" for c in cells))
        lines.append("")
        lines.append("* the 95% interval excludes 0; money in " + self.scenario.policy.currency)
        return "\n".join(lines) + "\n"

    def plot(self) -> Any:
        """Escrow, auto-releases and fees per week, each variant a line, the change a vertical line."""
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(3, 1, figsize=(10, 8), sharex=True)
        titles = (
            ("escrow_avg", f"escrow held (weekly mean, {self.scenario.policy.currency})"),
            ("auto_releases", "auto-releases per week"),
            ("fees", f"fees per week ({self.scenario.policy.currency})"),
        )
        for ax, (column, title) in zip(axes, titles, strict=True):
            for variant in VARIANTS:
                part = self.weekly[self.weekly["variant"] == variant]
                style = {"color": "black", "linewidth": 2} if variant == "baseline" else {"linewidth": 1.2}
                ax.plot(pd.to_datetime(part["week"]), part[column], label=variant.replace("_", " "), **style)
            ax.axvline(pd.Timestamp(self.on), color="#b22222", linestyle="--", linewidth=1)
            ax.set_title(title, fontsize=10, loc="left")
            ax.grid(alpha=0.3)
        axes[1].legend(fontsize=8, ncol=4, loc="upper left")
        axes[-1].set_xlabel(f"calendar week (the change on {self.on.isoformat()}: dashed line)")
        fig.suptitle(f"{self.scenario.title}: before and after the change", fontsize=11)
        fig.tight_layout()
        return fig

    def write(self, out: str | Path, charts: bool = True, force: bool = False) -> Path:
        """transition.csv, weekly.csv, runs.csv, summary.json and transition.png, all or nothing."""
        from ..analysis.tables import write_json
        from .outdir import staged

        with staged(Path(out), force=force, source="<command line --out>") as tmp:
            self.table.to_csv(tmp / "transition.csv", index=False, float_format="%.6g", lineterminator="\n")
            self.weekly.to_csv(tmp / "weekly.csv", index=False, float_format="%.6g", lineterminator="\n")
            self.runs.to_csv(tmp / "runs.csv", index=False, float_format="%.6g", lineterminator="\n")
            write_json(
                {
                    "tool": {"name": "milestone-sim", "version": __version__},
                    "scenario": self.scenario.path.as_posix(),
                    "start": self.scenario.start.isoformat() if self.scenario.start else None,
                    "on": self.on.isoformat(),
                    "change_t_days": self.change_t,
                    "policy": self.scenario.policy.resolved(),
                    "changes": self.changes,
                    "seed": self.seed,
                    "replications": self.replications,
                    "modes": list(MODES),
                },
                tmp / "summary.json",
            )
            if charts:
                import matplotlib.pyplot as plt

                fig = self.plot()
                fig.savefig(tmp / "transition.png", dpi=110)
                plt.close(fig)
        return Path(out)


def _num(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:,.2f}" if abs(x) < 1e6 else f"{x:,.0f}"


def transition(
    scenario: Scenario,
    new: Policy,
    on: dt.date,
    *,
    replications: int | None = None,
    seed: int | None = None,
    where: str = "<command line --on>",
) -> TransitionResult:
    """Play ``scenario`` without and with the change to ``new`` on ``on``, under each mode."""
    base = scenario.policy
    if scenario.start is None:
        raise InputError(
            [Problem(str(scenario.path), None, None, "a transition needs the scenario's start: date")]
        )
    change_t = float((on - scenario.start).days)
    end = scenario.until
    if change_t <= 0 or (end is not None and change_t >= end):
        last = "" if end is None else f" and before {(scenario.start + dt.timedelta(days=end)).isoformat()}"
        raise InputError(
            [
                Problem(
                    where,
                    None,
                    None,
                    f"--on {on.isoformat()} is outside the run: give a date after "
                    f"{scenario.start.isoformat()}{last}",
                )
            ]
        )
    try:
        policies = {"baseline": base, **{m: base.switched(new, on, m) for m in MODES}}
    except ValueError as exc:
        raise InputError([Problem("<command line --to>", None, None, str(exc))]) from None
    seed = scenario.seed if seed is None else seed
    reps = scenario.replications if replications is None else replications
    check_counts(reps, seed)
    rows: list[dict[str, Any]] = []
    weekly: dict[str, list[pd.DataFrame]] = {v: [] for v in VARIANTS}
    digits = base.digits
    for r in range(reps):
        for variant, policy in policies.items():
            tables = run_replication(dataclasses.replace(scenario, policy=policy), r, seed, events="full")
            offered = _offer_times(tables.events)
            for cohort, contracts in _cohorts(tables.milestones, offered, change_t).items():
                rows.append(
                    {
                        "replication": r,
                        "variant": variant,
                        "cohort": cohort,
                        **_kpis(tables.milestones, contracts, digits),
                    }
                )
            weekly[variant].append(_weekly(tables, scenario.start, digits))
    runs = pd.DataFrame(rows, columns=["replication", "variant", "cohort", *COHORT_KPIS])
    changes = policies["immediate"].versions[1].changes
    weeks = pd.concat(
        [
            pd.concat(frames).groupby("week", as_index=False).mean().assign(variant=v)
            for v, frames in weekly.items()
        ],
        ignore_index=True,
    )[["variant", "week", "escrow_avg", "auto_releases", "fees"]]
    return TransitionResult(scenario, on, change_t, runs, _paired(runs), weeks, changes, seed, reps)


def _offer_times(events: pd.DataFrame) -> pd.Series:
    sent = events[(events["action"] == "offer") & (events["outcome"] == "accepted")]
    return sent.groupby("contract")["time"].min()


def _cohorts(milestones: pd.DataFrame, offered: pd.Series, t: float) -> dict[str, list[str]]:
    """Contracts offered before ``t`` with a milestone still open at ``t`` (in flight), and those
    offered at or after it."""
    rows = milestones[milestones["state"] != "credit"]
    open_at = rows.groupby("contract")["closed_at"].apply(lambda c: bool(c.isna().any() or (c >= t).any()))
    before = offered[offered < t].index
    return {
        "in_flight": [c for c in before if bool(open_at.get(c, False))],
        "after": list(offered[offered >= t].index),
    }


def _kpis(milestones: pd.DataFrame, contracts: Sequence[str], digits: int) -> dict[str, float]:
    scale = 10.0**digits
    part = milestones[milestones["contract"].isin(set(contracts))]
    outcome = part["outcome"]
    closed = part[part["closed_at"].notna() & (part["state"] != "credit")]
    paid = part[outcome.isin(("approved", "auto_approved")) & part["first_submitted_at"].notna()]
    ttp = (paid["closed_at"] - paid["first_submitted_at"]).to_numpy(dtype=float)
    return {
        "contracts": float(len(contracts)),
        "milestones_paid": float(len(paid)),
        "released_total": float((part["released"].sum() + part["bonus"].sum()) / scale),
        "refunded_total": float(part["refunded"].sum() / scale),
        "fees_total": float(part["fees"].sum() / scale),
        "auto_approved_share": float((closed["outcome"] == "auto_approved").mean())
        if len(closed)
        else math.nan,
        "time_to_payment_days_mean": float(ttp.mean()) if len(ttp) else math.nan,
    }


def _weekly(tables: Any, start: dt.date, digits: int) -> pd.DataFrame:
    """Escrow (the mean of daily end-of-day balances), auto-releases and fees per calendar week."""
    scale = 10.0**digits
    bal = tables.balances
    last = float(max(bal["time"].max() if len(bal) else 0.0, 0.0))
    days = np.arange(0, math.floor(last) + 1)
    escrow = np.zeros(len(days))
    if len(bal):
        times = bal["time"].to_numpy(dtype=float)
        held = bal["escrow"].to_numpy(dtype=float)
        idx = np.searchsorted(times, days + 1, side="left") - 1
        escrow = np.where(idx >= 0, held[np.clip(idx, 0, None)], 0.0) / scale
    monday = start - dt.timedelta(days=start.weekday())
    week_of = lambda t: (monday + dt.timedelta(weeks=int((start - monday).days + t) // 7)).isoformat()  # noqa: E731
    frame = pd.DataFrame({"week": [week_of(d) for d in days], "escrow_avg": escrow})
    out = frame.groupby("week", as_index=False)["escrow_avg"].mean()
    ev = tables.events
    autos = ev[(ev["action"] == "auto_approve") & (ev["outcome"] == "accepted")]["time"]
    led = tables.ledger
    fees = led[led["flow"].isin(("fees",))]
    signed = np.where(fees["from_account"] == "platform", -1.0, 1.0) * fees["amount"].to_numpy(dtype=float)
    auto_counts = pd.Series([week_of(t) for t in autos], dtype=object).value_counts()
    fee_sums = (
        pd.Series(signed / scale, index=[week_of(t) for t in fees["time"]], dtype=float)
        .groupby(level=0)
        .sum()
    )
    out["auto_releases"] = [float(auto_counts.get(w, 0)) for w in out["week"]]
    out["fees"] = [float(fee_sums.get(w, 0.0)) for w in out["week"]]
    return out


def _paired(runs: pd.DataFrame) -> pd.DataFrame:
    """Per cohort, mode and KPI: the baseline's mean, the mode's, and their paired difference."""
    from scipy import stats

    out = []
    for cohort in COHORTS:
        base = runs[(runs["variant"] == "baseline") & (runs["cohort"] == cohort)].set_index("replication")
        for mode in MODES:
            other = runs[(runs["variant"] == mode) & (runs["cohort"] == cohort)].set_index("replication")
            for kpi in COHORT_KPIS:
                pair = pd.DataFrame({"a": base[kpi], "b": other[kpi]}).dropna()
                d = (pair["b"] - pair["a"]).to_numpy(dtype=float)
                n = len(d)
                mean = float(d.mean()) if n else math.nan
                low = high = mean
                if n >= 2 and float(d.std(ddof=1)) > 0:
                    half = float(stats.t.ppf(0.975, n - 1)) * float(d.std(ddof=1)) / math.sqrt(n)
                    low, high = mean - half, mean + half
                elif n < 2:
                    low = high = math.nan
                out.append(
                    {
                        "cohort": cohort,
                        "mode": mode,
                        "kpi": kpi,
                        "baseline": float(pair["a"].mean()) if n else math.nan,
                        "with_change": float(pair["b"].mean()) if n else math.nan,
                        "diff": mean,
                        "ci_low": low,
                        "ci_high": high,
                        "significant": bool(n >= 2 and (low > 0 or high < 0)),
                        "n": n,
                    }
                )
    return pd.DataFrame(out)
