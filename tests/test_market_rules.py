"""The research rules encoded last (issue 10): Fiverr's early payout, reversed releases, extension
requests and balance spending; PeopleHour's invoices with a shortfall and refunds that arrive a
working day later; Guru's fee on the whole SafePay balance and arbitration that needs a raised
invoice; Escrow.com's notices and shipping time.

Random action sequences (hypothesis) drive the real engine under each of these packs, the new
actions included, and check money after every step; unit tests pin the edges the scenarios in
``scenarios/<pack>/`` do not.
"""

from __future__ import annotations

import datetime as dt
import os
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.core.yamlio import InputError
from sim.engine.simulation import Simulation
from sim.inputs.scenario import ContractSpec, MilestoneSpec
from sim.machine.contract import Action, apply
from sim.machine.records import Contract, Milestone
from sim.policy import load_policy

EXAMPLES = int(os.environ.get("MILESTONE_SIM_FUZZ_EXAMPLES", "150")) // 2
START = dt.date(2026, 1, 5)  # a Monday: packs counting business days need a calendar

C = "client"
F = "freelancer"
P = "platform"


def _steps() -> st.SearchStrategy:
    """One step: an action of the packs' whole vocabulary (new actions weighted in), or time."""
    mid = st.sampled_from(["m1", "m2"])
    money = st.sampled_from([1_000, 5_000, 20_000, 40_000, 90_000])
    actions = st.one_of(
        st.builds(lambda m: Action(F, "submit", m), mid),
        st.builds(lambda m, a: Action(F, "submit", m, amount=a), mid, money),
        st.builds(lambda m: Action(C, "approve", m), mid),
        st.builds(lambda m, a: Action(C, "approve", m, amount=a), mid, money),
        st.builds(lambda m: Action(C, "request_changes", m), mid),
        st.builds(lambda m: Action(C, "fund", m), mid),
        st.builds(lambda m: Action(F, "early_payout", m), mid),
        st.builds(lambda m: Action(P, "reverse_release", m), mid),
        st.builds(lambda m, d: Action(F, "request_extension", m, due=d), mid, st.sampled_from([12.0, 30.0])),
        st.builds(lambda m: Action(C, "accept_extension", m), mid),
        st.builds(lambda m: Action(C, "decline_extension", m), mid),
        st.builds(lambda m: Action(C, "cancel_late", m), mid),
        st.builds(lambda m: Action(C, "request_refund", m), mid),
        st.just(Action(C, "request_refund")),
        st.builds(lambda m: Action(C, "dispute_invoice", m), mid),
        st.builds(lambda m: Action(C, "reject_delivery", m), mid),
        st.builds(lambda who, ans: Action(who, "respond", answer=ans), st.sampled_from([C, F]),
                  st.sampled_from(["accept", "decline", "arbitrate", "withdraw"])),
        st.builds(lambda who: Action(who, "pay_fee"), st.sampled_from([C, F])),
        st.builds(lambda r: Action(P, "resolve_dispute", release=r, refund=0), st.sampled_from([0, 500])),
        st.just(Action(C, "end_contract")),
    )  # fmt: skip
    return st.one_of(actions, st.sampled_from([0.5, 1.0, 3.0, 5.0, 15.0]))


def _check(sim: Simulation) -> None:
    sim.ledger.check()  # conservation, escrow/platform/balances never negative
    for c in sim.contracts.values():
        assert c.escrow() == sim.ledger.balances.get(c.escrow_account, 0)
        assert c.in_transit >= 0
        for m in c.milestones:
            assert m.pending >= 0 and m.escrowed >= 0


@pytest.mark.parametrize("pack", ["fiverr", "peopleperhour", "guru", "escrow_com"])
@settings(
    max_examples=EXAMPLES,
    derandomize=os.environ.get("MILESTONE_SIM_FUZZ_DERANDOMIZE", "1") != "0",
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(steps=st.lists(_steps(), max_size=25))
def test_random_actions_under_the_new_rules_keep_the_money_right(pack, steps):
    sim = Simulation(load_policy(pack), start=START)
    ms = (MilestoneSpec("m1", 30_000, 10.0), MilestoneSpec("m2", 20_000, 20.0))
    sim.add_contract(ContractSpec("c1", "bo", "ana", ms, ()))
    sim.add_contract(ContractSpec("c2", "bo", "ana", (MilestoneSpec("m1", 9_000, 5.0),), ()))
    for cid in ("c1", "c2"):
        sim.act(cid, Action(C, "offer"))
        sim.act(cid, Action(C, "fund", "m1"))
        sim.act(cid, Action(F, "accept_offer"))
    _check(sim)
    for i, step in enumerate(steps):
        if isinstance(step, float):
            sim.env.run(until=sim.env.now + step)
        else:
            sim.act("c1" if i % 3 else "c2", step)
        _check(sim)
    sim.env.run(until=sim.env.now + 400)  # every hold ends, every refund arrives
    _check(sim)
    for c in sim.contracts.values():
        assert c.in_transit == 0  # no refund is left on its way
        if c.procedure is None:
            assert all(m.pending == 0 for m in c.milestones)  # every hold ended or was paid out


# ------------------------------------------------------------------------------ unit edges


def _contract(*amounts: int) -> Contract:
    return Contract("c1", "bo", "ana", [Milestone(f"m{i + 1}", a, 10.0) for i, a in enumerate(amounts)])


def _released(policy, amount: int = 20_000) -> Contract:
    c = _contract(amount)
    for a in (
        Action(C, "offer"),
        Action(C, "fund", "m1"),
        Action(F, "accept_offer"),
        Action(F, "submit", "m1"),
    ):
        assert apply(policy, c, a, 0.0).accepted
    assert apply(policy, c, Action(C, "approve", "m1"), 1.0).accepted
    return c


def test_an_invoice_amount_is_refused_where_the_pack_has_no_invoices():
    upwork = load_policy("upwork")
    c = _contract(50_000)
    for a in (Action(C, "offer"), Action(C, "fund", "m1"), Action(F, "accept_offer")):
        apply(upwork, c, a, 0.0)
    out = apply(upwork, c, Action(F, "submit", "m1", amount=10_000), 1.0)
    assert (out.accepted, out.rule) == (False, "invalid_state")
    assert "release.invoices" in out.message
    assert c.by_id["m1"].state == "funded"


def test_an_early_payout_is_one_percent_and_ends_the_hold():
    fiverr = load_policy("fiverr")
    c = _released(fiverr)  # 200.00: commission 40.00, 160.00 on hold
    m = c.by_id["m1"]
    assert m.pending == 16_000
    out = apply(fiverr, c, Action(F, "early_payout", "m1"), 2.0)
    assert out.accepted
    moved = [(p.from_account, p.to_account, p.amount) for p in out.events[0].postings]
    assert moved == [("freelancer:ana:pending", "freelancer:ana:available", 16_000),
                     ("freelancer:ana:available", "platform", 160)]  # fmt: skip
    # the clearance timer started at the release is now stale
    stale = apply(fiverr, c, Action(P, "funds_available", "m1", amount=16_000, account="x", gen=0), 15.0)
    assert stale.rule == "stale"
    again = apply(fiverr, c, Action(F, "early_payout", "m1"), 3.0)
    assert (again.rule, "still on hold" in again.message) == ("early_payout", True)


def test_a_reversal_after_payout_leaves_the_freelancer_owing():
    fiverr = load_policy("fiverr")
    c = _released(fiverr)
    c.refund_account = "balance:bo"  # as the engine sets it under refund.to: platform_balance
    apply(fiverr, c, Action(F, "early_payout", "m1"), 2.0)
    out = apply(fiverr, c, Action(P, "reverse_release", "m1"), 30.0)
    assert out.accepted and c.by_id["m1"].state == "refunded"
    flows = [(p.from_account, p.to_account, p.flow, p.amount) for p in out.events[0].postings]
    assert flows == [
        ("freelancer:ana:available", "balance:bo", "clawback", 16_000),  # 158.40 there: owes 1.60
        ("platform", "balance:bo", "fees", 4_000 + 1_100),  # the commission and the service fee
    ]
    assert "211.00 USD back to the client's platform balance" in out.events[0].message


def test_an_unanswered_extension_is_withdrawn_and_a_second_waits_for_the_first():
    fiverr = load_policy("fiverr")
    c = _contract(6_000)
    for a in (Action(C, "offer"), Action(C, "fund", "m1"), Action(F, "accept_offer")):
        apply(fiverr, c, a, 0.0)
    out = apply(fiverr, c, Action(F, "request_extension", "m1", due=14.0), 1.0)
    assert out.accepted and out.timers[0].delay == 4.0
    assert apply(fiverr, c, Action(F, "request_extension", "m1", due=15.0), 2.0).rule == "due_extension"
    assert apply(fiverr, c, Action(F, "request_extension", "m1", due=9.0), 2.0).rule == "due_extension"
    lapsed = apply(fiverr, c, out.timers[0].action, 5.0)
    assert lapsed.accepted and c.by_id["m1"].due == 10.0 and c.by_id["m1"].extension_due is None
    assert apply(fiverr, c, Action(C, "accept_extension", "m1"), 6.0).rule == "due_extension"


def _bad_pack(tmp_path: Path, body: str) -> InputError:
    path = tmp_path / "bad.yaml"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    with pytest.raises(InputError) as err:
        load_policy(path)
    return err.value


def test_a_timeout_into_a_stage_that_requires_an_invoice_is_bad_input(tmp_path):
    err = _bad_pack(
        tmp_path,
        """\
        policy: bad
        extends: guru
        procedures:
          negotiation:
            opened_by: {client: dispute_invoice}
            covers: milestone
            stages:
              - {name: talk, party: both, window: 14d, answers: {withdraw: nothing}, on_timeout: next}
              - {name: arbitration, party: platform, decision: binding, requires: [submitted]}
        """,
    )
    (problem,) = err.problems
    assert problem.file.endswith("bad.yaml") and problem.line == 8
    assert "a timeout leads into stage 'arbitration', which requires submitted" in problem.message


def test_review_notices_need_a_window_that_ends(tmp_path):
    err = _bad_pack(
        tmp_path,
        """\
        policy: bad
        extends: freelancer_com
        review: {window: 14d, on_timeout: nothing, notices: [24h]}
        """,
    )
    assert any("review.notices warn of the window's end" in p.message for p in err.problems)
    assert all(p.line == 3 for p in err.problems)
