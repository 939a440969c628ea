"""The SimPy engine: time, timers, scripted and sampled actors, and the record of what happened.

The engine decides only *when*: it schedules scripted steps, timers the state machine asks for,
and the reactions of sampled actors; every *what* is decided by ``contract.apply``. Events are
plain SimPy events with a callback (no Process per action, no AnyOf races): timers carry a
generation and the state machine ignores a stale one.

Ordering at equal times: timers run at URGENT priority, actions at NORMAL, so a timer that ends
at T fires before scripted actions at T; actions at the same time run in the order they were
scheduled (file order for scripts).
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import simpy

from ..core.units import format_money
from ..inputs.scenario import ContractSpec
from ..machine.contract import (
    MILESTONE_STATES,
    OUTCOMES,
    Action,
    Contract,
    Emitted,
    Milestone,
    Outcome,
    decided_by,
    machine_for,
    timer_is_stale,
)
from ..money.ledger import FLOWS, KINDS, OUT_OF_POCKET, Ledger
from ..policy import dated
from ..policy.calendar import Clock
from ..policy.model import Policy
from . import collector
from .environment import LATE, NORMAL, URGENT, Environment, Scheduled

EVENT_COLUMNS = (
    "time",
    "contract",
    "milestone",
    "actor",
    "action",
    "outcome",
    "rule",
    "amount",
    "message",
    "state",
    "contract_state",
    "policy_keys",
    "source",
    "cause",
    "args",
)

#: the platform's own decisions, which a script gives (the other platform rows are automatic)
PLATFORM_ACTIONS = frozenset({"resolve_dispute", "reverse_release"})


def action_args(action: Action, digits: int) -> str:
    """A party action's arguments beyond its milestone, as ``events.csv`` writes them in ``args``:
    ``key=value`` joined by ``;`` (money in major units, ``due`` in days, ``order`` space-separated),
    so that an audit can play the row again (FORMAT section 10). Automatic actions give ``""``."""
    if action.actor == "platform" and action.name not in PLATFORM_ACTIONS:
        return ""
    parts = []
    if action.amount is not None:
        parts.append(f"amount={format_money(action.amount, digits)}")
    if action.due is not None:
        parts.append(f"due={float(f'{action.due:.9f}'):g}")
    if action.position is not None:
        parts.append(f"position={action.position}")
    if action.order is not None:
        parts.append(f"order={' '.join(action.order)}")
    if action.release is not None:
        parts.append(f"release={format_money(action.release, digits)}")
    if action.refund is not None:
        parts.append(f"refund={format_money(action.refund, digits)}")
    if action.answer is not None:
        parts.append(f"answer={action.answer}")
    if action.procedure is not None:
        parts.append(f"procedure={action.procedure}")
    return ";".join(parts)


class TimerDue(Scheduled):
    """A policy timer in the queue: which contract and action, so its staleness can be read, and
    the event that started it. Its callback is the simulation's one timer handler (no closure is
    made per timer): SimPy calls it with the entry itself."""

    __slots__ = ("action", "cause", "cid")

    def __init__(
        self, callback: Callable[[Any], None], cid: str, action: Action, cause: tuple[str, float] | None
    ) -> None:
        super().__init__(callback)
        self.cid = cid
        self.action = action
        self.cause = cause


class ActionDue(Scheduled):
    """A party's action scheduled by a behaviour (:meth:`Simulation.act_in`): the contract, the
    action and a condition on the contract read when it comes due. Like :class:`TimerDue`, its
    callback is one shared handler, so scheduling an action allocates this entry and nothing else."""

    __slots__ = ("action", "check", "cid")

    def __init__(
        self,
        callback: Callable[[Any], None],
        cid: str,
        action: Action,
        check: Callable[[Contract], bool] | None,
    ) -> None:
        super().__init__(callback)
        self.cid = cid
        self.action = action
        self.check = check


#: the ``state`` column of the milestones table: a milestone's state, ``deleted`` for a deleted
#: milestone, and ``credit`` for a contract's ``(credit)`` row
ROW_STATES = (*MILESTONE_STATES, "deleted", "credit")
#: the ``outcome`` column of the milestones table (see :func:`final_outcome`)
ROW_OUTCOMES = (*OUTCOMES, "cancelled", "never_funded", "deleted", "credit")
#: outcomes of milestones that did not close: still in flight, or that will never be funded
NOT_CLOSED = ("open", "cancelled", "never_funded")
MILESTONE_STATE_CODES = {name: i for i, name in enumerate(ROW_STATES)}
OUTCOME_CODES = {name: i for i, name in enumerate(ROW_OUTCOMES)}
#: the milestone id of a contract's row for money that no milestone holds (contract credit)
CREDIT_ROW = "(credit)"


def final_outcome(m: Milestone, c: Contract) -> str:
    """A milestone's outcome for the milestones table, read at the end of the run.

    A closed milestone keeps the outcome it closed with (``approved``, ``auto_approved``,
    ``refunded``, ``auto_refunded``, ``resolved``). One that did not close is:

    - ``open``: still in flight. It holds escrow or is in review (any state but ``planned``), or
      it is planned in a contract that is ``offered`` or ``active`` and could still fund it;
    - ``cancelled``: planned in a contract whose offer was declined, withdrawn or expired;
    - ``never_funded``: planned in a contract that ``ended``, or that is still a ``draft`` (the
      offer was never sent, or the policy rejected it).

    A deleted milestone is ``deleted``.
    """
    if m.deleted:
        return "deleted"
    if m.outcome != "open" or m.state != "planned" or c.state in ("offered", "active"):
        return m.outcome
    if c.state in ("declined", "withdrawn", "expired"):
        return "cancelled"
    return "never_funded"


class RetiredMilestones:
    """Milestones of finished contracts, column by column in compact arrays (streaming runs)."""

    FLOAT = ("due", "funded_at", "first_submitted_at", "closed_at")
    INT = (
        "contract_index",
        "amount",
        "funded",
        "released",
        "refunded",
        "bonus",
        "fees",
        "change_requests",
        "submissions",
    )
    CODE = ("state", "outcome", "late")

    def __init__(self) -> None:
        self.contract: list[str] = []
        self.milestone: list[str] = []
        self.cols: dict[str, array] = {n: array("d") for n in self.FLOAT}
        self.cols.update({n: array("q") for n in self.INT})
        self.cols.update({n: array("b") for n in self.CODE})

    def __len__(self) -> int:
        return len(self.contract)

    def add(self, index: int, c: Contract) -> None:
        """Keep the final state of every milestone of a contract, deleted ones included.

        Money that no milestone holds (contract credit refunded, or released in a dispute) goes in
        one more row, milestone ``(credit)``, so that the table's flows add up to the ledger's.
        """
        cols, nan = self.cols, math.nan
        for m in c.milestones:
            self.contract.append(c.id)
            self.milestone.append(m.id)
            cols["contract_index"].append(index)
            cols["amount"].append(m.amount)
            cols["due"].append(nan if m.due is None else m.due)
            cols["funded_at"].append(nan if m.funded_at is None else m.funded_at)
            cols["first_submitted_at"].append(nan if m.first_submitted_at is None else m.first_submitted_at)
            cols["closed_at"].append(nan if m.closed_at is None else m.closed_at)
            cols["funded"].append(m.funded)
            cols["released"].append(m.released)
            cols["refunded"].append(m.refunded)
            cols["bonus"].append(m.bonus)
            cols["fees"].append(m.fees)
            cols["change_requests"].append(m.change_requests)
            cols["submissions"].append(m.submissions)
            cols["state"].append(MILESTONE_STATE_CODES["deleted" if m.deleted else m.state])
            cols["outcome"].append(OUTCOME_CODES[final_outcome(m, c)])
            late = (
                m.due is not None and m.first_submitted_at is not None and m.first_submitted_at > m.due + 1e-9
            )
            cols["late"].append(late)
        flows = c.credit_flows
        if any(flows.values()):
            self.contract.append(c.id)
            self.milestone.append(CREDIT_ROW)
            cols["contract_index"].append(index)
            for name in ("amount", "change_requests", "submissions"):
                cols[name].append(0)
            for name in self.FLOAT:
                cols[name].append(nan)
            for name in ("funded", "released", "refunded", "bonus", "fees"):
                cols[name].append(flows.get(name, 0))
            cols["state"].append(MILESTONE_STATE_CODES["credit"])
            cols["outcome"].append(OUTCOME_CODES["credit"])
            cols["late"].append(False)


FINISHED = frozenset({"withdrawn", "declined", "expired", "ended"})
#: timers that still move money after everything else is settled: a hold ending, a refund arriving
_HOLDS = frozenset({"funds_available", "refund_arrives"})

#: a contract may take at most this many actions at one simulated instant: more means its sampled
#: behaviour loops without time passing (e.g. a review delay and a rework time both 0)
MAX_ACTIONS_PER_INSTANT = 10_000
#: with ``events="none"`` at most this many balance snapshots are taken over a horizon
MAX_SNAPSHOTS = 10_000


class NoProgress(RuntimeError):
    """A contract kept acting at one instant: its behaviour loops without time passing.

    ``actions`` counts the actions of the loop by name, so the caller (which knows the scenario
    file) can say which behaviour loops.
    """

    def __init__(self, contract: str, time: float, actions: dict[str, int]) -> None:
        names = ", ".join(f"{k} x{v}" for k, v in sorted(actions.items(), key=lambda kv: -kv[1]))
        super().__init__(
            f"contract {contract} took more than {MAX_ACTIONS_PER_INSTANT:,} actions at t={time:g}d "
            f"without time passing ({names})"
        )
        self.contract = contract
        self.time = time
        self.actions = actions


def snapshot_interval(until: float | None) -> float:
    """Days between balance snapshots (``events="none"``): daily, or fewer over a long horizon."""
    if until is None or until <= MAX_SNAPSHOTS:
        return 1.0
    return until / MAX_SNAPSHOTS


class Behaviour(Protocol):
    """A sampled actor's reactions: called after every accepted event of its contract."""

    def on_event(self, sim: Simulation, contract: Contract, event: Emitted) -> None: ...


@dataclass
class Recorder:
    """What a run keeps: the event log (optional), balance rows, and running aggregates."""

    keep_events: bool = True
    events: list[tuple] = field(default_factory=list)
    balances: list[tuple] = field(default_factory=list)
    rejected: int = 0
    escrow_area: float = 0.0
    escrow_max: int = 0
    escrow_last_t: float = 0.0
    escrow_now: int = 0
    states: list[tuple] = field(default_factory=list)  # (time, contract, milestone, state)
    #: a dated pack's version that decided each event row (empty for an undated pack)
    versions: list[int] = field(default_factory=list)
    #: the events.csv row of each ledger posting (what explains it)
    posting_events: list[int] = field(default_factory=list)
    last_state: dict[tuple[str, str], str] = field(default_factory=dict)
    #: every declared milestone of every contract as it was opened (``contracts.csv``)
    contracts: list[tuple] = field(default_factory=list)


class Simulation:
    """One replication of a scenario: an environment, a ledger, contracts and a recorder."""

    def __init__(
        self,
        policy: Policy,
        *,
        until: float | None = None,
        keep_events: bool = True,
        balance_every: float | None = None,
        start: dt.date | None = None,
    ) -> None:
        self.policy = policy
        #: the policy's compiled transition table: every action is decided by it
        self._machine = machine_for(policy)
        self._decide = self._machine.decide
        #: a dated pack's versions: when each is in force (days from t = 0), and its machine
        self.versions = policy.versions
        self._version_t: list[float] = []
        self._machines: list[Any] = []
        self._version_i = 0  # the version of the decision being recorded
        if self.versions:
            if start is None:
                raise ValueError("a dated policy needs the scenario's start date")
            self._version_t = [
                -math.inf if v.first == dated.BEGIN else float((dated.parse_date(v.first) - start).days)
                for v in self.versions
            ]
            self._machines = [machine_for(v.policy) for v in self.versions]
            self._decide = self._decide_dated
        self._on_timer = self._timer_fired  # one bound method for every timer's entry
        #: the scenario's start date on the policy's calendar: turns ``bd`` windows into days
        self.clock = Clock(policy.calendar.calendar(), start)
        #: the billings of each (client, freelancer) pair, when a fee is tiered by them
        self._pair_tiers = any(
            f.pair_based for p in [policy, *(v.policy for v in self.versions)] for f in p.fees
        )
        #: refunds go to the client's platform balance, not back to what they paid with
        self._to_balance = policy.refund is not None and policy.refund.to == "platform_balance"
        self._pairs: dict[tuple[str, str], list[int]] = {}
        self.env = Environment()
        self.ledger = Ledger(keep_postings=keep_events)
        self.contracts: dict[str, Contract] = {}  # live contracts (finished ones retire when streaming)
        self.order: list[str] = []  # every contract id, in arrival order
        self.index: dict[str, int] = {}
        self.retire = not keep_events
        self.retired = RetiredMilestones()
        self.holds: dict[str, int] = {}  # pending funds_available timers per contract
        # streaming populations where each contract has its own client / freelancer: fold their accounts
        self.private_clients = False
        self.private_freelancers = False
        self.behaviours: dict[str, Behaviour] = {}
        self.until = until
        self.rec = Recorder(keep_events=keep_events)
        self.balance_every = balance_every
        self.dispute_team: simpy.Resource | None = None
        #: the dispute team's size over time, (from, agents), once a dispute opened the desk
        self.dispute_team_size: list[tuple[float, int]] = []
        self.dispute_desk: Any = None  # population.DisputeDesk, created with the first dispute
        self.dispute_waits: list[float] = []
        self.dispute_queue: list[tuple[float, int]] = []
        if balance_every and until is not None:  # at most MAX_SNAPSHOTS snapshots over the horizon
            self.balance_every = max(balance_every, snapshot_interval(until))
        # what is pending in SimPy's queue: policy timers and LATE entries (snapshots, ticks) are
        # counted, so the run can tell when only stale timers are left (see ``_live_pending``)
        self._timers = 0
        self._late = 0
        self._witness: TimerDue | None = None  # a pending timer known to be live
        self._burst_t = -1.0  # actions per contract at the current instant (NoProgress)
        self._burst: dict[str, int] = {}
        self._burst_names: dict[str, int] = {}
        #: called with the NoProgress before it propagates (population turns it into an InputError)
        self.on_no_progress: Callable[[NoProgress], None] | None = None

    def machine(self, c: Contract, action: Action, now: float) -> Any:
        """The compiled machine that decides ``action`` on ``c`` now: the policy's, or for a dated
        pack the version's that :meth:`_decide_dated` picks (and records as the deciding one)."""
        if not self.versions:
            return self._machine
        return self._machines[self._version_at(c, action, now)]

    def _decide_dated(
        self, c: Contract, action: Action, now: float, clock: Clock, notes: bool = True
    ) -> Outcome:
        """Decide with the version in force (see :meth:`_version_at`)."""
        i = self._version_at(c, action, now)
        self._version_i = i
        return self._machines[i].decide(c, action, now, clock, notes)

    def _version_at(self, c: Contract, action: Action, now: float) -> int:
        """The version the pack's ``transition`` names (FORMAT section 8): in force when the
        contract's offer was sent, when the action's milestone was funded, or now. A decision with
        no offer sent yet, or no funded milestone, uses the version in force now."""
        mode = self.policy.transition
        t = now
        if mode == "new_contracts":
            if c.offered_at is not None:
                t = c.offered_at
        elif mode == "new_milestones":
            m = c.by_id.get(action.milestone) if action.milestone is not None else None
            if m is not None and m.funded_at is not None:
                t = m.funded_at
        return bisect.bisect_right(self._version_t, t) - 1

    # -------------------------------------------------------------------------- scheduling

    def at(self, delay: float, callback: Callable[[Any], None], *, urgent: bool = False) -> None:
        """Call ``callback(event)`` after ``delay`` days (timers urgent, actions normal)."""
        self.env.call_in(delay, Scheduled(callback), URGENT if urgent else NORMAL)

    def act_in(
        self, delay: float, cid: str, action: Action, check: Callable[[Contract], bool] | None = None
    ) -> None:
        """Apply ``action`` to contract ``cid`` after ``delay`` days, if the contract is still open
        then and ``check(contract)`` (when given) holds: what a behaviour does after a reaction time."""
        self.env.call_in(delay, ActionDue(self._action_due, cid, action, check), NORMAL)

    def _action_due(self, due: ActionDue) -> None:
        c = self.contracts.get(due.cid)
        if c is not None and (due.check is None or due.check(c)):
            self.act(due.cid, due.action)

    def _timer(
        self, cid: str, delay: float, action: Action, cause: tuple[str, float] | None = None
    ) -> TimerDue:
        """Schedule a policy timer (URGENT: it fires before actions at the same instant).

        ``cause`` is the event that started it, (action, time): its events name it. Subclasses
        (the audit's replay) extend this and :meth:`_timer_fired` to watch the timers.
        """
        self._timers += 1
        return self.env.call_in(delay, TimerDue(self._on_timer, cid, action, cause), URGENT)

    def _timer_fired(self, due: TimerDue) -> None:
        self._timers -= 1
        self.act(due.cid, due.action, due.cause)

    def _timer_live(self, due: TimerDue) -> bool:
        c = self.contracts.get(due.cid)
        return c is not None and not timer_is_stale(c, due.action)

    def _live_pending(self) -> bool:
        """Is anything pending that could still change state or money?

        Every queued entry counts except LATE ones (snapshots, progress ticks) and stale timers
        (a timer whose generation was bumped by an action that beat it). The queue is scanned
        only when it holds nothing but timers and LATE entries, and a live timer found then (the
        latest one) is remembered until it fires or goes stale.
        """
        if self.env.pending() > self._timers + self._late:
            return True
        if not self._timers:
            return False
        w = self._witness
        if w is not None and w.callbacks is not None and self._timer_live(w):
            return True
        best: TimerDue | None = None
        best_when = -math.inf
        for when, due in self.env.scheduled():
            if type(due) is TimerDue and when > best_when and self._timer_live(due):
                best, best_when = due, when
        self._witness = best
        return best is not None

    def add_contract(self, spec: ContractSpec, behaviour: Behaviour | None = None) -> Contract:
        """Open a contract and the accounts of its parties (balance 0 from the start)."""
        c = Contract(
            spec.id,
            spec.client,
            spec.freelancer,
            [Milestone(m.id, m.amount, m.due) for m in spec.milestones],
        )
        if self._pair_tiers:  # a fee tiered by the pair's lifetime billings: their contracts share them
            c.pair = self._pairs.setdefault((c.client, c.freelancer), [0])
        if self._to_balance:  # refund.to: platform_balance
            c.refund_account = f"balance:{c.client}"
        if self.policy.milestones.fund_from_balance:  # the client's balance pays first
            c.balances = self.ledger.balances
        self.contracts[c.id] = c
        if self.rec.keep_events:  # what an audit of events.csv needs: CONTRACTS (FORMAT section 10)
            self.rec.contracts.extend(
                (c.id, c.client, c.freelancer, m.id, m.amount, m.due) for m in spec.milestones
            )
        self.index[c.id] = len(self.order)
        self.order.append(c.id)
        if behaviour is None:  # a declared contract: its accounts exist from t = 0
            led = self.ledger
            led.open(c.client_account)
            led.open(c.escrow_account)
            led.open(f"freelancer:{c.freelancer}:pending")
            led.open(f"freelancer:{c.freelancer}:available")
            led.open("platform")
        else:  # a sampled contract: its accounts open with their first posting
            self.behaviours[c.id] = behaviour
        return c

    def script(self, spec: ContractSpec) -> None:
        """Schedule a contract's scripted steps in file order."""
        for step in spec.script:
            action = step.action
            self.at(step.at, lambda _ev, a=action, cid=spec.id: self.act(cid, a))

    # -------------------------------------------------------------------------- acting

    def act(self, cid: str, action: Action, cause: tuple[str, float] | None = None) -> bool:
        """Apply an action now; record it; schedule timers; tell the contract's behaviour.

        ``cause`` is, for a timer, the event that started it (recorded with its events).
        """
        c = self.contracts.get(cid)
        if c is None:
            return False  # a retired contract: only stale timers and reactions can still arrive
        now = self.env.now
        if now != self._burst_t:
            self._burst_t = now
            self._burst.clear()
            self._burst_names.clear()
        n = self._burst.get(cid, 0) + 1
        self._burst[cid] = n
        if n > MAX_ACTIONS_PER_INSTANT - 100:
            names = self._burst_names
            names[action.name] = names.get(action.name, 0) + 1
            if n > MAX_ACTIONS_PER_INSTANT and cid in self.behaviours:  # a script is finite: no loop
                raise NoProgress(cid, now, dict(names))
        if action.name in _HOLDS:
            self.holds[cid] -= 1
        keep = self.rec.keep_events
        out = self._decide(c, action, now, self.clock, keep)
        if not out.accepted:
            if out.rule == "stale":
                return False
            self.rec.rejected += 1
            if keep:
                m = c.by_id.get(action.milestone or "")
                self.rec.events.append(
                    (
                        now,
                        cid,
                        action.milestone or "",
                        action.actor,
                        action.name,
                        "rejected",
                        out.rule,
                        action.amount or 0,
                        out.message,
                        ("deleted" if m.deleted else m.state) if m else "",
                        c.state,
                        out.keys,
                        cause,
                        action_args(action, self.policy.digits),
                    )
                )
                if self.versions:
                    self.rec.versions.append(self._version_i)
            return False
        events = out.events
        if keep:  # what decided each event: only where it is recorded
            for ev in events:
                ev.keys = decided_by(
                    self._machines[self._version_i].policy if self.versions else self.policy, ev
                )
        moved = False
        args = action_args(action, self.policy.digits) if keep and cause is None else ""
        for ev in events:
            if ev.postings:
                moved = True
                self._record(c, ev, now, cause, args)
            elif keep:  # nothing to post: only the event's own row
                self._record(c, ev, now, cause, args)
            args = ""  # the action's own row is the first; the rest follow from it
        # the contract's escrow, milestone by milestone, is the ledger's once the action's events are
        # all posted (a decision may make several: a release, then a fee returned)
        if moved and c.escrow() != self.ledger.balances.get(c.escrow_account, 0):
            raise AssertionError(f"escrow of {c.id} out of step with its milestones and credit")
        if out.timers:
            started: tuple | None = (events[0].action, now) if events else cause
            if self.versions and events:  # the version whose window length the timer keeps
                started = (events[0].action, now, self._version_i)
            for timer in out.timers:
                if timer.action.name in _HOLDS:
                    self.holds[cid] = self.holds.get(cid, 0) + 1
                self._timer(cid, timer.delay, timer.action, started)
        behaviour = self.behaviours.get(cid)
        if behaviour is not None:
            for ev in events:
                behaviour.on_event(self, c, ev)
        if self.retire and c.state in FINISHED:
            self.retire_if_done(c)
        return True

    def act_unguarded(self, cid: str, action: Action) -> bool:
        """:meth:`act` with the policy's checks skipped (``Machine.decide(guards=False)``): what an
        audit does after reporting that production did something the pack forbids, so that its
        replay follows production. The state rules still hold."""
        saved = self._decide

        def unguarded(c: Contract, a: Action, now: float, clock: Clock, notes: bool = True) -> Outcome:
            if self.versions:
                self._version_i = self._version_at(c, a, now)
            return self.machine(c, a, now).decide(c, a, now, clock, notes, False)

        self._decide = unguarded
        try:
            return self.act(cid, action)
        finally:
            self._decide = saved

    def retire_if_done(self, c: Contract) -> None:
        """Streaming runs: file a finished contract's milestones away and forget the contract."""
        if c.procedure is not None or self.holds.get(c.id) or c.escrow():
            return
        if c.id not in self.contracts:
            return
        self.retired.add(self.index.pop(c.id), c)
        del self.contracts[c.id]
        self.behaviours.pop(c.id, None)
        self.holds.pop(c.id, None)
        self.ledger.close(c.escrow_account)
        if self.private_clients:
            self.ledger.fold(c.client_account)
        if self.private_freelancers:
            self.ledger.fold(f"freelancer:{c.freelancer}:pending")
            self.ledger.fold(f"freelancer:{c.freelancer}:available")

    def _record(
        self, c: Contract, ev: Emitted, now: float, cause: tuple[str, float] | None = None, args: str = ""
    ) -> None:
        led = self.ledger
        if led.keep_postings and ev.postings:  # each posting's row in events.csv (written next)
            self.rec.posting_events.extend([len(self.rec.events)] * sum(1 for p in ev.postings if p[3]))
        for frm, to, flow, amount, mid in ev.postings:
            led.post(now, frm, to, flow, amount, c.id, mid)
            # attribute every flow to a row of the milestones table (see RetiredMilestones.add)
            m = c.by_id.get(mid) if mid else None
            if flow in OUT_OF_POCKET:
                flow = "fees"
            if flow == "fees" and frm == "platform":
                amount = -amount  # a fee returned
            if m is None:
                if flow in FLOWS:
                    c.credit_flows[flow] = c.credit_flows.get(flow, 0) + amount
            elif flow == "funded":
                m.funded += amount
            elif flow == "fees":
                m.fees += amount
        if ev.postings:
            led.check()  # conservation and non-negative kinds, after every event
            self._track_escrow(now)
        rec = self.rec
        if rec.keep_events:
            m = c.by_id.get(ev.milestone)
            rec.events.append(
                (
                    now,
                    c.id,
                    ev.milestone,
                    ev.actor,
                    ev.action,
                    "accepted",
                    "",
                    ev.amount,
                    ev.message,
                    ("deleted" if m.deleted else m.state) if m else "",
                    c.state,
                    ev.keys,
                    cause if ev.actor == "platform" else None,
                    args,
                )
            )
            if self.versions:
                rec.versions.append(self._version_i)
            if ev.postings:
                k = led.kinds
                rec.balances.append((now, *(k[name] for name in KINDS)))
            self._log_states(c, now)

    def _log_states(self, c: Contract, now: float) -> None:
        """Record every state change of the contract and its milestones (full event log only)."""
        last, log = self.rec.last_state, self.rec.states
        if last.get((c.id, "")) != c.state:
            last[(c.id, "")] = c.state
            log.append((now, c.id, "", c.state))
        for m in c.milestones:
            key = (c.id, m.id)
            state = "deleted" if m.deleted else m.state
            if last.get(key, "planned") != state:
                last[key] = state
                log.append((now, c.id, m.id, state))

    def _track_escrow(self, now: float) -> None:
        rec = self.rec
        rec.escrow_area += rec.escrow_now * (now - rec.escrow_last_t)
        rec.escrow_last_t = now
        rec.escrow_now = self.ledger.kinds["escrow"]
        rec.escrow_max = max(rec.escrow_max, rec.escrow_now)

    def _snapshot(self, _ev: Any = None) -> None:
        k = self.ledger.kinds
        self.rec.balances.append((self.env.now, *(k[name] for name in KINDS)))
        nxt = self.env.now + (self.balance_every or 1.0)
        if not self._live_pending():
            return  # nothing that could change a balance is pending: no more snapshots
        if self.until is None or nxt <= self.until:
            self._later(nxt - self.env.now, self._snapshot)

    def every_day(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` at the end of every simulated day up to the horizon (progress bars)."""

        def tick(_ev: Any) -> None:
            callback()
            if self.until is not None and self.env.now + 1.0 <= self.until and self._live_pending():
                self._later(1.0, tick)

        self._later(1.0, tick)

    def _later(self, delay: float, callback: Callable[[Any], None]) -> None:

        def fire(ev: Any) -> None:
            self._late -= 1
            callback(ev)

        self._late += 1
        self.env.call_in(delay, Scheduled(fire), LATE)

    # -------------------------------------------------------------------------- running

    def run(self) -> float:
        """Run until nothing is pending that could still change state or money, or to the horizon.

        Events at exactly ``until`` are included. Stale timers (beaten by an action) and
        snapshots do not keep the run going. The end is ``until`` when there is a horizon, else
        the time of the last event that mattered. Raises NoProgress when a contract acts more
        than MAX_ACTIONS_PER_INSTANT times at one instant.
        """
        every = self.balance_every if not self.rec.keep_events else None
        if every:
            self._later(0, self._snapshot)
        env, until = self.env, self.until

        def idle(n: int) -> bool:  # only timers and late entries wait, and none of them can matter
            return n <= self._timers + self._late and not self._live_pending()

        try:
            with collector.paused():  # the collector would re-scan every live contract (collector.py)
                env.run_until(until, idle)
        except NoProgress as exc:
            if self.on_no_progress is not None:
                self.on_no_progress(exc)
            raise
        end = until if until is not None else env.now
        if every:  # the balances after the last event that mattered, and at the end
            k, rows = self.ledger.kinds, self.rec.balances
            for t in (env.now, end):
                if not rows or rows[-1][0] < t:
                    rows.append((t, *(k[name] for name in KINDS)))
        self._track_escrow(end)
        return end
