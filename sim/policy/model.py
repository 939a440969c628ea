"""Policy packs: the model, packs by name or path, ``extends:``, dotted overrides, rule ids.

A pack is a YAML file in ``rules/`` (shipped as the package ``sim.rules``) or any path. Loading
merges the ``extends`` chain (child keys override parent keys), applies dotted overrides
(``review.window: 7d``), and validates the result; every error names the file and line where the
offending key was written, whichever file or override that was.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import importlib.resources
import itertools
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    PrivateAttr,
    StrictBool,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

from ..core import schema
from ..core.units import (
    CURRENCY_DIGITS,
    ROUNDING_MODES,
    format_money,
    percent_of,
)
from ..core.yamlio import (
    Doc,
    InputError,
    Loc,
    Problem,
    allowed_roots,
    confined,
    dotted,
    load_file,
    outside_message,
)
from . import dated
from .calendar import WEEKDAYS, BusinessDays, Calendar, is_zero
from .procedures import Dormancy, Procedure, shorthand
from .procedures import check as check_procedures
from .procedures import resolved as resolved_procedures
from .values import (
    Date,
    Duration,
    LockedPart,
    Money,
    Percent,
    PolicyDuration,
    RulesModel,
    Timezone,
    Weekday,
    show_duration,
)

#: Rule ids a rejected action is recorded with (FORMAT.md section 2).
RULE_IDS = (
    "minimum_amount",
    "one_at_a_time",
    "funding_order",
    "active_locked",
    "partial_release",
    "bonus",
    "dispute",
    "max_change_requests",
    "invalid_state",
    "insufficient_escrow",
    "procedure",
    "not_your_turn",
    "late_cancel",
    "freelancer_cancel",
    "review_extension",
    "revisions_first",
    "early_payout",
    "reversal",
    "due_extension",
)


class DueExtensions(RulesModel):
    """A request to move a milestone's due date: the client accepts or declines it, and silence
    for ``answer_within`` withdraws it."""

    answer_within: PolicyDuration
    on_timeout: Literal["withdrawn"] = "withdrawn"


class MilestoneRules(RulesModel):
    """What a milestone may be and how milestones are funded."""

    minimum_amount: Money
    #: one_at_a_time | any_number | all_upfront (every milestone funded when the offer is accepted)
    funding: Literal["one_at_a_time", "any_number", "all_upfront"] = "one_at_a_time"
    funding_order: Literal["sequential", "any"] = "sequential"
    active_locked: frozenset[LockedPart] = frozenset({"amount", "due_date", "order", "delete"})
    #: charge the next planned milestone when one is released (Fiverr's milestone orders)
    auto_fund_next: StrictBool = False
    #: what the client pays (fundings, fees, bonuses) comes out of their platform balance first
    #: (``balance:<client>``, where ``refund.to: platform_balance`` puts refunds: the Fiverr Balance)
    fund_from_balance: StrictBool = False
    #: the freelancer may ask to move a milestone's due date (``request_extension``); the client
    #: answers within ``answer_within`` or the request is withdrawn (Fiverr's extension requests)
    due_extensions: DueExtensions | None = None


class LateCancel(RulesModel):
    """The client may cancel a milestone whose first submission is this late (``cancel_late``)."""

    after_due: Duration
    outcome: Literal["refund"] = "refund"


class ReviewExtensions(RulesModel):
    """The client may push a running review window further (Guru's delayed auto-pay).

    Each ``extend_review`` moves the window's end by ``by`` (``max`` times per submission at
    most; None: no limit). ``lockable: true`` lets the freelancer fix the date (``lock_review``):
    the client must then release or dispute before it.
    """

    party: Literal["client"] = "client"
    by: PolicyDuration
    max: Annotated[StrictInt, Field(ge=1)] | None = None
    lockable: StrictBool = False

    @field_validator("by")
    @classmethod
    def _positive(cls, by: float | BusinessDays) -> float | BusinessDays:
        if is_zero(by):
            raise ValueError("an extension of 0 days extends nothing: give a positive duration")
        return by


class ReviewRules(RulesModel):
    """The client's review of a submission."""

    window: PolicyDuration
    on_timeout: Literal["approve", "nothing"] = "approve"
    max_change_requests: Annotated[StrictInt, Field(ge=0)] | None = None
    extensions: ReviewExtensions | None = None
    #: the window starts this long after the submission (Escrow.com's inspection starts when the
    #: delivery is received: shipping time is not inspection time)
    starts_after: PolicyDuration = 0.0
    #: notices to the client this long before the window ends, if the client has not acted on the
    #: submission (Escrow.com's 24-hour notice to a buyer who never took part)
    notices: tuple[PolicyDuration, ...] = ()

    @model_validator(mode="after")
    def _notices_need_a_timeout(self) -> ReviewRules:
        if self.notices and self.on_timeout != "approve":
            raise ValueError("review.notices warn of the window's end, but on_timeout: nothing has no end")
        if any(is_zero(n) for n in self.notices):
            raise ValueError(
                "a review notice 0 days before the end is the end itself: give a positive duration"
            )
        return self

    @model_validator(mode="after")
    def _extensions_need_a_timeout(self) -> ReviewRules:
        if self.extensions is not None and self.on_timeout != "approve":
            raise ValueError(
                "review.extensions push the window's end, but on_timeout: nothing has no end to push"
            )
        return self


class Invoices(RulesModel):
    """Invoiced submissions: what an invoice beyond the milestone's escrow does when it is paid."""

    #: ``unpaid``: only the escrow is paid; ``from_client``: the rest is taken from the client
    #: (PeoplePerHour takes an auto-release's shortfall from the buyer's wallet)
    shortfall: Literal["unpaid", "from_client"] = "unpaid"


class ReleaseRules(RulesModel):
    """Releasing a different amount than funded."""

    partial: StrictBool = True
    bonus: StrictBool = True
    #: a submission may name an amount, its invoice (``submit {amount}``); approving without an
    #: amount and the review's timeout pay the invoice (PeoplePerHour's invoices)
    invoices: Invoices | None = None
    #: the platform may reverse a release (``platform: reverse_release``): the money goes back to
    #: the client, taken from the freelancer's pending and then available money, which may go below
    #: zero (owed from future revenue; Fiverr's Customer Support cancelling a completed order)
    reversible: StrictBool = False


class RefundRules(RulesModel):
    """Escrow refund requests and the freelancer's answer."""

    response_window: PolicyDuration
    on_timeout: Literal["refund", "nothing"] = "refund"
    dispute: StrictBool = True
    #: where refunded money goes: back to what the client paid with (``source``), or to the
    #: client's balance on the platform (``platform_balance``: the account ``balance:<client>``,
    #: money the platform still holds for the client, as Fiverr's cancelled orders do)
    to: Literal["source", "platform_balance"] = "source"


class OfferRules(RulesModel):
    """What happens to escrow funded with an offer that does not become a contract."""

    refund_on_withdraw: StrictBool = True
    refund_on_decline: StrictBool = True
    expires_after: PolicyDuration | None = None


class EarlyPayout(RulesModel):
    """Money held after a release made available at once, for ``percent`` of it, from ``after``
    the release on."""

    percent: Percent
    after: Duration = 0.0  # calendar time (48h), not business days


class HoldRules(RulesModel):
    """Clearance before released money is available to the freelancer."""

    after_release: PolicyDuration = 0.0
    #: a refund of escrow reaches the client this long after it is decided (PeoplePerHour: one
    #: working day); until then the money stays in escrow, owed to the client
    after_refund: PolicyDuration = 0.0
    #: the freelancer may end the hold early for a fee (``early_payout``; Fiverr's Early Payout)
    early_payout: EarlyPayout | None = None


class CalendarRules(RulesModel):
    """Which days are business days, for ``bd`` durations (FORMAT section 8)."""

    timezone: Timezone = "UTC"
    weekend: tuple[Weekday, ...] = (5, 6)
    holidays: tuple[Date, ...] = ()

    @field_validator("weekend")
    @classmethod
    def _weekend_once(cls, weekend: tuple[int, ...]) -> tuple[int, ...]:
        twice = sorted({d for d in weekend if weekend.count(d) > 1})
        if twice:
            raise ValueError(f"weekend names {', '.join(WEEKDAYS[d] for d in twice)} more than once")
        if len(weekend) == 7:
            raise ValueError("a weekend of all seven days leaves no business day")
        return weekend

    @field_validator("holidays")
    @classmethod
    def _holidays_once(cls, holidays: tuple[dt.date, ...]) -> tuple[dt.date, ...]:
        twice = sorted({d for d in holidays if holidays.count(d) > 1})
        if twice:
            raise ValueError(f"holidays list {', '.join(map(str, twice))} more than once")
        return holidays

    def calendar(self) -> Calendar:
        """The calendar arithmetic of these rules."""
        return Calendar(self.timezone, frozenset(self.weekend), tuple(sorted(self.holidays)))

    def resolved(self) -> dict[str, Any]:
        return {
            "timezone": self.timezone,
            "weekend": [WEEKDAYS[d] for d in self.weekend],
            "holidays": [d.isoformat() for d in self.holidays],
        }


class Tier(RulesModel):
    """One band of a tiered fee: ``percent`` of the part of the basis up to ``upto`` (None: the rest)."""

    upto: Money | None = None
    percent: Percent


class Fee(RulesModel):
    """A platform fee: a percentage (and/or a fixed amount) of a flow, paid by one party.

    ``on``: ``funding`` (what the client pays into escrow), ``release`` and ``bonus`` (what the
    freelancer receives), ``first_funding`` (once per contract, with its first funding: Upwork's
    Contract Initiation Fee) or ``acceptance`` (the contract's total when the offer is accepted:
    Freelancer.com's project fees; a freelancer pays it out of pocket). ``minimum``/``maximum``
    bound the percentage part ("3% or $3, whichever is greater"); ``below``/``above`` charge the
    fee only on flows under/over an amount (a small-order fee). ``refundable: true`` returns the
    fee with the money it was charged on: a funding fee when that milestone is refunded in full,
    a first_funding fee when the contract closes having released nothing. ``tiers`` charge a
    percentage per band, marginally: of a flow alone (``tier_basis: flow``) or of the client and
    freelancer's billings together so far (``tier_basis: pair_lifetime``: PeoplePerHour's fee by
    lifetime billings with one buyer), so a release that crosses a band pays each band's rate on
    its part of it.
    """

    name: StrictStr
    payer: Literal["client", "freelancer"]
    on: Literal["funding", "release", "bonus", "first_funding", "acceptance"]
    percent: Percent = Decimal(0)
    fixed: Money | None = None
    minimum: Money | None = None
    maximum: Money | None = None
    below: Money | None = None
    above: Money | None = None
    rounding: Literal["half_up", "half_even", "down", "up"] = "half_up"
    refundable: StrictBool = False
    tiers: tuple[Tier, ...] = ()
    tier_basis: Literal["flow", "pair_lifetime"] = "flow"

    @model_validator(mode="after")
    def _tiers(self) -> Fee:
        if not self.tiers:
            if self.tier_basis != "flow":
                raise ValueError("tier_basis needs tiers")
            return self
        if self.percent:
            raise ValueError("a tiered fee takes its percentages from tiers: leave out percent")
        if self.on not in ("release", "bonus"):
            raise ValueError("tiers are supported for fees on release and bonus")
        *bands, last = self.tiers
        if last.upto is not None:
            raise ValueError("the last tier has no upto: it charges everything above the one before")
        bounds = [t.upto for t in bands]
        if any(b is None for b in bounds):
            raise ValueError("every tier but the last needs upto")
        if any(b2 <= b1 for b1, b2 in itertools.pairwise(bounds)) or (bounds and bounds[0] <= 0):
            raise ValueError("tiers' upto must be positive and increasing")
        return self

    @model_validator(mode="after")
    def _funding_fees_are_the_clients(self) -> Fee:
        if self.on in ("funding", "first_funding") and self.payer != "client":
            raise ValueError(f"a fee on {self.on} is paid by the client (payer: client)")
        if self.refundable and self.on not in ("first_funding", "funding"):
            raise ValueError("refundable is supported for fees on funding and first_funding")
        if (self.minimum is not None or self.maximum is not None) and not self.percent:
            raise ValueError("minimum and maximum bound a percentage: give percent")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError("the fee's minimum is more than its maximum: no amount satisfies both")
        if self.below is not None and self.above is not None and self.below <= self.above:
            raise ValueError("below must be more than above, or no flow is charged")
        return self

    def amount_on(self, flow: int, before: int = 0) -> int:
        """This fee on a flow of ``flow`` minor units (0 when its below/above exclude it).

        ``before``: the pair's billings before this flow (read by ``tier_basis: pair_lifetime``).
        """
        if flow <= 0 or (self.below is not None and flow >= self.below):
            return 0
        if self.above is not None and flow <= self.above:
            return 0
        if self.tiers:
            part = self._tiered(flow, before if self.tier_basis == "pair_lifetime" else 0)
        else:
            part = percent_of(flow, self.percent, self.rounding) if self.percent else 0
        if self.minimum is not None:
            part = max(part, self.minimum)
        if self.maximum is not None:
            part = min(part, self.maximum)
        return part + (self.fixed or 0)

    def _tiered(self, flow: int, start: int) -> int:
        """Each band's percent of the part of [start, start + flow) inside it, rounded once."""
        exact = Decimal(0)
        low = 0
        for tier in self.tiers:
            high = tier.upto
            part = min(start + flow, high if high is not None else start + flow) - max(start, low)
            if part > 0:
                exact += part * tier.percent
            if high is None or high >= start + flow:
                break
            low = high
        return percent_of(1, exact, self.rounding)  # exact / 100, rounded once

    @property
    def pair_based(self) -> bool:
        return bool(self.tiers) and self.tier_basis == "pair_lifetime"


@dataclasses.dataclass(frozen=True)
class Version:
    """One version of a dated pack: in force from ``first`` (an ISO date, or dated.BEGIN) until the
    next version's first date."""

    first: str
    policy: Policy
    #: the dated keys whose record starts on this date
    starts: tuple[str, ...] = ()
    #: what differs from the version before, as resolved values by dotted key
    changes: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def shown(self) -> str:
        return dated.show(self.first)


class Policy(RulesModel):
    """A fully resolved policy pack."""

    policy: StrictStr
    title: StrictStr = ""
    extends: StrictStr | None = None
    currency: Literal[tuple(CURRENCY_DIGITS)] = "USD"  # type: ignore[valid-type]
    milestones: MilestoneRules
    review: ReviewRules
    release: ReleaseRules = ReleaseRules()
    #: the article's refund request and dispute (a shorthand for two procedures); a pack whose
    #: own procedures take their place writes ``refund: null``
    refund: RefundRules | None
    offer: OfferRules = OfferRules()
    hold: HoldRules = HoldRules()
    fees: tuple[Fee, ...] = ()
    calendar: CalendarRules = CalendarRules()
    procedures: dict[StrictStr, Procedure] = Field(default_factory=dict)
    dormancy: Dormancy | None = None
    late_cancel: LateCancel | None = None
    #: the freelancer may return a funded milestone's escrow at once (``cancel_milestone``)
    freelancer_cancel: StrictBool = False
    #: which version of a dated value decides (FORMAT section 8): the one in force when the
    #: contract's offer was sent (``new_contracts``), when the milestone was funded
    #: (``new_milestones``) or when the decision is made (``immediate``)
    transition: Literal["new_contracts", "new_milestones", "immediate"] = "new_contracts"
    _all: dict[str, Procedure] = PrivateAttr(default_factory=dict)
    #: a dated pack's versions, each the pack as in force from its first date (empty: undated)
    _versions: tuple[Version, ...] = PrivateAttr(default=())
    #: the first date of this version (dated.BEGIN for the first one of a dated override)
    _from: str = PrivateAttr(default="")
    _openers: dict[tuple[str, str], str] = PrivateAttr(default_factory=dict)
    _sources: dict[str, str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _expand_procedures(self) -> Policy:
        merged = {**shorthand(self.refund), **self.procedures}
        self._all = merged
        self._openers = {
            (actor, action): name
            for name, proc in merged.items()
            for actor, action in (proc.opened_by or {}).items()
        }
        return self

    @property
    def all_procedures(self) -> dict[str, Procedure]:
        """Every procedure the pack runs: the ``refund:`` shorthand's, replaced by declared ones."""
        return self.__pydantic_private__["_all"]  # type: ignore[index]  # not the slow __getattr__

    def __eq__(self, other: object) -> bool:
        """Two policies are equal when their rules are: where a value was written does not count."""
        return isinstance(other, Policy) and self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        return hash(("Policy", self.policy))  # equal policies have equal names

    def source(self, key: str) -> str:
        """Where the value of a policy key was written: ``rules/upwork.yaml:14:11``, the override's
        file:line:column, ``--set``, or ``default`` for a value no file gives."""
        found = self._sources.get(key)
        if found is not None:
            return found
        parent = key.rpartition(".")[0]  # a key inside a value written whole (a fee, a stage)
        while parent:
            if parent in self._sources:
                return self._sources[parent]
            parent = parent.rpartition(".")[0]
        return "default"

    @property
    def versions(self) -> tuple[Version, ...]:
        """The versions of a dated pack, oldest first (empty for a pack without dated values)."""
        return self._versions

    @property
    def dated(self) -> bool:
        return bool(self._versions)

    @property
    def version_from(self) -> str:
        """The first date of this version, as printed (``2023-05-03``, ``start``), or ``""``."""
        return dated.show(self._from) if self._from else ""

    def at(self, day: dt.date) -> Policy:
        """The version in force on ``day`` (the pack itself when it has no dated values).

        Raises ValueError for a day before the first version (a dated key has no value then).
        """
        if not self._versions:
            return self
        text = day.isoformat()
        found = [v.policy for v in self._versions if v.first <= text]
        if not found:
            raise ValueError(self.before_first(day))
        return found[-1]

    def values_by_version(self) -> dict[str, dict[str, Any]]:
        """Every value by dotted key (``review.window``, ``fees.freelancer_service.percent``), for
        each version by its first date as printed, or under ``""`` for a pack without dated values."""
        if not self._versions:
            return {"": flat_values(self.resolved_values())}
        return {v.shown: flat_values(v.policy.resolved_values()) for v in self._versions}

    def switched(self, new: Policy, on: dt.date, transition: str) -> Policy:
        """This pack until ``on``, ``new`` from then: a dated pack of two versions, decided by
        ``transition`` (the policy change a ``transition`` report plays). Raises ValueError when
        this pack is dated already or ``new`` changes which procedures and stages exist."""
        if self._versions or new._versions:
            raise ValueError("a policy change is played on an undated pack: give one without dated values")
        if transition not in ("new_contracts", "new_milestones", "immediate"):
            raise ValueError(f"unknown transition {transition!r}")
        if _shape(self) != _shape(new) or self.currency != new.currency or self.calendar != new.calendar:
            raise ValueError(
                "the new rules change the currency, the calendar or which procedures and stages exist: "
                "a change on a date may change values only"
            )
        before = self.model_copy(update={"transition": transition})
        after = new.model_copy(update={"transition": transition})
        before._from, after._from = dated.BEGIN, on.isoformat()
        changes = _changes(flat_values(self.resolved_values()), flat_values(new.resolved_values()))
        versions = (Version(dated.BEGIN, before), Version(on.isoformat(), after, (), changes))
        before._versions = after._versions = versions
        return before

    def before_first(self, day: dt.date) -> str:
        first = self._versions[0]
        return (
            f"{day.isoformat()} is before the first dated version of {self.policy} "
            f"({first.first}: {', '.join(first.starts) or 'every dated key'} has no value before it)"
        )

    def sourced(self, keys: Sequence[str]) -> tuple[list[str], list[str]]:
        """The keys that decided something and where each was written. A key whose parts were
        written in another file (an override of ``hold.early_payout.after`` in a scenario) is
        preceded by those parts, each with its own source, so every value shown is where it was
        written."""
        out_keys: list[str] = []
        out_sources: list[str] = []
        for key in keys:
            own = self.source(key)
            file = own.rsplit(":", 2)[0]
            for part, where in sorted(self._sources.items()):
                if part.startswith(key + ".") and where.rsplit(":", 2)[0] != file:
                    out_keys.append(part)
                    out_sources.append(where)
            out_keys.append(key)
            out_sources.append(own)
        return out_keys, out_sources

    def with_sources(self, sources: dict[str, str]) -> Policy:
        """Attach where each value was written (the loader calls this once)."""
        self._sources = sources
        return self

    @property
    def openers(self) -> dict[tuple[str, str], str]:
        """(actor, action) -> the procedure that action opens (``("client", "request_refund")``)."""
        return self.__pydantic_private__["_openers"]  # type: ignore[index]

    def business_day_keys(self) -> list[str]:
        """The dotted keys of the windows written in business days (``review.window``)."""
        return list(self.business_day_windows())

    def business_day_windows(self) -> dict[str, BusinessDays]:
        """Each window written in business days, by its dotted key."""
        windows: dict[str, Any] = {
            "review.window": self.review.window,
            "refund.response_window": self.refund.response_window if self.refund else None,
            "offer.expires_after": self.offer.expires_after,
            "hold.after_release": self.hold.after_release,
            "hold.after_refund": self.hold.after_refund,
            "review.starts_after": self.review.starts_after,
        }
        for pname, proc in self.procedures.items():
            for stage in proc.stages:
                key = f"procedures.{pname}.{stage.name}.window"
                if isinstance(stage.window, dict):
                    for party, w in stage.window.items():
                        windows[f"{key}.{party}"] = w
                else:
                    windows[key] = stage.window
        if self.dormancy is not None:
            windows["dormancy.after"] = self.dormancy.after
        return {k: v for k, v in windows.items() if isinstance(v, BusinessDays)}

    @property
    def digits(self) -> int:
        """Minor-unit digits of the currency."""
        return CURRENCY_DIGITS[self.currency]

    def resolved(self) -> dict[str, Any]:
        """The policy as plain YAML-ready data, amounts and durations in their written units.

        ``calendar`` is shown only when it matters (business days, or a calendar other than the
        default), so the resolved policy of a pack without one reads as it always did. A dated pack
        adds its ``transition``, the version these values are (``version_in_force``) and each
        version's first date and changes.
        """
        out = self.resolved_values()
        if self._versions:
            out["transition"] = self.transition
            out["version_in_force"] = self.version_from
            out["versions"] = [{"from": v.shown, "changes": v.changes} for v in self._versions]
        return out

    def resolved_values(self) -> dict[str, Any]:
        """The values of this version alone, as :meth:`resolved` writes them."""
        d = self.digits
        m = self.milestones
        out = {
            "policy": self.policy,
            "title": self.title,
            "extends": self.extends,
            "currency": self.currency,
            "milestones": {
                "minimum_amount": format_money(m.minimum_amount, d),
                "funding": m.funding,
                "funding_order": m.funding_order,
                "active_locked": sorted(m.active_locked),
                **({"auto_fund_next": True} if m.auto_fund_next else {}),
                **({"fund_from_balance": True} if m.fund_from_balance else {}),
                **(
                    {"due_extensions": {"answer_within": show_duration(m.due_extensions.answer_within)}}
                    if m.due_extensions is not None
                    else {}
                ),
            },
            "review": {
                "window": show_duration(self.review.window),
                "on_timeout": self.review.on_timeout,
                "max_change_requests": self.review.max_change_requests,
                **(
                    {
                        "extensions": {
                            "party": self.review.extensions.party,
                            "by": show_duration(self.review.extensions.by),
                            "max": self.review.extensions.max,
                            "lockable": self.review.extensions.lockable,
                        }
                    }
                    if self.review.extensions is not None
                    else {}
                ),
                **(
                    {"starts_after": show_duration(self.review.starts_after)}
                    if not is_zero(self.review.starts_after)
                    else {}
                ),
                **(
                    {"notices": [show_duration(n) for n in self.review.notices]}
                    if self.review.notices
                    else {}
                ),
            },
            "release": {
                "partial": self.release.partial,
                "bonus": self.release.bonus,
                **(
                    {"invoices": {"shortfall": self.release.invoices.shortfall}}
                    if self.release.invoices is not None
                    else {}
                ),
                **({"reversible": True} if self.release.reversible else {}),
            },
            "refund": None
            if self.refund is None
            else {
                "response_window": show_duration(self.refund.response_window),
                "on_timeout": self.refund.on_timeout,
                "dispute": self.refund.dispute,
            },
            "offer": {
                "refund_on_withdraw": self.offer.refund_on_withdraw,
                "refund_on_decline": self.offer.refund_on_decline,
                "expires_after": None
                if self.offer.expires_after is None
                else show_duration(self.offer.expires_after),
            },
            "hold": {
                "after_release": show_duration(self.hold.after_release),
                **(
                    {"after_refund": show_duration(self.hold.after_refund)}
                    if not is_zero(self.hold.after_refund)
                    else {}
                ),
                **(
                    {
                        "early_payout": {
                            "percent": str(self.hold.early_payout.percent),
                            "after": show_duration(self.hold.early_payout.after),
                        }
                    }
                    if self.hold.early_payout is not None
                    else {}
                ),
            },
            "fees": [
                {
                    "name": f.name,
                    "payer": f.payer,
                    "on": f.on,
                    "percent": str(f.percent),
                    "fixed": None if f.fixed is None else format_money(f.fixed, d),
                    "rounding": f.rounding,
                    **{
                        k: format_money(getattr(f, k), d)
                        for k in ("minimum", "maximum", "below", "above")
                        if getattr(f, k) is not None
                    },
                    **({"refundable": True} if f.refundable else {}),
                    **(
                        {
                            "tiers": [
                                {
                                    "upto": None if t.upto is None else format_money(t.upto, d),
                                    "percent": str(t.percent),
                                }
                                for t in f.tiers
                            ],
                            "tier_basis": f.tier_basis,
                        }
                        if f.tiers
                        else {}
                    ),
                }
                for f in self.fees
            ],
        }
        if self.business_day_keys() or self.calendar != CalendarRules():
            out["calendar"] = self.calendar.resolved()
        if self.procedures:
            out["procedures"] = resolved_procedures(self.procedures, d)
        if self.late_cancel is not None:
            out["late_cancel"] = {
                "after_due": show_duration(self.late_cancel.after_due),
                "outcome": self.late_cancel.outcome,
            }
        if self.freelancer_cancel:
            out["freelancer_cancel"] = True
        if self.dormancy is not None:
            out["dormancy"] = {
                "after": show_duration(self.dormancy.after),
                "since": self.dormancy.since,
                "notices": [show_duration(n) for n in self.dormancy.notices],
                "procedure": self.dormancy.procedure,
            }
        return out


assert set(ROUNDING_MODES) == {"half_up", "half_even", "down", "up"}


# ---------------------------------------------------------------------------- loading packs


def builtin_dir() -> Path:
    """Folder of the built-in packs (``rules/``, installed as ``sim.rules``)."""
    return Path(str(importlib.resources.files("sim.rules")))


def builtin_packs() -> dict[str, Path]:
    """Built-in pack names and their files, sorted by name."""
    return {p.stem: p for p in sorted(builtin_dir().glob("*.yaml"))}


def _is_name(ref: str) -> bool:
    return "/" not in ref and "\\" not in ref and not ref.endswith((".yaml", ".yml"))


def resolve_pack(ref: str, base: Path | None = None) -> Path | None:
    """Find a pack by name (``upwork``) or by path (relative to ``base``)."""
    if _is_name(ref):
        return builtin_packs().get(ref)
    path = Path(ref)
    if not path.is_absolute() and base is not None:
        path = base / path
    return path if path.exists() else None


def _in_builtin(path: Path) -> bool:
    """True if ``path`` (symlinks resolved) is a file of the built-in packs' folder."""
    return confined(path, (builtin_dir().resolve(),)) is not None


def _pack_path(ref: str, base: Path, roots: tuple[Path, ...]) -> tuple[Path | None, str | None]:
    """A pack named by ``ref`` (a built-in name, or a path relative to ``base`` that must lie inside
    ``roots``), or None and the reason."""
    if _is_name(ref):
        found = builtin_packs().get(ref)
        return found, None if found else _unknown_pack_message(ref)
    path = Path(ref)
    if not path.is_absolute():
        path = base / path
    if confined(path, roots) is None:
        return None, outside_message(ref, roots)
    if not path.exists():
        return None, _unknown_pack_message(ref)
    return path, None


class _Sourced:
    """Merged policy data plus, for every location, the document and location it came from."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.origin: dict[Loc, tuple[Doc | None, Loc]] = {}

    def overlay(self, doc: Doc, data: Any, loc: Loc = (), src: Loc = ()) -> None:
        """Merge ``data`` (from ``doc`` at ``src``) into ``self.data`` at ``loc``."""
        written_before = self.origin.get(loc)
        self.origin[loc] = (doc, src)
        if isinstance(data, dict) and loc == ():
            for key, value in data.items():
                self.overlay(doc, value, (key,), (*src, key))
            return
        target = self.data
        for part in loc[:-1]:
            nxt = target.get(part) if isinstance(target, dict) else None
            if not isinstance(nxt, dict):
                nxt = {}
                target[part] = nxt
            target = nxt
        before = target.get(loc[-1])
        if dated.is_dated(data) and loc[-1] in target and before is not None:
            if dated.is_dated(before):  # more dates for a dated value: the new ones win on a tie
                merged = {**before, **{k: v for k, v in data.items() if k != "values"}}
                merged["values"] = {**before["values"], **data["values"]}
                target[loc[-1]] = copy.deepcopy(merged)
                for key, value in data.items():
                    if key != "values":
                        self._mark_children(doc, value, (*loc, key), (*src, key))
                for key, value in data["values"].items():
                    self._mark_children(doc, value, (*loc, "values", key), (*src, "values", key))
                self.origin[(*loc, "values")] = (doc, (*src, "values"))
                return
            # a plain value overridden by a dated one stays in force before the first date
            kept = {
                (*loc, "values", dated.BEGIN, *old[len(loc) :]): origin
                for old, origin in self.origin.items()
                if old[: len(loc)] == loc and old != loc
            }
            if written_before is not None:
                kept[(*loc, "values", dated.BEGIN)] = written_before
            target[loc[-1]] = {"values": {dated.BEGIN: before, **copy.deepcopy(data["values"])}}
            self._mark_children(doc, data, loc, src)
            self.origin.update(kept)
            return
        if isinstance(data, dict) and isinstance(before, dict) and not dated.is_dated(before):
            for key, value in data.items():
                self.overlay(doc, value, (*loc, key), (*src, key))
        else:
            target[loc[-1]] = copy.deepcopy(data)
            # a value replaced whole: where its old parts were written no longer says anything
            n = len(loc)
            for old in [o for o in self.origin if len(o) > n and o[:n] == loc]:
                del self.origin[old]
            self._mark_children(doc, data, loc, src)

    def _mark_children(self, doc: Doc, data: Any, loc: Loc, src: Loc) -> None:
        self.origin[loc] = (doc, src)
        if isinstance(data, dict):
            for key, value in data.items():
                self._mark_children(doc, value, (*loc, key), (*src, key))
        elif isinstance(data, list):
            for i, value in enumerate(data):
                self._mark_children(doc, value, (*loc, i), (*src, i))

    def locate(self, loc: Loc, message: str, key: bool) -> Problem:
        probe = tuple(loc)
        while probe not in self.origin and probe:
            probe = probe[:-1]
        doc, src = self.origin.get(probe, (None, ()))
        full = (*src, *loc[len(probe) :])
        if doc is None:
            return Problem("<policy>", None, None, message, dotted(loc))
        problem = doc.problem(full, message, key=key)
        # name the policy key (review.window), not the override's own location
        return Problem(problem.file, problem.line, problem.column, message, dotted(loc))


Override = tuple[str, Any, Doc | None, Loc]


def _override_problem(doc: Doc | None, loc: Loc, message: str, key: str, at_key: bool) -> Problem:
    """A problem of an override, at its place in the scenario (or on the command line)."""
    where = doc.problem(loc, "", key=at_key) if doc else None
    return Problem(
        where.file if where else "<command line>",
        where.line if where else None,
        where.column if where else None,
        message,
        key,
    )


def _load_chain(path: Path, sourced: _Sourced, seen: tuple[Path, ...], roots: tuple[Path, ...]) -> None:
    doc = load_file(path)
    if not isinstance(doc.data, dict):
        raise InputError([doc.problem((), "a policy file must be a mapping of keys")])
    parent = doc.data.get("extends")
    if parent is not None:
        if not isinstance(parent, str):
            raise InputError([doc.problem(("extends",), "extends must be a pack name or path")])
        # a built-in pack extends built-in packs only; any other pack stays inside the allowed folders
        inner = (builtin_dir().resolve(),) if _in_builtin(path) else roots
        parent_path, why = _pack_path(parent, path.parent, inner)
        if parent_path is None:
            raise InputError([doc.problem(("extends",), why or _unknown_pack_message(parent))])
        if parent_path.resolve() in seen:
            raise InputError([doc.problem(("extends",), f"extends cycle through {parent!r}")])
        _load_chain(parent_path, sourced, (*seen, parent_path.resolve()), inner)
    problems = [doc.problem(loc, message, key=key) for loc, message, key in dated.written_problems(doc.data)]
    if problems:
        raise InputError(problems)
    sourced.overlay(doc, doc.data)


def _unknown_pack_message(ref: str) -> str:
    names = ", ".join(builtin_packs())
    return f"unknown policy pack {ref!r}: give a built-in pack name ({names}) or a path to a YAML file"


def load_policy(
    ref: str | Path,
    overrides: list[Override] | None = None,
    *,
    base: Path | None = None,
    ref_doc: Doc | None = None,
    ref_loc: Loc = (),
    allow: Sequence[str | Path] = (),
) -> Policy:
    """Load a pack by name or path, apply dotted overrides, and validate it.

    ``overrides`` are ``(dotted_key, value, doc, loc)``: the document and location the override
    was written at (``None`` for the command line), so errors point there.

    Files are confined: a pack named from a scenario (``base`` is the scenario's folder) must lie
    in that folder or below, or in a folder of ``allow`` or of MILESTONE_SIM_ALLOW_PATHS; a pack
    file loaded directly (no ``base``) may extend packs of its own folder tree only; a built-in
    pack extends built-in packs. Symlinks are resolved before the check.
    """
    ref = str(ref)
    if base is None and not _is_name(ref):
        path: Path | None = Path(ref)
        message = None if Path(ref).exists() else _unknown_pack_message(ref)
        roots = allowed_roots(Path(ref).absolute().parent, allow=allow)
    else:
        roots = allowed_roots(base if base is not None else Path.cwd(), allow=allow)
        path, message = _pack_path(ref, base if base is not None else Path.cwd(), roots)
    if path is None or message is not None:
        message = message or _unknown_pack_message(ref)
        if ref_doc is not None:
            raise InputError([ref_doc.problem(ref_loc, message)])
        raise InputError([Problem("<command line>", None, None, message)])
    sourced = _Sourced()
    _load_chain(path, sourced, (path.resolve(),), roots)
    problems: list[Problem] = []
    for key, value, doc, loc in overrides or []:
        parts = tuple(key.split("."))
        probe: Any = sourced.data
        through_list = False
        for part in parts[:-1]:
            if isinstance(probe, list):
                through_list = True
                break
            probe = probe.get(part) if isinstance(probe, dict) else None
        bad = None
        if not all(parts):
            bad = f"malformed override key {key!r}"
        elif parts[0] == "extends":
            bad = "extends cannot be overridden; name the pack to extend in a policy file"
        elif through_list:
            bad = f"{parts[0]} is a list: override it whole, e.g. {parts[0]}=[...]"
        if bad:
            problems.append(_override_problem(doc, loc, bad, key, True))
            continue
        override_doc = doc or Doc("<command line --set>", None)
        written = dated.written_problems(value, parts)
        if written:
            problems.extend(
                _override_problem(doc, (*loc, *at[len(parts) :]), message, dotted(at), at_key)
                for at, message, at_key in written
            )
            continue
        sourced.overlay(override_doc, value, parts, loc)
        sourced.origin[parts] = (override_doc, loc)
    if problems:
        raise InputError(problems)
    digits = CURRENCY_DIGITS.get(str(sourced.data.get("currency", "USD")), 2)
    nodes = dated.find(sourced.data)
    if nodes:
        return _dated_policy(sourced, nodes, digits)
    return _validated(sourced, sourced.data, sourced.locate, digits).with_sources(_sources(sourced))


def _validated(sourced: _Sourced, data: dict[str, Any], locate: schema.Locator, digits: int) -> Policy:
    policy: Policy = schema.validate(Policy, data, locate, context={"digits": digits})
    cross = check_procedures(policy.all_procedures, policy.dormancy, frozenset(policy.procedures))
    if cross:
        raise InputError([locate(loc, message, False) for loc, message in cross])
    return policy


def _dated_policy(sourced: _Sourced, nodes: list[dated.DatedNode], digits: int) -> Policy:
    """Every version of a dated pack validated as a whole pack (a problem is reported at the date
    whose value caused it), the versions attached to each of them."""
    problems: list[Problem] = []
    versions: list[Version] = []
    previous: dict[str, Any] | None = None
    for first in dated.version_dates(nodes):

        def locate(loc: Loc, message: str, key: bool, first: str = first) -> Problem:
            found = sourced.locate(dated.source_loc(nodes, first, loc), message, key)
            return dataclasses.replace(found, key=dotted(loc))

        data = dated.at(sourced.data, nodes, first)
        try:
            policy = _validated(sourced, data, locate, digits)
        except InputError as exc:
            problems.extend(p for p in exc.problems if p not in problems)
            continue
        view = _Sourced()
        view.data = data
        view.origin = _version_origin(sourced.origin, nodes, first)
        policy.with_sources(_sources(view))
        policy._from = first
        flat = {
            k: v for k, v in flat_values(policy.resolved_values()).items() if not k.startswith("calendar.")
        }
        changes = {} if previous is None else _changes(previous, flat)
        previous = flat
        starts = tuple(policy_key(n.loc, sourced.data) or dotted(n.loc) for n in nodes if n.first == first)
        versions.append(Version(first, policy, starts, changes))
    if problems:
        raise InputError(problems)
    base = versions[0].policy
    for v in versions[1:]:
        if _shape(v.policy) != _shape(base):
            raise InputError(
                [
                    Problem(
                        "<policy>",
                        None,
                        None,
                        f"the version from {v.shown} changes which procedures or stages exist: "
                        "dated values may change a stage's window, fee and on_timeout only",
                    )
                ]
            )
    shared = tuple(versions)
    for v in shared:
        v.policy._versions = shared
    return base


def _shape(policy: Policy) -> tuple[Any, ...]:
    """What every version of a dated pack shares: who opens which procedure, each one's stages."""
    stages = {n: [(st.name, st.party) for st in p.stages] for n, p in policy.all_procedures.items()}
    return (
        policy.openers,
        stages,
        policy.milestones.funding,
        policy.milestones.fund_from_balance,
        None if policy.refund is None else policy.refund.to,
    )


def _version_origin(
    origin: dict[Loc, tuple[Doc | None, Loc]], nodes: list[dated.DatedNode], first: str
) -> dict[Loc, tuple[Doc | None, Loc]]:
    """Where each value of one version was written: a dated key's at its chosen date's entry."""
    out: dict[Loc, tuple[Doc | None, Loc]] = {}
    for loc, where in origin.items():
        node = next((n for n in nodes if loc[: len(n.loc)] == n.loc), None)
        if node is None:
            out[loc] = where
            continue
        rest = loc[len(node.loc) :]
        if not rest or rest[0] in node.fixed:
            out.setdefault(loc, where)
            continue
        if rest[0] != "values" or len(rest) < 2 or str(rest[1]) != dated.chosen(node, first):
            continue
        out[(*node.loc, *rest[2:])] = where
    return out


def _changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The dotted values ``new`` changes from ``old`` (a value it no longer has: None)."""
    out = {k: v for k, v in new.items() if old.get(k) != v}
    out.update({k: None for k in old if k not in new})
    return out


def flat_values(data: Any, prefix: str = "") -> dict[str, Any]:
    """Resolved policy data as dotted leaves (a list of named entries by name)."""
    if isinstance(data, dict) and data:
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(flat_values(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(data, list) and data and all(isinstance(e, dict) and "name" in e for e in data):
        head = prefix.removesuffix(".stages")  # a stage is named as policy_key names it
        out = {}
        for e in data:
            out.update(flat_values({k: v for k, v in e.items() if k != "name"}, f"{head}.{e['name']}"))
        return out
    return {prefix: data}


def policy_key(loc: Loc, data: dict[str, Any]) -> str | None:
    """The dotted policy key of a data location, naming list entries by their name:
    ``("fees", 0)`` -> ``fees.freelancer_service``, ``("procedures", "dispute", "stages", 1,
    "window")`` -> ``procedures.dispute.mediation.window``."""
    parts: list[str] = []
    probe: Any = data
    for part in loc:
        if isinstance(part, int):
            entry = probe[part] if isinstance(probe, list) and part < len(probe) else None
            name = entry.get("name") if isinstance(entry, dict) else None
            if not isinstance(name, str):
                return None
            if parts and parts[-1] == "stages":
                parts.pop()
            parts.append(name)
            probe = entry
        else:
            parts.append(str(part))
            probe = probe.get(part) if isinstance(probe, dict) else None
    return ".".join(parts)


def _sources(sourced: _Sourced) -> dict[str, str]:
    """Every policy key's file:line:column (built-in packs as ``rules/NAME.yaml``)."""
    builtin = builtin_dir().resolve()
    out: dict[str, str] = {}
    for loc, (doc, src) in sourced.origin.items():
        if not loc:
            continue
        key = policy_key(loc, sourced.data)
        if key is None:
            continue
        if doc is None or doc.file.startswith("<command line"):
            out[key] = "--set"
            continue
        line, col = doc.where(src)
        name = doc.file
        try:
            path = Path(name).resolve()
            if path.parent == builtin:
                name = f"rules/{path.name}"
        except OSError:
            pass
        out[key] = f"{name}:{line}:{col}"
    return out


def parse_set_option(text: str) -> tuple[str, Any]:
    """Split a ``--set KEY=VALUE`` option; the value is read as a YAML scalar or list."""
    from ..core.yamlio import load_text

    if "=" not in text:
        raise InputError([Problem("<command line>", None, None, f"--set expects KEY=VALUE, got {text!r}")])
    key, _, raw = text.partition("=")
    value = load_text(raw, "<command line --set>").data if raw.strip() else None
    return key.strip(), value
