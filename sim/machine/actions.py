"""What each action does once its transition's checks have passed: the effects of the table.

Every function here has the same signature, ``(policy, contract, action, milestone, now, clock)``
(``milestone`` is the one the action names, already looked up and checked, or None), and is
built from the effect library in :mod:`sim.machine.effects` and the procedure runtime in
:mod:`sim.machine.procedures`. None of them checks a state or a policy rule: the table's guards
did that. Timers return STALE when what they watch has moved on.
"""

from __future__ import annotations

from functools import partial

from ..core.units import format_duration, percent_of
from ..money.ledger import Transfer
from ..policy.calendar import BusinessDays, Clock, is_zero
from ..policy.model import Policy, show_duration
from . import procedures as proc
from .effects import (
    close,
    freelancer_target,
    fund_milestone,
    funding_fees,
    holding,
    money,
    next_planned,
    pay_freelancer,
    refund,
    refund_all,
    refunded_amount,
    release,
    returned_to,
)
from .guards import live_position
from .records import STALE, Contract, Emitted, Milestone, Outcome, Rejected, Timer
from .vocabulary import Action

Effect = "Callable[[Policy, Contract, Action, Milestone | None, float, Clock], Outcome]"


def offer(policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float, clock: Clock) -> Outcome:
    live = [x for x in c.milestones if not x.deleted]
    c.state = "offered"
    c.offered_at = now  # a dated pack's new_contracts transition reads it
    total = sum(x.amount for x in live)
    timers = []
    if policy.offer.expires_after is not None:
        c.offer_gen += 1
        timers.append(Timer(policy.offer.expires_after, Action("platform", "offer_expired", gen=c.offer_gen)))
    note = partial(_offer_note, policy, len(live), total)
    return Outcome(True, events=[Emitted(a.actor, "offer", "", 0, note, [])], timers=timers)


def _offer_note(policy: Policy, count: int, total: int) -> str:
    return f"offer of {count} milestone(s), {money(policy, total)} in total, sent"


def _end_offer(c: Contract, a: Action, now: float, state: str, refund: bool) -> Outcome:
    c.state = state
    c.offer_gen += 1
    if c.procedure is not None:  # a procedure opened on the offer ends with it
        for mid in c.procedure.milestones:
            if c.by_id[mid].state in ("refund_requested", "disputed", "dormant"):
                c.by_id[mid].state = "funded"
        c.procedure = None
        c.proc_gen += 1
    events = [Emitted(a.actor, a.name, "", 0, f"contract {state}", [])]
    if refund and c.escrow() > 0:
        events.append(refund_all(c, now, "platform", "offer_refund", f"escrow returned to {returned_to(c)}"))
    return Outcome(True, events=events)


def withdraw_offer(
    policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float, clock: Clock
) -> Outcome:
    return _end_offer(c, a, now, "withdrawn", policy.offer.refund_on_withdraw)


def decline_offer(
    policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float, clock: Clock
) -> Outcome:
    return _end_offer(c, a, now, "declined", policy.offer.refund_on_decline)


def offer_expired(
    policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float, clock: Clock
) -> Outcome:
    if c.state != "offered" or a.gen != c.offer_gen:
        return STALE
    return _end_offer(c, a, now, "expired", policy.offer.refund_on_decline)


def accept_offer(
    policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float, clock: Clock
) -> Outcome:
    c.state = "active"
    c.offer_gen += 1
    if not policy.fees and policy.milestones.funding != "all_upfront":  # the article's case: nothing to post
        return Outcome(True, events=[Emitted(a.actor, "accept_offer", "", 0, "contract active", [])])
    live = [x for x in c.milestones if not x.deleted]
    postings = []
    total = sum(x.amount for x in live)
    for fee in policy.fees:  # fees on acceptance: the contract's total (Freelancer.com's project fees)
        value = fee.amount_on(total) if fee.on == "acceptance" else 0
        if value and fee.payer == "client":
            postings.append(Transfer(c.client_account, "platform", "fees", value, ""))
        elif value:  # the freelancer pays it out of pocket, before any release
            account = f"freelancer:{c.freelancer}:available"
            postings.append(Transfer(account, "platform", "acceptance_fee", value, ""))
    note = "contract active"
    if postings:
        note += f"; acceptance fees {money(policy, sum(p.amount for p in postings))}"
    amount = 0
    if policy.milestones.funding == "all_upfront":  # every milestone is funded with the acceptance
        planned = [x for x in live if x.state == "planned"]
        for x in planned:
            funded, _credit = fund_milestone(policy, c, x, now)
            postings += funded
            amount += x.amount
        if planned:
            note += f"; {len(planned)} milestone(s), {money(policy, amount)}, funded upfront"
    # one event: the ledger must see the fundings with the state change (escrow is checked per event)
    return Outcome(True, events=[Emitted(a.actor, "accept_offer", "", amount, note, postings)])


def fund(policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float, clock: Clock) -> Outcome:
    assert m is not None
    postings, from_credit = fund_milestone(policy, c, m, now)
    note = partial(_fund_note, policy, m.amount, from_credit)
    return Outcome(True, events=[Emitted(a.actor, "fund", m.id, m.amount, note, postings)])


def _fund_note(policy: Policy, amount: int, from_credit: int) -> str:
    note = f"funded {money(policy, amount)}"
    if from_credit:
        note += f" ({money(policy, from_credit)} from contract credit)"
    return note


def submit(policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float, clock: Clock) -> Outcome:
    assert m is not None
    m.state = "submitted"
    m.gen += 1
    m.submissions += 1
    m.last_submitted_at = now
    if m.first_submitted_at is None:
        m.first_submitted_at = now
    m.extensions = 0
    m.review_locked = False
    review = policy.review
    if policy.release.invoices is not None:
        m.invoice = a.amount
    timers = []
    if review.on_timeout == "approve":
        opens = now
        if not is_zero(review.starts_after):  # the inspection starts when the delivery is received
            opens += clock.days(now, review.starts_after)
        delay = opens - now + clock.days(opens, review.window)
        m.review_due = now + delay
        timers.append(Timer(delay, Action("platform", "auto_approve", m.id, gen=m.gen)))
        for before in review.notices:  # notices to a client who has not acted, before the end
            lead = float(before) if not isinstance(before, BusinessDays) else None
            at = (
                m.review_due - lead
                if lead is not None
                else _business_days_before(clock, m.review_due, before)
            )
            if at > now + 1e-9:
                timers.append(Timer(at - now, Action("platform", "review_notice", m.id, gen=m.gen)))
    note = partial(_submit_note, policy, m.submissions, now, clock, m.invoice)
    return Outcome(True, events=[Emitted(a.actor, "submit", m.id, 0, note, [])], timers=timers)


def _business_days_before(clock: Clock, end: float, before: BusinessDays) -> float:
    """The time ``before`` business days ahead of ``end`` (a notice written in business days)."""
    at = end - float(before.n)
    while at + clock.days(at, before) < end - 1e-9:  # calendar days hide weekends: step back
        at -= 1.0
    return at


def _submit_note(
    policy: Policy, submissions: int, now: float, clock: Clock, invoice: int | None = None
) -> str:
    invoiced = f"; invoice of {money(policy, invoice)}" if invoice is not None else ""
    if policy.review.on_timeout == "approve":
        window = clock.describe(now, policy.review.window)
        if not is_zero(policy.review.starts_after):
            starts = clock.describe(now, policy.review.starts_after)
            return (
                f"submission {submissions}{invoiced}; delivered in {starts}, then a review window of {window}"
            )
        return f"submission {submissions}{invoiced}; review window ends in {window}"
    # nothing happens at the window's end: only the client releases
    return f"submission {submissions}; the client releases it (silence releases nothing)"


def approve(policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float, clock: Clock) -> Outcome:
    assert m is not None
    if a.amount is None and m.invoice is not None:  # release.invoices: approving pays the invoice
        postings, timers, note = _pay_invoice(policy, c, m)
        close(m, "released", "approved", now)
        if policy.milestones.auto_fund_next:
            timers += _fund_next_timer(policy, m)
        return Outcome(
            True, events=[Emitted(a.actor, "approve", m.id, m.invoice, note, postings)], timers=timers
        )
    amount = m.escrowed if a.amount is None else a.amount
    postings = []
    timers = []
    held = m.escrowed
    notes: list[str] = []
    release(policy, c, m, amount, postings, timers, notes)
    close(m, "released", "approved", now)
    if amount < held:
        note: str | partial[str] = partial(_partial_note, policy, held - amount, notes)
    elif amount > held:
        note = partial(_bonus_note, policy, amount - held, notes)
    else:
        note = "; ".join(["released in full", *notes]) if notes else "released in full"
    if policy.milestones.auto_fund_next:
        timers += _fund_next_timer(policy, m)
    return Outcome(True, events=[Emitted(a.actor, "approve", m.id, amount, note, postings)], timers=timers)


def _partial_note(policy: Policy, credit: int, notes: list[str]) -> str:
    return "; ".join([f"partial release; {money(policy, credit)} stays in escrow as contract credit", *notes])


def _bonus_note(policy: Policy, bonus: int, notes: list[str]) -> str:
    return "; ".join([f"released in full plus a bonus of {money(policy, bonus)}", *notes])


def _fund_next_timer(policy: Policy, released: Milestone) -> list[Timer]:
    """``milestones.auto_fund_next`` (the callers check it): charge the next milestone, at once,
    after this release."""
    return [Timer(0.0, Action("platform", "fund_next", released.id))]


def fund_next(
    policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float, clock: Clock
) -> Outcome:
    """The next planned milestone is charged because the one before it was released."""
    nxt = next_planned(c)
    if c.state != "active" or c.procedure is not None or nxt is None:
        return STALE
    if policy.milestones.funding == "one_at_a_time" and holding(c):
        return STALE
    postings, _credit = fund_milestone(policy, c, nxt, now)
    note = f"funded {money(policy, nxt.amount)} automatically after {a.milestone} was released"
    ev = Emitted("platform", "fund", nxt.id, nxt.amount, note, postings, ("milestones.auto_fund_next",))
    return Outcome(True, events=[ev])


def review_timer_is_stale(c: Contract, a: Action) -> bool:
    m = c.by_id.get(a.milestone or "")
    return m is None or m.deleted or m.state != "submitted" or m.gen != a.gen


def auto_approve(
    policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float, clock: Clock
) -> Outcome:
    if review_timer_is_stale(c, a):
        return STALE
    m = c.by_id[a.milestone or ""]
    if m.invoice is not None:  # release.invoices: the invoice is paid
        postings, timers, paid = _pay_invoice(policy, c, m)
        close(m, "released", "auto_approved", now)
        note = f"review window ended without a decision; {paid}"
        if policy.milestones.auto_fund_next:
            timers += _fund_next_timer(policy, m)
        ev = Emitted("platform", "auto_approve", m.id, m.invoice, note, postings)
        return Outcome(True, events=[ev], timers=timers)
    postings = []
    timers = []
    amount = m.escrowed
    notes: list[str] = []
    release(policy, c, m, amount, postings, timers, notes)
    close(m, "released", "auto_approved", now)
    note = "; ".join(["review window ended without a decision; released in full", *notes])
    if policy.milestones.auto_fund_next:
        timers += _fund_next_timer(policy, m)
    return Outcome(
        True, events=[Emitted("platform", "auto_approve", m.id, amount, note, postings)], timers=timers
    )


def _pay_invoice(policy: Policy, c: Contract, m: Milestone) -> tuple[list, list, str]:
    """Pay ``m``'s invoice (``release.invoices``): from its escrow; an invoice beyond the escrow
    takes the rest from the client when ``shortfall: from_client``; escrow beyond it becomes
    contract credit. The postings, timers and the words for the message."""
    assert m.invoice is not None and policy.release.invoices is not None
    postings: list = []
    timers: list = []
    notes: list[str] = []
    held = m.escrowed
    paid = min(m.invoice, held)
    release(policy, c, m, paid, postings, timers, notes)
    words = f"invoice of {money(policy, m.invoice)} paid from escrow"
    short = m.invoice - paid
    if paid < held:
        words += f"; {money(policy, held - paid)} stays in escrow as contract credit"
    if short and policy.release.invoices.shortfall == "from_client":
        pay_freelancer(policy, c, short, "released", m.id, postings, timers, notes, source=c.client_account)
        m.released += short
        words = (
            f"invoice of {money(policy, m.invoice)} paid: {money(policy, paid)} from escrow, the "
            f"shortfall of {money(policy, short)} from the client"
        )
    elif short:
        words += f"; {money(policy, short)} of it is beyond the escrow and stays unpaid"
    return postings, timers, "; ".join([words, *notes])


def review_notice(
    policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float, clock: Clock
) -> Outcome:
    """``review.notices``: the review window is about to end and the client has not acted."""
    if review_timer_is_stale(c, a):
        return STALE
    m = c.by_id[a.milestone or ""]
    assert m.review_due is not None
    note = (
        f"notice to the client: the review ends in {format_duration(m.review_due - now)} and "
        f"{money(policy, m.escrowed)} is then released"
    )
    return Outcome(
        True, events=[Emitted("platform", "review_notice", m.id, 0, note, [], ("review.notices",))]
    )


def extend_review(
    policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float, clock: Clock
) -> Outcome:
    """The client pushes the running review window's end by ``review.extensions.by``."""
    assert m is not None and m.review_due is not None
    ext = policy.review.extensions
    assert ext is not None
    m.gen += 1
    m.extensions += 1
    m.review_due += clock.days(m.review_due, ext.by)
    delay = m.review_due - now
    note = (
        f"review window extended by {show_duration(ext.by)} (extension {m.extensions}"
        f"{'' if ext.max is None else f' of {ext.max}'}); it now ends in {format_duration(delay)}"
    )
    timer = Timer(delay, Action("platform", "auto_approve", m.id, gen=m.gen))
    return Outcome(True, events=[Emitted(a.actor, "extend_review", m.id, 0, note, [])], timers=[timer])


def lock_review(
    policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float, clock: Clock
) -> Outcome:
    """The freelancer fixes the review's end: no more extensions; the client releases or disputes."""
    assert m is not None and m.review_due is not None
    m.review_locked = True
    note = f"review end locked: it ends in {format_duration(m.review_due - now)} with no more extensions"
    return Outcome(True, events=[Emitted(a.actor, "lock_review", m.id, 0, note, [])])


def request_changes(
    policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float, clock: Clock
) -> Outcome:
    assert m is not None
    m.state = "changes_requested"
    m.change_requests += 1
    m.gen += 1
    note = f"change request {m.change_requests}; review clock stopped until resubmission"
    return Outcome(True, events=[Emitted(a.actor, "request_changes", m.id, 0, note, [])])


def add_milestone(
    policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float, clock: Clock
) -> Outcome:
    mid, amount = a.milestone or "", a.amount or 0
    position = live_position(c, a)
    live = [x for x in c.milestones if not x.deleted]
    new = Milestone(mid, amount, a.due)
    live.insert(position, new)
    c.milestones = live + [x for x in c.milestones if x.deleted]
    c.by_id[mid] = new
    note = f"added at position {position}: {money(policy, amount)}"
    return Outcome(True, events=[Emitted(a.actor, "add_milestone", mid, 0, note, [])])


def edit_milestone(
    policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float, clock: Clock
) -> Outcome:
    assert m is not None
    postings = []
    if a.amount is not None and m.state == "funded" and a.amount != m.escrowed:
        if a.amount > m.escrowed:
            need = a.amount - m.escrowed
            from_credit = min(c.credit, need)
            c.credit -= from_credit
            postings.append(Transfer(c.client_account, c.escrow_account, "funded", need - from_credit, m.id))
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


def delete_milestone(
    policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float, clock: Clock
) -> Outcome:
    assert m is not None
    if m.state != "planned":  # funded, and the policy lets it go: its escrow becomes credit
        c.credit += m.escrowed
        m.escrowed = 0
    m.deleted = True
    m.gen += 1
    c.milestones = [x for x in c.milestones if not x.deleted] + [x for x in c.milestones if x.deleted]
    return Outcome(True, events=[Emitted(a.actor, "delete_milestone", m.id, 0, "deleted", [])])


def reorder_milestones(
    policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float, clock: Clock
) -> Outcome:
    order = list(a.order or ())
    c.milestones = [c.by_id[i] for i in order] + [x for x in c.milestones if x.deleted]
    return Outcome(True, events=[Emitted(a.actor, "reorder_milestones", "", 0, " > ".join(order), [])])


def cancel_late(
    policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float, clock: Clock
) -> Outcome:
    """``late_cancel``: the client takes back a milestone whose delivery is very late."""
    assert m is not None and policy.late_cancel is not None
    postings = refund(c, [m], False, now, "refunded")
    late = show_duration(policy.late_cancel.after_due)
    note = f"cancelled: no submission {late} after the due date; escrow returned to {returned_to(c)}"
    return Outcome(
        True, events=[Emitted(a.actor, "cancel_late", m.id, refunded_amount(postings), note, postings)]
    )


def cancel_milestone(
    policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float, clock: Clock
) -> Outcome:
    """``freelancer_cancel``: the freelancer returns a funded milestone's escrow to the client."""
    assert m is not None
    postings = refund(c, [m], False, now, "refunded")
    note = f"cancelled by the freelancer; escrow returned to {returned_to(c)}"
    ev = Emitted(a.actor, "cancel_milestone", m.id, refunded_amount(postings), note, postings)
    return Outcome(True, events=[ev])


def end_contract(
    policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float, clock: Clock
) -> Outcome:
    c.state = "ended"
    held = c.escrow()
    note: str | partial[str] = "contract ended"
    if held:
        note = partial(_ended_note, policy, held)
    return Outcome(True, events=[Emitted(a.actor, "end_contract", "", 0, note, [])])


def _ended_note(policy: Policy, held: int) -> str:
    return f"contract ended; {money(policy, held)} still in escrow"


def funds_available(
    policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float, clock: Clock
) -> Outcome:
    account = a.account or ""
    m = c.by_id.get(a.milestone) if a.milestone else None
    if m is not None:
        if a.gen != m.hold_gen:  # paid out early, or reversed: the hold is over
            return STALE
        m.pending -= a.amount or 0
    available = account.rsplit(":", 1)[0] + ":available"
    postings = [Transfer(account, available, "available", a.amount or 0, a.milestone or "")]
    ev = Emitted("platform", "funds_available", a.milestone or "", a.amount or 0, "hold ended", postings)
    return Outcome(True, events=[ev])


def refund_arrives(
    policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float, clock: Clock
) -> Outcome:
    """``hold.after_refund``: a refund decided earlier leaves escrow for the client now."""
    amount = a.amount or 0
    c.in_transit -= amount
    postings = [
        Transfer(c.escrow_account, a.account or c.refund_account, "refunded", amount, a.milestone or "")
    ]
    note = f"refund of {money(policy, amount)} arrives at {returned_to(c)}"
    ev = Emitted(
        "platform", "refund_arrives", a.milestone or "", amount, note, postings, ("hold.after_refund",)
    )
    return Outcome(True, events=[ev])


def early_payout(
    policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float, clock: Clock
) -> Outcome:
    """``hold.early_payout``: the freelancer ends a released milestone's hold now, for a fee."""
    assert m is not None and policy.hold.early_payout is not None
    amount = m.pending
    fee = percent_of(amount, policy.hold.early_payout.percent)
    pending = freelancer_target(policy, c)
    available = f"freelancer:{c.freelancer}:available"
    postings = [Transfer(pending, available, "available", amount, m.id)]
    if fee:
        postings.append(Transfer(available, "platform", "fees", fee, m.id))
    m.pending = 0
    m.hold_gen += 1
    note = (
        f"early payout: {money(policy, amount)} made available now, less a fee of {money(policy, fee)} "
        f"({policy.hold.early_payout.percent}%)"
    )
    return Outcome(True, events=[Emitted(a.actor, "early_payout", m.id, amount, note, postings)])


def reverse_release(
    policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float, clock: Clock
) -> Outcome:
    """``release.reversible``: the platform takes a release back. The client gets what it paid for
    the milestone (its releases and bonuses, and refundable fees); the freelancer returns what they
    received, from pending money first, then available money (which may go below zero: owed from
    future revenue); the platform returns the freelancer's fees."""
    assert m is not None
    gross = m.released + m.bonus
    net = gross - m.freelancer_fees
    pending = f"freelancer:{c.freelancer}:pending"
    available = f"freelancer:{c.freelancer}:available"
    from_pending = min(m.pending, net)
    postings = []
    if from_pending:
        postings.append(Transfer(pending, c.refund_account, "clawback", from_pending, m.id))
    if net - from_pending:
        postings.append(Transfer(available, c.refund_account, "clawback", net - from_pending, m.id))
    back = m.freelancer_fees + m.refundable_fees
    total = net + back
    if back:
        postings.append(Transfer("platform", c.refund_account, "fees", back, m.id))
    m.pending = 0
    m.hold_gen += 1
    m.refunded += m.released
    m.released = 0
    m.freelancer_fees = 0
    m.refundable_fees = 0
    m.gen += 1
    close(m, "refunded", "refunded", now)
    note = (
        f"release reversed by the platform: {money(policy, total)} back to "
        f"{returned_to(c)}; {money(policy, from_pending)} from the freelancer's pending money, "
        f"{money(policy, net - from_pending)} from their available money"
    )
    return Outcome(True, events=[Emitted(a.actor, "reverse_release", m.id, gross, note, postings)])


def request_extension(
    policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float, clock: Clock
) -> Outcome:
    """``milestones.due_extensions``: the freelancer asks to move the due date to ``a.due``."""
    assert m is not None and policy.milestones.due_extensions is not None
    m.extension_due = a.due
    m.extension_gen += 1
    window = policy.milestones.due_extensions.answer_within
    note = (
        f"extension of the due date to {a.due:g}d requested; the client has {clock.describe(now, window)} "
        "to answer, or it is withdrawn"
    )
    timer = Timer(window, Action("platform", "extension_withdrawn", m.id, gen=m.extension_gen))
    return Outcome(True, events=[Emitted(a.actor, "request_extension", m.id, 0, note, [])], timers=[timer])


def answer_extension(
    policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float, clock: Clock
) -> Outcome:
    """The client accepts (the due date moves) or declines the freelancer's extension request."""
    assert m is not None and m.extension_due is not None
    m.extension_gen += 1
    if a.name == "accept_extension":
        old, m.due = m.due, m.extension_due
        note = f"extension accepted: due {m.extension_due:g}d" + (
            f" (was {old:g}d)" if old is not None else ""
        )
    else:
        note = f"extension to {m.extension_due:g}d declined; the due date stays"
    m.extension_due = None
    return Outcome(True, events=[Emitted(a.actor, a.name, m.id, 0, note, [])])


def extension_withdrawn(
    policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float, clock: Clock
) -> Outcome:
    """Nobody answered the extension request in time: it is withdrawn, the due date stays."""
    m = c.by_id.get(a.milestone or "")
    if m is None or m.extension_due is None or a.gen != m.extension_gen:
        return STALE
    note = f"extension to {m.extension_due:g}d withdrawn: the client did not answer; the due date stays"
    m.extension_due = None
    m.extension_gen += 1
    ev = Emitted("platform", "extension_withdrawn", m.id, 0, note, [], ("milestones.due_extensions",))
    return Outcome(True, events=[ev])


# ------------------------------------------------------------------------------ procedures


def request_refund(
    policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float, clock: Clock
) -> Outcome:
    name = policy.openers.get((a.actor, a.name))
    if name is None:
        raise Rejected("procedure", "this policy has no procedure opened by request_refund")
    return proc.open_procedure(policy, c, name, a, now, clock, "request a refund")


def open_named(
    policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float, clock: Clock
) -> Outcome:
    """``open {procedure}``: a procedure the pack lets this party open."""
    name = a.procedure or ""
    declared = policy.all_procedures.get(name)
    if declared is None:
        known = ", ".join(sorted(policy.all_procedures))
        raise Rejected("procedure", f"this policy has no procedure {name!r}; its procedures: {known}")
    if a.actor not in (declared.opened_by or {}):
        raise Rejected("procedure", f"the {a.actor} cannot open {name}: it is opened by another step")
    return proc.open_procedure(policy, c, name, a, now, clock, f"open {name}")


def open_by_pack_action(
    policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float, clock: Clock
) -> Outcome:
    """A pack's own opening action (``open_dispute``), declared as a procedure's ``opened_by``."""
    name = policy.openers[(a.actor, a.name)]
    return proc.open_procedure(policy, c, name, a, now, clock, a.name.replace("_", " "))


def approve_refund(
    policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float, clock: Clock
) -> Outcome:
    return proc.respond(policy, c, a, now, clock, "accept", "approve_refund")


def dispute(policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float, clock: Clock) -> Outcome:
    return proc.respond(policy, c, a, now, clock, "decline", "dispute")


def respond(policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float, clock: Clock) -> Outcome:
    return proc.respond(policy, c, a, now, clock, a.answer or "", "respond")


def pay_fee(policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float, clock: Clock) -> Outcome:
    return proc.pay_fee(policy, c, a, now, clock)


def settlement(
    policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float, clock: Clock
) -> Outcome:
    return proc.settlement(policy, c, a, now, clock)


def stage_timeout(
    policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float, clock: Clock
) -> Outcome:
    return proc.stage_timeout(policy, c, a, now, clock)


def resolve_dispute(
    policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float, clock: Clock
) -> Outcome:
    return proc.decide(policy, c, a, now, clock)


# ------------------------------------------------------------------------------ dormancy


def dormancy_timer_is_stale(c: Contract, a: Action) -> bool:
    return (
        a.gen != c.activity_gen
        or c.procedure is not None
        or c.state not in ("active", "ended")
        or not c.escrow()
    )


def dormancy_check(
    policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float, clock: Clock
) -> Outcome:
    """A dormancy timer: a notice before the end, or the dormancy procedure at the end."""
    if dormancy_timer_is_stale(c, a):
        return STALE
    assert policy.dormancy is not None and a.at is not None
    if now < a.at:
        left = clock.describe(now, a.at - now)
        note = f"dormancy notice: {money(policy, c.escrow())} in escrow with no activity; dormant in {left}"
        ev = Emitted("platform", "dormancy_notice", "", 0, note, [], ("dormancy.notices",))
        return Outcome(True, events=[ev], timers=dormancy_timers(policy, c, now, a.at))
    return proc.open_dormant(policy, c, now, clock)


def dormancy_timers(policy: Policy, c: Contract, now: float, end: float) -> list[Timer]:
    """The next dormancy timer: the next notice still ahead of ``end``, or ``end`` itself."""
    assert policy.dormancy is not None
    marks = sorted({end - float(n) for n in policy.dormancy.notices if end - float(n) > now + 1e-9})
    at = marks[0] if marks else end
    return [Timer(max(at - now, 0.0), Action("platform", "dormancy_check", gen=c.activity_gen, at=end))]


def start_dormancy(policy: Policy, c: Contract, now: float, clock: Clock) -> list[Timer]:
    """Activity on the contract: the dormancy clock starts again from it (or the last due date)."""
    assert policy.dormancy is not None
    c.activity_gen += 1
    dues = [x.due for x in c.milestones if not x.deleted and x.due is not None]
    since = max([now, *dues])
    end = since + clock.days(since, policy.dormancy.after)
    return dormancy_timers(policy, c, now, end)
