"""Replaying a marketplace's event log through a pack, and what departs from it (FORMAT section 10).

Every party action of the log is played through the state machine at its time; the automatic
events the pack produces are matched with the log's within the tolerance. The replay *follows
production*: an action the pack forbids is reported and then applied with the policy's checks
skipped, an automatic event production fired late or early is applied when production fired it,
and one it never fired is not applied. One deviation is so reported once, not again in every
event after it.

How a deviation is classified (each a row of ``audit.csv``, with the money at stake):

- ``rejected_by_policy``: the log did something the pack forbids (its rule, keys and source);
- ``rejected_in_log``: the log refused (``outcome: rejected``) what the pack allows;
- ``missing_automatic``: the pack's timer came due and the log shows no such event by the
  tolerance, and a party acted next (or the log ended) without it;
- ``unexpected_automatic``: the log has an automatic event no timer of the pack explains;
- ``early`` / ``late``: the event happened, beyond the tolerance before or after its time;
- ``amount_mismatch``: a matched event moved another amount than the pack's;
- ``balance_mismatch``: the log's ``escrow`` column differs from the contract's escrow.

The engine's own tables are drained after every chunk of the log, so memory stays bounded by the
contracts in flight, not by the length of the log.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..analysis.aging import EscrowLots, table_from_lots
from ..core.units import format_duration, format_money
from ..core.yamlio import InputError, Problem
from ..engine.environment import NORMAL, TICKS_PER_DAY, Scheduled
from ..engine.simulation import FINISHED, TimerDue
from ..engine.simulation import Simulation as _Engine
from ..inputs.scenario import ContractSpec, MilestoneSpec, start_missing
from ..machine.contract import decided_by, timer_is_stale
from ..machine.vocabulary import Action
from ..policy.model import Policy
from .log import PLATFORM_ACTIONS, ContractRow, LogReader, LogRow, Mapping, read_contracts

KINDS = (
    "rejected_by_policy",
    "rejected_in_log",
    "missing_automatic",
    "unexpected_automatic",
    "early",
    "late",
    "amount_mismatch",
    "balance_mismatch",
)
FINDING_COLUMNS = (
    "time",
    "contract",
    "milestone",
    "kind",
    "rule",
    "policy_keys",
    "source",
    "expected",
    "found",
    "at_stake",
    "line",
)
#: what a timer would do, worked out on a copy: (action, milestone, amount, the keys that decide it)
Dry = tuple[str, str, int, tuple[str, ...]]
#: the default tolerance: one hour; the largest accepted
TOLERANCE = 1 / 24
MAX_TOLERANCE = 30.0


@dataclass(frozen=True, slots=True)
class Finding:
    """One departure of the log from the pack."""

    time: float
    contract: str
    milestone: str
    kind: str
    rule: str
    keys: tuple[str, ...]
    expected: str
    found: str
    at_stake: int
    line: int | None


def _auto(actor: str, action: str) -> bool:
    return actor == "platform" and action not in PLATFORM_ACTIONS


class Replay(_Engine):
    """The engine, fed a log instead of a script, that reports where the log departs from the pack.

    It extends the engine's timer hooks (:meth:`_timer`, :meth:`_timer_fired`) and event
    recording (:meth:`_record`); the decisions are the engine's own.
    """

    def __init__(
        self,
        policy: Policy,
        contracts: dict[str, ContractRow],
        *,
        tolerance: float = TOLERANCE,
        start: dt.date | None = None,
        fallback_args: bool = False,
    ) -> None:
        super().__init__(policy, keep_events=True, start=start)
        self.declared = contracts
        self.tolerance = tolerance
        self.fallback_args = fallback_args  # the log has no args column: read arguments from amount
        self.findings: list[Finding] = []
        self.horizon = math.inf
        self.rows = 0
        self.matched = 0
        self.finished: dict[str, str] = {}  # retired contracts: their final state
        self._when: dict[int, float] = {}  # id(TimerDue) -> when it is due
        self._pending: dict[str, list[TimerDue]] = {}
        self._cancelled: set[int] = set()
        self._deferred: dict[str, list[tuple[float, TimerDue, list[Dry]]]] = {}
        self._auto_rows: dict[str, list[LogRow]] = {}
        self._emitted: list[tuple[Any, int]] = []  # (Emitted, the contract's escrow after it)
        self._digits = policy.digits
        self._currency = policy.currency
        #: escrow aging (FORMAT section 11) of the replayed log: its escrow lots, and each funded
        #: milestone's (funded_at, closed_at) once its contract is done
        self.lots = EscrowLots()
        self.held = array("d")

    # ------------------------------------------------------------------------ feeding the log

    def load(self, row: LogRow) -> None:
        """Schedule one row at its time (in file order at equal times)."""
        self.rows += 1
        cid = row.contract
        if cid not in self.contracts and cid not in self.finished:
            self._open(self.declared[cid])
        if row.automatic:
            self._auto_rows.setdefault(cid, []).append(row)
            callback = self._observe
        else:
            callback = self._party
        self.env.call_in(row.time - self.env.now, _RowDue(callback, row), NORMAL)

    def _open(self, spec: ContractRow) -> None:
        ms = tuple(MilestoneSpec(mid, amount, due) for mid, amount, due in spec.milestones)
        self.add_contract(ContractSpec(spec.id, spec.client, spec.freelancer, ms, ()))

    def advance(self, until: float, *, inclusive: bool = False) -> None:
        """Play everything scheduled before ``until`` (or at it too)."""
        env = self.env
        pending, peek, step = env.pending, env.peek, env.step
        while pending():
            t = peek()
            if t > until or (t == until and not inclusive):
                break
            step()

    def drain(self) -> None:
        """Forget the engine's event tables (the findings are kept) and retire finished contracts;
        their escrow postings go to the aging lots first."""
        post = self.lots.post
        for p in self.ledger.postings:
            post(p.time, p.from_account, p.to_account, p.amount, p.milestone)
        rec = self.rec
        rec.events.clear()
        rec.versions.clear()
        rec.posting_events.clear()
        rec.balances.clear()
        rec.states.clear()
        rec.last_state.clear()
        rec.contracts.clear()  # contracts.csv's rows: the audit read them from CONTRACTS
        self.ledger.postings.clear()
        for cid, c in list(self.contracts.items()):
            if (
                c.state in FINISHED
                and c.escrow() == 0
                and c.procedure is None
                and not self._pending.get(cid)
                and not self._deferred.get(cid)
                and not self._auto_rows.get(cid)
                and not self.holds.get(cid)
            ):
                self.finished[cid] = c.state
                self._held(c, math.inf)
                del self.contracts[cid]
                self.declared.pop(cid, None)  # the reader knows it from ``finished`` now
                self.index.pop(cid, None)
                self.holds.pop(cid, None)
                self.ledger.close(c.escrow_account)
                self._pending.pop(cid, None)
                self._deferred.pop(cid, None)
                self._auto_rows.pop(cid, None)

    def finish(self, horizon: float) -> None:
        """The log ended at ``horizon``: play to it; a timer left unanswered well before it is missing."""
        self.horizon = horizon
        self.advance(horizon, inclusive=True)
        for cid, items in sorted(self._deferred.items()):
            for when, _due, dry in items:
                if when <= horizon - self.tolerance:
                    self._missing(cid, when, dry, f"nothing by the end of the log ({self._at(horizon)})")
        self._deferred.clear()
        self.drain()
        for c in self.contracts.values():
            self._held(c, horizon)

    def _held(self, c: Any, end: float) -> None:
        """Each funded milestone's days in escrow (to ``end`` when still held)."""
        for m in c.milestones:
            if m.funded_at is not None:
                closed = m.closed_at if m.closed_at is not None else end
                if math.isfinite(closed):
                    self.held.append(closed - m.funded_at)

    # ------------------------------------------------------------------------ timers

    def _timer(
        self, cid: str, delay: float, action: Action, cause: tuple[str, float] | None = None
    ) -> TimerDue:
        due = super()._timer(cid, delay, action, cause)
        self._when[id(due)] = round((self.env.now + delay) * TICKS_PER_DAY) / TICKS_PER_DAY
        self._pending.setdefault(cid, []).append(due)
        return due

    def _forget(self, due: TimerDue) -> float:
        items = self._pending.get(due.cid)
        if items is not None and due in items:
            items.remove(due)
        return self._when.pop(id(due), self.env.now)

    def _timer_fired(self, due: TimerDue) -> None:
        when = self._forget(due)
        if id(due) in self._cancelled:  # production fired it early: applied then
            self._cancelled.discard(id(due))
            self._timers -= 1
            return
        c = self.contracts.get(due.cid)
        if c is None or timer_is_stale(c, due.action):
            super()._timer_fired(due)
            return
        now = self.env.now
        near = [r for r in self._auto_rows.get(due.cid, ()) if abs(r.time - now) <= self.tolerance]
        if near:
            self._emitted = []
            super()._timer_fired(due)
            self._reconcile(c, None)
            return
        dry = self._dry(c, due.action)
        if not dry:  # it would do nothing visible (or be refused): let it
            super()._timer_fired(due)
            return
        # production shows nothing now: wait for its event (late), or for a party to act (missing)
        self._timers -= 1
        self._deferred.setdefault(due.cid, []).append((when, due, dry))

    def _try(self, c: Any, action: Action) -> Any:
        """Decide ``action`` now on a copy of the contract: what it would do, changing nothing."""
        memo: dict[int, Any] = {}
        if c.balances is not None:
            memo[id(c.balances)] = c.balances  # read only by the decision
        now = self.env.now
        return self.machine(c, action, now).decide(copy.deepcopy(c, memo), action, now, self.clock, False)

    def _dry(self, c: Any, action: Action) -> list[Dry]:
        """The automatic events ``action`` would produce now, decided on a copy of the contract."""
        now = self.env.now
        out = self._try(c, action)
        if not out.accepted:
            return []
        policy = self.machine(c, action, now).policy
        return [
            (ev.action, ev.milestone, ev.amount, decided_by(policy, ev))
            for ev in out.events
            if _auto(ev.actor, ev.action)
        ]

    # ------------------------------------------------------------------------ recording

    def _record(
        self, c: Any, ev: Any, now: float, cause: tuple[str, float] | None = None, args: str = ""
    ) -> None:
        super()._record(c, ev, now, cause, args)
        self._emitted.append((ev, self.ledger.balances.get(c.escrow_account, 0)))

    def _reconcile(self, c: Any, row: LogRow | None) -> None:
        """Match what the decision just emitted with the log: the party's own row, and each
        automatic event with an unconsumed automatic row of the contract within the tolerance."""
        emitted, self._emitted = self._emitted, []
        now = self.env.now
        own = row
        for ev, escrow in emitted:
            if own is not None and ev.actor == own.actor and ev.action == own.action:
                self._compare(own, ev, escrow)
                own = None
                continue
            if not _auto(ev.actor, ev.action):
                continue
            rows = self._auto_rows.get(c.id, [])
            match = next(
                (
                    r
                    for r in rows
                    if r.action == ev.action
                    and r.milestone == ev.milestone
                    and abs(r.time - now) <= self.tolerance
                ),
                None,
            )
            if match is None:
                self._missing(
                    c.id, now, [(ev.action, ev.milestone, ev.amount, ev.keys)], "no such event in the log"
                )
                continue
            rows.remove(match)
            self._compare(match, ev, escrow)

    def _compare(self, row: LogRow, ev: Any, escrow: int) -> None:
        self.matched += 1
        if row.amount is not None and row.amount != ev.amount:
            self._add(
                row.time,
                row.contract,
                row.milestone,
                "amount_mismatch",
                "",
                ev.keys,
                f"{ev.action} of {self._money(ev.amount)}",
                f"{self._money(row.amount)}",
                abs(row.amount - ev.amount),
                row.line,
            )
        if row.escrow is not None and row.escrow != escrow:
            self._add(
                row.time,
                row.contract,
                row.milestone,
                "balance_mismatch",
                "",
                ev.keys,
                f"escrow {self._money(escrow)} after {ev.action}",
                f"escrow {self._money(row.escrow)}",
                abs(row.escrow - escrow),
                row.line,
            )

    # ------------------------------------------------------------------------ the log's rows

    def _observe(self, entry: _RowDue) -> None:
        """An automatic event of the log comes due: already matched, or fired late, or early, or
        not the pack's at all."""
        row = entry.row
        rows = self._auto_rows.get(row.contract, [])
        if row not in rows:
            return  # matched by the pack's own event
        c = self.contracts.get(row.contract)
        key = (row.action, row.milestone)
        now = self.env.now
        if c is not None:
            for item in self._deferred.get(row.contract, []):
                when, due, dry = item
                if any(d[:2] == key for d in dry):
                    self._deferred[row.contract].remove(item)
                    self._emitted = []
                    self.act(due.cid, due.action, due.cause)
                    self._reconcile(c, None)
                    if now - when > self.tolerance:
                        self._timing("late", row, when, dry)
                    return
            for due in sorted(self._pending.get(row.contract, []), key=lambda d: self._when[id(d)]):
                if id(due) in self._cancelled or timer_is_stale(c, due.action):
                    continue
                dry = self._dry(c, due.action)
                if any(d[:2] == key for d in dry):
                    when = self._when[id(due)]
                    self._cancelled.add(id(due))
                    self._emitted = []
                    self.act(due.cid, due.action, due.cause)
                    self._reconcile(c, None)
                    if when - now > self.tolerance:
                        self._timing("early", row, when, dry)
                    return
        rows.remove(row)
        self._add(
            now,
            row.contract,
            row.milestone,
            "unexpected_automatic",
            "",
            (),
            "no automatic event: no timer of the pack is due",
            f"{row.action}" + (f" of {self._money(row.amount)}" if row.amount else ""),
            row.amount or 0,
            row.line,
        )

    def _timing(self, kind: str, row: LogRow, when: float, dry: list[Dry]) -> None:
        amount, keys = next((d[2:] for d in dry if d[:2] == (row.action, row.milestone)), (0, ()))
        self._add(
            row.time,
            row.contract,
            row.milestone,
            kind,
            "",
            keys,
            f"{row.action} at {self._at(when)}",
            f"at {self._at(row.time)} ({format_duration(abs(row.time - when))} {kind})",
            amount,
            row.line,
        )

    def _party(self, entry: _RowDue) -> None:
        """A party's (or the platform's own) decision in the log: played through the pack."""
        row = entry.row
        cid = row.contract
        for when, _due, dry in self._deferred.pop(cid, []):
            self._missing(
                cid, when, dry, f"nothing until the {row.actor}'s {row.action} at {self._at(row.time)}"
            )
        c = self.contracts.get(cid)
        if c is None:  # retired: finished with nothing in escrow
            if not row.rejected:
                self._add(
                    row.time, cid, row.milestone, "rejected_by_policy", "invalid_state", (),
                    f"rejected: contract {cid} is {self.finished.get(cid, 'finished')}", "accepted",
                    row.amount or 0, row.line,
                )  # fmt: skip
            return
        action = self._action(row)
        if row.rejected:
            if self._try(c, action).accepted:
                self._add(
                    row.time, cid, row.milestone, "rejected_in_log", "", (),
                    f"{row.action} accepted", "rejected", row.amount or 0, row.line,
                )  # fmt: skip
            return
        self._emitted = []
        if self.act(cid, action):
            self._reconcile(c, row)
            return
        rejected = self.rec.events[-1] if self.rec.events else None
        rule, message, keys = (rejected[6], rejected[8], rejected[11]) if rejected else ("", "", ())
        at_stake = row.amount or action.amount or self._escrowed(c, row.milestone)
        self._add(
            row.time, cid, row.milestone, "rejected_by_policy", rule, keys,
            f"rejected: {message}", f"{row.action} accepted", at_stake, row.line,
        )  # fmt: skip
        self._emitted = []
        if self.act_unguarded(cid, action):  # follow production
            self._reconcile(c, row)
        else:
            self._emitted = []

    def _action(self, row: LogRow) -> Action:
        kwargs: dict[str, Any] = dict(row.args)
        if self.fallback_args and not kwargs:
            if row.action in ("approve", "add_milestone") and row.amount:
                kwargs["amount"] = row.amount
            elif row.action == "edit_milestone" and row.amount:
                kwargs["amount"] = row.amount
            elif row.action in ("resolve_dispute", "propose_settlement"):
                raise InputError(
                    [
                        Problem(
                            self.log_name,
                            row.line,
                            None,
                            f"{row.action} needs its split: add an args column with release=...;refund=...",
                        )
                    ]
                )
        if row.action == "add_milestone" and "due" not in kwargs:
            declared = self.declared.get(row.contract)
            kwargs.setdefault("due", None)
            if declared is not None:
                for mid, _amount, due in declared.milestones:
                    if mid == row.milestone:
                        kwargs["due"] = due
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        return Action(row.actor, row.action, row.milestone or None, **kwargs)

    log_name = "<log>"

    # ------------------------------------------------------------------------ findings

    def _missing(self, cid: str, when: float, dry: list[Dry], found: str) -> None:
        for action, mid, amount, keys in dry:
            self._add(
                when,
                cid,
                mid,
                "missing_automatic",
                "",
                keys,
                f"{action}" + (f" of {self._money(amount)}" if amount else "") + f" at {self._at(when)}",
                found,
                amount,
                None,
            )

    def _escrowed(self, c: Any, mid: str) -> int:
        m = c.by_id.get(mid) if mid else None
        return m.amount if m is not None else 0

    def _add(
        self,
        time: float,
        contract: str,
        milestone: str,
        kind: str,
        rule: str,
        keys: tuple[str, ...],
        expected: str,
        found: str,
        at_stake: int,
        line: int | None,
    ) -> None:
        self.findings.append(
            Finding(time, contract, milestone, kind, rule, keys, expected, found, at_stake, line)
        )

    def _money(self, cents: int) -> str:
        return f"{format_money(cents, self._digits)} {self._currency}"

    #: the instant of t = 0 when the log's times are timestamps: times are then shown as such
    origin: dt.datetime | None = None

    def _at(self, t: float) -> str:
        if self.origin is None:
            return format_duration(t)
        when = self.origin + dt.timedelta(days=t)
        return when.strftime("%Y-%m-%d %H:%M") + (" UTC" if when.tzinfo is not None else "")


class _RowDue(Scheduled):
    """A log row in the queue, played at its time."""

    __slots__ = ("row",)

    def __init__(self, callback: Any, row: LogRow) -> None:
        super().__init__(callback)
        self.row = row


# ------------------------------------------------------------------------------ the audit


@dataclass
class AuditResult:
    """What an audit found: the findings, and what it read."""

    policy: Policy
    findings: list[Finding]
    rows: int
    contracts: int
    matched: int
    horizon: float
    log: str
    tolerance: float
    origin: dt.datetime | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    #: the replayed log's escrow lots (time in, time out, amount) and milestones' days in escrow
    lots: tuple[Any, Any, Any] | None = None
    held: Any = None

    @property
    def aging(self) -> Any:
        """Escrow held at each day end of the log by age of the money (``aging.csv``; minor units)."""
        if self.lots is None:
            raise ValueError("this audit kept no escrow lots")
        return table_from_lots(*self.lots, self.horizon)

    def escrow_age(self) -> dict[str, float | None]:
        """The age KPIs of the audited log: median and 90th percentile of held days."""
        import numpy as np

        held = np.asarray(self.held if self.held is not None else [], dtype=float)
        if not len(held):
            return {"escrow_age_p50_days": None, "escrow_age_p90_days": None}
        return {
            "escrow_age_p50_days": float(np.percentile(held, 50)),
            "escrow_age_p90_days": float(np.percentile(held, 90)),
        }

    @property
    def conforms(self) -> bool:
        return not self.findings

    def frame(self) -> Any:
        """The findings as a DataFrame (``audit.csv``'s columns; money in minor units)."""
        import pandas as pd

        rows = []
        cache: dict[tuple[str, ...], tuple[str, str]] = {}
        for f in self.findings:
            text = cache.get(f.keys)
            if text is None:
                named, sources = self.policy.sourced(f.keys) if f.keys else ((), ())
                text = (";".join(named), ";".join(sources))
                cache[f.keys] = text
            rows.append(
                (
                    f.time,
                    f.contract,
                    f.milestone,
                    f.kind,
                    f.rule,
                    *text,
                    f.expected,
                    f.found,
                    f.at_stake,
                    f.line,
                )
            )
        df = pd.DataFrame.from_records(rows, columns=list(FINDING_COLUMNS))
        df["time"] = df["time"].astype("float64")
        df["at_stake"] = df["at_stake"].astype("int64")
        df["line"] = df["line"].astype("Int64")
        return df.sort_values(["time", "contract", "milestone"], kind="stable").reset_index(drop=True)

    def by_rule(self) -> Any:
        """Findings and money at stake per rule (the rule id, else the first policy key) and kind."""
        df = self.frame()
        if df.empty:
            import pandas as pd

            return pd.DataFrame(columns=["rule", "kind", "findings", "at_stake"])
        named = df["rule"].where(df["rule"] != "", df["policy_keys"].str.split(";").str[0])
        df = df.assign(rule=named.where(named != "", "(no rule)"))
        out = df.groupby(["rule", "kind"], sort=True).agg(
            findings=("kind", "size"), at_stake=("at_stake", "sum")
        )
        return out.reset_index()

    def summary(self) -> dict[str, Any]:
        """What summary.json holds: what was read, the verdict, counts and money per kind and
        rule, and the resolved pack (so the audit can be told apart from another)."""
        df = self.frame()
        by_kind = {k: int((df["kind"] == k).sum()) for k in KINDS if (df["kind"] == k).any()}
        stake = {k: int(df.loc[df["kind"] == k, "at_stake"].sum()) for k in by_kind}
        rules = [
            {"rule": r.rule, "kind": r.kind, "findings": int(r.findings), "at_stake": int(r.at_stake)}
            for r in self.by_rule().itertuples()
        ]
        return {
            "log": self.log,
            "rows": self.rows,
            "contracts": self.contracts,
            "matched_events": self.matched,
            "horizon_days": self.horizon,
            "tolerance_days": self.tolerance,
            "origin": self.origin.isoformat() if self.origin is not None else None,
            "conforms": self.conforms,
            "findings": len(self.findings),
            "by_kind": by_kind,
            "at_stake_by_kind": {k: format_money(v, self.policy.digits) for k, v in stake.items()},
            "by_rule": [{**r, "at_stake": format_money(r["at_stake"], self.policy.digits)} for r in rules],
            "currency": self.policy.currency,
            **({k: v for k, v in self.escrow_age().items()} if self.held is not None else {}),
            "policy": self.policy.resolved(),
        }

    def write_tables(self, folder: Path) -> None:
        """``audit.csv`` (money in major units, times in days) and ``summary.json`` into ``folder``."""
        from ..analysis.tables import write_csv, write_json

        df = self.frame()
        df["at_stake"] = [format_money(int(v), self.policy.digits) for v in df["at_stake"]]
        write_csv(df, folder / "audit.csv", self.policy.digits)
        if self.lots is not None:
            write_csv(self.aging, folder / "aging.csv", self.policy.digits)
        write_json(self.summary(), folder / "summary.json")

    def summary_text(self, *, brief: bool = False) -> str:
        """The verdict and, per rule and kind, the findings and the money at stake."""
        d, cur = self.policy.digits, self.policy.currency
        total = sum(f.at_stake for f in self.findings)
        head = (
            f"Audited {self.rows:,} rows of {self.contracts:,} contracts against {self.policy.policy} "
            f"(tolerance {format_duration(self.tolerance)}): "
        )
        if self.conforms:
            return head + "the log conforms to the pack."
        head += f"{len(self.findings):,} finding(s), {format_money(total, d)} {cur} at stake."
        if brief:
            return head
        table = self.by_rule()
        w1 = max(4, *(len(r) for r in table["rule"]))
        w2 = max(4, *(len(k) for k in table["kind"]))
        lines = [head, "", f"{'rule':<{w1}}  {'kind':<{w2}}  {'findings':>8}  {'at stake':>14}"]
        for r in table.itertuples():
            lines.append(
                f"{r.rule:<{w1}}  {r.kind:<{w2}}  {r.findings:>8,}  {format_money(int(r.at_stake), d):>14}"
            )
        return "\n".join(lines)


def audit(
    log: str | Path,
    contracts: str | Path,
    policy: Policy,
    *,
    tolerance: float = TOLERANCE,
    start: dt.date | None = None,
    mapping: Mapping | None = None,
    progress: bool = False,
    chunk_rows: int | None = None,
) -> AuditResult:
    """Replay ``log`` (CSV or Parquet) against ``policy``; ``contracts`` lists its contracts."""
    declared = read_contracts(contracts, policy.digits, mapping)
    kwargs = {"chunk_rows": chunk_rows} if chunk_rows else {}
    reader = LogReader(
        log, declared, policy.digits, mapping=mapping, start=start, openers=policy.openers, **kwargs
    )
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=None, unit=" rows", desc="audit", leave=False, mininterval=0.5)
    sim: Replay | None = None
    try:
        for chunk in reader:
            if sim is None:
                if start is None and reader.origin is not None:
                    start = reader.origin.date()
                if start is None and start_missing(policy):
                    raise InputError(
                        [
                            Problem(
                                "<command line --start>",
                                None,
                                None,
                                str(start_missing(policy)).replace(
                                    "the scenario needs", "the audit needs --start,"
                                ),
                            )
                        ]
                    )
                sim = Replay(
                    policy,
                    declared,
                    tolerance=tolerance,
                    start=start,
                    fallback_args="args" not in reader.present,
                )
                sim.log_name = str(log)
                sim.origin = reader.origin
                reader.retired = sim.finished
            for row in chunk:
                sim.load(row)
            sim.advance(reader.last_time - tolerance)
            sim.drain()
            if bar is not None:
                bar.update(len(chunk))
        assert sim is not None  # an empty log is refused by the reader
        sim.finish(reader.last_time)
    finally:
        if bar is not None:
            bar.close()
    return AuditResult(
        policy,
        sim.findings,
        sim.rows,
        len(sim.order),
        sim.matched,
        reader.last_time,
        str(log),
        tolerance,
        reader.origin,
        lots=sim.lots.lots(),
        held=sim.held,
    )
