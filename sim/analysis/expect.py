"""Checks a scenario's expectations against its results and explains every failure.

A state check at time T sees the state after every event at or before T (``end``: the final
state). Each failure says what was expected, what was found, and where the expectation stands.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from ..core.units import format_duration, format_money
from ..inputs.scenario import EventMatch, Expectation, StateCheck
from ..money.ledger import FLOWS, account_balance
from .tables import flow_sums

EPS = 1e-9


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one expectation."""

    expectation: Expectation
    ok: bool
    problems: tuple[str, ...]

    @property
    def where(self) -> str:
        return f"{self.expectation.file}:{self.expectation.line}"

    def describe(self) -> str:
        """A readable line per problem, prefixed with the expectation's location."""
        if self.ok:
            return f"{self.where}: ok"
        return "\n".join(f"{self.where}: {p}" for p in self.problems)


class CheckResults(list):
    """The outcomes of a scenario's expectations: a list of CheckResult that reads well.

    ``print(results)`` gives one line per expectation (``ok``/``FAIL``, file:line, what);
    Jupyter shows a table; ``.ok`` is True when every expectation holds.
    """

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self)

    def _lines(self) -> list[str]:
        lines = []
        for c in self:
            if c.ok:
                lines.append(f"ok   {c.where}: {_what(c.expectation)}")
            else:
                lines.extend(f"FAIL {c.where}: {p}" for p in c.problems)
        return lines

    def __str__(self) -> str:
        failed = sum(not c.ok for c in self)
        head = f"{len(self) - failed} of {len(self)} expectations hold"
        return "\n".join([head, *self._lines()])

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        import html

        rows = []
        for c in self:
            what = "; ".join(c.problems) if not c.ok else _what(c.expectation)
            color = "#1a7f37" if c.ok else "#c62828"
            rows.append(
                f"<tr><td style='color:{color}'>{'ok' if c.ok else 'FAIL'}</td>"
                f"<td>{html.escape(c.where)}</td><td>{html.escape(what)}</td></tr>"
            )
        failed = sum(not c.ok for c in self)
        return (
            f"<table><caption>{len(self) - failed} of {len(self)} expectations hold</caption>"
            "<tr><th></th><th>where</th><th>what</th></tr>" + "".join(rows) + "</table>"
        )


def _what(exp: Expectation) -> str:
    """A short description of an expectation: ``state at 19d: milestones, balances``."""
    spec = exp.spec
    if isinstance(spec, StateCheck):
        keys = [k for k in ("milestones", "contracts", "balances", "totals") if getattr(spec, k)]
        return f"state {_when(spec.at)}: {', '.join(keys)}"
    parts = []
    for key, value in spec.items():
        if key == "at":
            value = format_duration(value)
        elif key == "amount":
            value = f"{value} (minor units)"
        parts.append(f"{key}={value}")
    return f"{exp.kind} {', '.join(parts)}"


def _when(at: float | str) -> str:
    return "at the end" if at == "end" else f"at {format_duration(float(at))}"


def _split(ref: str) -> tuple[str, str]:
    cid, _, mid = ref.partition("/")
    return cid, mid


class Checker:
    """Evaluates expectations on one replication's tables."""

    def __init__(
        self,
        events: pd.DataFrame,
        ledger: pd.DataFrame,
        states: pd.DataFrame,
        accounts: list[str],
        digits: int = 2,
    ) -> None:
        self.events = events
        self.ledger = ledger
        self.states = states
        self.accounts = accounts
        self.digits = digits

    def money(self, cents: int | None) -> str:
        return "none" if cents is None else format_money(int(cents), self.digits)

    def _upto(self, df: pd.DataFrame, at: float | str) -> pd.DataFrame:
        if at == "end" or df.empty:
            return df
        return df[df["time"] <= float(at) + EPS]

    def state_of(self, cid: str, mid: str, at: float | str) -> tuple[str, float | None]:
        rows = self._upto(self.states, at)
        rows = rows[(rows["contract"] == cid) & (rows["milestone"] == mid)]
        if rows.empty:
            return ("planned" if mid else "draft"), None
        last = rows.iloc[-1]
        return str(last["state"]), float(last["time"])

    def balances_at(self, at: float | str) -> dict[str, int]:
        bal = dict.fromkeys(self.accounts, 0)
        for row in self._upto(self.ledger, at).itertuples(index=False):
            frm, to, amt = row.from_account, row.to_account, int(row.amount)
            bal.setdefault(frm, 0)
            bal.setdefault(to, 0)
            bal[frm] += amt if frm.startswith("client:") else -amt
            bal[to] += -amt if to.startswith("client:") else amt
        return bal

    def totals_at(self, at: float | str) -> dict[str, int]:
        rows = self._upto(self.ledger, at)
        sums = flow_sums(rows)
        return {flow: int(sums.get(flow, 0)) for flow in FLOWS}

    def check(self, exp: Expectation) -> CheckResult:
        spec = exp.spec
        if isinstance(spec, StateCheck):
            problems = self._check_state(spec)
        else:
            problems = self._check_match(exp.kind, spec)
        return CheckResult(exp, not problems, tuple(problems))

    def _check_state(self, spec: StateCheck) -> list[str]:
        at = spec.at
        problems = []
        for ref, want in spec.milestones.items():
            cid, mid = _split(ref)
            got, since = self.state_of(cid, mid, at)
            if got != want:
                extra = f" (since {format_duration(since)})" if since is not None else ""
                problems.append(f"milestone {ref} {_when(at)}: expected {want}, found {got}{extra}")
        for cid, want in spec.contracts.items():
            got, since = self.state_of(cid, "", at)
            if got != want:
                extra = f" (since {format_duration(since)})" if since is not None else ""
                problems.append(f"contract {cid} {_when(at)}: expected {want}, found {got}{extra}")
        if spec.balances:
            bal = self.balances_at(at)
            for account, want in spec.balances.items():
                try:
                    got = account_balance(bal, account)
                except KeyError:
                    got = 0
                if got != want:
                    problems.append(
                        f"balance {account} {_when(at)}: expected {self.money(want)}, "
                        f"found {self.money(got)} (difference {self.money(got - want)})"
                    )
        if spec.totals:
            tot = self.totals_at(at)
            for flow, want in spec.totals.items():
                got = tot[flow]
                if got != want:
                    problems.append(
                        f"total {flow} {_when(at)}: expected {self.money(want)}, "
                        f"found {self.money(got)} (difference {self.money(got - want)})"
                    )
        return problems

    def _matches(self, kind: str, spec: EventMatch) -> pd.DataFrame:
        ev = self.events
        rows = ev[ev["outcome"] == ("rejected" if kind == "rejected" else "accepted")]
        for key, value in spec.items():
            if key == "milestone":
                cid, mid = _split(value)
                rows = rows[(rows["contract"] == cid) & (rows["milestone"] == mid)]
            elif key == "at":
                rows = rows[(rows["time"] - value).abs() <= EPS]
            elif key == "amount":
                rows = rows[rows["amount"] == value]
            else:
                rows = rows[rows[key] == value]
        return rows

    def _describe(self, spec: EventMatch) -> str:
        parts = []
        for key, value in spec.items():
            if key == "at":
                value = format_duration(value)
            elif key == "amount":
                value = self.money(value)
            parts.append(f"{key}={value}")
        return ", ".join(parts)

    def _row_text(self, row: pd.Series) -> str:
        where = f"{row['contract']}/{row['milestone']}" if row["milestone"] else row["contract"]
        text = f"{row['action']} {where} by {row['actor']} at {format_duration(float(row['time']))}"
        if row["outcome"] == "rejected":
            text += f" rejected ({row['rule']})"
        elif row["amount"]:
            text += f" amount {self.money(int(row['amount']))}"
        return text

    def _check_match(self, kind: str, spec: EventMatch) -> list[str]:
        rows = self._matches(kind, spec)
        if kind == "no_event":
            if rows.empty:
                return []
            found = "; ".join(self._row_text(r) for _, r in rows.head(3).iterrows())
            return [f"expected no event matching {self._describe(spec)}, found: {found}"]
        if not rows.empty:
            return []
        what = "rejection" if kind == "rejected" else "event"
        near = self._matches(kind, spec.only("action"))
        if near.empty and "action" in spec.written:
            pool = self.events[self.events["action"] == spec.action]
            near = pool
        if near.empty:
            found = "no such action happened"
        else:
            found = "found: " + "; ".join(self._row_text(r) for _, r in near.head(4).iterrows())
        return [f"expected {what} matching {self._describe(spec)}; {found}"]


def nan_to_none(x: float) -> float | None:
    """NaN as None, for JSON."""
    return None if isinstance(x, float) and math.isnan(x) else x
