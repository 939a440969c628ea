"""Parallel speed-up of a 16-run sweep: 1 local worker process against 2 (target: at least 1.7x).

The sweep is the marketplace-year population under two review windows, 8 replications each,
with the full event log off (what a sweep keeps). Each configuration starts its own process pool,
so the wall times include the workers' start-up; the runs' own CPU time is printed too. Not part
of the test suite.

    python bench/bench_parallel.py [--workers 2] [--replications 8] [--scenario FILE]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "scenarios" / "populations" / "marketplace_year.yaml"


def timed_sweep(scenario: Path, workers: int, replications: int, out: Path) -> dict[str, float]:
    """Wall time, summed in-worker run time and milestone count of one sweep."""
    import sim
    from sim.experiments.executors import LocalProcesses

    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    with LocalProcesses(workers) as backend:
        res = sim.sweep(
            scenario,
            {"review.window": ["7d", "14d"]},
            replications=replications,
            backend=backend,
            out=out,
            charts=False,
            progress=False,
        )
    wall = time.perf_counter() - t0
    assert res.timings is not None
    return {
        "wall": wall,
        "busy": float(res.timings["seconds"].sum()),
        "cpu": float(res.timings["cpu_seconds"].sum()),
        "milestones": float(res.runs["milestones"].sum()),
        "runs": len(res.runs),
        "load": load,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", type=Path, default=SCENARIO)
    ap.add_argument("--workers", type=int, default=2, help="the parallel configuration (default 2)")
    ap.add_argument("--replications", type=int, default=8, help="per variant; 2 variants (default 8)")
    args = ap.parse_args()

    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        one = timed_sweep(args.scenario, 1, args.replications, Path(tmp) / "one")
        many = timed_sweep(args.scenario, args.workers, args.replications, Path(tmp) / "many")
        a = pd.read_parquet(Path(tmp) / "one" / "sweep.parquet")
        b = pd.read_parquet(Path(tmp) / "many" / "sweep.parquet")
        same = a.equals(b)
    ms = one["milestones"]
    print(
        f"sweep: {one['runs']} runs of {args.scenario.name}, {ms:,.0f} milestones in all, "
        f"{os.cpu_count()} CPUs"
    )
    for n, r in ((1, one), (args.workers, many)):
        print(
            f"{n} worker{'s' if n > 1 else ' '}: {r['wall']:7.2f} s wall, {r['busy']:6.2f} s in runs, "
            f"{ms / r['wall']:8,.0f} milestones/s; the runs got {r['cpu'] / r['busy']:.0%} of a CPU each"
            f" (load average before: {r['load']:.2f})"
        )
    print(f"speed-up: {one['wall'] / many['wall']:.2f}x (target >= 1.7x); identical results: {same}")
    share = min(one["cpu"] / one["busy"], many["cpu"] / many["busy"])
    if share < 0.9:
        print(
            f"note: other processes took CPU time from the workers (as little as {share:.0%} of a CPU "
            "per run); the speed-up is understated, rerun on an idle machine"
        )


if __name__ == "__main__":
    main()
