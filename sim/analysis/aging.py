"""Escrow aging (FORMAT section 11): how long money has been held, per milestone and over time.

``held_days`` is a milestone's time in escrow: from ``funded_at`` to ``closed_at``, or to the end of
the run for a milestone still holding escrow then; NaN for one never funded.

The aging table gives the escrow held at each day end, split by the age of the money: ``0-7``,
``7-14``, ``14-30``, ``30-90`` and ``90+`` days, a bucket's lower bound inclusive. The age of a
sum is the day end minus the time that money entered escrow. A day end ``t`` counts every event
at ``t`` (like a balance row at ``t``): money funded at ``t`` is 0 days old there, money released
at ``t`` is gone. The rows are at t = 1, 2, ... up to the run's end, plus the end itself when it is
not a whole day (at most 10,000 rows: over a longer run, evenly spaced like the daily balance
snapshots of ``events="none"``).

- **With the ledger's postings** (scripted scenarios, ``events="full"``), it is exact: each escrow
  account keeps its money as lots (time in, amount, milestone). Money in is a lot; money out is
  taken from the lots of the milestone the posting names, oldest first, then (contract credit,
  a release larger than what the milestone brought in, a posting naming no milestone) from the
  account's other lots, oldest first. So at every day end the buckets add up to the escrow
  balance, to the cent.
- **Without postings** (populations with ``events="none"``) only the milestones table is left: each
  funded milestone is taken to hold its ``amount`` from ``funded_at`` to ``closed_at`` (or to the
  end). This is an estimate: contract credit left after a partial release is missed between the
  release and the next funding, and aged from that funding; partial moves, fees taken from escrow
  and refunds arriving after their decision (``hold.after_refund``) are seen only at the close.
  The rows then need not add up to ``balances.csv``'s escrow.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable

import numpy as np
import pandas as pd

from ..engine.simulation import snapshot_interval

#: the age buckets: (column, from days inclusive, to days exclusive)
BUCKETS: tuple[tuple[str, float, float], ...] = (
    ("0-7", 0.0, 7.0),
    ("7-14", 7.0, 14.0),
    ("14-30", 14.0, 30.0),
    ("30-90", 30.0, 90.0),
    ("90+", 90.0, math.inf),
)
BUCKET_COLUMNS = tuple(name for name, _lo, _hi in BUCKETS)
#: aging.csv: the day end, then the escrow of each bucket (minor units)
AGING_COLUMNS = ("time", *BUCKET_COLUMNS)

#: the engine's time grid: 1 ms
MS_PER_DAY = 86_400_000
#: "still in escrow at the end", in ms
_NEVER = np.iinfo(np.int64).max // 4


def _ms(days: np.ndarray | Iterable[float]) -> np.ndarray:
    """Days on the 1 ms grid as integer milliseconds (exact comparisons, no float noise)."""
    return np.rint(np.asarray(days, dtype=float) * MS_PER_DAY).astype(np.int64)


def held_days(milestones: pd.DataFrame, end: float) -> pd.Series:
    """Each milestone's days in escrow: ``closed_at - funded_at``, to ``end`` when not closed;
    NaN when never funded. Exact on the engine's 1 ms grid."""
    funded = milestones["funded_at"].to_numpy(dtype=float)
    closed = milestones["closed_at"].to_numpy(dtype=float)
    until = np.where(np.isnan(closed), end, closed)
    held = np.full(len(funded), np.nan)
    ok = ~np.isnan(funded)
    held[ok] = (_ms(until[ok]) - _ms(funded[ok])) / MS_PER_DAY
    return pd.Series(held, index=milestones.index, name="held_days", dtype="float64")


def day_ends(end: float) -> np.ndarray:
    """The times of the aging rows: 1, 2, ... up to ``end``, and ``end`` when it is not one of them
    (over more than 10,000 days, 10,000 evenly spaced times ending at ``end``)."""
    if not end > 0:
        return np.array([], dtype=float)
    step = snapshot_interval(end)
    n = math.floor(end / step + 1e-9)
    times = [round(step * k, 9) for k in range(1, n + 1)]
    if not times or times[-1] < end - 1e-9:
        times.append(end)
    return np.array(times, dtype=float)


class EscrowLots:
    """The sums in escrow, kept as postings arrive (the audit's replay feeds it chunk by chunk):
    each escrow account's open lots ``[time in, amount, milestone]`` in entry order, and the lots
    that left, compactly, as (time in, time out, amount).

    Money out of an escrow account is taken from the lots of the milestone the posting names,
    oldest first, then from the account's other lots, oldest first. Money moved from one escrow
    account to another keeps the time it entered escrow.
    """

    def __init__(self) -> None:
        self.open: dict[str, list[list]] = {}
        self.t_in = array("d")
        self.t_out = array("d")
        self.amount = array("q")

    def post(self, t: float, frm: str, to: str, amount: int, milestone: str) -> None:
        """One posting (anything not in or out of escrow is ignored)."""
        into, out_of = to.startswith("escrow:"), frm.startswith("escrow:")
        if not (into or out_of):
            return
        pieces = [[t, amount, milestone]]
        if out_of:
            pieces = _take(self.open.get(frm, []), amount, milestone, frm, t)
            if not self.open.get(frm):
                self.open.pop(frm, None)
            if not into:
                for entered, piece, _m in pieces:
                    self.t_in.append(entered)
                    self.t_out.append(t)
                    self.amount.append(piece)
        if into:
            held = self.open.setdefault(to, [])
            for entered, piece, _m in pieces:
                held.append([entered, piece, milestone])
            if out_of:  # moved money keeps its age: back into time order (stable for equal times)
                held.sort(key=lambda lot: lot[0])

    def lots(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every sum that was in escrow: (time in, time out, amount); ``inf`` out: still held."""
        t_in, t_out, amounts = list(self.t_in), list(self.t_out), list(self.amount)
        for held in self.open.values():
            for entered, piece, _m in held:
                if piece:
                    t_in.append(entered)
                    t_out.append(math.inf)
                    amounts.append(piece)
        return np.array(t_in, dtype=float), np.array(t_out, dtype=float), np.array(amounts, dtype=np.int64)


def escrow_lots(ledger: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every sum that was in escrow, from the postings: (time in, time out, amount), times in
    days (``inf`` out: still in escrow at the end), amounts in minor units (see :class:`EscrowLots`).
    """
    lots = EscrowLots()
    rows = zip(  # plain lists: iterating pandas' string columns is slow
        ledger["time"].to_numpy(dtype=float).tolist(),
        ledger["from_account"].tolist(),
        ledger["to_account"].tolist(),
        ledger["amount"].to_numpy(dtype=np.int64).tolist(),
        ledger["milestone"].tolist(),
        strict=True,
    )
    for t, frm, to, amount, milestone in rows:
        lots.post(t, frm, to, amount, milestone)
    return lots.lots()


def _take(held: list[list], amount: int, milestone: str, account: str, t: float) -> list[list]:
    """Take ``amount`` from an account's lots (the named milestone's first, oldest first)."""
    taken: list[list] = []
    left = amount
    for own in (True, False):
        for lot in held:
            if left == 0:
                break
            if lot[1] and (lot[2] == milestone) == own:
                piece = min(lot[1], left)
                lot[1] -= piece
                left -= piece
                taken.append([lot[0], piece, lot[2]])
    if left:
        raise ValueError(f"{account} pays out {amount} at t={t:g} but holds {amount - left}")
    held[:] = [lot for lot in held if lot[1]]
    return taken


def milestone_lots(milestones: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The estimate without postings: each funded milestone's ``amount`` in escrow from
    ``funded_at`` to ``closed_at`` (``inf``: not closed). Contract ``(credit)`` rows hold none."""
    rows = milestones[milestones["funded_at"].notna() & (milestones["state"] != "credit")]
    closed = rows["closed_at"].to_numpy(dtype=float)
    return (
        rows["funded_at"].to_numpy(dtype=float),
        np.where(np.isnan(closed), math.inf, closed),
        rows["amount"].to_numpy(dtype=np.int64),
    )


def aging_table(milestones: pd.DataFrame, end: float, ledger: pd.DataFrame | None = None) -> pd.DataFrame:
    """Escrow held at each day end (see :func:`day_ends`) by age bucket, in minor units.

    With ``ledger`` (a run that kept its postings) the buckets are exact and add up to the escrow
    balance at every row; without it they are estimated from ``milestones`` (module docstring).
    """
    t_in, t_out, amount = escrow_lots(ledger) if ledger is not None else milestone_lots(milestones)
    return table_from_lots(t_in, t_out, amount, end)


def table_from_lots(t_in: np.ndarray, t_out: np.ndarray, amount: np.ndarray, end: float) -> pd.DataFrame:
    """The aging table of the sums (time in, time out, amount) that were in escrow up to ``end``."""
    times = day_ends(end)
    grid = _ms(times)
    start = _ms(t_in)
    stop = np.where(np.isinf(t_out), _NEVER, _ms(np.where(np.isinf(t_out), 0.0, t_out)))
    data: dict[str, np.ndarray] = {"time": times}
    for name, lo, hi in BUCKETS:
        first = np.searchsorted(grid, start + int(lo * MS_PER_DAY), side="left")
        upto = stop if math.isinf(hi) else np.minimum(start + int(hi * MS_PER_DAY), stop)
        last = np.searchsorted(grid, upto, side="left")
        some = last > first
        diff = np.zeros(len(grid) + 1, dtype=np.int64)
        np.add.at(diff, first[some], amount[some])
        np.add.at(diff, last[some], -amount[some])
        data[name] = np.cumsum(diff)[:-1]
    return pd.DataFrame(data, columns=list(AGING_COLUMNS))
