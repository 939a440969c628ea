"""Why the money moved (FORMAT section 9): each money movement and each refused action, in words.

Built from the tables a run writes, so a result in memory and an output folder explain the same
way: ``events`` (its ``policy_keys``, ``source``, ``cause`` and, for a dated pack,
``policy_version`` columns), ``ledger`` (its ``event`` column names the events row that made each
posting) and the policy's values by dotted key (``values``: one mapping per version, ``""`` for a
pack without dated values). Nothing here re-runs or re-decides anything.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ..core.units import UnitError, format_duration, format_money, parse_duration
from .tables import TIMER_LENGTHS

#: the columns of :func:`explain_frame`
COLUMNS = (
    "time",
    "contract",
    "milestone",
    "actor",
    "action",
    "outcome",
    "rule",
    "moved",
    "postings",
    "policy_keys",
    "values",
    "source",
    "policy_version",
    "cause",
    "since_cause",
    "why",
)


def value_of(values: dict[str, Any], key: str) -> str:
    """The value of a policy key as written back: ``14d``; a key holding several values (a fee, a
    stage) as ``percent 10, rounding half_up``; ``(default)`` for a key no value is shown for."""
    if key in values:
        return _show(values[key])
    inner = sorted((k[len(key) + 1 :], v) for k, v in values.items() if k.startswith(key + "."))
    tiered = any(k == "tiers" for k, _ in inner)
    shown = [
        f"{k} {_show(v)}"
        for k, v in inner
        if v not in (None, [], {}, "")
        and k not in _SAID
        and not (k == "rounding" and v == "half_up")
        and not (k == "percent" and tiered)
    ]
    return ", ".join(shown) if shown else "(default)"


#: parts of a fee that its name already says (who pays, on what)
_SAID = frozenset({"payer", "on"})


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items() if v is not None) + "}"
    return str(value)


def _nearest(times: list[tuple[float, str]], t: float) -> str | None:
    """The version of the event nearest ``t`` (a cause's time is written to 6 significant digits)."""
    best = min(times, key=lambda tv: abs(tv[0] - t), default=None)
    return best[1] if best is not None and abs(best[0] - t) <= max(1e-3, abs(t) * 1e-5) else None


def _cause_time(cause: str) -> float | None:
    """The time of ``submit at 5d``, or None."""
    if not cause or " at " not in cause:
        return None
    try:
        return parse_duration(cause.rsplit(" at ", 1)[1])
    except UnitError:
        return None


def explain_frame(
    events: pd.DataFrame,
    ledger: pd.DataFrame,
    values: dict[str, dict[str, Any]],
    currency: str,
    digits: int,
    *,
    contract: str | None = None,
    milestone: str | None = None,
    at: float | None = None,
    everything: bool = False,
) -> pd.DataFrame:
    """One row per money movement and per refused action (``everything``: per event), with the
    policy keys that decided it, their values and where each was written, the event that started
    its timer and how long before, and ``why``: the chain in words.

    ``milestone`` is ``C/M`` (or ``M`` with ``contract``); ``at`` keeps the events at that time.
    """
    moves: dict[int, list[str]] = {}
    moved: dict[int, int] = {}
    if len(ledger) and "event" in ledger.columns:
        for row in ledger.itertuples(index=False):
            text = (
                f"{format_money(int(row.amount), digits)} {currency} {row.from_account} -> {row.to_account}"
            )
            moves.setdefault(int(row.event), []).append(f"{text} ({row.flow})")
            moved[int(row.event)] = moved.get(int(row.event), 0) + int(row.amount)
    if milestone is not None and "/" in milestone:
        contract, milestone = milestone.split("/", 1)
    dated = "policy_version" in events.columns
    started_under: dict[tuple[str, str], list[tuple[float, str]]] = {}
    if dated:  # the version of each accepted event, to find the one a timer started under
        for ev in events[events["outcome"] == "accepted"].itertuples(index=False):
            times = started_under.setdefault((ev.contract, ev.action), [])
            times.append((float(ev.time), str(ev.policy_version)))
    rows = []
    for i, ev in enumerate(events.itertuples(index=False)):
        refused = ev.outcome == "rejected"
        if not (everything or refused or i in moves):
            continue
        if contract is not None and ev.contract != contract:
            continue
        if milestone is not None and ev.milestone != milestone:
            continue
        if at is not None and not math.isclose(float(ev.time), at, abs_tol=1e-6):
            continue
        version = str(ev.policy_version) if dated else ""
        known = values.get(version, values.get("", {}))
        keys = [k for k in str(ev.policy_keys or "").split(";") if k]
        sources = [s for s in str(ev.source or "").split(";") if s]
        cause = str(ev.cause or "")
        started = _cause_time(cause)
        lengths = known
        if dated and started is not None:  # a timer keeps the length of the version it started under
            begun = _nearest(started_under.get((ev.contract, cause.rsplit(" at ", 1)[0]), []), started)
            lengths = values.get(begun, known) if begun is not None else known
        shown = [value_of(lengths if k.rpartition(".")[2] in TIMER_LENGTHS else known, k) for k in keys]
        since = None if started is None else round((float(ev.time) - started) * 86_400_000) / 86_400_000
        postings = "; ".join(moves.get(i, []))
        row = {
            "time": float(ev.time),
            "contract": ev.contract,
            "milestone": ev.milestone,
            "actor": ev.actor,
            "action": ev.action,
            "outcome": ev.outcome,
            "rule": ev.rule or "",
            "moved": moved.get(i, 0),
            "postings": postings,
            "policy_keys": ";".join(keys),
            "values": ";".join(shown),
            "source": ";".join(sources),
            "policy_version": version,
            "cause": cause,
            "since_cause": since,
        }
        row["why"] = _words(row, keys, shown, sources, str(ev.message or ""))
        rows.append(row)
    frame = pd.DataFrame.from_records(rows, columns=list(COLUMNS))
    frame["moved"] = frame["moved"].astype("int64")
    frame["time"] = frame["time"].astype("float64")
    return frame


def _words(row: dict[str, Any], keys: list[str], shown: list[str], sources: list[str], message: str) -> str:
    """The chain of one event in words (the ``why`` column; :func:`chains` prints it with the time)."""
    where = f"{row['contract']}/{row['milestone']}" if row["milestone"] else str(row["contract"])
    head = f"{row['action']} {where}"
    if row["postings"]:
        head += f": {row['postings']}"
    lines = [head]
    if row["outcome"] == "rejected":
        lines.append(f"refused by rule {row['rule']}: {message}")
    elif row["actor"] != "platform":
        lines.append(f"the {row['actor']}'s {row['action']}, as the policy allows it")
    if row["cause"]:
        since = None if row["since_cause"] is None else round(row["since_cause"] * 86_400_000) / 86_400_000
        ago = "" if since is None else f" ({format_duration(since)} before)"
        lines.append(f"a timer started by the {row['cause']}{ago}")
    for n, (key, value) in enumerate(zip(keys, shown, strict=True)):
        src = sources[n] if n < len(sources) else "default"
        lines.append(f"{'because' if n == 0 else 'and'} {key} = {value} ({src})")
    if row["policy_version"]:
        lines.append(f"under the version in force from {row['policy_version']}")
    return "\n".join(lines)


def chains(frame: pd.DataFrame) -> str:
    """The ``why`` of every row of :func:`explain_frame`, each first line after its time."""
    stamps = [format_duration(round(float(t) * 86_400_000) / 86_400_000) for t in frame["time"]]  # CSV: 9 dp
    width = max([6, *map(len, stamps)])
    out = []
    for stamp, why in zip(stamps, frame["why"], strict=True):
        first, *rest = str(why).split("\n")
        out.append(f"{stamp:<{width}} {first}")
        out.extend(f"{'':<{width}} {line}" for line in rest)
    return "\n".join(out) + ("\n" if out else "")
