"""The milestone state machine: every rule of every policy is decided here, and only here.

``apply(policy, contract, action, now, clock)`` reads the policy and the contract's state and
returns either a rejection (rule id and a message; nothing changed) or the accepted events, each
with its postings, plus the timers to start. It is lookup, guards, effect: the action's row of
the transition table (``transitions``) says which contract and milestone states it needs and
which named guards it must pass, then its effect (``actions``) changes the contract. It never
touches SimPy, a wall clock or randomness: the engine decides *when* things happen, this module
decides *what* they do. ``clock`` is pure calendar arithmetic (``sim.policy.calendar.Clock``: the
scenario's start date and the policy's business days), which turns a ``5bd`` window into days at
the moment it opens.

Timers are made harmless without interrupts: each carries the generation counter of what it
watches (a milestone's review, the contract's open procedure), and an action that beats it bumps
the counter, so the timer finds a newer generation when it fires and does nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from ..money.ledger import Transfer
from ..policy.calendar import PLAIN, Clock, is_zero
from ..policy.model import Policy
from . import procedures as proc
from .actions import dormancy_timer_is_stale, open_by_pack_action, review_timer_is_stale, start_dormancy
from .effects import milestone, money, need_contract, need_milestone
from .guards import compile_guards
from .procedures import disputed_amount  # noqa: F401 - re-exported for the dispute desk
from .records import (  # noqa: F401 - the records, re-exported for callers of the state machine
    STALE,
    Contract,
    Emitted,
    Milestone,
    OpenProcedure,
    Outcome,
    Rejected,
    Timer,
)
from .transitions import ACTIONS, AUTOMATIC, BY_NAME, CONSEQUENCES, Transition  # noqa: F401 - re-exported
from .vocabulary import (  # noqa: F401 - the vocabulary, re-exported for callers of the state machine
    CONTRACT_STATES,
    HOLDING,
    MILESTONE_STATES,
    OUTCOMES,
    REVIEWABLE,
    TERMINAL,
    Action,
)

#: the rows apply looks up: every action but the consequences, which only the platform's own
#: decisions make (they have no handler of their own)
_DISPATCH = {name: t for name, t in BY_NAME.items() if name not in CONSEQUENCES}
#: each action's guards, as the table gives them (compiled per policy by ``compile_guards``)
_GUARDS = {name: t.guards for name, t in _DISPATCH.items() if t.guards}
#: a pack's own opening action (``open_dispute``): no row of its own, the pack declares it
_PACK_OPENER = Transition("(pack opener)", ("client", "freelancer"), open_by_pack_action, "")

#: one compiled row: (actors, contract states or None, milestone required, milestone states or
#: None, the guard checks that can fail under the policy, effect, the row itself)
Row = tuple


class Machine:
    """The transition table compiled for one policy: each row flattened into a tuple that
    :meth:`decide` unpacks, with only the guards that can fail under this policy, and the pack's
    own opening actions added. Worked out once per policy (:func:`machine_for`); the engine keeps
    its policy's machine and calls :meth:`decide` for every action."""

    __slots__ = ("dormancy", "from_balance", "policy", "refund_delay", "rows")

    def __init__(self, policy: Policy) -> None:
        compiled = compile_guards(policy, _GUARDS)
        rows: dict[str, Row] = {}
        for name, t in _DISPATCH.items():
            checks = tuple(g.check for g in compiled.get(name, ()))
            contract = frozenset(t.contract) if t.contract is not None else None
            needs_milestone = t.milestone == "required"
            rows[name] = (t.actors, contract, needs_milestone, t.milestone_states, checks, t.effect, t)
        for _actor, name in policy.openers:
            if name not in rows:
                actors = tuple(a for a, n in sorted(policy.openers) if n == name)
                rows[name] = (actors, None, False, None, (), open_by_pack_action, _PACK_OPENER)
        self.policy = policy
        self.rows = rows
        self.dormancy = policy.dormancy is not None
        self.refund_delay = not is_zero(policy.hold.after_refund)
        self.from_balance = policy.milestones.fund_from_balance

    def decide(
        self,
        c: Contract,
        action: Action,
        now: float,
        clock: Clock = PLAIN,
        notes: bool = True,
        guards: bool = True,
    ) -> Outcome:
        """Decide one action on one contract (see :func:`apply`). ``notes=False`` is for callers
        that keep no messages: accepted events' messages are then left unwritten (a
        :data:`~sim.machine.records.Note` where an effect deferred it), nothing is formatted.
        ``guards=False`` skips the policy's checks (minimums, one at a time, limits) and keeps the
        state rules: an audit follows what production did after reporting that the pack forbids it."""
        policy = self.policy
        row = self.rows.get(action.name)
        if row is None:
            return Outcome(False, "invalid_state", f"unknown action {action.name!r}")
        actors, contract, needs_milestone, milestone_states, checks, effect, t = row
        try:
            if action.actor not in actors:
                if t is _PACK_OPENER:
                    return Outcome(False, "invalid_state", f"unknown action {action.name!r}")
                raise Rejected("invalid_state", f"{action.name} is not a {action.actor} action")
            if contract is not None and c.state not in contract:
                need_contract(c, t.contract, t.what)  # raises, saying which states it needs
            m = None
            if needs_milestone:
                m = c.by_id.get(action.milestone) if action.milestone is not None else None
                if m is None or m.deleted:
                    m = milestone(c, action.milestone)  # raises, naming what is missing
                if milestone_states is not None and m.state not in milestone_states:
                    need_milestone(m, milestone_states, t.milestone_what)  # raises
            if guards:
                for check in checks:
                    check(policy, c, action, m, now)
            out = effect(policy, c, action, m, now, clock)
        except Rejected as rej:
            keys = rej.keys or RULE_KEYS.get(rej.rule, ())
            if rej.rule in ("procedure", "not_your_turn") and c.procedure is not None:
                keys = (f"procedures.{c.procedure.name}",)
            return Outcome(False, rej.rule, rej.message, keys=_shorthand(policy, keys))
        if not out.accepted:
            return out
        if self.dormancy and action.actor != "platform":
            out.timers.extend(start_dormancy(policy, c, now, clock))
        if self.refund_delay and action.name not in _UNREVIEWED_REFUNDS:
            _delay_refunds(policy, c, out, now, clock)
        if self.from_balance and c.balances is not None:
            _pay_from_balance(c, out)
        if c.first_fee and not c.paid_out and c.escrow() == 0 and c.procedure is None and c.state in _CLOSED:
            out.events.append(_return_first_fee(policy, c))
        if out.timers:
            out.timers = [
                t if type(t.delay) is float else Timer(clock.days(now, t.delay), t.action) for t in out.timers
            ]
        if notes:
            for ev in out.events:
                if type(ev.message) is not str:
                    ev.message = ev.message()
                if ev.postings:
                    _note_client_paid(policy, c, ev)
        return out


#: refunds that need no review (an offer that never started, a cancel): ``hold.after_refund`` is
#: for refunds decided in a procedure (an answer, a timeout, the platform's decision)
_UNREVIEWED_REFUNDS = frozenset(
    {"refund_arrives", "withdraw_offer", "decline_offer", "offer_expired", "cancel_late", "cancel_milestone"}
)


def _delay_refunds(policy: Policy, c: Contract, out: Outcome, now: float, clock: Clock) -> None:
    """``hold.after_refund``: each refund of escrow a procedure decided stays in escrow, owed to the
    client (``Contract.in_transit``), and a ``refund_arrives`` timer pays it after the hold."""
    for ev in out.events:
        before = c.in_transit
        kept = []
        for p in ev.postings:
            if p.flow == "refunded" and p.from_account == c.escrow_account:
                c.in_transit += p.amount
                arrive = Action(
                    "platform", "refund_arrives", p.milestone or None, amount=p.amount, account=p.to_account
                )
                out.timers.append(Timer(policy.hold.after_refund, arrive))
            else:
                kept.append(p)
        ev.postings = kept
        if c.in_transit > before:
            when = clock.describe(now, policy.hold.after_refund)
            ev.message = partial(_arrives_note, ev.message, money(policy, c.in_transit - before), when)


def _arrives_note(message: str | Callable[[], str], amount: str, when: str) -> str:
    text = message if isinstance(message, str) else message()
    return f"{text}; the refund of {amount} arrives in {when}"


#: what a client pays that the platform balance may pay instead (fundings, fees, bonuses)
_PAYABLE_FROM_BALANCE = frozenset({"funded", "fees", "bonus", "stage_fee", "released"})


def _pay_from_balance(c: Contract, out: Outcome) -> None:
    """``milestones.fund_from_balance``: what the client pays comes out of ``balance:<client>``
    first, as far as it goes (the ledger's balance before this decision)."""
    account = f"balance:{c.client}"
    assert c.balances is not None
    left = c.balances.get(account, 0)
    if left <= 0:
        return
    for ev in out.events:
        routed = []
        for p in ev.postings:
            if left > 0 and p.from_account == c.client_account and p.flow in _PAYABLE_FROM_BALANCE:
                part = min(left, p.amount)
                left -= part
                routed.append(p._replace(from_account=account, amount=part))
                if p.amount > part:
                    routed.append(p._replace(amount=p.amount - part))
            else:
                routed.append(p)
        ev.postings = routed


#: id(policy) -> its machine (which keeps the policy, so an id reused after garbage collection
#: is never mistaken for it)
_MACHINES: dict[int, Machine] = {}


def machine_for(policy: Policy) -> Machine:
    """The policy's compiled machine, made on first use (a sweep's many are forgotten past 256)."""
    machine = _MACHINES.get(id(policy))
    if machine is None or machine.policy is not policy:
        if len(_MACHINES) > 256:
            _MACHINES.clear()
        machine = _MACHINES[id(policy)] = Machine(policy)
    return machine


def apply(policy: Policy, c: Contract, action: Action, now: float, clock: Clock = PLAIN) -> Outcome:
    """Decide one action on one contract; mutate the contract only when the action is accepted.

    ``clock`` maps ``now`` onto the policy's calendar (the scenario's ``start``): the timers the
    effects ask for in policy durations (``14d`` or ``5bd``) come back with their delays in days,
    computed once, now, so a timer keeps the length it had when it started.
    """
    return machine_for(policy).decide(c, action, now, clock)


def timer_is_stale(c: Contract, a: Action) -> bool:
    """Would this timer be ignored if it fired now? (Its generation was bumped by a newer action.)

    The engine asks this of pending timers, without firing them, to know when nothing is left
    that could change state or money. ``funds_available`` (a hold ending) is never stale.
    """
    name = a.name
    if name == "auto_approve":
        return review_timer_is_stale(c, a)
    if name in _TIMEOUTS:
        return proc.timer_is_stale(c, a)
    if name == "offer_expired":
        return c.state != "offered" or a.gen != c.offer_gen
    if name == "dormancy_check":
        return dormancy_timer_is_stale(c, a)
    if name == "review_notice":
        return review_timer_is_stale(c, a)
    if name == "extension_withdrawn":
        m = c.by_id.get(a.milestone or "")
        return m is None or m.extension_due is None or a.gen != m.extension_gen
    return False


#: the policy keys of each rule id, for rejections
RULE_KEYS: dict[str, tuple[str, ...]] = {
    "minimum_amount": ("milestones.minimum_amount",),
    "one_at_a_time": ("milestones.funding",),
    "funding_order": ("milestones.funding_order",),
    "active_locked": ("milestones.active_locked",),
    "partial_release": ("release.partial",),
    "bonus": ("release.bonus",),
    "dispute": ("refund.dispute",),
    "max_change_requests": ("review.max_change_requests",),
    "review_extension": ("review.extensions",),
}
#: which fees an event may charge, by the flow they are on
_FEES_ON = {
    "fund": ("funding", "first_funding"),
    "edit_milestone": ("funding",),
    "approve": ("release", "bonus"),
    "auto_approve": ("release",),
    "auto_release": ("release",),
    "approve_refund": (),
    "resolve_dispute": ("release", "funding"),
    "accept_offer": ("acceptance", "funding", "first_funding"),
    "respond": ("release",),
    "accept_settlement": ("release",),
    "early_payout": (),
    "reverse_release": (),
}
#: the article's procedures' keys as the refund: shorthand writes them
_SHORTHAND = {
    "procedures.escrow_refund.opened_by": "refund.response_window",
    "procedures.escrow_refund.respond.window": "refund.response_window",
    "procedures.escrow_refund.respond.on_timeout": "refund.on_timeout",
    "procedures.escrow_refund.respond.answers": "refund.dispute",
    "procedures.dispute.decide.decision": "refund.dispute",
    "procedures.escrow_refund": "refund",
    "procedures.dispute": "refund.dispute",
}


def _shorthand(policy: Policy, keys: tuple[str, ...]) -> tuple[str, ...]:
    """Name the refund: section's keys for the procedures it stands for (not declared ones)."""
    if not keys or not any(k.startswith("procedures.") for k in keys):
        return keys
    out = []
    for key in keys:
        name = key.split(".")[1] if key.startswith("procedures.") else ""
        out.append(_SHORTHAND.get(key, key) if name and name not in policy.procedures else key)
    return tuple(dict.fromkeys(out))


def decided_by(policy: Policy, ev: Emitted) -> tuple[str, ...]:
    """The policy keys that decided an accepted event: its action's, and the fees it charged.

    The engine asks this only of the events it records (a run with ``events: none`` never
    reads them), so it costs nothing where nobody looks.
    """
    row = BY_NAME.get(ev.action)
    keys = ev.keys or (row.keys if row is not None else ())
    if ev.postings and any(p[2] == "fees" for p in ev.postings):
        flows = _FEES_ON.get(ev.action, ("release", "bonus"))
        fees = tuple(f"fees.{f.name}" for f in policy.fees if f.on in flows)
        keys = (*keys, *fees)
    return _shorthand(policy, keys)


#: the timers of procedure stages (named by what their timeout does)
_TIMEOUTS = frozenset({"stage_timeout", "auto_refund", "auto_release"})

#: contract states in which a contract is over: a refundable first_funding fee may be returned
_CLOSED = ("withdrawn", "declined", "expired", "ended")


def _return_first_fee(policy: Policy, c: Contract) -> Emitted:
    """The contract closed with nothing released: its refundable first_funding fee goes back."""
    fee, c.first_fee = c.first_fee, 0
    note = f"contract closed with nothing released: the {money(policy, fee)} first-funding fee is returned"
    keys = tuple(f"fees.{f.name}" for f in policy.fees if f.on == "first_funding" and f.refundable)
    return Emitted(
        "platform",
        "fee_returned",
        "",
        fee,
        note,
        [Transfer("platform", c.refund_account, "fees", fee, "")],
        keys,
    )


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
    text = f"client paid {money(policy, paid)}"
    if fees and fees == paid:
        text += " in fees"
    elif fees:
        text += f" ({money(policy, paid - fees)} + {money(policy, fees)} fees)"
    ev.message = f"{ev.message}; {text}" if ev.message else text
