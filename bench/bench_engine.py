"""Engine throughput against a bare SimPy model of the same lifecycle, in the same run.

Both play a year of the marketplace in scenarios/populations/marketplace_year.yaml (one
replication, full event log off). The rules-driven engine reads the policy, checks every rule,
posts every cent to the ledger and checks conservation after every event; the bare model
(bench/bare_simpy.py) hard-codes the lifecycle. The figure to quote is the ratio of closed
milestones per second. Runs alternate and the best of N is kept, to damp a noisy machine.

    python bench/bench_engine.py [--rate 20/d] [--repeat 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bare_simpy  # noqa: E402

from sim.core.units import parse_rate  # noqa: E402
from sim.experiments.runner import run_replication  # noqa: E402
from sim.inputs.scenario import load_scenario  # noqa: E402

CLOSED = ("released", "refunded", "resolved")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", default="20/d", help="contract arrivals per day")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each model; the best counts")
    args = parser.parse_args()
    sc = load_scenario(ROOT / "scenarios" / "populations" / "marketplace_year.yaml")
    rate = parse_rate(args.rate)
    sc = dataclasses.replace(sc, population=dataclasses.replace(sc.population, rate=rate))
    until = sc.until or 365.0
    best_engine = best_bare = float("inf")
    closed_engine = closed_bare = 0
    for _ in range(args.repeat):
        t = time.perf_counter()
        tables = run_replication(sc, 0, sc.seed, "none")
        best_engine = min(best_engine, time.perf_counter() - t)
        closed_engine = int(tables.milestones["state"].isin(CLOSED).sum())
        t = time.perf_counter()
        stats = bare_simpy.run(rate, until, sc.seed)
        best_bare = min(best_bare, time.perf_counter() - t)
        closed_bare = stats["milestones"]
    engine_rate = closed_engine / best_engine
    bare_rate = closed_bare / best_bare
    print(f"population: {args.rate} for {until:g} days, best of {args.repeat}")
    for label, closed, best, rate_ in (
        ("rules-driven engine", closed_engine, best_engine, engine_rate),
        ("bare SimPy model", closed_bare, best_bare, bare_rate),
    ):
        print(f"{label:<20} {closed:>8,} closed milestones in {best:6.2f} s = {rate_:>9,.0f}/s")
    print(f"ratio engine / bare: {engine_rate / bare_rate:.2f} (target >= 0.5)")


if __name__ == "__main__":
    main()
