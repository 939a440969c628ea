"""Typed records between the layers: account names read once, transfers as named tuples."""

from __future__ import annotations

import pytest

from sim.money.ledger import Account, Ledger, LedgerError, Transfer


@pytest.mark.parametrize(
    ("name", "kind", "owner"),
    [
        ("client:acme", "client", "acme"),
        ("escrow:c1", "escrow", "c1"),
        ("freelancer:ana:pending", "freelancer_pending", "ana"),
        ("freelancer:ana:available", "freelancer_available", "ana"),
        ("freelancer:a.b-c:available", "freelancer_available", "a.b-c"),
        ("platform", "platform", ""),
    ],
)
def test_account_names_are_parsed_into_their_kind_and_owner(name, kind, owner):
    assert Account.parse(name) == Account(name, kind, owner)


NOT_ACCOUNTS = ["cash", "client:", "freelancer:ana", "freelancer:ana:spent", "platform:x", ""]


@pytest.mark.parametrize("name", NOT_ACCOUNTS)
def test_a_name_that_is_no_account_is_a_bug_not_a_platform_account(name):
    with pytest.raises(LedgerError, match="not an account name"):
        Account.parse(name)
    with pytest.raises(LedgerError):
        Ledger().post(0.0, "client:acme", name, "funded", 100)


def test_a_transfer_is_a_named_tuple_the_ledger_posts():
    t = Transfer("client:acme", "escrow:c1", "funded", 500, "m1")
    assert t == ("client:acme", "escrow:c1", "funded", 500, "m1")
    assert (t.from_account, t.amount, t.milestone) == ("client:acme", 500, "m1")
    led = Ledger()
    led.post(1.0, t.from_account, t.to_account, t.flow, t.amount, "c1", t.milestone)
    led.check()
    assert led.balances == {"client:acme": 500, "escrow:c1": 500}


def test_folded_accounts_are_forgotten_entirely():
    led = Ledger()
    led.post(0.0, "client:acme", "escrow:c1", "funded", 100)
    led.post(0.0, "escrow:c1", "client:acme", "refunded", 100)
    led.close("escrow:c1")
    led.fold("client:acme")
    assert led.balances == {} and led._kinds == {}
