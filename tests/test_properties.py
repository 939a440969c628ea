"""Property-based tests: random action sequences through the real engine, checked after every step.

A hypothesis ``RuleBasedStateMachine`` drives one or two contracts through
``sim.engine.simulation.Simulation`` (the same ``Simulation.act`` that scripted steps call, and the
engine's own timers) with every action of FORMAT.md section 3, valid or not, several at one instant,
and clock jumps that land exactly on timer deadlines. After every step it checks:

- the ledger's own checks, and balances rebuilt independently from the postings;
- conservation (Σ client = escrow + Σ freelancer + platform) and non-negative balances;
- each contract's escrow account = its milestones' escrow + its credit;
- funded − released − refunded = escrow (FORMAT.md cumulative totals);
- a milestone reaches at most one terminal state and never leaves it;
- a rejected action changes nothing (deep snapshot of contracts, ledger and timer queue) and carries
  one of the rule ids of FORMAT.md;
- an independent reference model (written from FORMAT.md, not from ``sim.machine.contract``) agrees on
  whether each action is accepted, on every contract and milestone state, on every account balance
  and flow total, and on when each automatic event (auto_approve, auto_refund, offer_expired,
  funds_available) must fire.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from sim.engine.simulation import Simulation
from sim.inputs.scenario import ContractSpec, MilestoneSpec
from sim.machine.contract import Action
from sim.money.ledger import FLOWS
from sim.policy import RULE_IDS, Policy, load_policy

# ---------------------------------------------------------------------------------------- policies

#: (pack, dotted overrides) the machine runs under; one test class per configuration
CONFIGS: dict[str, tuple[str, dict]] = {
    "upwork": ("upwork", {}),
    "upwork_fees": ("upwork_fees", {}),
    "upwork_any_funding": (
        "upwork",
        {"milestones.funding": "any_number", "milestones.funding_order": "any"},
    ),
    "upwork_strict": (
        "upwork",
        {
            "release.partial": False,
            "release.bonus": False,
            "refund.dispute": False,
            "review.max_change_requests": 1,
        },
    ),
    "upwork_fees_unlocked": (
        "upwork_fees",
        {
            "milestones.funding": "any_number",
            "milestones.funding_order": "any",
            "milestones.active_locked": ["order"],
        },
    ),
    "upwork_passive": (
        "upwork",
        {
            "review.on_timeout": "nothing",
            "refund.on_timeout": "nothing",
            "offer.expires_after": "3d",
            "offer.refund_on_withdraw": False,
            "milestones.active_locked": ["amount"],
            "milestones.funding": "any_number",
        },
    ),
}

_POLICIES: dict[str, Policy] = {}


def policy_for(name: str) -> Policy:
    """Load (once) the policy of a named configuration."""
    if name not in _POLICIES:
        pack, overrides = CONFIGS[name]
        _POLICIES[name] = load_policy(pack, [(k, v, None, ()) for k, v in overrides.items()])
    return _POLICIES[name]


# ------------------------------------------------------------------------------- reference model
#
# Written from FORMAT.md section 3. Where FORMAT.md is silent the model follows the choices of the
# implementation (noted inline), but it never calls the rules of sim.machine.contract.

#: FORMAT.md: a funding fee is due on every funding, including the extra escrow an edit of a
#: funded milestone's amount pulls from the client (see test_edit_raising_funded_amount_...).
FEES_ON_EDIT_FUNDING = True

HOLDING = {"funded", "submitted", "changes_requested", "refund_requested", "disputed"}
REVIEWABLE = {"funded", "submitted", "changes_requested"}
TERMINAL = {"released", "refunded", "resolved"}
EDITABLE_CONTRACT = ("draft", "offered", "active")
ANSWERABLE_CONTRACT = ("active", "ended")


def half_up_percent(cents: int, percent) -> int:
    """``percent`` % of ``cents``, rounded half up, in integers only."""
    num = cents * int(percent * 100)  # percent has at most two decimals in the packs used here
    return (2 * num + 10000) // 20000


@dataclass
class MMilestone:
    amount: int
    state: str = "planned"
    held: int = 0
    deleted: bool = False
    change_requests: int = 0
    review_deadline: float | None = None


@dataclass
class MRequest:
    targets: tuple[str, ...]
    include_credit: bool
    deadline: float
    disputed: bool = False


@dataclass
class MContract:
    id: str
    client: str
    freelancer: str
    order: list[str]
    ms: dict[str, MMilestone]
    state: str = "draft"
    credit: int = 0
    request: MRequest | None = None
    offer_deadline: float | None = None

    def get(self, mid: str | None) -> MMilestone | None:
        m = self.ms.get(mid) if mid is not None else None
        return None if m is None or m.deleted else m

    def holding(self) -> list[str]:
        return [mid for mid in self.order if self.ms[mid].state in HOLDING]


@dataclass
class Model:
    """An independent, deliberately naive model of contracts, milestones and money."""

    policy: Policy
    contracts: dict[str, MContract] = field(default_factory=dict)
    balances: dict[str, int] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FLOWS, 0))
    holds: list[tuple[float, str, int]] = field(default_factory=list)  # (due, account, net)

    # -------------------------------------------------------------------------------- money
    def move(self, frm: str, to: str, flow: str, amount: int) -> None:
        assert amount >= 0, (frm, to, flow, amount)
        if amount == 0:
            return
        b = self.balances
        b[frm] = b.get(frm, 0) + (amount if frm.startswith("client:") else -amount)
        b[to] = b.get(to, 0) + (-amount if to.startswith("client:") else amount)
        if flow in self.totals:
            self.totals[flow] += amount

    def fees_on(self, on: str, amount: int) -> list[tuple[str, int]]:
        return [
            (fee.payer, half_up_percent(amount, fee.percent))
            for fee in self.policy.fees
            if fee.on == on and half_up_percent(amount, fee.percent)
        ]

    def pay(self, c: MContract, gross: int, flow: str, now: float) -> None:
        """Escrow (release) or client (bonus) to the freelancer, fees to the platform, hold timer."""
        hold = self.policy.hold.after_release
        target = f"freelancer:{c.freelancer}:{'pending' if hold > 0 else 'available'}"
        source = f"escrow:{c.id}" if flow == "released" else f"client:{c.client}"
        self.move(source, target, flow, gross)
        net = gross
        for payer, fee in self.fees_on("release" if flow == "released" else "bonus", gross):
            if payer == "freelancer":
                fee = min(fee, net)
                self.move(target, "platform", "fees", fee)
                net -= fee
            else:
                self.move(f"client:{c.client}", "platform", "fees", fee)
        if hold > 0 and net > 0:
            self.holds.append((now + hold, target, net))

    def fund_money(self, c: MContract, amount: int, fees: bool = True) -> None:
        """Funding ``amount`` more escrow: contract credit first, the rest (plus fees) from the client."""
        used = min(c.credit, amount)
        c.credit -= used
        charge = amount - used
        self.move(f"client:{c.client}", f"escrow:{c.id}", "funded", charge)
        for payer, fee in self.fees_on("funding", charge) if fees else ():
            if payer == "client":  # a freelancer fee on funding is taken on release (engine's choice)
                self.move(f"client:{c.client}", "platform", "fees", fee)

    def refund(self, c: MContract, mids, include_credit: bool, state: str, now: float) -> None:
        for mid in mids:
            m = c.ms[mid]
            self.move(f"escrow:{c.id}", f"client:{c.client}", "refunded", m.held)
            m.held = 0
            m.state = state
            m.review_deadline = None
        if include_credit:
            self.move(f"escrow:{c.id}", f"client:{c.client}", "refunded", c.credit)
            c.credit = 0

    # -------------------------------------------------------------------------------- rules
    def violations(self, cid: str, a: Action) -> set[str]:
        """The rule ids this action breaks (empty: it must be accepted)."""
        p, c, n = self.policy, self.contracts[cid], a.name
        bad: set[str] = set()

        def need(*states: str) -> None:
            if c.state not in states:
                bad.add("invalid_state")

        if n == "offer":
            need("draft")
            if not c.order:
                bad.add("invalid_state")
            if any(c.ms[mid].amount < p.milestones.minimum_amount for mid in c.order):
                bad.add("minimum_amount")
        elif n in ("withdraw_offer", "decline_offer", "accept_offer"):
            need("offered")
        elif n == "end_contract":
            need("active")
        elif n == "fund":
            need("offered", "active")
            m = c.get(a.milestone)
            if m is None or m.state != "planned":
                return bad | {"invalid_state"}
            if c.request is not None:  # not in FORMAT.md; the engine refuses funding mid-request
                bad.add("invalid_state")
            if p.milestones.funding == "one_at_a_time" and c.holding():
                bad.add("one_at_a_time")
            if p.milestones.funding_order == "sequential":
                first = next(mid for mid in c.order if c.ms[mid].state == "planned")
                if first != a.milestone:
                    bad.add("funding_order")
            if m.amount < p.milestones.minimum_amount:
                bad.add("minimum_amount")
        elif n == "submit":
            need("active")
            m = c.get(a.milestone)
            if m is None or m.state not in ("funded", "changes_requested"):
                bad.add("invalid_state")
        elif n == "approve":
            need(*ANSWERABLE_CONTRACT)
            m = c.get(a.milestone)
            if m is None or m.state not in REVIEWABLE:
                return bad | {"invalid_state"}
            amount = m.held if a.amount is None else a.amount
            if amount < m.held and not p.release.partial:
                bad.add("partial_release")
            if amount > m.held and not p.release.bonus:
                bad.add("bonus")
        elif n == "request_changes":
            need("active")  # changes need a freelancer who can still resubmit
            m = c.get(a.milestone)
            if m is None or m.state != "submitted":
                return bad | {"invalid_state"}
            limit = p.review.max_change_requests
            if limit is not None and m.change_requests >= limit:
                bad.add("max_change_requests")
        elif n == "add_milestone":
            need(*EDITABLE_CONTRACT)
            if a.milestone in c.ms:
                bad.add("invalid_state")
            if (a.amount or 0) < p.milestones.minimum_amount:
                bad.add("minimum_amount")
            pos = len(c.order) if a.position is None else a.position
            if not 0 <= pos <= len(c.order):
                bad.add("invalid_state")
            elif "order" in p.milestones.active_locked:
                locked = [i for i, mid in enumerate(c.order) if c.ms[mid].state != "planned"]
                if locked and pos <= locked[-1]:
                    bad.add("active_locked")
        elif n == "edit_milestone":
            need(*EDITABLE_CONTRACT)
            m = c.get(a.milestone)
            if m is None or m.state in TERMINAL:
                return bad | {"invalid_state"}
            locked = p.milestones.active_locked
            if m.state != "planned":
                if a.amount is not None and "amount" in locked:
                    bad.add("active_locked")
                if a.due is not None and "due_date" in locked:
                    bad.add("active_locked")
                if a.amount is not None and m.state != "funded":
                    bad.add("invalid_state")
            if a.amount is not None and a.amount < p.milestones.minimum_amount:
                bad.add("minimum_amount")
        elif n == "delete_milestone":
            need(*EDITABLE_CONTRACT)
            m = c.get(a.milestone)
            if m is None or m.state in TERMINAL:
                return bad | {"invalid_state"}
            if m.state != "planned":
                if "delete" in p.milestones.active_locked:
                    bad.add("active_locked")
                if m.state != "funded":
                    bad.add("invalid_state")
        elif n == "reorder_milestones":
            need(*EDITABLE_CONTRACT)
            order = list(a.order or ())
            if sorted(order) != sorted(c.order):
                return bad | {"invalid_state"}
            if "order" in p.milestones.active_locked:
                for i, mid in enumerate(c.order):
                    if c.ms[mid].state != "planned" and order[i] != mid:
                        bad.add("active_locked")
        elif n == "request_refund":
            need(*ANSWERABLE_CONTRACT)
            if c.request is not None:
                bad.add("invalid_state")
            if a.milestone is not None:
                m = c.get(a.milestone)
                if m is None or m.state not in REVIEWABLE:
                    bad.add("invalid_state")
            elif not c.holding() and c.credit == 0:
                bad.add("invalid_state")
        elif n in ("approve_refund", "dispute"):
            need(*ANSWERABLE_CONTRACT)
            if c.request is None or c.request.disputed:
                bad.add("invalid_state")
            if n == "dispute" and not p.refund.dispute:
                bad.add("dispute")
        elif n == "resolve_dispute":
            req = c.request
            if req is None or not req.disputed:
                return {"invalid_state"}
            if a.milestone is not None and a.milestone not in req.targets:
                bad.add("invalid_state")
            total = self.disputed(c)
            got = (a.release or 0) + (a.refund or 0)
            if got > total:
                bad.add("insufficient_escrow")
            elif got < total:
                bad.add("invalid_state")
        elif n == "respond":  # FORMAT section 7: upwork's answers, named generically
            req = c.request
            if req is None:
                return {"procedure"}
            if req.disputed or a.actor != "freelancer":
                return {"not_your_turn"}
            if a.answer not in ("accept", "decline") or (a.answer == "decline" and not p.refund.dispute):
                bad.add("procedure")
        elif n == "cancel_late":  # the upwork packs have no late cancellation
            need("active")
            if not bad:
                m = c.get(a.milestone)
                if m is None or m.state != "funded":
                    return {"invalid_state"}
                return {"late_cancel"}
        elif n == "cancel_milestone":  # ... nor a freelancer's cancel
            need("active", "ended")
            if not bad:
                m = c.get(a.milestone)
                if m is None or m.state not in ("funded", "submitted", "changes_requested"):
                    return {"invalid_state"}
                return {"freelancer_cancel"}
        elif n == "open":  # upwork's one procedure a party opens is the refund request
            if a.procedure != "escrow_refund" or a.actor != "client":
                return {"procedure"}
        else:
            raise AssertionError(f"the model does not know {n}")
        return bad

    def disputed(self, c: MContract) -> int:
        req = c.request
        assert req is not None
        return sum(c.ms[mid].held for mid in req.targets) + (c.credit if req.include_credit else 0)

    def apply(self, cid: str, a: Action, now: float) -> None:
        """The effects of an accepted action."""
        p, c, n = self.policy, self.contracts[cid], a.name
        if n == "offer":
            c.state = "offered"
            if p.offer.expires_after is not None:
                c.offer_deadline = now + p.offer.expires_after
        elif n in ("withdraw_offer", "decline_offer"):
            c.state = "withdrawn" if n == "withdraw_offer" else "declined"
            c.offer_deadline = None
            flag = p.offer.refund_on_withdraw if n == "withdraw_offer" else p.offer.refund_on_decline
            if flag:
                self.refund(c, c.holding(), True, "refunded", now)
        elif n == "accept_offer":
            c.state = "active"
            c.offer_deadline = None
        elif n == "end_contract":
            c.state = "ended"
        elif n == "fund":
            m = c.ms[a.milestone]
            self.fund_money(c, m.amount)
            m.held = m.amount
            m.state = "funded"
        elif n == "submit":
            m = c.ms[a.milestone]
            m.state = "submitted"
            m.review_deadline = now + p.review.window
        elif n == "approve":
            m = c.ms[a.milestone]
            amount = m.held if a.amount is None else a.amount
            paid = min(amount, m.held)
            self.pay(c, paid, "released", now)
            if amount > m.held:
                self.pay(c, amount - m.held, "bonus", now)
            c.credit += m.held - paid
            m.held = 0
            m.state = "released"
            m.review_deadline = None
        elif n == "request_changes":
            m = c.ms[a.milestone]
            m.state = "changes_requested"
            m.change_requests += 1
            m.review_deadline = None
        elif n == "add_milestone":
            pos = len(c.order) if a.position is None else a.position
            c.ms[a.milestone] = MMilestone(a.amount)
            c.order.insert(pos, a.milestone)
        elif n == "edit_milestone":
            m = c.ms[a.milestone]
            if a.amount is not None:
                if m.state == "funded":
                    if a.amount > m.held:  # see test_edit_raising_funded_amount_charges_funding_fee
                        self.fund_money(c, a.amount - m.held, fees=FEES_ON_EDIT_FUNDING)
                    else:
                        c.credit += m.held - a.amount
                    m.held = a.amount
                m.amount = a.amount
        elif n == "delete_milestone":
            m = c.ms[a.milestone]
            c.credit += m.held
            m.held = 0
            m.deleted = True
            c.order.remove(a.milestone)
        elif n == "reorder_milestones":
            c.order = list(a.order)
        elif n == "request_refund":
            targets = (a.milestone,) if a.milestone is not None else tuple(c.holding())
            for mid in targets:
                c.ms[mid].state = "refund_requested"
                c.ms[mid].review_deadline = None
            c.request = MRequest(targets, a.milestone is None, now + p.refund.response_window)
        elif n == "approve_refund":
            req = c.request
            self.refund(c, req.targets, req.include_credit, "refunded", now)
            c.request = None
        elif n == "dispute":
            c.request.disputed = True
            for mid in c.request.targets:
                c.ms[mid].state = "disputed"
        elif n == "resolve_dispute":
            req = c.request
            left = a.release or 0
            for mid in req.targets:  # FORMAT.md is silent; the release fills milestones in order
                m = c.ms[mid]
                part = min(left, m.held)
                left -= part
                self.pay(c, part, "released", now)
                self.move(f"escrow:{c.id}", f"client:{c.client}", "refunded", m.held - part)
                m.held = 0
                m.state = "resolved"
            if req.include_credit:
                part = min(left, c.credit)
                self.pay(c, part, "released", now)
                self.move(f"escrow:{c.id}", f"client:{c.client}", "refunded", c.credit - part)
                c.credit = 0
            c.request = None
        else:
            raise AssertionError(n)

    # ------------------------------------------------------------------------------- timers
    def automatic(self, cid: str, name: str, mid: str, amount: int, now: float) -> None:
        """Check that an automatic event the engine fired was due now, and apply it."""
        p, c = self.policy, self.contracts[cid]
        if name == "auto_approve":
            m = c.ms[mid]
            assert p.review.on_timeout == "approve", "auto_approve under on_timeout: nothing"
            assert m.state == "submitted", f"auto_approve of {cid}/{mid} while {m.state}"
            assert m.review_deadline == now, f"auto_approve at {now}, window ends {m.review_deadline}"
            self.pay(c, m.held, "released", now)
            m.held = 0
            m.state = "released"
            m.review_deadline = None
        elif name == "auto_refund":
            req = c.request
            assert p.refund.on_timeout == "refund", "auto_refund under on_timeout: nothing"
            assert req is not None and not req.disputed, "auto_refund without a pending request"
            assert req.deadline == now, f"auto_refund at {now}, window ends {req.deadline}"
            self.refund(c, req.targets, req.include_credit, "refunded", now)
            c.request = None
        elif name == "offer_expired":
            assert c.state == "offered" and c.offer_deadline == now, (c.state, c.offer_deadline, now)
            c.state = "expired"
            c.offer_deadline = None
            if p.offer.refund_on_decline:
                self.refund(c, c.holding(), True, "refunded", now)
        elif name == "offer_refund":
            pass  # applied with the withdraw/decline/expiry it follows
        elif name == "funds_available":
            account = f"freelancer:{c.freelancer}:pending"
            assert (now, account, amount) in self.holds, f"unexpected funds_available {amount} at {now}"
            self.holds.remove((now, account, amount))
            self.move(account, f"freelancer:{c.freelancer}:available", "available", amount)
        else:
            raise AssertionError(f"unexpected automatic event {name}")

    def overdue(self, now: float) -> list[str]:
        """Timers the model says must have fired by ``now`` but did not."""
        p, late = self.policy, []
        for c in self.contracts.values():
            for mid, m in c.ms.items():
                if (
                    m.state == "submitted"
                    and p.review.on_timeout == "approve"
                    and m.review_deadline is not None
                    and m.review_deadline <= now
                ):
                    late.append(f"auto_approve {c.id}/{mid} due {m.review_deadline}")
            req = c.request
            if req and not req.disputed and p.refund.on_timeout == "refund" and req.deadline <= now:
                late.append(f"auto_refund {c.id} due {req.deadline}")
            if c.state == "offered" and c.offer_deadline is not None and c.offer_deadline <= now:
                late.append(f"offer_expired {c.id} due {c.offer_deadline}")
        late += [f"funds_available {acc} {amt} due {due}" for due, acc, amt in self.holds if due <= now]
        return late


# ------------------------------------------------------------------------------- the machine

POOL = ("m1", "m2", "m3", "m4", "m5")
AMOUNTS = st.one_of(
    st.sampled_from([50_000, 12_345, 500, 501, 1000, 2500, 10_001, 499, 1]),
    st.integers(min_value=1, max_value=200_000),
)
CLIENT = (
    "offer",
    "withdraw_offer",
    "fund",
    "fund",
    "approve",
    "approve",
    "request_changes",
    "add_milestone",
    "edit_milestone",
    "delete_milestone",
    "reorder_milestones",
    "request_refund",
    "end_contract",
)
FREELANCER = (
    "accept_offer",
    "accept_offer",
    "decline_offer",
    "submit",
    "submit",
    "approve_refund",
    "dispute",
    "end_contract",
)

ANY_ACTION = (
    *(("client", n) for n in CLIENT),
    *(("freelancer", n) for n in FREELANCER),
    ("platform", "resolve_dispute"),
)


def fmt(a: Action) -> str:
    """An action as it would be scripted: ``client: fund {milestone: m1}``."""
    args = {
        k: getattr(a, k) for k in ("milestone", "amount", "due", "position", "order", "release", "refund")
    }
    shown = ", ".join(f"{k}: {v}" for k, v in args.items() if v is not None)
    return f"{a.actor}: {a.name}" + (f" {{{shown}}}" if shown else "")


def snapshot(sim: Simulation):
    """Everything a rejected action must leave untouched."""
    led = sim.ledger
    return (
        copy.deepcopy(sim.contracts),
        dict(led.balances),
        dict(led.kinds),
        dict(led.totals),
        len(led.postings),
        sim.env.pending(),  # no timer scheduled
        len(sim.rec.states),
    )


def rebuild_balances(sim: Simulation) -> dict[str, int]:
    """Balances recomputed from the postings alone (client accounts count what was paid, net)."""
    out = dict.fromkeys(sim.ledger.balances, 0)
    for p in sim.ledger.postings:
        out[p.from_account] += p.amount if p.from_account.startswith("client:") else -p.amount
        out[p.to_account] += -p.amount if p.to_account.startswith("client:") else p.amount
    return out


class EscrowMachine(RuleBasedStateMachine):
    """Random actions on one or two contracts through the engine, against the reference model."""

    def __init__(self) -> None:
        super().__init__()
        self.sim: Simulation | None = None
        self.model: Model | None = None
        self.terminal: dict[tuple[str, str], str] = {}
        self.deleted: set[tuple[str, str]] = set()
        self.steps: list[str] = []  # readable trace for failure messages
        self.cursor = 0

    config = "upwork"  # each test class below fixes one configuration

    @initialize(
        n_contracts=st.integers(1, 2),
        shared_parties=st.booleans(),
        amounts=st.lists(st.lists(AMOUNTS, min_size=1, max_size=3), min_size=2, max_size=2),
        warmup=st.integers(0, 20),
        data=st.data(),
    )
    def setup(self, n_contracts, shared_parties, amounts, warmup, data):
        self.start(self.config, amounts[:n_contracts], shared_parties)
        for _ in range(warmup):  # a head start on the happy path, a day apart
            self._valid_step(data, progress=True)
            if data.draw(st.booleans(), label="next day"):
                self._run_until(self.sim.env.now + 1.0)

    def start(self, config: str, amounts: list[list[int]], shared_parties: bool = False) -> None:
        """Open one contract per list of milestone amounts (ids m1, m2, ...), all in draft."""
        policy = policy_for(config)
        self.sim = Simulation(policy)
        self.model = Model(policy)
        self.cursor = 0  # rows of the engine's event log the model has seen
        for i, row in enumerate(amounts):
            cid = f"c{i + 1}"
            client = "acme" if shared_parties else f"client{i + 1}"
            freelancer = "ana" if shared_parties else f"fl{i + 1}"
            ms = tuple(MilestoneSpec(f"m{j + 1}", amt, float(10 * (j + 1))) for j, amt in enumerate(row))
            self.sim.add_contract(ContractSpec(cid, client, freelancer, ms, ()))
            self.model.contracts[cid] = MContract(
                cid, client, freelancer, [m.id for m in ms], {m.id: MMilestone(m.amount) for m in ms}
            )
            for acc in (f"client:{client}", f"escrow:{cid}", f"freelancer:{freelancer}:pending"):
                self.model.balances.setdefault(acc, 0)
            self.model.balances.setdefault(f"freelancer:{freelancer}:available", 0)
        self.model.balances.setdefault("platform", 0)
        self.steps.append(f"config={config} amounts={amounts} shared_parties={shared_parties}")

    # ---------------------------------------------------------------------------- helpers
    def _pick_contract(self, data) -> str:
        return self.sim.order[data.draw(st.integers(0, len(self.sim.order) - 1), label="contract")]

    def _pick_mid(self, data, cid: str) -> str:
        live = self.model.contracts[cid].order
        return data.draw(st.sampled_from([*live, *live, *POOL]), label="milestone")

    def _build(self, data, cid: str, actor: str, name: str) -> Action:
        c = self.model.contracts[cid]
        kw: dict = {}
        if name in ("fund", "submit", "request_changes", "delete_milestone"):
            kw["milestone"] = self._pick_mid(data, cid)
        elif name == "approve":
            mid = self._pick_mid(data, cid)
            m = c.ms.get(mid)
            held = m.held if m is not None else 0
            kind = data.draw(
                st.sampled_from(["full", "full", "exact", "less", "half", "more", "cent", "any"]),
                label="approve amount",
            )
            amount = {
                "full": None,
                "exact": held or None,
                "less": held - 1 if held > 1 else None,
                "half": held // 2 or None,
                "more": held + 1 if held else 1,
                "cent": 1,
            }.get(kind)
            if kind == "any":
                amount = data.draw(AMOUNTS, label="amount")
            kw.update(milestone=mid, amount=amount)
        elif name == "add_milestone":
            kw["milestone"] = data.draw(st.sampled_from(POOL), label="new id")
            kw["amount"] = data.draw(AMOUNTS, label="amount")
            kw["due"] = data.draw(st.sampled_from([None, 5.0, 25.0]), label="due")
            kw["position"] = data.draw(
                st.one_of(st.none(), st.integers(0, len(c.order) + 1)), label="position"
            )
        elif name == "edit_milestone":
            kw["milestone"] = self._pick_mid(data, cid)
            kw["amount"] = data.draw(st.one_of(st.none(), AMOUNTS), label="amount")
            kw["due"] = data.draw(st.sampled_from([None, 3.0, 40.0]), label="due")
        elif name == "reorder_milestones":
            kind = data.draw(st.sampled_from(["perm", "perm", "perm", "drop", "dup", "extra"]), label="order")
            order = list(data.draw(st.permutations(c.order), label="permutation"))
            if kind == "drop" and order:
                order = order[1:]
            elif kind == "dup" and order:
                order = [*order, order[0]]
            elif kind == "extra":
                order = [*order, data.draw(st.sampled_from(POOL), label="extra id")]
            kw["order"] = tuple(order)
        elif name == "request_refund":
            if data.draw(st.booleans(), label="one milestone"):
                kw["milestone"] = self._pick_mid(data, cid)
        elif name == "resolve_dispute":
            req = c.request
            total = self.model.disputed(c) if req is not None and req.disputed else 0
            if req is not None and data.draw(st.booleans(), label="name milestone"):
                kw["milestone"] = data.draw(st.sampled_from([*req.targets, *POOL]), label="milestone")
            kind = data.draw(
                st.sampled_from(["split", "split", "release", "refund", "over", "under"]), label="split"
            )
            if kind == "split":
                release = data.draw(st.integers(0, total), label="release")
            elif kind == "release":
                release = total
            elif kind == "refund":
                release = 0
            elif kind == "over":
                release = total + 1
            else:
                release = max(total - 2, 0)
            kw["release"] = release
            kw["refund"] = total - release if kind in ("split", "release", "refund") else 1 if total else 0
        return Action(actor, name, **kw)

    def _sync(self) -> None:
        """Feed the model the automatic events the engine fired since it last looked."""
        rows = self.sim.rec.events[self.cursor :]
        self.cursor += len(rows)
        trace = "\n".join(self.steps[-15:])
        for row in rows:
            time, cid, mid, actor, name, outcome = row[:6]
            assert outcome == "accepted" and actor == "platform", f"timer event {row}\n{trace}"
            try:
                self.model.automatic(cid, name, mid, row[7], time)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{trace}") from None
            self.steps.append(f"t={time:g} {cid} (timer) {name} {mid}")

    def _act(self, cid: str, action: Action) -> None:
        """Do one action now, as a scripted step would, and hold the engine to the model."""
        sim, model = self.sim, self.model
        now = sim.env.now
        self._sync()
        late = model.overdue(now)
        trace = "\n".join(self.steps[-15:])
        assert not late, f"an action at t={now:g} ran before timers due by then: {late}\n{trace}"
        self.steps.append(f"t={now:g} {cid} {fmt(action)}")
        expected = model.violations(cid, action)
        before = snapshot(sim)
        n_events = len(sim.rec.events)
        accepted = sim.act(cid, action)
        new = sim.rec.events[n_events:]
        self.cursor = len(sim.rec.events)
        trace = "\n".join(self.steps[-15:])
        if not accepted:
            assert len(new) == 1, new
            row = new[0]
            assert row[5] == "rejected" and row[4] == action.name, row
            rule_id = row[6]
            assert rule_id in RULE_IDS, f"rejected with unknown rule {rule_id!r}: {row}\n{trace}"
            assert expected, f"engine rejected ({rule_id}: {row[8]}) what the model accepts\n{trace}"
            assert rule_id in expected, f"engine rule {rule_id!r}, model expects {expected}\n{trace}"
            after = snapshot(sim)
            for i, (b, a) in enumerate(zip(before, after, strict=True)):
                assert b == a, f"rejected {action.name} changed part {i} of the state\n{trace}"
            return
        assert not expected, f"engine accepted what breaks {expected}\n{trace}"
        assert new and new[0][4] == action.name and new[0][5] == "accepted", new
        assert all(r[5] == "accepted" and r[4] in (action.name, "offer_refund") for r in new), new
        model.apply(cid, action, now)

    def _valid_actions(self, cid: str, progress: bool) -> list[Action]:
        """Actions the model accepts now: ``progress`` ones move money and states forward, the
        others edit the plan or end the offer. They steer runs deep into the state space."""
        c, cands = self.model.contracts[cid], []
        if progress:
            cands += [Action("client", "offer"), Action("freelancer", "accept_offer")]
            cands += [Action("freelancer", "approve_refund"), Action("freelancer", "dispute")]
            for mid in c.order:
                m = c.ms[mid]
                cands += [Action("client", "fund", mid)] * 2 + [Action("freelancer", "submit", mid)] * 4
                cands += [Action("client", "request_changes", mid)] * 2
                if m.state == "submitted":  # mostly approve what was submitted
                    cands.append(Action("client", "approve", mid))
                    if m.held > 1:
                        cands.append(Action("client", "approve", mid, amount=m.held // 3))
                    if m.held:
                        cands.append(Action("client", "approve", mid, amount=m.held + 1234))
                elif m.state == "funded":
                    cands.append(Action("client", "approve", mid, amount=m.held // 2 or None))
                cands.append(Action("client", "request_refund", mid))
            cands.append(Action("client", "request_refund"))
            if c.request is not None and c.request.disputed:
                total = self.model.disputed(c)
                for release in (total, 0, total // 2 + 1 if total else 0):
                    cands.append(
                        Action("platform", "resolve_dispute", release=release, refund=total - release)
                    )
        else:
            cands += [Action("client", "withdraw_offer"), Action("freelancer", "decline_offer")]
            cands += [Action("client", "end_contract"), Action("freelancer", "end_contract")]
            for mid in c.order:
                m = c.ms[mid]
                cands.append(Action("client", "edit_milestone", mid, amount=m.amount + 700))
                if m.held > 2000:
                    cands.append(Action("client", "edit_milestone", mid, amount=m.held - 999))
                cands.append(Action("client", "edit_milestone", mid, due=33.0))
                cands.append(Action("client", "delete_milestone", mid))
            free = [mid for mid in POOL if mid not in c.ms]
            if free:
                cands.append(Action("client", "add_milestone", free[0], amount=25_000, position=None))
            if len(c.order) > 1:
                cands.append(Action("client", "reorder_milestones", order=tuple(reversed(c.order))))
        return [a for a in cands if not self.model.violations(cid, a)]

    def _valid_step(self, data, progress: bool) -> None:
        cid = self._pick_contract(data)
        cands = self._valid_actions(cid, progress)
        if cands:
            self._act(cid, data.draw(st.sampled_from(cands), label="valid action"))

    # ---------------------------------------------------------------------------- rules
    @rule(data=st.data())
    def progress_step(self, data):
        """One action the model says is valid and moves the contract on."""
        self._valid_step(data, progress=True)

    @rule(data=st.data())
    def progress_burst(self, data):
        """A few valid actions at the same instant."""
        for _ in range(data.draw(st.integers(1, 6), label="how many")):
            self._valid_step(data, progress=True)

    @rule(data=st.data())
    def plan_step(self, data):
        """A valid edit of the plan, or an offer/contract ended."""
        self._valid_step(data, progress=False)

    @rule(data=st.data(), step=st.sampled_from(ANY_ACTION))
    def any_action(self, data, step):
        """Any action of FORMAT.md section 3 with random arguments, valid or not."""
        actor, name = step
        cid = self._pick_contract(data)
        self._act(cid, self._build(data, cid, actor, name))

    @rule(data=st.data())
    def same_instant_burst(self, data):
        """Several actions at one instant, e.g. a fund and a submit and an approve together."""
        cid = self._pick_contract(data)
        for name, actor in data.draw(
            st.lists(
                st.sampled_from(
                    [
                        ("fund", "client"),
                        ("submit", "freelancer"),
                        ("approve", "client"),
                        ("request_refund", "client"),
                        ("approve_refund", "freelancer"),
                        ("dispute", "freelancer"),
                        ("end_contract", "freelancer"),
                        ("accept_offer", "freelancer"),
                    ]
                ),
                min_size=2,
                max_size=4,
            ),
            label="burst",
        ):
            self._act(cid, self._build(data, cid, actor, name))

    @rule(dt=st.sampled_from([0.5, 1.0, 2.0, 3.0, 5.0, 7.0, 14.0, 30.0]))
    def advance(self, dt):
        self._run_until(self.sim.env.now + dt)

    @rule(data=st.data(), delay=st.sampled_from([0.5, 1.0, 5.0, 7.0, 14.0]), valid=st.booleans())
    def schedule_action(self, data, delay, valid):
        """Schedule an action for later, as a script does at t = 0: at its time, timers due then
        (even ones started after it was scheduled) must fire first."""
        cid = self._pick_contract(data)
        cands = self._valid_actions(cid, progress=True) if valid else []
        if cands:
            action = data.draw(st.sampled_from(cands), label="scheduled action")
        else:
            actor, name = data.draw(st.sampled_from(ANY_ACTION), label="scheduled step")
            action = self._build(data, cid, actor, name)
        self.steps.append(f"t={self.sim.env.now:g} schedule {cid} {fmt(action)} in {delay:g}d")
        self.sim.at(delay, lambda _ev, c=cid, a=action: self._act(c, a))

    @rule(data=st.data())
    def schedule_on_window(self, data):
        """Schedule an action exactly one policy window ahead, before the timer it will race is
        even started (a submit, refund request or offer at this instant starts it)."""
        p = self.sim.policy
        windows = [p.review.window, p.refund.response_window]
        windows += [w for w in (p.offer.expires_after, p.hold.after_release) if w]
        delay = data.draw(st.sampled_from(windows), label="window")
        cid = self._pick_contract(data)
        mids = [*self.model.contracts[cid].order, "m1"]
        mid = data.draw(st.sampled_from(mids), label="milestone")
        action = data.draw(
            st.sampled_from(
                [
                    Action("client", "approve", mid),
                    Action("client", "request_changes", mid),
                    Action("client", "request_refund", mid),
                    Action("client", "request_refund"),
                    Action("freelancer", "approve_refund"),
                    Action("freelancer", "dispute"),
                    Action("freelancer", "accept_offer"),
                    Action("client", "withdraw_offer"),
                    Action("client", "fund", mid),
                    Action("freelancer", "submit", mid),
                ]
            ),
            label="racing action",
        )
        self.steps.append(f"t={self.sim.env.now:g} schedule {cid} {fmt(action)} in {delay:g}d")
        self.sim.at(delay, lambda _ev, c=cid, a=action: self._act(c, a))

    @rule(dt=st.sampled_from([7.0, 14.0, 21.0, 30.0]))
    def wait_long(self, dt):
        """Long silences: review windows, refund windows and holds run out."""
        self._run_until(self.sim.env.now + dt)

    @rule()
    def advance_to_next_timer(self):
        """Jump exactly onto the next live timer: it fires before anything done at that instant."""
        for _ in range(6):  # skip stale timers (they fire and do nothing)
            t = self.sim.env.peek()
            if not math.isfinite(t):
                return
            n_events = len(self.sim.rec.events)
            self._run_until(t)
            if len(self.sim.rec.events) > n_events:
                return

    def _run_until(self, t: float) -> None:
        """Run the engine's clock to ``t`` (timers and scheduled actions fire), then all of ``t``."""
        sim = self.sim
        self.steps.append(f"advance to t={t:g}")
        if t > sim.env.now:
            sim.env.run(until=t)
        while sim.env.peek() == t:  # actions scheduled at exactly t run after its timers
            sim.env.step()
        assert sim.env.now == t
        self._sync()
        late = self.model.overdue(t)
        assert not late, f"timers that should have fired by t={t:g}: {late}\n" + "\n".join(self.steps[-15:])

    # ---------------------------------------------------------------------------- invariants
    @invariant()
    def ledger_conserves_money(self):
        if self.sim is None:
            return
        led = self.sim.ledger
        led.check()
        rebuilt = rebuild_balances(self.sim)
        assert rebuilt == led.balances, "balances differ from the postings replayed"
        assert all(v >= 0 for v in rebuilt.values()), rebuilt
        clients = sum(v for k, v in rebuilt.items() if k.startswith("client:"))
        held = sum(v for k, v in rebuilt.items() if not k.startswith("client:"))
        assert clients == held, f"conservation: clients paid {clients}, accounts hold {held}"
        escrow = sum(v for k, v in rebuilt.items() if k.startswith("escrow:"))
        tot = led.totals
        assert tot["funded"] - tot["released"] - tot["refunded"] == escrow, (tot, escrow)
        platform = rebuilt.get("platform", 0)
        assert tot["fees"] == platform, (tot, platform)

    @invariant()
    def escrow_matches_milestones(self):
        if self.sim is None:
            return
        for cid, c in self.sim.contracts.items():
            assert c.credit >= 0
            assert c.escrow() == self.sim.ledger.balances[c.escrow_account] >= 0
            for m in c.milestones:
                holds = not m.deleted and m.state in HOLDING
                assert (m.escrowed > 0) == holds, f"{cid}/{m.id} {m.state} holds {m.escrowed}"

    @invariant()
    def terminal_states_are_final(self):
        if self.sim is None:
            return
        for cid, c in self.sim.contracts.items():
            for m in c.milestones:
                key = (cid, m.id)
                if key in self.deleted:
                    assert m.deleted, f"{cid}/{m.id} came back from deletion"
                if m.deleted:
                    self.deleted.add(key)
                if key in self.terminal:
                    assert m.state == self.terminal[key], f"{cid}/{m.id} left {self.terminal[key]}"
                elif m.state in TERMINAL:
                    self.terminal[key] = m.state

    @invariant()
    def rejected_rows_name_a_rule(self):
        if self.sim is None:
            return
        for row in self.sim.rec.events:
            if row[5] == "rejected":
                assert row[6] in RULE_IDS, row
            else:
                assert row[5] == "accepted" and row[6] == "", row

    @invariant()
    def engine_agrees_with_model(self):
        if self.sim is None:
            return
        sim, model = self.sim, self.model
        trace = "\n".join(self.steps[-15:])
        for cid, c in sim.contracts.items():
            mc = model.contracts[cid]
            assert c.state == mc.state, f"{cid}: engine {c.state}, model {mc.state}\n{trace}"
            assert [m.id for m in c.milestones if not m.deleted] == mc.order, trace
            assert c.credit == mc.credit, f"{cid} credit: engine {c.credit}, model {mc.credit}\n{trace}"
            for m in c.milestones:
                mm = mc.ms[m.id]
                got = (m.state, m.escrowed, m.deleted, m.amount)
                want = (mm.state, mm.held, mm.deleted, mm.amount)
                assert got == want, f"{cid}/{m.id}: engine {got}, model {want}\n{trace}"
            req, mreq = c.refund_request, mc.request
            assert (req is None) == (mreq is None), trace
            if req is not None:
                assert (req.milestones, req.include_credit, req.disputed) == (
                    mreq.targets,
                    mreq.include_credit,
                    mreq.disputed,
                ), trace
        balances = {k: v for k, v in sim.ledger.balances.items() if v or k in model.balances}
        want = {k: v for k, v in model.balances.items() if v or k in balances}
        assert balances == want, f"balances: engine {balances}, model {want}\n{trace}"
        assert sim.ledger.totals == model.totals, (
            f"totals: engine {sim.ledger.totals}, model {model.totals}\n{trace}"
        )

    @invariant()
    def milestone_rows_add_up_to_the_totals(self):
        """The milestones table (deleted milestones and (credit) rows included) sums to the ledger."""
        if self.sim is None:
            return
        sums = dict.fromkeys(FLOWS, 0)
        for c in self.sim.contracts.values():
            for m in c.milestones:
                for flow in FLOWS:
                    sums[flow] += getattr(m, flow)
            for flow, amount in c.credit_flows.items():
                sums[flow] += amount
        trace = "\n".join(self.steps[-15:])
        assert sums == self.sim.ledger.totals, f"rows {sums}, ledger {self.sim.ledger.totals}\n{trace}"


SETTINGS = settings(
    max_examples=35,  # per configuration: 6 x 35 ~ 200 examples in all
    stateful_step_count=40,
    derandomize=True,  # reproducible in CI; the database is off for the same reason
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _machine_test(config: str):
    machine = type(f"EscrowMachine_{config}", (EscrowMachine,), {"config": config})
    case = machine.TestCase
    case.settings = SETTINGS
    case.__name__ = f"TestEscrowMachine_{config}"
    return case


TestUpwork = _machine_test("upwork")
TestUpworkFees = _machine_test("upwork_fees")
TestUpworkAnyFunding = _machine_test("upwork_any_funding")
TestUpworkStrict = _machine_test("upwork_strict")
TestUpworkFeesUnlocked = _machine_test("upwork_fees_unlocked")
TestUpworkPassive = _machine_test("upwork_passive")


def test_every_config_loads():
    """The machine's configurations are valid policies (and cover fees, a hold, and overrides)."""
    loaded = {name: policy_for(name) for name in CONFIGS}
    assert loaded["upwork_fees"].fees and loaded["upwork_fees"].hold.after_release > 0
    assert not loaded["upwork"].fees and loaded["upwork"].hold.after_release == 0
    assert loaded["upwork_strict"].release.partial is False


@pytest.mark.parametrize("percent,cents,fee", [(10, 5, 1), (10, 4, 0), (5, 10, 1), (5, 9, 0), (10, 15, 2)])
def test_model_rounds_fees_half_up(percent, cents, fee):
    from decimal import Decimal

    assert half_up_percent(cents, Decimal(percent)) == fee


# ------------------------------------------------------------------ scripted runs of the machine


def drive(config: str, amounts: list[list[int]], steps: list, shared: bool = False) -> EscrowMachine:
    """Play ``steps`` through the machine: ``(contract, Action)`` acts now, a number runs the clock
    to that time, ``("at", t, contract, Action)`` schedules an action the way a script does.
    Every invariant is checked after every step."""
    m = EscrowMachine()
    m.start(config, amounts, shared)
    checks = [
        m.ledger_conserves_money,
        m.escrow_matches_milestones,
        m.terminal_states_are_final,
        m.rejected_rows_name_a_rule,
        m.engine_agrees_with_model,
    ]
    for step in steps:
        if isinstance(step, (int, float)):
            m._run_until(float(step))
        elif step[0] == "at":
            _, t, cid, action = step
            m.sim.at(t - m.sim.env.now, lambda _ev, c=cid, a=action: m._act(c, a))
        else:
            m._act(*step)
        for check in checks:
            check()
    return m


# C(...) and F(...) read like script steps: client and freelancer actions


def C(name: str, milestone: str | None = None, **kw) -> Action:
    return Action("client", name, milestone, **kw)


def F(name: str, milestone: str | None = None, **kw) -> Action:
    return Action("freelancer", name, milestone, **kw)


OPEN = [("c1", C("offer")), ("c1", C("fund", "m1")), ("c1", F("accept_offer"))]

RULE_CASES = {
    "minimum_amount": ("upwork", [[499, 50_000]], [("c1", C("offer"))]),
    "one_at_a_time": ("upwork", [[50_000, 50_000]], [*OPEN, ("c1", C("fund", "m2"))]),
    "funding_order": ("upwork", [[50_000, 50_000]], [("c1", C("offer")), ("c1", C("fund", "m2"))]),
    "active_locked": ("upwork", [[50_000]], [*OPEN, ("c1", C("edit_milestone", "m1", amount=60_000))]),
    "partial_release": ("upwork_strict", [[50_000]], [*OPEN, ("c1", C("approve", "m1", amount=10_000))]),
    "bonus": ("upwork_strict", [[50_000]], [*OPEN, ("c1", C("approve", "m1", amount=60_000))]),
    "dispute": ("upwork_strict", [[50_000]], [*OPEN, ("c1", C("request_refund")), ("c1", F("dispute"))]),
    "max_change_requests": (
        "upwork_strict",
        [[50_000]],
        [*OPEN, *[("c1", a) for a in (F("submit", "m1"), C("request_changes", "m1"))] * 2],
    ),
    "invalid_state": ("upwork", [[50_000]], [("c1", F("accept_offer"))]),
    "insufficient_escrow": (
        "upwork",
        [[50_000]],
        [
            *OPEN,
            ("c1", C("request_refund", "m1")),
            ("c1", F("dispute")),
            ("c1", Action("platform", "resolve_dispute", release=40_000, refund=10_001)),
        ],
    ),
    # FORMAT section 7: procedures
    "procedure": ("upwork", [[50_000]], [*OPEN, ("c1", C("open", procedure="arbitration"))]),
    "late_cancel": ("upwork", [[50_000]], [*OPEN, ("c1", C("cancel_late", "m1"))]),
    "freelancer_cancel": ("upwork", [[50_000]], [*OPEN, ("c1", F("cancel_milestone", "m1"))]),
    "not_your_turn": (
        "upwork",
        [[50_000]],
        [*OPEN, ("c1", C("request_refund")), ("c1", C("respond", answer="accept"))],
    ),
}


@pytest.mark.parametrize("rule_id", sorted(RULE_CASES))
def test_each_rule_id_is_reachable_and_changes_nothing(rule_id):
    """One rejection per rule id of FORMAT.md; drive() checks that it changed nothing."""
    # review_extension, revisions_first, early_payout, reversal, due_extension (issue 10) are
    # exercised in test_contract's REJECTIONS;
    # the reference model here does not know extend_review or the peopleperhour pack yet
    new = {"review_extension", "revisions_first", "early_payout", "reversal", "due_extension"}
    assert set(RULE_CASES) == set(RULE_IDS) - new
    config, amounts, steps = RULE_CASES[rule_id]
    m = drive(config, amounts, steps)
    last = m.sim.rec.events[-1]
    assert (last[4], last[5], last[6]) == (steps[-1][1].name, "rejected", rule_id), last


RACES = {
    # window: what starts the timer at t = 1, the action scheduled (before that) for the end
    "review window": ("upwork", [F("submit", "m1")], C("approve", "m1", amount=100), "auto_approve"),
    "refund window": ("upwork", [C("request_refund")], F("dispute"), "auto_refund"),
    "offer expiry": ("upwork_passive", [C("offer"), C("fund", "m1")], F("accept_offer"), "offer_expired"),
    "security hold": ("upwork_fees", [F("submit", "m1"), C("approve", "m1")], F("end_contract"), None),
}


@pytest.mark.parametrize("race", sorted(RACES))
def test_timer_ending_at_t_fires_before_an_action_at_t_scheduled_earlier(race):
    """FORMAT.md: a timer that ends at T fires before scripted actions at T, although the script
    scheduled its action at t = 0, long before the timer started."""
    config, starters, action, winner = RACES[race]
    p = policy_for(config)
    window = {
        "review window": p.review.window,
        "refund window": p.refund.response_window,
        "offer expiry": p.offer.expires_after,
        "security hold": p.hold.after_release,
    }[race]
    opening = [] if race == "offer expiry" else OPEN
    steps = [("at", 1.0 + window, "c1", action), *opening, 1.0, *[("c1", a) for a in starters]]
    m = drive(config, [[50_000]], [*steps, 1.0 + window, 1.0 + window + 30])
    rows = [r for r in m.sim.rec.events if r[0] == 1.0 + window and r[4] != "offer_refund"]
    if winner is not None:
        assert [(r[4], r[5]) for r in rows] == [(winner, "accepted"), (action.name, "rejected")], rows
    else:  # the hold ends (funds_available) before the freelancer's action at the same instant
        assert [r[4] for r in rows] == ["funds_available", "end_contract"], rows


def test_edit_raising_funded_amount_charges_funding_fee(write):
    """Funding 100.00 and raising it to 200.00 funds 200.00 in all; under upwork_fees the client's
    5% marketplace fee on funding is then 10.00, as if 200.00 had been funded at once."""
    import sim

    path = write(
        "edit_fee.yaml",
        """\
scenario: raising a funded milestone's amount is more funding, and pays the funding fee
policy: upwork_fees
policy_overrides: {milestones.active_locked: []}
contracts:
  - id: c1
    client: acme
    freelancer: ana
    milestones:
      - {id: m1, amount: 100.00}
    script:
      - {at: 0d, client: offer}
      - {at: 0d, client: fund, milestone: m1}
      - {at: 0d, client: edit_milestone, milestone: m1, amount: 200.00}
until: 1d
""",
    )
    result = sim.run(path)
    assert result.totals["funded"] == 20_000
    assert result.totals["fees"] == 1_000


def test_window_end_at_an_hour_fires_before_the_action_at_that_hour(write):
    import sim

    path = write(
        "window_end_hours.yaml",
        """\
scenario: the review window ends at 22d2h, when the client asks for changes
policy: upwork
contracts:
  - id: c1
    client: acme
    freelancer: ana
    milestones:
      - {id: m1, amount: 500.00}
    script:
      - {at: 0d, client: offer}
      - {at: 0d, client: fund, milestone: m1}
      - {at: 0d, freelancer: accept_offer}
      - {at: 8d2h, freelancer: submit, milestone: m1}
      - {at: 22d2h, client: request_changes, milestone: m1}
""",
    )
    events = sim.run(path).events
    rows = events[events["action"].isin(["auto_approve", "request_changes"])]
    assert list(zip(rows["action"], rows["outcome"], strict=True)) == [
        ("auto_approve", "accepted"),
        ("request_changes", "rejected"),
    ]
