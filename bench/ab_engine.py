"""The engine's cost against an earlier commit, measured A B A B in one run.

    python bench/ab_engine.py BASE_COMMIT [--new COMMIT] [--rounds 3] [--scenario PATH] [--policy upwork]

BASE_COMMIT's tree is extracted (``git archive``), and so is ``--new`` if given (default: the
working tree, through the installed ``milestone-sim``), and both versions play the same scenario (one
replication, ``--events none``, no charts) as whole processes, alternately, ``--rounds`` times
each. The figure to quote is the ratio of the best times (tree / base): below 1.05 means the
tree is within 5% of the base. On a shared machine the times swing by 5-10% from one run to the
next; ``--instructions`` counts instructions under valgrind instead (minutes, not seconds, and
the same figure every time), the engine's work alone: each run less the same run with until=1d.
Whole processes include start-up (about 1 s of imports), which is
the same for both and makes the ratio conservative.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def extract(commit: str, into: Path) -> Path:
    """A commit's tree in a folder, runnable with PYTHONPATH=folder (packs copied to sim/rules)."""
    into.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    if not (into / "sim" / "rules").exists():
        shutil.copytree(into / "rules", into / "sim" / "rules")
    return into


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base")
    parser.add_argument("--new", default=None, help="a commit to measure instead of the working tree")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scenario", default="scenarios/populations/marketplace_year.yaml")
    parser.add_argument("--policy", default=None, help="run both under this pack (--set policy=...)")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count instructions under valgrind (callgrind) instead of timing: deterministic on a noisy "
        "machine; each tree's run less the same run with until=1d (start-up, loading, writing)",
    )
    ns = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ab_engine_"))
    base = extract(ns.base, work / "base")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    args = ["run", ns.scenario, "--replications", "1", "--events", "none", "--no-charts", "--quiet"]
    if ns.policy:
        args += ["--set", f"policy={ns.policy}"]
    runs = {
        "base": ([sys.executable, "-m", "sim", *args], base, {**env, "PYTHONPATH": str(base)}),
        "tree": ([str(Path(sys.executable).parent / "milestone-sim"), *args], ROOT, env),
    }
    if ns.new:
        new = extract(ns.new, work / "new")
        runs["tree"] = ([sys.executable, "-m", "sim", *args], new, {**env, "PYTHONPATH": str(new)})
    if ns.instructions:
        return _instructions(runs, work)
    best = {"base": float("inf"), "tree": float("inf")}
    for i in range(ns.rounds):
        for name, (cmd, cwd, run_env) in runs.items():
            out = work / f"out_{name}_{i}"
            start = time.perf_counter()
            subprocess.run([*cmd, "--out", str(out)], cwd=cwd, env=run_env, check=True, capture_output=True)
            took = time.perf_counter() - start
            best[name] = min(best[name], took)
            print(f"round {i + 1} {name}: {took:.2f} s", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    ratio = best["tree"] / best["base"]
    print(f"best: base {best['base']:.2f} s, tree {best['tree']:.2f} s, ratio {ratio:.3f}")
    return 0


def _instructions(runs: dict, work: Path) -> int:
    """Instructions of each tree's engine work: the run, less the run with ``until=1d``."""
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: --instructions needs it", file=sys.stderr)
        return 2
    counts: dict[str, float] = {}
    for name, (cmd, cwd, run_env) in runs.items():
        got = []
        for extra in ([], ["--set", "until=1d"]):
            out = work / f"out_{name}_{len(got)}"
            vg = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
            done = subprocess.run(
                [*vg, *cmd, *extra, "--out", str(out)],
                cwd=cwd,
                env={**run_env, "PYTHONHASHSEED": "0"},
                check=True,
                capture_output=True,
                text=True,
            )
            found = [line for line in done.stderr.splitlines() if "Collected :" in line]
            got.append(int(found[-1].split(":")[-1].strip().replace(",", "")))
        counts[name] = (got[0] - got[1]) / 1e6
        print(
            f"{name}: {got[0] / 1e6:,.0f} M instructions, {got[1] / 1e6:,.0f} M without the year: "
            f"{counts[name]:,.0f} M for the engine's work",
            flush=True,
        )
    shutil.rmtree(work, ignore_errors=True)
    print(f"ratio tree / base: {counts['tree'] / counts['base']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
