"""Sampled behaviour that follows the pack (rules as data, part 5): funding as the pack's
milestones.funding allows, answers at any procedure stage from responds / stages, the dispute team
at every stage that waits for the platform, and the same population compared under two packs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

import sim
from sim.behaviour.population import stage_answer
from sim.core.problems import Collector
from sim.core.yamlio import load_file
from sim.experiments.sweeps import apply_factors
from sim.inputs.population_spec import parse_population, unknown_stages
from sim.policy.procedures import Stage

ROOT = Path(__file__).resolve().parent.parent
POPULATIONS = ROOT / "scenarios" / "populations"


def _share(result: sim.Result, name: str) -> float:
    return result.kpis[name]["mean"]


def _accepted(result: sim.Result, action: str) -> int:
    ev = result.events
    return int(((ev["action"] == action) & (ev["outcome"] == "accepted")).sum())


# ------------------------------------------------------------------------------ funding

ANY_NUMBER = """\
scenario: clients fund ahead
policy: upwork
seed: 5
until: 200d
policy_overrides: {{milestones.funding: {funding}}}
population:
  arrivals: {{count: 300, over: 20d}}
  milestones: {{count: 3, amount: 100}}
  client:
    fund_delay: 0.5d
    review: {{delay: {{exponential: {{mean: 3d}}}}, decision: {{approve: 0.8, request_changes: 0.2}}}}
  freelancer:
    work: {{gamma: {{mean: 4d, cv: 0.5}}}}
    rework: 1d
"""


def _most_in_escrow(ms) -> tuple[int, int]:
    """(most milestones of one contract holding escrow at one instant, contracts where 2+ did)."""
    most = overlapping = 0
    for _cid, g in ms.groupby("contract"):
        spans = [
            (a, np.inf if np.isnan(b) else b) for a, b in zip(g["funded_at"], g["closed_at"], strict=True)
        ]
        spans = [(a, b) for a, b in spans if not np.isnan(a)]
        here = max((sum(1 for a, b in spans if a <= t < b) for t, _ in spans), default=0)
        most = max(most, here)
        overlapping += here >= 2
    return most, overlapping


def test_any_number_funds_the_next_milestone_when_one_is_submitted(write):
    result = sim.run(write("any.yaml", ANY_NUMBER.format(funding="any_number")))
    ms = result.milestones
    assert (result.events["outcome"] == "rejected").sum() == 0  # the behaviour asks only what the pack allows
    most, overlapping = _most_in_escrow(ms)
    assert most == 3  # m1 and m2 in review while m3 is worked on
    assert overlapping == 296  # of 300 contracts
    wide = ms.pivot(index="contract", columns="milestone", values=["funded_at", "first_submitted_at"])
    lead = (wide["funded_at"]["m2"] - wide["first_submitted_at"]["m1"]).round(9)
    assert list(lead.unique()) == [0.5]  # the rule: fund_delay after the previous first submission
    assert set(ms["outcome"]) == {"approved", "auto_approved"}
    assert result.kpis["released_total"]["mean"] == 90_000.00  # every milestone paid in full


def test_one_at_a_time_keeps_one_milestone_in_escrow(write):
    result = sim.run(write("one.yaml", ANY_NUMBER.format(funding="one_at_a_time")))
    assert (result.events["outcome"] == "rejected").sum() == 0
    assert _most_in_escrow(result.milestones) == (1, 0)
    ms = result.milestones
    wide = ms.pivot(index="contract", columns="milestone", values=["funded_at", "closed_at"])
    assert ((wide["funded_at"]["m2"] - wide["closed_at"]["m1"]).round(9) == 0.5).all()


# ------------------------------------------------------------------------------ responds: validation


HEAD = "scenario: bad\npolicy: upwork\nseed: 1\nreplications: 1\nuntil: 10d\npopulation:\n"
HEAD += "  arrivals: {rate: 4/d}\n  milestones: {amount: 100}\n"


@pytest.mark.parametrize(
    ("snippet", "where", "needle"),
    [
        (
            "  client:\n    responds: {accept: 0.5, decline: 0.2}\n",
            "10:15",
            "probabilities add up to 0.7, not 1",
        ),
        ("  freelancer:\n    responds: {accept: 1, wait: 3}\n", "10:27", "unknown key 'wait'"),
        ("  freelancer:\n    responds: {silent: 1, pay_fee: 2}\n", "10:36", "a number from 0 to 1, got 2"),
        (
            "  client:\n    responds: {accept: 1, delay: {exponential: {mean: -1d}}}\n",
            "10:55",
            "zero or positive",
        ),
        (
            "  stages:\n    dispute: {accept: 1}\n",
            "10:5",
            "'dispute' is not a stage name: write procedure.stage",
        ),
        ("  stages:\n    a.b.c: {accept: 1}\n", "10:5", "'a.b.c' is not a stage name"),
        (
            "  stages:\n    dispute.proposal: {accept: 0.9, silent: 0.2}\n",
            "10:23",
            "probabilities add up to 1.1",
        ),
        (
            "  stages:\n    dispute.proposal: {client: {accept: 1}, silent: 0}\n",
            "10:23",
            "or {client: {...}, freelancer: {...}}, not both",
        ),
        (
            "  stages:\n    arbitration.offer: {freelancer: {pay_fee: 1.5}}\n",
            "10:47",
            "a number from 0 to 1, got 1.5",
        ),
        ("  stages:\n    dispute.proposal: 3\n", "10:23", "expected a mapping of accept, decline"),
        (
            "  freelancer:\n    refund_response: {approve: 1}\n"
            "  stages:\n    escrow_refund.respond: {decline: 1}\n",
            "12:5",
            "escrow_refund.respond is set twice",
        ),
    ],
)
def test_bad_responds_exit_2_with_file_line_column(write, capsys, snippet, where, needle):
    from sim.app.cli import main

    path = write("bad.yaml", HEAD + snippet)
    code = main(["run", str(path), "--out", str(path.parent / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"bad.yaml:{where}:" in err, err
    assert needle in err, err
    assert "Traceback" not in err
    assert not (path.parent / "out").exists()


def test_stage_names_the_pack_lacks_are_warnings_not_errors():
    scenario = sim.load_scenario(POPULATIONS / "marketplace_year_2026.yaml")
    pop = scenario.population
    assert unknown_stages(pop, scenario.policy) == []
    missing = unknown_stages(pop, sim.load_policy("upwork"))
    assert [name for name, _ in missing] == ["dispute.proposal", "arbitration.offer"]
    assert "no stage of policy upwork" in missing[0][1] and "escrow_refund.respond" in missing[0][1]
    doc = load_file(POPULATIONS / "marketplace_year_2026.yaml")
    col = Collector(doc)
    parsed = parse_population(col, doc.data["population"], POPULATIONS, 2, policy=sim.load_policy("upwork"))
    assert parsed == pop and col.problems == []
    assert [(w.line, w.column) for w in col.warnings] == [(49, 5), (53, 5)]


# ------------------------------------------------------------------------------ answers at any stage


def test_answers_map_onto_the_stages_own_answers():
    def stage(answers: dict) -> Stage:
        return Stage(name="s", party="client", window=7.0, answers=answers)

    both = stage({"accept": "release", "decline": "next"})
    assert [stage_answer(both, c) for c in ("accept", "decline", "silent")] == ["accept", "decline", None]
    dormant = stage({"release": "release", "refund": {"procedure": "escrow_refund"}})
    assert [stage_answer(dormant, c) for c in ("accept", "decline", "silent")] == ["release", "refund", None]
    single = stage({"request_release": "next"})
    assert [stage_answer(single, c) for c in ("accept", "decline")] == ["request_release", None]
    declined_first = stage({"decline": "refund", "keep": "release"})
    assert [stage_answer(declined_first, c) for c in ("accept", "decline")] == ["keep", "decline"]
    fee_only = Stage(name="s", party="both", window=7.0, fee={"fixed": 100}, on_timeout="refund")
    assert stage_answer(fee_only, "accept") is None


DISPUTED = """\
scenario: every refund request is disputed
policy: upwork_2026
start: 2026-01-05
seed: 3
until: 150d
population:
  arrivals: {{count: 100, over: 10d}}
  milestones: {{count: 1, amount: 100}}
  client:
    fund_delay: 0d
    review: {{delay: 1d, decision: {{refund: 1}}}}
    responds: {{accept: 1, delay: 1d}}
  freelancer:
    work: 2d
    refund_response: {{dispute: 1, delay: 0.5d}}
    responds: {{accept: 1, delay: 0.25d}}
  platform:
    dispute_agents: 100
    dispute_handling: 2d
    dispute_outcome: {{split: 1}}
    split_fraction: 0.25
{stages}"""


def _disputed(write, name: str, stages: str = "") -> sim.Result:
    text = DISPUTED.format(stages=f"  stages:\n{stages}" if stages else "")
    result = sim.run(write(f"{name}.yaml", text))
    assert (result.events["outcome"] == "rejected").sum() == 0
    assert _accepted(result, "dispute") == 100
    return result


def test_client_responds_at_the_dispute_stage_upwork_lacks(write):
    result = _disputed(write, "accepts")
    ms = result.milestones
    assert dict(ms["outcome"].value_counts()) == {"released": 100}  # the client accepts: release
    assert _accepted(result, "respond") == 100
    assert _accepted(result, "resolve_dispute") == 0  # nothing reaches the platform
    assert (ms["released"] == 10_000).all()
    assert (ms["closed_at"] - ms["first_submitted_at"]).round(9).eq(2.5).all()  # 1d + 0.5d + 1d


def test_a_stage_override_changes_the_outcome_shares(write):
    accepted = _disputed(write, "accepts")
    declined = _disputed(write, "declines", "    dispute.client_response: {decline: 1}\n")
    assert _share(accepted, "disputed_share") == 0.0
    assert _share(declined, "disputed_share") == 1.0  # mediation, proposal accepted by both
    assert dict(declined.milestones["outcome"].value_counts()) == {"resolved": 100}
    # per party: the freelancer declines the proposal, so the money goes to arbitration, where
    # nobody pays the fee: the client is refunded
    split = _disputed(
        write,
        "freelancer_declines",
        "    dispute.client_response: {decline: 1}\n    dispute.proposal: {freelancer: {decline: 1}}\n",
    )
    assert _share(split, "refunded_share") == 1.0
    assert (split.milestones.query("milestone == 'm1'")["outcome"] == "auto_refunded").all()


def test_the_dispute_team_makes_the_mediation_proposal_and_the_parties_answer_it(write):
    result = _disputed(write, "proposal", "    dispute.client_response: {decline: 1}\n")
    ev = result.events
    decisions = ev[ev["action"] == "resolve_dispute"]
    assert len(decisions) == 100 and set(decisions["actor"]) == {"platform"}
    assert decisions["message"].str.startswith("proposal: 25.00 USD released, 75.00 USD refunded").all()
    accepted = ev[ev["message"].str.startswith("proposal accepted: 25.00 USD released", na=False)]
    assert len(accepted) == 100
    ms = result.milestones
    assert (ms["released"] == 2_500).all() and (ms["refunded"] == 7_500).all()
    # filed at 4.5d + 1d (the client's decline), decided 2d later, accepted by the client 1d after that
    c1 = ev[ev["contract"] == "c1"]
    times = dict(zip(c1["action"] + ":" + c1["actor"], c1["time"] - c1["time"].iloc[0], strict=False))
    assert times["resolve_dispute:platform"] == pytest.approx(6.5)
    assert result.kpis["dispute_wait_days_mean"]["mean"] == 0.0  # 100 agents: nobody queues


def test_stage_fees_are_paid_with_their_probability(write):
    arbitrate = "    dispute.client_response: {decline: 1}\n    dispute.proposal: {decline: 1}\n"
    both = _disputed(
        write,
        "both_pay",
        arbitrate
        + "    arbitration.offer: {client: {pay_fee: 1, delay: 1d}, freelancer: {pay_fee: 1, delay: 2d}}\n",
    )
    assert _accepted(both, "pay_fee") == 200
    assert _accepted(both, "all_paid") == 100
    assert _accepted(both, "resolve_dispute") == 200  # the mediation proposal, then the binding decision
    assert dict(both.milestones["outcome"].value_counts()) == {"resolved": 100}
    ledger = both.ledger
    arbitration = ledger[(ledger["flow"] == "stage_fee") & (ledger["amount"] == 29_100)]
    assert len(arbitration) == 200 and (arbitration["to_account"] == "platform").all()  # kept: both paid
    alone = _disputed(write, "client_pays", arbitrate + "    arbitration.offer: {client: {pay_fee: 1}}\n")
    assert _accepted(alone, "pay_fee") == 100
    assert set(alone.events.query("action == 'pay_fee'")["actor"]) == {"client"}
    assert _share(alone, "refunded_share") == 1.0  # to_payer: the client paid alone
    returned = alone.events[alone.events["message"] == "the client's fee is returned"]
    assert len(returned) == 100
    nobody = _disputed(write, "nobody_pays", arbitrate)
    assert _accepted(nobody, "pay_fee") == 0  # pay_fee defaults to 0


CUSTOM_PACK = """\
policy: mediated
extends: upwork
procedures:
  dispute:
    stages:
      - {name: mediate, party: platform, decision: proposal}
      - name: answer
        party: both
        window: 3d
        answers: {accept: apply_proposal, decline: platform}
        on_timeout: platform
"""


@pytest.mark.parametrize(("freelancer", "decisions"), [("accept", 1), ("decline", 2)])
def test_the_dispute_team_serves_any_stage_that_waits_for_the_platform(write, freelancer, decisions):
    write("mediated.yaml", CUSTOM_PACK)
    text = DISPUTED.format(stages="").replace("policy: upwork_2026", "policy: mediated.yaml")
    text = text.replace("responds: {accept: 1, delay: 0.25d}", f"responds: {{{freelancer}: 1, delay: 0.25d}}")
    result = sim.run(write("custom.yaml", text))
    assert (result.events["outcome"] == "rejected").sum() == 0
    assert _accepted(result, "resolve_dispute") == 100 * decisions
    ms = result.milestones
    assert dict(ms["outcome"].value_counts()) == {"resolved": 100}
    assert (ms["released"] == 2_500).all()
    last = (
        result.events[result.events["action"].isin(["resolve_dispute", "respond"])].groupby("contract").last()
    )
    words = "dispute decided" if freelancer == "decline" else "proposal accepted"
    assert last["message"].str.startswith(words).all()


# ------------------------------------------------------------------------------ one population, two packs


def _scenario_2026(**factors) -> sim.Scenario:
    return apply_factors(sim.load_scenario(POPULATIONS / "marketplace_year_2026.yaml"), factors)


def test_the_2026_population_under_upwork_is_marketplace_year():
    """The responds and stages blocks are never used under upwork: the same draws, the same run."""
    old = apply_factors(sim.load_scenario(POPULATIONS / "marketplace_year.yaml"), {"until": "30d"})
    new = _scenario_2026(policy="upwork", until="30d")
    a, b = sim.run(old, replications=1), sim.run(new, replications=1)
    assert len(a.milestones) > 1000
    for name in ("events", "ledger", "milestones", "balances"):
        assert getattr(a, name).equals(getattr(b, name)), name


def test_compare_upwork_with_upwork_2026_on_the_same_population():
    result = sim.compare(
        _scenario_2026(until="60d"),
        "upwork",
        "upwork_2026",
        replications=4,
        charts=False,
        backend="inprocess",
    )
    diff = result.diff.set_index("kpi")
    # the same contracts and the same funding: common random numbers
    for kpi in ("contracts", "milestones", "funded_total", "bonus_total", "time_to_payment_days_mean"):
        assert diff.loc[kpi, "diff"] == 0.0, kpi
    # fees: none under upwork; under upwork_2026 5% on funding, 10% on release and the initiation fee
    fees = diff.loc["fees_total"]
    assert fees["a_mean"] == 0.0 and fees["significant"] and fees["ci_low"] > 80_000
    runs = result.runs.set_index(["side", "replication"])
    b = runs.loc["B"]
    floor = 0.05 * b["funded_total"] + 0.10 * b["released_total"]
    assert ((b["fees_total"] >= floor) & (b["fees_total"] <= floor + 4.95 * b["contracts"] + 600)).all()
    # the platform decides fewer disputes: under upwork_2026 the client may accept or stay silent
    # (both release the money), and a declined dispute is mediated before anything is decided
    resolved = (runs["disputed_share"] * runs["milestones_closed"]).round()
    assert (resolved.loc["B"] < resolved.loc["A"]).all()
    assert list(resolved.loc["A"]) == [4, 9, 7, 11] and list(resolved.loc["B"]) == [1, 0, 0, 2]
    share = diff.loc["disputed_share"]
    assert share["diff"] < 0 and share["significant"] and share["ci_high"] < 0
    assert share["ci_low"] < share["diff"] < share["ci_high"]  # a paired interval, reported


def test_a_client_asks_for_revisions_first_where_the_pack_wants_them():
    """PeoplePerHour's two iterations before a refund: a sampled client who wants the money back
    rejects the invoice until it may ask, so no request is refused and refunds follow two reworks."""
    base = sim.load_scenario(Path(__file__).resolve().parent.parent / "scenarios/markets/freelance_year.yaml")
    scenario = dataclasses.replace(base, policy_ref="peopleperhour", until=90.0).with_overrides([])
    result = sim.run(scenario, replications=1)
    ev, ms = result.events, result.milestones
    assert not ((ev["outcome"] == "rejected") & (ev["rule"] == "revisions_first")).any()
    asked = ev[(ev["action"] == "request_refund") & (ev["outcome"] == "accepted")]
    assert len(asked) > 20
    keys = list(zip(asked["contract"], asked["milestone"], strict=True))
    asked_ms = ms.set_index(["contract", "milestone"]).loc[keys]
    assert (asked_ms["change_requests"] >= 2).all()
    decided = ms[ms["outcome"].isin(["refunded", "resolved"]) & ms["first_submitted_at"].notna()]
    assert len(decided) > 20
