"""Population scenarios: sampled contracts whose parties race the policy's timers.

Parsing turns the ``population:`` block into a frozen ``Population``. At run time ``populate``
schedules arrivals; each contract gets a ``SampledContract`` behaviour that reacts to the
contract's events by scheduling the parties' next moves after sampled delays. Those moves go
through the same state machine as scripted actions, so the policy decides what they do and the
policy's timers win whenever a party is slower than them.

Random streams: arrivals draw from ``SeedSequence((seed, replication))``; contract ``i`` draws its
structure (milestones, amounts, parties) and then its behaviour from its own
``SeedSequence((seed, replication, i))``. Two policies run on the same seed therefore see the same
contracts, and the same behaviour draws in the order the contract needs them (common random
numbers).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import simpy

from ..core.units import MAX_MINOR
from ..core.yamlio import InputError, Problem
from ..engine.simulation import NoProgress
from ..inputs.distributions import pick
from ..inputs.population_spec import Population
from ..inputs.scenario import ContractSpec, MilestoneSpec
from ..machine.contract import Action, Contract, Emitted

if TYPE_CHECKING:
    from ..engine.simulation import Simulation
    from ..inputs.scenario import Scenario


# ------------------------------------------------------------------------------ behaviour


# actions without arguments, shared by every contract (actions are immutable)
_OFFER = Action("client", "offer")
_ACCEPT = Action("freelancer", "accept_offer")
_DECLINE = Action("freelancer", "decline_offer")
_WITHDRAW = Action("client", "withdraw_offer")
_APPROVE_REFUND = Action("freelancer", "approve_refund")
_DISPUTE = Action("freelancer", "dispute")
_REQUEST_REFUND = Action("client", "request_refund")
_END = Action("client", "end_contract")


class SampledContract:
    """The client's and freelancer's sampled reactions to one contract's events."""

    __slots__ = ("cid", "pop", "rng", "working")

    def __init__(self, cid: str, pop: Population, rng: np.random.Generator) -> None:
        self.cid = cid
        self.pop = pop
        self.rng = rng
        self.working: set[str] = set()

    def _later(self, sim: Simulation, delay: float, action: Action, check: Any = None) -> None:
        if math.isinf(delay):
            return
        cid = self.cid

        def fire(_ev: Any) -> None:
            c = sim.contracts.get(cid)
            if c is not None and (check is None or check(c)):
                sim.act(cid, action)

        sim.at(delay, fire)

    def start(self, sim: Simulation, c: Contract) -> None:
        """The offer goes out on arrival; funding, the answer and a possible withdrawal follow."""
        if not sim.act(self.cid, _OFFER):
            if sim.retire:  # rejected by the policy (e.g. below the minimum): no contract
                sim.retire_if_done(c)
            return
        pop, rng = self.pop, self.rng
        first = c.milestones[0].id
        self._later(sim, pop.fund_delay.draw(rng), Action("client", "fund", first), _planned(first))
        accepts = rng.random() < pop.accept_probability
        self._later(sim, pop.accept_delay.draw(rng), (_ACCEPT if accepts else _DECLINE), _offered)
        if pop.withdraw_probability and rng.random() < pop.withdraw_probability:
            self._later(sim, pop.withdraw_delay.draw(rng), _WITHDRAW, _offered)

    def on_event(self, sim: Simulation, c: Contract, ev: Emitted) -> None:
        name = ev.action
        pop, rng = self.pop, self.rng
        if name in ("fund", "accept_offer"):
            self._start_work(sim, c)
        elif name == "submit":
            m = c.by_id[ev.milestone]
            gen = m.gen
            self._decide_later(sim, m.id, gen, pop.review_delay.draw(rng))
        elif name == "request_changes":
            mid = ev.milestone
            self._later(
                sim,
                pop.rework.draw(rng),
                Action("freelancer", "submit", mid),
                _in_state(mid, "changes_requested"),
            )
        elif name in ("approve", "auto_approve"):
            self._next(sim, c)
        elif name == "request_refund":
            answer = pick(pop.refund_answer, rng.random())
            delay = pop.refund_delay.draw(rng)
            if answer == "approve":
                self._later(sim, delay, _APPROVE_REFUND, _refund_pending(c.proc_gen))
            elif answer == "dispute":
                self._later(sim, delay, _DISPUTE, _refund_pending(c.proc_gen))
        elif name == "dispute":
            _DisputeDesk.of(sim, pop).file(sim, self, c)
        elif name in ("approve_refund", "auto_refund", "resolve_dispute"):
            self._finish(sim, c)

    def _start_work(self, sim: Simulation, c: Contract) -> None:
        if c.state != "active":
            return
        for m in c.milestones:
            if m.state == "funded" and m.id not in self.working:
                self.working.add(m.id)
                delay = self.pop.work.draw(self.rng)
                self._later(sim, delay, Action("freelancer", "submit", m.id), _in_state(m.id, "funded"))

    def _decide_later(self, sim: Simulation, mid: str, gen: int, delay: float) -> None:
        if math.isinf(delay):
            return
        u = self.rng.random()
        cid = self.cid

        def decide(_ev: Any) -> None:
            c = sim.contracts.get(cid)
            if c is None:
                return
            m = c.by_id[mid]
            if m.state != "submitted" or m.gen != gen:
                return  # the review window (or something else) got there first
            self._decide(sim, c, mid, pick(self.pop.decision, u))

        sim.at(delay, decide)

    def _decide(self, sim: Simulation, c: Contract, mid: str, choice: str) -> None:
        m = c.by_id[mid]
        cid = self.cid
        if choice == "request_changes":
            if sim.act(cid, Action("client", "request_changes", mid)):
                return
            choice = "approve"  # the policy's limit on change requests: the client approves
        if choice == "partial":
            frac = min(max(self.pop.partial_fraction.draw(self.rng), 0.0), 1.0)
            amount = max(1, round(m.escrowed * frac))
            sim.act(cid, Action("client", "approve", mid, amount=amount))
        elif choice == "bonus":
            frac = max(self.pop.bonus_fraction.draw(self.rng), 0.0)
            amount = m.escrowed + round(m.escrowed * frac)
            if amount > MAX_MINOR:  # a huge fraction of a huge milestone: bad input, not an overflow
                raise InputError(
                    [
                        Problem(
                            self.pop.amount_where.file if self.pop.amount_where else "<population>",
                            None,
                            None,
                            f"a sampled bonus makes a release of {amount:,} minor units on {cid}/{mid}, "
                            f"above the largest supported amount ({MAX_MINOR:,} minor units)",
                            "population.client.review.bonus_fraction",
                        )
                    ]
                )
            sim.act(cid, Action("client", "approve", mid, amount=amount))
        elif choice == "refund":  # the client ends the contract and asks for the escrow back
            sim.act(cid, _END)
            sim.act(cid, _REQUEST_REFUND)
        else:
            sim.act(cid, Action("client", "approve", mid))

    def _next(self, sim: Simulation, c: Contract) -> None:
        """After a release: fund the next milestone, or settle the credit and end."""
        nxt = next((m for m in c.milestones if m.state == "planned" and not m.deleted), None)
        delay = self.pop.fund_delay.draw(self.rng)
        if nxt is not None and c.state == "active":
            self._later(sim, delay, Action("client", "fund", nxt.id), _planned(nxt.id))
        elif c.credit > 0:
            self._later(sim, delay, _REQUEST_REFUND, _no_request)
        elif c.state == "active":
            sim.act(self.cid, _END)  # nothing left to do: the client ends the contract right away

    def _finish(self, sim: Simulation, c: Contract) -> None:
        """After a refund or a dispute decision the client ends the contract."""
        if c.state == "active":
            sim.act(self.cid, _END)


def _planned(mid: str) -> Any:
    return lambda c: c.by_id[mid].state == "planned" and c.state in ("offered", "active")


def _in_state(mid: str, state: str) -> Any:
    return lambda c: c.by_id[mid].state == state


def _offered(c: Contract) -> bool:
    return c.state == "offered"


def _no_request(c: Contract) -> bool:
    return c.procedure is None and c.credit > 0


def _refund_pending(gen: int) -> Any:
    return lambda c: c.procedure is not None and c.procedure.name == "escrow_refund" and c.proc_gen == gen


def no_progress_error(scenario: Scenario, exc: NoProgress) -> InputError:
    """The InputError for a population whose behaviour loops without time passing.

    The engine stops a contract that takes more than ``MAX_ACTIONS_PER_INSTANT`` actions at one
    instant; this names the behaviour that loops, from the actions it kept taking.
    """
    when = f"{exc.time:g}d"
    if "request_changes" in exc.actions:
        message = (
            "population: the client's review delay and the freelancer's rework are both 0 and the "
            "client asks for changes (client.review.decision: request_changes), so contract "
            f"{exc.contract} is submitted and sent back forever at t = {when} without time passing; "
            "give client.review.delay or freelancer.rework a positive duration, or set the "
            "policy's review.max_change_requests"
        )
    else:
        names = ", ".join(sorted(exc.actions))
        message = (
            f"population: the sampled behaviour of contract {exc.contract} loops without time "
            f"passing at t = {when} (it keeps taking {names}); give the delays of these actions "
            "a positive duration"
        )
    return InputError([Problem(str(scenario.path), None, None, message)])


class _DisputeDesk:
    """The platform's dispute team: a SimPy Resource with ``dispute_agents`` places."""

    def __init__(self, sim: Simulation, pop: Population) -> None:
        self.team = simpy.Resource(sim.env, capacity=pop.dispute_agents)
        self.pop = pop

    @classmethod
    def of(cls, sim: Simulation, pop: Population) -> _DisputeDesk:
        desk = sim.dispute_desk
        if desk is None:
            desk = cls(sim, pop)
            sim.dispute_desk = desk
            sim.dispute_team = desk.team
        return desk

    def _log(self, sim: Simulation) -> None:
        if sim.rec.keep_events:
            sim.dispute_queue.append((sim.env.now, len(self.team.queue)))

    def file(self, sim: Simulation, who: SampledContract, c: Contract) -> None:
        """Queue the dispute; when an agent takes it, handle it and decide."""
        filed = sim.env.now
        request = self.team.request()
        rng, pop = who.rng, self.pop
        handling = pop.dispute_handling.draw(rng)
        outcome = pick(pop.dispute_outcome, rng.random())
        split = min(max(pop.split_fraction.draw(rng), 0.0), 1.0)
        cid = who.cid

        def taken(_ev: Any) -> None:
            sim.dispute_waits.append(sim.env.now - filed)
            self._log(sim)
            sim.at(handling, decide)

        def decide(_ev: Any) -> None:
            from ..machine.contract import disputed_amount

            contract = sim.contracts[cid]
            total = disputed_amount(sim.policy, contract)
            release = {"release": total, "refund": 0}.get(outcome, round(total * split))
            sim.act(cid, Action("platform", "resolve_dispute", release=release, refund=total - release))
            self.team.release(request)
            self._log(sim)

        request.callbacks.append(taken)
        self._log(sim)


# ------------------------------------------------------------------------------ arrivals


def arrival_times(pop: Population, until: float, seed: int, replication: int) -> np.ndarray:
    """Arrival times of all contracts of one replication (its own random stream)."""
    rng = np.random.default_rng(np.random.SeedSequence((seed, replication)))
    if pop.count is not None:
        if pop.over <= 0:
            return np.zeros(pop.count)
        return np.sort(rng.uniform(0.0, pop.over, size=pop.count))
    assert pop.rate is not None
    times: list[np.ndarray] = []
    t = 0.0
    block = max(16, int(pop.rate * until * 1.1) + 16)
    while True:
        gaps = rng.exponential(1.0 / pop.rate, size=block)
        chunk = t + np.cumsum(gaps)
        inside = chunk[chunk <= until]
        times.append(inside)
        if len(inside) < block:
            break
        t = float(chunk[-1])
    return np.concatenate(times) if times else np.zeros(0)


_MILESTONE_IDS = [f"m{j + 1}" for j in range(64)]


def _milestone_id(j: int) -> str:
    """Milestone ids m1, m2, ... shared between contracts (one string object each)."""
    return _MILESTONE_IDS[j] if j < len(_MILESTONE_IDS) else f"m{j + 1}"


def sample_contract(pop: Population, index: int, rng: np.random.Generator, digits: int) -> ContractSpec:
    """A contract's structure: its parties, number of milestones and their amounts.

    A sampled count above MAX_MILESTONES_PER_CONTRACT (without a ``maximum``) or an amount above
    the largest supported amount is bad input: an InputError naming where the distribution was
    written, raised before anything is written.
    """
    from ..core import yamlio
    from ..core.units import MAX_MINOR
    from ..inputs.population_spec import MAX_MILESTONES_PER_CONTRACT

    def _sampled_error(where: yamlio.Problem | None, key: str, message: str) -> yamlio.InputError:
        if where is None:
            return yamlio.InputError([yamlio.Problem("<population>", None, None, message, key)])
        return yamlio.InputError([yamlio.Problem(where.file, where.line, where.column, message, key)])

    drawn = pop.ms_count.draw(rng)
    if pop.ms_count_max is None and not drawn <= MAX_MILESTONES_PER_CONTRACT:
        raise _sampled_error(
            pop.count_where,
            "population.milestones.count",
            f"{pop.ms_count.describe()} gave {drawn:.4g} milestones for contract c{index + 1}; a contract "
            f"has at most {MAX_MILESTONES_PER_CONTRACT:,} (give the count a maximum, or a smaller mean)",
        )
    n = max(int(min(drawn, MAX_MILESTONES_PER_CONTRACT)), pop.ms_count_min)
    if pop.ms_count_max is not None:
        n = min(n, pop.ms_count_max)
    scale = 10**digits
    amounts = []
    for _ in range(n):
        value = pop.ms_amount.draw(rng) * scale
        if not value <= MAX_MINOR:  # also NaN and infinity
            raise _sampled_error(
                pop.amount_where,
                "population.milestones.amount",
                f"{pop.ms_amount.describe()} gave {value / scale:.4g} for a milestone of contract "
                f"c{index + 1}, above the largest supported amount ({MAX_MINOR // scale:,}); "
                "use a distribution with a thinner upper tail (e.g. a smaller sigma)",
            )
        amounts.append(max(1, round(value)))
    milestones = tuple(MilestoneSpec(_milestone_id(j), amount, None) for j, amount in enumerate(amounts))
    client = f"k{int(rng.integers(pop.clients)) + 1}" if pop.clients else f"k{index + 1}"
    freelancer = f"f{int(rng.integers(pop.freelancers)) + 1}" if pop.freelancers else f"f{index + 1}"
    return ContractSpec(f"c{index + 1}", client, freelancer, milestones, ())


def populate(sim: Simulation, scenario: Scenario, replication: int, seed: int) -> None:
    """Schedule the arrivals of one replication; each arrival opens and offers a contract.

    A behaviour that loops without time passing stops the run with an InputError
    (:func:`no_progress_error`).
    """
    pop: Population = scenario.population

    def explain(exc: NoProgress) -> None:
        raise no_progress_error(scenario, exc) from exc

    sim.on_no_progress = explain
    until = scenario.until or 0.0
    times = arrival_times(pop, until, seed, replication)
    digits = scenario.policy.digits
    state = {"next": 0}
    sim.private_clients = pop.clients is None
    sim.private_freelancers = pop.freelancers is None

    def arrive(_ev: Any) -> None:
        i = state["next"]
        state["next"] = i + 1
        rng = np.random.default_rng(np.random.SeedSequence((seed, replication, i)))
        spec = sample_contract(pop, i, rng, digits)
        behaviour = SampledContract(spec.id, pop, rng)
        c = sim.add_contract(spec, behaviour)
        behaviour.start(sim, c)
        if i + 1 < len(times):
            sim.at(float(times[i + 1]) - sim.env.now, arrive)

    if len(times):
        sim.at(float(times[0]), arrive)
