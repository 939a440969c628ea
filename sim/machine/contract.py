"""The milestone state machine: every rule of every policy is decided here, and only here.

``apply(policy, contract, action, now, clock)`` reads the policy and the contract's state and
returns either a rejection (rule id and a message; nothing changed) or the accepted events, each
with its postings, plus the timers to start. It never touches SimPy, a wall clock or randomness:
the engine decides *when* things happen, this module decides *what* they do. ``clock`` is pure
calendar arithmetic (``sim.policy.calendar.Clock``: the scenario's start date and the policy's
business days), which turns a ``5bd`` window into days at the moment it opens.

Timers are made harmless without interrupts: each carries the generation counter of what it
watches (a milestone's review, the contract's refund request), and an action that beats it bumps
the counter, so the timer finds a newer generation when it fires and does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.units import format_money, percent_of
from ..policy.calendar import PLAIN, BusinessDays, Clock, is_zero
from ..policy.model import Policy
from .vocabulary import (  # noqa: F401 - the vocabulary, re-exported for callers of the state machine
    ACTIONS,
    AUTOMATIC,
    CONTRACT_STATES,
    HOLDING,
    MILESTONE_STATES,
    OUTCOMES,
    REVIEWABLE,
    TERMINAL,
    Action,
)


@dataclass(slots=True)
class Milestone:
    """A milestone's live state and its history so far."""

    id: str
    amount: int
    due: float | None = None
    state: str = "planned"
    escrowed: int = 0
    gen: int = 0
    change_requests: int = 0
    submissions: int = 0
    funded_at: float | None = None
    first_submitted_at: float | None = None
    last_submitted_at: float | None = None
    closed_at: float | None = None
    outcome: str = "open"
    released: int = 0
    refunded: int = 0
    bonus: int = 0
    deleted: bool = False
    funded: int = 0  # paid into escrow for this milestone (the ``funded`` postings naming it)
    fees: int = 0  # fees of postings naming it


@dataclass(slots=True)
class RefundRequest:
    """A pending escrow refund request: which milestones, whether contract credit is included."""

    milestones: tuple[str, ...]
    include_credit: bool
    requested_at: float
    gen: int
    disputed: bool = False
    disputed_at: float | None = None


@dataclass(slots=True)
class Contract:
    """A contract's live state: milestones in their order, credit in escrow, pending requests."""

    id: str
    client: str
    freelancer: str
    milestones: list[Milestone]
    state: str = "draft"
    credit: int = 0
    refund_request: RefundRequest | None = None
    refund_gen: int = 0
    offer_gen: int = 0
    by_id: dict[str, Milestone] = field(default_factory=dict)
    #: flows of postings that name no milestone (contract credit refunded, or released in a dispute)
    credit_flows: dict[str, int] = field(default_factory=dict)
    escrow_account: str = ""  # account names, computed once
    client_account: str = ""

    def __post_init__(self) -> None:
        self.by_id = {m.id: m for m in self.milestones}
        self.escrow_account = f"escrow:{self.id}"
        self.client_account = f"client:{self.client}"

    def escrow(self) -> int:
        """Money of this contract in escrow: milestone escrow plus credit."""
        return self.credit + sum(m.escrowed for m in self.milestones)


@dataclass(frozen=True, slots=True)
class Timer:
    """A follow-up the engine must schedule: fire ``action`` after ``delay`` days.

    Handlers write the policy's duration (days, or ``BusinessDays``); ``apply`` returns it in days.
    """

    delay: float | BusinessDays
    action: Action


@dataclass(slots=True)
class Emitted:
    """An accepted event with its postings: (from, to, flow, amount, milestone)."""

    actor: str
    action: str
    milestone: str
    amount: int
    message: str
    postings: list[tuple[str, str, str, int, str]]


@dataclass(slots=True)
class Outcome:
    """The decision on one action: rejected with a rule, or accepted events and timers."""

    accepted: bool
    rule: str = ""
    message: str = ""
    events: list[Emitted] = field(default_factory=list)
    timers: list[Timer] = field(default_factory=list)


class Rejected(Exception):
    """Raised inside the state machine before any change; turned into a rejected Outcome."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message


STALE = Outcome(accepted=False, rule="stale")


# ------------------------------------------------------------------------------ helpers


def _money(policy: Policy, cents: int) -> str:
    return f"{format_money(cents, policy.digits)} {policy.currency}"


def _milestone(c: Contract, mid: str | None) -> Milestone:
    if mid is None:
        raise Rejected("invalid_state", "this action needs a milestone")
    m = c.by_id.get(mid)
    if m is None or m.deleted:
        raise Rejected("invalid_state", f"milestone {mid} does not exist in contract {c.id}")
    return m


def _need_contract(c: Contract, states: tuple[str, ...], what: str) -> None:
    if c.state not in states:
        raise Rejected(
            "invalid_state",
            f"cannot {what} while the contract is {c.state} (needs {'/'.join(states)})",
        )


def _need_milestone(m: Milestone, states: frozenset[str] | tuple[str, ...], what: str) -> None:
    if m.state not in states:
        raise Rejected(
            "invalid_state",
            f"cannot {what} milestone {m.id} while it is {m.state} (needs {'/'.join(sorted(states))})",
        )


def _fees(
    policy: Policy, on: str, amount: int
) -> list[tuple[str, int]]:  # (payer, fee) for each fee rule on this flow
    out: list[tuple[str, int]] = []
    if amount <= 0:
        return out
    for fee in policy.fees:
        if fee.on == on:
            value = percent_of(amount, fee.percent, fee.rounding) if fee.percent else 0
            if fee.fixed:
                value += fee.fixed
            if value:
                out.append((fee.payer, value))
    return out


def _funding_fees(policy: Policy, c: Contract, charge: int, mid: str) -> list[tuple[str, str, str, int, str]]:
    """Client fees on money the client pays into escrow (fees on funding are the client's)."""
    return [
        (c.client_account, "platform", "fees", fee, mid) for payer, fee in _fees(policy, "funding", charge)
    ]


def _freelancer_target(policy: Policy, c: Contract) -> str:
    suffix = "available" if is_zero(policy.hold.after_release) else "pending"
    return f"freelancer:{c.freelancer}:{suffix}"


def _pay_freelancer(
    policy: Policy,
    c: Contract,
    gross: int,
    flow: str,
    mid: str,
    postings: list,
    timers: list,
    notes: list[str] | None = None,
) -> int:
    """Post a release or bonus to the freelancer, their fees to the platform; return the net.

    A freelancer fee is taken from the money paid, so it can never exceed it: a larger fee (a big
    ``fixed`` part on a small release) is capped at what is left, and ``notes`` gets a sentence
    saying so, which the event's message carries.
    """
    target = _freelancer_target(policy, c)
    source = c.escrow_account if flow == "released" else c.client_account
    postings.append((source, target, flow, gross, mid))
    net = gross
    for payer, fee in _fees(policy, "release" if flow == "released" else "bonus", gross):
        if payer == "freelancer":
            if fee > net:
                if notes is not None:
                    what = "release" if flow == "released" else "bonus"
                    notes.append(
                        f"fee capped at the {what}: the freelancer fee of {_money(policy, fee)} is more "
                        f"than the {_money(policy, net)} left of {_money(policy, gross)}, so "
                        f"{_money(policy, net)} is taken"
                    )
                fee = net
            postings.append((target, "platform", "fees", fee, mid))
            net -= fee
        else:
            postings.append((c.client_account, "platform", "fees", fee, mid))
    if not is_zero(policy.hold.after_release) and net > 0:
        timers.append(
            Timer(
                policy.hold.after_release,
                Action("platform", "funds_available", mid, amount=net, account=target),
            )
        )
    return net


def _release(
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
    _pay_freelancer(policy, c, paid, "released", m.id, postings, timers, notes)
    if amount > held:
        _pay_freelancer(policy, c, amount - held, "bonus", m.id, postings, timers, notes)
        m.bonus += amount - held
    c.credit += held - paid
    m.escrowed = 0
    m.released += paid
    m.gen += 1


def _close(m: Milestone, state: str, outcome: str, now: float) -> None:
    m.state = state
    m.outcome = outcome
    m.closed_at = now


def _holding(c: Contract) -> list[Milestone]:
    return [m for m in c.milestones if not m.deleted and m.state in HOLDING]


def _refund_all(c: Contract, now: float, actor: str, action: str, note: str) -> Emitted:
    """Return all escrow of the contract to the client; funded milestones become refunded."""
    postings = []
    for m in _holding(c):
        postings.append((c.escrow_account, c.client_account, "refunded", m.escrowed, m.id))
        m.refunded += m.escrowed
        m.escrowed = 0
        m.gen += 1
        _close(m, "refunded", "refunded", now)
    if c.credit:
        postings.append((c.escrow_account, c.client_account, "refunded", c.credit, ""))
        c.credit = 0
    total = sum(p[3] for p in postings)
    return Emitted(actor, action, "", total, note, postings)


# ------------------------------------------------------------------------------ the rules


def apply(policy: Policy, c: Contract, action: Action, now: float, clock: Clock = PLAIN) -> Outcome:
    """Decide one action on one contract; mutate the contract only when the action is accepted.

    ``clock`` maps ``now`` onto the policy's calendar (the scenario's ``start``): the timers the
    handlers ask for in policy durations (``14d`` or ``5bd``) come back with their delays in days,
    computed once, now, so a timer keeps the length it had when it started.
    """
    handler = _HANDLERS.get(action.name)
    if handler is None:
        return Outcome(False, "invalid_state", f"unknown action {action.name!r}")
    try:
        out = handler(policy, c, action, now, clock)
    except Rejected as rej:
        return Outcome(False, rej.rule, rej.message)
    if out.timers:
        out.timers = [
            t if type(t.delay) is float else Timer(clock.days(now, t.delay), t.action) for t in out.timers
        ]
    for ev in out.events:
        if ev.postings:
            _note_client_paid(policy, c, ev)
    return out


def _note_client_paid(policy: Policy, c: Contract, ev: Emitted) -> None:
    """Say in the message what the client actually paid, when it is not the event's amount.

    The amount of a funding is the milestone's amount; the client pays that plus client fees,
    less any contract credit reused. The message then ends with e.g. "client paid 105.00 USD
    (100.00 USD + 5.00 USD fees)".
    """
    client = c.client_account
    paid = fees = 0
    for frm, _to, flow, amount, _mid in ev.postings:
        if frm == client:
            paid += amount
            if flow == "fees":
                fees += amount
    if not paid or (paid == ev.amount and not fees):
        return
    text = f"client paid {_money(policy, paid)}"
    if fees:
        text += f" ({_money(policy, paid - fees)} + {_money(policy, fees)} fees)"
    ev.message = f"{ev.message}; {text}" if ev.message else text


def _offer(policy: Policy, c: Contract, a: Action, now: float, clock: Clock = PLAIN) -> Outcome:
    _need_contract(c, ("draft",), "send an offer")
    live = [m for m in c.milestones if not m.deleted]
    if not live:
        raise Rejected("invalid_state", "an offer needs at least one milestone")
    low = [m for m in live if m.amount < policy.milestones.minimum_amount]
    if low:
        names = ", ".join(f"{m.id} ({_money(policy, m.amount)})" for m in low)
        raise Rejected(
            "minimum_amount",
            f"offer rejected: {names} below the minimum of "
            f"{_money(policy, policy.milestones.minimum_amount)}",
        )
    c.state = "offered"
    total = sum(m.amount for m in live)
    timers = []
    if policy.offer.expires_after is not None:
        c.offer_gen += 1
        timers.append(Timer(policy.offer.expires_after, Action("platform", "offer_expired", gen=c.offer_gen)))
    note = f"offer of {len(live)} milestone(s), {_money(policy, total)} in total, sent"
    ev = Emitted(a.actor, "offer", "", 0, note, [])
    return Outcome(True, events=[ev], timers=timers)


def _end_offer(policy: Policy, c: Contract, a: Action, now: float, state: str, refund: bool):
    c.state = state
    c.offer_gen += 1
    events = [Emitted(a.actor, a.name, "", 0, f"contract {state}", [])]
    if refund and c.escrow() > 0:
        events.append(_refund_all(c, now, "platform", "offer_refund", "escrow returned to the client"))
    return Outcome(True, events=events)


def _withdraw_offer(policy: Policy, c: Contract, a: Action, now: float, clock: Clock = PLAIN) -> Outcome:
    _need_contract(c, ("offered",), "withdraw the offer")
    return _end_offer(policy, c, a, now, "withdrawn", policy.offer.refund_on_withdraw)


def _decline_offer(policy: Policy, c: Contract, a: Action, now: float, clock: Clock = PLAIN) -> Outcome:
    _need_contract(c, ("offered",), "decline the offer")
    return _end_offer(policy, c, a, now, "declined", policy.offer.refund_on_decline)


def timer_is_stale(c: Contract, a: Action) -> bool:
    """Would this timer be ignored if it fired now? (Its generation was bumped by a newer action.)

    The engine asks this of pending timers, without firing them, to know when nothing is left
    that could change state or money. ``funds_available`` (a hold ending) is never stale.
    """
    name = a.name
    if name == "auto_approve":
        m = c.by_id.get(a.milestone or "")
        return m is None or m.deleted or m.state != "submitted" or m.gen != a.gen
    if name == "auto_refund":
        req = c.refund_request
        return req is None or req.disputed or req.gen != a.gen
    if name == "offer_expired":
        return c.state != "offered" or a.gen != c.offer_gen
    return False


def _offer_expired(policy: Policy, c: Contract, a: Action, now: float, clock: Clock = PLAIN) -> Outcome:
    if timer_is_stale(c, a):
        return STALE
    return _end_offer(policy, c, a, now, "expired", policy.offer.refund_on_decline)


def _accept_offer(policy: Policy, c: Contract, a: Action, now: float, clock: Clock = PLAIN) -> Outcome:
    _need_contract(c, ("offered",), "accept the offer")
    c.state = "active"
    c.offer_gen += 1
    return Outcome(True, events=[Emitted(a.actor, "accept_offer", "", 0, "contract active", [])])


def _fund(policy: Policy, c: Contract, a: Action, now: float, clock: Clock = PLAIN) -> Outcome:
    _need_contract(c, ("offered", "active"), "fund a milestone")
    m = _milestone(c, a.milestone)
    _need_milestone(m, ("planned",), "fund")
    if c.refund_request is not None:
        raise Rejected("invalid_state", "cannot fund while a refund request is pending")
    rules = policy.milestones
    if rules.funding == "one_at_a_time":
        busy = [x.id for x in _holding(c)]
        if busy:
            raise Rejected(
                "one_at_a_time",
                f"cannot fund {m.id}: milestone {busy[0]} is funded and not yet released or refunded",
            )
    if rules.funding_order == "sequential":
        nxt = next(x for x in c.milestones if not x.deleted and x.state == "planned")
        if nxt is not m:
            raise Rejected("funding_order", f"cannot fund {m.id}: {nxt.id} is the next milestone in order")
    if m.amount < rules.minimum_amount:
        raise Rejected(
            "minimum_amount",
            f"cannot fund {m.id} with {_money(policy, m.amount)}: the minimum is "
            f"{_money(policy, rules.minimum_amount)}",
        )
    from_credit = min(c.credit, m.amount)
    charge = m.amount - from_credit
    postings = [(c.client_account, c.escrow_account, "funded", charge, m.id)]
    postings.extend(_funding_fees(policy, c, charge, m.id))
    c.credit -= from_credit
    m.escrowed = m.amount
    m.state = "funded"
    m.funded_at = now
    note = f"funded {_money(policy, m.amount)}"
    if from_credit:
        note += f" ({_money(policy, from_credit)} from contract credit)"
    return Outcome(True, events=[Emitted(a.actor, "fund", m.id, m.amount, note, postings)])


def _submit(policy: Policy, c: Contract, a: Action, now: float, clock: Clock = PLAIN) -> Outcome:
    _need_contract(c, ("active",), "submit work")
    m = _milestone(c, a.milestone)
    _need_milestone(m, ("funded", "changes_requested"), "submit")
    m.state = "submitted"
    m.gen += 1
    m.submissions += 1
    m.last_submitted_at = now
    if m.first_submitted_at is None:
        m.first_submitted_at = now
    timers = []
    if policy.review.on_timeout == "approve":
        timers.append(Timer(policy.review.window, Action("platform", "auto_approve", m.id, gen=m.gen)))
    note = f"submission {m.submissions}; review window ends in {clock.describe(now, policy.review.window)}"
    return Outcome(True, events=[Emitted(a.actor, "submit", m.id, 0, note, [])], timers=timers)


def _approve(policy: Policy, c: Contract, a: Action, now: float, clock: Clock = PLAIN) -> Outcome:
    _need_contract(c, ("active", "ended"), "approve")
    m = _milestone(c, a.milestone)
    _need_milestone(m, REVIEWABLE, "approve")
    amount = m.escrowed if a.amount is None else a.amount
    if amount < m.escrowed and not policy.release.partial:
        raise Rejected(
            "partial_release",
            f"releasing {_money(policy, amount)} of {_money(policy, m.escrowed)} is not allowed: "
            "this policy has no partial releases",
        )
    if amount > m.escrowed and not policy.release.bonus:
        raise Rejected(
            "bonus",
            f"releasing {_money(policy, amount)} for a milestone funded with "
            f"{_money(policy, m.escrowed)} is not allowed: this policy has no bonuses",
        )
    postings: list = []
    timers: list = []
    held = m.escrowed
    notes: list[str] = []
    _release(policy, c, m, amount, postings, timers, notes)
    _close(m, "released", "approved", now)
    if amount < held:
        note = f"partial release; {_money(policy, held - amount)} stays in escrow as contract credit"
    elif amount > held:
        note = f"released in full plus a bonus of {_money(policy, amount - held)}"
    else:
        note = "released in full"
    note = "; ".join([note, *notes])
    return Outcome(True, events=[Emitted(a.actor, "approve", m.id, amount, note, postings)], timers=timers)


def _auto_approve(policy: Policy, c: Contract, a: Action, now: float, clock: Clock = PLAIN) -> Outcome:
    if timer_is_stale(c, a):
        return STALE
    m = c.by_id[a.milestone or ""]
    postings: list = []
    timers: list = []
    amount = m.escrowed
    notes: list[str] = []
    _release(policy, c, m, amount, postings, timers, notes)
    _close(m, "released", "auto_approved", now)
    note = "; ".join(["review window ended without a decision; released in full", *notes])
    return Outcome(
        True,
        events=[Emitted("platform", "auto_approve", m.id, amount, note, postings)],
        timers=timers,
    )


def _request_changes(policy: Policy, c: Contract, a: Action, now: float, clock: Clock = PLAIN) -> Outcome:
    _need_contract(c, ("active",), "request changes")
    m = _milestone(c, a.milestone)
    _need_milestone(m, ("submitted",), "request changes on")
    limit = policy.review.max_change_requests
    if limit is not None and m.change_requests >= limit:
        raise Rejected(
            "max_change_requests",
            f"milestone {m.id} already had {m.change_requests} change request(s); the limit is {limit}",
        )
    m.state = "changes_requested"
    m.change_requests += 1
    m.gen += 1
    note = f"change request {m.change_requests}; review clock stopped until resubmission"
    return Outcome(True, events=[Emitted(a.actor, "request_changes", m.id, 0, note, [])])


def _check_position_lock(policy: Policy, c: Contract, position: int) -> None:
    if "order" not in policy.milestones.active_locked:
        return
    live = [m for m in c.milestones if not m.deleted]
    locked = [i for i, m in enumerate(live) if m.state != "planned"]
    if locked and position <= locked[-1]:
        raise Rejected(
            "active_locked",
            f"cannot insert at position {position}: "
            f"milestone {live[locked[-1]].id} is funded and keeps its place",
        )


def _add_milestone(policy: Policy, c: Contract, a: Action, now: float, clock: Clock = PLAIN) -> Outcome:
    _need_contract(c, ("draft", "offered", "active"), "add a milestone")
    mid = a.milestone or ""
    if mid in c.by_id:
        raise Rejected("invalid_state", f"milestone {mid} already exists in contract {c.id}")
    amount = a.amount or 0
    if amount < policy.milestones.minimum_amount:
        raise Rejected(
            "minimum_amount",
            f"milestone {mid} of {_money(policy, amount)} is below the minimum of "
            f"{_money(policy, policy.milestones.minimum_amount)}",
        )
    live = [m for m in c.milestones if not m.deleted]
    position = len(live) if a.position is None else a.position
    if position < 0 or position > len(live):
        raise Rejected("invalid_state", f"position {position} is outside 0..{len(live)}")
    _check_position_lock(policy, c, position)
    m = Milestone(mid, amount, a.due)
    live.insert(position, m)
    c.milestones = live + [x for x in c.milestones if x.deleted]
    c.by_id[mid] = m
    note = f"added at position {position}: {_money(policy, amount)}"
    return Outcome(True, events=[Emitted(a.actor, "add_milestone", mid, 0, note, [])])


def _edit_milestone(policy: Policy, c: Contract, a: Action, now: float, clock: Clock = PLAIN) -> Outcome:
    _need_contract(c, ("draft", "offered", "active"), "edit a milestone")
    m = _milestone(c, a.milestone)
    locked = policy.milestones.active_locked
    if m.state in TERMINAL:
        raise Rejected("invalid_state", f"milestone {m.id} is {m.state} and can no longer change")
    if m.state != "planned":
        if a.amount is not None and "amount" in locked:
            raise Rejected("active_locked", f"the amount of funded milestone {m.id} cannot change")
        if a.due is not None and "due_date" in locked:
            raise Rejected("active_locked", f"the due date of funded milestone {m.id} cannot change")
        if a.amount is not None and m.state != "funded":
            raise Rejected("invalid_state", f"milestone {m.id} is {m.state}; its amount cannot change now")
    if a.amount is not None and a.amount < policy.milestones.minimum_amount:
        raise Rejected(
            "minimum_amount",
            f"{_money(policy, a.amount)} is below the minimum of "
            f"{_money(policy, policy.milestones.minimum_amount)}",
        )
    postings = []
    if a.amount is not None and m.state == "funded" and a.amount != m.escrowed:
        if a.amount > m.escrowed:
            need = a.amount - m.escrowed
            from_credit = min(c.credit, need)
            c.credit -= from_credit
            postings.append((c.client_account, c.escrow_account, "funded", need - from_credit, m.id))
            postings.extend(_funding_fees(policy, c, need - from_credit, m.id))
        else:
            c.credit += m.escrowed - a.amount
        m.escrowed = a.amount
    parts = []
    if a.amount is not None:
        m.amount = a.amount
        parts.append(f"amount {_money(policy, a.amount)}")
    if a.due is not None:
        m.due = a.due
        parts.append(f"due {a.due:g}d")
    amount = (a.amount or 0) if postings else 0  # only an edit that moves money carries an amount
    return Outcome(
        True, events=[Emitted(a.actor, "edit_milestone", m.id, amount, ", ".join(parts), postings)]
    )


def _delete_milestone(policy: Policy, c: Contract, a: Action, now: float, clock: Clock = PLAIN) -> Outcome:
    _need_contract(c, ("draft", "offered", "active"), "delete a milestone")
    m = _milestone(c, a.milestone)
    if m.state in TERMINAL:
        raise Rejected("invalid_state", f"milestone {m.id} is {m.state} and cannot be deleted")
    if m.state != "planned":
        if "delete" in policy.milestones.active_locked:
            raise Rejected("active_locked", f"funded milestone {m.id} cannot be deleted")
        if m.state != "funded":
            raise Rejected("invalid_state", f"milestone {m.id} is {m.state} and cannot be deleted")
        c.credit += m.escrowed
        m.escrowed = 0
    m.deleted = True
    m.gen += 1
    c.milestones = [x for x in c.milestones if not x.deleted] + [x for x in c.milestones if x.deleted]
    return Outcome(True, events=[Emitted(a.actor, "delete_milestone", m.id, 0, "deleted", [])])


def _reorder(policy: Policy, c: Contract, a: Action, now: float, clock: Clock = PLAIN) -> Outcome:
    _need_contract(c, ("draft", "offered", "active"), "reorder milestones")
    live = [m for m in c.milestones if not m.deleted]
    order = list(a.order or ())
    if sorted(order) != sorted(m.id for m in live):
        raise Rejected(
            "invalid_state",
            f"new order {order} must list each milestone once: {[m.id for m in live]}",
        )
    if "order" in policy.milestones.active_locked:
        for i, m in enumerate(live):
            if m.state != "planned" and order[i] != m.id:
                raise Rejected("active_locked", f"funded milestone {m.id} cannot change its place")
    c.milestones = [c.by_id[i] for i in order] + [x for x in c.milestones if x.deleted]
    return Outcome(True, events=[Emitted(a.actor, "reorder_milestones", "", 0, " > ".join(order), [])])


def _request_refund(policy: Policy, c: Contract, a: Action, now: float, clock: Clock = PLAIN) -> Outcome:
    _need_contract(c, ("active", "ended"), "request a refund")
    if c.refund_request is not None:
        raise Rejected("invalid_state", "a refund request is already pending")
    if a.milestone is not None:
        m = _milestone(c, a.milestone)
        _need_milestone(m, REVIEWABLE, "request a refund of")
        targets, include_credit = [m], False
    else:
        targets, include_credit = [m for m in _holding(c)], True
        if not targets and c.credit == 0:
            raise Rejected("invalid_state", f"nothing of contract {c.id} is held in escrow")
    for m in targets:
        m.state = "refund_requested"
        m.gen += 1
    c.refund_gen += 1
    c.refund_request = RefundRequest(tuple(m.id for m in targets), include_credit, now, c.refund_gen)
    amount = sum(m.escrowed for m in targets) + (c.credit if include_credit else 0)
    timers = []
    if policy.refund.on_timeout == "refund":
        timers.append(
            Timer(policy.refund.response_window, Action("platform", "auto_refund", gen=c.refund_gen))
        )
    window = clock.describe(now, policy.refund.response_window)
    note = f"refund of {_money(policy, amount)} requested; freelancer has {window} to answer"
    mid = a.milestone or ""
    return Outcome(True, events=[Emitted(a.actor, "request_refund", mid, 0, note, [])], timers=timers)


def _refund_requested(c: Contract, now: float, actor: str, action: str, outcome: str) -> Emitted:
    req = c.refund_request
    assert req is not None
    postings = []
    for mid in req.milestones:
        m = c.by_id[mid]
        postings.append((c.escrow_account, c.client_account, "refunded", m.escrowed, mid))
        m.refunded += m.escrowed
        m.escrowed = 0
        m.gen += 1
        _close(m, "refunded", outcome, now)
    if req.include_credit and c.credit:
        postings.append((c.escrow_account, c.client_account, "refunded", c.credit, ""))
        c.credit = 0
    c.refund_request = None
    c.refund_gen += 1
    mid = req.milestones[0] if len(req.milestones) == 1 else ""
    total = sum(p[3] for p in postings)
    return Emitted(actor, action, mid, total, "escrow returned to the client", postings)


def _pending_request(c: Contract, what: str) -> RefundRequest:
    req = c.refund_request
    if req is None or req.disputed:
        raise Rejected("invalid_state", f"cannot {what}: no refund request is awaiting an answer")
    return req


def _approve_refund(policy: Policy, c: Contract, a: Action, now: float, clock: Clock = PLAIN) -> Outcome:
    _need_contract(c, ("active", "ended"), "answer a refund request")
    _pending_request(c, "approve a refund")
    return Outcome(True, events=[_refund_requested(c, now, a.actor, "approve_refund", "refunded")])


def _auto_refund(policy: Policy, c: Contract, a: Action, now: float, clock: Clock = PLAIN) -> Outcome:
    if timer_is_stale(c, a):
        return STALE
    return Outcome(True, events=[_refund_requested(c, now, "platform", "auto_refund", "auto_refunded")])


def _dispute(policy: Policy, c: Contract, a: Action, now: float, clock: Clock = PLAIN) -> Outcome:
    _need_contract(c, ("active", "ended"), "dispute")
    req = _pending_request(c, "dispute")
    if not policy.refund.dispute:
        raise Rejected("dispute", "this policy does not let the freelancer dispute a refund request")
    req.disputed = True
    req.disputed_at = now
    c.refund_gen += 1
    for mid in req.milestones:
        m = c.by_id[mid]
        m.state = "disputed"
        m.gen += 1
    amount = disputed_amount(c)
    mid = req.milestones[0] if len(req.milestones) == 1 else ""
    note = f"{len(req.milestones)} milestone(s), {_money(policy, amount)}, in dispute; the platform decides"
    return Outcome(True, events=[Emitted(a.actor, "dispute", mid, 0, note, [])])


def disputed_amount(c: Contract) -> int:
    """Money under the contract's pending dispute (0 when there is none)."""
    req = c.refund_request
    if req is None or not req.disputed:
        return 0
    return sum(c.by_id[m].escrowed for m in req.milestones) + (c.credit if req.include_credit else 0)


def _resolve_dispute(policy: Policy, c: Contract, a: Action, now: float, clock: Clock = PLAIN) -> Outcome:
    req = c.refund_request
    if req is None or not req.disputed:
        raise Rejected("invalid_state", f"contract {c.id} has no dispute to resolve")
    if a.milestone is not None and a.milestone not in req.milestones:
        raise Rejected("invalid_state", f"milestone {a.milestone} is not in the dispute")
    release, refund = a.release or 0, a.refund or 0
    total = disputed_amount(c)
    if release + refund > total:
        raise Rejected(
            "insufficient_escrow",
            f"release {_money(policy, release)} + refund {_money(policy, refund)} is more than "
            f"the {_money(policy, total)} in dispute",
        )
    if release + refund < total:
        raise Rejected(
            "invalid_state",
            f"release {_money(policy, release)} + refund {_money(policy, refund)} must add up to "
            f"the {_money(policy, total)} in dispute",
        )
    postings: list = []
    timers: list = []
    notes: list[str] = []
    to_release = release
    for mid in req.milestones:  # the release fills milestones in order; the rest is refunded
        m = c.by_id[mid]
        part = min(to_release, m.escrowed)
        to_release -= part
        if part:
            _pay_freelancer(policy, c, part, "released", mid, postings, timers, notes)
        back = m.escrowed - part
        if back:
            postings.append((c.escrow_account, c.client_account, "refunded", back, mid))
        m.released += part
        m.refunded += back
        m.escrowed = 0
        m.gen += 1
        _close(m, "resolved", "resolved", now)
    if req.include_credit and c.credit:
        part = min(to_release, c.credit)
        if part:
            _pay_freelancer(policy, c, part, "released", "", postings, timers, notes)
        if c.credit - part:
            postings.append((c.escrow_account, c.client_account, "refunded", c.credit - part, ""))
        c.credit = 0
    c.refund_request = None
    c.refund_gen += 1
    mid = req.milestones[0] if len(req.milestones) == 1 else ""
    note = f"dispute decided: {_money(policy, release)} released, {_money(policy, refund)} refunded"
    note = "; ".join([note, *notes])
    ev = Emitted(a.actor, "resolve_dispute", mid, total, note, postings)
    return Outcome(True, events=[ev], timers=timers)


def _end_contract(policy: Policy, c: Contract, a: Action, now: float, clock: Clock = PLAIN) -> Outcome:
    _need_contract(c, ("active",), "end the contract")
    c.state = "ended"
    held = c.escrow()
    note = "contract ended"
    if held:
        note += f"; {_money(policy, held)} still in escrow"
    return Outcome(True, events=[Emitted(a.actor, "end_contract", "", 0, note, [])])


def _funds_available(policy: Policy, c: Contract, a: Action, now: float, clock: Clock = PLAIN) -> Outcome:
    account = a.account or ""
    available = account.rsplit(":", 1)[0] + ":available"
    postings = [(account, available, "available", a.amount or 0, a.milestone or "")]
    ev = Emitted("platform", "funds_available", a.milestone or "", a.amount or 0, "hold ended", postings)
    return Outcome(True, events=[ev])


_HANDLERS = {
    "offer": _offer,
    "withdraw_offer": _withdraw_offer,
    "decline_offer": _decline_offer,
    "offer_expired": _offer_expired,
    "accept_offer": _accept_offer,
    "fund": _fund,
    "submit": _submit,
    "approve": _approve,
    "auto_approve": _auto_approve,
    "request_changes": _request_changes,
    "add_milestone": _add_milestone,
    "edit_milestone": _edit_milestone,
    "delete_milestone": _delete_milestone,
    "reorder_milestones": _reorder,
    "request_refund": _request_refund,
    "approve_refund": _approve_refund,
    "auto_refund": _auto_refund,
    "dispute": _dispute,
    "resolve_dispute": _resolve_dispute,
    "end_contract": _end_contract,
    "funds_available": _funds_available,
}
