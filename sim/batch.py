"""Running scenarios: one replication, many replications, and the Result users work with.

``run()`` is the Python API behind ``milestone-sim run``. Replications of population scenarios
are independent: each contract draws from its own stream seeded by (seed, replication, index).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from . import __version__
from .expect import Checker, CheckResult
from .results import (
    KPI_NAMES,
    RunTables,
    summarize_kpis,
    write_csv,
    write_json,
)
from .runner import run_replication
from .scenario import Scenario, load_scenario
from .units import format_duration

EVENT_MODES = ("full", "none")


@dataclass
class Result:
    """Everything a run produced: tables as DataFrames, KPIs, expectations' outcomes."""

    scenario: Scenario
    runs: list[RunTables]
    seed: int
    events_mode: str = "full"
    _checks: list[CheckResult] | None = field(default=None, repr=False)

    def _concat(self, name: str) -> pd.DataFrame:
        frames = []
        for r in self.runs:
            df = getattr(r, name) if name != "states" else r.extra["states"]
            if len(self.runs) > 1:
                df = df.assign(replication=r.replication)
            frames.append(df)
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]

    @cached_property
    def events(self) -> pd.DataFrame:
        """time, contract, milestone, actor, action, outcome, rule, amount, message, state, ..."""
        return self._concat("events")

    @cached_property
    def ledger(self) -> pd.DataFrame:
        """time, from_account, to_account, flow, amount (minor units), contract, milestone."""
        return self._concat("ledger")

    @cached_property
    def milestones(self) -> pd.DataFrame:
        """One row per milestone: amounts, times, outcome, released, refunded, change requests."""
        return self._concat("milestones")

    @cached_property
    def balances(self) -> pd.DataFrame:
        """Balance of every account kind over time (minor units)."""
        return self._concat("balances")

    @cached_property
    def states(self) -> pd.DataFrame:
        """Every state change of contracts (milestone '') and milestones."""
        return self._concat("states")

    @cached_property
    def kpis(self) -> dict[str, dict[str, Any]]:
        """Each KPI as {mean, ci_low, ci_high, n} over replications."""
        return summarize_kpis([r.kpis for r in self.runs])

    @property
    def digits(self) -> int:
        return self.scenario.policy.digits

    @property
    def kpi_table(self) -> pd.DataFrame:
        """The KPIs as a DataFrame, one row per KPI."""
        return pd.DataFrame(
            [{"kpi": k, **self.kpis[k]} for k in KPI_NAMES],
            columns=["kpi", "mean", "ci_low", "ci_high", "n"],
        ).set_index("kpi")

    @property
    def totals(self) -> dict[str, int]:
        """Cumulative flows of the first replication, in minor units."""
        return dict(self.runs[0].totals)

    def check(self) -> list[CheckResult]:
        """Evaluate the scenario's expectations (on each replication; all must hold)."""
        if self._checks is None:
            out = []
            for r in self.runs:
                if self.events_mode != "full":
                    raise ValueError("expectations need the full event log (events='full')")
                checker = Checker(r.events, r.ledger, r.extra["states"], r.extra["accounts"], self.digits)
                out.extend(checker.check(e) for e in self.scenario.expectations)
            self._checks = out
        return self._checks

    @property
    def ok(self) -> bool:
        """True when every expectation holds."""
        return all(c.ok for c in self.check())

    def summary(self) -> dict[str, Any]:
        """What summary.json holds: the resolved inputs and the outcomes, for reproduction."""
        sc = self.scenario
        per_contract = []
        first = self.runs[0]
        if not sc.is_population:
            led = first.ledger
            for spec in sc.contracts:
                rows = led[led["contract"] == spec.id]
                sums = rows.groupby("flow")["amount"].sum()
                per_contract.append(
                    {
                        "contract": spec.id,
                        "state": first.extra["contract_states"][spec.id],
                        **{
                            f: _money(int(sums.get(f, 0)), self.digits)
                            for f in ("funded", "released", "bonus", "refunded", "fees")
                        },
                        "escrow": _money(first.extra["escrow_by_contract"][spec.id], self.digits),
                    }
                )
        return {
            "tool": {"name": "milestone-sim", "version": __version__},
            "scenario": {
                "file": sc.path.as_posix(),
                "title": sc.title,
                "start": sc.start.isoformat() if sc.start else None,
                "until": None if sc.until is None else format_duration(sc.until),
                "definition": _jsonable(sc.raw),
            },
            "policy": sc.policy.resolved(),
            "policy_overrides": {k: _jsonable(v) for k, v in sc.overrides},
            "seed": self.seed,
            "replications": len(self.runs),
            "events": self.events_mode,
            "currency": sc.policy.currency,
            "totals": {f: _money(v, self.digits) for f, v in self.runs[0].totals.items()}
            if len(self.runs) == 1
            else None,
            "contracts": per_contract,
            "kpis": self.kpis,
            "expectations": None
            if not sc.expectations or self.events_mode != "full"
            else {"total": len(self.check()), "failed": sum(not c.ok for c in self.check())},
        }

    def write(self, out_dir: str | Path) -> Path:
        """Write events.csv, ledger.csv, milestones.csv, balances.csv and summary.json."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        d = self.digits
        # with events="none" these two hold their header only: the files of FORMAT.md always exist
        write_csv(self.events, out / "events.csv", d)
        write_csv(self.ledger, out / "ledger.csv", d)
        write_csv(self.milestones, out / "milestones.csv", d)
        write_csv(self.balances, out / "balances.csv", d)
        write_json(self.summary(), out / "summary.json")
        return out

    @property
    def plot(self) -> Any:
        """Charts of this result as matplotlib Figures: ``result.plot.balances()`` and friends."""
        from .plots import Plotter

        return Plotter(self)


def _money(cents: int, digits: int) -> str:
    from .units import format_money

    return format_money(cents, digits)


def _jsonable(value: Any) -> Any:
    import datetime as dt

    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value


def run(
    scenario: str | Path | Scenario,
    *,
    overrides: dict[str, Any] | None = None,
    seed: int | None = None,
    replications: int | None = None,
    events: str = "full",
    progress: bool = False,
    workers: int | None = 1,
) -> Result:
    """Run a scenario file (or a loaded Scenario) and return its Result.

    ``overrides`` are dotted policy keys (``{"review.window": "7d"}``); ``seed`` and
    ``replications`` replace the file's; ``events="none"`` keeps only what KPIs need.
    ``workers``: replications run in that many local processes (None: every CPU); the numbers
    are the same whatever the count, since each replication has its own random streams.
    """
    if events not in EVENT_MODES:
        raise ValueError(f"events must be one of {EVENT_MODES}, got {events!r}")
    if isinstance(scenario, Scenario):
        sc = scenario
        if overrides:  # only the policy changes: keep any in-memory change to the scenario
            sc = sc.with_overrides(list(overrides.items()))
    else:
        sc = load_scenario(scenario, list((overrides or {}).items()))
    seed = sc.seed if seed is None else seed
    reps = sc.replications if replications is None else replications
    if reps > 1 and workers != 1:
        return Result(sc, _parallel_replications(sc, reps, seed, events, workers, progress), seed, events)
    runs = []
    days = int(sc.until or 0) if sc.is_population else 0
    bar = _progress(reps * days if days else reps, progress, "days" if days else "runs")
    for rep in range(reps):
        runs.append(run_replication(sc, rep, seed, events, bar if days else None))
        if bar is not None and not days:
            bar.update(1)
    if bar is not None:
        bar.close()
    return Result(sc, runs, seed, events)


def _one_replication(args: tuple[Scenario, int, int, str]) -> RunTables:
    """Worker entry point: one replication (module level, so worker processes can import it)."""
    return run_replication(*args)


def _parallel_replications(
    sc: Scenario, reps: int, seed: int, events: str, workers: int | None, progress: bool
) -> list[RunTables]:
    """Replications in local worker processes, returned in replication order."""
    from concurrent.futures.process import BrokenProcessPool

    from .executors import BROKEN_HINT, LocalProcesses

    bar = _progress(reps, progress, "runs")
    with LocalProcesses(min(workers or reps, reps)) as backend:
        futures = [backend.submit(_one_replication, (sc, rep, seed, events)) for rep in range(reps)]
        runs = []
        for fut in futures:
            try:
                runs.append(fut.result())
            except BrokenProcessPool as exc:
                raise BrokenProcessPool(f"{exc}\n{BROKEN_HINT}") from None
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return runs


def _progress(total: int, enabled: bool, unit: str) -> Any:
    """A tqdm bar on a terminal that shows itself only after two seconds; None elsewhere."""
    if not enabled or total < 2 or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="simulating", unit=unit, file=sys.stderr, delay=2.0, leave=False)
