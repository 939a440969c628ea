"""The ``population:`` block of a scenario: what is sampled, read and validated with positions.

``Population`` is the frozen description of a sampled marketplace (arrivals, milestones, the
parties' behaviour, the dispute team); ``parse_population`` builds it and reports every problem
with its file:line:column. Playing a population is ``population``'s job.

How the parties answer a pack's procedures (FORMAT section 7) is written once for every pack:

- ``client.responds`` / ``freelancer.responds``: ``{accept: p, decline: p, silent: p, delay: dist,
  pay_fee: p}``, used at any stage where that party must act;
- ``stages: {<procedure>.<stage>: {...}}``: the same keys for one stage, or ``{client: {...},
  freelancer: {...}}`` to set each party there. A stage entry overrides only the keys it gives
  (the answer mix as a whole, ``delay``, ``pay_fee``); the rest come from the party's ``responds``;
- ``freelancer.refund_response`` ``{approve, dispute, silent, delay}`` is the freelancer's entry
  for ``escrow_refund.respond`` (approve = accept, dispute = decline), as before.

Left out, a party is silent, answers after 0 days and pays no stage fee. Stage names are checked
for their shape (``procedure.stage``) here; whether the pack has that stage can be checked only
against a policy (``parse_population(..., policy=...)`` or :func:`unknown_stages`): a name the
pack lacks is a warning, not an error, because one population file runs under several packs and
a stage of one pack (``dispute.client_response`` of upwork_2026) is simply unused under another.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.units import UnitError, parse_duration, parse_rate
from ..core.yamlio import Problem
from .distributions import Dist, constant, parse_dist, parse_mix

if TYPE_CHECKING:
    from ..core.problems import Collector
    from ..core.yamlio import Loc
    from ..policy.model import Policy
    from ..policy.procedures import Stage

#: the most contracts a run may expect (arrivals.count, or arrivals.rate times until)
MAX_CONTRACTS = 10_000_000
#: the most milestones one sampled contract may have
MAX_MILESTONES_PER_CONTRACT = 1_000
#: the largest client or freelancer pool
MAX_PARTIES = 10_000_000
#: the largest dispute team
MAX_DISPUTE_AGENTS = 100_000

DECISIONS = ("approve", "request_changes", "partial", "bonus", "refund")
REFUND_ANSWERS = ("approve", "dispute", "silent")
DISPUTE_OUTCOMES = ("release", "refund", "split")
#: a party's answer at a procedure stage (how it maps onto the stage's own answers: ``population``)
RESPOND_ANSWERS = ("accept", "decline", "silent")
RESPOND_KEYS = (*RESPOND_ANSWERS, "delay", "pay_fee")
#: the stage refund_response sets, and how its answers are named there
REFUND_STAGE = "escrow_refund.respond"
_REFUND_AS_RESPONDS = {"approve": "accept", "dispute": "decline", "silent": "silent"}
#: ``procedure.stage``: two names without dots or blanks
STAGE_NAME = re.compile(r"[^.\s]+\.[^.\s]+")
SILENT = (("silent", 1.0),)


@dataclass(frozen=True)
class Responds:
    """How a party answers at a procedure stage; None: not given here (``Population.responds_at``)."""

    answers: tuple[tuple[str, float], ...] | None = None  # a mix of accept, decline, silent
    delay: Dist | None = None
    pay_fee: float | None = None  # probability of paying the stage's fee (where it has one)


NOT_GIVEN = Responds()


@dataclass(frozen=True)
class Population:
    """Everything that is sampled about a marketplace's contracts and parties."""

    rate: float | None  # arrivals per day (Poisson), or
    count: int | None  # a fixed number of contracts
    over: float  # ... spread uniformly over this many days (0: all at t = 0)
    clients: int | None  # size of the client pool (None: one client per contract)
    freelancers: int | None
    ms_count: Dist
    ms_count_min: int
    ms_count_max: int | None
    ms_amount: Dist
    fund_delay: Dist
    withdraw_probability: float
    withdraw_delay: Dist
    review_delay: Dist
    decision: tuple[tuple[str, float], ...]
    partial_fraction: Dist
    bonus_fraction: Dist
    accept_probability: float
    accept_delay: Dist
    work: Dist
    rework: Dist
    dispute_agents: int
    dispute_handling: Dist
    dispute_outcome: tuple[tuple[str, float], ...]
    split_fraction: Dist
    #: where milestones.amount and milestones.count were written, for errors found while sampling
    amount_where: Problem | None = None
    count_where: Problem | None = None
    #: the parties' answers at procedure stages (module docstring)
    client_responds: Responds = NOT_GIVEN
    freelancer_responds: Responds = NOT_GIVEN
    refund_response: Responds | None = None  # freelancer.refund_response, for escrow_refund.respond
    #: population.stages: (procedure.stage, party or "" for both parties, what is set there)
    stages: tuple[tuple[str, str, Responds], ...] = ()
    #: population.by_policy: (pack name, this population with that pack's behaviour)
    by_policy: tuple[tuple[str, Population], ...] = ()
    #: a population with schedules (FORMAT section 8): (from, the population in force from then),
    #: the first from 0; empty when nothing is scheduled
    phases: tuple[tuple[float, Population], ...] = ()

    def team_sizes(self) -> list[tuple[float, int]]:
        """The dispute team's size over time: (from, agents), a step each time it changes."""
        out: list[tuple[float, int]] = []
        for t, phase in self.phases or ((0.0, self),):
            if not out or out[-1][1] != phase.dispute_agents:
                out.append((t, phase.dispute_agents))
        return out

    def at(self, t: float) -> Population:
        """The population in force at time ``t`` (itself when nothing is scheduled)."""
        if not self.phases:
            return self
        found = self.phases[0][1]
        for start, phase in self.phases:
            if start > t:
                break
            found = phase
        return found

    def for_policy(self, name: str) -> Population:
        """The population as it behaves under the pack ``name`` (its ``by_policy`` entry, if any)."""
        for pack, variant in self.by_policy:
            if pack == name:
                return variant
        return self

    def responds_at(self, where: str, party: str) -> tuple[tuple[tuple[str, float], ...], Dist, float]:
        """The answer mix, delay and fee probability of ``party`` at stage ``where`` (``proc.stage``).

        Each of the three comes from the first place that gives it: the stage's entry in
        ``population.stages`` (its per-party form first), ``freelancer.refund_response`` at
        ``escrow_refund.respond``, the party's ``responds``; else silent, 0 days, no fee.
        """
        layers = [r for name, who, r in self.stages if name == where and who == party]
        layers += [r for name, who, r in self.stages if name == where and who == ""]
        if where == REFUND_STAGE and party == "freelancer" and self.refund_response is not None:
            layers.append(self.refund_response)
        layers.append(self.client_responds if party == "client" else self.freelancer_responds)
        answers = next((r.answers for r in layers if r.answers is not None), SILENT)
        delay = next((r.delay for r in layers if r.delay is not None), _ZERO)
        pay_fee = next((r.pay_fee for r in layers if r.pay_fee is not None), 0.0)
        return answers, delay, pay_fee

    def expected_contracts(self, until: float | None) -> float:
        """Mean number of contracts that arrive."""
        if self.count is not None:
            return float(self.count)
        return (self.rate or 0.0) * (until or 0.0)

    def expected_milestones(self, until: float | None) -> float:
        """Mean number of milestones, for choosing defaults such as the event log."""
        per = max(self.ms_count.mean, self.ms_count_min)
        return self.expected_contracts(until) * per


_ZERO = constant(0.0)


# ------------------------------------------------------------------------------ parsing

_KEYS = ("arrivals", "parties", "milestones", "client", "freelancer", "platform", "stages", "by_policy")
#: what a ``by_policy`` entry may set: behaviour only, so every pack still sees the same contracts
BY_POLICY_KEYS = ("client", "freelancer", "platform", "stages")


def _block(col: Collector, data: dict, key: str, loc: Loc, allowed: tuple[str, ...]) -> dict:
    raw = data.get(key, {})
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        col.add((*loc, key), f"{key} is a mapping of {', '.join(allowed)}")
        return {}
    col.keys(raw, allowed, (*loc, key))
    return raw


def _prob(col: Collector, raw: Any, loc: Loc, default: float) -> float:
    if raw is None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not 0 <= raw <= 1:
        col.add(loc, f"a probability is a number from 0 to 1, got {raw!r}")
        return default
    return float(raw)


def _count(col: Collector, raw: Any, loc: Loc, minimum: int, maximum: int) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < minimum:
        shown = repr(raw) if len(repr(raw)) <= 40 else repr(raw)[:37] + "..."
        col.add(loc, f"expected a whole number >= {minimum}, got {shown}")
        return None
    if raw > maximum:
        col.add(loc, f"{raw:.4g} is more than the most supported ({maximum:,})")
        return None
    return raw


#: the most steps a schedule may have
MAX_SCHEDULE_STEPS = 1_000
#: what cannot change during a run: who the parties are, and a fixed count of arrivals
UNSCHEDULABLE = (("parties",), ("arrivals", "count"), ("arrivals", "over"), ("by_policy",))


def _is_schedule(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"schedule"}


def _schedules(col: Collector, raw: Any, loc: Loc, at: Loc = ()) -> list[tuple[Loc, list[tuple[float, Any]]]]:
    """Every ``{schedule: [{from, value}, ...]}`` under ``raw`` (relative locations), checked: steps
    from 0d, ``from`` times increasing, no schedule inside a scheduled value."""
    if _is_schedule(raw):
        where = (*loc, *at, "schedule")
        if any(at[: len(u)] == u for u in UNSCHEDULABLE) and at[:1] != ("by_policy",):
            col.add(where, f"{'.'.join(map(str, at))} cannot change during a run: it is fixed when it starts")
            return []
        steps = raw["schedule"]
        if not isinstance(steps, list) or not steps:
            col.add(where, "a schedule is a list of {from: <time>, value: ...}, the first from 0d")
            return []
        if len(steps) > MAX_SCHEDULE_STEPS:
            col.add(where, f"{len(steps):,} steps: the most supported is {MAX_SCHEDULE_STEPS:,}")
            return []
        out: list[tuple[float, Any]] = []
        for i, step in enumerate(steps):
            sloc = (*where, i)
            if not isinstance(step, dict):
                col.add(sloc, "a schedule step is {from: <time>, value: ...}")
                continue
            col.keys(step, ("from", "value"), sloc)
            if "from" not in step or "value" not in step:
                col.add(sloc, "a schedule step needs from and value")
                continue
            start = col.duration(step["from"], (*sloc, "from"))
            if start is None:
                continue
            if not out and start != 0:
                col.add((*sloc, "from"), "a schedule starts at from: 0d (what holds from the start)")
            if out and start <= out[-1][0]:
                col.add(
                    (*sloc, "from"),
                    f"from times go backwards: {step['from']} is not after the step before it",
                )
            if _contains_schedule(step["value"]):
                col.add((*sloc, "value"), "a scheduled value cannot hold another schedule")
            out.append((start, step["value"]))
        return [(at, out)]
    if isinstance(raw, dict):
        found = []
        for key, value in raw.items():
            if not at and key == "by_policy":
                continue  # parsed on its own, over the shared blocks (their schedules included)
            found.extend(_schedules(col, value, loc, (*at, key)))
        return found
    return []


def _contains_schedule(value: Any) -> bool:
    if _is_schedule(value):
        return True
    if isinstance(value, dict):
        return any(_contains_schedule(v) for v in value.values())
    if isinstance(value, list):
        return any(_contains_schedule(v) for v in value)
    return False


class _PhaseDoc:
    """A document seen through one phase of the schedules: a problem found in a scheduled value
    is reported at that step's ``value`` in the file."""

    def __init__(self, doc: Any, loc: Loc, chosen: dict[Loc, int]) -> None:
        self.doc, self.loc, self.chosen = doc, loc, chosen
        self.file = doc.file

    def _map(self, loc: Loc) -> Loc:
        rel = loc[len(self.loc) :] if loc[: len(self.loc)] == self.loc else None
        if rel is not None:
            for at, i in self.chosen.items():
                if rel[: len(at)] == at:
                    return (*self.loc, *at, "schedule", i, "value", *rel[len(at) :])
        return loc

    def problem(self, loc: Loc, message: str, *, key: bool = False) -> Problem:
        found = self.doc.problem(self._map(loc), message, key=key)
        return dataclasses.replace(found, key=".".join(map(str, loc)) or None)

    def where(self, loc: Loc, *, key: bool = False) -> tuple[int | None, int | None]:
        return self.doc.where(self._map(loc), key=key)


def _substitute(raw: Any, at: Loc, value: Any) -> Any:
    if not at:
        return value
    out = dict(raw)
    out[at[0]] = _substitute(raw[at[0]], at[1:], value)
    return out


def parse_population(
    col: Collector,
    raw: Any,
    base: Path,
    digits: int,
    *,
    roots: Sequence[Path] | None = None,
    policy: Policy | None = None,
    loc: Loc = ("population",),
) -> Population | None:
    """Validate the ``population:`` block (see :func:`_parse_one`), schedules included: any
    rate, probability or distribution may be ``{schedule: [{from: 0d, value: ...}, ...]}``
    (FORMAT section 8). Each phase (from one step's ``from`` to the next of any schedule) is
    parsed as a whole population, so a problem in a scheduled value names its step."""
    from ..core.problems import Collector

    n_before = len(col.problems)
    nodes = _schedules(col, raw, loc) if isinstance(raw, dict) else []
    if len(col.problems) != n_before:
        return None
    if not nodes:
        return _parse_one(col, raw, base, digits, roots=roots, policy=policy, loc=loc)
    times = sorted({t for _, steps in nodes for t, _ in steps})
    phases: list[tuple[float, Population]] = []
    shared = {k: v for k, v in raw.items() if k != "by_policy"}
    for t in times:
        resolved: Any = shared
        chosen: dict[Loc, int] = {}
        for at, steps in nodes:
            i = max(j for j, (start, _) in enumerate(steps) if start <= t)
            chosen[at] = i
            resolved = _substitute(resolved, at, steps[i][1])
        sub = Collector(_PhaseDoc(col.doc, loc, chosen))  # type: ignore[arg-type]
        pop = _parse_one(sub, resolved, base, digits, roots=roots, policy=policy, loc=loc)
        col.problems.extend(p for p in sub.problems if p not in col.problems)
        col.warnings.extend(w for w in sub.warnings if w not in col.warnings)
        if pop is not None:
            phases.append((t, pop))
    if len(col.problems) != n_before:
        return None
    first = dataclasses.replace(phases[0][1], phases=tuple(phases))
    if "by_policy" in raw and loc == ("population",):
        variants = _by_policy(col, raw, base, digits, roots, loc)
        if len(col.problems) != n_before:
            return None
        first = dataclasses.replace(first, by_policy=variants)
    return first


def _parse_one(
    col: Collector,
    raw: Any,
    base: Path,
    digits: int,
    *,
    roots: Sequence[Path] | None = None,
    policy: Policy | None = None,
    loc: Loc = ("population",),
) -> Population | None:
    """Validate the ``population:`` block, reporting every problem with its position.

    ``by_policy: {pack: {client: ..., freelancer: ..., platform: ..., stages: ...}}`` gives a
    pack's own behaviour, for what only exists there: each key of a block it names replaces that
    key of the shared block (``client: {review: ...}`` replaces ``client.review`` as a whole; a
    ``stages`` entry replaces that stage's entry). Arrivals, parties and milestones cannot be
    set per pack: every pack plays the same contracts (common random numbers).

    Empirical CSVs must lie inside ``roots`` (see ``distributions.parse_dist``). Given the
    scenario's ``policy``, names in ``population.stages`` that are no stage of it are warnings
    (:func:`unknown_stages`).
    """
    if not isinstance(raw, dict):
        col.add(loc, "population is a mapping of arrivals, milestones, client, freelancer, platform")
        return None
    col.keys(raw, _KEYS, loc)
    n_before = len(col.problems)

    def dist(block: dict, key: str, bloc: Loc, kind: str, default: Dist | None) -> Dist:
        if key not in block:
            if default is None:
                col.add(bloc, f"required key {key!r} is missing")
                return constant(0.0)
            return default
        return parse_dist(col, block[key], (*bloc, key), kind, base, digits, roots=roots) or constant(0.0)

    arrivals = _block(col, raw, "arrivals", loc, ("rate", "count", "over"))
    aloc = (*loc, "arrivals")
    rate = count = None
    over = 0.0
    if "rate" in arrivals and "count" in arrivals:
        col.add(aloc, "arrivals take either rate (Poisson) or count (with optional over), not both")
    elif "rate" in arrivals:
        try:
            rate = parse_rate(arrivals["rate"])
        except UnitError as exc:
            col.add((*aloc, "rate"), str(exc))
        if "over" in arrivals:
            col.add((*aloc, "over"), "over goes with count; a rate runs until the scenario's until")
    elif "count" in arrivals:
        count = _count(col, arrivals["count"], (*aloc, "count"), 1, MAX_CONTRACTS)
        if "over" in arrivals:
            try:
                over = parse_duration(arrivals["over"])
            except UnitError as exc:
                col.add((*aloc, "over"), str(exc))
    else:
        col.add(aloc if "arrivals" in raw else loc, "arrivals need rate (e.g. 40/d) or count")

    parties = _block(col, raw, "parties", loc, ("clients", "freelancers"))
    clients = _count(col, parties.get("clients"), (*loc, "parties", "clients"), 1, MAX_PARTIES)
    freelancers = _count(col, parties.get("freelancers"), (*loc, "parties", "freelancers"), 1, MAX_PARTIES)

    ms = _block(col, raw, "milestones", loc, ("count", "amount"))
    mloc = (*loc, "milestones")
    count_raw = ms.get("count", 1)
    ms_min, ms_max = 1, None
    if isinstance(count_raw, dict) and ("minimum" in count_raw or "maximum" in count_raw):
        count_raw = dict(count_raw)
        most = MAX_MILESTONES_PER_CONTRACT
        ms_min = _count(col, count_raw.pop("minimum", 1), (*mloc, "count", "minimum"), 1, most) or 1
        ms_max = _count(col, count_raw.pop("maximum", None), (*mloc, "count", "maximum"), 1, most)
        if ms_max is not None and ms_max < ms_min:
            col.add((*mloc, "count", "maximum"), "maximum must be at least minimum")
    n_count = len(col.problems)
    ms_count = parse_dist(col, count_raw, (*mloc, "count"), "count", base, digits, roots=roots)
    ms_count = ms_count or constant(1.0)
    if len(col.problems) == n_count and ms_max is None and ms_count.mean > MAX_MILESTONES_PER_CONTRACT:
        col.add(
            (*mloc, "count"),
            f"{ms_count.describe()} gives {ms_count.mean:.4g} milestones per contract on average; "
            f"a contract has at most {MAX_MILESTONES_PER_CONTRACT:,}",
        )
    ms_amount = dist(ms, "amount", mloc, "money", None)

    client = _block(col, raw, "client", loc, ("fund_delay", "withdraw", "review", "responds"))
    cloc = (*loc, "client")
    withdraw = _block(col, client, "withdraw", cloc, ("probability", "delay"))
    review = _block(col, client, "review", cloc, ("delay", "decision", "partial_fraction", "bonus_fraction"))
    rloc = (*cloc, "review")
    decision = (("approve", 1.0),)
    if "decision" in review:
        decision = parse_mix(col, review["decision"], (*rloc, "decision"), DECISIONS) or decision

    freelancer = _block(
        col, raw, "freelancer", loc, ("accept", "work", "rework", "refund_response", "responds")
    )
    floc = (*loc, "freelancer")
    accept = _block(col, freelancer, "accept", floc, ("probability", "delay"))
    refund_response = None
    if "refund_response" in freelancer:
        refund_response = _refund_response(
            col, freelancer["refund_response"], (*floc, "refund_response"), dist
        )
    client_responds = _responds(col, client.get("responds"), (*cloc, "responds"), dist)
    freelancer_responds = _responds(col, freelancer.get("responds"), (*floc, "responds"), dist)
    stages = _stages(col, raw.get("stages"), (*loc, "stages"), dist, refund_response is not None)

    platform = _block(
        col, raw, "platform", loc, ("dispute_agents", "dispute_handling", "dispute_outcome", "split_fraction")
    )
    ploc = (*loc, "platform")
    agents = (
        _count(col, platform.get("dispute_agents", 1), (*ploc, "dispute_agents"), 1, MAX_DISPUTE_AGENTS) or 1
    )
    outcome = (("release", 0.5), ("refund", 0.5))
    if "dispute_outcome" in platform:
        outcome = (
            parse_mix(col, platform["dispute_outcome"], (*ploc, "dispute_outcome"), DISPUTE_OUTCOMES)
            or outcome
        )

    half = constant(0.5)
    pop = Population(
        rate=rate,
        count=count,
        over=over,
        clients=clients,
        freelancers=freelancers,
        ms_count=ms_count,
        ms_count_min=ms_min,
        ms_count_max=ms_max,
        ms_amount=ms_amount,
        fund_delay=dist(client, "fund_delay", cloc, "duration", constant(0.0)),
        withdraw_probability=_prob(col, withdraw.get("probability"), (*cloc, "withdraw", "probability"), 0.0),
        withdraw_delay=dist(withdraw, "delay", (*cloc, "withdraw"), "duration", constant(0.0)),
        review_delay=dist(review, "delay", rloc, "duration", constant(math.inf)),
        decision=decision,
        partial_fraction=_fraction(col, review, "partial_fraction", rloc, base, digits, half, roots),
        bonus_fraction=_fraction(col, review, "bonus_fraction", rloc, base, digits, constant(0.1), roots),
        accept_probability=_prob(col, accept.get("probability"), (*floc, "accept", "probability"), 1.0),
        accept_delay=dist(accept, "delay", (*floc, "accept"), "duration", constant(0.0)),
        work=dist(freelancer, "work", floc, "duration", constant(0.0)),
        rework=dist(freelancer, "rework", floc, "duration", constant(0.0)),
        dispute_agents=agents,
        dispute_handling=dist(platform, "dispute_handling", ploc, "duration", constant(0.0)),
        dispute_outcome=outcome,
        split_fraction=_fraction(col, platform, "split_fraction", ploc, base, digits, half, roots),
        amount_where=col.doc.problem((*mloc, "amount"), ""),
        count_where=col.doc.problem((*mloc, "count"), ""),
        client_responds=client_responds,
        freelancer_responds=freelancer_responds,
        refund_response=refund_response,
        stages=stages,
    )
    if len(col.problems) != n_before:
        return None
    if "by_policy" in raw and loc == ("population",):
        variants = _by_policy(col, raw, base, digits, roots, loc)
        if len(col.problems) != n_before:
            return None
        pop = dataclasses.replace(pop, by_policy=variants)
    elif "by_policy" in raw:
        col.add((*loc, "by_policy"), "by_policy entries cannot have a by_policy of their own")
        return None
    if policy is not None:
        for name, message in unknown_stages(pop, policy):
            col.warnings.append(col.doc.problem((*loc, "stages", name), message, key=True))
        if loc == ("population",):
            stages = raw.get("stages") if isinstance(raw.get("stages"), dict) else {}
            for name, message in stalling_stages(pop, policy):
                col.add((*loc, "stages", name) if name in stages else loc, message, key=True)
    return pop


def _by_policy(
    col: Collector, raw: dict, base: Path, digits: int, roots: Sequence[Path] | None, loc: Loc
) -> tuple[tuple[str, Population], ...]:
    """Each ``by_policy`` entry merged over the shared blocks and parsed as a population."""
    bloc = (*loc, "by_policy")
    entries = raw["by_policy"]
    if not isinstance(entries, dict) or not all(isinstance(k, str) for k in entries):
        col.add(bloc, "by_policy is a mapping of pack names to behaviour, e.g. {fiverr: {client: ...}}")
        return ()
    shared = {k: v for k, v in raw.items() if k != "by_policy"}
    out = []
    for name, entry in entries.items():
        eloc = (*bloc, name)
        if not isinstance(entry, dict):
            col.add(eloc, f"by_policy.{name} is a mapping of {', '.join(BY_POLICY_KEYS)}")
            continue
        n_before = len(col.problems)
        col.keys(entry, BY_POLICY_KEYS, eloc)
        merged = dict(shared)
        for key, block in entry.items():
            if key not in BY_POLICY_KEYS:
                continue
            if not isinstance(block, dict):
                col.add((*eloc, key), f"{key} is a mapping")
                continue
            old = shared.get(key)
            merged[key] = {**old, **block} if isinstance(old, dict) else block
        if len(col.problems) != n_before:
            continue
        variant = parse_population(col, merged, base, digits, roots=roots, loc=eloc)
        if variant is not None:
            out.append((name, variant))
    return tuple(out)


def _responds(col: Collector, raw: Any, loc: Loc, dist: Any) -> Responds:
    """A ``responds`` block (or one stage's entry): ``{accept, decline, silent, delay, pay_fee}``.

    The answer mix is optional (a stage where only the fee matters), but when any of accept,
    decline, silent is given they must add up to 1.
    """
    if raw is None:
        return NOT_GIVEN
    if not isinstance(raw, dict):
        col.add(loc, f"expected a mapping of {', '.join(RESPOND_KEYS)}")
        return NOT_GIVEN
    col.keys(raw, RESPOND_KEYS, loc)
    answers = None
    if any(k in raw for k in RESPOND_ANSWERS):
        mix = {k: v for k, v in raw.items() if k in RESPOND_ANSWERS}
        answers = parse_mix(col, mix, loc, RESPOND_ANSWERS)
    delay = dist(raw, "delay", loc, "duration", None) if "delay" in raw else None
    pay_fee = _prob(col, raw.get("pay_fee"), (*loc, "pay_fee"), 0.0) if "pay_fee" in raw else None
    return Responds(answers, delay, pay_fee)


def _refund_response(col: Collector, raw: Any, loc: Loc, dist: Any) -> Responds | None:
    """``freelancer.refund_response`` {approve, dispute, silent, delay} as the freelancer's answer at
    escrow_refund.respond (the mix keeps its order, so the same draw picks the same answer)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        col.add(loc, "refund_response is {approve, dispute, silent, delay}")
        return None
    answers = None
    mix = {k: v for k, v in raw.items() if k != "delay"}
    if mix:
        parsed = parse_mix(col, mix, loc, REFUND_ANSWERS, extra=("delay",))
        if parsed is not None:
            answers = tuple((_REFUND_AS_RESPONDS[name], p) for name, p in parsed)
    delay = dist(raw, "delay", loc, "duration", None) if "delay" in raw else None
    return Responds(answers, delay)


def _stages(
    col: Collector, raw: Any, loc: Loc, dist: Any, has_refund_response: bool
) -> tuple[tuple[str, str, Responds], ...]:
    """``population.stages``: ``{procedure.stage: responds}`` or ``{procedure.stage: {client: responds,
    freelancer: responds}}``."""
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        col.add(
            loc,
            "stages is a mapping of procedure.stage (e.g. dispute.client_response) to "
            f"{{{', '.join(RESPOND_KEYS)}}}",
        )
        return ()
    out: list[tuple[str, str, Responds]] = []
    for name, entry in raw.items():
        here = (*loc, name)
        if not isinstance(name, str) or not STAGE_NAME.fullmatch(name):
            col.add(
                here,
                f"{name!r} is not a stage name: write procedure.stage, e.g. dispute.client_response",
                key=True,
            )
            continue
        if isinstance(entry, dict) and entry and set(entry) <= {"client", "freelancer"}:
            parties = [(who, entry[who], (*here, who)) for who in ("client", "freelancer") if who in entry]
        elif isinstance(entry, dict) and set(entry) & {"client", "freelancer"}:
            col.add(
                here,
                "a stage entry is either {accept, decline, silent, delay, pay_fee} for whoever acts there, "
                "or {client: {...}, freelancer: {...}}, not both",
            )
            continue
        else:
            parties = [("", entry, here)]
        for who, block, bloc in parties:
            if name == REFUND_STAGE and who in ("", "freelancer") and has_refund_response:
                col.add(
                    bloc,
                    f"{REFUND_STAGE} is set twice: freelancer.refund_response is the freelancer's answer "
                    "there; give one of them",
                    key=who == "",
                )
                continue
            out.append((name, who, _responds(col, block, bloc, dist)))
    return tuple(out)


def unknown_stages(pop: Population, policy: Policy) -> list[tuple[str, str]]:
    """(name, message) for each ``population.stages`` name that is no stage of ``policy``.

    Such an entry is never used under that pack (a warning, not an error: the same population may
    run under a pack that has the stage).
    """
    known = {f"{p}.{s.name}" for p, proc in policy.all_procedures.items() for s in proc.stages}
    out = []
    for name in dict.fromkeys(name for name, _, _ in pop.stages):
        if name not in known:
            shown = ", ".join(sorted(known))
            out.append(
                (
                    name,
                    f"{name} is no stage of policy {policy.policy} (its stages: {shown}); "
                    "this entry is unused under it",
                )
            )
    return out


def stage_answer(stage: Stage, choice: str) -> str | None:
    """The stage's own answer for a party's accept, decline or silent (None: no answer).

    accept is the answer named accept, else the first listed answer not named decline; decline
    is the answer named decline, else the first listed answer that accept did not take.
    """
    names = list(stage.answers)
    if choice == "silent" or not names:
        return None
    accept = "accept" if "accept" in names else next((n for n in names if n != "decline"), None)
    if choice == "accept":
        return accept
    if "decline" in names:
        return "decline"
    return next((n for n in names if n not in (accept, "accept")), None)


def stalling_stages(pop: Population, policy: Policy) -> list[tuple[str, str]]:
    """(stage, message) for each stage of ``policy`` that could wait forever under ``pop``.

    A party's stage with no ``on_timeout`` ends only when someone answers it. If the parties who
    must act there may all stay silent (their answer mix has ``silent``, names no answer of the
    stage, or the stage takes answers only with a fee they may not pay), some contracts would hold
    their escrow for good: an error, since no report of such a run means anything.
    """
    out = []
    pop = pop.for_policy(policy.policy)
    for pname, proc in policy.all_procedures.items():
        for stage in proc.stages:
            if stage.party == "platform" or stage.on_timeout is not None:
                continue
            where = f"{pname}.{stage.name}"
            if stage.party == "both":
                groups = [("client", "freelancer")]
            elif stage.party in ("filer", "respondent"):
                groups = [("client",), ("freelancer",)]  # either party may be the one
            else:
                groups = [(stage.party,)]
            for parties in groups:
                stall = 1.0
                quiet = []
                for party in parties:
                    mix, _delay, pay_p = pop.responds_at(where, party)
                    answer_p = sum(p for choice, p in mix if stage_answer(stage, choice) is not None)
                    fee = stage.fee
                    if not stage.answers:
                        move = pay_p if fee is not None else 0.0
                    elif fee is not None and fee.payer in ("each", party):
                        move = answer_p * pay_p  # the stage takes this party's answer only with its fee
                    else:
                        move = answer_p
                    stall *= 1.0 - move
                    quiet.append(f"the {party} stays silent there with probability {1.0 - move:g}")
                if stall > 1e-12:
                    out.append(
                        (
                            where,
                            f"stage {where} of policy {policy.policy} has no on_timeout, and "
                            f"{' and '.join(quiet)}: such contracts would wait, escrow held, forever. "
                            f"Give the stage an on_timeout, or make the population answer it "
                            f"(population.stages: {{{where}: {{accept: 1}}}})",
                        )
                    )
                    break
    return out


def _fraction(
    col: Collector,
    block: dict,
    key: str,
    loc: Loc,
    base: Path,
    digits: int,
    default: Dist,
    roots: Sequence[Path] | None,
) -> Dist:
    """A distribution of fractions (plain numbers); values are clipped to [0, 1] when sampled."""
    if key not in block:
        return default
    return parse_dist(col, block[key], (*loc, key), "number", base, digits, roots=roots) or default


def check_expected_size(col: Collector, pop: Population, until: float | None) -> None:
    """Report a population that expects more contracts in a run than MAX_CONTRACTS."""
    if pop.rate is None:
        return
    expected = pop.expected_contracts(until)
    if not math.isfinite(expected) or expected > MAX_CONTRACTS:
        col.add(
            ("population", "arrivals", "rate"),
            f"{pop.rate:g} contracts a day until {until:g}d expects {expected:.4g} contracts; "
            f"a run has at most {MAX_CONTRACTS:,}",
        )
