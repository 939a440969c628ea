"""Every built-in pack on random populations: money is conserved (the engine checks it after every
event and would raise), escrow and platform never go negative, and every procedure ends."""

from __future__ import annotations

from pathlib import Path

import pytest

import sim
from sim.policy import builtin_packs

ROOT = Path(__file__).resolve().parent.parent
MARKETS = ROOT / "scenarios" / "markets" / "freelance_year.yaml"
IN_PROCEDURE = {"refund_requested", "disputed", "dormant"}


def _population(tmp_path: Path, seed: int) -> Path:
    text = MARKETS.read_text(encoding="utf-8")
    text = text.replace("arrivals: {rate: 15/d}", "arrivals: {count: 60, over: 20d}")
    text = text.replace("until: 365d", "until: 400d").replace("seed: 11", f"seed: {seed}")
    path = tmp_path / "pop.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("pack", sorted(builtin_packs()))
@pytest.mark.parametrize("seed", [1, 2])
def test_every_pack_conserves_money_and_ends_every_procedure(pack, seed, tmp_path):
    result = sim.run(_population(tmp_path, seed), overrides={"policy": pack}, replications=1, events="full")
    assert result.scenario.policy.policy == pack
    run = result.runs[0]
    assert run.kpis["milestones_closed"] > 0
    # the ledger: clients paid what escrow, freelancers and the platform hold, to the cent
    bal = run.balances.iloc[-1]
    assert bal["client"] == bal["escrow"] + bal["freelancer"] + bal["platform"]
    assert (run.balances["escrow"] >= 0).all() and (run.balances["platform"] >= 0).all()
    # 380 days after the last arrival every procedure has ended: no milestone is still in one
    ms = run.milestones
    stuck = ms[ms["state"].isin(IN_PROCEDURE)]
    assert stuck.empty, stuck[["contract", "milestone", "state"]].to_string()
    # and the money of every contract that ended is out of escrow
    assert run.totals["funded"] == run.totals["released"] + run.totals["refunded"] + bal["escrow"]
