"""Scaling of one population run: 10k, 100k and 1M milestones, wall time and peak memory.

Each size runs in a fresh process (so peak RSS is that run's own) with the full event log off,
on the marketplace-year population with the arrival rate scaled to give the wanted number of
milestones; the bare SimPy model (bench/bare_simpy.py) runs at the same rate beside it, so the
cost of scale itself (more live contracts, a bigger heap) shows apart from the engine's. Prints
one line per size and model. Not part of the test suite.

    python bench/bench_scale.py [10000 100000 1000000]
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "scenarios" / "populations" / "marketplace_year.yaml"
MILESTONES_PER_CONTRACT = 2.13  # E[max(1, Poisson(2))] = 2 + e^-2 ≈ 2.135

BARE_CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[2])
import bare_simpy
rate = float(sys.argv[1])
t, cpu = time.perf_counter(), time.process_time()
stats = bare_simpy.run(rate, 365.0, 7)
wall, cpu = time.perf_counter() - t, time.process_time() - cpu
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"milestones": stats["milestones"], "closed": stats["milestones"], "wall_s": wall,
                  "cpu_s": cpu, "peak_mib": peak}))
"""

CHILD = r"""
import json, resource, sys, time
import sim
from sim.experiments.runner import run_replication
from sim.inputs.scenario import load_scenario
path, rate, events = sys.argv[1], sys.argv[2], sys.argv[3]
sc = load_scenario(path, [])
import dataclasses
from sim.core.units import parse_rate
r = parse_rate(rate)
# the dispute team grows with the marketplace, so its load (not its queue) stays the same
agents = max(1, round(sc.population.dispute_agents * r / sc.population.rate))
sc = dataclasses.replace(sc, population=dataclasses.replace(sc.population, rate=r, dispute_agents=agents))
t, cpu = time.perf_counter(), time.process_time()
tables = run_replication(sc, 0, sc.seed, events)
wall, cpu = time.perf_counter() - t, time.process_time() - cpu
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
closed = int(tables.milestones["state"].isin(("released", "refunded", "resolved")).sum())
print(json.dumps({"milestones": len(tables.milestones), "closed": closed, "wall_s": wall, "cpu_s": cpu,
                  "peak_mib": peak, "events": len(tables.events), "released": tables.totals["released"]}))
"""


def measure(milestones: int, model: str = "engine") -> dict:
    """Run one population of about ``milestones`` milestones in a child process."""
    rate = milestones / MILESTONES_PER_CONTRACT / 365.0
    if model == "bare":
        args = ["-c", BARE_CHILD, f"{rate:.6f}", str(Path(__file__).resolve().parent)]
    else:
        args = ["-c", CHILD, str(SCENARIO), f"{rate:.6f}/d", "none"]
    t = time.perf_counter()
    out = subprocess.run([sys.executable, *args], check=True, capture_output=True, text=True)
    whole = time.perf_counter() - t
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "process_s": whole}


def main(argv: list[str]) -> None:
    sizes = [int(x) for x in argv] or [10_000, 100_000, 1_000_000]
    print("closed: milestones released, refunded or resolved (what both models count); us/ms: CPU")
    print("microseconds per closed milestone; ratio: engine closed/s over bare closed/s (wall, in-run)")
    head = f"{'target':>9} {'model':>6} {'closed':>9} {'wall s':>7} {'cpu s':>7} {'process s':>9}"
    print(f"{head} {'us/ms':>6} {'peak MiB':>8} {'ratio':>5}")
    for size in sizes:
        rows = {model: measure(size, model) for model in ("engine", "bare")}
        ratio = (rows["engine"]["closed"] / rows["engine"]["wall_s"]) / (
            rows["bare"]["closed"] / rows["bare"]["wall_s"]
        )
        for model, r in rows.items():
            per = r["cpu_s"] / max(r["closed"], 1) * 1e6
            print(
                f"{size:>9,} {model:>6} {r['closed']:>9,} {r['wall_s']:>7.1f} {r['cpu_s']:>7.1f} "
                f"{r['process_s']:>9.1f} {per:>6.0f} {r['peak_mib']:>8,.0f}"
                + (f" {ratio:>5.2f}" if model == "engine" else "")
            )


if __name__ == "__main__":
    main(sys.argv[1:])
