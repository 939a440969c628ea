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

from ..policy.calendar import PLAIN, Clock
from ..policy.model import Policy
from . import procedures as proc
from .effects import (
    close,
    funding_fees,
    holding,
    milestone,
    money,
    need_contract,
    need_milestone,
    refund_all,
    release,
)
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

# ------------------------------------------------------------------------------ the rules


def apply(policy: Policy, c: Contract, action: Action, now: float, clock: Clock = PLAIN) -> Outcome:
    """Decide one action on one contract; mutate the contract only when the action is accepted.

    ``clock`` maps ``now`` onto the policy's calendar (the scenario's ``start``): the timers the
    handlers ask for in policy durations (``14d`` or ``5bd``) come back with their delays in days,
    computed once, now, so a timer keeps the length it had when it started.
    """
    handler = _HANDLERS.get(action.name)
    if handler is None:
        if (action.actor, action.name) not in policy.openers:
            return Outcome(False, "invalid_state", f"unknown action {action.name!r}")
        handler = _opener
    try:
        out = handler(policy, c, action, now, clock)
    except Rejected as rej:
        keys = RULE_KEYS.get(rej.rule, ())
        if rej.rule in ("procedure", "not_your_turn") and c.procedure is not None:
            keys = (f"procedures.{c.procedure.name}",)
        return Outcome(False, rej.rule, rej.message, keys=_shorthand(policy, keys))
    if not out.accepted:
        return out
    for ev in out.events:
        ev.keys = decided_by(policy, ev)
    if policy.dormancy is not None and action.actor != "platform":
        out.timers.extend(_start_dormancy(policy, c, now, clock))
    if c.first_fee and not c.paid_out and c.escrow() == 0 and c.procedure is None and c.state in _CLOSED:
        out.events.append(_return_first_fee(policy, c))
    if out.timers:
        out.timers = [
            t if type(t.delay) is float else Timer(clock.days(now, t.delay), t.action) for t in out.timers
        ]
    for ev in out.events:
        if ev.postings:
            _note_client_paid(policy, c, ev)
    return out


#: the policy keys each kind of event is decided by (FORMAT section 9); procedures' events and
#: fees add their own
ACTION_KEYS: dict[str, tuple[str, ...]] = {
    "offer": ("milestones.minimum_amount", "offer.expires_after"),
    "withdraw_offer": ("offer.refund_on_withdraw",),
    "decline_offer": ("offer.refund_on_decline",),
    "offer_expired": ("offer.expires_after", "offer.refund_on_decline"),
    "offer_refund": ("offer.refund_on_withdraw", "offer.refund_on_decline"),
    "fund": ("milestones.funding", "milestones.funding_order", "milestones.minimum_amount"),
    "submit": ("review.window", "review.on_timeout"),
    "approve": ("release.partial", "release.bonus", "hold.after_release"),
    "auto_approve": ("review.window", "review.on_timeout", "hold.after_release"),
    "request_changes": ("review.max_change_requests",),
    "add_milestone": ("milestones.minimum_amount", "milestones.active_locked"),
    "edit_milestone": ("milestones.active_locked", "milestones.minimum_amount"),
    "delete_milestone": ("milestones.active_locked",),
    "reorder_milestones": ("milestones.active_locked",),
    "funds_available": ("hold.after_release",),
}
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
}
#: which fees an event may charge, by the flow they are on
_FEES_ON = {
    "fund": ("funding", "first_funding"),
    "edit_milestone": ("funding",),
    "approve": ("release", "bonus"),
    "auto_approve": ("release",),
    "auto_release": ("release",),
    "approve_refund": (),
    "resolve_dispute": ("release",),
    "respond": ("release",),
    "accept_settlement": ("release",),
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
    """The policy keys that decided an accepted event: its action's, and the fees it charged."""
    keys = ev.keys or ACTION_KEYS.get(ev.action, ())
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
        "platform", "fee_returned", "", fee, note, [("platform", c.client_account, "fees", fee, "")], keys
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
    if fees:
        text += f" ({money(policy, paid - fees)} + {money(policy, fees)} fees)"
    ev.message = f"{ev.message}; {text}" if ev.message else text


def _offer(policy: Policy, c: Contract, a: Action, now: float, clock: Clock = PLAIN) -> Outcome:
    need_contract(c, ("draft",), "send an offer")
    live = [m for m in c.milestones if not m.deleted]
    if not live:
        raise Rejected("invalid_state", "an offer needs at least one milestone")
    low = [m for m in live if m.amount < policy.milestones.minimum_amount]
    if low:
        names = ", ".join(f"{m.id} ({money(policy, m.amount)})" for m in low)
        raise Rejected(
            "minimum_amount",
            f"offer rejected: {names} below the minimum of {money(policy, policy.milestones.minimum_amount)}",
        )
    c.state = "offered"
    total = sum(m.amount for m in live)
    timers = []
    if policy.offer.expires_after is not None:
        c.offer_gen += 1
        timers.append(Timer(policy.offer.expires_after, Action("platform", "offer_expired", gen=c.offer_gen)))
    note = f"offer of {len(live)} milestone(s), {money(policy, total)} in total, sent"
    ev = Emitted(a.actor, "offer", "", 0, note, [])
    return Outcome(True, events=[ev], timers=timers)


def _end_offer(policy: Policy, c: Contract, a: Action, now: float, state: str, refund: bool):
    c.state = state
    c.offer_gen += 1
    events = [Emitted(a.actor, a.name, "", 0, f"contract {state}", [])]
    if refund and c.escrow() > 0:
        events.append(refund_all(c, now, "platform", "offer_refund", "escrow returned to the client"))
    return Outcome(True, events=events)


def _withdraw_offer(policy: Policy, c: Contract, a: Action, now: float, clock: Clock = PLAIN) -> Outcome:
    need_contract(c, ("offered",), "withdraw the offer")
    return _end_offer(policy, c, a, now, "withdrawn", policy.offer.refund_on_withdraw)


def _decline_offer(policy: Policy, c: Contract, a: Action, now: float, clock: Clock = PLAIN) -> Outcome:
    need_contract(c, ("offered",), "decline the offer")
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
    if name in _TIMEOUTS:
        return proc.timer_is_stale(c, a)
    if name == "offer_expired":
        return c.state != "offered" or a.gen != c.offer_gen
    if name == "dormancy_check":
        return (
            a.gen != c.activity_gen
            or c.procedure is not None
            or c.state not in ("active", "ended")
            or c.escrow() == 0
        )
    return False


def _offer_expired(policy: Policy, c: Contract, a: Action, now: float, clock: Clock = PLAIN) -> Outcome:
    if timer_is_stale(c, a):
        return STALE
    return _end_offer(policy, c, a, now, "expired", policy.offer.refund_on_decline)


def _accept_offer(policy: Policy, c: Contract, a: Action, now: float, clock: Clock = PLAIN) -> Outcome:
    need_contract(c, ("offered",), "accept the offer")
    c.state = "active"
    c.offer_gen += 1
    return Outcome(True, events=[Emitted(a.actor, "accept_offer", "", 0, "contract active", [])])


def _fund(policy: Policy, c: Contract, a: Action, now: float, clock: Clock = PLAIN) -> Outcome:
    need_contract(c, ("offered", "active"), "fund a milestone")
    m = milestone(c, a.milestone)
    need_milestone(m, ("planned",), "fund")
    if c.procedure is not None:
        if c.procedure.name == "escrow_refund":
            raise Rejected("invalid_state", "cannot fund while a refund request is pending")
        raise Rejected("invalid_state", f"cannot fund while {c.procedure.name} is open")
    rules = policy.milestones
    if rules.funding == "one_at_a_time":
        busy = [x.id for x in holding(c)]
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
            f"cannot fund {m.id} with {money(policy, m.amount)}: the minimum is "
            f"{money(policy, rules.minimum_amount)}",
        )
    from_credit = min(c.credit, m.amount)
    charge = m.amount - from_credit
    postings = [(c.client_account, c.escrow_account, "funded", charge, m.id)]
    postings.extend(funding_fees(policy, c, charge, m.id))
    c.credit -= from_credit
    m.escrowed = m.amount
    m.state = "funded"
    m.funded_at = now
    note = f"funded {money(policy, m.amount)}"
    if from_credit:
        note += f" ({money(policy, from_credit)} from contract credit)"
    return Outcome(True, events=[Emitted(a.actor, "fund", m.id, m.amount, note, postings)])


def _submit(policy: Policy, c: Contract, a: Action, now: float, clock: Clock = PLAIN) -> Outcome:
    need_contract(c, ("active",), "submit work")
    m = milestone(c, a.milestone)
    need_milestone(m, ("funded", "changes_requested"), "submit")
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
    need_contract(c, ("active", "ended"), "approve")
    m = milestone(c, a.milestone)
    need_milestone(m, REVIEWABLE, "approve")
    amount = m.escrowed if a.amount is None else a.amount
    if amount < m.escrowed and not policy.release.partial:
        raise Rejected(
            "partial_release",
            f"releasing {money(policy, amount)} of {money(policy, m.escrowed)} is not allowed: "
            "this policy has no partial releases",
        )
    if amount > m.escrowed and not policy.release.bonus:
        raise Rejected(
            "bonus",
            f"releasing {money(policy, amount)} for a milestone funded with "
            f"{money(policy, m.escrowed)} is not allowed: this policy has no bonuses",
        )
    postings: list = []
    timers: list = []
    held = m.escrowed
    notes: list[str] = []
    release(policy, c, m, amount, postings, timers, notes)
    close(m, "released", "approved", now)
    if amount < held:
        note = f"partial release; {money(policy, held - amount)} stays in escrow as contract credit"
    elif amount > held:
        note = f"released in full plus a bonus of {money(policy, amount - held)}"
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
    release(policy, c, m, amount, postings, timers, notes)
    close(m, "released", "auto_approved", now)
    note = "; ".join(["review window ended without a decision; released in full", *notes])
    return Outcome(
        True,
        events=[Emitted("platform", "auto_approve", m.id, amount, note, postings)],
        timers=timers,
    )


def _request_changes(policy: Policy, c: Contract, a: Action, now: float, clock: Clock = PLAIN) -> Outcome:
    need_contract(c, ("active",), "request changes")
    m = milestone(c, a.milestone)
    need_milestone(m, ("submitted",), "request changes on")
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
    need_contract(c, ("draft", "offered", "active"), "add a milestone")
    mid = a.milestone or ""
    if mid in c.by_id:
        raise Rejected("invalid_state", f"milestone {mid} already exists in contract {c.id}")
    amount = a.amount or 0
    if amount < policy.milestones.minimum_amount:
        raise Rejected(
            "minimum_amount",
            f"milestone {mid} of {money(policy, amount)} is below the minimum of "
            f"{money(policy, policy.milestones.minimum_amount)}",
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
    note = f"added at position {position}: {money(policy, amount)}"
    return Outcome(True, events=[Emitted(a.actor, "add_milestone", mid, 0, note, [])])


def _edit_milestone(policy: Policy, c: Contract, a: Action, now: float, clock: Clock = PLAIN) -> Outcome:
    need_contract(c, ("draft", "offered", "active"), "edit a milestone")
    m = milestone(c, a.milestone)
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
            f"{money(policy, a.amount)} is below the minimum of "
            f"{money(policy, policy.milestones.minimum_amount)}",
        )
    postings = []
    if a.amount is not None and m.state == "funded" and a.amount != m.escrowed:
        if a.amount > m.escrowed:
            need = a.amount - m.escrowed
            from_credit = min(c.credit, need)
            c.credit -= from_credit
            postings.append((c.client_account, c.escrow_account, "funded", need - from_credit, m.id))
            postings.extend(funding_fees(policy, c, need - from_credit, m.id))
        else:
            c.credit += m.escrowed - a.amount
        m.escrowed = a.amount
    parts = []
    if a.amount is not None:
        m.amount = a.amount
        parts.append(f"amount {money(policy, a.amount)}")
    if a.due is not None:
        m.due = a.due
        parts.append(f"due {a.due:g}d")
    amount = (a.amount or 0) if postings else 0  # only an edit that moves money carries an amount
    return Outcome(
        True, events=[Emitted(a.actor, "edit_milestone", m.id, amount, ", ".join(parts), postings)]
    )


def _delete_milestone(policy: Policy, c: Contract, a: Action, now: float, clock: Clock = PLAIN) -> Outcome:
    need_contract(c, ("draft", "offered", "active"), "delete a milestone")
    m = milestone(c, a.milestone)
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
    need_contract(c, ("draft", "offered", "active"), "reorder milestones")
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
    name = policy.openers.get((a.actor, a.name))
    if name is None:
        raise Rejected("procedure", "this policy has no procedure opened by request_refund")
    return proc.open_procedure(policy, c, name, a, now, clock, "request a refund")


def _open(policy: Policy, c: Contract, a: Action, now: float, clock: Clock = PLAIN) -> Outcome:
    """``open {procedure}``: a procedure the pack lets this party open."""
    name = a.procedure or ""
    declared = policy.all_procedures.get(name)
    if declared is None:
        known = ", ".join(sorted(policy.all_procedures))
        raise Rejected("procedure", f"this policy has no procedure {name!r}; its procedures: {known}")
    if a.actor not in (declared.opened_by or {}):
        raise Rejected("procedure", f"the {a.actor} cannot open {name}: it is opened by another step")
    return proc.open_procedure(policy, c, name, a, now, clock, f"open {name}")


def _opener(policy: Policy, c: Contract, a: Action, now: float, clock: Clock = PLAIN) -> Outcome:
    """A pack's own opening action (``open_dispute``), declared as a procedure's ``opened_by``."""
    name = policy.openers[(a.actor, a.name)]
    return proc.open_procedure(policy, c, name, a, now, clock, a.name.replace("_", " "))


def _refund_answer(c: Contract, what: str) -> None:
    """The upwork names of the answers: only while a refund request waits for the freelancer."""
    p = c.procedure
    if p is None or p.name != "escrow_refund" or p.awaiting_platform:
        raise Rejected("invalid_state", f"cannot {what}: no refund request is awaiting an answer")


def _approve_refund(policy: Policy, c: Contract, a: Action, now: float, clock: Clock = PLAIN) -> Outcome:
    need_contract(c, ("active", "ended"), "answer a refund request")
    _refund_answer(c, "approve a refund")
    return proc.respond(policy, c, a, now, clock, "accept", "approve_refund")


def _dispute(policy: Policy, c: Contract, a: Action, now: float, clock: Clock = PLAIN) -> Outcome:
    need_contract(c, ("active", "ended"), "dispute")
    _refund_answer(c, "dispute")
    assert c.procedure is not None
    stage = policy.all_procedures[c.procedure.name].stages[c.procedure.stage]
    if "decline" not in stage.answers:
        raise Rejected("dispute", "this policy does not let the freelancer dispute a refund request")
    return proc.respond(policy, c, a, now, clock, "decline", "dispute")


def _respond(policy: Policy, c: Contract, a: Action, now: float, clock: Clock = PLAIN) -> Outcome:
    return proc.respond(policy, c, a, now, clock, a.answer or "", "respond")


def _pay_fee(policy: Policy, c: Contract, a: Action, now: float, clock: Clock = PLAIN) -> Outcome:
    return proc.pay_fee(policy, c, a, now, clock)


def _settlement(policy: Policy, c: Contract, a: Action, now: float, clock: Clock = PLAIN) -> Outcome:
    return proc.settlement(policy, c, a, now, clock)


def _stage_timeout(policy: Policy, c: Contract, a: Action, now: float, clock: Clock = PLAIN) -> Outcome:
    return proc.stage_timeout(policy, c, a, now, clock)


def _resolve_dispute(policy: Policy, c: Contract, a: Action, now: float, clock: Clock = PLAIN) -> Outcome:
    return proc.decide(policy, c, a, now, clock)


def _dormancy_check(policy: Policy, c: Contract, a: Action, now: float, clock: Clock = PLAIN) -> Outcome:
    """A dormancy timer: a notice before the end, or the dormancy procedure at the end."""
    if timer_is_stale(c, a):
        return STALE
    assert policy.dormancy is not None and a.at is not None
    if now < a.at:
        left = clock.describe(now, a.at - now)
        note = f"dormancy notice: {money(policy, c.escrow())} in escrow with no activity; dormant in {left}"
        ev = Emitted("platform", "dormancy_notice", "", 0, note, [], ("dormancy.notices",))
        return Outcome(True, events=[ev], timers=_dormancy_timers(policy, c, now, a.at))
    return proc.open_dormant(policy, c, now, clock)


def _dormancy_timers(policy: Policy, c: Contract, now: float, end: float) -> list[Timer]:
    """The next dormancy timer: the next notice still ahead of ``end``, or ``end`` itself."""
    assert policy.dormancy is not None
    marks = sorted({end - float(n) for n in policy.dormancy.notices if end - float(n) > now + 1e-9})
    at = marks[0] if marks else end
    return [Timer(max(at - now, 0.0), Action("platform", "dormancy_check", gen=c.activity_gen, at=end))]


def _start_dormancy(policy: Policy, c: Contract, now: float, clock: Clock) -> list[Timer]:
    """Activity on the contract: the dormancy clock starts again from it (or the last due date)."""
    assert policy.dormancy is not None
    c.activity_gen += 1
    dues = [m.due for m in c.milestones if not m.deleted and m.due is not None]
    since = max([now, *dues])
    end = since + clock.days(since, policy.dormancy.after)
    return _dormancy_timers(policy, c, now, end)


def _end_contract(policy: Policy, c: Contract, a: Action, now: float, clock: Clock = PLAIN) -> Outcome:
    need_contract(c, ("active",), "end the contract")
    c.state = "ended"
    held = c.escrow()
    note = "contract ended"
    if held:
        note += f"; {money(policy, held)} still in escrow"
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
    "stage_timeout": _stage_timeout,
    "auto_refund": _stage_timeout,
    "auto_release": _stage_timeout,
    "dispute": _dispute,
    "respond": _respond,
    "pay_fee": _pay_fee,
    "open": _open,
    "propose_settlement": _settlement,
    "accept_settlement": _settlement,
    "dormancy_check": _dormancy_check,
    "resolve_dispute": _resolve_dispute,
    "end_contract": _end_contract,
    "funds_available": _funds_available,
}
