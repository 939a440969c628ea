"""The records the state machine works on: contracts and milestones, open procedures, and what a
decision returns (accepted events with their postings, timers to start, or a rejection)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..money.ledger import Transfer
from ..policy.calendar import BusinessDays
from .vocabulary import Action


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
    refundable_fees: int = 0  # refundable funding fees paid for it, returned if it is refunded in full
    review_due: float | None = None  # when the running review window ends (its auto_approve)
    extensions: int = 0  # extend_review taken in this submission's review
    review_locked: bool = False  # lock_review: the freelancer fixed the review's end
    pending: int = 0  # released to the freelancer and still in the hold (hold.after_release)
    hold_gen: int = 0  # the generation its funds_available timers watch (early payout ends them)
    freelancer_fees: int = 0  # freelancer fees taken from its releases (a reversal returns them)
    invoice: int | None = None  # release.invoices: the amount its last submission invoiced
    extension_due: float | None = None  # milestones.due_extensions: the due date asked for
    extension_gen: int = 0  # the generation the extension request's timer watches


@dataclass(slots=True)
class OpenProcedure:
    """A procedure under way over some of the contract's escrow (FORMAT section 7).

    ``filer`` is the party who opened it (``platform`` for dormancy); ``stage`` indexes the
    procedure's stages; ``gen`` is the generation its timers watch. ``answered`` holds the answers
    given so far in a ``party: both`` stage, ``paid`` the stage fees each party paid, ``proposal``
    the platform's (release, refund) proposal. ``awaiting_platform`` is set by the outcome
    ``platform``: the stage then waits for the platform's binding decision.
    """

    name: str
    filer: str
    milestones: tuple[str, ...]
    include_credit: bool
    opened_at: float
    gen: int
    stage: int = 0
    stage_started_at: float = 0.0
    answered: dict[str, str] = field(default_factory=dict)
    paid: dict[str, int] = field(default_factory=dict)  # stage fees paid, by party
    fee_stage: int = -1  # the stage whose fee ``paid`` holds
    proposal: tuple[int, int] | None = None
    awaiting_platform: bool = False
    settlement: tuple[str, int, int] | None = None  # (proposed by, release, refund)
    disputed: bool = False  # entered from another procedure (a refund request that was disputed)
    #: the states of its milestones when the first procedure over this money opened
    #: (``Stage.requires``: Guru's arbitration needs a raised invoice)
    prior: tuple[str, ...] = ()


@dataclass(slots=True)
class Contract:
    """A contract's live state: milestones in their order, credit in escrow, pending requests."""

    id: str
    client: str
    freelancer: str
    milestones: list[Milestone]
    state: str = "draft"
    credit: int = 0
    procedure: OpenProcedure | None = None
    proc_gen: int = 0
    offer_gen: int = 0
    by_id: dict[str, Milestone] = field(default_factory=dict)
    #: flows of postings that name no milestone (contract credit refunded, or released in a dispute)
    credit_flows: dict[str, int] = field(default_factory=dict)
    #: the client and freelancer's billings together, shared by their contracts (a one-item list),
    #: kept only when a fee is tiered by ``pair_lifetime``
    pair: list[int] | None = None
    escrow_account: str = ""  # account names, computed once
    client_account: str = ""
    #: where refunds go: ``client_account``, or the client's platform balance (``refund.to``)
    refund_account: str = ""
    activity_gen: int = 0  # dormancy: the generation of the last activity its timer watches
    first_fee: int = 0  # a refundable first_funding fee charged and not yet returned
    first_funded: bool = False  # first_funding fees are charged once per contract
    paid_out: bool = False  # anything released or paid as a bonus to the freelancer
    offered_at: float | None = None  # when the offer was last sent (a dated pack's new_contracts)
    #: refunds decided and not yet arrived (``hold.after_refund``): still in escrow, owed to the client
    in_transit: int = 0
    #: the ledger's balances, read to pay from the client's platform balance first
    #: (``milestones.fund_from_balance``; set by the engine, None elsewhere)
    balances: dict[str, int] | None = None

    def __post_init__(self) -> None:
        self.by_id = {m.id: m for m in self.milestones}
        self.escrow_account = f"escrow:{self.id}"
        self.client_account = f"client:{self.client}"
        if not self.refund_account:
            self.refund_account = self.client_account

    @property
    def refund_request(self) -> OpenProcedure | None:
        """The open procedure (the article's words: a refund request, disputed or not)."""
        return self.procedure

    def escrow(self) -> int:
        """Money of this contract in escrow: milestone escrow plus credit."""
        total = self.credit + self.in_transit
        for m in self.milestones:  # a loop: this is asked after every action that moves money
            total += m.escrowed
        return total


@dataclass(frozen=True, slots=True)
class Timer:
    """A follow-up the engine must schedule: fire ``action`` after ``delay`` days.

    Handlers write the policy's duration (days, or ``BusinessDays``); ``apply`` returns it in days.
    """

    delay: float | BusinessDays
    action: Action


#: a message written only when it is read: the frequent events' effects give one (a
#: ``functools.partial`` of a function that formats it), and the machine turns it into the text
#: unless its caller keeps no messages (a run with ``events: none`` formats no money)
Note = Callable[[], str]


@dataclass(slots=True)
class Emitted:
    """An accepted event with its postings (``Transfer``: from, to, flow, amount, milestone).

    ``message`` is text once the machine has returned it (a :data:`Note` inside an effect).
    """

    actor: str
    action: str
    milestone: str
    amount: int
    message: str | Note
    postings: list[Transfer]
    keys: tuple[str, ...] = ()  # the policy keys that decided it (FORMAT section 9)


@dataclass(slots=True)
class Outcome:
    """The decision on one action: rejected with a rule, or accepted events and timers."""

    accepted: bool
    rule: str = ""
    message: str = ""
    events: list[Emitted] = field(default_factory=list)
    timers: list[Timer] = field(default_factory=list)
    keys: tuple[str, ...] = ()  # a rejection: the policy keys of its rule


class Rejected(Exception):
    """Raised inside the state machine before any change; turned into a rejected Outcome."""

    def __init__(self, rule: str, message: str, keys: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message
        self.keys = keys  # the policy keys that decided it, when the rule id alone does not say


STALE = Outcome(accepted=False, rule="stale")
