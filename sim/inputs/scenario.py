"""Scenario files: scripted contracts, population settings, expectations; validated with positions.

A scenario is read once into frozen dataclasses. Every problem found is reported with the file,
line and column where it was written; all problems of a file are reported together.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.problems import Collector
from ..core.units import format_duration
from ..core.yamlio import Doc, InputError, Loc, Problem, allowed_roots, load_file
from ..machine.transitions import ACTIONS, ARGS, AUTOMATIC, REQUIRED
from ..machine.vocabulary import CONTRACT_STATES, MILESTONE_STATES, Action
from ..money.ledger import FLOWS
from ..policy import dated
from ..policy.model import RULE_IDS, Override, Policy, load_policy
from .population_spec import Population, check_expected_size, parse_population, stalling_stages

SCENARIO_KEYS = (
    "scenario",
    "description",
    "policy",
    "policy_overrides",
    "start",
    "until",
    "seed",
    "replications",
    "contracts",
    "population",
    "expect",
)

#: the most replications a scenario file may ask for
MAX_REPLICATIONS = 10_000


@dataclass(frozen=True)
class ScriptStep:
    """One scripted action at a time; ``line`` is where it was written."""

    at: float
    action: Action
    line: int


@dataclass(frozen=True)
class MilestoneSpec:
    id: str
    amount: int
    due: float | None


@dataclass(frozen=True)
class ContractSpec:
    id: str
    client: str
    freelancer: str
    milestones: tuple[MilestoneSpec, ...]
    script: tuple[ScriptStep, ...]


@dataclass(frozen=True)
class StateCheck:
    """A state expectation: at a time (or ``"end"``), the states, balances and totals that hold."""

    at: float | str
    milestones: dict[str, str] = field(default_factory=dict)  # "c1/m1": state
    contracts: dict[str, str] = field(default_factory=dict)
    balances: dict[str, int] = field(default_factory=dict)  # account: minor units
    totals: dict[str, int] = field(default_factory=dict)  # flow: minor units


@dataclass(frozen=True)
class EventMatch:
    """What an event (or rejection, or absent event) must match; unset fields match anything.

    ``written`` keeps the keys in the order the file gives them, for messages.
    """

    action: str | None = None
    contract: str | None = None
    milestone: str | None = None  # "c1/m1"
    actor: str | None = None
    rule: str | None = None
    at: float | None = None
    amount: int | None = None  # minor units
    written: tuple[str, ...] = ()

    def items(self) -> list[tuple[str, Any]]:
        """(key, value) of every field the file gave, in its order."""
        return [(key, getattr(self, key)) for key in self.written]

    def only(self, *keys: str) -> EventMatch:
        """The same match restricted to ``keys``."""
        return EventMatch(
            **{k: getattr(self, k) for k in keys}, written=tuple(k for k in self.written if k in keys)
        )


@dataclass(frozen=True)
class Expectation:
    """One item of ``expect``: its kind, its parsed content and where it was written."""

    kind: str  # state | rejected | event | no_event
    spec: StateCheck | EventMatch
    file: str
    line: int
    index: int


@dataclass(frozen=True)
class Scenario:
    """A validated scenario, with its fully resolved policy."""

    path: Path
    title: str
    policy: Policy
    policy_ref: str
    overrides: tuple[tuple[str, Any], ...]
    start: dt.date | None
    until: float | None
    seed: int
    replications: int
    contracts: tuple[ContractSpec, ...]
    expectations: tuple[Expectation, ...]
    population: Population | None = None  # for sampled scenarios
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    #: things that are valid but probably not meant (e.g. script steps after until), with positions
    warnings: tuple[Problem, ...] = ()
    #: extra folders files may be read from (besides the scenario's folder tree)
    allow: tuple[Path, ...] = ()

    @property
    def is_population(self) -> bool:
        return self.population is not None

    def with_overrides(self, pairs: list[tuple[str, Any]]) -> Scenario:
        """The same scenario under more policy overrides (in-memory changes to it are kept)."""
        allpairs = [*self.overrides, *pairs]
        policy = load_policy(
            self.policy_ref,
            [(k, v, None, ()) for k, v in allpairs],
            base=self.path.parent,
            allow=self.allow,
        )
        message = None if self.start is not None else start_missing(policy)
        if message:
            raise InputError([Problem("<command line --set>", None, None, message, "start")])
        if policy.dated and self.start is not None:
            try:
                policy = policy.at(self.start)
            except ValueError as exc:
                raise InputError([Problem("<command line --set>", None, None, str(exc), "start")]) from None
        if self.population is not None:  # the same people under another pack: can they stall it?
            stalls = stalling_stages(self.population, policy)
            if stalls:
                doc = load_file(self.path)  # read again only to say where: population's line
                raise InputError([doc.problem(("population",), m, key=True) for _name, m in stalls])
        return dataclasses.replace(self, policy=policy, overrides=tuple(allpairs))


def start_missing(policy: Policy) -> str | None:
    """Why the scenario needs ``start:`` under this policy (business days), or None."""
    if policy.dated:
        changes = ", ".join(v.shown for v in policy.versions if v.first != dated.BEGIN)
        return (
            f"required key 'start' is missing: the policy has dated values (versions from {changes}), "
            "so the scenario needs the calendar date of t = 0, e.g. start: 2026-01-05"
        )
    found = policy.business_day_windows()
    if not found:
        return None
    windows = ", ".join(f"{k} is {v}" for k, v in found.items())
    return (
        f"required key 'start' is missing: the policy counts business days ({windows}), so the "
        "scenario needs the calendar date of t = 0, e.g. start: 2026-01-05"
    )


def _bd_source(policy: Policy, raw_over: dict) -> Loc:
    """Where the first business-day window was written in the scenario: its override, or ``policy:``."""
    for key in policy.business_day_keys():
        if key in raw_over:
            return ("policy_overrides", key)
    return ("policy",)


#: the arguments of each action, from the transition table
_ARGS = ARGS
_REQUIRED = REQUIRED
#: arguments of a pack's own opening action (``open_dispute``, declared as a procedure's opened_by)
_OPENER_ARGS = ("milestone",)


_STEP_KEYS = ("at", *ACTIONS, *dict.fromkeys(a for args in _ARGS.values() for a in args))


def _unknown_action(actor: str, name: str) -> str:
    """Why ``name`` is not an action of ``actor``: whose action it is, or what it may be a typo of."""
    owners = [a for a, names in ACTIONS.items() if name in names]
    if owners:
        return f"{name} is a {' and '.join(owners)} action, not a {actor} one (write {owners[0]}: {name})"
    msg = f"unknown {actor} action {name!r}"
    hint = difflib.get_close_matches(name, ACTIONS[actor], n=1)
    if hint:
        msg += f" (did you mean {hint[0]!r}?)"
    return msg + f"; allowed: {', '.join(ACTIONS[actor])}"


def _parse_step(
    col: Collector,
    item: Any,
    loc: Loc,
    digits: int,
    known: set[str],
    openers: frozenset[tuple[str, str]] = frozenset(),
) -> ScriptStep | None:
    if not isinstance(item, dict):
        col.add(loc, "a script step is a mapping like {at: 1d, client: fund, milestone: m1}")
        return None
    actors = [a for a in ACTIONS if a in item]
    if len(actors) != 1:
        if not actors:
            col.keys(item, _STEP_KEYS, loc)
            if any(col.misspelt(item, a) for a in ACTIONS):
                return None  # the misspelt actor is the root cause, reported above with a did-you-mean
        what = "none" if not actors else ", ".join(actors)
        col.add(loc, f"a script step names exactly one actor (client, freelancer or platform); found {what}")
        return None
    actor = actors[0]
    name = item[actor]
    if name in AUTOMATIC:
        col.add((*loc, actor), f"{name} happens automatically and cannot be scripted")
        return None
    if isinstance(name, bool) or not isinstance(name, str):
        col.add((*loc, actor), f"expected the name of a {actor} action; allowed: {', '.join(ACTIONS[actor])}")
        return None
    pack_action = (actor, name) in openers
    if name not in ACTIONS[actor] and not pack_action:
        col.add((*loc, actor), _unknown_action(actor, name))
        return None
    allowed = ("at", actor, *(_OPENER_ARGS if pack_action else _ARGS.get(name, ())))
    col.keys(item, allowed, loc)
    for req in _REQUIRED.get(name, ()):
        if req not in item:
            col.add(loc, f"{name} needs {req!r}")
    at = col.duration(item.get("at"), (*loc, "at")) if "at" in item else None
    if "at" not in item:
        col.add(loc, "a script step needs 'at' (a duration such as 5d)")
    kwargs: dict[str, Any] = {}
    mid = item.get("milestone")
    if name == "add_milestone" and isinstance(mid, dict):
        col.keys(mid, ("id", "amount", "due"), (*loc, "milestone"))
        kwargs["milestone"] = str(mid.get("id", ""))
        if "id" not in mid:
            col.add((*loc, "milestone"), "the new milestone needs an 'id'")
        kwargs["amount"] = col.money(mid.get("amount"), (*loc, "milestone", "amount"), digits)
        if "due" in mid:
            kwargs["due"] = col.duration(mid["due"], (*loc, "milestone", "due"))
    elif name == "add_milestone" and mid is not None:
        col.add((*loc, "milestone"), "add_milestone takes {id, amount, due?}")
    elif mid is not None:
        if not isinstance(mid, (str, int)) or isinstance(mid, bool):
            col.add((*loc, "milestone"), f"expected a milestone id, got {mid!r}")
        elif str(mid) not in known:
            col.add((*loc, "milestone"), f"unknown milestone {mid!r}; known: {', '.join(sorted(known))}")
        kwargs["milestone"] = str(mid)
    if "amount" in item:
        kwargs["amount"] = col.money(item["amount"], (*loc, "amount"), digits)
    if "due" in item:
        kwargs["due"] = col.duration(item["due"], (*loc, "due"))
    for key in ("release", "refund"):
        if key in item:
            kwargs[key] = col.money(item[key], (*loc, key), digits, allow_zero=True)
    if "position" in item:
        pos = item["position"]
        if isinstance(pos, bool) or not isinstance(pos, int) or pos < 0:
            col.add((*loc, "position"), f"position is a 0-based index, got {pos!r}")
        else:
            kwargs["position"] = pos
    if "order" in item:
        order = item["order"]
        if not isinstance(order, list) or not all(isinstance(x, (str, int)) for x in order):
            col.add((*loc, "order"), "order is a list of milestone ids")
        else:
            bad = [str(x) for x in order if str(x) not in known]
            if bad:
                col.add(
                    (*loc, "order"),
                    f"unknown milestone(s) {bad}; known: {', '.join(sorted(known))}",
                )
            kwargs["order"] = tuple(str(x) for x in order)
    for key in ("answer", "procedure"):
        if key in item:
            value = item[key]
            if isinstance(value, bool) or not isinstance(value, str) or not value.strip():
                col.add((*loc, key), f"{key} is a name, got {value!r}")
            else:
                kwargs[key] = value
    if at is None:
        return None
    line = col.doc.where(loc)[0] or 0
    return ScriptStep(at, Action(actor, str(name), **kwargs), line)


def _parse_contracts(
    col: Collector,
    data: Any,
    digits: int,
    until: float | None = None,
    openers: frozenset[tuple[str, str]] = frozenset(),
) -> tuple[ContractSpec, ...]:
    if not isinstance(data, list) or not data:
        col.add(("contracts",), "contracts is a non-empty list")
        return ()
    out = []
    seen: dict[str, int] = {}
    for i, item in enumerate(data):
        loc: Loc = ("contracts", i)
        if not isinstance(item, dict):
            col.add(loc, "a contract is a mapping with id, client, freelancer, milestones, script")
            continue
        col.keys(item, ("id", "client", "freelancer", "milestones", "script"), loc)
        cid = col.ident(item, "id", loc, "contract")
        client = col.ident(item, "client", loc, "client")
        freelancer = col.ident(item, "freelancer", loc, "freelancer")
        if cid is not None:
            if cid in seen:
                col.add((*loc, "id"), f"duplicate contract id {cid!r} (also contracts[{seen[cid]}])")
            seen[cid] = i
        milestones = []
        mids: set[str] = set()
        raw_ms = item.get("milestones", [])
        if not isinstance(raw_ms, list):
            col.add((*loc, "milestones"), "milestones is a list of {id, amount, due?}")
            raw_ms = []
        for j, ms in enumerate(raw_ms):
            mloc: Loc = (*loc, "milestones", j)
            if not isinstance(ms, dict):
                col.add(mloc, "a milestone is a mapping {id, amount, due?}")
                continue
            col.keys(ms, ("id", "amount", "due"), mloc)
            mid = col.text(ms, "id", mloc)
            if mid is not None and not mid.strip():
                col.add((*mloc, "id"), "a milestone id must not be empty")
                mid = None
            amount = col.money(ms.get("amount"), (*mloc, "amount"), digits) if "amount" in ms else None
            if "amount" not in ms:
                col.missing(ms, "amount", mloc)
            due = col.duration(ms["due"], (*mloc, "due")) if ms.get("due") is not None else None
            if mid is not None:
                if mid in mids:
                    col.add((*mloc, "id"), f"duplicate milestone id {mid!r} in contract {cid}")
                mids.add(mid)
                # a bad amount is reported above; keeping the id avoids follow-on "unknown milestone" noise
                milestones.append(MilestoneSpec(mid, amount or 0, due))
        raw_script = item.get("script", [])
        if not isinstance(raw_script, list):
            col.add((*loc, "script"), "script is a list of steps")
            raw_script = []
        known = set(mids)
        for j, step in enumerate(raw_script):  # ids added by add_milestone are known too
            if isinstance(step, dict) and step.get("client") == "add_milestone":
                new = step.get("milestone")
                if isinstance(new, dict) and "id" in new:
                    # a rejected add may be retried with the same id; a declared id may not be reused
                    if str(new["id"]) in mids:
                        col.add(
                            (*loc, "script", j, "milestone", "id"),
                            f"duplicate milestone id {new['id']!r} in contract {cid}",
                        )
                    known.add(str(new["id"]))
        steps = []
        for j, step in enumerate(raw_script):
            parsed = _parse_step(col, step, (*loc, "script", j), digits, known, openers)
            if parsed is not None:
                steps.append(parsed)
                if until is not None and parsed.at > until:
                    col.warn(
                        (*loc, "script", j, "at"),
                        f"step at {format_duration(parsed.at)} is after until ({format_duration(until)}) "
                        "and will not run",
                    )
        if cid is not None:
            # a bad party is reported above; keeping the contract avoids follow-on "unknown contract" noise
            out.append(ContractSpec(cid, client or "", freelancer or "", tuple(milestones), tuple(steps)))
    return tuple(out)


_STATE_KEYS = ("at", "milestones", "contracts", "balances", "totals")
_MATCH_KEYS = {
    "rejected": ("action", "rule", "milestone", "contract", "at", "actor"),
    "event": ("action", "milestone", "contract", "actor", "at", "amount"),
    "no_event": ("action", "milestone", "contract", "actor", "at", "amount"),
}


def _parse_expect(
    col: Collector,
    data: Any,
    contracts: tuple[ContractSpec, ...],
    digits: int,
    openers: frozenset[tuple[str, str]] = frozenset(),
):
    if data is None:
        return ()
    if not isinstance(data, list):
        col.add(("expect",), "expect is a list of checks")
        return ()
    by_id = {c.id: c for c in contracts}
    mids = {f"{c.id}/{m}" for c in contracts for m in _known_mids(c)}
    parties = {f"client:{c.client}" for c in contracts} | {f"freelancer:{c.freelancer}" for c in contracts}
    accounts = {"escrow", "client", "freelancer", "platform", "balance"} | parties
    accounts |= {f"balance:{c.client}" for c in contracts}  # refund.to: platform_balance
    accounts |= {f"escrow:{c}" for c in by_id}
    accounts |= {f"freelancer:{c.freelancer}:{s}" for c in contracts for s in ("pending", "available")}
    all_actions = {a for acts in ACTIONS.values() for a in acts} | set(AUTOMATIC) | {a for _, a in openers}
    out = []
    for i, item in enumerate(data):
        loc: Loc = ("expect", i)
        line = col.doc.where(loc)[0] or 0
        if not isinstance(item, dict):
            col.add(loc, "an expectation is a mapping")
            continue
        kinds = [k for k in ("rejected", "event", "no_event") if k in item]
        if kinds:
            kind = kinds[0]
            col.keys(item, (kind,), loc)
            spec = item[kind]
            if not isinstance(spec, dict):
                col.add((*loc, kind), f"{kind} takes a mapping of {', '.join(_MATCH_KEYS[kind])}")
                continue
            col.keys(spec, _MATCH_KEYS[kind], (*loc, kind))
            parsed: dict[str, Any] = {}
            for key, value in spec.items():
                vloc = (*loc, kind, key)
                if key in ("action", "rule", "milestone", "contract", "actor") and (
                    isinstance(value, bool) or not isinstance(value, (str, int))
                ):
                    col.add(vloc, f"{key} is a single name, got {value!r}")
                    continue
                if key == "at":
                    parsed["at"] = col.duration(value, vloc)
                elif key == "amount":
                    parsed["amount"] = col.money(value, vloc, digits, allow_zero=True)
                elif key == "action":
                    if value not in all_actions:
                        col.add(vloc, f"unknown action {value!r}")
                    parsed[key] = value
                elif key == "rule":
                    if value not in RULE_IDS:
                        col.add(vloc, f"unknown rule {value!r}; rules: {', '.join(RULE_IDS)}")
                    parsed[key] = value
                elif key == "milestone":
                    ref = str(value)
                    if "/" not in ref and len(by_id) == 1:
                        ref = f"{next(iter(by_id))}/{ref}"
                    if ref not in mids:
                        col.add(
                            vloc,
                            f"unknown milestone {value!r}; write contract/milestone, e.g. c1/m1",
                        )
                    parsed[key] = ref
                elif key == "contract":
                    if str(value) not in by_id:
                        col.add(vloc, f"unknown contract {value!r}")
                    parsed[key] = str(value)
                elif key == "actor":
                    if value not in ("client", "freelancer", "platform"):
                        col.add(vloc, "actor is client, freelancer or platform")
                    parsed[key] = value
            match = EventMatch(**parsed, written=tuple(parsed))
            out.append(Expectation(kind, match, col.doc.file, line, i))
            continue
        col.keys(item, _STATE_KEYS, loc)
        if "at" not in item:
            col.add(loc, "a state check needs 'at' (a duration or 'end')")
            continue
        at = "end" if item["at"] == "end" else col.duration(item["at"], (*loc, "at"))
        spec: dict[str, Any] = {"at": at}
        for key, allowed_states, known in (
            ("milestones", MILESTONE_STATES, mids),
            ("contracts", CONTRACT_STATES, set(by_id)),
        ):
            block = item.get(key, {})
            if not isinstance(block, dict):
                col.add((*loc, key), f"{key} is a mapping of id: state")
                continue
            checks = {}
            for ref, state in block.items():
                if ref not in known:
                    col.add(
                        (*loc, key, ref),
                        f"unknown {key[:-1]} {ref!r}; known: {', '.join(sorted(known))}",
                        key=True,
                    )
                if state not in allowed_states:
                    col.add(
                        (*loc, key, ref),
                        f"unknown state {state!r}; states: {', '.join(allowed_states)}",
                    )
                checks[ref] = state
            spec[key] = checks
        for key, known, what in (("balances", accounts, "account"), ("totals", set(FLOWS), "flow")):
            block = item.get(key, {})
            if not isinstance(block, dict):
                col.add((*loc, key), f"{key} is a mapping of {what}: amount")
                continue
            checks = {}
            for ref, amount in block.items():
                if ref not in known and not _party_unknown(contracts, ref):
                    col.add(
                        (*loc, key, ref),
                        f"unknown {what} {ref!r}; known: {', '.join(sorted(known))}",
                        key=True,
                    )
                # a freelancer's balance is a net position: a fee paid out of pocket takes it below 0
                net = key == "balances" and str(ref).startswith("freelancer")
                checks[ref] = col.money(amount, (*loc, key, ref), digits, allow_zero=True, allow_negative=net)
            spec[key] = checks
        out.append(Expectation("state", StateCheck(**spec), col.doc.file, line, i))
    return tuple(out)


def _party_unknown(contracts: tuple[ContractSpec, ...], account: str) -> bool:
    """True for a party account whose party could not be read (that problem is reported already)."""
    kind = account.split(":", 1)[0]
    return (
        kind in ("client", "freelancer") and ":" in account and any(not getattr(c, kind) for c in contracts)
    )


def _known_mids(c: ContractSpec) -> list[str]:
    ids = [m.id for m in c.milestones]
    ids += [s.action.milestone for s in c.script if s.action.name == "add_milestone" and s.action.milestone]
    return ids


def load_scenario(
    path: str | Path, overrides: list[tuple[str, Any]] | None = None, *, allow: Sequence[str | Path] = ()
) -> Scenario:
    """Read and validate a scenario file; ``overrides`` come from the command line (--set).

    Files the scenario names (a policy pack by path, its ``extends``, empirical CSVs) must lie in
    the scenario's folder or below, or in a folder of ``allow`` or of MILESTONE_SIM_ALLOW_PATHS
    (symlinks resolved first).
    """
    return _build(load_file(path), Path(path), overrides, allow)


def scenario_from_data(
    data: Any,
    path: str | Path,
    overrides: list[tuple[str, Any]] | None = None,
    *,
    allow: Sequence[str | Path] = (),
) -> Scenario:
    """Validate an in-memory scenario mapping as if it were the file ``path`` (for sweeps).

    Relative references (policy paths, empirical CSVs) resolve beside ``path`` and are confined
    as in ``load_scenario``; problems name ``path`` and the key, without line numbers.
    """
    return _build(Doc(str(path), data), Path(path), overrides, allow)


def _build(
    doc: Doc, path: Path, overrides: list[tuple[str, Any]] | None, allow: Sequence[str | Path] = ()
) -> Scenario:
    data = doc.data
    if not isinstance(data, dict):
        raise InputError([doc.problem((), "a scenario file is a mapping with scenario:, policy:, ...")])
    col = Collector(doc)
    col.keys(data, SCENARIO_KEYS, ())
    if "scenario" in data:
        title = col.free_text(data, "scenario", "scenario (the title)") or path.stem
    else:
        col.missing(data, "scenario", (), "required key 'scenario' (the title) is missing")
        title = path.stem
    col.free_text(data, "description", "description")
    policy_ref = data.get("policy")
    if "policy" not in data or policy_ref is None:
        col.missing(
            data, "policy", (), "required key 'policy' is missing: name a pack (e.g. upwork) or a path"
        )
    elif not isinstance(policy_ref, str):
        col.add(("policy",), "policy names a pack (e.g. upwork) or a path")
    raw_over = data.get("policy_overrides") or {}
    policy_overrides: list[Override] = []
    if not isinstance(raw_over, dict):
        col.add(
            ("policy_overrides",),
            "policy_overrides is a mapping of dotted keys, e.g. {review.window: 7d}",
        )
        raw_over = {}
    for key, value in raw_over.items():
        policy_overrides.append((str(key), value, doc, ("policy_overrides", key)))
    for key, value in overrides or []:
        policy_overrides.append((key, value, None, ()))
    start = data.get("start")
    if start is not None and not isinstance(start, dt.date):
        try:
            start = dt.date.fromisoformat(str(start))
        except ValueError:
            col.add(("start",), f"start is a calendar date like 2026-01-05, got {start!r}")
            start = None
    until = None
    if data.get("until") is not None:
        until = col.duration(data["until"], ("until",))
    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        col.add(("seed",), f"seed is a whole number >= 0, got {seed!r}")
        seed = 0
    reps = data.get("replications", 1)
    if isinstance(reps, int) and not isinstance(reps, bool) and reps > MAX_REPLICATIONS:
        col.add(
            ("replications",),
            f"{reps:.4g} replications: the most supported is {MAX_REPLICATIONS:,}",
        )
        reps = 1
    elif isinstance(reps, bool) or not isinstance(reps, int) or reps < 1:
        col.add(("replications",), f"replications is a whole number >= 1, got {reps!r}")
        reps = 1
    policy = None
    if isinstance(policy_ref, str):
        try:
            policy = load_policy(
                policy_ref,
                policy_overrides,
                base=path.parent,
                ref_doc=doc,
                ref_loc=("policy",),
                allow=allow,
            )
        except InputError as exc:
            col.problems.extend(exc.problems)
    if policy is not None and start is None and "start" not in data:
        message = start_missing(policy)
        if message:
            where = _bd_source(policy, raw_over)
            problem = doc.problem(where, message, key=True)
            col.problems.append(dataclasses.replace(problem, key="start"))
    if policy is not None and policy.dated and isinstance(start, dt.date):
        try:
            policy = policy.at(start)  # the version in force at t = 0 stands for the pack in outputs
        except ValueError as exc:
            col.add(("start",), str(exc))
    digits = policy.digits if policy else 2
    contracts: tuple[ContractSpec, ...] = ()
    population = None
    if "contracts" in data and "population" in data:
        col.add(
            ("population",),
            "a scenario has either contracts (scripted) or population (sampled), not both",
        )
    elif "contracts" in data:
        openers = frozenset(policy.openers) if policy is not None else frozenset()
        contracts = _parse_contracts(col, data["contracts"], digits, until, openers)
    elif "population" in data:
        roots = allowed_roots(path.parent, allow=allow)
        population = parse_population(
            col, data["population"], path.parent, digits, roots=roots, policy=policy
        )
        if until is None and "until" not in data:
            col.add((), "a population scenario needs 'until' (how long arrivals run)")
        elif population is not None and until is not None:
            check_expected_size(col, population, until)
    else:
        col.add((), "a scenario needs contracts (scripted) or population (sampled)")
    pack_actions = frozenset(policy.openers) if policy is not None else frozenset()
    expectations = _parse_expect(col, data.get("expect"), contracts, digits, pack_actions)
    if col.problems:
        raise InputError(_dedupe(col.problems))
    assert policy is not None
    return Scenario(
        path=path,
        title=title,
        policy=policy,
        policy_ref=str(policy_ref),
        overrides=tuple((k, v) for k, v, _, _ in policy_overrides),
        start=start,
        until=until,
        seed=seed,
        replications=reps,
        contracts=contracts,
        expectations=expectations,
        population=population,
        raw=data,
        warnings=tuple(col.warnings),
        allow=tuple(Path(p) for p in allow),
    )


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen, out = set(), []
    for p in problems:
        key = (p.file, p.line, p.column, p.message)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out
