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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "scenarios" / "populations" / "marketplace_year.yaml"
MILESTONES_PER_CONTRACT = 2.13  # E[max(1, Poisson(2))] = 2 + e^-2 ≈ 2.135

BARE_CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[2])
import bare_simpy
rate = float(sys.argv[1])
t = time.perf_counter()
stats = bare_simpy.run(rate, 365.0, 7)
wall = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"milestones": stats["milestones"], "wall_s": wall, "peak_mib": peak}))
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
t = time.perf_counter()
tables = run_replication(sc, 0, sc.seed, events)
wall = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"milestones": len(tables.milestones), "wall_s": wall, "peak_mib": peak,
                  "events": len(tables.events), "released": tables.totals["released"]}))
"""


def measure(milestones: int, model: str = "engine") -> dict:
    """Run one population of about ``milestones`` milestones in a child process."""
    rate = milestones / MILESTONES_PER_CONTRACT / 365.0
    if model == "bare":
        args = ["-c", BARE_CHILD, f"{rate:.6f}", str(Path(__file__).resolve().parent)]
    else:
        args = ["-c", CHILD, str(SCENARIO), f"{rate:.6f}/d", "none"]
    out = subprocess.run([sys.executable, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> None:
    sizes = [int(x) for x in argv] or [10_000, 100_000, 1_000_000]
    print("milestones: all of the engine's; the bare model counts closed ones")
    print(f"{'target':>9} {'model':>6} {'milestones':>10} {'wall s':>8} {'per s':>9} {'peak MiB':>9}")
    for size in sizes:
        for model in ("engine", "bare"):
            r = measure(size, model)
            rate = r["milestones"] / r["wall_s"]
            print(
                f"{size:>9,} {model:>6} {r['milestones']:>10,} {r['wall_s']:>8.1f} {rate:>9,.0f} "
                f"{r['peak_mib']:>9,.0f}"
            )


if __name__ == "__main__":
    main(sys.argv[1:])
