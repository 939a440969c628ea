"""Accounts, postings, balances, flows, and the conservation and non-negativity checks.

Every movement of money is a posting from one account to another, in integer minor units.
``client:<id>`` accounts count what the client has paid, net (money leaving a client raises its
balance, money returned lowers it); every other account holds money. So after every event:

    sum(client) == escrow + sum(freelancer) + platform + sum(balance),
    and escrow, platform and balances are never negative.

``balance:<client>`` is money refunded to the client's balance on the platform (``refund.to:
platform_balance``): it has left escrow but not the platform, which still holds it for the client.

A freelancer's balance is a net position: it goes below zero only by a ``stage_fee`` paid out of
pocket (an arbitration fee before any payment, FORMAT section 7) or a ``clawback`` (a release the
platform reversed, owed from future revenue); every other flow is checked.

The ledger keeps running totals per account kind, so both checks cost O(1) per event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

#: cumulative flows reported as totals (FORMAT.md section 3)
FLOWS = ("funded", "released", "bonus", "refunded", "fees")
#: fees a party pays out of pocket (a freelancer's balance may go below zero by them): a
#: procedure's stage fee, a fee on acceptance; each counts in the ``fees`` total
OUT_OF_POCKET = ("stage_fee", "acceptance_fee")
#: flows that may take a party's account below zero: fees out of pocket, and a release the
#: platform takes back (``clawback``: owed from the freelancer's future revenue; not a total)
MAY_OWE = (*OUT_OF_POCKET, "clawback")
#: every flow that is a fee
FEE_FLOWS = ("fees", *OUT_OF_POCKET)
#: account kinds whose balances are tracked over time
KINDS = ("client", "escrow", "freelancer_pending", "freelancer_available", "platform", "client_balance")


class LedgerError(AssertionError):
    """An invariant broke: a bug in the engine or the state machine, never a result."""


@dataclass(frozen=True, slots=True)
class Posting:
    """One movement of money between two accounts."""

    time: float
    from_account: str
    to_account: str
    flow: str
    amount: int
    contract: str
    milestone: str


class Transfer(NamedTuple):
    """A movement the state machine asks for; the ledger posts it at the event's time."""

    from_account: str
    to_account: str
    flow: str
    amount: int
    milestone: str


@dataclass(frozen=True, slots=True)
class Account:
    """An account name read once: ``client:acme``, ``escrow:c1``, ``freelancer:ana:pending``,
    ``freelancer:ana:available``, ``platform``; ``kind`` is one of KINDS."""

    name: str
    kind: str
    owner: str

    @classmethod
    def parse(cls, name: str) -> Account:
        kind = account_kind(name)
        rest = name.partition(":")[2]
        owner = rest.rpartition(":")[0] if kind.startswith("freelancer") else rest
        return cls(name, kind, owner)


def account_kind(name: str) -> str:
    """The kind of an account name (one of KINDS); LedgerError if it names no account."""
    head, _, rest = name.partition(":")
    if rest:
        if head == "client" or head == "escrow":
            return head
        if head == "balance":
            return "client_balance"
        if head == "freelancer":
            if rest.endswith(":pending") and len(rest) > 8:
                return "freelancer_pending"
            if rest.endswith(":available") and len(rest) > 10:
                return "freelancer_available"
    elif head == "platform":
        return "platform"
    raise LedgerError(f"not an account name: {name!r}")


def _kind(account: str, known: dict[str, str]) -> str:
    kind = known[account] = account_kind(account)
    return kind


class Ledger:
    """Balances of every account plus cumulative flows; optionally the full list of postings."""

    def __init__(self, keep_postings: bool = True) -> None:
        self.balances: dict[str, int] = {}
        self.kinds: dict[str, int] = dict.fromkeys(KINDS, 0)
        self.totals: dict[str, int] = dict.fromkeys(FLOWS, 0)
        self.keep_postings = keep_postings
        self._kinds: dict[str, str] = {}  # account name -> kind, parsed once
        #: the deepest an account went below zero by fees paid out of pocket: how far it may be
        self.owed: dict[str, int] = {}
        self.postings: list[Posting] = []

    def open(self, account: str) -> None:
        """Create an account with balance 0 (no-op if it exists)."""
        if account not in self.balances:
            self.balances[account] = 0

    def post(
        self,
        time: float,
        from_account: str,
        to_account: str,
        flow: str,
        amount: int,
        contract: str = "",
        milestone: str = "",
    ) -> None:
        """Move ``amount`` minor units; a zero amount posts nothing, a negative one is a bug."""
        if amount == 0:
            return
        if amount < 0 or type(amount) is not int:
            raise LedgerError(f"posting of {amount!r} from {from_account} to {to_account}")
        balances, kinds, known = self.balances, self.kinds, self._kinds
        fk = known.get(from_account) or _kind(from_account, known)
        tk = known.get(to_account) or _kind(to_account, known)
        if from_account not in balances:
            balances[from_account] = 0
        if to_account not in balances:
            balances[to_account] = 0
        if fk == "client":
            balances[from_account] += amount
            kinds["client"] += amount
        else:
            left = balances[from_account] - amount
            if left < 0:
                if flow in MAY_OWE:  # a fee paid out of pocket, or a clawback: the account owes it
                    self.owed[from_account] = max(self.owed.get(from_account, 0), -left)
                elif left < -self.owed.get(from_account, 0):  # nothing else may dig deeper
                    raise LedgerError(
                        f"{from_account} would go negative ({left}) moving {amount} to {to_account} "
                        f"at t={time} ({contract}/{milestone})"
                    )
            balances[from_account] = left
            kinds[fk] -= amount
        if tk == "client":
            left = balances[to_account] - amount
            if left < 0:
                raise LedgerError(f"{to_account} would be refunded more than it paid at t={time}")
            balances[to_account] = left
            kinds["client"] -= amount
        else:
            balances[to_account] += amount
            kinds[tk] += amount
        total = "fees" if flow in OUT_OF_POCKET else flow  # a fee paid out of pocket is a fee
        if total in self.totals:
            # a fee the platform returns lowers the fees collected
            self.totals[total] += -amount if total == "fees" and fk == "platform" else amount
        if self.keep_postings:
            self.postings.append(Posting(time, from_account, to_account, flow, amount, contract, milestone))

    def close(self, account: str) -> None:
        """Forget an account whose balance is zero (streaming runs drop finished contracts)."""
        if self.balances.get(account):
            raise LedgerError(f"cannot close {account}: balance {self.balances[account]}")
        self.balances.pop(account, None)
        self._kinds.pop(account, None)
        self.owed.pop(account, None)

    def fold(self, account: str) -> None:
        """Stop tracking an account one by one; its money stays in its kind's total.

        Streaming runs fold the accounts of parties who will not be seen again, so memory does
        not grow with the number of contracts; conservation is checked on kind totals anyway.
        """
        self.balances.pop(account, None)
        self._kinds.pop(account, None)
        self.owed.pop(account, None)

    def check(self) -> None:
        """Raise LedgerError unless money is conserved and no kind of account is negative."""
        k = self.kinds
        freelancers = k["freelancer_pending"] + k["freelancer_available"]
        held = k["escrow"] + freelancers + k["platform"] + k["client_balance"]
        if k["client"] != held:
            raise LedgerError(f"conservation broken: clients paid {k['client']}, accounts hold {held}")
        for kind, value in k.items():
            if value < 0 and kind[0] != "f":  # freelancers are net positions: a fee paid out of pocket
                raise LedgerError(f"{kind} balance is negative: {value}")

    def balance(self, name: str) -> int:
        """Balance of an account or of a group: ``escrow``, ``freelancer:ana``, ``client``."""
        if name in self.balances and not name.startswith("freelancer:"):
            return self.balances[name]
        return account_balance(self.balances, name)


def account_balance(balances: dict[str, int], name: str) -> int:
    """Sum of the accounts ``name`` stands for: itself, or every account below it."""
    if name == "freelancer":
        return sum(v for k, v in balances.items() if k.startswith("freelancer:"))
    total, prefix, found = 0, name + ":", False
    for key, value in balances.items():
        if key == name or key.startswith(prefix):
            total += value
            found = True
    if not found:
        raise KeyError(name)
    return total
