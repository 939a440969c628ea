"""Named guards: the checks a transition makes before it changes anything.

Each guard carries the rule id a failure is recorded with and the policy keys it reads, so the
transition table (``transitions``) can list them, the README can print them and a rejection can
name what decided it. A guard raises :class:`Rejected`; it never changes the contract. Each check
exists once: the minimum amount (for offers, fundings, added and edited milestones), the locks on
funded milestones, and "no procedure is open".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..policy.model import Policy
from .effects import check_minimum, holding, money
from .records import Contract, Milestone, Rejected
from .vocabulary import TERMINAL, Action

Check = Callable[[Policy, Contract, Action, "Milestone | None", float], None]


@dataclass(frozen=True, slots=True)
class Guard:
    """A named check: the rule id it rejects with and the policy keys it reads."""

    name: str
    rule: str
    keys: tuple[str, ...]
    check: Check
    doc: str
    #: under which policies the check can fail at all (None: any); a policy that makes it always
    #: pass (partial releases allowed, no change limit) skips it, as compiled by ``guards_for``
    applies: Callable[[Policy], bool] | None = None


def compile_guards(policy: Policy, table: dict[str, tuple[Guard, ...]]) -> dict[str, tuple[Guard, ...]]:
    """Each action's guards that can fail under this policy (``table``: action -> its guards).
    The policy's ``Machine`` (``contract.machine_for``) asks once and keeps the result."""
    return {
        action: tuple(g for g in guards if g.applies is None or g.applies(policy))
        for action, guards in table.items()
    }


def _has_milestones(policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float = 0.0) -> None:
    for x in c.milestones:
        if not x.deleted:
            return
    raise Rejected("invalid_state", "an offer needs at least one milestone")


def _offer_minimum(policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float = 0.0) -> None:
    low = [x for x in c.milestones if not x.deleted and x.amount < policy.milestones.minimum_amount]
    if low:
        names = ", ".join(f"{x.id} ({money(policy, x.amount)})" for x in low)
        check_minimum(policy, low[0].amount, f"offer rejected: {names} below the minimum of " + "{minimum}")


def _no_procedure(policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float = 0.0) -> None:
    if c.procedure is not None:
        if c.procedure.name == "escrow_refund":
            raise Rejected("invalid_state", "cannot fund while a refund request is pending")
        raise Rejected("invalid_state", f"cannot fund while {c.procedure.name} is open")


def _one_at_a_time(policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float = 0.0) -> None:
    if policy.milestones.funding == "one_at_a_time":
        busy = [x.id for x in holding(c)]
        if busy:
            assert m is not None
            raise Rejected(
                "one_at_a_time",
                f"cannot fund {m.id}: milestone {busy[0]} is funded and not yet released or refunded",
            )


def _funding_order(policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float = 0.0) -> None:
    if policy.milestones.funding_order == "sequential":
        nxt = next(x for x in c.milestones if not x.deleted and x.state == "planned")
        assert m is not None
        if nxt is not m:
            raise Rejected("funding_order", f"cannot fund {m.id}: {nxt.id} is the next milestone in order")


def _fund_minimum(policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float = 0.0) -> None:
    assert m is not None
    check_minimum(policy, m.amount, f"cannot fund {m.id} with " + "{amount}: the minimum is {minimum}")


def _partial_release(policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float = 0.0) -> None:
    assert m is not None
    if a.amount is not None and a.amount < m.escrowed and not policy.release.partial:
        raise Rejected(
            "partial_release",
            f"releasing {money(policy, a.amount)} of {money(policy, m.escrowed)} is not allowed: "
            "this policy has no partial releases",
        )


def _bonus(policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float = 0.0) -> None:
    assert m is not None
    if a.amount is not None and a.amount > m.escrowed and not policy.release.bonus:
        raise Rejected(
            "bonus",
            f"releasing {money(policy, a.amount)} for a milestone funded with "
            f"{money(policy, m.escrowed)} is not allowed: this policy has no bonuses",
        )


def _change_limit(policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float = 0.0) -> None:
    assert m is not None
    limit = policy.review.max_change_requests
    if limit is not None and m.change_requests >= limit:
        raise Rejected(
            "max_change_requests",
            f"milestone {m.id} already had {m.change_requests} change request(s); the limit is {limit}",
        )


def _may_extend(policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float = 0.0) -> None:
    assert m is not None
    ext = policy.review.extensions
    if ext is None:
        raise Rejected("review_extension", "this policy has no review extensions (review.extensions)")
    if m.review_locked:
        raise Rejected("review_extension", f"the freelancer locked the review end of milestone {m.id}")
    if ext.max is not None and m.extensions >= ext.max:
        raise Rejected(
            "review_extension",
            f"milestone {m.id}'s review was already extended {m.extensions} time(s); the limit is {ext.max}",
        )


def _may_lock(policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float = 0.0) -> None:
    assert m is not None
    ext = policy.review.extensions
    if ext is None or not ext.lockable:
        raise Rejected("review_extension", "this policy does not let the freelancer lock the review end")
    if m.review_locked:
        raise Rejected("invalid_state", f"the review end of milestone {m.id} is already locked")


def _new_id(policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float = 0.0) -> None:
    mid = a.milestone or ""
    if mid in c.by_id:
        raise Rejected("invalid_state", f"milestone {mid} already exists in contract {c.id}")


def _add_minimum(policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float = 0.0) -> None:
    check_minimum(
        policy,
        a.amount or 0,
        f"milestone {a.milestone or ''} of " + "{amount} is below the minimum of {minimum}",
    )


def live_position(c: Contract, a: Action) -> int:
    """Where ``add_milestone`` inserts: ``position``, or after the last live milestone."""
    live = sum(1 for x in c.milestones if not x.deleted)
    return live if a.position is None else a.position


def _position_range(policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float = 0.0) -> None:
    live = sum(1 for x in c.milestones if not x.deleted)
    position = live_position(c, a)
    if position < 0 or position > live:
        raise Rejected("invalid_state", f"position {position} is outside 0..{live}")


def _position_lock(policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float = 0.0) -> None:
    if "order" not in policy.milestones.active_locked:
        return
    position = live_position(c, a)
    live = [x for x in c.milestones if not x.deleted]
    locked = [i for i, x in enumerate(live) if x.state != "planned"]
    if locked and position <= locked[-1]:
        raise Rejected(
            "active_locked",
            f"cannot insert at position {position}: "
            f"milestone {live[locked[-1]].id} is funded and keeps its place",
        )


def _editable(policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float = 0.0) -> None:
    assert m is not None
    if m.state in TERMINAL:
        raise Rejected("invalid_state", f"milestone {m.id} is {m.state} and can no longer change")


def _edit_lock(policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float = 0.0) -> None:
    assert m is not None
    if m.state == "planned":
        return
    locked = policy.milestones.active_locked
    if a.amount is not None and "amount" in locked:
        raise Rejected("active_locked", f"the amount of funded milestone {m.id} cannot change")
    if a.due is not None and "due_date" in locked:
        raise Rejected("active_locked", f"the due date of funded milestone {m.id} cannot change")
    if a.amount is not None and m.state != "funded":
        raise Rejected("invalid_state", f"milestone {m.id} is {m.state}; its amount cannot change now")


def _edit_minimum(policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float = 0.0) -> None:
    if a.amount is not None:
        check_minimum(policy, a.amount, "{amount} is below the minimum of {minimum}")


def _deletable(policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float = 0.0) -> None:
    assert m is not None
    if m.state in TERMINAL:
        raise Rejected("invalid_state", f"milestone {m.id} is {m.state} and cannot be deleted")


def _delete_lock(policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float = 0.0) -> None:
    assert m is not None
    if m.state == "planned":
        return
    if "delete" in policy.milestones.active_locked:
        raise Rejected("active_locked", f"funded milestone {m.id} cannot be deleted")
    if m.state != "funded":
        raise Rejected("invalid_state", f"milestone {m.id} is {m.state} and cannot be deleted")


def _order_complete(policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float = 0.0) -> None:
    live = [x for x in c.milestones if not x.deleted]
    order = list(a.order or ())
    if sorted(order) != sorted(x.id for x in live):
        raise Rejected(
            "invalid_state",
            f"new order {order} must list each milestone once: {[x.id for x in live]}",
        )


def _order_lock(policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float = 0.0) -> None:
    if "order" not in policy.milestones.active_locked:
        return
    order = list(a.order or ())
    for i, x in enumerate(x for x in c.milestones if not x.deleted):
        if x.state != "planned" and order[i] != x.id:
            raise Rejected("active_locked", f"funded milestone {x.id} cannot change its place")


def _refund_pending(what: str) -> Check:
    def check(policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float = 0.0) -> None:
        p = c.procedure
        if p is None or p.name != "escrow_refund" or p.awaiting_platform:
            raise Rejected("invalid_state", f"cannot {what}: no refund request is awaiting an answer")

    return check


def _may_dispute(policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float = 0.0) -> None:
    assert c.procedure is not None
    stage = policy.all_procedures[c.procedure.name].stages[c.procedure.stage]
    if "decline" not in stage.answers:
        raise Rejected("dispute", "this policy does not let the freelancer dispute a refund request")


def _late_enough(policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float = 0.0) -> None:
    assert m is not None
    rule = policy.late_cancel
    if rule is None:
        raise Rejected("late_cancel", "this policy has no cancellation of late milestones (late_cancel)")
    if m.first_submitted_at is not None:
        raise Rejected("late_cancel", f"milestone {m.id} was submitted; it is not late any more")
    if m.due is None:
        raise Rejected("late_cancel", f"milestone {m.id} has no due date, so it is never late")
    if now < m.due + rule.after_due - 1e-9:
        raise Rejected(
            "late_cancel",
            f"milestone {m.id} may be cancelled from "
            f"{m.due + rule.after_due:g}d ({rule.after_due:g}d after its due date {m.due:g}d)",
        )


def _freelancer_may_cancel(
    policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float = 0.0
) -> None:
    if not policy.freelancer_cancel:
        raise Rejected("freelancer_cancel", "this policy does not let the freelancer cancel a milestone")


def _may_pay_out_early(policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float = 0.0) -> None:
    assert m is not None
    rule = policy.hold.early_payout
    if rule is None:
        raise Rejected("early_payout", "this policy has no early payout (hold.early_payout)")
    if m.pending <= 0:
        raise Rejected("early_payout", f"nothing released for milestone {m.id} is still on hold")
    assert m.closed_at is not None
    after = rule.after
    if now < m.closed_at + after - 1e-9:
        raise Rejected(
            "early_payout",
            f"early payout of milestone {m.id} from {m.closed_at + after:g}d "
            f"({after:g}d after its release at {m.closed_at:g}d)",
        )


def _reversible(policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float = 0.0) -> None:
    if not policy.release.reversible:
        raise Rejected(
            "reversal", "this policy does not let the platform reverse a release (release.reversible)"
        )


def _may_ask_extension(policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float = 0.0) -> None:
    assert m is not None
    if policy.milestones.due_extensions is None:
        raise Rejected("due_extension", "this policy has no extension requests (milestones.due_extensions)")
    if m.extension_due is not None:
        raise Rejected("due_extension", f"an extension of milestone {m.id} is already waiting for an answer")
    if m.due is None:
        raise Rejected("due_extension", f"milestone {m.id} has no due date to extend")
    if a.due is None or a.due <= m.due:
        raise Rejected("due_extension", f"an extension moves the due date later than {m.due:g}d")


def _extension_pending(policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float = 0.0) -> None:
    assert m is not None
    if m.extension_due is None:
        raise Rejected("due_extension", f"no extension of milestone {m.id} is waiting for an answer")


def _invoice(policy: Policy, c: Contract, a: Action, m: Milestone | None, now: float = 0.0) -> None:
    if a.amount is not None and policy.release.invoices is None:
        raise Rejected(
            "invalid_state", "this policy has no invoices (release.invoices): a submission names no amount"
        )
    if a.amount is not None and a.amount <= 0:
        raise Rejected("invalid_state", "an invoice is for more than 0")


MINIMUM = ("milestones.minimum_amount",)
LOCKED = ("milestones.active_locked",)

HAS_MILESTONES = Guard("has_milestones", "invalid_state", (), _has_milestones, "an offer lists a milestone")
OFFER_MINIMUM = Guard(
    "offer_minimum", "minimum_amount", MINIMUM, _offer_minimum, "every milestone >= minimum"
)
NO_PROCEDURE = Guard("no_procedure", "invalid_state", (), _no_procedure, "no refund request or dispute open")
ONE_AT_A_TIME = Guard(
    "one_at_a_time",
    "one_at_a_time",
    ("milestones.funding",),
    _one_at_a_time,
    "no other milestone holds escrow",
    applies=lambda p: p.milestones.funding == "one_at_a_time",
)
FUNDING_ORDER = Guard(
    "funding_order",
    "funding_order",
    ("milestones.funding_order",),
    _funding_order,
    "the next planned one",
    applies=lambda p: p.milestones.funding_order == "sequential",
)
FUND_MINIMUM = Guard("fund_minimum", "minimum_amount", MINIMUM, _fund_minimum, "amount >= minimum")
PARTIAL = Guard(
    "partial_release",
    "partial_release",
    ("release.partial",),
    _partial_release,
    "less only if allowed",
    applies=lambda p: not p.release.partial,
)
BONUS = Guard(
    "bonus",
    "bonus",
    ("release.bonus",),
    _bonus,
    "more only if allowed",
    applies=lambda p: not p.release.bonus,
)
CHANGE_LIMIT = Guard(
    "change_limit",
    "max_change_requests",
    ("review.max_change_requests",),
    _change_limit,
    "within the limit",
    applies=lambda p: p.review.max_change_requests is not None,
)
MAY_EXTEND = Guard(
    "may_extend",
    "review_extension",
    ("review.extensions",),
    _may_extend,
    "allowed, not locked, within max",
)
MAY_LOCK = Guard("may_lock", "review_extension", ("review.extensions.lockable",), _may_lock, "lockable")
NEW_ID = Guard("new_id", "invalid_state", (), _new_id, "a new milestone id")
ADD_MINIMUM = Guard("add_minimum", "minimum_amount", MINIMUM, _add_minimum, "amount >= minimum")
POSITION_RANGE = Guard("position_range", "invalid_state", (), _position_range, "a position in the list")
POSITION_LOCK = Guard(
    "position_lock",
    "active_locked",
    LOCKED,
    _position_lock,
    "funded ones keep their place",
    applies=lambda p: "order" in p.milestones.active_locked,
)
EDITABLE = Guard("editable", "invalid_state", (), _editable, "not released/refunded/resolved")
EDIT_LOCK = Guard("edit_lock", "active_locked", LOCKED, _edit_lock, "funded: only what is not locked")
EDIT_MINIMUM = Guard("edit_minimum", "minimum_amount", MINIMUM, _edit_minimum, "amount >= minimum")
DELETABLE = Guard("deletable", "invalid_state", (), _deletable, "not released/refunded/resolved")
DELETE_LOCK = Guard("delete_lock", "active_locked", LOCKED, _delete_lock, "funded ones only if unlocked")
ORDER_COMPLETE = Guard("order_complete", "invalid_state", (), _order_complete, "each milestone once")
ORDER_LOCK = Guard(
    "order_lock",
    "active_locked",
    LOCKED,
    _order_lock,
    "funded ones keep their place",
    applies=lambda p: "order" in p.milestones.active_locked,
)
REFUND_PENDING_APPROVE = Guard(
    "refund_pending", "invalid_state", (), _refund_pending("approve a refund"), "a refund request waits"
)
REFUND_PENDING_DISPUTE = Guard(
    "refund_pending", "invalid_state", (), _refund_pending("dispute"), "a refund request waits"
)
MAY_DISPUTE = Guard("may_dispute", "dispute", ("refund.dispute",), _may_dispute, "the policy allows disputes")
LATE_ENOUGH = Guard(
    "late_enough",
    "late_cancel",
    ("late_cancel.after_due",),
    _late_enough,
    "no submission long after the due date",
)
FREELANCER_MAY_CANCEL = Guard(
    "freelancer_may_cancel",
    "freelancer_cancel",
    ("freelancer_cancel",),
    _freelancer_may_cancel,
    "the policy allows it",
)
EARLY_PAYOUT = Guard(
    "may_pay_out_early",
    "early_payout",
    ("hold.early_payout",),
    _may_pay_out_early,
    "money on hold, from hold.early_payout.after",
)
REVERSIBLE = Guard("reversible", "reversal", ("release.reversible",), _reversible, "the policy allows it")
MAY_ASK_EXTENSION = Guard(
    "may_ask_extension",
    "due_extension",
    ("milestones.due_extensions",),
    _may_ask_extension,
    "none pending, a later due date",
)
EXTENSION_PENDING = Guard(
    "extension_pending",
    "due_extension",
    ("milestones.due_extensions",),
    _extension_pending,
    "a request waits",
)
INVOICE = Guard(
    "invoice",
    "invalid_state",
    ("release.invoices",),
    _invoice,
    "an amount only under release.invoices",
)
