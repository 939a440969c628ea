"""The ledger: postings between accounts, client-account semantics, conservation, non-negativity."""

from __future__ import annotations

import pytest

from sim.money.ledger import FLOWS, KINDS, Ledger, LedgerError, Posting, account_balance

ACME, ESC, ANA_P, ANA_A = "client:acme", "escrow:c1", "freelancer:ana:pending", "freelancer:ana:available"


@pytest.fixture
def led() -> Ledger:
    return Ledger()


def _fund(led: Ledger, amount: int = 50000, t: float = 0.0) -> None:
    led.post(t, ACME, ESC, "funded", amount, "c1", "m1")


def test_open_creates_zero_balance(led: Ledger):
    led.open(ACME)
    led.open(ESC)
    assert led.balances == {ACME: 0, ESC: 0}
    led.open(ACME)  # no-op
    assert led.balances[ACME] == 0


def test_funding_raises_client_and_escrow(led: Ledger):
    _fund(led, 50000)
    assert led.balances[ACME] == 50000  # a client account counts what the client has paid, net
    assert led.balances[ESC] == 50000
    assert led.kinds["client"] == 50000
    assert led.kinds["escrow"] == 50000
    assert led.totals["funded"] == 50000
    led.check()


def test_release_moves_escrow_to_freelancer(led: Ledger):
    _fund(led, 50000)
    led.post(5.0, ESC, ANA_A, "released", 32055, "c1", "m1")
    assert led.balances[ESC] == 17945
    assert led.balances[ANA_A] == 32055
    assert led.balances[ACME] == 50000  # releasing does not change what the client paid
    assert led.totals["released"] == 32055
    led.check()


def test_refund_lowers_client_account(led: Ledger):
    _fund(led, 50000)
    led.post(3.0, ESC, ACME, "refunded", 20000, "c1", "m1")
    assert led.balances[ACME] == 30000
    assert led.balances[ESC] == 30000
    assert led.totals["refunded"] == 20000
    led.check()


def test_a_refund_to_the_platform_balance_stays_on_the_platform_for_the_client(led: Ledger):
    """refund.to: platform_balance: the money leaves escrow for ``balance:acme``; the client's
    account still counts all it paid, and conservation counts the balance as held."""
    _fund(led, 50000)
    led.post(3.0, ESC, "balance:acme", "refunded", 20000, "c1", "m1")
    assert led.balances[ACME] == 50000
    assert led.balances["balance:acme"] == 20000
    assert led.kinds["client_balance"] == 20000 and led.kinds["escrow"] == 30000
    assert led.totals["refunded"] == 20000
    assert account_balance(led.balances, "balance") == 20000
    led.check()
    led.kinds["client_balance"] -= 1  # a cent lost from the balances breaks conservation
    with pytest.raises(LedgerError, match="conservation broken"):
        led.check()


def test_bonus_goes_from_client_straight_to_freelancer(led: Ledger):
    _fund(led, 50000)
    led.post(5.0, ESC, ANA_A, "released", 50000, "c1", "m1")
    led.post(5.0, ACME, ANA_A, "bonus", 10000, "c1", "m1")
    assert led.balances[ACME] == 60000
    assert led.balances[ESC] == 0
    assert led.balances[ANA_A] == 60000
    assert led.totals == {"funded": 50000, "released": 50000, "bonus": 10000, "refunded": 0, "fees": 0}
    led.check()


def test_fees_to_platform(led: Ledger):
    _fund(led, 33333)
    led.post(0.0, ACME, "platform", "fees", 1667, "c1", "m1")
    led.post(5.0, ESC, ANA_P, "released", 33333, "c1", "m1")
    led.post(5.0, ANA_P, "platform", "fees", 3333, "c1", "m1")
    led.post(10.0, ANA_P, ANA_A, "available", 30000, "c1", "m1")
    assert led.balances == {ACME: 35000, ESC: 0, ANA_P: 0, ANA_A: 30000, "platform": 5000}
    assert led.totals["fees"] == 5000
    assert "available" not in led.totals  # not one of the reported flows
    led.check()


def test_postings_are_kept_in_order(led: Ledger):
    _fund(led, 50000, t=0.0)
    led.post(19.0, ESC, ANA_A, "released", 50000, "c1", "m1")
    assert led.postings == [
        Posting(0.0, ACME, ESC, "funded", 50000, "c1", "m1"),
        Posting(19.0, ESC, ANA_A, "released", 50000, "c1", "m1"),
    ]


def test_postings_can_be_dropped_for_big_runs():
    led = Ledger(keep_postings=False)
    _fund(led, 50000)
    assert led.postings == []
    assert led.balances[ESC] == 50000
    assert led.totals["funded"] == 50000


def test_zero_posting_posts_nothing(led: Ledger):
    led.post(0.0, ACME, ESC, "funded", 0, "c1", "m1")
    assert led.postings == []
    assert led.totals["funded"] == 0


@pytest.mark.parametrize("amount", [-1, 5.0, 0.5, True, "500"])
def test_non_integer_or_negative_posting_is_a_bug(led: Ledger, amount):
    with pytest.raises((LedgerError, TypeError)):
        led.post(0.0, ACME, ESC, "funded", amount, "c1", "m1")
    assert led.balances.get(ESC, 0) == 0


def test_escrow_cannot_go_negative(led: Ledger):
    _fund(led, 50000)
    with pytest.raises(LedgerError, match="escrow:c1 would go negative"):
        led.post(5.0, ESC, ANA_A, "released", 50001, "c1", "m1")
    assert led.balances[ESC] == 50000  # nothing moved
    assert led.balances.get(ANA_A, 0) == 0


def test_freelancer_cannot_go_negative(led: Ledger):
    with pytest.raises(LedgerError):
        led.post(0.0, ANA_P, "platform", "fees", 1, "c1", "m1")


def test_client_cannot_be_refunded_more_than_paid(led: Ledger):
    led.open(ESC)
    led.balances[ESC] = 100  # simulate a broken engine that has escrow from nowhere
    led.kinds["escrow"] = 100
    with pytest.raises(LedgerError, match="refunded more than it paid"):
        led.post(0.0, ESC, ACME, "refunded", 100, "c1", "m1")


def test_ledger_error_is_an_assertion():
    assert issubclass(LedgerError, AssertionError)


def test_conservation_check_detects_a_breach(led: Ledger):
    _fund(led, 50000)
    led.check()
    led.kinds["platform"] += 1  # money from nowhere
    with pytest.raises(LedgerError, match="conservation broken"):
        led.check()


def test_conservation_over_a_whole_story(led: Ledger):
    bob = "client:bob"
    _fund(led, 50000)
    led.post(1.0, bob, "escrow:c2", "funded", 12345, "c2", "m1")
    led.post(2.0, ESC, ANA_A, "released", 25000, "c1", "m1")
    led.post(3.0, ESC, ACME, "refunded", 25000, "c1", "m1")
    led.post(4.0, "escrow:c2", "freelancer:bo:available", "released", 345, "c2", "m1")
    led.post(4.0, bob, "platform", "fees", 99, "c2", "m1")
    led.check()
    clients = led.balance("client")
    held = led.balance("escrow") + led.balance("freelancer") + led.balance("platform")
    assert clients == held == 25000 + 12345 + 99


def test_kinds_track_every_account_kind(led: Ledger):
    assert set(led.kinds) == set(KINDS)
    assert set(led.totals) == set(FLOWS)
    led.post(0.0, ACME, ESC, "funded", 100)
    led.post(0.0, ESC, ANA_P, "released", 60)
    led.post(0.0, ESC, ANA_A, "released", 40)
    assert led.kinds == {
        "client": 100,
        "escrow": 0,
        "freelancer_pending": 60,
        "freelancer_available": 40,
        "platform": 0,
        "client_balance": 0,
    }


# ------------------------------------------------------------------------------ balances of groups


@pytest.fixture
def two_contracts(led: Ledger) -> Ledger:
    led.post(0.0, ACME, ESC, "funded", 50000, "c1", "m1")
    led.post(0.0, "client:bob", "escrow:c2", "funded", 25050, "c2", "m1")
    led.post(1.0, ESC, ANA_P, "released", 30000, "c1", "m1")
    led.post(2.0, ANA_P, ANA_A, "available", 10000, "c1", "m1")
    return led


def test_balance_of_one_account(two_contracts: Ledger):
    assert two_contracts.balance("escrow:c1") == 20000
    assert two_contracts.balance("escrow:c2") == 25050
    assert two_contracts.balance("client:acme") == 50000


def test_balance_of_escrow_group(two_contracts: Ledger):
    assert two_contracts.balance("escrow") == 45050


def test_balance_of_client_group(two_contracts: Ledger):
    assert two_contracts.balance("client") == 75050


def test_balance_of_freelancer_is_pending_plus_available(two_contracts: Ledger):
    assert two_contracts.balance(ANA_P) == 20000
    assert two_contracts.balance(ANA_A) == 10000
    assert two_contracts.balance("freelancer:ana") == 30000
    assert two_contracts.balance("freelancer") == 30000


def test_account_balance_function():
    balances = {"client:acme": 500, "client:acmex": 7, "escrow:c1": 300, "freelancer:ana:pending": 200}
    assert account_balance(balances, "client") == 507
    assert account_balance(balances, "client:acme") == 500  # not client:acmex
    assert account_balance(balances, "freelancer:ana") == 200
    assert account_balance(balances, "freelancer") == 200
    assert account_balance(balances, "escrow") == 300


def test_account_balance_unknown_account():
    with pytest.raises(KeyError):
        account_balance({"client:acme": 1}, "freelancer:bob")
    with pytest.raises(KeyError):
        account_balance({"client:acme": 1}, "platform")
