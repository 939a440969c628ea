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

import functools
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import simpy

from ..core.units import MAX_MINOR
from ..core.yamlio import InputError, Problem
from ..engine.simulation import NoProgress
from ..inputs.distributions import pick
from ..inputs.population_spec import REFUND_STAGE, Population, stage_answer
from ..inputs.scenario import ContractSpec, MilestoneSpec
from ..machine.contract import HOLDING, Action, Contract, Emitted, OpenProcedure
from ..machine.procedures import awaits_platform, must_act

if TYPE_CHECKING:
    from ..engine.simulation import Simulation
    from ..inputs.scenario import Scenario
    from ..policy.model import Policy
    from ..policy.procedures import Stage


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
_PAY_FEE = {party: Action(party, "pay_fee") for party in ("client", "freelancer")}
#: milestone states in which the freelancer is (again) working on a milestone
_IN_WORK = frozenset({"funded", "changes_requested"})


class SampledContract:
    """The client's and freelancer's sampled reactions to one contract's events.

    Funding follows the pack's ``milestones.funding``:

    - ``one_at_a_time``: the client funds the first milestone with the offer and each next one
      after the previous one is released (after ``fund_delay``);
    - ``any_number``: the same, and besides the client funds the next planned milestone (after
      ``fund_delay``) as soon as the one being worked on is submitted, so the freelancer can start
      it while the other is in review. At most one funded milestone waits for work (funded or
      changes requested) at a time; the ones in review keep their escrow, so two or more
      milestones of a contract hold escrow at once. This is the simplest rule under which
      escrow on several milestones happens at all; funding everything with the offer would be
      the other simple rule, but it puts the whole contract in escrow before any work is seen,
      which clients who may do so mostly do not (and which ``all_upfront`` will model).

    Procedures (FORMAT section 7) are followed by their state, not by event names: after every
    event, if the contract's open procedure entered a new stage (its generation changed), each
    party the stage waits for draws its answer, its delay and, where the stage has a fee it may
    pay, whether it pays (in that order; for ``party: both`` the client first), from
    ``Population.responds_at``; a stage waiting for the platform goes to the dispute team. When
    the procedure closes, the client ends the contract if nothing is left in escrow (as before);
    if money stayed in escrow (outcome ``nothing``) the freelancer takes up those milestones again.

    A party's answer is accept, decline or silent; a stage names its own answers, so:

    - accept is the stage's answer ``accept``, else its first listed answer not named decline;
    - decline is the stage's answer ``decline``, else its first listed answer left after accept's;
    - silent, and an answer the stage does not have (decline where it lists one answer), is no
      answer: the stage's window runs out.

    At a stage with a fee the party pays it (probability ``pay_fee``) after its delay and then
    answers; a party that must pay to answer and does not pay stays silent. Where the pack's
    ``refund:`` section makes ``escrow_refund`` (not a declared one), the freelancer's accept and
    decline there are the upwork actions ``approve_refund`` and ``dispute``; every other answer is
    the action ``respond``.
    """

    __slots__ = ("ahead", "cid", "covered", "pop", "refunding", "rng", "seen", "working")

    def __init__(self, cid: str, pop: Population, rng: np.random.Generator) -> None:
        self.cid = cid
        self.pop = pop
        self.rng = rng
        self.working: set[str] = set()
        #: the generation of the procedure stage the parties were last told of (0: none open)
        self.seen = 0
        #: the milestones the open procedure covers (to resume work on them if it leaves them)
        self.covered: tuple[str, ...] = ()
        #: funding any_number: the milestones whose funding is scheduled (None: one_at_a_time)
        self.ahead: set[str] | None = None
        #: milestones whose client wants the money back but must ask for revisions first
        #: (``after_change_requests``): their next review asks for the refund again
        self.refunding: set[str] | None = None

    def pop_at(self, sim: Simulation) -> Population:
        """The population in force now (a scheduled one changes over time; FORMAT section 8)."""
        pop = self.pop
        return pop.at(sim.env.now) if pop.phases else pop

    def _later(self, sim: Simulation, delay: float, action: Action, check: Any = None) -> None:
        if delay != math.inf:  # a party that never acts
            sim.act_in(delay, self.cid, action, check)

    def start(self, sim: Simulation, c: Contract) -> None:
        """The offer goes out on arrival; funding, the answer and a possible withdrawal follow."""
        if not sim.act(self.cid, _OFFER):
            if sim.retire:  # rejected by the policy (e.g. below the minimum): no contract
                sim.retire_if_done(c)
            return
        pop, rng = self.pop_at(sim), self.rng
        first = c.milestones[0].id
        if sim.policy.milestones.funding == "any_number":
            self.ahead = {first}
        self._later(sim, pop.fund_delay.draw(rng), _action("client", "fund", first), _planned(first))
        accepts = rng.random() < pop.accept_probability
        self._later(sim, pop.accept_delay.draw(rng), (_ACCEPT if accepts else _DECLINE), _offered)
        if pop.withdraw_probability and rng.random() < pop.withdraw_probability:
            self._later(sim, pop.withdraw_delay.draw(rng), _WITHDRAW, _offered)

    def on_event(self, sim: Simulation, c: Contract, ev: Emitted) -> None:
        name = ev.action
        pop, rng = self.pop_at(sim), self.rng
        if name in ("fund", "accept_offer"):
            self._start_work(sim, c)
        elif name == "submit":
            m = c.by_id[ev.milestone]
            gen = m.gen
            self._decide_later(sim, m.id, gen, pop.review_delay.draw(rng))
            if self.ahead is not None:
                self._fund_ahead(sim, c)
        elif name == "request_changes":
            mid = ev.milestone
            self._later(
                sim,
                pop.rework.draw(rng),
                _action("freelancer", "submit", mid),
                _in_state(mid, "changes_requested"),
            )
        elif name in ("approve", "auto_approve"):
            self._next(sim, c)
        if c.procedure is not None or self.seen:  # most events: no procedure, nothing to follow
            self._follow_procedure(sim, c)

    # -------------------------------------------------------------------------- procedures

    def _follow_procedure(self, sim: Simulation, c: Contract) -> None:
        """Tell the parties (or the dispute team) of a stage just entered; react to a closing."""
        proc = c.procedure
        if proc is None:
            if self.seen:
                self.seen = 0
                self._closed(sim, c)
            return
        if proc.gen == self.seen:
            return
        self.seen = proc.gen
        self.covered = proc.milestones
        policy = sim.policy
        if awaits_platform(policy, proc):
            _DisputeDesk.of(sim, self.pop).file(sim, self, c)  # the desk reads the schedule itself
            return
        stage = policy.all_procedures[proc.name].stages[proc.stage]
        for party in must_act(proc, stage):
            self._answer_later(sim, proc, stage, party)

    def _answer_later(self, sim: Simulation, proc: OpenProcedure, stage: Stage, party: str) -> None:
        """Draw ``party``'s answer at the stage, its delay and its fee, and schedule them."""
        where = f"{proc.name}.{stage.name}"
        mix, delay_dist, pay_p = self.pop_at(sim).responds_at(where, party)
        rng = self.rng
        answer = stage_answer(stage, pick(mix, rng.random()))
        delay = delay_dist.draw(rng)
        fee = stage.fee
        pays = fee is not None and _may_pay(proc, fee.payer, party) and rng.random() < pay_p
        if answer is not None and fee is not None and fee.payer in ("each", party) and not pays:
            answer = None  # the stage takes this party's answer only with its fee
        if (answer is None and not pays) or math.isinf(delay):
            return
        actions = [_PAY_FEE[party]] if pays else []
        if answer is not None:
            actions.append(_answer_action(sim.policy, where, party, answer))
        cid, gen = self.cid, proc.gen

        def act(_ev: Any) -> None:
            for action in actions:
                c = sim.contracts.get(cid)
                p = c.procedure if c is not None else None
                if p is None or p.gen != gen:
                    return  # the stage ended first (its window, the other party, a decision)
                if action.name == "pay_fee" and party in p.paid:
                    continue
                if action.name != "pay_fee" and party in p.answered:
                    return
                sim.act(cid, action)

        sim.at(delay, act)

    def _closed(self, sim: Simulation, c: Contract) -> None:
        """The procedure closed: the client ends the contract, unless milestones still hold escrow.

        Milestones the procedure gave back (outcome ``nothing``) are worked on again; others that
        hold escrow (a procedure over one milestone) carry on as they were.
        """
        back = [mid for mid in self.covered if c.by_id[mid].state == "funded"]
        self.covered = ()
        if back:
            self.working.difference_update(back)
            self._start_work(sim, c)
        elif not any(m.state in HOLDING for m in c.milestones if not m.deleted):
            self._finish(sim, c)

    # -------------------------------------------------------------------------- work and review

    def _start_work(self, sim: Simulation, c: Contract) -> None:
        if c.state != "active":
            return
        for m in c.milestones:
            if m.state == "funded" and m.id not in self.working:
                self.working.add(m.id)
                delay = self.pop_at(sim).work.draw(self.rng)
                self._later(sim, delay, _action("freelancer", "submit", m.id), _in_state(m.id, "funded"))

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
            refunding = self.refunding is not None and mid in self.refunding
            self._decide(sim, c, mid, "refund" if refunding else pick(self.pop_at(sim).decision, u))

        sim.at(delay, decide)

    def _decide(self, sim: Simulation, c: Contract, mid: str, choice: str) -> None:
        m = c.by_id[mid]
        cid = self.cid
        if choice == "request_changes":
            if sim.act(cid, Action("client", "request_changes", mid)):
                return
            choice = "approve"  # the policy's limit on change requests: the client approves
        if choice == "partial":
            frac = min(max(self.pop_at(sim).partial_fraction.draw(self.rng), 0.0), 1.0)
            amount = max(1, round(m.escrowed * frac))
            if not sim.act(cid, Action("client", "approve", mid, amount=amount)):
                sim.act(cid, Action("client", "approve", mid))  # no partial releases here: in full
        elif choice == "bonus":
            frac = max(self.pop_at(sim).bonus_fraction.draw(self.rng), 0.0)
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
            if not sim.act(cid, Action("client", "approve", mid, amount=amount)):
                sim.act(cid, Action("client", "approve", mid))  # no bonuses here: in full
        elif choice == "refund":  # the client ends the contract and asks for the escrow back
            request = _refund_request(sim, mid)
            first = m.change_requests < _revisions_first(sim, request)  # PeoplePerHour: iterations first
            if first and sim.act(cid, Action("client", "request_changes", mid)):
                if self.refunding is None:
                    self.refunding = set()
                self.refunding.add(mid)  # after the rework, the client asks again
                return
            if _opens_while_active(sim, request):  # first ask, then end the contract once it is over
                sim.act(cid, request)
            else:  # the article's order: end the contract, then ask for the escrow back
                sim.act(cid, _END)
                sim.act(cid, request)
        else:
            sim.act(cid, Action("client", "approve", mid))

    # -------------------------------------------------------------------------- funding

    def _next(self, sim: Simulation, c: Contract) -> None:
        """After a release: fund the next milestone, or settle the credit and end."""
        if self.ahead is not None and self._pipelined(sim, c):
            return
        nxt = next((m for m in c.milestones if m.state == "planned" and not m.deleted), None)
        delay = self.pop_at(sim).fund_delay.draw(self.rng)
        if nxt is not None and c.state == "active":
            if self.ahead is not None:
                self.ahead.add(nxt.id)
            self._later(sim, delay, _action("client", "fund", nxt.id), _planned(nxt.id))
        elif c.credit > 0:
            self._later(sim, delay, _REQUEST_REFUND, _no_request)
        elif any(m.state in HOLDING for m in c.milestones if not m.deleted):
            return  # funded upfront: the other milestones still hold escrow and are being worked on
        elif c.state == "active":
            sim.act(self.cid, _END)  # nothing left to do: the client ends the contract right away

    def _pipelined(self, sim: Simulation, c: Contract) -> bool:
        """Funding any_number, after a release: is the contract still going without a new step?

        True while another milestone holds escrow (the next one is funded, if due, by
        ``_fund_ahead``) or the next milestone's funding is already on its way.
        """
        live = [m for m in c.milestones if not m.deleted]
        if any(m.state in HOLDING for m in live):
            self._fund_ahead(sim, c)
            return True
        nxt = next((m for m in live if m.state == "planned"), None)
        return nxt is not None and self.ahead is not None and nxt.id in self.ahead

    def _fund_ahead(self, sim: Simulation, c: Contract) -> None:
        """Funding any_number: fund the next planned milestone when none is being worked on."""
        ahead = self.ahead
        if ahead is None or c.state != "active":
            return
        live = [m for m in c.milestones if not m.deleted]
        if any(m.state in _IN_WORK for m in live):
            return
        nxt = next((m for m in live if m.state == "planned"), None)
        if nxt is None or nxt.id in ahead:
            return
        ahead.add(nxt.id)
        self._later(
            sim,
            self.pop_at(sim).fund_delay.draw(self.rng),
            _action("client", "fund", nxt.id),
            _planned(nxt.id),
        )

    def _finish(self, sim: Simulation, c: Contract) -> None:
        """After a refund or a dispute decision the client ends the contract."""
        if c.state == "active":
            sim.act(self.cid, _END)


def _answer_action(policy: Policy, where: str, party: str, answer: str) -> Action:
    """``respond {answer}``; at the ``refund:`` shorthand's stage, the upwork actions' names."""
    shorthand = where == REFUND_STAGE and "escrow_refund" not in policy.procedures
    if shorthand and party == "freelancer" and answer in ("accept", "decline"):
        return _APPROVE_REFUND if answer == "accept" else _DISPUTE
    return Action(party, "respond", answer=answer)


def _may_pay(proc: OpenProcedure, payer: str, party: str) -> bool:
    """May ``party`` pay the stage fee of ``payer`` (each, client, freelancer, filer, respondent)?"""
    if payer in ("each", party):
        return True
    if payer == "filer":
        return proc.filer == party
    if payer == "respondent":
        return party == ("client" if proc.filer == "freelancer" else "freelancer")
    return False


def _refund_request(sim: Simulation, mid: str) -> Action:
    """The client's way to ask for the money back: ``request_refund`` where the pack has it, else
    the first procedure the pack lets a client open (Freelancer.com's ``open_dispute``,
    Escrow.com's ``reject_delivery``); of the milestone, where that procedure covers one."""
    openers = sim.policy.openers
    action = "request_refund"
    if ("client", action) not in openers:
        mine = sorted(a for (actor, a) in openers if actor == "client")
        if not mine:
            return _REQUEST_REFUND  # rejected: the pack has no way back for the client
        action = mine[0]
    name = openers[("client", action)]
    if sim.policy.all_procedures[name].covers == "milestone":
        return Action("client", action, mid)
    return _REQUEST_REFUND if action == "request_refund" else Action("client", action)


def _revisions_first(sim: Simulation, request: Action) -> int:
    """How many change requests the pack's refund procedure wants first (``after_change_requests``)."""
    name = sim.policy.openers.get((request.actor, request.name))
    return sim.policy.all_procedures[name].after_change_requests if name is not None else 0


def _opens_while_active(sim: Simulation, request: Action) -> bool:
    """Does the pack's refund procedure open only on an active contract (Fiverr's cancellation,
    Escrow.com's rejection)? Then the client asks before ending the contract, not after."""
    name = sim.policy.openers.get((request.actor, request.name))
    if name is None:
        return False
    return "ended" not in sim.policy.all_procedures[name].contract_states


@functools.cache  # one condition per milestone id (ids m1, m2, ... are shared by every contract)
def _planned(mid: str) -> Any:
    return lambda c: c.by_id[mid].state == "planned" and c.state in ("offered", "active")


@functools.cache
def _in_state(mid: str, state: str) -> Any:
    return lambda c: c.by_id[mid].state == state


@functools.cache  # actions are frozen: one per (actor, name, milestone) serves every contract
def _action(actor: str, name: str, mid: str) -> Action:
    return Action(actor, name, mid)


def _offered(c: Contract) -> bool:
    return c.state == "offered"


def _no_request(c: Contract) -> bool:
    return c.procedure is None and c.credit > 0


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
    """The platform's dispute team: a SimPy Resource with ``dispute_agents`` places.

    It serves every stage that waits for the platform (``awaits_platform``: a ``party: platform``
    stage, or the outcome ``platform``): an agent takes the case in turn, handles it for a sampled
    time and decides by ``dispute_outcome`` (release all, refund all, or ``split_fraction`` of it
    released). A binding stage is settled so; at a ``decision: proposal`` stage the same decision
    is the platform's proposal, which the parties then answer through their ``responds``. A case
    whose stage ended while it waited (a settlement) is dropped when its agent gets to it.
    """

    def __init__(self, sim: Simulation, pop: Population) -> None:
        sizes = pop.team_sizes()
        most = max(n for _, n in sizes)
        self.pop = pop
        self.away = 0  # absent agents waiting for a place (not cases: the queue chart leaves them out)
        if len(sizes) == 1 or all(n == most for _, n in sizes):
            self.team: simpy.Resource = simpy.Resource(sim.env, capacity=most)
            sim.dispute_team_size = [(0.0, most)]
            return
        # a team whose size is scheduled: as many places as its largest size; when it is smaller,
        # the missing agents take places (first in line, as their cases end) until it grows again
        self.team = simpy.PriorityResource(sim.env, capacity=most)
        sim.dispute_team_size = [(t, n) for t, n in sizes]
        for i, (start, n) in enumerate(sizes):
            end = sizes[i + 1][0] if i + 1 < len(sizes) else math.inf
            if n < most and start < end and end > sim.env.now:
                for _ in range(most - n):
                    self._absent(sim, max(start - sim.env.now, 0.0), end)

    def _absent(self, sim: Simulation, delay: float, end: float) -> None:
        """An agent away from ``delay`` from now until time ``end``."""

        def leave(_ev: Any) -> None:
            request = self.team.request(priority=-1)  # type: ignore[call-arg]
            if not request.triggered:
                self.away += 1

                def seated(_ev: Any) -> None:
                    self.away -= 1

                request.callbacks.append(seated)

            def back(_ev: Any) -> None:
                self.team.release(request)

            if not math.isinf(end):
                sim.at(max(end - sim.env.now, 0.0), back)

        sim.at(delay, leave)

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
            sim.dispute_queue.append((sim.env.now, len(self.team.queue) - self.away))

    def file(self, sim: Simulation, who: SampledContract, c: Contract) -> None:
        """Queue the case; when an agent takes it, handle it and decide."""
        filed = sim.env.now
        request = self.team.request()
        rng, pop = who.rng, self.pop.at(filed)
        handling = pop.dispute_handling.draw(rng)
        outcome = pick(pop.dispute_outcome, rng.random())
        split = min(max(pop.split_fraction.draw(rng), 0.0), 1.0)
        cid = who.cid
        assert c.procedure is not None
        gen = c.procedure.gen

        def taken(_ev: Any) -> None:
            sim.dispute_waits.append(sim.env.now - filed)
            self._log(sim)
            sim.at(handling, decide)

        def decide(_ev: Any) -> None:
            from ..machine.contract import disputed_amount

            contract = sim.contracts.get(cid)
            proc = contract.procedure if contract is not None else None
            if contract is not None and proc is not None and proc.gen == gen:
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
    rates = [(t, p.rate or 0.0) for t, p in pop.phases]
    if len({r for _, r in rates}) <= 1:
        return _poisson(rng, pop.rate, 0.0, until)
    # a scheduled rate: a Poisson process in each phase (memoryless, so each starts afresh)
    parts = []
    for i, (start, rate) in enumerate(rates):
        end = min(rates[i + 1][0], until) if i + 1 < len(rates) else until
        if start < end and rate > 0:
            parts.append(_poisson(rng, rate, start, end))
    return np.concatenate(parts) if parts else np.zeros(0)


def _poisson(rng: np.random.Generator, rate: float, start: float, until: float) -> np.ndarray:
    """Arrival times of a Poisson process of ``rate`` per day in (start, until]."""
    times: list[np.ndarray] = []
    t = start
    block = max(16, int(rate * (until - start) * 1.1) + 16)
    while True:
        gaps = rng.exponential(1.0 / rate, size=block)
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
    pop: Population = scenario.population.for_policy(scenario.policy.policy)

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
        spec = sample_contract(pop.at(sim.env.now), i, rng, digits)
        behaviour = SampledContract(spec.id, pop, rng)
        c = sim.add_contract(spec, behaviour)
        behaviour.start(sim, c)
        if i + 1 < len(times):
            sim.at(float(times[i + 1]) - sim.env.now, arrive)

    if len(times):
        sim.at(float(times[0]), arrive)
