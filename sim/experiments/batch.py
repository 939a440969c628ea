"""Running scenarios: one replication, many replications, and the Result users work with.

``run()`` is the Python API behind ``milestone-sim run``. Replications of population scenarios
are independent: each contract draws from its own stream seeded by (seed, replication, index).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from .. import __version__
from ..analysis.aging import aging_table
from ..analysis.expect import Checker, CheckResults
from ..analysis.tables import (
    KPI_NAMES,
    RunTables,
    flow_sums,
    summarize_kpis,
    write_json,
    write_table_as,
)
from ..core.units import format_duration
from ..core.yamlio import InputError, Problem
from ..inputs.scenario import Scenario, load_scenario
from .runner import run_replication

EVENT_MODES = ("full", "none")
#: ``events="auto"``: the full log unless a population expects more milestones than this
AUTO_FULL_LIMIT = 50_000


def resolve_events(scenario: Scenario, events: str) -> str:
    """The event mode a run uses: ``auto`` is full for scripted scenarios and for populations
    under 50,000 expected milestones, ``none`` above (the same rule for the CLI and the API)."""
    if events not in (*EVENT_MODES, "auto"):
        raise ValueError(f"events must be one of full, none, auto, got {events!r}")
    if events != "auto":
        return events
    if scenario.is_population and scenario.population.expected_milestones(scenario.until) > AUTO_FULL_LIMIT:
        return "none"
    return "full"


@dataclass
class Result:
    """Everything a run produced: tables as DataFrames, KPIs, expectations' outcomes."""

    scenario: Scenario
    runs: list[RunTables]
    seed: int
    events_mode: str = "full"  # what was recorded
    _checks: CheckResults | None = field(default=None, repr=False)
    #: the mode asked for: a scripted scenario is always recorded in full (it is small), and
    #: ``events="none"`` then means events.csv and ledger.csv are written with their header only
    events_requested: str = ""
    #: the files the last ``write`` wrote and their sizes in bytes (name -> bytes)
    written: dict[str, int] = field(default_factory=dict, repr=False)
    #: ``result.plot`` and ``write(report=True)``: the charts and the report live in the layer above
    #: this one (``sim.viz``), so they are plugged in from above. ``sim/__init__.py`` installs
    #: ``sim.viz.plots.Plotter`` and ``sim.viz.report.write_report`` (imported on first use), so
    #: nothing here imports upward.
    plotter: ClassVar[Callable[[Result], Any] | None] = None
    reporter: ClassVar[Callable[[Result, Path], Any] | None] = None

    def __post_init__(self) -> None:
        if not self.events_requested:
            self.events_requested = self.events_mode

    def __repr__(self) -> str:
        sc = self.scenario
        text = (
            f"<Result {sc.title!r}: policy {sc.policy.policy}, {len(self.runs)} replication(s), "
            f"seed {self.seed}, events {self.events_requested}"
        )
        if len(self.runs) == 1:
            flows = ", ".join(f"{f} {_money(v, self.digits)}" for f, v in self.runs[0].totals.items())
            text += f"; totals ({sc.policy.currency}): {flows}"
        if sc.expectations and self._can_check:
            checks = self.check()
            text += f"; expectations {sum(c.ok for c in checks)} of {len(checks)} hold"
        return text + ">"

    def _repr_html_(self) -> str:
        import html

        sc = self.scenario
        esc = html.escape
        out = [
            f"<div><b>{esc(sc.title)}</b><br>policy {esc(sc.policy.policy)}, {len(self.runs)} "
            f"replication(s), seed {self.seed}, events {esc(self.events_requested)}</div>"
        ]
        if len(self.runs) == 1:
            cells = "".join(
                f"<tr><td>{esc(f)}</td><td style='text-align:right'>{_money(v, self.digits)}</td></tr>"
                for f, v in self.runs[0].totals.items()
            )
            out.append(f"<table><tr><th>flow</th><th>{esc(sc.policy.currency)}</th></tr>{cells}</table>")
        if sc.is_population:
            rows = []
            for name in KPI_NAMES:
                k = self.kpis[name]
                mean = "-" if k["mean"] is None else f"{k['mean']:.6g}"
                ci = "" if k["ci_low"] is None else f"[{k['ci_low']:.6g}, {k['ci_high']:.6g}]"
                rows.append(f"<tr><td>{name}</td><td>{mean}</td><td>{ci}</td><td>{k['n']}</td></tr>")
            out.append(
                "<table><tr><th>kpi</th><th>mean</th><th>95% interval</th><th>n</th></tr>"
                + "".join(rows)
                + "</table>"
            )
        if sc.expectations and self._can_check:
            out.append(self.check()._repr_html_())
        return "\n".join(out)

    @property
    def _can_check(self) -> bool:
        return self.events_mode == "full"

    def _concat(self, name: str) -> pd.DataFrame:
        frames = []
        for r in self.runs:
            df = getattr(r, name)
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
    def contracts(self) -> pd.DataFrame:
        """One row per milestone as its contract was opened: contract, client, freelancer,
        milestone, amount, due (the CONTRACTS an audit of ``events`` reads)."""
        return self._concat("contracts")

    @cached_property
    def balances(self) -> pd.DataFrame:
        """Balance of every account kind over time (minor units)."""
        return self._concat("balances")

    @cached_property
    def aging(self) -> pd.DataFrame:
        """Escrow held at each day end by age of the money (``0-7`` ... ``90+`` days, minor units):
        exact from the postings when the event log was kept, else estimated from the milestones
        (see :mod:`sim.analysis.aging`)."""
        frames = []
        for r in self.runs:
            df = aging_table(r.milestones, r.end, r.ledger if self.events_mode == "full" else None)
            if len(self.runs) > 1:
                df = df.assign(replication=r.replication)
            frames.append(df)
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]

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

    def check(self) -> CheckResults:
        """Evaluate the scenario's expectations (on each replication; all must hold).

        A list of CheckResult that prints one line per expectation and renders as a table in
        Jupyter; ``.ok`` is True when every one holds.
        """
        if self._checks is None:
            out = CheckResults()
            for r in self.runs:
                if not self._can_check:
                    raise ValueError("expectations need the full event log (events='full')")
                checker = Checker(r.events, r.ledger, r.states, r.accounts, self.digits)
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
                sums = flow_sums(rows)
                per_contract.append(
                    {
                        "contract": spec.id,
                        "state": (first.contract_states or {})[spec.id],
                        **{
                            f: _money(int(sums.get(f, 0)), self.digits)
                            for f in ("funded", "released", "bonus", "refunded", "fees")
                        },
                        "escrow": _money((first.escrow_by_contract or {})[spec.id], self.digits),
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
            "events": self.events_requested,
            "currency": sc.policy.currency,
            "totals": {f: _money(v, self.digits) for f, v in self.runs[0].totals.items()}
            if len(self.runs) == 1
            else None,
            "contracts": per_contract,
            "kpis": self.kpis,
            "expectations": None
            if not sc.expectations or not self._can_check
            else {"total": len(self.check()), "failed": sum(not c.ok for c in self.check())},
            **({"policy_versions": self._decided_by_version()} if sc.policy.dated else {}),
        }

    def _decided_by_version(self) -> list[dict[str, Any]]:
        """A dated pack's versions and how many recorded events each decided (all replications;
        ``None`` when no events were kept)."""
        counts: dict[str, int] = {}
        kept = False
        for run in self.runs:
            if "policy_version" in run.events.columns:
                kept = True
                for name, n in run.events["policy_version"].value_counts(sort=False).items():
                    counts[str(name)] = counts.get(str(name), 0) + int(n)
        values = self.scenario.policy.values_by_version()
        return [
            {
                "from": v.shown,
                "events_decided": counts.get(v.shown, 0) if kept else None,
                "values": values[v.shown],
            }
            for v in self.scenario.policy.versions
        ]

    def explain(
        self,
        contract: str | None = None,
        milestone: str | None = None,
        at: float | str | None = None,
        *,
        everything: bool = False,
        replication: int = 0,
        quiet: bool = False,
    ) -> pd.DataFrame:
        """Why the money moved (FORMAT section 9): one row per money movement and per refused
        action of one replication (``everything``: per event), with the policy keys that decided
        it, their values, where each was written and the event that started its timer. Prints the
        chain in words unless ``quiet``; returns the DataFrame (its ``why`` column holds the words).

        ``milestone`` is ``C/M``; ``at`` keeps the events at one time (days, or ``19d``).
        """
        from ..analysis.explain import chains, explain_frame
        from ..core.units import parse_duration

        if self.events_mode != "full":
            raise ValueError("explain needs the event log: run with events='full'")
        runs = [r for r in self.runs if r.replication == replication]
        if not runs:
            raise ValueError(f"no replication {replication}: this result has {len(self.runs)}")
        when = parse_duration(at) if isinstance(at, str) else at
        frame = explain_frame(
            runs[0].events,
            runs[0].ledger,
            self.scenario.policy.values_by_version(),
            self.scenario.policy.currency,
            self.digits,
            contract=contract,
            milestone=milestone,
            at=when,
            everything=everything,
        )
        if not quiet:
            print(chains(frame), end="")
        return frame

    def write(
        self,
        out_dir: str | Path,
        *,
        force: bool = False,
        report: bool = False,
        source: str = "<out_dir>",
        table_format: str | None = None,
    ) -> Path:
        """Write events, ledger, contracts, milestones, balances and aging tables and summary.json
        (and with ``report``, the charts and report.html) into ``out_dir``, all or nothing.

        ``table_format`` is ``csv`` or ``parquet`` (default: :meth:`default_format`); the
        sizes of the files written are in :attr:`written` afterwards.

        The files go into a temporary sibling folder renamed into place at the end, so a failed
        write leaves the previous outputs whole. ``out_dir`` must be new, empty or a folder this
        tool made (it holds a ``.milestone-sim`` marker); ``force=True`` replaces another folder.
        The root, home and current folders and the folders above the current one are refused.
        ``source`` names the folder's origin in error messages.
        """
        from .outdir import staged

        out = Path(out_dir)
        with staged(out, force=force, source=source) as tmp:
            self.write_tables(tmp, table_format)
            if report:
                if Result.reporter is None:
                    raise RuntimeError("no report writer is installed: import sim, which installs sim.viz's")
                Result.reporter(self, tmp)
        return out

    def default_format(self) -> str:
        """How the tables are written unless told: Parquet for populations, CSV for scripted runs."""
        return "parquet" if self.scenario.is_population else "csv"

    def write_tables(self, folder: Path, table_format: str | None = None) -> dict[str, int]:
        """The tables and summary.json, written into ``folder`` as it is (no guard: see ``write``).

        Returns (and keeps in :attr:`written`) each file's name and size in bytes, in writing order.
        """
        d = self.digits
        fmt = table_format or self.default_format()
        header_only = self.events_requested == "none"
        # with events="none" these two hold their header only: the files of FORMAT.md always exist
        events, ledger, contracts = self.events, self.ledger, self.contracts
        if header_only:
            events, ledger, contracts = events.iloc[0:0], ledger.iloc[0:0], contracts.iloc[0:0]
        tables = (
            ("events", events),
            ("ledger", ledger),
            ("contracts", contracts),
            ("milestones", self.milestones),
            ("balances", self.balances),
            ("aging", self.aging),
        )
        written = {}
        for name, df in tables:
            path = write_table_as(df, folder, name, d, fmt)
            written[path.name] = path.stat().st_size
        write_json(self.summary(), folder / "summary.json")
        written["summary.json"] = (folder / "summary.json").stat().st_size
        self.written = written
        return written

    @property
    def plot(self) -> Any:
        """Charts of this result as matplotlib Figures: ``result.plot.balances()`` and friends."""
        if Result.plotter is None:
            raise RuntimeError("no plotter is installed: import sim, which installs sim.viz's")
        return Result.plotter(self)


def _money(cents: int, digits: int) -> str:
    from ..core.units import format_money

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
    events: str = "auto",
    progress: bool = False,
    workers: int | None = 1,
    allow: Sequence[str | Path] = (),
    policy: str | Path | None = None,
) -> Result:
    """Run a scenario file (or a loaded Scenario) and return its Result.

    ``policy`` runs it under another pack (a name or a path), as ``--set policy=...`` does.
    ``overrides`` are dotted policy keys (``{"review.window": "7d"}``); ``seed`` and
    ``replications`` replace the file's. ``events``: ``full`` keeps every event and posting,
    ``none`` only what KPIs need, ``auto`` (default) is full for scripted scenarios and for
    populations under 50,000 expected milestones. A scripted scenario is always recorded in full
    (it is small): with ``none`` only its events.csv and ledger.csv are written header-only.
    ``workers``: replications run in that many local processes (None: every CPU); the numbers
    are the same whatever the count, since each replication has its own random streams.
    ``allow``: more folders its files may be read from, besides the scenario's folder tree.
    """
    if events not in (*EVENT_MODES, "auto"):
        raise ValueError(f"events must be one of full, none, auto, got {events!r}")
    check_counts(replications, seed, workers)
    if overrides and "policy" in overrides:
        raise InputError(
            [
                Problem(
                    "<overrides>",
                    None,
                    None,
                    "overrides are policy keys; to run under another pack give policy=..., "
                    "e.g. sim.run(path, policy='fiverr')",
                    "policy",
                )
            ]
        )
    if isinstance(scenario, Scenario):
        sc = scenario
        if overrides:  # only the policy changes: keep any in-memory change to the scenario
            sc = sc.with_overrides(list(overrides.items()))
    else:
        sc = load_scenario(scenario, list((overrides or {}).items()), allow=allow)
    if policy is not None:  # the same scenario under another pack, the file's overrides kept
        sc = dataclasses.replace(sc, policy_ref=str(policy)).with_overrides([])
    seed = sc.seed if seed is None else seed
    reps = sc.replications if replications is None else replications
    check_counts(reps, seed, workers)
    requested = resolve_events(sc, events)
    events = requested if sc.is_population else "full"  # a scripted scenario is small: keep it all
    if reps > 1 and workers != 1:
        runs = _parallel_replications(sc, reps, seed, events, workers, progress)
        return Result(sc, runs, seed, events, events_requested=requested)
    runs = []
    days = int(sc.until or 0) if sc.is_population else 0
    bar = _progress(reps * days if days else reps, progress, "days" if days else "runs")
    for rep in range(reps):
        runs.append(run_replication(sc, rep, seed, events, bar if days else None))
        if bar is not None and not days:
            bar.update(1)
    if bar is not None:
        bar.close()
    return Result(sc, runs, seed, events, events_requested=requested)


def check_counts(
    replications: int | None,
    seed: int | None,
    workers: int | None = None,
    *,
    source: str = "<arguments>",
    dash: str = "",
) -> None:
    """Replications, seed and workers of a run, sweep or comparison, checked before anything runs.

    Problems are an InputError naming ``source`` (the CLI passes ``<command line>`` and ``--``).
    """
    from ..inputs.scenario import MAX_REPLICATIONS

    def bad_int(value: object, low: int, high: int) -> bool:
        return isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high

    problems = []
    if replications is not None and bad_int(replications, 1, MAX_REPLICATIONS):
        problems.append(f"{dash}replications must be from 1 to {MAX_REPLICATIONS:,}, got {replications!r}")
    if seed is not None and bad_int(seed, 0, 2**63 - 1):
        problems.append(f"{dash}seed must be a whole number from 0 to 2**63 - 1, got {seed!r}")
    if workers is not None and bad_int(workers, 1, MAX_WORKERS):
        problems.append(f"{dash}workers must be from 1 to {MAX_WORKERS}, got {workers!r}")
    if problems:
        raise InputError([Problem(source, None, None, m) for m in problems])


#: the most local worker processes a run may ask for
MAX_WORKERS = 256


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
