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
    result = sim.run(_population(tmp_path, seed), policy=pack, replications=1, events="full")
    assert result.scenario.policy.policy == pack
    run = result.runs[0]
    assert run.kpis["milestones_closed"] > 0
    # the ledger: clients paid what escrow, freelancers and the platform hold (for itself, and
    # for clients refunded to their platform balance), to the cent
    bal = run.balances.iloc[-1]
    assert bal["client"] == bal["escrow"] + bal["freelancer"] + bal["platform"] + bal["client_balance"]
    assert (run.balances["escrow"] >= 0).all() and (run.balances["platform"] >= 0).all()
    assert (run.balances["client_balance"] >= 0).all()
    # refunds land on the platform balance only where the pack says so
    refunded_to = set(run.ledger.loc[run.ledger["flow"] == "refunded", "to_account"].str.partition(":")[0])
    assert refunded_to <= ({"balance"} if pack == "fiverr" else {"client"}), refunded_to
    # 380 days after the last arrival every procedure has ended: no milestone is still in one
    ms = run.milestones
    stuck = ms[ms["state"].isin(IN_PROCEDURE)]
    assert stuck.empty, stuck[["contract", "milestone", "state"]].to_string()
    # and the money of every contract that ended is out of escrow: released, refunded, or a fee the
    # platform took from it (Guru's arbitration fee comes out of SafePay)
    led = run.ledger
    from_escrow = led[led["from_account"].str.startswith("escrow:") & (led["flow"] == "fees")]
    taken = int(from_escrow["amount"].sum())
    assert run.totals["funded"] == run.totals["released"] + run.totals["refunded"] + bal["escrow"] + taken


CLOSED_FORM = """
scenario: the review race, closed form
policy: upwork
seed: 5
start: 2026-01-05
until: 300d
population:
  arrivals: {count: 3000, over: 30d}
  milestones:
    count: 1
    amount: 200
  client:
    fund_delay: 0
    review:
      delay: {exponential: {mean: MEANd}}
      decision: {approve: 1.0}
  freelancer:
    accept: {probability: 1.0, delay: 0}
    work: 1d
    rework: 1d
"""


@pytest.mark.parametrize(("pack", "window"), [("upwork", 14.0), ("fiverr", 3.0), ("escrow_com", 3.0)])
def test_the_auto_released_share_is_exp_minus_window_over_the_mean_delay(pack, window, tmp_path):
    """A client who decides after an exponential delay of mean m loses the race to a window w with
    probability exp(-w/m): each pack's share of auto-approvals is that, for its own window."""
    import math

    mean = window  # exp(-1) = 0.368: far from 0 and 1, so the check is sharp
    path = tmp_path / "race.yaml"
    path.write_text(CLOSED_FORM.replace("MEAN", str(mean)), encoding="utf-8")
    result = sim.run(path, policy=pack, replications=1)
    ms = result.runs[0].milestones
    closed = ms[ms["outcome"].isin(["approved", "auto_approved"])]
    n = len(closed)
    assert n == 3000
    share = float((closed["outcome"] == "auto_approved").mean())
    expected = math.exp(-window / mean)
    sigma = math.sqrt(expected * (1 - expected) / n)
    assert abs(share - expected) < 4 * sigma, (pack, share, expected, sigma)


def test_sim_run_under_another_pack_and_policy_is_no_override_key(tmp_path):
    path = tmp_path / "race.yaml"
    path.write_text(CLOSED_FORM.replace("MEAN", "3"), encoding="utf-8")
    result = sim.run(path, policy="fiverr", replications=1)
    assert (result.scenario.policy.policy, result.scenario.policy.review.window) == ("fiverr", 3.0)
    with pytest.raises(sim.InputError, match="give policy=") as info:
        sim.run(path, overrides={"policy": "fiverr"})
    assert info.value.problems[0].key == "policy"


def test_time_until_the_freelancer_can_withdraw_counts_the_packs_hold():
    """time_to_available = first submission to release, plus hold.after_release counted from the
    release: 3 business days under peopleperhour (a Friday release clears on Wednesday)."""
    scenario = (
        Path(__file__).resolve().parent.parent
        / "scenarios/peopleperhour/hold_3_working_days_over_weekend.yaml"
    )
    kpis = sim.run(scenario).kpis
    # releases at Fri 15:00 (1.625 d after submission), Sat 10:00 (15 d), Mon 09:00 (1.375 d):
    # available Wed 15:00 (+5 d), Wed 10:00 (+4 d), Thu 09:00 (+3 d)
    assert kpis["time_to_payment_days_mean"]["mean"] == pytest.approx(6.0)
    assert kpis["time_to_available_days_mean"]["mean"] == pytest.approx((6.625 + 19 + 4.375) / 3)
    assert kpis["time_to_available_days_p50"]["mean"] == pytest.approx(6.625)


def test_a_plain_hold_adds_its_days_to_every_payment(tmp_path):
    result = sim.run(_population(tmp_path, 1), policy="fiverr", replications=1)
    k = result.runs[0].kpis
    assert k["time_to_available_days_mean"] == pytest.approx(k["time_to_payment_days_mean"] + 14)
    assert k["time_to_available_days_p90"] == pytest.approx(k["time_to_payment_days_p90"] + 14)
    upwork = sim.run(_population(tmp_path, 1), policy="upwork", replications=1).runs[0].kpis
    assert upwork["time_to_available_days_mean"] == upwork["time_to_payment_days_mean"]  # no hold
