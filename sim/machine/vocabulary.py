"""The vocabulary of contracts: contract and milestone states, outcomes, and the Action record.

Shared by the scenario reader (which validates scripts and expectations against it) and the
state machine. It holds no rules; the actions themselves are the rows of ``transitions``.
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
