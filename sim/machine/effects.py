"""The small library of effects and checks every rule is built from.

Checks raise :class:`Rejected` before anything changes (a milestone that must exist, a contract or
milestone state an action needs). Effects move money as postings (fund, release, refund, fees,
hold) and update the records; each exists once, so the minimum-amount check, the fee arithmetic
and the refund loops are written in one place.
"""

from __future__ import annotations

from ..core.units import format_money, percent_of
from ..money.ledger import Transfer
from ..policy.calendar import is_zero
from ..policy.model import Policy
from .records import Contract, Emitted, Milestone, Rejected, Timer
from .vocabulary import HOLDING, Action


def money(policy: Policy, cents: int) -> str:
    return f"{format_money(cents, policy.digits)} {policy.currency}"


def milestone(c: Contract, mid: str | None) -> Milestone:
    if mid is None:
        raise Rejected("invalid_state", "this action needs a milestone")
    m = c.by_id.get(mid)
    if m is None or m.deleted:
        raise Rejected("invalid_state", f"milestone {mid} does not exist in contract {c.id}")
    return m


def need_contract(c: Contract, states: tuple[str, ...], what: str) -> None:
    if c.state not in states:
        raise Rejected(
            "invalid_state",
            f"cannot {what} while the contract is {c.state} (needs {'/'.join(states)})",
        )


def need_milestone(m: Milestone, states: frozenset[str] | tuple[str, ...], what: str) -> None:
    if m.state not in states:
        raise Rejected(
            "invalid_state",
            f"cannot {what} milestone {m.id} while it is {m.state} (needs {'/'.join(sorted(states))})",
        )


def fees(
    policy: Policy, on: str, amount: int, before: int = 0
) -> list[tuple[str, int]]:  # (payer, fee) for each fee rule on this flow
    """Each fee rule on this flow; ``before`` is the pair's billings so far (tiered fees)."""
    out: list[tuple[str, int]] = []
    if amount <= 0:
        return out
    for fee in policy.fees:
        if fee.on == on:
            value = fee.amount_on(amount, before)
            if value:
                out.append((fee.payer, value))
    return out


def funding_fees(policy: Policy, c: Contract, charge: int, mid: str) -> list[Transfer]:
    """Client fees on money the client pays into escrow (fees on funding are the client's).

    The contract's first funding also pays the ``first_funding`` fees (once per contract, even
    when credit covers it); a refundable one is remembered so it can be returned.
    """
    out = []
    m = c.by_id.get(mid)
    for fee in policy.fees:
        if fee.on == "funding":
            value = fee.amount_on(charge)
            if value:
                out.append(Transfer(c.client_account, "platform", "fees", value, mid))
                if fee.refundable and m is not None:
                    m.refundable_fees += value
    if not c.first_funded:
        c.first_funded = True
        for fee in policy.fees:
            if fee.on == "first_funding":
                value = (percent_of(charge, fee.percent, fee.rounding) if fee.percent else 0) + (
                    fee.fixed or 0
                )
                if value:
                    out.append(Transfer(c.client_account, "platform", "fees", value, mid))
                    if fee.refundable:
                        c.first_fee += value
    return out


def check_minimum(policy: Policy, amount: int, message: str) -> None:
    """Reject an amount below ``milestones.minimum_amount`` (the one minimum-amount check).

    ``message`` may name ``{amount}`` and ``{minimum}``, which are filled in as money.
    """
    minimum = policy.milestones.minimum_amount
    if amount < minimum:
        # replace, not str.format: the message holds milestone ids, which may contain braces
        text = message.replace("{amount}", money(policy, amount)).replace("{minimum}", money(policy, minimum))
        raise Rejected("minimum_amount", text)


def freelancer_target(policy: Policy, c: Contract) -> str:
    suffix = "available" if is_zero(policy.hold.after_release) else "pending"
    return f"freelancer:{c.freelancer}:{suffix}"


def pay_freelancer(
    policy: Policy,
    c: Contract,
    gross: int,
    flow: str,
    mid: str,
    postings: list,
    timers: list,
    notes: list[str] | None = None,
    source: str | None = None,
) -> int:
    """Post a release or bonus to the freelancer, their fees to the platform; return the net.

    A freelancer fee is taken from the money paid, so it can never exceed it: a larger fee (a big
    ``fixed`` part on a small release) is capped at what is left, and ``notes`` gets a sentence
    saying so, which the event's message carries.
    """
    target = freelancer_target(policy, c)
    if source is None:
        source = c.escrow_account if flow == "released" else c.client_account
    if gross > 0:
        c.paid_out = True
    postings.append(Transfer(source, target, flow, gross, mid))
    net = gross
    m = c.by_id.get(mid) if mid else None
    before = 0
    if c.pair is not None:  # billings of this client and freelancer together, for tiered fees
        before = c.pair[0]
        c.pair[0] += gross
    for payer, fee in fees(policy, "release" if flow == "released" else "bonus", gross, before):
        if payer == "freelancer":
            if fee > net:
                if notes is not None:
                    what = "release" if flow == "released" else "bonus"
                    notes.append(
                        f"fee capped at the {what}: the freelancer fee of {money(policy, fee)} is more "
                        f"than the {money(policy, net)} left of {money(policy, gross)}, so "
                        f"{money(policy, net)} is taken"
                    )
                fee = net
            postings.append(Transfer(target, "platform", "fees", fee, mid))
            net -= fee
            if m is not None:
                m.freelancer_fees += fee
        else:
            postings.append(Transfer(c.client_account, "platform", "fees", fee, mid))
    if not is_zero(policy.hold.after_release) and net > 0:
        gen = 0
        if m is not None:
            m.pending += net
            gen = m.hold_gen
        timers.append(
            Timer(
                policy.hold.after_release,
                Action("platform", "funds_available", mid, amount=net, account=target, gen=gen),
            )
        )
    return net


def release(
    policy: Policy,
    c: Contract,
    m: Milestone,
    amount: int,
    postings: list,
    timers: list,
    notes: list[str] | None = None,
) -> None:
    """Release ``amount`` of a milestone's escrow (plus any bonus); the remainder becomes credit."""
    held = m.escrowed
    paid = min(amount, held)
    pay_freelancer(policy, c, paid, "released", m.id, postings, timers, notes)
    if amount > held:
        pay_freelancer(policy, c, amount - held, "bonus", m.id, postings, timers, notes)
        m.bonus += amount - held
    c.credit += held - paid
    m.escrowed = 0
    m.released += paid
    m.gen += 1


def close(m: Milestone, state: str, outcome: str, now: float) -> None:
    m.state = state
    m.outcome = outcome
    m.closed_at = now


def holding(c: Contract) -> list[Milestone]:
    return [m for m in c.milestones if not m.deleted and m.state in HOLDING]


def refund(
    c: Contract, milestones: list[Milestone], credit: bool, now: float, outcome: str
) -> list[Transfer]:
    """Return ``milestones``' escrow (and the contract credit, if ``credit``) to the client; the
    milestones close as refunded with ``outcome``. The one refund loop of the state machine."""
    postings = []
    for m in milestones:
        postings.append(Transfer(c.escrow_account, c.refund_account, "refunded", m.escrowed, m.id))
        if m.refundable_fees:  # a refundable fee goes back with the money it was charged on
            postings.append(Transfer("platform", c.refund_account, "fees", m.refundable_fees, m.id))
            m.refundable_fees = 0
        m.refunded += m.escrowed
        m.escrowed = 0
        m.gen += 1
        close(m, "refunded", outcome, now)
    if credit and c.credit:
        postings.append(Transfer(c.escrow_account, c.refund_account, "refunded", c.credit, ""))
        c.credit = 0
    return postings


def returned_to(c: Contract) -> str:
    """Where a refund of ``c`` goes, in words: the client, or their balance on the platform."""
    return "the client" if c.refund_account == c.client_account else "the client's platform balance"


def refunded_amount(postings: list[Transfer]) -> int:
    """The escrow a list of postings returns to the client (fees returned with it excluded)."""
    return sum(p.amount for p in postings if p.flow == "refunded")


def refund_all(c: Contract, now: float, actor: str, action: str, note: str) -> Emitted:
    """Return all escrow of the contract to the client; funded milestones become refunded."""
    postings = refund(c, holding(c), True, now, "refunded")
    total = refunded_amount(postings)
    return Emitted(actor, action, "", total, note, postings)


def fund_milestone(policy: Policy, c: Contract, m: Milestone, now: float) -> tuple[list[Transfer], int]:
    """Put ``m``'s amount in escrow, contract credit first; the postings and the credit used."""
    from_credit = min(c.credit, m.amount)
    charge = m.amount - from_credit
    postings = [Transfer(c.client_account, c.escrow_account, "funded", charge, m.id)]
    postings.extend(funding_fees(policy, c, charge, m.id))
    c.credit -= from_credit
    m.escrowed = m.amount
    m.state = "funded"
    m.funded_at = now
    return postings, from_credit


def next_planned(c: Contract) -> Milestone | None:
    """The first live milestone still planned, in the contract's order."""
    return next((m for m in c.milestones if not m.deleted and m.state == "planned"), None)
