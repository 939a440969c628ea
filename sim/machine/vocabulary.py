"""The vocabulary of contracts: states, actions by actor, automatic events, and the Action record.

Shared by the scenario reader (which validates scripts and expectations against it) and the
state machine in ``contract`` (which gives the actions their meaning). It holds no rules.
"""

from __future__ import annotations

from dataclasses import dataclass

CONTRACT_STATES = ("draft", "offered", "active", "withdrawn", "declined", "expired", "ended")
MILESTONE_STATES = (
    "planned",
    "funded",
    "submitted",
    "changes_requested",
    "refund_requested",
    "disputed",
    "released",
    "refunded",
    "resolved",
    "dormant",
)
TERMINAL = frozenset({"released", "refunded", "resolved"})
#: milestone states in which the milestone holds escrow
HOLDING = frozenset({"funded", "submitted", "changes_requested", "refund_requested", "disputed", "dormant"})
REVIEWABLE = frozenset({"funded", "submitted", "changes_requested"})
OUTCOMES = (
    "approved",
    "auto_approved",
    "refunded",
    "auto_refunded",
    "released",
    "auto_released",
    "resolved",
    "open",
)

ACTIONS: dict[str, tuple[str, ...]] = {
    "client": (
        "offer",
        "withdraw_offer",
        "fund",
        "approve",
        "request_changes",
        "add_milestone",
        "edit_milestone",
        "delete_milestone",
        "reorder_milestones",
        "request_refund",
        "end_contract",
        "respond",
        "pay_fee",
        "open",
        "propose_settlement",
        "accept_settlement",
    ),
    "freelancer": (
        "accept_offer",
        "decline_offer",
        "submit",
        "approve_refund",
        "dispute",
        "end_contract",
        "respond",
        "pay_fee",
        "open",
        "propose_settlement",
        "accept_settlement",
    ),
    "platform": ("resolve_dispute",),
}
#: actions no script may write: timers and their consequences
AUTOMATIC = (
    "auto_approve",
    "auto_refund",
    "offer_expired",
    "offer_refund",
    "funds_available",
    "auto_release",
    "stage_timeout",
    "dormancy_check",
    "dormancy_notice",
    "dormant",
    "fee_returned",
    "all_paid",
)


@dataclass(frozen=True, slots=True)
class Action:
    """One thing an actor does (or a timer that fires) on a contract."""

    actor: str
    name: str
    milestone: str | None = None
    amount: int | None = None
    due: float | None = None
    position: int | None = None
    order: tuple[str, ...] | None = None
    release: int | None = None
    refund: int | None = None
    gen: int = 0  # timers: the generation they watch
    account: str | None = None  # funds_available: the freelancer account
    answer: str | None = None  # respond: the answer given
    procedure: str | None = None  # respond, pay_fee, open: which procedure (default: the open one)
    at: float | None = None  # dormancy_check: when the contract becomes dormant
