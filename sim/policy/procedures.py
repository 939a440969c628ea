"""Procedures: "someone asks; someone else has N days to answer; silence means X" (FORMAT section 7).

A procedure is a named sequence of stages over some escrow (one milestone's, or the contract's).
Each stage names the party who must act, how long they have, what each answer does, what silence
does, and optionally a fee. This module is the model of those declarations and the checks that
they make sense (every outcome names a stage or procedure that exists, every stage can end, no
loop can run without time passing). Running them is the state machine's job
(``sim.machine.procedures``).

The ``refund:`` section of a pack is the shorthand of the article's two procedures: the escrow
refund request (the freelancer answers within ``refund.response_window``) and the dispute the
platform decides. :func:`shorthand` builds them; a pack that declares a procedure of the same
name replaces it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import Field, StrictBool, StrictInt, StrictStr, field_validator, model_validator

from ..core.units import format_money
from .calendar import BusinessDays, is_zero
from .values import Money, Percent, PolicyDuration, RulesModel, show_duration

#: outcomes that settle or route the procedure's money (FORMAT section 7)
OUTCOME_NAMES = (
    "release",
    "refund",
    "favour_filer",
    "favour_respondent",
    "to_payer",
    "next",
    "platform",
    "apply_proposal",
    "nothing",
)
#: milestone states a stage may require of the money it covers (``Stage.requires``)
REQUIRABLE = ("funded", "submitted", "changes_requested")
PARTIES = ("client", "freelancer", "respondent", "filer", "both", "platform")
#: milestone states a procedure may put its milestones in while it is open
PROCEDURE_STATES = ("refund_requested", "disputed", "dormant")
#: contract states in which a procedure may be opened
OPEN_STATES = ("offered", "active", "ended")


class Goto(RulesModel):
    """An outcome that moves on: to another stage, or another procedure (optionally at a stage)."""

    stage: StrictStr | None = None
    procedure: StrictStr | None = None

    @model_validator(mode="after")
    def _one_target(self) -> Goto:
        if self.stage is None and self.procedure is None:
            raise ValueError(
                "an outcome mapping names a stage ({stage: NAME}) or a procedure ({procedure: NAME})"
            )
        return self


OutcomeSpec = Literal[OUTCOME_NAMES] | Goto  # type: ignore[valid-type]


class ByActed(RulesModel):
    """The timeout of a ``party: both`` stage, by how many parties acted (paid the fee)."""

    none: OutcomeSpec
    one: OutcomeSpec
    both: OutcomeSpec


class StageFee(RulesModel):
    """A fee paid to act in a stage (an arbitration fee): a fixed amount and/or a percentage.

    ``percent`` is of the money the procedure covers; ``minimum``/``maximum`` bound it. ``payer:
    each`` means every party that wants to act pays its own. The fee of a party that alone paid is
    returned with the money (outcome ``to_payer``); ``refund_to: winner`` also returns the winner's
    fee after a platform decision.

    ``from_escrow: true`` (platform stages) takes the fee out of the money the procedure covers
    when the stage starts, instead of from a party (Guru's arbitration fee comes out of SafePay).
    ``waived_below`` with ``split_below``: when the money covered is at or below that amount the
    fee is waived and the platform splits it instead of deciding, ``split_below`` being the
    freelancer's share (0.5: 50/50; the freelancer's part rounds down, the odd minor unit goes
    back to the client).
    """

    fixed: Money | None = None
    percent: Percent | None = None
    minimum: Money | None = None
    maximum: Money | None = None
    payer: Literal["each", "client", "freelancer", "filer", "respondent"] = "each"
    refund_to: Literal["payer_if_alone", "winner"] = "payer_if_alone"
    from_escrow: StrictBool = False
    waived_below: Money | None = None
    split_below: Percent | None = None
    #: what ``percent`` and ``waived_below`` are of: the money the procedure covers, or all the
    #: contract's escrow (Guru's fee is 5% of the whole SafePay balance)
    basis: Literal["covered", "contract_escrow"] = "covered"

    @field_validator("split_below")
    @classmethod
    def _share(cls, share: Decimal | None) -> Decimal | None:
        if share is not None and share > 1:
            raise ValueError(
                f"split_below is the freelancer's share, between 0 and 1 (0.5: 50/50), got {share}"
            )
        return share

    @model_validator(mode="after")
    def _bounds(self) -> StageFee:
        if self.fixed is None and self.percent is None:
            raise ValueError("a stage fee needs fixed, percent, or both")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError("the fee's minimum is more than its maximum: no amount satisfies both")
        if self.percent is None and (self.minimum is not None or self.maximum is not None):
            raise ValueError("minimum and maximum bound a percentage fee: give percent")
        if (self.waived_below is None) != (self.split_below is None):
            raise ValueError("waived_below and split_below go together: small claims are waived and split")
        if self.from_escrow and (self.payer != "each" or self.refund_to != "payer_if_alone"):
            raise ValueError("a fee from_escrow is paid by nobody: leave out payer and refund_to")
        return self


Window = PolicyDuration | dict[Literal["client", "freelancer"], PolicyDuration]


class Stage(RulesModel):
    """One step of a procedure: who must act, for how long, and what answers and silence do."""

    name: StrictStr
    party: Literal[PARTIES]  # type: ignore[valid-type]
    window: Window | None = None
    answers: dict[StrictStr, OutcomeSpec] = Field(default_factory=dict)
    on_timeout: OutcomeSpec | ByActed | None = None
    decision: Literal["binding", "proposal"] | None = None
    fee: StageFee | None = None
    #: an answer may lead into this stage only if a milestone the procedure covers was in one of
    #: these states when the procedure opened (Guru's arbitration needs an active release request:
    #: a raised invoice, ``[submitted]``)
    requires: tuple[Literal[REQUIRABLE], ...] = ()  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _shape(self) -> Stage:
        if self.party == "platform":
            if self.answers:
                raise ValueError(
                    "a platform stage has no answers: the platform decides it (resolve_dispute); "
                    "the parties answer in a stage of their own"
                )
            if self.window is not None or self.on_timeout is not None:
                raise ValueError("a platform stage has no window: it waits for the platform's decision")
            if self.fee is not None and not self.fee.from_escrow:
                raise ValueError(
                    "no party acts in a platform stage, so nobody can pay its fee: "
                    "take it from the escrow (fee.from_escrow: true) or put the fee on a party's stage"
                )
        else:
            if self.fee is not None and (self.fee.from_escrow or self.fee.waived_below is not None):
                raise ValueError("from_escrow and waived_below/split_below are for platform stages")
            if self.decision is not None:
                raise ValueError("decision belongs to platform stages (party: platform)")
            if self.window is None:
                raise ValueError(
                    f"stage {self.name!r} has neither a window nor a platform decision: "
                    "give window (e.g. 7d) or party: platform"
                )
            if not self.answers and self.on_timeout is None and self.fee is None:
                raise ValueError(
                    f"stage {self.name!r} can never end: it has no answers, no fee and no on_timeout"
                )
        if isinstance(self.on_timeout, ByActed) and self.party != "both":
            raise ValueError("on_timeout by who acted ({none, one, both}) is for party: both stages")
        if isinstance(self.window, dict) and self.party not in (
            "client",
            "freelancer",
            "respondent",
            "filer",
        ):
            raise ValueError("a window per party is for a stage one party must act in")
        if isinstance(self.window, dict):
            needed = [self.party] if self.party in ("client", "freelancer") else ["client", "freelancer"]
            missing = [x for x in needed if x not in self.window]
            if missing:
                who = "either party may be the " + self.party if len(needed) == 2 else "it waits for them"
                raise ValueError(f"the window names no {' or '.join(missing)} ({who})")
        timeouts = (
            [self.on_timeout.none, self.on_timeout.both]
            if isinstance(self.on_timeout, ByActed)
            else [self.on_timeout]
        )
        if "to_payer" in [*self.answers.values(), *timeouts]:
            raise ValueError("to_payer needs exactly one payer: use it as on_timeout {one: to_payer}")
        return self

    @property
    def binding(self) -> bool:
        return self.decision != "proposal"

    def window_for(self, party: str) -> float | BusinessDays | None:
        """The window of the party who must act (a per-party window picks theirs)."""
        if isinstance(self.window, dict):
            return self.window.get(party)  # type: ignore[call-overload]
        return self.window

    def outcomes(self) -> list[tuple[str, str | Goto]]:
        """Every (what, outcome) of this stage: answers and timeouts."""
        out: list[tuple[str, str | Goto]] = [(f"answers.{k}", v) for k, v in self.answers.items()]
        if isinstance(self.on_timeout, ByActed):
            out += [(f"on_timeout.{k}", getattr(self.on_timeout, k)) for k in ("none", "one", "both")]
        elif self.on_timeout is not None:
            out.append(("on_timeout", self.on_timeout))
        return out


class Procedure(RulesModel):
    """A named sequence of stages over escrow, opened by an action or by another procedure."""

    opened_by: dict[Literal["client", "freelancer"], StrictStr] | None = None
    contract_states: tuple[Literal[OPEN_STATES], ...] = ("active", "ended")  # type: ignore[valid-type]
    covers: Literal["contract", "milestone"] = "contract"
    state: Literal[PROCEDURE_STATES] = "disputed"  # type: ignore[valid-type]
    #: the states a milestone it covers must be in to open it (default: funded, in review or
    #: with changes requested); e.g. [submitted] for a rejection of a delivery
    milestone_states: tuple[Literal["funded", "submitted", "changes_requested"], ...] | None = None
    #: the change requests the milestones it covers must have had first (PeoplePerHour: a buyer
    #: allows at least two further iterations before asking for a refund); 0: none needed
    after_change_requests: Annotated[StrictInt, Field(ge=0, le=1000)] = 0
    stages: tuple[Stage, ...]

    @field_validator("stages")
    @classmethod
    def _stages(cls, stages: tuple[Stage, ...]) -> tuple[Stage, ...]:
        if not stages:
            raise ValueError("a procedure needs at least one stage")
        names = [s.name for s in stages]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"stage names must be unique within a procedure: {', '.join(twice)}")
        return stages

    def stage(self, name: str) -> int:
        return [s.name for s in self.stages].index(name)


class Dormancy(RulesModel):
    """Escrow left without activity opens a procedure (Upwork's dormant contracts)."""

    after: PolicyDuration
    since: Literal["last_due_or_activity"] = "last_due_or_activity"
    notices: tuple[PolicyDuration, ...] = ()  # how long before ``after`` ends a notice is sent
    procedure: StrictStr

    @field_validator("after")
    @classmethod
    def _positive(cls, after: Any) -> Any:
        if is_zero(after):
            raise ValueError("dormancy after 0 days would open the procedure at every step")
        return after


def shorthand(refund: Any) -> dict[str, Procedure]:
    """The ``refund:`` section as the article's two procedures: escrow_refund and dispute (none
    when the pack has no ``refund:`` section)."""
    if refund is None:
        return {}
    answers: dict[str, Any] = {"accept": "refund"}
    if refund.dispute:
        answers["decline"] = Goto(procedure="dispute")
    respond = Stage(
        name="respond",
        party="freelancer",
        window=refund.response_window,
        answers=answers,
        on_timeout="refund" if refund.on_timeout == "refund" else None,
    )
    return {
        "escrow_refund": Procedure(
            opened_by={"client": "request_refund"},
            contract_states=("active", "ended"),
            covers="contract",
            state="refund_requested",
            stages=(respond,),
        ),
        "dispute": Procedure(stages=(Stage(name="decide", party="platform", decision="binding"),)),
    }


def _entered(procedures: dict[str, Procedure], proc: Procedure, index: int, outcome: object) -> Stage | None:
    """The stage an outcome of ``proc``'s stage ``index`` leads into, if it moves on (else None)."""
    if outcome == "next":
        return proc.stages[index + 1] if index + 1 < len(proc.stages) else None
    if isinstance(outcome, Goto):
        target = procedures.get(outcome.procedure) if outcome.procedure else proc
        if target is None:
            return None
        names = [s.name for s in target.stages]
        if outcome.stage and outcome.stage not in names:
            return None
        return target.stages[names.index(outcome.stage) if outcome.stage else 0]
    return None


def check(
    procedures: dict[str, Procedure], dormancy: Dormancy | None, declared: frozenset[str] | None = None
) -> list[tuple[tuple, str]]:
    """Cross-checks no single stage can make: (data location, message) for each problem.

    ``declared``: the procedures the pack wrote itself (the others come from the shorthand)."""
    problems: list[tuple[tuple, str]] = []
    names = sorted(procedures)
    for pname, proc in procedures.items():
        proposals = False
        for i, stage in enumerate(proc.stages):
            here = ("procedures", pname, "stages", i)
            if stage.decision == "proposal":
                proposals = True
                if i == len(proc.stages) - 1:
                    problems.append(
                        ((*here, "decision"), "a proposal needs a next stage in which the parties accept it")
                    )
            has_fee = stage.fee is not None
            for what, outcome in stage.outcomes():
                loc = (*here, *what.split("."))
                entered = _entered(procedures, proc, i, outcome)
                if what.startswith("on_timeout") and entered is not None and entered.requires:
                    problems.append(
                        (
                            loc,
                            f"a timeout leads into stage {entered.name!r}, which requires "
                            f"{'/'.join(entered.requires)} milestones: only an answer can be refused, so "
                            "lead into it by an answer",
                        )
                    )
                if isinstance(outcome, Goto):
                    target = procedures.get(outcome.procedure) if outcome.procedure else proc
                    if outcome.procedure and target is None:
                        problems.append(
                            (
                                (*loc, "procedure"),
                                f"unknown procedure {outcome.procedure!r}; known: {', '.join(names)}",
                            )
                        )
                        continue
                    if (
                        outcome.stage
                        and target is not None
                        and outcome.stage not in [s.name for s in target.stages]
                    ):
                        owner = outcome.procedure or pname
                        known = ", ".join(s.name for s in target.stages)
                        problems.append(
                            (
                                (*loc, "stage"),
                                f"procedure {owner} has no stage {outcome.stage!r}; its stages: {known}",
                            )
                        )
                elif outcome == "next" and i == len(proc.stages) - 1:
                    problems.append(
                        (loc, f"next after the last stage ({stage.name}) of {pname}: there is none")
                    )
                elif outcome == "apply_proposal" and not proposals:
                    problems.append(
                        (loc, "apply_proposal needs an earlier platform stage with decision: proposal")
                    )
                elif outcome == "to_payer" and not has_fee:
                    problems.append(
                        (loc, "to_payer needs a fee in this stage: nobody pays, so there is no payer")
                    )
    problems += _instant_cycles(procedures)
    if not problems:
        problems += _unreachable(procedures, dormancy, declared)
    if dormancy is not None and dormancy.procedure not in procedures:
        problems.append(
            (
                ("dormancy", "procedure"),
                f"unknown procedure {dormancy.procedure!r}; known: {', '.join(names)}",
            )
        )
    return problems


def _unreachable(
    procedures: dict[str, Procedure], dormancy: Dormancy | None, declared: frozenset[str] | None = None
) -> list[tuple[tuple, str]]:
    """Procedures and stages nothing leads to: their keys would be read by no run of the pack.

    Only ``declared`` procedures are reported (None: all); the ones the ``refund:`` shorthand
    implies are followed but never reported."""
    starts = [(n, 0) for n, p in procedures.items() if p.opened_by]
    if dormancy is not None and dormancy.procedure in procedures:
        starts.append((dormancy.procedure, 0))
    seen: set[tuple[str, int]] = set()
    todo = list(starts)
    while todo:
        node = todo.pop()
        if node in seen:
            continue
        seen.add(node)
        pname, i = node
        proc = procedures[pname]
        stage = proc.stages[i]
        if stage.decision == "proposal" and i + 1 < len(proc.stages):
            todo.append((pname, i + 1))
        for _what, outcome in stage.outcomes():
            if outcome == "next" and i + 1 < len(proc.stages):
                todo.append((pname, i + 1))
            elif isinstance(outcome, Goto):
                target = outcome.procedure or pname
                index = procedures[target].stage(outcome.stage) if outcome.stage else 0
                todo.append((target, index))
    problems: list[tuple[tuple, str]] = []
    for pname, proc in procedures.items():
        if declared is not None and pname not in declared:
            continue
        if (pname, 0) not in seen:
            problems.append(
                (
                    ("procedures", pname),
                    f"procedure {pname} is never opened: it has no opened_by, no outcome of another "
                    "procedure leads to it and dormancy does not open it, so its keys decide nothing",
                )
            )
            continue
        for i, stage in enumerate(proc.stages):
            if (pname, i) not in seen:
                problems.append(
                    (
                        ("procedures", pname, "stages", i),
                        f"stage {stage.name} of {pname} is never reached: no answer, timeout or "
                        "proposal leads to it, so its keys decide nothing",
                    )
                )
    return problems


def _instant(stage: Stage) -> bool:
    """Can this stage end without time passing? (A zero window ends at once.)"""
    if stage.party == "platform" or stage.window is None:
        return False
    windows = stage.window.values() if isinstance(stage.window, dict) else [stage.window]
    return any(is_zero(w) for w in windows)


def _instant_cycles(procedures: dict[str, Procedure]) -> list[tuple[tuple, str]]:
    """Loops of zero-length windows: their timeouts would route money round without time passing."""
    edges: dict[tuple[str, int], list[tuple[str, int]]] = {}
    for pname, proc in procedures.items():
        for i, stage in enumerate(proc.stages):
            if not _instant(stage):
                continue
            targets = []
            timeouts = (
                [stage.on_timeout.none, stage.on_timeout.one, stage.on_timeout.both]
                if isinstance(stage.on_timeout, ByActed)
                else [stage.on_timeout]
            )
            for outcome in timeouts:
                if outcome == "next" and i + 1 < len(proc.stages):
                    targets.append((pname, i + 1))
                elif isinstance(outcome, Goto):
                    tp = outcome.procedure or pname
                    target = procedures.get(tp)
                    if target is None:
                        continue
                    names = [s.name for s in target.stages]
                    if outcome.stage is None:
                        targets.append((tp, 0))
                    elif outcome.stage in names:
                        targets.append((tp, names.index(outcome.stage)))
            edges[(pname, i)] = targets
    problems: list[tuple[tuple, str]] = []
    reported: set[tuple[str, int]] = set()
    for start in edges:
        path = [start]
        seen = {start}
        node = start
        while True:
            nxt = next((t for t in edges.get(node, []) if t in edges), None)
            if nxt is None:
                break
            if nxt in seen:
                cycle = path[path.index(nxt) :]
                if not reported & set(cycle):
                    reported |= set(cycle)
                    words = " -> ".join(f"{p}.{procedures[p].stages[i].name}" for p, i in [*cycle, nxt])
                    p, i = cycle[0]
                    problems.append(
                        (
                            ("procedures", p, "stages", i, "window"),
                            f"these stages time out into each other with no time passing: {words}; "
                            "give one of them a window longer than 0",
                        )
                    )
                break
            path.append(nxt)
            seen.add(nxt)
            node = nxt
    return problems


def resolved(procedures: dict[str, Procedure], digits: int) -> dict[str, Any]:
    """Procedures as plain YAML-ready data, in their written units."""

    def window(w: Any) -> Any:
        if w is None:
            return None
        if isinstance(w, dict):
            return {k: show_duration(v) for k, v in w.items()}
        return show_duration(w)

    def outcome(o: Any) -> Any:
        if isinstance(o, Goto):
            return {k: v for k, v in (("procedure", o.procedure), ("stage", o.stage)) if v is not None}
        if isinstance(o, ByActed):
            return {k: outcome(getattr(o, k)) for k in ("none", "one", "both")}
        return o

    def money(v: int | None) -> str | None:
        return None if v is None else format_money(v, digits)

    out: dict[str, Any] = {}
    for name, proc in procedures.items():
        stages = []
        for s in proc.stages:
            entry: dict[str, Any] = {"name": s.name, "party": s.party}
            if s.window is not None:
                entry["window"] = window(s.window)
            if s.answers:
                entry["answers"] = {k: outcome(v) for k, v in s.answers.items()}
            if s.on_timeout is not None:
                entry["on_timeout"] = outcome(s.on_timeout)
            if s.decision is not None:
                entry["decision"] = s.decision
            if s.requires:
                entry["requires"] = list(s.requires)
            if s.fee is not None:
                f = s.fee
                entry["fee"] = {
                    "fixed": money(f.fixed),
                    "percent": None if f.percent is None else str(f.percent),
                    "minimum": money(f.minimum),
                    "maximum": money(f.maximum),
                    "payer": f.payer,
                    "refund_to": f.refund_to,
                    **({"from_escrow": True} if f.from_escrow else {}),
                    **({"basis": f.basis} if f.basis != "covered" else {}),
                    **(
                        {"waived_below": money(f.waived_below), "split_below": str(f.split_below)}
                        if f.waived_below is not None
                        else {}
                    ),
                }
            stages.append(entry)
        out[name] = {
            **({"milestone_states": list(proc.milestone_states)} if proc.milestone_states else {}),
            **({"after_change_requests": proc.after_change_requests} if proc.after_change_requests else {}),
            "opened_by": dict(proc.opened_by) if proc.opened_by else None,
            "contract_states": list(proc.contract_states),
            "covers": proc.covers,
            "state": proc.state,
            "stages": stages,
        }
    return out
