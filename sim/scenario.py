"""Scenario files: scripted contracts, population settings, expectations; validated with positions.

A scenario is read once into frozen dataclasses. Every problem found is reported with the file,
line and column where it was written; all problems of a file are reported together.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .actions import ACTIONS, AUTOMATIC, CONTRACT_STATES, MILESTONE_STATES, Action
from .ledger import FLOWS
from .policy import RULE_IDS, Override, Policy, load_policy
from .sampling import Population, parse_population
from .units import UnitError, parse_duration, parse_money
from .yamlio import Doc, InputError, Loc, Problem, load_file

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
class Expectation:
    """One item of ``expect``: its kind, its parsed content and where it was written."""

    kind: str  # state | rejected | event | no_event
    spec: dict[str, Any]
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

    @property
    def is_population(self) -> bool:
        return self.population is not None

    def with_overrides(self, pairs: list[tuple[str, Any]]) -> Scenario:
        """The same scenario under more policy overrides (in-memory changes to it are kept)."""
        allpairs = [*self.overrides, *pairs]
        policy = load_policy(self.policy_ref, [(k, v, None, ()) for k, v in allpairs], base=self.path.parent)
        return dataclasses.replace(self, policy=policy, overrides=tuple(allpairs))


class _Collector:
    """Collects problems so a file reports all of them at once."""

    def __init__(self, doc: Doc) -> None:
        self.doc = doc
        self.problems: list[Problem] = []

    def add(self, loc: Loc, message: str, *, key: bool = False) -> None:
        self.problems.append(self.doc.problem(loc, message, key=key))

    def money(self, value: Any, loc: Loc, digits: int, *, allow_zero: bool = False) -> int | None:
        try:
            return parse_money(value, digits, allow_zero=allow_zero)
        except UnitError as exc:
            self.add(loc, str(exc))
            return None

    def duration(self, value: Any, loc: Loc) -> float | None:
        try:
            return parse_duration(value)
        except UnitError as exc:
            self.add(loc, str(exc))
            return None

    def keys(self, data: dict, allowed: tuple[str, ...], loc: Loc) -> None:
        import difflib

        for key in data:
            if key not in allowed:
                hint = difflib.get_close_matches(key, allowed, n=1)
                msg = f"unknown key {key!r}"
                if hint:
                    msg += f" (did you mean {hint[0]!r}?)"
                msg += f"; allowed: {', '.join(allowed)}"
                self.add((*loc, key), msg, key=True)

    def text(self, data: dict, key: str, loc: Loc, *, required: bool = True) -> str | None:
        value = data.get(key)
        if value is None:
            if required:
                self.add(loc, f"required key {key!r} is missing")
            return None
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            self.add((*loc, key), f"expected a name, got {value!r}")
            return None
        return str(value)


_ARGS: dict[str, tuple[str, ...]] = {
    "fund": ("milestone",),
    "approve": ("milestone", "amount"),
    "request_changes": ("milestone",),
    "add_milestone": ("milestone", "position"),
    "edit_milestone": ("milestone", "amount", "due"),
    "delete_milestone": ("milestone",),
    "reorder_milestones": ("order",),
    "request_refund": ("milestone",),
    "submit": ("milestone",),
    "resolve_dispute": ("milestone", "release", "refund"),
}
_REQUIRED: dict[str, tuple[str, ...]] = {
    "fund": ("milestone",),
    "approve": ("milestone",),
    "request_changes": ("milestone",),
    "add_milestone": ("milestone",),
    "edit_milestone": ("milestone",),
    "delete_milestone": ("milestone",),
    "reorder_milestones": ("order",),
    "submit": ("milestone",),
    "resolve_dispute": ("release", "refund"),
}


def _parse_step(col: _Collector, item: Any, loc: Loc, digits: int, known: set[str]) -> ScriptStep | None:
    if not isinstance(item, dict):
        col.add(loc, "a script step is a mapping like {at: 1d, client: fund, milestone: m1}")
        return None
    actors = [a for a in ACTIONS if a in item]
    if len(actors) != 1:
        if not actors:
            col.keys(item, ("at", *ACTIONS, *{a for args in _ARGS.values() for a in args}), loc)
        what = "none" if not actors else ", ".join(actors)
        col.add(loc, f"a script step names exactly one actor (client, freelancer or platform); found {what}")
        return None
    actor = actors[0]
    name = item[actor]
    if name in AUTOMATIC:
        col.add((*loc, actor), f"{name} happens automatically and cannot be scripted")
        return None
    if name not in ACTIONS[actor]:
        col.add((*loc, actor), f"unknown {actor} action {name!r}; allowed: {', '.join(ACTIONS[actor])}")
        return None
    allowed = ("at", actor, *_ARGS.get(name, ()))
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
    if at is None:
        return None
    line = col.doc.where(loc)[0] or 0
    return ScriptStep(at, Action(actor, str(name), **kwargs), line)


def _parse_contracts(col: _Collector, data: Any, digits: int) -> tuple[ContractSpec, ...]:
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
        cid = col.text(item, "id", loc)
        client = col.text(item, "client", loc)
        freelancer = col.text(item, "freelancer", loc)
        if cid is not None:
            if cid in seen:
                col.add((*loc, "id"), f"duplicate contract id {cid!r} (also contracts[{seen[cid]}])")
            seen[cid] = i
            if "/" in cid or ":" in cid:
                col.add((*loc, "id"), "ids may not contain '/' or ':'")
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
            amount = col.money(ms.get("amount"), (*mloc, "amount"), digits) if "amount" in ms else None
            if "amount" not in ms:
                col.add(mloc, "required key 'amount' is missing")
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
            parsed = _parse_step(col, step, (*loc, "script", j), digits, known)
            if parsed is not None:
                steps.append(parsed)
        if cid is not None and client is not None and freelancer is not None:
            out.append(ContractSpec(cid, client, freelancer, tuple(milestones), tuple(steps)))
    return tuple(out)


_STATE_KEYS = ("at", "milestones", "contracts", "balances", "totals")
_MATCH_KEYS = {
    "rejected": ("action", "rule", "milestone", "contract", "at", "actor"),
    "event": ("action", "milestone", "contract", "actor", "at", "amount"),
    "no_event": ("action", "milestone", "contract", "actor", "at", "amount"),
}


def _parse_expect(col: _Collector, data: Any, contracts: tuple[ContractSpec, ...], digits: int):
    if data is None:
        return ()
    if not isinstance(data, list):
        col.add(("expect",), "expect is a list of checks")
        return ()
    by_id = {c.id: c for c in contracts}
    mids = {f"{c.id}/{m}" for c in contracts for m in _known_mids(c)}
    parties = {f"client:{c.client}" for c in contracts} | {f"freelancer:{c.freelancer}" for c in contracts}
    accounts = {"escrow", "client", "freelancer", "platform"} | parties
    accounts |= {f"escrow:{c}" for c in by_id}
    accounts |= {f"freelancer:{c.freelancer}:{s}" for c in contracts for s in ("pending", "available")}
    all_actions = {a for acts in ACTIONS.values() for a in acts} | set(AUTOMATIC)
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
            out.append(Expectation(kind, parsed, col.doc.file, line, i))
            continue
        col.keys(item, _STATE_KEYS, loc)
        if "at" not in item:
            col.add(loc, "a state check needs 'at' (a duration or 'end')")
            continue
        at = "end" if item["at"] == "end" else col.duration(item["at"], (*loc, "at"))
        spec = {"at": at}
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
                if ref not in known:
                    col.add(
                        (*loc, key, ref),
                        f"unknown {what} {ref!r}; known: {', '.join(sorted(known))}",
                        key=True,
                    )
                checks[ref] = col.money(amount, (*loc, key, ref), digits, allow_zero=True)
            spec[key] = checks
        out.append(Expectation("state", spec, col.doc.file, line, i))
    return tuple(out)


def _known_mids(c: ContractSpec) -> list[str]:
    ids = [m.id for m in c.milestones]
    ids += [s.action.milestone for s in c.script if s.action.name == "add_milestone" and s.action.milestone]
    return ids


def load_scenario(path: str | Path, overrides: list[tuple[str, Any]] | None = None) -> Scenario:
    """Read and validate a scenario file; ``overrides`` come from the command line (--set)."""
    return _build(load_file(path), Path(path), overrides)


def scenario_from_data(
    data: Any, path: str | Path, overrides: list[tuple[str, Any]] | None = None
) -> Scenario:
    """Validate an in-memory scenario mapping as if it were the file ``path`` (for sweeps).

    Relative references (policy paths, empirical CSVs) resolve beside ``path``; problems name
    ``path`` and the key, without line numbers.
    """
    return _build(Doc(str(path), data), Path(path), overrides)


def _build(doc: Doc, path: Path, overrides: list[tuple[str, Any]] | None) -> Scenario:
    data = doc.data
    if not isinstance(data, dict):
        raise InputError([doc.problem((), "a scenario file is a mapping with scenario:, policy:, ...")])
    col = _Collector(doc)
    col.keys(data, SCENARIO_KEYS, ())
    title = col.text(data, "scenario", ()) or path.stem
    policy_ref = data.get("policy")
    if not isinstance(policy_ref, str):
        col.add(("policy",) if "policy" in data else (), "policy names a pack (e.g. upwork) or a path")
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
    if isinstance(reps, bool) or not isinstance(reps, int) or reps < 1:
        col.add(("replications",), f"replications is a whole number >= 1, got {reps!r}")
        reps = 1
    policy = None
    if isinstance(policy_ref, str):
        try:
            policy = load_policy(
                policy_ref, policy_overrides, base=path.parent, ref_doc=doc, ref_loc=("policy",)
            )
        except InputError as exc:
            col.problems.extend(exc.problems)
    digits = policy.digits if policy else 2
    contracts: tuple[ContractSpec, ...] = ()
    population = None
    if "contracts" in data and "population" in data:
        col.add(
            ("population",),
            "a scenario has either contracts (scripted) or population (sampled), not both",
        )
    elif "contracts" in data:
        contracts = _parse_contracts(col, data["contracts"], digits)
    elif "population" in data:
        population = parse_population(col, data["population"], path.parent, digits)
        if until is None:
            col.add((), "a population scenario needs 'until' (how long arrivals run)")
    else:
        col.add((), "a scenario needs contracts (scripted) or population (sampled)")
    expectations = _parse_expect(col, data.get("expect"), contracts, digits)
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
    )


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen, out = set(), []
    for p in problems:
        key = (p.file, p.line, p.column, p.message)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out
