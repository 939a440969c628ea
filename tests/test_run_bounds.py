"""Runs that would never end (issue 8): a behaviour that loops without time passing stops with a
clear message and exit 2; a huge horizon takes a bounded number of balance snapshots."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import sim
from sim.engine.simulation import MAX_SNAPSHOTS, Simulation

ROOT = Path(__file__).resolve().parent.parent

LOOP = """\
scenario: the client asks for changes at once, the freelancer resubmits at once
policy: upwork
seed: 1
until: 10d
population:
  arrivals: {count: 3, over: 1d}
  milestones: {amount: 100}
  client:
    review: {delay: 0, decision: {request_changes: 1}}
  freelancer:
    rework: 0
"""

HUGE = """\
scenario: a thousand years of a tiny marketplace
policy: upwork
seed: 1
until: 365000d
population:
  arrivals: {count: 3, over: 1d}
  milestones: {amount: 100}
"""


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sim", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def test_a_loop_without_time_passing_stops_with_exit_2(write, tmp_path: Path) -> None:
    path = write("loop.yaml", LOOP)
    out = tmp_path / "out"
    proc = _cli("run", str(path), "--out", str(out), "--events", "none", "--no-charts")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"error: {path}: population: the client's review delay and the freelancer's rework are both 0" in (
        proc.stderr
    )
    assert "without time passing" in proc.stderr and "client.review.delay or freelancer.rework" in proc.stderr
    assert not out.exists()


def test_the_loop_is_an_input_error_in_python_too(write) -> None:
    path = write("loop.yaml", LOOP)
    code = (
        "import sys, sim\n"
        "from sim.core.yamlio import InputError\n"
        "try:\n"
        f"    sim.run({str(path)!r}, workers=1, events='none')\n"
        "except InputError as exc:\n"
        "    (p,) = exc.problems\n"
        "    print(p.file)\n"
        "    print(p.message)\n"
        "    sys.exit(2)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr
    file, message = proc.stdout.splitlines()
    assert file == str(path)
    assert "contract c1 is submitted and sent back forever" in message


def test_a_limit_on_change_requests_ends_the_loop(write) -> None:
    text = LOOP.replace(
        "policy: upwork\n", "policy: upwork\npolicy_overrides: {review.max_change_requests: 3}\n"
    )
    result = sim.run(write("limited.yaml", text), workers=1)
    ms = result.milestones
    assert list(ms["change_requests"]) == [3, 3, 3]
    assert set(ms["outcome"]) == {"approved"}  # the 4th decision: the client approves instead


def test_a_huge_horizon_takes_a_bounded_number_of_snapshots(write, tmp_path: Path) -> None:
    path = write("huge.yaml", HUGE)
    out = tmp_path / "out"
    proc = _cli(
        "run", str(path), "--out", str(out), "--events", "none", "--no-charts", "--format", "csv", timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    with (out / "balances.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) <= MAX_SNAPSHOTS + 2
    assert rows[-1]["time"] == "365000"  # the last row is the horizon, with the final balances
    assert rows[-1]["freelancer_available"] == "300.00"
    # snapshots stop once nothing is pending: every contract finished within a few weeks
    assert float(rows[-2]["time"]) < 100


def test_snapshots_are_sized_to_the_horizon() -> None:
    from sim.inputs.scenario import load_scenario

    scenario = load_scenario(ROOT / "scenarios" / "upwork" / "auto_approve_after_silence.yaml")
    s = Simulation(scenario.policy, until=1_000_000.0, keep_events=False, balance_every=1.0)
    assert s.balance_every == 100.0  # 1,000,000 days / 10,000 snapshots
    for spec in scenario.contracts:
        s.add_contract(spec)
        s.script(spec)
    assert s.run() == 1_000_000.0
    times = [row[0] for row in s.rec.balances]
    assert len(times) <= 4 and times[0] == 0.0 and times[-1] == 1_000_000.0
