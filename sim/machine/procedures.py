"""Running procedures: open one over escrow, start its stages, take answers, fees and timeouts, and
follow each outcome until the money is settled (FORMAT section 7).

The declarations are :mod:`sim.policy.procedures`; this module gives them their meaning and is
called only by :mod:`sim.machine.contract`. Like it, it is pure: it mutates the contract it is given
and returns events with postings and timers, and raises :class:`Rejected` before any change.
"""

from __future__ import annotations

from ..money.ledger import Transfer
from ..policy.calendar import Clock
from ..policy.model import Policy
from ..policy.procedures import ByActed, Goto, Procedure, Stage, StageFee
from .effects import (
    close,
    holding,
    milestone,
    money,
    need_contract,
    need_milestone,
    pay_freelancer,
    refund,
    refunded_amount,
    returned_to,
)
from .records import STALE, Contract, Emitted, OpenProcedure, Outcome, Rejected, Timer
from .vocabulary import REVIEWABLE, Action

PARTY_NAMES = ("client", "freelancer")


def covered(c: Contract, proc: OpenProcedure) -> int:
    """Money under the procedure: its milestones' escrow, plus credit when it covers the contract."""
    return sum(c.by_id[m].escrowed for m in proc.milestones) + (c.credit if proc.include_credit else 0)


def fee_base(c: Contract, proc: OpenProcedure, fee: StageFee) -> int:
    """What a stage fee's percentage is of: the money covered, or all the contract's escrow."""
    return c.escrow() if fee.basis == "contract_escrow" else covered(c, proc)


def disputed_amount(policy: Policy, c: Contract) -> int:
    """Money waiting for the platform's decision in the contract's procedure (0 when none)."""
    proc = c.procedure
    if proc is None or not awaits_platform(policy, proc):
        return 0
    return covered(c, proc)


def awaits_platform(policy: Policy, proc: OpenProcedure) -> bool:
    """Is the procedure waiting for the platform (a ``party: platform`` stage, or outcome platform)?"""
    return proc.awaiting_platform or _stage_of(policy, proc).party == "platform"


def _declared(policy: Policy, proc: OpenProcedure) -> Procedure:
    return policy.all_procedures[proc.name]


def _stage_of(policy: Policy, proc: OpenProcedure) -> Stage:
    return policy.all_procedures[proc.name].stages[proc.stage]


def _party(proc: OpenProcedure, party: str) -> str:
    """``respondent``/``filer`` as the client or freelancer of this procedure."""
    if party == "filer":
        return proc.filer
    if party == "respondent":
        return "client" if proc.filer == "freelancer" else "freelancer"
    return party


def must_act(proc: OpenProcedure, stage: Stage) -> tuple[str, ...]:
    """The parties the stage waits for (both for ``party: both``; none for platform stages)."""
    if stage.party == "both":
        return PARTY_NAMES
    if stage.party == "platform" or proc.awaiting_platform:
        return ()
    return (_party(proc, stage.party),)


def _mid(proc: OpenProcedure) -> str:
    return proc.milestones[0] if len(proc.milestones) == 1 else ""


def _start_stage(
    policy: Policy, c: Contract, proc: OpenProcedure, now: float, clock: Clock
) -> tuple[list, str]:
    """Enter the procedure's current stage: its timer, and the words saying who must act."""
    stage = _stage_of(policy, proc)
    proc.stage_started_at = now
    proc.answered = {}
    proc.awaiting_platform = False
    if stage.fee is not None:  # fees paid earlier stay paid (a winner's fee may come back later)
        proc.paid = {}
        proc.fee_stage = proc.stage
    if stage.party == "platform":
        return [], "the platform decides" if stage.binding else "the platform proposes a settlement"
    parties = must_act(proc, stage)
    who = parties[0] if len(parties) == 1 else "both parties"
    window = stage.window_for(parties[0]) if len(parties) == 1 else stage.window_for("client")
    assert window is not None
    words = f"{who} {'has' if len(parties) == 1 else 'have'} {clock.describe(now, window)} to answer"
    if stage.fee is not None:
        words += f"; the fee to act is {money(policy, stage_fee(stage, fee_base(c, proc, stage.fee)))}"
        words += " each" if stage.fee.payer == "each" else ""
    timers = []
    if stage.on_timeout is not None:
        timers.append(Timer(window, Action("platform", timeout_event(stage.on_timeout), gen=proc.gen)))
    return timers, words


def enter_platform_stage(policy: Policy, c: Contract, proc: OpenProcedure, now: float) -> list[Emitted]:
    """A platform stage with a fee from escrow, just entered: a small claim is split at once (the
    fee waived); otherwise the fee comes out of the money covered, milestones in order."""
    stage = _stage_of(policy, proc)
    fee = stage.fee
    if stage.party != "platform" or fee is None:
        return []
    base = fee_base(c, proc, fee)
    where = f"{proc.name}.{stage.name}"
    if fee.waived_below is not None and base <= fee.waived_below:
        assert fee.split_below is not None
        money_in = covered(c, proc)  # the balance decides it is small; the disputed money is split
        release = int(money_in * fee.split_below)  # the freelancer's share, rounded down
        out = settle(policy, c, proc, release, money_in - release, now, "platform", "small_claim")
        first = out.events[0]
        first.message = (
            f"small claim at {where}: {money(policy, base)} is at most {money(policy, fee.waived_below)}, "
            f"so the fee is waived and the money split; "
        ) + first.message.removeprefix("dispute decided: ")
        first.keys = (f"procedures.{proc.name}.{stage.name}.fee",)
        return out.events
    value = min(stage_fee(stage, base), base)
    postings = []
    left = value
    for mid in proc.milestones:
        m = c.by_id[mid]
        part = min(left, m.escrowed)
        if part:
            postings.append(Transfer(c.escrow_account, "platform", "fees", part, mid))
            m.escrowed -= part
            left -= part
    if left and proc.include_credit:
        part = min(left, c.credit)
        postings.append(Transfer(c.escrow_account, "platform", "fees", part, ""))
        c.credit -= part
        left -= part
    if left and fee.basis == "contract_escrow":  # the rest from the contract's other escrow
        for m in holding(c):
            part = min(left, m.escrowed)
            if part and m.id not in proc.milestones:
                postings.append(Transfer(c.escrow_account, "platform", "fees", part, m.id))
                m.escrowed -= part
                left -= part
        if left and not proc.include_credit and c.credit:
            part = min(left, c.credit)
            postings.append(Transfer(c.escrow_account, "platform", "fees", part, ""))
            c.credit -= part
            left -= part
    note = f"the {where} fee of {money(policy, value)} is taken from the escrow"
    if fee.basis == "contract_escrow":
        note += f" ({fee.percent}% of the contract's {money(policy, base)} in escrow)"
    keys = (f"procedures.{proc.name}.{stage.name}.fee",)
    return [Emitted("platform", "stage_fee_taken", _mid(proc), value, note, postings, keys)]


def stage_fee(stage: Stage, base: int) -> int:
    """The stage's fee on ``base`` (the money covered): fixed plus percent, within its bounds."""
    from ..core.units import percent_of

    fee = stage.fee
    assert fee is not None
    value = fee.fixed or 0
    if fee.percent is not None:
        part = percent_of(base, fee.percent, "half_up")
        if fee.minimum is not None:
            part = max(part, fee.minimum)
        if fee.maximum is not None:
            part = min(part, fee.maximum)
        value += part
    return value


# ------------------------------------------------------------------------------ opening


def open_procedure(
    policy: Policy,
    c: Contract,
    name: str,
    a: Action,
    now: float,
    clock: Clock,
    what: str,
) -> Outcome:
    """Open procedure ``name`` for ``a.actor`` over a milestone (``a.milestone``) or the contract."""
    declared = policy.all_procedures[name]
    need_contract(c, declared.contract_states, what)
    if c.procedure is not None:
        if c.procedure.name == "escrow_refund":
            raise Rejected("invalid_state", "a refund request is already pending")
        raise Rejected("invalid_state", f"procedure {c.procedure.name} is already open on contract {c.id}")
    if a.milestone is not None:
        m = milestone(c, a.milestone)
        states = declared.milestone_states or REVIEWABLE
        need_milestone(m, states, f"{what} of" if what == "request a refund" else f"{what} on")
        targets, include_credit = [m], False
    elif declared.covers == "milestone":
        raise Rejected("invalid_state", f"{name} covers one milestone: name it (milestone: ...)")
    else:
        targets, include_credit = holding(c), True
        if not targets and c.credit == 0:
            raise Rejected("invalid_state", f"nothing of contract {c.id} is held in escrow")
    need = declared.after_change_requests
    early = [m for m in targets if m.change_requests < need]
    if early:
        m = early[0]
        raise Rejected(
            "revisions_first",
            f"cannot {what} on milestone {m.id}: it had {m.change_requests} change request(s); "
            f"{name} needs {need} first",
            (f"procedures.{name}.after_change_requests",),
        )
    proc = _open(c, name, a.actor, tuple(m.id for m in targets), include_credit, now, declared)
    timers, words = _start_stage(policy, c, proc, now, clock)
    amount = money(policy, covered(c, proc))
    note = (
        f"refund of {amount} requested; {words}"
        if a.name == "request_refund"
        else f"{name} opened over {amount}; {words}"
    )
    keys = (f"procedures.{name}.opened_by", *_keys(proc, declared.stages[0], "window", "on_timeout"))
    events = [Emitted(a.actor, a.name, a.milestone or "", 0, note, [], keys)]
    events += enter_platform_stage(policy, c, proc, now)
    return Outcome(True, events=events, timers=timers)


def _open(
    c: Contract,
    name: str,
    filer: str,
    mids: tuple[str, ...],
    include_credit: bool,
    now: float,
    declared: Procedure,
    stage: int = 0,
) -> OpenProcedure:
    prior = tuple(c.by_id[mid].state for mid in mids)
    for mid in mids:
        m = c.by_id[mid]
        m.state = declared.state
        m.gen += 1
    c.proc_gen += 1
    proc = OpenProcedure(
        name, filer, mids, include_credit, now, c.proc_gen, stage=stage, stage_started_at=now, prior=prior
    )
    c.procedure = proc
    return proc


def open_dormant(policy: Policy, c: Contract, now: float, clock: Clock) -> Outcome:
    """Escrow without activity for ``dormancy.after``: open the dormancy procedure over all of it."""
    assert policy.dormancy is not None
    name = policy.dormancy.procedure
    declared = policy.all_procedures[name]
    proc = _open(c, name, "platform", tuple(m.id for m in holding(c)), True, now, declared)
    timers, words = _start_stage(policy, c, proc, now, clock)
    note = f"contract dormant: {money(policy, covered(c, proc))} in escrow with no activity; {words}"
    ev = Emitted("platform", "dormant", "", 0, note, [], ("dormancy.after", "dormancy.procedure"))
    return Outcome(True, events=[ev], timers=timers)


# ------------------------------------------------------------------------------ answering


def pending(c: Contract, what: str, name: str | None = None) -> OpenProcedure:
    """The open procedure (``name``: that one), or a rejection saying there is none."""
    proc = c.procedure
    if proc is None or (name is not None and proc.name != name):
        which = f"procedure {name}" if name else "procedure"
        raise Rejected("procedure", f"cannot {what}: no {which} is open on contract {c.id}")
    return proc


def respond(
    policy: Policy, c: Contract, a: Action, now: float, clock: Clock, answer: str, event: str
) -> Outcome:
    """``a.actor`` gives ``answer`` in the open procedure's stage; ``event`` names the event."""
    proc = pending(c, f"answer {answer}", a.procedure)
    declared = _declared(policy, proc)
    stage = declared.stages[proc.stage]
    parties = must_act(proc, stage)
    where = f"{proc.name}.{stage.name}"
    if not parties:
        raise Rejected("not_your_turn", f"{where} waits for the platform's decision")
    if a.actor not in parties:
        raise Rejected("not_your_turn", f"{where} waits for the {parties[0]}, not the {a.actor}")
    if answer not in stage.answers:
        allowed = ", ".join(stage.answers) or "none (pay_fee or wait)"
        raise Rejected("procedure", f"{answer!r} is not an answer at {where}; answers: {allowed}")
    if stage.fee is not None and stage.fee.payer in ("each", a.actor) and a.actor not in proc.paid:
        raise Rejected("procedure", f"{where} needs the fee first: pay_fee")
    _check_requires(policy, proc, stage.answers[answer])
    if stage.party == "both":
        if a.actor in proc.answered:
            raise Rejected("invalid_state", f"the {a.actor} already answered at {where}")
        proc.answered[a.actor] = answer
        first = next(iter(stage.answers))
        if answer == first and len(proc.answered) < 2:
            other = "freelancer" if a.actor == "client" else "client"
            note = f"{a.actor} answers {answer} at {where}; waiting for the {other}"
            return Outcome(
                True, events=[Emitted(a.actor, event, _mid(proc), 0, note, [], _keys(proc, stage))]
            )
        if answer == first and any(v != first for v in proc.answered.values()):
            answer = next(v for v in proc.answered.values() if v != first)
    return follow(policy, c, proc, stage.answers[answer], a.actor, event, now, clock, timed=False)


def _check_requires(policy: Policy, proc: OpenProcedure, outcome: object) -> None:
    """Refuse an answer leading into a stage whose ``requires`` the money under the procedure does
    not meet (only answers lead there: the loader refuses timeouts into such a stage)."""
    if outcome == "next":
        target, index = proc.name, proc.stage + 1
    elif isinstance(outcome, Goto):
        target = outcome.procedure or proc.name
        index = policy.all_procedures[target].stage(outcome.stage) if outcome.stage else 0
    else:
        return
    entered = policy.all_procedures[target].stages[index]
    if entered.requires and not set(entered.requires) & set(proc.prior):
        was = "/".join(sorted(set(proc.prior))) or "none"
        raise Rejected(
            "procedure",
            f"{target}.{entered.name} needs a milestone that was {'/'.join(entered.requires)} when "
            f"{proc.name} opened (its milestones were {was})",
            (f"procedures.{target}.{entered.name}.requires",),
        )


def pay_fee(policy: Policy, c: Contract, a: Action, now: float, clock: Clock) -> Outcome:
    """``a.actor`` pays the stage's fee to act in it (an arbitration fee)."""
    proc = pending(c, "pay a fee", a.procedure)
    stage = _stage_of(policy, proc)
    where = f"{proc.name}.{stage.name}"
    if stage.fee is None:
        raise Rejected("procedure", f"{where} has no fee to pay")
    payer = stage.fee.payer
    allowed = must_act(proc, stage) if payer == "each" else (_party(proc, payer),)
    if a.actor not in allowed:
        raise Rejected(
            "not_your_turn", f"the fee at {where} is paid by the {' or '.join(allowed) or 'platform'}"
        )
    if a.actor in proc.paid:
        raise Rejected("invalid_state", f"the {a.actor} already paid the fee at {where}")
    fee = stage_fee(stage, fee_base(c, proc, stage.fee))
    source = c.client_account if a.actor == "client" else f"freelancer:{c.freelancer}:available"
    postings = [Transfer(source, "platform", "stage_fee", fee, _mid(proc))]
    proc.paid[a.actor] = fee
    keys = _keys(proc, stage, "fee")
    ev = Emitted(a.actor, "pay_fee", _mid(proc), fee, f"{a.actor} paid the {where} fee", postings, keys)
    out = Outcome(True, events=[ev])
    if isinstance(stage.on_timeout, ByActed) and set(proc.paid) >= set(must_act(proc, stage)):
        more = follow(policy, c, proc, stage.on_timeout.both, "platform", "all_paid", now, clock, timed=False)
        out.events += more.events
        out.timers += more.timers
    return out


def stage_timeout(policy: Policy, c: Contract, a: Action, now: float, clock: Clock) -> Outcome:
    """The stage's window ran out with no (deciding) answer: its ``on_timeout`` outcome."""
    proc = c.procedure
    if proc is None or proc.gen != a.gen:
        return STALE
    stage = _stage_of(policy, proc)
    outcome = stage.on_timeout
    if isinstance(outcome, ByActed):
        paid = len(proc.paid) if proc.fee_stage == proc.stage else 0
        outcome = (outcome.none, outcome.one, outcome.both)[min(paid, 2)]
    assert outcome is not None
    return follow(policy, c, proc, outcome, "platform", timeout_event(outcome), now, clock, timed=True)


def timeout_event(outcome: object) -> str:
    """The automatic event a timeout makes: auto_refund, auto_release, or stage_timeout."""
    return {"refund": "auto_refund", "release": "auto_release"}.get(str(outcome), "stage_timeout")


def timer_is_stale(c: Contract, a: Action) -> bool:
    """Is this stage timer superseded (the stage was answered or left)?"""
    proc = c.procedure
    return proc is None or proc.gen != a.gen


# ------------------------------------------------------------------------------ outcomes


def follow(
    policy: Policy,
    c: Contract,
    proc: OpenProcedure,
    outcome: str | Goto,
    actor: str,
    event: str,
    now: float,
    clock: Clock,
    *,
    timed: bool,
) -> Outcome:
    """Carry out one outcome of the open procedure; ``event`` names the event it makes."""
    stage = _stage_of(policy, proc)
    keys = _keys(proc, stage, "window", "on_timeout") if timed else _keys(proc, stage, "answers")
    if outcome in ("favour_filer", "favour_respondent", "to_payer"):
        party = _winner(proc, str(outcome))
        out = Outcome(True)
        if outcome == "to_payer":
            out.events.append(_return_fee(c, proc, party, policy))
        outcome = "release" if party == "freelancer" else "refund"
        if timed and event == "stage_timeout":
            event = timeout_event(outcome)
        rest = follow(policy, c, proc, outcome, actor, event, now, clock, timed=timed)
        rest.events = [*rest.events, *out.events]
        for ev in rest.events:
            ev.keys = keys
        return rest
    if outcome == "refund":
        label = "auto_refunded" if timed else "refunded"
        return Outcome(True, events=[refund_covered(policy, c, proc, now, actor, event, label, keys)])
    if outcome == "release":
        label = "auto_released" if timed else "released"
        return release_covered(policy, c, proc, now, actor, event, label, keys)
    if outcome == "apply_proposal" and proc.proposal is None:  # no proposal was made on this path
        outcome = "platform"
    if outcome == "apply_proposal":
        assert proc.proposal is not None
        release, refund = proc.proposal
        out = settle(policy, c, proc, release, refund, now, actor, event)
        out.events[0].message = "proposal accepted: " + out.events[0].message.removeprefix(
            "dispute decided: "
        )
        out.events[0].keys = keys
        return out
    if outcome == "platform":
        proc.awaiting_platform = True
        c.proc_gen += 1
        proc.gen = c.proc_gen
        note = f"{proc.name}.{stage.name}: the platform decides"
        return Outcome(True, events=[Emitted(actor, event, _mid(proc), 0, note, [], keys)])
    if outcome == "nothing":
        for mid in proc.milestones:
            m = c.by_id[mid]
            m.state = "funded"
            m.gen += 1
        c.procedure = None
        c.proc_gen += 1
        note = f"{proc.name} closed; the money stays in escrow"
        return Outcome(True, events=[Emitted(actor, event, _mid(proc), 0, note, [], keys)])
    # move on: the next stage, a named stage, or another procedure
    if outcome == "next":
        target, index = proc.name, proc.stage + 1
    else:
        assert isinstance(outcome, Goto)
        target = outcome.procedure or proc.name
        index = policy.all_procedures[target].stage(outcome.stage) if outcome.stage else 0
    return _goto(policy, c, proc, target, index, actor, event, now, clock, keys)


def _goto(
    policy: Policy,
    c: Contract,
    proc: OpenProcedure,
    target: str,
    index: int,
    actor: str,
    event: str,
    now: float,
    clock: Clock,
    keys: tuple[str, ...],
) -> Outcome:
    if target == proc.name:
        c.proc_gen += 1
        proc.gen = c.proc_gen
        proc.stage = index
        timers, words = _start_stage(policy, c, proc, now, clock)
        note = f"{proc.name}.{_stage_of(policy, proc).name}: {words}"
    else:
        filer = actor if actor in PARTY_NAMES else proc.filer
        declared = policy.all_procedures[target]
        new = _open(c, target, filer, proc.milestones, proc.include_credit, now, declared, index)
        new.prior = proc.prior  # the states before the first procedure over this money
        new.proposal = proc.proposal
        new.disputed = True
        timers, words = _start_stage(policy, c, new, now, clock)
        amount = money(policy, covered(c, new))
        # "0 milestone(s)" when only credit is covered: the article's runs say it so (byte-identical)
        note = f"{len(new.milestones)} milestone(s), {amount}, in {target}; {words}"
        proc = new
    events = [Emitted(actor, event, _mid(proc), 0, note, [], keys)]
    events += enter_platform_stage(policy, c, proc, now)
    return Outcome(True, events=events, timers=timers)


def _winner(proc: OpenProcedure, outcome: str) -> str:
    if outcome == "favour_filer":
        return proc.filer if proc.filer in PARTY_NAMES else "client"
    if outcome == "favour_respondent":
        return "client" if proc.filer == "freelancer" else "freelancer"
    payers = list(proc.paid)
    assert len(payers) == 1, payers
    return payers[0]


def _return_fee(c: Contract, proc: OpenProcedure, party: str, policy: Policy | None = None) -> Emitted:
    fee = proc.paid.pop(party)
    account = c.client_account if party == "client" else f"freelancer:{c.freelancer}:available"
    postings = [Transfer("platform", account, "stage_fee", fee, _mid(proc))]
    keys: tuple[str, ...] = ()
    if policy is not None and proc.fee_stage >= 0:  # the stage whose fee it was
        keys = (f"procedures.{proc.name}.{_declared(policy, proc).stages[proc.fee_stage].name}.fee",)
    note = f"the {party}'s fee is returned"
    return Emitted("platform", "fee_returned", _mid(proc), fee, note, postings, keys)


def _close_procedure(c: Contract) -> None:
    c.procedure = None
    c.proc_gen += 1


def refund_covered(
    policy: Policy,
    c: Contract,
    proc: OpenProcedure,
    now: float,
    actor: str,
    event: str,
    outcome: str,
    keys: tuple[str, ...] = (),
) -> Emitted:
    """Return everything the procedure covers to the client and close it."""
    postings = refund(c, [c.by_id[mid] for mid in proc.milestones], proc.include_credit, now, outcome)
    _close_procedure(c)
    total = refunded_amount(postings)
    return Emitted(actor, event, _mid(proc), total, f"escrow returned to {returned_to(c)}", postings, keys)


def release_covered(
    policy: Policy,
    c: Contract,
    proc: OpenProcedure,
    now: float,
    actor: str,
    event: str,
    outcome: str,
    keys: tuple[str, ...] = (),
) -> Outcome:
    """Release everything the procedure covers to the freelancer and close it."""
    postings: list = []
    timers: list = []
    notes: list[str] = []
    total = covered(c, proc)
    for mid in proc.milestones:
        m = c.by_id[mid]
        if m.escrowed:
            pay_freelancer(policy, c, m.escrowed, "released", mid, postings, timers, notes)
        m.released += m.escrowed
        m.escrowed = 0
        m.gen += 1
        close(m, "released", outcome, now)
    if proc.include_credit and c.credit:
        pay_freelancer(policy, c, c.credit, "released", "", postings, timers, notes)
        c.credit = 0
    _close_procedure(c)
    note = "; ".join(["escrow released to the freelancer", *notes])
    return Outcome(
        True, events=[Emitted(actor, event, _mid(proc), total, note, postings, keys)], timers=timers
    )


def settle(
    policy: Policy,
    c: Contract,
    proc: OpenProcedure,
    release: int,
    refund: int,
    now: float,
    actor: str,
    event: str,
) -> Outcome:
    """Split the covered money: ``release`` to the freelancer (milestones in order), the rest back."""
    total = covered(c, proc)
    postings: list = []
    timers: list = []
    notes: list[str] = []
    to_release = release
    for mid in proc.milestones:
        m = c.by_id[mid]
        part = min(to_release, m.escrowed)
        to_release -= part
        if part:
            pay_freelancer(policy, c, part, "released", mid, postings, timers, notes)
        back = m.escrowed - part
        if back:
            postings.append(Transfer(c.escrow_account, c.refund_account, "refunded", back, mid))
            if m.refundable_fees:  # refundable fees come back in proportion to the money refunded
                fee_back = m.refundable_fees * back // m.escrowed
                if fee_back:
                    postings.append(Transfer("platform", c.refund_account, "fees", fee_back, mid))
                m.refundable_fees -= fee_back
        m.released += part
        m.refunded += back
        m.escrowed = 0
        m.gen += 1
        close(m, "resolved", "resolved", now)
    if proc.include_credit and c.credit:
        part = min(to_release, c.credit)
        if part:
            pay_freelancer(policy, c, part, "released", "", postings, timers, notes)
        if c.credit - part:
            postings.append(Transfer(c.escrow_account, c.refund_account, "refunded", c.credit - part, ""))
        c.credit = 0
    _close_procedure(c)
    note = f"dispute decided: {money(policy, release)} released, {money(policy, refund)} refunded"
    note = "; ".join([note, *notes])
    events = [Emitted(actor, event, _mid(proc), total, note, postings)]
    fee = _declared(policy, proc).stages[proc.fee_stage].fee if proc.fee_stage >= 0 else None
    if fee is not None and fee.refund_to == "winner" and release != refund:
        winner = "freelancer" if release > refund else "client"
        if winner in proc.paid:
            events.append(_return_fee(c, proc, winner, policy))
    return Outcome(True, events=events, timers=timers)


def check_split(policy: Policy, c: Contract, release: int, refund: int, total: int) -> None:
    """A decision's release + refund must add up to the money it decides."""
    if release + refund > total:
        raise Rejected(
            "insufficient_escrow",
            f"release {money(policy, release)} + refund {money(policy, refund)} is more than "
            f"the {money(policy, total)} in dispute",
        )
    if release + refund < total:
        raise Rejected(
            "invalid_state",
            f"release {money(policy, release)} + refund {money(policy, refund)} must add up to "
            f"the {money(policy, total)} in dispute",
        )


def decide(policy: Policy, c: Contract, a: Action, now: float, clock: Clock) -> Outcome:
    """The platform decides a waiting stage: a binding split, or a proposal for the next stage."""
    proc = c.procedure
    if proc is None:
        raise Rejected("invalid_state", f"contract {c.id} has no dispute to resolve")
    if not awaits_platform(policy, proc):
        stage = _stage_of(policy, proc)
        raise Rejected("not_your_turn", f"{proc.name}.{stage.name} waits for the parties, not the platform")
    if a.milestone is not None and a.milestone not in proc.milestones:
        raise Rejected("invalid_state", f"milestone {a.milestone} is not in the dispute")
    release, refund = a.release or 0, a.refund or 0
    check_split(policy, c, release, refund, covered(c, proc))
    stage = _stage_of(policy, proc)
    if stage.party == "platform" and not stage.binding and not proc.awaiting_platform:
        proc.proposal = (release, refund)
        c.proc_gen += 1
        proc.gen = c.proc_gen
        proc.stage += 1
        timers, words = _start_stage(policy, c, proc, now, clock)
        note = f"proposal: {money(policy, release)} released, {money(policy, refund)} refunded; {words}"
        keys = _keys(proc, stage, "decision")
        return Outcome(True, events=[Emitted(a.actor, a.name, _mid(proc), 0, note, [], keys)], timers=timers)
    out = settle(policy, c, proc, release, refund, now, a.actor, a.name)
    out.events[0].keys = _keys(proc, stage, "decision")
    return out


def settlement(policy: Policy, c: Contract, a: Action, now: float, clock: Clock) -> Outcome:
    """The parties settle at any stage: one proposes a split, the other accepts it."""
    proc = pending(c, "settle", a.procedure)
    if a.name == "propose_settlement":
        release, refund = a.release or 0, a.refund or 0
        check_split(policy, c, release, refund, covered(c, proc))
        proc.settlement = (a.actor, release, refund)
        note = f"settlement proposed: {money(policy, release)} released, {money(policy, refund)} refunded"
        keys = _keys(proc, _stage_of(policy, proc))
        return Outcome(True, events=[Emitted(a.actor, a.name, _mid(proc), 0, note, [], keys)])
    offer = proc.settlement
    if offer is not None and offer[0] == a.actor:
        raise Rejected(
            "not_your_turn", f"the settlement was proposed by the {a.actor}: the other party accepts it"
        )
    if offer is None:
        raise Rejected("invalid_state", "no settlement proposed by the other party is waiting")
    _by, release, refund = offer
    if release + refund != covered(c, proc):
        raise Rejected(
            "invalid_state", "the money under the procedure changed since the settlement was proposed"
        )
    keys = _keys(proc, _stage_of(policy, proc))
    out = settle(policy, c, proc, release, refund, now, a.actor, a.name)
    out.events[0].keys = keys
    out.events[0].message = "settled: " + out.events[0].message.removeprefix("dispute decided: ")
    return out


def _keys(proc: OpenProcedure, stage: Stage, *parts: str) -> tuple[str, ...]:
    base = f"procedures.{proc.name}.{stage.name}"
    return tuple(f"{base}.{part}" for part in parts) if parts else (base,)
