"""``milestone-sim transition``: a change on a date, each mode against no change, same seeds."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest

from sim.app.cli import main
from sim.experiments.transition import COHORT_KPIS, MODES, transition
from sim.inputs.scenario import load_scenario

YEAR = Path(__file__).parent.parent / "scenarios" / "populations" / "marketplace_year_2026.yaml"


@pytest.fixture(scope="module")
def result():
    scenario = dataclasses.replace(load_scenario(YEAR), until=120.0)
    fees = [
        {"name": "freelancer_service", "payer": "freelancer", "on": "release", "percent": 20},
        {"name": "client_marketplace", "payer": "client", "on": "funding", "percent": 5},
    ]
    new = scenario.with_overrides([("review.window", "5d"), ("fees", fees)]).policy
    return transition(scenario, new, dt.date(2026, 3, 6), replications=2)


def _diffs(result, cohort: str, mode: str) -> dict[str, float]:
    t = result.table
    part = t[(t["cohort"] == cohort) & (t["mode"] == mode)]
    return dict(zip(part["kpi"], part["diff"], strict=True))


def test_the_same_contracts_arrive_in_every_variant(result) -> None:
    for cohort in ("in_flight", "after"):
        for mode in MODES:
            assert _diffs(result, cohort, mode)["contracts"] == 0.0


def test_grandfathered_contracts_in_flight_are_untouched(result) -> None:
    # new_contracts: a contract offered before the change keeps the old rules: identical money and times
    diffs = _diffs(result, "in_flight", "new_contracts")
    assert all(diffs[k] == 0.0 for k in COHORT_KPIS), diffs
    # immediate: the same contracts pay the new 20% on what is released after the change
    assert _diffs(result, "in_flight", "immediate")["fees_total"] > 0


def test_contracts_started_after_the_change_see_it_under_every_mode(result) -> None:
    after = [_diffs(result, "after", m) for m in MODES]
    assert after[0] == after[1] == after[2]
    assert after[0]["fees_total"] > 0 and after[0]["auto_approved_share"] > 0
    assert after[0]["time_to_payment_days_mean"] < 0  # a 5-day window pays sooner


def test_weekly_series_share_the_past_and_part_after_the_change(result) -> None:
    w = result.weekly
    before = w[w["week"] < "2026-03-02"]
    for variant in MODES:
        mine = before[before["variant"] == variant].reset_index(drop=True)
        base = before[before["variant"] == "baseline"].reset_index(drop=True)
        assert mine[["escrow_avg", "auto_releases", "fees"]].equals(
            base[["escrow_avg", "auto_releases", "fees"]]
        )
    late = w[w["week"] >= "2026-04-06"]
    assert (
        late[late["variant"] == "immediate"]["auto_releases"].sum()
        > late[late["variant"] == "baseline"]["auto_releases"].sum()
    )


def test_cli_writes_the_report(tmp_path, capsys) -> None:
    out = tmp_path / "tr"
    code = main(
        ["transition", str(YEAR), "--on", "2026-02-02", "--to", "review.window=7d", "--replications", "1",
         "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    text = capsys.readouterr().out
    assert "contracts in flight at the change" in text and "new_milestones" in text
    for name in ("transition.csv", "weekly.csv", "runs.csv", "summary.json", "transition.png"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["on"] == "2026-02-02" and summary["changes"] == {"review.window": "7d"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--on", "2025-12-01", "--to", "review.window=7d"], "--on 2025-12-01 is outside the run"),
        (["--on", "2027-06-01", "--to", "review.window=7d"], "is outside the run"),
        (["--on", "soon", "--to", "review.window=7d"], "--on expects a date like 2027-03-01"),
        (["--on", "2026-03-02", "--to", "fiverr"], "a change on a date may change values only"),
        (["--on", "2026-03-02", "--to", "upwork", "--to", "review.window=7d"], "--to is one pack"),
        (["--on", "2026-03-02", "--to", "review.window=seven"], "cannot read duration"),
    ],
)
def test_bad_transition_options_exit_2(capsys, args, message) -> None:
    assert main(["transition", str(YEAR), *args]) == 2
    assert message in capsys.readouterr().err
