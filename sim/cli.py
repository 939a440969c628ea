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
    r.add_argument("--no-charts", action="store_true", help="do not draw charts or the HTML report")
    r.add_argument("--quiet", action="store_true", help="print only where the outputs went")

    t = sub.add_parser("test", help="check the expectations of scenario files")
    t.add_argument("paths", nargs="+", help="scenario files or folders (searched recursively)")

    v = sub.add_parser("validate", help="check policy and scenario files without running them")
    v.add_argument("paths", nargs="+", help="policy or scenario files or folders")

    sub.add_parser("policies", help="list the built-in policy packs")
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
    result = run(
        scenario,
        seed=args.seed,
        replications=args.replications,
        events=events,
        progress=not args.quiet,
    )
    out = Path(args.out) if args.out else Path("out") / Path(args.scenario).stem
    result.write(out)
    if not args.no_charts:
        try:
            from .report import write_report
        except ImportError:  # charts arrive with the plots module
            pass
        else:
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
            if isinstance(doc.data, dict) and "scenario" not in doc.data and "milestones" in doc.data:
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
