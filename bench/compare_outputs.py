"""Byte-compare the outputs of every scenario under two versions of the code.

    python bench/compare_outputs.py BASE_COMMIT [--repo PATH]

BASE_COMMIT's tree is extracted to a temporary folder (``git archive``) and run with
``PYTHONPATH=<tree> python -m sim``; the current code runs through the ``milestone-sim`` console
script next to this interpreter. Both run on the scenario files of the base tree (the same paths, so
``summary.json`` matches), and every CSV and ``summary.json`` is compared byte for byte.

Columns the new code adds to a CSV (``--new-columns``, by default the explanation columns of
events.csv: policy_keys, source, cause, args, ledger.csv's event and milestones.csv's held_days)
are cut off before comparing, and files only it writes (``--new-files``: contracts.csv,
aging.csv) are not compared; everything else, the other columns' bytes included, must be
identical (summary.json too: new KPIs show there as a difference to read).
"""

from __future__ import annotations

import argparse
import csv
import filecmp
import io
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

EXTRA = {"populations/marketplace_year.yaml": ["--replications", "2", "--set", "until=60d"]}


def without(path: Path, columns: set[str]) -> bytes:
    """The CSV's bytes with ``columns`` removed (written back the way the tables write CSV)."""
    text = path.read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or not columns & set(rows[0]):
        return text.encode()
    keep = [i for i, name in enumerate(rows[0]) if name not in columns]
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([[r[i] for i in keep] for r in rows])
    return out.getvalue().encode()


def same(old: Path, new: Path, columns: set[str]) -> bool:
    if filecmp.cmp(old, new, shallow=False):
        return True
    if old.suffix != ".csv":
        return False
    return without(new, columns) == without(old, set())


def run_all(cmd: list[str], cwd: Path, out: Path, env: dict[str, str], extra: list[str] = ()) -> list[str]:
    failures = []
    for scenario in sorted((cwd / "scenarios").rglob("*.yaml")):
        rel = scenario.relative_to(cwd / "scenarios").as_posix()
        target = out / rel.removesuffix(".yaml").replace("/", "__")
        args = [*cmd, "run", f"scenarios/{rel}", "--out", str(target), "--no-charts", "--quiet"]
        args += [*EXTRA.get(rel, []), *extra]
        proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
        if proc.returncode not in (
            0,
            1,
            2,
        ):  # 1: an expectation failed on purpose; 2: not a scenario (the .rc files compare)
            failures.append(f"{rel}: exit {proc.returncode}\n{proc.stderr[-2000:]}")
        target.parent.mkdir(parents=True, exist_ok=True)  # an audit or mapping file: no folder
        (target.parent / f"{target.name}.rc").write_text(str(proc.returncode))
    return failures


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("base")
    parser.add_argument(
        "--new-args",
        default="--format csv",
        help="options given to the new code's runs only (default: CSV tables, which populations "
        "write as Parquet since the performance issue, so that they compare with the base's)",
    )
    parser.add_argument("--repo", default=str(Path(__file__).resolve().parent.parent))
    parser.add_argument("--new-columns", default="policy_keys,source,cause,event,args,held_days")
    parser.add_argument(
        "--new-files", default="contracts.csv,aging.csv", help="files only the new code writes"
    )
    ns = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="compare_outputs_"))
    base = work / "base"
    base.mkdir()
    archive = subprocess.run(["git", "-C", ns.repo, "archive", ns.base], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(base)], input=archive.stdout, check=True)
    if not (base / "sim" / "rules").exists():  # installed as sim.rules from rules/
        shutil.copytree(base / "rules", base / "sim" / "rules")
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    base_env = {**env, "PYTHONPATH": str(base)}
    script = str(Path(sys.executable).parent / "milestone-sim")
    problems = run_all([sys.executable, "-m", "sim"], base, work / "out_base", base_env)
    problems += run_all([script], base, work / "out_new", env, ns.new_args.split())
    compared = 0
    for old in sorted((work / "out_base").rglob("*")):
        if not old.is_file() or not (old.suffix in (".csv", ".rc") or old.name == "summary.json"):
            continue
        new = work / "out_new" / old.relative_to(work / "out_base")
        compared += 1
        if not new.exists() or not same(old, new, set(ns.new_columns.split(",")) - {""}):
            problems.append(f"differs: {old.relative_to(work / 'out_base')}")
    for new in sorted((work / "out_new").rglob("*")):
        old = work / "out_base" / new.relative_to(work / "out_new")
        if new.is_file() and not old.exists() and new.name not in ns.new_files.split(","):
            problems.append(f"only in the new run: {new.relative_to(work / 'out_new')}")
    print(f"{compared} files compared in {work}")
    print("\n".join(problems) if problems else "all byte-identical")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
