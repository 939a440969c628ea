"""The milestone state machine, called directly: every rule id of FORMAT.md section 2, no-change rejections,
stale timers, and fees to the cent with money conserved."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from decimal import Decimal

import pytest

from sim.machine.contract import STALE, Action, Contract, Milestone, Outcome, apply
from sim.money.ledger import Ledger
from sim.policy import Policy, load_policy

ACME, ESC, ANA_A, ANA_P = "client:acme", "escrow:c1", "freelancer:ana:available", "freelancer:ana:pending"


def pol(name: str = "upwork", **overrides) -> Policy:
    """A pack with dotted overrides given as keyword arguments: review__window='7d'."""
    return load_policy(name, [(k.replace("__", "."), v, None, ()) for k, v in overrides.items()])


UPWORK = pol()
UPWORK_2026 = pol("upwork_fees")


def contract(*amounts: int) -> Contract:
    """A draft contract c1 (acme hires ana) with milestones m1, m2, ... of the given cents."""
    return Contract("c1", "acme", "ana", [Milestone(f"m{i}", a) for i, a in enumerate(amounts, 1)])


def client(name: str, milestone: str | None = None, **kw) -> Action:
    return Action("client", name, milestone, **kw)


def freelancer(name: str, milestone: str | None = None, **kw) -> Action:
    return Action("freelancer", name, milestone, **kw)


def platform(name: str, milestone: str | None = None, **kw) -> Action:
    return Action("platform", name, milestone, **kw)


class Book:
    """Applies accepted outcomes to a ledger, like the engine does, and checks conservation each time."""

    def __init__(self, policy: Policy, c: Contract) -> None:
        self.policy, self.c, self.led = policy, c, Ledger()
        for account in (ACME, ESC, ANA_A, ANA_P, "platform"):
            self.led.open(account)

    def do(self, action: Action, now: float = 0.0) -> Outcome:
        out = apply(self.policy, self.c, action, now)
        assert out.accepted, f"{action.name} rejected: {out.rule} {out.message}"
        for ev in out.events:
            for frm, to, flow, amount, mid in ev.postings:
                self.led.post(now, frm, to, flow, amount, self.c.id, mid)
        self.led.check()
        assert self.c.escrow() == self.led.balances[ESC]
        return out

    def bal(self, account: str) -> int:
        return self.led.balance(account)


def active(policy: Policy = UPWORK, *amounts: int) -> Book:
    """Offer sent, m1 funded, offer accepted."""
    book = Book(policy, contract(*(amounts or (50000, 25000))))
    book.do(client("offer"))
    book.do(client("fund", "m1"))
    book.do(freelancer("accept_offer"), 1.0)
    return book


def submitted(policy: Policy = UPWORK, *amounts: int) -> Book:
    book = active(policy, *amounts)
    book.do(freelancer("submit", "m1"), 5.0)
    return book


def disputed(policy: Policy = UPWORK) -> Book:
    book = submitted(policy)
    book.do(client("request_refund", "m1"), 6.0)
    book.do(freelancer("dispute"), 7.0)
    return book


def snapshot(c: Contract) -> dict:
    return dataclasses.asdict(c)


# ------------------------------------------------------------------------------ rejections by rule


Setup = Callable[[], tuple[Policy, Contract]]


def _draft(policy: Policy = UPWORK, *amounts: int) -> Setup:
    return lambda: (policy, contract(*(amounts or (50000, 25000))))


def _book(factory: Callable[..., Book], policy: Policy = UPWORK, *amounts: int) -> Setup:
    def make() -> tuple[Policy, Contract]:
        book = factory(policy, *amounts)
        return book.policy, book.c

    return make


def _offered_with_low_milestone() -> tuple[Policy, Contract]:
    # a milestone below the minimum can only reach funding if the contract was built around the offer check
    c = contract(50000, 499)
    c.state = "offered"
    c.milestones[0].state = "released"
    return UPWORK, c


REJECTIONS = [
    # minimum_amount: offer, added, edited, funded
    ("minimum_amount", "offer with a 4.99 milestone", _draft(UPWORK, 50000, 499), client("offer")),
    (
        "minimum_amount",
        "add a 4.99 milestone",
        _book(active),
        client("add_milestone", "m3", amount=499),
    ),
    (
        "minimum_amount",
        "edit a planned milestone to 4.99",
        _book(active),
        client("edit_milestone", "m2", amount=499),
    ),
    ("minimum_amount", "fund a 4.99 milestone", _offered_with_low_milestone, client("fund", "m2")),
    # one_at_a_time
    ("one_at_a_time", "fund m2 while m1 is funded", _book(active), client("fund", "m2")),
    (
        "one_at_a_time",
        "fund m2 while m1 is submitted (any order)",
        _book(submitted, pol(milestones__funding_order="any")),
        client("fund", "m2"),
    ),
    # funding_order
    ("funding_order", "fund m2 before m1", lambda: _offered(), client("fund", "m2")),
    (
        "funding_order",
        "fund m3 before m2 with any_number",
        _book(active, pol(milestones__funding="any_number"), 50000, 25000, 10000),
        client("fund", "m3"),
    ),
    # active_locked
    (
        "active_locked",
        "edit the amount of funded m1",
        _book(active),
        client("edit_milestone", "m1", amount=60000),
    ),
    (
        "active_locked",
        "edit the due date of funded m1",
        _book(active),
        client("edit_milestone", "m1", due=30.0),
    ),
    ("active_locked", "delete funded m1", _book(active), client("delete_milestone", "m1")),
    ("active_locked", "move funded m1", _book(active), client("reorder_milestones", order=("m2", "m1"))),
    (
        "active_locked",
        "insert before funded m1",
        _book(active),
        client("add_milestone", "m0", amount=1000, position=0),
    ),
    (
        "active_locked",
        "edit the amount of submitted m1",
        _book(submitted),
        client("edit_milestone", "m1", amount=1000),
    ),
    # partial_release / bonus
    (
        "partial_release",
        "release 300 of 500 without partial releases",
        _book(submitted, pol(release__partial=False)),
        client("approve", "m1", amount=30000),
    ),
    (
        "bonus",
        "release 600 of 500 without bonuses",
        _book(submitted, pol(release__bonus=False)),
        client("approve", "m1", amount=60000),
    ),
    # dispute
    (
        "dispute",
        "dispute where the policy forbids it",
        lambda: _refund_requested(pol(refund__dispute=False)),
        freelancer("dispute"),
    ),
    # max_change_requests
    (
        "max_change_requests",
        "a second change request with a limit of 1",
        lambda: _changes_then_resubmitted(pol(review__max_change_requests=1)),
        client("request_changes", "m1"),
    ),
    (
        "max_change_requests",
        "any change request with a limit of 0",
        _book(submitted, pol(review__max_change_requests=0)),
        client("request_changes", "m1"),
    ),
    # insufficient_escrow
    (
        "insufficient_escrow",
        "resolve a 500 dispute with 400 + 200",
        _book(disputed),
        platform("resolve_dispute", release=40000, refund=20000),
    ),
    # invalid_state
    ("invalid_state", "accept an offer never sent", _draft(), freelancer("accept_offer")),
    ("invalid_state", "offer twice", _book(active), client("offer")),
    (
        "invalid_state",
        "submit before the offer is accepted",
        lambda: _offered_funded(),
        freelancer("submit", "m1"),
    ),
    ("invalid_state", "submit an unfunded milestone", _book(active), freelancer("submit", "m2")),
    ("invalid_state", "approve an unfunded milestone", _book(active), client("approve", "m2")),
    ("invalid_state", "request changes before a submission", _book(active), client("request_changes", "m1")),
    ("invalid_state", "fund a milestone that does not exist", _book(active), client("fund", "m9")),
    ("invalid_state", "fund without a milestone", _book(active), client("fund")),
    ("invalid_state", "fund in draft", _draft(), client("fund", "m1")),
    ("invalid_state", "withdraw an accepted offer", _book(active), client("withdraw_offer")),
    ("invalid_state", "decline an accepted offer", _book(active), freelancer("decline_offer")),
    ("invalid_state", "approve a refund never requested", _book(active), freelancer("approve_refund")),
    ("invalid_state", "dispute without a refund request", _book(active), freelancer("dispute")),
    ("invalid_state", "a second refund request", lambda: _refund_requested(UPWORK), client("request_refund")),
    (
        "invalid_state",
        "fund while a refund is pending",
        lambda: _refund_requested(UPWORK),
        client("fund", "m2"),
    ),
    (
        "invalid_state",
        "approve a milestone under a refund request",
        lambda: _refund_requested(UPWORK),
        client("approve", "m1"),
    ),
    (
        "invalid_state",
        "resolve without a dispute",
        _book(submitted),
        platform("resolve_dispute", release=0, refund=0),
    ),
    (
        "invalid_state",
        "resolve a 500 dispute with 100 + 100",
        _book(disputed),
        platform("resolve_dispute", release=10000, refund=10000),
    ),
    ("invalid_state", "end a draft contract", _draft(), client("end_contract")),
    (
        "invalid_state",
        "add a milestone with a taken id",
        _book(active),
        client("add_milestone", "m2", amount=1000),
    ),
    (
        "invalid_state",
        "reorder listing a milestone twice",
        _book(active),
        client("reorder_milestones", order=("m1", "m1")),
    ),
    (
        "invalid_state",
        "add at a position past the end",
        _book(active),
        client("add_milestone", "m3", amount=1000, position=5),
    ),
    (
        "invalid_state",
        "refund everything when nothing is held",
        lambda: _released_all(),
        client("request_refund"),
    ),
    ("invalid_state", "an unknown action", _book(active), client("pay_everything")),
    # procedures (FORMAT section 7)
    ("procedure", "answer when no procedure is open", _book(active), freelancer("respond", answer="accept")),
    (
        "procedure",
        "an answer the stage does not have",
        lambda: _refund_requested(UPWORK),
        freelancer("respond", answer="maybe"),
    ),
    ("procedure", "open a procedure the pack does not have", _book(active), client("open", procedure="nope")),
    (
        "not_your_turn",
        "the client answers its own refund request",
        lambda: _refund_requested(UPWORK),
        client("respond", answer="accept"),
    ),
    (
        "late_cancel",
        "cancel late under a pack without late_cancel",
        _book(active),
        client("cancel_late", "m1"),
    ),
    (
        "freelancer_cancel",
        "the freelancer cancels under a pack without freelancer_cancel",
        _book(active),
        freelancer("cancel_milestone", "m1"),
    ),
    (
        "not_your_turn",
        "a party answers while the platform decides",
        _book(disputed),
        client("respond", answer="accept"),
    ),
    (
        "review_extension",
        "extend a review under a pack without review.extensions",
        _book(submitted),
        client("extend_review", "m1"),
    ),
    (
        "revisions_first",
        "ask PeoplePerHour for a refund before two rejected invoices",
        _book(submitted, pol("peopleperhour")),
        client("request_refund", "m1"),
    ),
]


def _refund_requested(policy: Policy) -> tuple[Policy, Contract]:
    book = submitted(policy)
    book.do(client("request_refund", "m1"), 6.0)
    return policy, book.c


def _changes_then_resubmitted(policy: Policy) -> tuple[Policy, Contract]:
    book = submitted(policy)
    book.do(client("request_changes", "m1"), 6.0)
    book.do(freelancer("submit", "m1"), 7.0)
    return policy, book.c


def _offered() -> tuple[Policy, Contract]:
    book = Book(UPWORK, contract(50000, 25000))
    book.do(client("offer"))
    return UPWORK, book.c


def _offered_funded() -> tuple[Policy, Contract]:
    book = Book(UPWORK, contract(50000))
    book.do(client("offer"))
    book.do(client("fund", "m1"))
    return UPWORK, book.c


def _released_all() -> tuple[Policy, Contract]:
    book = submitted(UPWORK, 50000)
    book.do(client("approve", "m1"), 6.0)
    return UPWORK, book.c


REJECTIONS += [
    # issue 10: Fiverr's early payout, Customer Support's reversal, and extension requests
    (
        "early_payout",
        "pay out early under a pack without hold.early_payout",
        _released_all,
        freelancer("early_payout", "m1"),
    ),
    (
        "reversal",
        "reverse a release under a pack without release.reversible",
        _released_all,
        platform("reverse_release", "m1"),
    ),
    (
        "due_extension",
        "ask for an extension under a pack without milestones.due_extensions",
        _book(active),
        freelancer("request_extension", "m1", due=20.0),
    ),
]


@pytest.mark.parametrize(
    ("rule", "setup", "action"),
    [pytest.param(rule, setup, action, id=f"{rule}: {what}") for rule, what, setup, action in REJECTIONS],
)
def test_rejection_has_rule_and_changes_nothing(rule: str, setup: Setup, action: Action):
    policy, c = setup()
    before = snapshot(c)
    escrow_before = c.escrow()
    out = apply(policy, c, action, 10.0)
    assert not out.accepted
    assert out.rule == rule, out.message
    assert out.message  # a human message
    assert out.events == []
    assert out.timers == []
    assert snapshot(c) == before
    assert c.escrow() == escrow_before


def test_every_rule_id_is_exercised():
    from sim.policy import RULE_IDS

    assert {r[0] for r in REJECTIONS} == set(RULE_IDS)


def test_minimum_amount_message_names_milestone_and_minimum():
    out = apply(UPWORK, contract(50000, 499), client("offer"), 0.0)
    assert out.rule == "minimum_amount"
    assert "m2 (4.99 USD)" in out.message
    assert "5.00 USD" in out.message
    assert "m1" not in out.message


def test_exactly_the_minimum_is_allowed():
    book = Book(UPWORK, contract(500))
    book.do(client("offer"))
    out = book.do(client("fund", "m1"))
    assert out.events[0].amount == 500
    assert book.bal(ESC) == 500


def test_minimum_override_changes_the_rule():
    policy = pol(milestones__minimum_amount=10)
    out = apply(policy, contract(50000, 999), client("offer"), 0.0)
    assert out.rule == "minimum_amount"
    assert "10.00 USD" in out.message


def test_one_at_a_time_message():
    book = active()
    out = apply(UPWORK, book.c, client("fund", "m2"), 2.0)
    assert "m1 is funded and not yet released or refunded" in out.message


def test_any_number_and_any_order_allow_funding_several():
    policy = pol(milestones__funding="any_number", milestones__funding_order="any")
    book = Book(policy, contract(50000, 25000, 10000))
    book.do(client("offer"))
    book.do(client("fund", "m3"))
    book.do(client("fund", "m1"))
    assert book.bal(ESC) == 60000
    assert [m.state for m in book.c.milestones] == ["funded", "planned", "funded"]


def test_unlocked_amount_of_funded_milestone_can_change_and_escrow_follows():
    policy = pol(milestones__active_locked=["order", "delete"])
    book = active(policy)
    book.do(client("edit_milestone", "m1", amount=60000), 2.0)
    assert book.bal(ESC) == 60000
    assert book.bal(ACME) == 60000
    book.do(client("edit_milestone", "m1", amount=45000), 3.0)
    assert book.c.by_id["m1"].escrowed == 45000
    assert book.c.credit == 15000  # lowered amount stays in escrow as credit
    assert book.bal(ESC) == 60000


def test_planned_milestones_can_be_edited_deleted_and_reordered():
    book = active(UPWORK, 50000, 25000, 10000)
    book.do(client("edit_milestone", "m2", amount=30000, due=40.0), 2.0)
    assert (book.c.by_id["m2"].amount, book.c.by_id["m2"].due) == (30000, 40.0)
    book.do(client("reorder_milestones", order=("m1", "m3", "m2")), 2.0)
    assert [m.id for m in book.c.milestones] == ["m1", "m3", "m2"]
    book.do(client("delete_milestone", "m3"), 2.0)
    assert [m.id for m in book.c.milestones if not m.deleted] == ["m1", "m2"]
    book.do(client("add_milestone", "m4", amount=700, position=1), 2.0)
    assert [m.id for m in book.c.milestones if not m.deleted] == ["m1", "m4", "m2"]


# ------------------------------------------------------------------------------ accepted paths


def test_submit_starts_the_review_timer():
    book = active()
    out = book.do(freelancer("submit", "m1"), 5.0)
    [timer] = out.timers
    assert timer.delay == 14.0
    assert timer.action.name == "auto_approve"
    assert timer.action.milestone == "m1"
    assert timer.action.gen == book.c.by_id["m1"].gen
    assert book.c.by_id["m1"].state == "submitted"
    assert book.c.by_id["m1"].first_submitted_at == 5.0


def test_auto_approve_releases_in_full():
    book = submitted()
    gen = book.c.by_id["m1"].gen
    out = book.do(platform("auto_approve", "m1", gen=gen), 19.0)
    assert out.events[0].action == "auto_approve"
    assert out.events[0].amount == 50000
    m1 = book.c.by_id["m1"]
    assert (m1.state, m1.outcome, m1.closed_at, m1.released) == ("released", "auto_approved", 19.0, 50000)
    assert book.bal(ANA_A) == 50000
    assert book.bal(ESC) == 0


def test_review_on_timeout_nothing_starts_no_timer():
    book = active(pol(review__on_timeout="nothing"))
    out = book.do(freelancer("submit", "m1"), 5.0)
    assert out.timers == []


def test_partial_release_leaves_credit_that_funds_the_next_milestone():
    book = submitted(UPWORK, 50000, 30000)
    out = book.do(client("approve", "m1", amount=32055), 6.0)
    assert "179.45 USD stays in escrow" in out.events[0].message
    assert book.c.credit == 17945
    assert book.bal(ESC) == 17945
    assert book.bal(ANA_A) == 32055
    out = book.do(client("fund", "m2"), 7.0)
    assert out.events[0].postings == [(ACME, ESC, "funded", 12055, "m2")]
    assert book.c.credit == 0
    assert book.bal(ESC) == 30000
    assert book.bal(ACME) == 62055
    assert book.led.totals["funded"] == 62055


def test_bonus_is_paid_by_the_client_directly():
    book = submitted()
    out = book.do(client("approve", "m1", amount=60000), 6.0)
    assert out.events[0].postings == [
        (ESC, ANA_A, "released", 50000, "m1"),
        (ACME, ANA_A, "bonus", 10000, "m1"),
    ]
    assert book.c.by_id["m1"].bonus == 10000
    assert book.bal(ACME) == 60000
    assert book.bal(ANA_A) == 60000


def test_request_changes_stops_the_clock_and_resubmission_restarts_it():
    book = submitted()
    gen_at_submit = book.c.by_id["m1"].gen
    book.do(client("request_changes", "m1"), 8.0)
    assert book.c.by_id["m1"].state == "changes_requested"
    assert book.c.by_id["m1"].change_requests == 1
    assert apply(UPWORK, book.c, platform("auto_approve", "m1", gen=gen_at_submit), 19.0) is STALE
    out = book.do(freelancer("submit", "m1"), 10.0)
    assert out.timers[0].delay == 14.0
    assert book.c.by_id["m1"].submissions == 2
    assert book.c.by_id["m1"].first_submitted_at == 5.0


def test_withdraw_offer_refunds_funded_milestones():
    book = Book(UPWORK, contract(50000, 25000))
    book.do(client("offer"))
    book.do(client("fund", "m1"))
    out = book.do(client("withdraw_offer"), 2.0)
    assert [e.action for e in out.events] == ["withdraw_offer", "offer_refund"]
    assert out.events[1].actor == "platform"
    assert out.events[1].amount == 50000
    assert book.c.state == "withdrawn"
    assert book.c.by_id["m1"].state == "refunded"
    assert book.bal(ACME) == 0
    assert book.bal(ESC) == 0


def test_decline_offer_refunds_and_without_the_rule_keeps_escrow():
    book = Book(UPWORK, contract(50000))
    book.do(client("offer"))
    book.do(client("fund", "m1"))
    book.do(freelancer("decline_offer"), 2.0)
    assert (book.c.state, book.bal(ESC), book.bal(ACME)) == ("declined", 0, 0)

    keep = Book(pol(offer__refund_on_decline=False), contract(50000))
    keep.do(client("offer"))
    keep.do(client("fund", "m1"))
    out = keep.do(freelancer("decline_offer"), 2.0)
    assert [e.action for e in out.events] == ["decline_offer"]
    assert keep.bal(ESC) == 50000


def test_refund_request_answered_and_timed_out():
    book = submitted()
    out = book.do(client("request_refund", "m1"), 6.0)
    [timer] = out.timers
    assert (timer.delay, timer.action.name) == (7.0, "auto_refund")
    assert book.c.by_id["m1"].state == "refund_requested"
    out = book.do(platform("auto_refund", gen=timer.action.gen), 13.0)
    assert out.events[0].amount == 50000
    assert book.c.by_id["m1"].outcome == "auto_refunded"
    assert book.bal(ACME) == 0


def test_refund_of_everything_includes_credit():
    book = submitted(UPWORK, 50000, 30000)
    book.do(client("approve", "m1", amount=20000), 6.0)
    book.do(client("end_contract"), 7.0)
    out = book.do(client("request_refund"), 8.0)
    # a request moves no money: its row carries no amount, the message says what it covers
    assert out.events[0].amount == 0
    assert "refund of 300.00 USD requested" in out.events[0].message
    out = book.do(freelancer("approve_refund"), 9.0)
    assert out.events[0].amount == 30000
    assert book.bal(ESC) == 0
    assert book.bal(ACME) == 20000
    assert book.c.credit == 0


def test_dispute_resolved_with_a_split():
    book = disputed()
    assert book.c.by_id["m1"].state == "disputed"
    out = book.do(platform("resolve_dispute", release=30000, refund=20000), 20.0)
    assert out.events[0].postings == [
        (ESC, ANA_A, "released", 30000, "m1"),
        (ESC, ACME, "refunded", 20000, "m1"),
    ]
    m1 = book.c.by_id["m1"]
    assert (m1.state, m1.released, m1.refunded) == ("resolved", 30000, 20000)
    assert book.bal(ACME) == 30000
    assert book.c.refund_request is None


# ------------------------------------------------------------------------------ stale timers


def test_stale_auto_approve_after_client_approved():
    book = submitted()
    gen = book.c.by_id["m1"].gen
    book.do(client("approve", "m1"), 6.0)
    before = snapshot(book.c)
    out = apply(UPWORK, book.c, platform("auto_approve", "m1", gen=gen), 19.0)
    assert out is STALE
    assert (out.accepted, out.rule) == (False, "stale")
    assert snapshot(book.c) == before


def test_auto_approve_with_wrong_generation_is_stale():
    book = submitted()
    gen = book.c.by_id["m1"].gen
    before = snapshot(book.c)
    assert apply(UPWORK, book.c, platform("auto_approve", "m1", gen=gen - 1), 19.0) is STALE
    assert apply(UPWORK, book.c, platform("auto_approve", "m1", gen=gen + 1), 19.0) is STALE
    assert snapshot(book.c) == before


def test_refund_request_makes_the_review_timer_stale():
    book = submitted()
    gen = book.c.by_id["m1"].gen
    book.do(client("request_refund", "m1"), 6.0)
    assert apply(UPWORK, book.c, platform("auto_approve", "m1", gen=gen), 19.0) is STALE
    assert book.c.by_id["m1"].state == "refund_requested"


def test_dispute_makes_the_refund_timer_stale():
    book = submitted()
    out = book.do(client("request_refund", "m1"), 6.0)
    timer_gen = out.timers[0].action.gen
    book.do(freelancer("dispute"), 7.0)
    before = snapshot(book.c)
    assert apply(UPWORK, book.c, platform("auto_refund", gen=timer_gen), 13.0) is STALE
    assert snapshot(book.c) == before
    assert book.bal(ESC) == 50000


def test_accepting_makes_the_offer_expiry_stale():
    book = Book(UPWORK_2026, contract(50000))
    out = book.do(client("offer"))
    [timer] = out.timers
    assert (timer.delay, timer.action.name) == (30.0, "offer_expired")
    book.do(freelancer("accept_offer"), 1.0)
    assert apply(UPWORK_2026, book.c, timer.action, 30.0) is STALE
    assert book.c.state == "active"


def test_offer_expiry_refunds():
    book = Book(UPWORK_2026, contract(50000))
    timer = book.do(client("offer")).timers[0]
    book.do(client("fund", "m1"))
    out = book.do(timer.action, 30.0)
    assert book.c.state == "expired"
    assert [e.action for e in out.events] == ["offer_expired", "offer_refund"]
    assert book.bal(ESC) == 0
    assert book.c.by_id["m1"].state == "refunded"
    assert out.events[1].amount == 50000  # the escrow comes back in full
    assert book.bal(ACME) == book.bal("platform")  # all the client is still out is what the platform took


# ------------------------------------------------------------------------------ fees (upwork_fees)


def test_release_fee_to_the_cent_and_hold():
    book = Book(UPWORK_2026, contract(33333))
    book.do(client("offer"))
    out = book.do(client("fund", "m1"))
    # client marketplace fee 5% of 333.33 = 16.6665 -> 16.67
    assert out.events[0].postings == [
        (ACME, ESC, "funded", 33333, "m1"),
        (ACME, "platform", "fees", 1667, "m1"),
    ]
    book.do(freelancer("accept_offer"), 1.0)
    book.do(freelancer("submit", "m1"), 2.0)
    out = book.do(client("approve", "m1"), 3.0)
    # freelancer service fee 10% of 333.33 = 33.333 -> 33.33, taken from the pending money
    assert out.events[0].postings == [
        (ESC, ANA_P, "released", 33333, "m1"),
        (ANA_P, "platform", "fees", 3333, "m1"),
    ]
    [hold] = out.timers
    assert hold.delay == 5.0
    assert (hold.action.name, hold.action.amount, hold.action.account) == ("funds_available", 30000, ANA_P)
    assert book.bal(ANA_P) == 30000
    assert book.bal(ANA_A) == 0
    book.do(hold.action, 8.0)
    assert book.bal(ANA_P) == 0
    assert book.bal(ANA_A) == 30000
    assert book.bal(ACME) == 35000
    assert book.bal("platform") == 5000
    assert book.led.totals == {"funded": 33333, "released": 33333, "bonus": 0, "refunded": 0, "fees": 5000}
    assert book.bal("client") == book.bal("escrow") + book.bal("freelancer") + book.bal("platform")


def test_bonus_fees_to_the_cent():
    book = Book(UPWORK_2026, contract(33333))
    book.do(client("offer"))
    book.do(client("fund", "m1"))
    book.do(freelancer("accept_offer"), 1.0)
    out = book.do(client("approve", "m1", amount=40000), 2.0)
    # bonus 66.67: freelancer fee 10% = 6.667 -> 6.67; client fee 5% = 3.3335 -> 3.33
    assert out.events[0].postings == [
        (ESC, ANA_P, "released", 33333, "m1"),
        (ANA_P, "platform", "fees", 3333, "m1"),
        (ACME, ANA_P, "bonus", 6667, "m1"),
        (ANA_P, "platform", "fees", 667, "m1"),
        (ACME, "platform", "fees", 333, "m1"),
    ]
    assert book.bal(ANA_P) == 36000
    assert book.bal(ACME) == 42000  # 333.33 + 16.67 + 66.67 + 3.33
    assert book.bal("platform") == 6000
    assert book.led.totals["fees"] == 6000
    assert sorted(t.action.amount for t in out.timers) == [6000, 30000]


@pytest.mark.parametrize(
    ("rounding", "fee"), [("half_up", 3333), ("half_even", 3332), ("down", 3332), ("up", 3333)]
)
def test_fee_rounding_rule_of_the_policy(rounding: str, fee: int):
    policy = pol(
        fees=[{"name": "svc", "payer": "freelancer", "on": "release", "percent": 10, "rounding": rounding}]
    )
    book = submitted(policy, 33325)
    out = book.do(client("approve", "m1"), 6.0)
    # 10% of 333.25 = 33.325
    assert out.events[0].postings[1] == (ANA_A, "platform", "fees", fee, "m1")
    assert book.bal(ANA_A) == 33325 - fee
    assert book.bal("platform") == fee


def test_fixed_fee_plus_percent():
    policy = pol(
        fees=[{"name": "svc", "payer": "client", "on": "funding", "percent": "2.9", "fixed": "0.30"}]
    )
    book = Book(policy, contract(10000))
    book.do(client("offer"))
    out = book.do(client("fund", "m1"))
    assert out.events[0].postings[1] == (ACME, "platform", "fees", 320, "m1")  # 2.90 + 0.30
    assert book.bal(ACME) == 10320


def test_funding_fee_only_on_new_money_not_on_credit():
    book = Book(UPWORK_2026, contract(50000, 30000))
    book.do(client("offer"))
    book.do(client("fund", "m1"))
    book.do(freelancer("accept_offer"), 1.0)
    book.do(client("approve", "m1", amount=40000), 2.0)
    out = book.do(client("fund", "m2"), 3.0)
    # 100.00 of credit, 200.00 new money: the 5% fee is 10.00
    assert out.events[0].postings == [
        (ACME, ESC, "funded", 20000, "m2"),
        (ACME, "platform", "fees", 1000, "m2"),
    ]


def test_fee_percent_is_exact_decimal():
    fee = UPWORK_2026.fees[0]
    assert fee.percent == Decimal(10)
    assert isinstance(fee.percent, Decimal)
