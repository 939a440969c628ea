"""Time-varying populations (FORMAT section 8): schedules of rates, mixes, delays, the dispute team."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import sim
from sim.app.cli import main

BASE = """\
scenario: scheduled
policy: upwork_2026
start: 2026-01-05
until: {until}
seed: 5
population:
  arrivals:
    rate: {rate}
  milestones:
    count: 1
    amount: {{uniform: {{low: 100.00, high: 500.00}}}}
  client:
    review:
      delay: {delay}
      decision: {decision}
    responds: {{accept: 0.1, decline: 0.8, silent: 0.1, delay: {{exponential: {{mean: 1d}}}}}}
  freelancer:
    work: {{exponential: {{mean: 2d}}}}
    refund_response: {{approve: 0.1, dispute: 0.9, silent: 0.0, delay: {{exponential: {{mean: 1d}}}}}}
    responds: {{accept: 0.1, decline: 0.8, silent: 0.1, delay: {{exponential: {{mean: 1d}}}}}}
  platform:
    dispute_agents: {agents}
    dispute_handling: {{exponential: {{mean: 2d}}}}
"""
PLAIN = {
    "until": "100d",
    "rate": "10/d",
    "delay": "{exponential: {mean: 3d}}",
    "decision": "{approve: 0.8, refund: 0.2}",
    "agents": "2",
}


def _write(tmp_path: Path, name: str = "s.yaml", **values: str) -> Path:
    path = tmp_path / name
    path.write_text(BASE.format(**{**PLAIN, **values}), encoding="utf-8")
    return path


def test_a_one_step_schedule_is_the_value_itself_byte_for_byte(tmp_path) -> None:
    plain = _write(tmp_path, "plain.yaml")
    steps = {k: f"{{schedule: [{{from: 0d, value: {v}}}]}}" for k, v in PLAIN.items() if k != "until"}
    scheduled = _write(tmp_path, "scheduled.yaml", **steps)
    outs = []
    for path in (plain, scheduled):
        out = tmp_path / f"out_{path.stem}"
        assert main(["run", str(path), "--out", str(out), "--no-charts", "--quiet"]) == 0
        outs.append(out)
    for table in ("events.parquet", "ledger.parquet", "milestones.parquet", "balances.parquet"):
        assert (outs[0] / table).read_bytes() == (outs[1] / table).read_bytes(), table


def test_a_scheduled_arrival_rate_is_a_poisson_process_per_phase(tmp_path) -> None:
    path = _write(tmp_path, rate="{schedule: [{from: 0d, value: 10/d}, {from: 50d, value: 40/d}]}")
    counts = []
    for rep in range(3):
        events = sim.run(path, seed=rep).events
        offers = events[(events["action"] == "offer") & (events["outcome"] == "accepted")]["time"]
        counts.append(((offers < 50).sum(), (offers >= 50).sum()))
    for before, after in counts:  # means 500 and 2000; five standard deviations either side
        assert abs(before - 500) < 5 * math.sqrt(500)
        assert abs(after - 2000) < 5 * math.sqrt(2000)


def test_a_scheduled_decision_mix_applies_to_reviews_decided_after_its_step(tmp_path) -> None:
    mix = "{schedule: [{from: 0d, value: {approve: 1.0}}, {from: 50d, value: {refund: 1.0}}]}"
    events = sim.run(_write(tmp_path, decision=mix, agents="50")).events
    asks = events[(events["action"] == "request_refund") & (events["outcome"] == "accepted")]["time"]
    approvals = events[(events["action"] == "approve") & (events["outcome"] == "accepted")]["time"]
    assert len(asks) > 100 and asks.min() >= 50
    assert approvals.max() < 50


def test_a_team_outage_lengthens_the_wait_and_the_chart_shows_the_team(tmp_path) -> None:
    steady = sim.run(_write(tmp_path, "steady.yaml", agents="3"))
    outage = sim.run(
        _write(
            tmp_path,
            "outage.yaml",
            agents="{schedule: [{from: 0d, value: 3}, {from: 30d, value: 1}, {from: 60d, value: 3}]}",
        )
    )
    assert outage.scenario.population.team_sizes() == [(0.0, 3), (30.0, 1), (60.0, 3)]
    wait = lambda r: r.kpis["dispute_wait_days_mean"]["mean"]  # noqa: E731
    assert wait(outage) > 2 * wait(steady)
    queue = outage.runs[0].dispute_queue
    assert (queue["queue"] >= 0).all()  # agents away are not cases waiting
    fig = outage.plot.dispute_queue()
    assert "team 3 → 1 → 3" in fig.axes[0].get_title()
    assert fig.axes[1].get_ylabel() == "Agents on the team (dashed)"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {
                "rate": "{schedule: [{from: 0d, value: 10/d}, {from: 60d, value: 5/d}, "
                "{from: 40d, value: 8/d}]}"
            },
            "s.yaml:8:80: population.arrivals.rate.schedule[2].from: from times go backwards",
        ),
        ({"rate": "{schedule: [{from: 5d, value: 10/d}]}"}, "a schedule starts at from: 0d"),
        (
            {"agents": "{schedule: [{from: 0d, value: 2}, {from: 9d, value: many}]}"},
            "s.yaml:22:73: population.platform.dispute_agents: expected a whole number >= 1, got 'many'",
        ),
        (
            {"delay": "{schedule: [{from: 0d, value: {schedule: [{from: 0d, value: 1d}]}}]}"},
            "a scheduled value cannot hold another schedule",
        ),
        ({"rate": "{schedule: []}"}, "a schedule is a list of {from: <time>, value: ...}"),
        ({"rate": "{schedule: [{from: 0d, value: 10/d, to: 5d}]}"}, "unknown key 'to'"),
    ],
)
def test_bad_schedules_name_file_line_column(tmp_path, capsys, values, message) -> None:
    assert main(["validate", str(_write(tmp_path, **values))]) == 2
    assert message in capsys.readouterr().err


def test_parties_cannot_be_scheduled(tmp_path, capsys) -> None:
    path = _write(tmp_path)
    text = path.read_text(encoding="utf-8").replace(
        "  milestones:\n", "  parties: {clients: {schedule: [{from: 0d, value: 5}]}}\n  milestones:\n"
    )
    path.write_text(text, encoding="utf-8")
    assert main(["validate", str(path)]) == 2
    assert "parties.clients cannot change during a run" in capsys.readouterr().err
