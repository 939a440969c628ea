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

import math
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from heapq import heappush
from typing import Any, Protocol

import simpy
from simpy.core import NORMAL, URGENT

from .contract import MILESTONE_STATES, OUTCOMES, Action, Contract, Emitted, Milestone, apply
from .ledger import KINDS, Ledger
from .policy import Policy
from .scenario import ContractSpec

LATE = 2  # priority after every action at the same time: horizon and snapshots
#: every event time is snapped to a millisecond grid, so that 8d2h + 14d and 22d2h, which differ in
#: the last bit as floats, are the same instant and "a timer ending at T fires first" holds exactly
TICKS_PER_DAY = 86_400_000

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
)


class _Due:
    """A scheduled callback: the least an object needs for ``Environment.step`` to process it.

    SimPy's step pops ``(time, priority, id, event)``, swaps ``event.callbacks`` for None, calls
    them, and checks ``event._ok``. A full ``simpy.Event`` costs more to create and schedule.
    """

    __slots__ = ("_ok", "_value", "callbacks")

    def __init__(self, callback: Callable[[Any], None]) -> None:
        self.callbacks = [callback]
        self._ok = True
        self._value = None


MILESTONE_STATE_CODES = {name: i for i, name in enumerate(MILESTONE_STATES)}
OUTCOME_CODES = {name: i for i, name in enumerate(OUTCOMES)}


class RetiredMilestones:
    """Milestones of finished contracts, column by column in compact arrays (streaming runs)."""

    FLOAT = ("due", "funded_at", "first_submitted_at", "closed_at")
    INT = ("contract_index", "amount", "released", "refunded", "bonus", "change_requests", "submissions")
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
        """Keep the final state of every milestone of a finished contract."""
        cols, nan = self.cols, math.nan
        for m in c.milestones:
            if m.deleted:
                continue
            self.contract.append(c.id)
            self.milestone.append(m.id)
            cols["contract_index"].append(index)
            cols["amount"].append(m.amount)
            cols["due"].append(nan if m.due is None else m.due)
            cols["funded_at"].append(nan if m.funded_at is None else m.funded_at)
            cols["first_submitted_at"].append(nan if m.first_submitted_at is None else m.first_submitted_at)
            cols["closed_at"].append(nan if m.closed_at is None else m.closed_at)
            cols["released"].append(m.released)
            cols["refunded"].append(m.refunded)
            cols["bonus"].append(m.bonus)
            cols["change_requests"].append(m.change_requests)
            cols["submissions"].append(m.submissions)
            cols["state"].append(MILESTONE_STATE_CODES[m.state])
            cols["outcome"].append(OUTCOME_CODES[m.outcome])
            late = (
                m.due is not None and m.first_submitted_at is not None and m.first_submitted_at > m.due + 1e-9
            )
            cols["late"].append(late)


FINISHED = frozenset({"withdrawn", "declined", "expired", "ended"})


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
    last_state: dict[tuple[str, str], str] = field(default_factory=dict)


class Simulation:
    """One replication of a scenario: an environment, a ledger, contracts and a recorder."""

    def __init__(
        self,
        policy: Policy,
        *,
        until: float | None = None,
        keep_events: bool = True,
        balance_every: float | None = None,
    ) -> None:
        self.policy = policy
        self.env = simpy.Environment()
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
        self.dispute_desk: Any = None  # population.DisputeDesk, created with the first dispute
        self.dispute_waits: list[float] = []
        self.dispute_queue: list[tuple[float, int]] = []

    # -------------------------------------------------------------------------- scheduling

    def at(self, delay: float, callback: Callable[[Any], None], *, urgent: bool = False) -> None:
        """Call ``callback(event)`` after ``delay`` days (timers urgent, actions normal)."""
        env = self.env
        when = round((env._now + delay) * TICKS_PER_DAY) / TICKS_PER_DAY
        heappush(env._queue, (when, URGENT if urgent else NORMAL, next(env._eid), _Due(callback)))

    def add_contract(self, spec: ContractSpec, behaviour: Behaviour | None = None) -> Contract:
        """Open a contract and the accounts of its parties (balance 0 from the start)."""
        c = Contract(
            spec.id,
            spec.client,
            spec.freelancer,
            [Milestone(m.id, m.amount, m.due) for m in spec.milestones],
        )
        self.contracts[c.id] = c
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

    def act(self, cid: str, action: Action) -> bool:
        """Apply an action now; record it; schedule timers; tell the contract's behaviour."""
        c = self.contracts.get(cid)
        if c is None:
            return False  # a retired contract: only stale timers and reactions can still arrive
        now = self.env._now
        if action.name == "funds_available":
            self.holds[cid] -= 1
        out = apply(self.policy, c, action, now)
        if not out.accepted:
            if out.rule == "stale":
                return False
            self.rec.rejected += 1
            if self.rec.keep_events:
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
                        m.state if m else "",
                        c.state,
                    )
                )
            return False
        for ev in out.events:
            self._record(c, ev, now)
        for timer in out.timers:
            if timer.action.name == "funds_available":
                self.holds[cid] = self.holds.get(cid, 0) + 1
            self.at(timer.delay, lambda _e, a=timer.action: self.act(cid, a), urgent=True)
        behaviour = self.behaviours.get(cid)
        if behaviour is not None:
            for ev in out.events:
                behaviour.on_event(self, c, ev)
        if self.retire and c.state in FINISHED:
            self.retire_if_done(c)
        return True

    def retire_if_done(self, c: Contract) -> None:
        """Streaming runs: file a finished contract's milestones away and forget the contract."""
        if c.refund_request is not None or self.holds.get(c.id) or c.escrow():
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

    def _record(self, c: Contract, ev: Emitted, now: float) -> None:
        led = self.ledger
        for frm, to, flow, amount, mid in ev.postings:
            led.post(now, frm, to, flow, amount, c.id, mid)
        if ev.postings:
            led.check()
            if c.escrow() != led.balances.get(c.escrow_account, 0):
                raise AssertionError(f"escrow of {c.id} out of step with its milestones and credit")
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
                    m.state if m else "",
                    c.state,
                )
            )
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
        if self.until is None and not self.env._queue:
            return  # nothing else is pending: the run is over
        if self.until is None or nxt <= self.until:
            self._later(nxt - self.env.now, self._snapshot)

    def every_day(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` at the end of every simulated day up to the horizon (progress bars)."""

        def tick(_ev: Any) -> None:
            callback()
            if self.until is not None and self.env._now + 1.0 <= self.until:
                self._later(1.0, tick)

        self._later(1.0, tick)

    def _later(self, delay: float, callback: Callable[[Any], None]) -> None:
        env = self.env
        when = round((env._now + delay) * TICKS_PER_DAY) / TICKS_PER_DAY
        heappush(env._queue, (when, LATE, next(env._eid), _Due(callback)))

    # -------------------------------------------------------------------------- running

    def run(self) -> float:
        """Run to the horizon (events at exactly ``until`` included) or until nothing is pending."""
        if not self.rec.keep_events and self.balance_every:
            self._later(0, self._snapshot)
        if self.until is None:
            self.env.run()
            end = self.env.now
        else:
            stop = simpy.Event(self.env)
            stop._ok = True
            stop._value = None
            self.env.schedule(stop, LATE + 1, self.until)  # after the snapshot at the horizon
            self.env.run(until=stop)
            end = self.until
        self._track_escrow(end)
        return end
