"""The ``milestone-sim`` command: run, test, validate, policies (and sweep, compare).

Exit codes: 0 success; 1 expectations failed (or ``test`` found nothing to check); 2 invalid
input or options (one message per problem, with file:line:column, never a traceback); 3 internal
error; 4 the outputs could not be written (disk full, standard output closed or full). A closed
pipe (``milestone-sim run X | head -1``) ends the command quietly with 4.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..core.yamlio import InputError, Problem

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_INTERNAL, EXIT_OUTPUT = 0, 1, 2, 3, 4
OUT_SOURCE = "<command line --out>"


_FORCE_HELP = (
    "replace --out even when it is a non-empty folder milestone-sim did not make "
    "(never /, the home folder, the current folder or a folder above it)"
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="milestone-sim",
        description="Simulate escrow milestone policies: where the money goes, and when.",
    )
    from .. import __version__

    p.add_argument("--version", action="version", version=f"milestone-sim {__version__}")
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
        help="a policy key (review.window=7d), a population parameter (population.platform."
        "dispute_agents=2), policy or until: what sweep's --grid accepts",
    )
    r.add_argument("--force", action="store_true", help=_FORCE_HELP)
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
    r.add_argument(
        "--format",
        choices=("csv", "parquet"),
        default=None,
        help="how the tables are written (default: parquet for a population, csv for a scripted "
        "scenario); Parquet keeps money exact as decimals",
    )
    r.add_argument("--no-charts", action="store_true", help="do not draw charts or the HTML report")
    _allow_option(r)
    r.add_argument("--quiet", action="store_true", help="print only where the outputs went")

    t = sub.add_parser("test", help="check the expectations of scenario files")
    t.add_argument("paths", nargs="+", help="scenario files or folders (searched recursively)")
    _allow_option(t)

    v = sub.add_parser("validate", help="check policy and scenario files without running them")
    v.add_argument("paths", nargs="+", help="policy or scenario files or folders")
    _allow_option(v)

    pol = sub.add_parser(
        "policies",
        help="list the built-in policy packs, or show one's state diagram or the action table",
        description="Without options: the built-in packs. --diagram PACK prints the pack's state "
        "diagram as Mermaid text (stateDiagram-v2), or, with --png FILE, draws it as a PNG. "
        "--actions prints the table of actions (Markdown), as the README shows it.",
    )
    pol.add_argument("--diagram", metavar="PACK", help="a pack name or a path to a pack file")
    pol.add_argument("--png", metavar="FILE", help="with --diagram: write the drawing to FILE (.png)")
    pol.add_argument("--actions", action="store_true", help="print the action table (Markdown)")
    pol.add_argument(
        "--at", metavar="DATE", help="with PACK: print the pack as in force on DATE (2024-06-01)"
    )
    pol.add_argument("pack", nargs="?", metavar="PACK", help="with --at: a pack name or path")
    _allow_option(pol)
    ex = sub.add_parser(
        "explain",
        help="why the money moved: each posting and refused action with the rules that decided it",
        description="For each money movement (and each refused action) of a run: the action or "
        "timer, the policy keys and values that decided it with the file:line:column each was "
        "written at (and a dated pack's version), and the event that started its timer. "
        "TARGET is an output folder of `milestone-sim run` or a scenario file (run in memory).",
    )
    ex.add_argument("target", metavar="OUT_DIR|SCENARIO")
    ex.add_argument("--contract", metavar="ID", help="only this contract")
    ex.add_argument("--milestone", metavar="C/M", help="only this milestone (contract/milestone)")
    ex.add_argument("--at", metavar="T", help="only the events at time T (19d, 2d12h)")
    ex.add_argument("--all", action="store_true", help="every event, not only money and refusals")
    ex.add_argument("--replication", type=int, default=0, help="which replication (default 0)")
    _allow_option(ex)
    tr = sub.add_parser(
        "transition",
        help="a policy change on a date under each transition mode, against no change, on the same seeds",
        description="Runs the population without the change and with it under new_contracts, "
        "new_milestones and immediate (common random numbers), and reports for contracts in "
        "flight at the change and contracts started after it the money and time-to-payment that "
        "shift, with paired 95%% intervals, and a chart of escrow, auto-releases and fees per week.",
    )
    tr.add_argument("scenario", metavar="SCENARIO")
    tr.add_argument("--policy", metavar="PACK", help="the pack before the change (default: the scenario's)")
    tr.add_argument("--on", metavar="DATE", required=True, help="the date of the change (2027-03-01)")
    tr.add_argument(
        "--to",
        metavar="PACK|KEY=VALUE",
        action="append",
        required=True,
        help="the rules from that date: a pack, or policy overrides (repeat: --to review.window=10d)",
    )
    tr.add_argument("--replications", type=int, help="replications per variant (default: the scenario's)")
    tr.add_argument("--seed", type=int, help="the base seed (default: the scenario's)")
    tr.add_argument(
        "--out", metavar="DIR", help="write transition.csv, weekly.csv, runs.csv, summary.json, the chart"
    )
    tr.add_argument("--force", action="store_true", help="replace --out even if this tool did not make it")
    tr.add_argument("--no-charts", action="store_true", help="with --out: no transition.png")
    _allow_option(tr)
    au = sub.add_parser(
        "audit",
        help="replay a marketplace's own event log against a pack: where production departs from it",
        description="Every party action of LOG (CSV or Parquet, the columns of events.csv) is played "
        "through the pack at its time; the pack's automatic events are matched with the log's "
        "within --tolerance, and amounts (and the log's escrow column) to the cent. Writes audit.csv "
        "(one finding per row), summary.json and audit.html into --out. Exit 0: the log conforms; "
        "1: findings; 2: bad input.",
    )
    _log_options(au)
    au.add_argument(
        "--tolerance", default="1h", help="how far an automatic event may be from its time (default 1h)"
    )
    au.add_argument("--out", metavar="DIR", help="output folder (default out/audit_<log file stem>/)")
    au.add_argument("--force", action="store_true", help=_FORCE_HELP)
    au.add_argument("--no-charts", action="store_true", help="no charts or audit.html")
    au.add_argument("--quiet", action="store_true", help="print only the verdict and where the outputs went")
    _allow_option(au)
    ca = sub.add_parser(
        "calibrate",
        help="estimate a population scenario from a marketplace's event log",
        description="Reads LOG as audit does and writes a population scenario (FORMAT section 6) "
        "whose every delay, mix, rate and amount is fitted to it: censored maximum likelihood over "
        "exponential, lognormal and gamma chosen by AIC, each value commented with n, the censored "
        "share and its 95%% interval; and calibration.html beside it (each fit against the data's "
        "Kaplan-Meier curve).",
    )
    _log_options(ca)
    ca.add_argument("--out", metavar="YAML", required=True, help="the population file to write (*.yaml)")
    ca.add_argument("--force", action="store_true", help="replace an existing --out file")
    ca.add_argument("--no-charts", action="store_true", help="no calibration.html")
    _allow_option(ca)
    _sweep_parsers(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    from ..experiments.outdir import OutputError

    args = _parser().parse_args(argv)
    try:
        code = _dispatch(args)
        sys.stdout.flush()  # a full or closed stdout fails here, inside the handlers below
        return code
    except InputError as exc:
        _print_problems(exc.problems)
        return EXIT_INPUT
    except BrokenPipeError:
        return _broken_pipe()
    except OutputError as exc:
        return _output_failed(str(exc))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an internal error: a bug, not bad input
        import traceback

        traceback.print_exc(file=sys.stderr)
        print(f"milestone-sim: internal error: {exc}", file=sys.stderr)
        return EXIT_INTERNAL


def _dispatch(args: argparse.Namespace) -> int:
    try:
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "test":
            return _cmd_test(args.paths, _allowed(args))
        if args.command == "validate":
            return _cmd_validate(args.paths, _allowed(args))
        if args.command == "policies":
            return _cmd_policies(args)
        if args.command == "sweep":
            return _cmd_sweep(args)
        if args.command == "compare":
            return _cmd_compare(args)
        if args.command == "explain":
            return _cmd_explain(args)
        if args.command == "transition":
            return _cmd_transition(args)
        if args.command == "audit":
            return _cmd_audit(args)
        if args.command == "calibrate":
            return _cmd_calibrate(args)
        return EXIT_INPUT
    finally:
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            from ..experiments.outdir import OutputError

            raise OutputError(f"cannot write to standard output: {exc.strerror or exc}") from None


def _silence_stdout() -> None:
    """Point stdout at devnull, so the interpreter's flush at exit does not fail again."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout replaced (pytest, Jupyter): nothing to do
        pass


def _broken_pipe() -> int:
    """The reader went away (``| head -1``): stop quietly (the Python docs' recipe)."""
    _silence_stdout()
    return EXIT_OUTPUT


def _output_failed(message: str) -> int:
    if message.startswith("cannot write to standard output"):
        _silence_stdout()
    with contextlib.suppress(OSError):
        print(f"error: {message}", file=sys.stderr)
    return EXIT_OUTPUT


def _print_problems(problems: list[Problem]) -> None:
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)


def _set_values(items: list[str], source: str = "<command line --set>") -> dict[str, Any]:
    """``--set KEY=VALUE`` options as factors (what ``--grid`` takes), all problems at once."""
    from ..policy.model import parse_set_option

    values: dict[str, Any] = {}
    problems: list[Problem] = []
    for text in items:
        try:
            key, value = parse_set_option(text)
        except InputError as exc:
            problems.extend(exc.problems)
            continue
        values[key] = value
    if problems:
        raise InputError(problems)
    return values


def _log_options(p: argparse.ArgumentParser) -> None:
    """What ``audit`` and ``calibrate`` read: the log, its contracts, the pack, and its names."""
    p.add_argument("log", metavar="LOG", help="the event log (CSV, or Parquet: *.parquet)")
    p.add_argument(
        "--contracts",
        metavar="CSV",
        required=True,
        help="contract, client, freelancer, milestone, amount, due",
    )
    p.add_argument("--policy", metavar="PACK", required=True, help="a built-in pack or a pack file")
    p.add_argument(
        "--start", metavar="DATE", help="the date of t = 0 (timestamps without a zone, business days)"
    )
    p.add_argument(
        "--map", action="append", default=[], metavar="OURS=THEIRS", help="a log column under another name"
    )
    p.add_argument("--mapping", metavar="YAML", help="columns, actions, actors, ignore, contract_columns")


def _log_inputs(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """The ``--start`` date, the mapping (``--mapping`` then ``--map``) and the pack of a log command."""
    from ..audit import log as auditlog
    from ..policy.model import load_policy

    start = _date_option(args.start, "--start", "2026-01-05") if args.start else None
    mapping = auditlog.load_mapping(args.mapping) if args.mapping else auditlog.Mapping()
    if args.map:
        mapping = mapping.with_columns(auditlog.parse_map_options(args.map))
    return start, mapping, load_policy(args.policy, base=Path.cwd(), allow=_allowed(args))


def _allow_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--allow-path",
        action="append",
        default=[],
        metavar="DIR",
        help="also read policy packs and CSV files from this folder (repeatable); by default files "
        "are read from the scenario's folder and below only",
    )


def _allowed(args: argparse.Namespace) -> tuple[Path, ...]:
    """The --allow-path folders: each must be an existing folder."""
    bad = [d for d in args.allow_path if not Path(d).is_dir()]
    if bad:
        raise InputError(
            [Problem("<command line --allow-path>", None, None, f"{d!r} is not a folder") for d in bad]
        )
    return tuple(Path(d) for d in args.allow_path)


def _warn(scenario: Any) -> None:
    """Print what a scenario file says that will not happen as written (e.g. steps after until)."""
    for warning in scenario.warnings:
        with contextlib.suppress(OSError):
            print(f"warning: {warning}", file=sys.stderr)


def _load(path: str, set_items: list[str], allow: tuple[Path, ...] = ()) -> Any:
    """The scenario file with the --set options applied (the sweep's factor code path)."""
    from ..experiments.sweeps import apply_factors
    from ..inputs.scenario import load_scenario

    values = _set_values(set_items)  # a malformed option is reported before the file is read
    scenario = apply_factors(load_scenario(path, allow=allow), values, "<command line --set>")
    _warn(scenario)
    return scenario


def _check_counts(args: argparse.Namespace) -> None:
    from ..experiments.batch import check_counts

    check_counts(args.replications, args.seed, args.workers, source="<command line>", dash="--")


def _say(text: str = "") -> None:
    """Print a line; a full or failing stdout is an output error (a closed pipe stays one)."""
    try:
        print(text)
    except BrokenPipeError:
        raise
    except OSError as exc:
        from ..experiments.outdir import OutputError

        raise OutputError(f"cannot write to standard output: {exc.strerror or exc}") from None


def _cmd_run(args: argparse.Namespace) -> int:
    from ..experiments.batch import resolve_events, run
    from ..experiments.outdir import check_out_dir
    from ..viz import report_text

    _check_counts(args)
    out = Path(args.out) if args.out else Path("out") / Path(args.scenario).stem
    check_out_dir(out, force=args.force, source=OUT_SOURCE)  # before the simulation, not after
    scenario = _load(args.scenario, args.set, _allowed(args))
    events = resolve_events(scenario, args.events)
    workers = args.workers if args.workers is not None else (None if scenario.is_population else 1)
    result = run(
        scenario,
        seed=args.seed,
        replications=args.replications,
        events=events,
        progress=not args.quiet,
        workers=workers,
    )
    # tables, charts and report.html go into one temporary folder, renamed into place at the end
    result.write(
        out, force=args.force, report=not args.no_charts, source=OUT_SOURCE, table_format=args.format
    )
    if not args.quiet:
        _say(report_text.summary(result))
        _say(report_text.table_sizes(result.written))
    _say(f"outputs written to {out}/")
    return EXIT_OK


def _date_option(text: str, option: str, example: str) -> Any:
    """A calendar date given on the command line, or an InputError naming the option."""
    import datetime as dt

    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        message = f"{option} expects a date like {example}, got {text!r}"
        raise InputError([Problem(f"<command line {option}>", None, None, message)]) from None


def _cmd_transition(args: argparse.Namespace) -> int:

    from ..experiments.batch import check_counts
    from ..experiments.outdir import check_out_dir
    from ..experiments.transition import transition
    from ..policy.model import load_policy, parse_set_option

    on = _date_option(args.on, "--on", "2027-03-01")
    check_counts(args.replications, args.seed, None, source="<command line>", dash="--")
    if args.out:
        check_out_dir(Path(args.out), force=args.force, source="<command line --out>")
    sets = [f"policy={args.policy}"] if args.policy else []
    scenario = _load(args.scenario, sets, _allowed(args))
    packs = [t for t in args.to if "=" not in t]
    pairs = [parse_set_option(t) for t in args.to if "=" in t]
    if len(packs) > 1 or (packs and pairs):
        raise InputError(
            [
                Problem(
                    "<command line --to>", None, None, "--to is one pack, or one or more KEY=VALUE overrides"
                )
            ]
        )
    if packs:
        new = load_policy(packs[0], base=scenario.path.parent, allow=_allowed(args))
    else:
        new = scenario.with_overrides(pairs).policy
    result = transition(scenario, new, on, replications=args.replications, seed=args.seed)
    sys.stdout.write(result.text())
    if args.out:
        result.write(args.out, charts=not args.no_charts, force=args.force)
        _say(f"outputs written to {args.out}/")
    return EXIT_OK


#: the largest events.csv / ledger.csv ``explain`` reads from an output folder
MAX_EXPLAIN_BYTES = 512 * 1024 * 1024


def _cmd_audit(args: argparse.Namespace) -> int:
    from ..audit.replay import MAX_TOLERANCE, audit
    from ..core.units import UnitError, parse_duration
    from ..experiments.outdir import check_out_dir, staged

    out = Path(args.out) if args.out else Path("out") / f"audit_{Path(args.log).stem}"
    check_out_dir(out, force=args.force, source=OUT_SOURCE)
    try:
        text = args.tolerance.strip()
        tolerance = parse_duration(float(text) if text.replace(".", "", 1).isdigit() else text)
    except UnitError as exc:
        raise InputError([Problem("<command line --tolerance>", None, None, str(exc))]) from None
    if not 0 <= tolerance <= MAX_TOLERANCE:
        raise InputError(
            [
                Problem(
                    "<command line --tolerance>",
                    None,
                    None,
                    f"the tolerance is between 0 and {MAX_TOLERANCE:g}d",
                )
            ]
        )
    start, mapping, policy = _log_inputs(args)
    result = audit(
        args.log,
        args.contracts,
        policy,
        tolerance=tolerance,
        start=start,
        mapping=mapping,
        progress=not args.quiet and sys.stderr.isatty(),
    )
    with staged(out, force=args.force, source=OUT_SOURCE) as tmp:
        result.write_tables(tmp)
        if not args.no_charts:
            from ..viz.audit_report import write_report

            write_report(result, tmp)
    _say(result.summary_text(brief=args.quiet))
    _say(f"outputs written to {out}/")
    return EXIT_OK if result.conforms else EXIT_FAILED


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from ..audit.calibrate import calibrate
    from ..core.yamlio import load_text
    from ..experiments.outdir import replace_file
    from ..inputs.scenario import scenario_from_data

    out = Path(args.out)
    source = "<command line --out>"
    if out.suffix not in (".yaml", ".yml"):
        raise InputError([Problem(source, None, None, f"--out names a .yaml file, got {args.out!r}")])
    if not out.parent.is_dir():
        raise InputError([Problem(source, None, None, f"no such folder: {out.parent}")])
    html_path = out.with_name("calibration.html")
    for path in (out, html_path):
        if path.exists() and not args.force:
            raise InputError([Problem(source, None, None, f"{path} exists: give --force to replace it")])
    start, mapping, policy = _log_inputs(args)
    cal = calibrate(args.log, args.contracts, policy, mapping=mapping, start=start)
    cal.data_name = f"{out.stem}_data.csv"
    data = cal.data_file()  # the empirical count or amounts, when no family fits them
    data_path = out.with_name(cal.data_name)
    if data is not None and data_path.exists() and not args.force:
        raise InputError([Problem(source, None, None, f"{data_path} exists: give --force to replace it")])
    text = cal.yaml()
    if data is not None:
        replace_file(data_path, lambda tmp: tmp.write_text(data, encoding="utf-8", newline="\n"))
    scenario_from_data(load_text(text, str(out)).data, out)  # a valid population scenario, or a bug
    replace_file(out, lambda tmp: tmp.write_text(text, encoding="utf-8", newline="\n"))
    if not args.no_charts:
        from ..viz.calibration_report import render_html

        page = render_html(cal)
        replace_file(html_path, lambda tmp: tmp.write_text(page, encoding="utf-8", newline="\n"))
    _say(cal.summary_text())
    written = [
        str(out),
        *([str(data_path)] if data is not None else []),
        *([] if args.no_charts else [str(html_path)]),
    ]
    _say(f"written: {', '.join(written)}")
    return EXIT_OK


def _cmd_explain(args: argparse.Namespace) -> int:
    from ..analysis.explain import chains, explain_frame
    from ..core.units import UnitError, parse_duration

    at = None
    if args.at is not None:
        try:
            at = parse_duration(args.at)
        except UnitError as exc:
            raise InputError([Problem("<command line --at>", None, None, str(exc))]) from None
    if args.replication < 0:
        raise InputError([Problem("<command line --replication>", None, None, "--replication is >= 0")])
    target = Path(args.target)
    if target.is_dir():
        events, ledger, values, currency, digits = _read_out_dir(target, args.replication)
    else:
        from ..experiments.batch import run

        scenario = _load(args.target, [], _allowed(args))
        result = run(scenario, replications=args.replication + 1, progress=False, workers=1)
        if result.events_mode != "full":
            message = "this population is too large to keep its event log in memory: run it with "
            message += "`run --events full --out DIR` and explain DIR"
            raise InputError([Problem(args.target, None, None, message)])
        chosen = next(r for r in result.runs if r.replication == args.replication)
        events, ledger = chosen.events, chosen.ledger
        values = scenario.policy.values_by_version()
        currency, digits = scenario.policy.currency, scenario.policy.digits
    for name, wanted, column in (("--contract", args.contract, "contract"),):
        if wanted is not None and wanted not in set(events[column]):
            raise InputError(
                [Problem(f"<command line {name}>", None, None, f"no contract {wanted!r} in this run")]
            )
    if args.milestone is not None:
        c, _, m = args.milestone.partition("/")
        if not m or not ((events["contract"] == c) & (events["milestone"] == m)).any():
            raise InputError(
                [
                    Problem(
                        "<command line --milestone>",
                        None,
                        None,
                        f"no milestone {args.milestone!r} in this run: write CONTRACT/MILESTONE, e.g. c1/m1",
                    )
                ]
            )
    frame = explain_frame(
        events,
        ledger,
        values,
        currency,
        digits,
        contract=args.contract,
        milestone=args.milestone,
        at=at,
        everything=args.all,
    )
    sys.stdout.write(chains(frame) or "nothing matches: no money moved and no action was refused there\n")
    return EXIT_OK


def _read_out_dir(folder: Path, replication: int) -> tuple[Any, Any, dict[str, dict[str, Any]], str, int]:
    """events, ledger (amounts in minor units), values by version, currency and digits of an output
    folder; anything missing or malformed is an InputError naming the file."""
    import json

    import pandas as pd

    from ..core.units import CURRENCY_DIGITS, UnitError, parse_money
    from ..policy.model import flat_values

    def bad(name: str, message: str) -> InputError:
        return InputError([Problem(str(folder / name), None, None, message)])

    fmt = "parquet" if (folder / "events.parquet").is_file() else "csv"  # run --format
    for name in (f"events.{fmt}", f"ledger.{fmt}", "summary.json"):
        path = folder / name
        if not path.is_file():
            raise bad(name, "not an output folder of milestone-sim run: this file is missing")
        if path.stat().st_size > MAX_EXPLAIN_BYTES:
            raise bad(name, f"larger than {MAX_EXPLAIN_BYTES // 2**20} MiB: explain reads smaller runs")
    try:
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        policy = summary["policy"]
        currency = str(summary["currency"])
        digits = CURRENCY_DIGITS[currency]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise bad("summary.json", "not a summary.json of milestone-sim run (policy, currency)") from None
    if isinstance(policy, dict) and "versions" in policy:
        values = {
            str(v.get("from")): v.get("values", {})
            for v in summary.get("policy_versions") or []
            if isinstance(v, dict) and isinstance(v.get("values"), dict)
        }
    else:
        values = {"": flat_values(policy)}
    frames = []
    for name, needed in (
        (f"events.{fmt}", {"time", "contract", "milestone", "actor", "action", "outcome", "policy_keys"}),
        (f"ledger.{fmt}", {"time", "from_account", "to_account", "flow", "amount", "contract", "event"}),
    ):
        try:
            if fmt == "csv":
                df = pd.read_csv(folder / name, dtype=str, keep_default_na=False)
            else:  # the same text the CSV holds: decimals print as they are written ("12.50")
                df = pd.read_parquet(folder / name)
                df = pd.DataFrame({c: ["" if pd.isna(v) else str(v) for v in df[c]] for c in df.columns})
        except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
            raise bad(name, f"cannot read it as {fmt}: {str(exc).splitlines()[0]}") from None
        missing = needed - set(df.columns)
        if missing:
            raise bad(name, f"columns missing: {', '.join(sorted(missing))}")
        if "replication" in df.columns:
            df = df[df["replication"] == str(replication)].reset_index(drop=True)
        elif replication:
            raise bad(name, f"no replication {replication}: this run has one")
        try:
            df["time"] = df["time"].astype(float)
            if name.startswith("ledger."):
                df["amount"] = [parse_money(a, digits) for a in df["amount"]]
                df["event"] = df["event"].astype(int)
        except (ValueError, UnitError) as exc:
            raise bad(name, f"a value is not a number: {exc}") from None
        frames.append(df)
    return frames[0], frames[1], values, currency, digits


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


def _is_mapping(data: Any) -> bool:
    """An audit's mapping file: only the keys of a mapping (``columns``, ``actions``, ...)."""
    from ..audit.log import MAPPING_SECTIONS

    return isinstance(data, dict) and bool(data) and all(k in MAPPING_SECTIONS for k in data)


def _is_pack(data: Any) -> bool:
    return isinstance(data, dict) and "scenario" not in data and "policy" in data


def _cmd_test(paths: Sequence[str], allow: tuple[Path, ...] = ()) -> int:
    """Validate every file given (packs as packs), run those with expectations, check them.

    A file named on the command line that has no expectations is reported as such; when nothing
    at all was checked the command fails (exit 1) rather than passing silently.
    """
    from ..core.yamlio import load_file
    from ..experiments.batch import run
    from ..inputs.scenario import load_scenario
    from ..policy.model import load_policy

    named = {Path(p) for p in paths if not Path(p).is_dir()}
    files = scenario_files(paths)
    failed = passed = invalid = packs = empty = mappings = 0
    for path in files:
        try:
            doc = load_file(path)
            if _is_pack(doc.data):
                load_policy(str(path), allow=allow)
                packs += 1
                continue
            if _is_mapping(doc.data):  # an audit's mapping of a log's names: checked, nothing to run
                from ..audit.log import load_mapping

                load_mapping(path)
                mappings += 1
                continue
            if isinstance(doc.data, dict) and "audit" in doc.data:  # an audit file (FORMAT section 10)
                from ..audit.spec import load_audit_file, run_audit_file

                _audit, failures = run_audit_file(load_audit_file(path, allow=allow))
                if failures:
                    failed += 1
                    _say(f"FAIL {path} (audit)")
                    for line in failures:
                        _say("  " + line)
                else:
                    passed += 1
                    _say(f"ok   {path} (audit: {len(_audit.findings)} finding(s) as expected)")
                continue
            scenario = load_scenario(path, allow=allow)
            _warn(scenario)
            if not scenario.expectations:
                empty += 1
                if path in named:
                    _say(f"no expectations: {path} is valid, but has no expect: to check")
                continue
            result = run(scenario)
        except InputError as exc:
            _print_problems(exc.problems)
            invalid += 1
            continue
        checks = result.check()
        bad = [c for c in checks if not c.ok]
        if bad:
            failed += 1
            _say(f"FAIL {path} ({len(bad)} of {len(checks)} expectations)")
            for c in bad:
                _say("  " + c.describe().replace("\n", "\n  "))
        else:
            passed += 1
            _say(f"ok   {path} ({len(checks)} expectations)")
    tail = [f", {invalid} invalid" if invalid else ""]
    if empty:
        tail.append(f", {empty} without expectations")
    if packs:
        tail.append(f", {packs} policy pack(s) valid")
    if mappings:
        tail.append(f", {mappings} mapping file(s) valid")
    _say(f"{passed} passed, {failed} failed" + "".join(tail))
    if invalid:
        return EXIT_INPUT
    if failed:
        return EXIT_FAILED
    if not passed:
        _say("nothing was checked: no scenario given has expectations (expect:)")
        return EXIT_FAILED
    return EXIT_OK


def _cmd_validate(paths: Sequence[str], allow: tuple[Path, ...] = ()) -> int:
    from ..core.yamlio import load_file
    from ..inputs.scenario import load_scenario
    from ..policy.model import load_policy

    problems: list[Problem] = []
    count = 0
    for path in scenario_files(paths):
        try:
            doc = load_file(path)
            if _is_pack(doc.data):
                load_policy(str(path), allow=allow)
            elif _is_mapping(doc.data):
                from ..audit.log import load_mapping

                load_mapping(path)
            elif isinstance(doc.data, dict) and "audit" in doc.data:
                from ..audit.spec import load_audit_file

                load_audit_file(path, allow=allow)
            else:
                _warn(load_scenario(path, allow=allow))
            count += 1
        except InputError as exc:
            problems.extend(exc.problems)
    if problems:
        _print_problems(problems)
        return EXIT_INPUT
    _say(f"{count} file(s) valid")
    return EXIT_OK


def _cmd_policies(args: argparse.Namespace) -> int:
    from ..policy.model import builtin_packs, load_policy

    if args.actions:
        from ..machine.transitions import markdown_table

        sys.stdout.write(markdown_table())
        return EXIT_OK
    if args.png and not args.diagram:
        raise InputError([Problem("<command line>", None, None, "--png needs --diagram PACK")])
    if args.at is not None or args.pack is not None:
        return _policy_at(args)
    if args.diagram:
        from ..viz.policy_diagram import pack_figure, pack_mermaid

        policy = load_policy(args.diagram, allow=_allowed(args))
        if not args.png:
            sys.stdout.write(pack_mermaid(policy))
            return EXIT_OK
        target = Path(args.png)
        if target.suffix.lower() != ".png" or target.is_dir():
            raise InputError(
                [
                    Problem(
                        "<command line --png>", None, None, f"--png needs a .png file name, got {args.png!r}"
                    )
                ]
            )
        if not target.parent.is_dir():
            raise InputError(
                [
                    Problem(
                        "<command line --png>", None, None, f"no folder {str(target.parent)!r} to write into"
                    )
                ]
            )
        from ..experiments.outdir import replace_file
        from ..viz.report import render_png

        png = render_png(pack_figure(policy))
        replace_file(target, lambda tmp: tmp.write_bytes(png))
        _say(f"diagram written to {target}")
        return EXIT_OK
    for name in builtin_packs():
        pol = load_policy(name)
        _say(f"{name:<16} {pol.title}")
    return EXIT_OK


def _policy_at(args: argparse.Namespace) -> int:
    """``policies --at DATE PACK``: the version of PACK in force on DATE, as YAML, with where each
    dated value was written."""

    import yaml

    from ..policy.model import load_policy

    if args.at is None or args.pack is None:
        raise InputError([Problem("<command line>", None, None, "policies --at DATE PACK needs both")])
    day = _date_option(args.at, "--at", "2024-06-01")
    policy = load_policy(args.pack, allow=_allowed(args))
    try:
        version = policy.at(day)
    except ValueError as exc:
        raise InputError([Problem("<command line --at>", None, None, str(exc))]) from None
    if policy.dated:
        head = (
            f"# {policy.policy} in force on {day.isoformat()}: the version from {version.version_from} "
            f"(transition: {policy.transition})"
        )
    else:
        head = f"# {policy.policy} on {day.isoformat()}: the pack has no dated values"
    sys.stdout.write(head + "\n")
    sys.stdout.write(yaml.safe_dump(version.resolved_values(), sort_keys=False, allow_unicode=True))
    if policy.dated:
        sys.stdout.write("# versions (a * marks the one in force):\n")
        for v in policy.versions:
            mark = "*" if v.policy is version else " "
            changed = ", ".join(f"{k} from {v.policy.source(k)}" for k in v.changes) or "first version"
            sys.stdout.write(f"# {mark} {v.shown}: {changed}\n")
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
difference B - A gets a paired 95% t-interval over replications, and is significant when the
interval excludes zero.

Choosing A and B:
  --policy X --policy Y     A uses pack (or file) X, B uses Y
  --policy Y                A is the scenario's own policy, B uses Y
  --set-a KEY=V, --set-b KEY=V
                            a factor for one side only (policy key, population parameter, ...);
                            combine with --policy, e.g. --set-a review.window=3d --set-b review.window=21d

Writes into --out: compare.parquet/.csv (the differences), runs.parquet/.csv (per replication),
compare.json, compare.png and parts/.

Comparing packs (--policy three or more times, or with --fx, or two packs in two currencies):
  --policy upwork --policy upwork_fees --policy upwork_2026
every pack plays the same population on the same seeds; prints the KPIs per pack and each pack's
paired differences against the first pack. Money is never added across currencies: a pack's money
KPIs are in its own currency, and money differences with a pack in another currency are taken
only with an exchange rate:
  --fx GBP=1.27             1 GBP = 1.27 units of the first pack's currency (repeat per currency;
                            with any --fx, every other currency in play needs one)
Writes into --out: summary.parquet/.csv (KPIs per pack), differences.parquet/.csv,
runs.parquet/.csv, money.parquet/.csv (where the money went), summary.json (packs, seeds, rates),
kpis.png, time_to_payment.png, money.png and parts/.
"""


def _execution_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--replications", type=int, help="replications per variant (default: the file's)")
    p.add_argument("--seed", type=int, help="random seed shared by every variant (default: the file's)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a factor value for every variant (anything --grid takes: policy key, population.*, "
        "policy, until)",
    )
    p.add_argument("--force", action="store_true", help=_FORCE_HELP)
    _allow_option(p)
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
        help="compare two or more policies (or two settings) on the same seeds, with paired intervals",
        description="Compare two variants of a scenario, or two or more packs, KPI by KPI on common "
        "random numbers.",
        epilog=_COMPARE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    c.add_argument("scenario", help="scenario YAML file")
    c.add_argument(
        "--policy",
        action="append",
        default=[],
        metavar="PACK",
        help="pack name or path (A, then B; three or more: packs, each compared with the first)",
    )
    c.add_argument(
        "--fx",
        action="append",
        default=[],
        metavar="CUR=RATE",
        help="exchange rate: 1 CUR = RATE units of the first pack's currency (repeatable)",
    )
    c.add_argument("--set-a", action="append", default=[], metavar="KEY=VALUE", help="a factor for A only")
    c.add_argument("--set-b", action="append", default=[], metavar="KEY=VALUE", help="a factor for B only")
    c.add_argument("--out", help="output folder (default out/<scenario file stem>-compare/)")
    _execution_options(c)


def _execution(args: argparse.Namespace) -> dict[str, Any]:
    """Backend arguments of sweep/compare, with the command line's own checks."""
    _check_counts(args)
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
        "force": args.force,
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
    from ..experiments.outdir import check_out_dir
    from ..experiments.sweeps import build_variants, check_kpis, parse_grid_option, sweep

    ex = _execution(args)
    out = Path(args.out) if args.out else Path("out") / f"{Path(args.scenario).stem}-sweep"
    check_out_dir(out, force=args.force, source=OUT_SOURCE)
    scenario = _load(args.scenario, args.set, _allowed(args))
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
    kpis = check_kpis(_kpi_option(args))
    build_variants(scenario, grid, args.zip)  # every problem before anything is written
    try:
        result = _connect_errors(
            lambda: sweep(scenario, grid, zip=args.zip, out=out, kpis=kpis, **ex), ex["scheduler"]
        )
    except KeyboardInterrupt:
        print(f"interrupted: finished runs are kept in {out}/parts; rerun with --resume", file=sys.stderr)
        raise
    if not args.quiet:
        design = "zip" if args.zip else "full factorial"
        _say(
            f"{len(result.variants)} variants ({design}) x {result.replications} replications, seed "
            f"{result.seed}; KPI mean ± half-width of its 95% interval:"
        )
        _say(result.table(kpis).to_string(index=False))
    _say(f"outputs written to {out}/")
    return EXIT_OK


def _cmd_compare(args: argparse.Namespace) -> int:
    from ..experiments.outdir import check_out_dir
    from ..experiments.paired import compare
    from ..experiments.sweeps import check_kpis

    packs = len(args.policy) > 2 or bool(args.fx)
    if args.fx and not args.policy:
        raise InputError(
            [Problem("<command line --fx>", None, None, "--fx needs the packs to compare: give --policy")]
        )
    if packs and (args.set_a or args.set_b):
        raise InputError(
            [
                Problem(
                    "<command line>",
                    None,
                    None,
                    "--set-a/--set-b choose the two sides of an A/B comparison; with three or more "
                    "--policy or with --fx, use --set (every pack) or a pack file per variant",
                )
            ]
        )
    if not args.policy and not args.set_a and not args.set_b:
        raise InputError(
            [
                Problem(
                    "<command line>",
                    None,
                    None,
                    "compare needs a difference between A and B: give --policy or --set-a/--set-b",
                )
            ]
        )
    fx = _fx_values(args.fx)  # a malformed option is reported before anything is read
    ex = _execution(args)
    out = Path(args.out) if args.out else Path("out") / f"{Path(args.scenario).stem}-compare"
    check_out_dir(out, force=args.force, source=OUT_SOURCE)
    scenario = _load(args.scenario, args.set, _allowed(args))
    kpis = check_kpis(_kpi_option(args)) if args.kpi else None
    if not packs and len(args.policy) == 2 and not args.set_a and not args.set_b:
        packs = _two_currencies(scenario, args.policy)  # A - B of two currencies means nothing
    if packs:
        return _compare_packs(args, scenario, fx, kpis, out, ex)
    sides: list[dict[str, Any]] = [{}, {}]
    if len(args.policy) == 2:
        sides = [{"policy": args.policy[0]}, {"policy": args.policy[1]}]
    elif len(args.policy) == 1:
        sides[1]["policy"] = args.policy[0]
    for side, items, src in (
        (0, args.set_a, "<command line --set-a>"),
        (1, args.set_b, "<command line --set-b>"),
    ):
        sides[side].update(_set_values(items, src))
    result = _connect_errors(
        lambda: compare(
            scenario, sides[0], sides[1], out=out, sources=("<command line A>", "<command line B>"), **ex
        ),
        ex["scheduler"],
    )
    if not args.quiet:
        _say(f"A: {result.a.label}\nB: {result.b.label}")
        _say(
            f"{result.replications} paired replications, seed {result.seed}; B - A with paired 95% interval:"
        )
        _say(result.table(kpis).to_string(index=False))
        sig = result.significant
        _say(f"significant: {', '.join(sig) if sig else 'none'}")
    _say(f"outputs written to {out}/")
    return EXIT_OK


def _fx_values(items: list[str]) -> dict[str, str]:
    """``--fx CUR=RATE`` options, each well formed and given once (rates are checked later)."""
    from ..experiments.paired import parse_fx_option

    fx: dict[str, str] = {}
    problems: list[Problem] = []
    for text in items:
        try:
            code, rate = parse_fx_option(text, "<command line --fx>")
        except InputError as exc:
            problems.extend(exc.problems)
            continue
        if code.upper() in fx:
            problems.append(Problem("<command line --fx>", None, None, f"--fx {code.upper()} is given twice"))
        fx[code.upper()] = rate
    if problems:
        raise InputError(problems)
    return fx


def _two_currencies(scenario: Any, policies: list[str]) -> bool:
    """True when the two packs are in two currencies (a pack that does not load: the A/B path says so)."""
    from ..experiments.sweeps import with_factors

    try:
        a, b = (with_factors(scenario, {"policy": p}, "<command line>") for p in policies)
    except InputError:
        return False
    return a.policy.currency != b.policy.currency


def _compare_packs(
    args: argparse.Namespace, scenario: Any, fx: dict[str, str], kpis: Any, out: Path, ex: dict[str, Any]
) -> int:
    """``compare`` with two or more packs: a KPI table per pack, differences against the first."""
    from ..experiments.paired import compare_packs, text_blocks

    specs: list[str | None] = list(args.policy) if len(args.policy) > 1 else [None, *args.policy]
    sources = [
        "<command line>" if p is None else f"<command line --policy {i + 1 - (specs[0] is None)}>"
        for i, p in enumerate(specs)
    ]
    if ex["charts"]:
        from ..viz import market_charts

        market_charts.install()
    result = _connect_errors(
        lambda: compare_packs(
            scenario,
            specs,
            fx=fx or None,
            out=out,
            kpis=kpis,
            sources=sources,
            where="<command line --policy>",
            fx_source="<command line --fx>",
            fx_option="--fx",
            **ex,
        ),
        ex["scheduler"],
    )
    if not args.quiet:
        import textwrap

        def say(text: str) -> None:  # a note as lines of 110 columns at most, whatever the labels
            _say("\n".join(textwrap.fill(line, 110) for line in text.split("\n")))

        first, base = result.labels[0], result.base_currency
        say(
            f"{len(result.packs)} packs x {result.replications} replications on the same seeds "
            f"(seed {result.seed}); KPI mean ± half-width of its 95% interval:"
        )
        _say(text_blocks(result.table(kpis)))
        _say()
        say(
            f"Differences against {first} (pack - {first}, paired by replication), ± half-width of "
            "the paired 95% interval;\n* significant (the interval excludes 0); p-values in differences.csv"
        )
        if result.fx:
            rates = ", ".join(f"1 {c} = {r:g} {base}" for c, r in result.fx.items())
            say(f"money differences in {base}, at {rates}")
        for lbl, cur in zip(result.labels[1:], result.currencies[1:], strict=True):
            if cur != base and cur not in result.fx:
                say(
                    f"money KPIs of {lbl} are in {cur}: not compared with {base} "
                    f"(give --fx {cur}=RATE, 1 {cur} = RATE {base})"
                )
        _say(text_blocks(result.diff_table(kpis, p_values=False)))
        sig = result.significant
        _say(f"significant against {first}:")
        for lbl, names in sig.items():
            say(f"  {lbl}: {', '.join(names) if names else 'none'}")
    _say(f"outputs written to {out}/")
    return EXIT_OK
