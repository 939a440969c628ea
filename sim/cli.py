"""The ``milestone-sim`` command: run, test, validate, policies (and sweep, compare).

Exit codes: 0 success; 1 expectations failed; 2 invalid input (one message per problem, with
file:line:column, never a traceback); 3 internal error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .yamlio import InputError, Problem

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_INTERNAL = 0, 1, 2, 3


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="milestone-sim",
        description="Simulate escrow milestone policies: where the money goes, and when.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("run", help="play a scenario and write its tables into --out")
    r.add_argument("scenario", help="scenario YAML file")
    r.add_argument("--out", help="output folder (default out/<scenario file stem>/)")
    r.add_argument("--seed", type=int, help="random seed (default: the file's seed, or 0)")
    r.add_argument("--replications", type=int, help="number of replications (default: the file's)")
    r.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="policy override, e.g. review.window=7d",
    )
    r.add_argument(
        "--events",
        choices=("full", "none", "auto"),
        default="auto",
        help="keep the full event log (full), or only what KPIs need (none); "
        "auto: full for scripted scenarios and populations under 50,000 expected milestones",
    )
    r.add_argument(
        "--workers",
        type=int,
        help="local processes for the replications (default: every CPU when there are several "
        "replications of a population, else 1); the numbers do not depend on it",
    )
    r.add_argument("--no-charts", action="store_true", help="do not draw charts or the HTML report")
    r.add_argument("--quiet", action="store_true", help="print only where the outputs went")

    t = sub.add_parser("test", help="check the expectations of scenario files")
    t.add_argument("paths", nargs="+", help="scenario files or folders (searched recursively)")

    v = sub.add_parser("validate", help="check policy and scenario files without running them")
    v.add_argument("paths", nargs="+", help="policy or scenario files or folders")

    sub.add_parser("policies", help="list the built-in policy packs")
    _sweep_parsers(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "test":
            return _cmd_test(args.paths)
        if args.command == "validate":
            return _cmd_validate(args.paths)
        if args.command == "policies":
            return _cmd_policies()
        if args.command == "sweep":
            return _cmd_sweep(args)
        if args.command == "compare":
            return _cmd_compare(args)
    except InputError as exc:
        _print_problems(exc.problems)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an internal error: a bug, not bad input
        import traceback

        traceback.print_exc(file=sys.stderr)
        print(f"milestone-sim: internal error: {exc}", file=sys.stderr)
        return EXIT_INTERNAL
    return EXIT_INPUT


def _print_problems(problems: list[Problem]) -> None:
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)


def _overrides(items: list[str]) -> list[tuple[str, Any]]:
    from .policy import parse_set_option

    return [parse_set_option(text) for text in items]


def _cmd_run(args: argparse.Namespace) -> int:
    from . import report_text
    from .batch import run
    from .scenario import load_scenario

    scenario = load_scenario(args.scenario, _overrides(args.set))
    if args.replications is not None and args.replications < 1:
        raise InputError([Problem("<command line>", None, None, "--replications must be at least 1")])
    events = args.events
    if events == "auto":
        events = "full"
        if scenario.is_population and scenario.population.expected_milestones(scenario.until) > 50_000:
            events = "none"
    if args.workers is not None and args.workers < 1:
        raise InputError([Problem("<command line>", None, None, "--workers must be at least 1")])
    workers = args.workers if args.workers is not None else (None if scenario.is_population else 1)
    result = run(
        scenario,
        seed=args.seed,
        replications=args.replications,
        events=events,
        progress=not args.quiet,
        workers=workers,
    )
    out = Path(args.out) if args.out else Path("out") / Path(args.scenario).stem
    result.write(out)
    if not args.no_charts:
        from .report import write_report

        write_report(result, out)
    if not args.quiet:
        print(report_text.summary(result))
    print(f"outputs written to {out}/")
    return EXIT_OK


def scenario_files(paths: Sequence[str]) -> list[Path]:
    """Scenario and policy YAML files under the given paths, sorted, folders searched recursively."""
    found: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found.extend(sorted(x for x in p.rglob("*.y*ml") if x.suffix in (".yaml", ".yml")))
        elif p.exists():
            found.append(p)
        else:
            raise InputError([Problem(str(p), None, None, "no such file or folder")])
    return found


def _cmd_test(paths: Sequence[str]) -> int:
    from .batch import run
    from .scenario import load_scenario
    from .yamlio import load_file

    files = scenario_files(paths)
    failed = passed = invalid = 0
    for path in files:
        try:
            doc = load_file(path)
            if not isinstance(doc.data, dict) or "expect" not in doc.data:
                continue
            result = run(load_scenario(path))
        except InputError as exc:
            _print_problems(exc.problems)
            invalid += 1
            continue
        checks = result.check()
        bad = [c for c in checks if not c.ok]
        if bad:
            failed += 1
            print(f"FAIL {path} ({len(bad)} of {len(checks)} expectations)")
            for c in bad:
                print("  " + c.describe().replace("\n", "\n  "))
        else:
            passed += 1
            print(f"ok   {path} ({len(checks)} expectations)")
    print(f"{passed} passed, {failed} failed" + (f", {invalid} invalid" if invalid else ""))
    if invalid:
        return EXIT_INPUT
    return EXIT_FAILED if failed else EXIT_OK


def _cmd_validate(paths: Sequence[str]) -> int:
    from .policy import load_policy
    from .scenario import load_scenario
    from .yamlio import load_file

    problems: list[Problem] = []
    count = 0
    for path in scenario_files(paths):
        try:
            doc = load_file(path)
            if isinstance(doc.data, dict) and "scenario" not in doc.data and "policy" in doc.data:
                load_policy(str(path))
            else:
                load_scenario(path)
            count += 1
        except InputError as exc:
            problems.extend(exc.problems)
    if problems:
        _print_problems(problems)
        return EXIT_INPUT
    print(f"{count} file(s) valid")
    return EXIT_OK


def _cmd_policies() -> int:
    from .policy import builtin_packs, load_policy

    for name in builtin_packs():
        pol = load_policy(name)
        print(f"{name:<16} {pol.title}")
    return EXIT_OK


# ------------------------------------------------------------------------------ sweep, compare

_SWEEP_EPILOG = """\
The design is the FULL FACTORIAL of all --grid factors (every combination of their values);
--zip pairs the i-th values of every factor instead (all factors need as many values).
Every variant plays the same replications on the same seeds (common random numbers).

A factor is a policy key (review.window), a population parameter
(population.client.review.delay), policy (a pack name or path) or until. Values are YAML,
separated by commas; mappings may contain commas:
  --grid review.window=3d,7d,14d
  --grid population.platform.dispute_agents=1,2,4
  --grid 'population.client.review.delay={exponential: {mean: 2d}},{exponential: {mean: 6d}}'

Writes into --out: sweep.parquet/.csv (one row per variant and replication: variant, factors,
replication, seed, every KPI), summary.parquet/.csv (mean and 95%% interval per variant and
KPI), sweep.json, sweep.png (the chosen KPIs against each numeric factor; durations in days) and
parts/ (each run's milestone rows, one Parquet file per run).
"""

_COMPARE_EPILOG = """\
A and B play the same replications on the same seeds (common random numbers); each KPI's
difference B - A gets a paired 95%% t-interval over replications, and is significant when the
interval excludes zero.

Choosing A and B:
  --policy X --policy Y     A uses pack (or file) X, B uses Y
  --policy Y                A is the scenario's own policy, B uses Y
  --set-a KEY=V, --set-b KEY=V
                            a factor for one side only (policy key, population parameter, ...);
                            combine with --policy, e.g. --set-a review.window=3d --set-b review.window=21d

Writes into --out: compare.parquet/.csv (the differences), runs.parquet/.csv (per replication),
compare.json, compare.png and parts/.
"""


def _execution_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--replications", type=int, help="replications per variant (default: the file's)")
    p.add_argument("--seed", type=int, help="random seed shared by every variant (default: the file's)")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override for every variant"
    )
    p.add_argument("--workers", type=int, help="local worker processes (default: all CPUs)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--inprocess", action="store_true", help="run in this process (for debugging)")
    where.add_argument(
        "--dask",
        metavar="local|ADDRESS",
        help="run on Dask distributed: 'local' starts a LocalCluster of --workers processes",
    )
    where.add_argument(
        "--scheduler",
        metavar="tcp://HOST:PORT",
        help="run on the Dask scheduler at this address (--out must be visible to its workers)",
    )
    p.add_argument("--resume", action="store_true", help="keep the runs an interrupted call finished")
    p.add_argument(
        "--kpi", action="append", nargs="+", default=[], metavar="NAME", help="KPIs to print and chart"
    )
    p.add_argument("--no-charts", action="store_true", help="do not draw the chart")
    p.add_argument("--quiet", action="store_true", help="no progress bar, print only where outputs went")


def _sweep_parsers(sub: Any) -> None:
    s = sub.add_parser(
        "sweep",
        help="play a grid of policy/population variants (full factorial; --zip pairs values)",
        description="Play every variant of a grid of factors on the same seeds and tabulate the KPIs.",
        epilog=_SWEEP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("scenario", help="scenario YAML file")
    s.add_argument(
        "--grid",
        action="append",
        default=[],
        required=True,
        metavar="KEY=V1,V2,...",
        help="a factor and its values (repeat for more factors)",
    )
    s.add_argument(
        "--zip", action="store_true", help="pair the factors' values instead of the full factorial"
    )
    s.add_argument("--out", help="output folder (default out/<scenario file stem>-sweep/)")
    _execution_options(s)

    c = sub.add_parser(
        "compare",
        help="compare two policies (or settings) on the same seeds, with paired intervals",
        description="Compare two variants of a scenario KPI by KPI on common random numbers.",
        epilog=_COMPARE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    c.add_argument("scenario", help="scenario YAML file")
    c.add_argument(
        "--policy", action="append", default=[], metavar="PACK", help="pack name or path (A, then B)"
    )
    c.add_argument("--set-a", action="append", default=[], metavar="KEY=VALUE", help="a factor for A only")
    c.add_argument("--set-b", action="append", default=[], metavar="KEY=VALUE", help="a factor for B only")
    c.add_argument("--out", help="output folder (default out/<scenario file stem>-compare/)")
    _execution_options(c)


def _execution(args: argparse.Namespace) -> dict[str, Any]:
    """Backend arguments of sweep/compare, with the command line's own checks."""
    problems = []
    if args.replications is not None and args.replications < 1:
        problems.append("--replications must be at least 1")
    if args.workers is not None and args.workers < 1:
        problems.append("--workers must be at least 1")
    if args.seed is not None and args.seed < 0:
        problems.append("--seed must be a whole number >= 0")
    if problems:
        raise InputError([Problem("<command line>", None, None, m) for m in problems])
    backend, scheduler = "processes", None
    if args.inprocess:
        backend = "inprocess"
    elif args.dask or args.scheduler:
        backend, scheduler = "dask", args.scheduler or args.dask
    return {
        "backend": backend,
        "scheduler": scheduler,
        "workers": args.workers,
        "replications": args.replications,
        "seed": args.seed,
        "resume": args.resume,
        "progress": False if args.quiet else None,
        "charts": not args.no_charts,
    }


def _kpi_option(args: argparse.Namespace) -> list[str]:
    return [k for group in args.kpi for k in group]


def _connect_errors(run: Any, scheduler: str | None) -> Any:
    """Run ``run()``; a Dask scheduler that cannot be reached is bad input, not a bug."""
    try:
        return run()
    except (OSError, TimeoutError) as exc:
        if scheduler is None or scheduler == "local":
            raise
        raise InputError(
            [Problem("<command line --scheduler>", None, None, f"cannot reach {scheduler}: {exc}")]
        ) from None


def _cmd_sweep(args: argparse.Namespace) -> int:
    from .scenario import load_scenario
    from .sweeps import _check_kpis, build_variants, parse_grid_option, sweep

    scenario = load_scenario(args.scenario, _overrides(args.set))
    grid: dict[str, list[Any]] = {}
    problems: list[Problem] = []
    for text in args.grid:
        try:
            key, values = parse_grid_option(text)
        except InputError as exc:
            problems.extend(exc.problems)
            continue
        if key in grid:
            problems.append(Problem("<command line --grid>", None, None, "factor given twice", key))
        grid[key] = values
    if problems:
        raise InputError(problems)
    kpis = _check_kpis(_kpi_option(args))
    build_variants(scenario, grid, args.zip)  # every problem before anything is written
    ex = _execution(args)
    out = Path(args.out) if args.out else Path("out") / f"{Path(args.scenario).stem}-sweep"
    try:
        result = _connect_errors(
            lambda: sweep(scenario, grid, zip=args.zip, out=out, kpis=kpis, **ex), ex["scheduler"]
        )
    except KeyboardInterrupt:
        print(f"interrupted: finished runs are kept in {out}/parts; rerun with --resume", file=sys.stderr)
        raise
    if not args.quiet:
        design = "zip" if args.zip else "full factorial"
        print(
            f"{len(result.variants)} variants ({design}) x {result.replications} replications, seed "
            f"{result.seed}; KPI mean ± half-width of its 95% interval:"
        )
        print(result.table(kpis).to_string(index=False))
    print(f"outputs written to {out}/")
    return EXIT_OK


def _cmd_compare(args: argparse.Namespace) -> int:
    from .paired import compare
    from .policy import parse_set_option
    from .scenario import load_scenario
    from .sweeps import _check_kpis

    scenario = load_scenario(args.scenario, _overrides(args.set))
    if len(args.policy) > 2:
        raise InputError(
            [Problem("<command line --policy>", None, None, "give --policy at most twice (A, B)")]
        )
    sides: list[dict[str, Any]] = [{}, {}]
    if len(args.policy) == 2:
        sides = [{"policy": args.policy[0]}, {"policy": args.policy[1]}]
    elif len(args.policy) == 1:
        sides[1]["policy"] = args.policy[0]
    for side, items in ((0, args.set_a), (1, args.set_b)):
        for text in items:
            key, value = parse_set_option(text)
            sides[side][key] = value
    kpis = _check_kpis(_kpi_option(args)) if args.kpi else None
    ex = _execution(args)
    out = Path(args.out) if args.out else Path("out") / f"{Path(args.scenario).stem}-compare"
    result = _connect_errors(
        lambda: compare(
            scenario, sides[0], sides[1], out=out, sources=("<command line A>", "<command line B>"), **ex
        ),
        ex["scheduler"],
    )
    if not args.quiet:
        print(f"A: {result.a.label}\nB: {result.b.label}")
        print(
            f"{result.replications} paired replications, seed {result.seed}; B - A with paired 95% interval:"
        )
        print(result.table(kpis).to_string(index=False))
        sig = result.significant
        print(f"significant: {', '.join(sig) if sig else 'none'}")
    print(f"outputs written to {out}/")
    return EXIT_OK
