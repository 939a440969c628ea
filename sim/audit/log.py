"""Reading a marketplace's own event log and contracts list for an audit (FORMAT section 10).

The log is a CSV or Parquet table with the columns of ``events.csv`` (``time``, ``contract``,
``milestone``, ``actor``, ``action``, ``amount``, and optionally ``outcome``, ``args`` and the
contract's ``escrow`` balance after the row). It is read in chunks, so a log of millions of rows
never sits in memory whole; every row is validated as it is read, and a bad one is an InputError
naming the file, the row (its line in a CSV, counting the header as line 1) and the column.

A :class:`Mapping` renames another log's columns, actions and actors to ours: no real log uses
our names. This module knows tables and names only; the replay is :mod:`sim.audit.replay`.
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.units import MAX_DAYS, UnitError, parse_duration, parse_money
from ..core.yamlio import InputError, Problem, load_file
from ..machine.transitions import ACTIONS, AUTOMATIC

#: the columns a log must have, and those it may have (the rest of events.csv is read and ignored)
REQUIRED = ("time", "contract", "actor", "action")
OPTIONAL = ("milestone", "amount", "outcome", "args", "escrow")
#: events.csv's explanatory columns: an audit of a run's own log reads past them
IGNORED = ("rule", "message", "state", "contract_state", "policy_keys", "source", "cause", "policy_version")
CONTRACT_COLUMNS = ("contract", "client", "freelancer", "milestone", "amount", "due")
#: the platform's own decisions (its other rows are automatic events)
PLATFORM_ACTIONS = frozenset({"resolve_dispute", "reverse_release"})
#: what the platform does on its own, under the names events.csv gives them
AUTOMATIC_NAMES = frozenset(AUTOMATIC) | {"fund"}
#: bounds on what an audit reads
MAX_LOG_BYTES = 64 * 1024**3
MAX_CONTRACTS_BYTES = 2 * 1024**3
MAX_CELL = 4096
CHUNK_ROWS = 100_000
#: the keys of a mapping file
MAPPING_SECTIONS = ("columns", "actions", "actors", "ignore", "contract_columns")
_ARG_KEYS = ("amount", "due", "position", "order", "release", "refund", "answer", "procedure")


class _Bad(Exception):
    """One bad cell: raised inside the row parser, turned into a Problem with its position."""

    def __init__(self, column: str, message: str) -> None:
        super().__init__(message)
        self.column = column
        self.message = message


class _Fatal(_Bad):
    """A bad cell that makes every later row unreadable too: reported once, reading stops."""


@dataclass(frozen=True)
class Mapping:
    """How another log's names become ours: ``columns`` (ours: theirs), ``actions`` and ``actors``
    (theirs: ours; an action key may be ``ACTOR/ACTION`` in their names), ``ignore`` (their
    columns to read past) and ``contract_columns`` (ours: theirs, for CONTRACTS)."""

    columns: dict[str, str] = field(default_factory=dict)
    actions: dict[str, str] = field(default_factory=dict)
    actors: dict[str, str] = field(default_factory=dict)
    ignore: tuple[str, ...] = ()
    contract_columns: dict[str, str] = field(default_factory=dict)

    def with_columns(self, pairs: dict[str, str]) -> Mapping:
        """The same mapping with more column renames (``--map ours=theirs``)."""
        return Mapping(
            {**self.columns, **pairs}, self.actions, self.actors, self.ignore, self.contract_columns
        )


def load_mapping(path: str | Path) -> Mapping:
    """Read a mapping file (YAML: ``columns``, ``actions``, ``actors``, ``ignore``,
    ``contract_columns``); every problem is reported with its file:line:column."""
    doc = load_file(path)
    data = doc.data
    problems: list[Problem] = []
    sections = MAPPING_SECTIONS
    if not isinstance(data, dict):
        raise InputError([doc.problem((), f"a mapping file is a mapping of {', '.join(sections)}")])
    for key in data:
        if key not in sections:
            hint = difflib.get_close_matches(str(key), sections, n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            problems.append(
                doc.problem((key,), f"unknown key {key!r}{extra}; allowed: {', '.join(sections)}", key=True)
            )
    out: dict[str, Any] = {}
    ours_columns = (*REQUIRED, *OPTIONAL)
    for name in ("columns", "actions", "actors", "contract_columns"):
        block = data.get(name, {})
        if not isinstance(block, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and k and v for k, v in block.items()
        ):
            problems.append(doc.problem((name,), f"{name} is a mapping of names to names"))
            out[name] = {}
            continue
        allowed: tuple[str, ...] = ()
        if name == "columns":
            allowed = ours_columns
        elif name == "contract_columns":
            allowed = CONTRACT_COLUMNS
        for k, v in block.items():
            if allowed and k not in allowed:
                problems.append(
                    doc.problem((name, k), f"{k!r} is not one of our columns: {', '.join(allowed)}", key=True)
                )
            if name == "actors" and v not in ACTIONS:
                problems.append(doc.problem((name, k), f"actor {v!r} is not one of {', '.join(ACTIONS)}"))
            if name == "actions" and not _known_action(v):
                problems.append(doc.problem((name, k), f"{v!r} is not an action; {_action_hint(v)}"))
        out[name] = dict(block)
    ignore = data.get("ignore", [])
    if not isinstance(ignore, list) or not all(isinstance(x, str) for x in ignore):
        problems.append(doc.problem(("ignore",), "ignore is a list of column names"))
        ignore = []
    if problems:
        raise InputError(problems)
    return Mapping(out["columns"], out["actions"], out["actors"], tuple(ignore), out["contract_columns"])


def parse_map_options(values: list[str]) -> dict[str, str]:
    """``--map ours=theirs`` options: renames of log columns, checked against our column names."""
    out: dict[str, str] = {}
    for text in values:
        ours, sep, theirs = text.partition("=")
        ours, theirs = ours.strip(), theirs.strip()
        if not sep or not ours or not theirs:
            raise InputError(
                [Problem("<command line --map>", None, None, f"expected OURS=THEIRS, got {text!r}")]
            )
        if ours not in (*REQUIRED, *OPTIONAL):
            raise InputError(
                [
                    Problem(
                        "<command line --map>",
                        None,
                        None,
                        f"{ours!r} is not one of our columns: {', '.join((*REQUIRED, *OPTIONAL))}",
                    )
                ]
            )
        out[ours] = theirs
    return out


def _known_action(name: str) -> bool:
    return any(name in names for names in ACTIONS.values()) or name in AUTOMATIC_NAMES


def _action_hint(name: str) -> str:
    every = sorted({n for names in ACTIONS.values() for n in names} | AUTOMATIC_NAMES)
    hint = difflib.get_close_matches(name, every, n=1)
    return (f"did you mean {hint[0]!r}? " if hint else "") + "actions are the names events.csv uses"


# ------------------------------------------------------------------------------ contracts


@dataclass(frozen=True)
class ContractRow:
    """One contract of CONTRACTS: its parties and milestones as offered, ``(id, amount, due)``."""

    id: str
    client: str
    freelancer: str
    milestones: tuple[tuple[str, int, float | None], ...]


def _is_parquet(path: str | Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"PAR1"


def _parquet_rows(path: str | Path) -> Iterator[list[str]]:
    """A Parquet table as CSV-like rows of text (its header first), read a batch at a time:
    decimals as written (``12.50``), missing values empty."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    yield list(pf.schema_arrow.names)
    for batch in pf.iter_batches(batch_size=100_000):
        columns = [[("" if v is None else str(v)) for v in col.to_pylist()] for col in batch.columns]
        yield from (list(row) for row in zip(*columns, strict=True))


def read_contracts(path: str | Path, digits: int, mapping: Mapping | None = None) -> dict[str, ContractRow]:
    """CONTRACTS: one row per milestone as offered (``contract, client, freelancer, milestone,
    amount, due``); a contract's rows in its milestones' order. Milestones added later are not
    listed: the log's ``add_milestone`` row brings them. Read row by row (a marketplace's list can
    hold millions of milestones), parties' names shared between their contracts."""
    import csv
    import sys

    mapping = mapping or Mapping()
    name = str(path)
    _check_size(path, MAX_CONTRACTS_BYTES, "contracts file")
    theirs = {mapping.contract_columns.get(c, c): c for c in CONTRACT_COLUMNS}
    problems: list[Problem] = []
    rows: dict[str, list] = {}
    parties: dict[str, tuple[str, str]] = {}
    try:
        with open(path, encoding="utf-8", newline="") as f:
            reader = _parquet_rows(path) if _is_parquet(path) else csv.reader(f)
            header = next(reader, None)
            if not header:
                raise InputError([Problem(name, None, None, "not a CSV table: the file is empty")])
            header = [h.strip() for h in header]
            for i, col in enumerate(header):
                if col not in theirs:
                    problems.append(
                        Problem(
                            name,
                            1,
                            i + 1,
                            f"unknown column {col!r}; CONTRACTS has {', '.join(CONTRACT_COLUMNS)}",
                        )
                    )
            for ours in CONTRACT_COLUMNS[:5]:
                if mapping.contract_columns.get(ours, ours) not in header:
                    problems.append(Problem(name, 1, None, f"required column {ours!r} is missing"))
            if problems:
                raise InputError(problems)
            at = {theirs[h]: i for i, h in enumerate(header)}
            due_at = at.get("due")
            for line, cells in enumerate(reader, start=2):
                if not cells:
                    continue

                def bad(col: str, message: str, line: int = line) -> None:
                    problems.append(Problem(name, line, at.get(col, 0) + 1, f"column {col!r}: {message}"))

                if len(cells) != len(header):
                    problems.append(
                        Problem(name, line, None, f"{len(cells)} fields for {len(header)} columns")
                    )
                    if len(problems) > 50:
                        break
                    continue
                cid, mid = cells[at["contract"]].strip(), cells[at["milestone"]].strip()
                client, freelancer = cells[at["client"]].strip(), cells[at["freelancer"]].strip()
                for col, value in (
                    ("contract", cid),
                    ("milestone", mid),
                    ("client", client),
                    ("freelancer", freelancer),
                ):
                    if not value:
                        bad(col, "is empty")
                    elif len(value) > MAX_CELL:
                        bad(col, f"is longer than {MAX_CELL} characters")
                try:
                    amount = parse_money(cells[at["amount"]], digits)
                except UnitError as exc:
                    bad("amount", str(exc))
                    amount = 0
                due = None
                if due_at is not None and cells[due_at].strip():
                    try:
                        due = parse_duration(_number_or_text(cells[due_at]))
                    except UnitError as exc:
                        bad("due", str(exc))
                mine = rows.get(cid)
                if mine is None:
                    mine = rows[cid] = []
                    parties[cid] = (sys.intern(client), sys.intern(freelancer))
                elif parties[cid] != (client, freelancer):
                    bad("client", f"contract {cid!r} is listed with two different pairs of parties")
                if any(m == mid for m, _a, _d in mine):
                    bad("milestone", f"milestone {mid!r} of contract {cid!r} is listed twice")
                mine.append((mid, amount, due))
                if len(problems) > 50:
                    break
    except UnicodeDecodeError as exc:
        raise InputError([Problem(name, None, None, f"not a CSV table: {_first_line(exc)}")]) from None
    except csv.Error as exc:
        raise InputError([Problem(name, None, None, f"not a CSV table: {_first_line(exc)}")]) from None
    except (ValueError, OSError) as exc:  # pyarrow's errors on a damaged Parquet file
        raise InputError([Problem(name, None, None, f"not a Parquet table: {_first_line(exc)}")]) from None
    if problems:
        raise InputError(problems)
    if not rows:
        raise InputError([Problem(name, None, None, "the contracts file lists no contract")])
    return {cid: ContractRow(cid, *parties[cid], tuple(ms)) for cid, ms in rows.items()}


def _number_or_text(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text.strip()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def _check_size(path: str | Path, limit: int, what: str) -> None:
    try:
        size = Path(path).stat().st_size
    except OSError as exc:
        raise InputError([Problem(str(path), None, None, f"cannot read {what}: {exc.strerror}")]) from None
    if not Path(path).is_file():
        raise InputError([Problem(str(path), None, None, f"the {what} is not a file")])
    if size > limit:
        raise InputError([Problem(str(path), None, None, f"the {what} is larger than {limit:,} bytes")])


# ------------------------------------------------------------------------------ the log


@dataclass(frozen=True, slots=True)
class LogRow:
    """One validated row of the log, in our names; ``line`` is where it was read."""

    line: int
    time: float
    contract: str
    milestone: str
    actor: str
    action: str
    rejected: bool
    amount: int | None
    args: tuple[tuple[str, Any], ...]
    escrow: int | None

    @property
    def automatic(self) -> bool:
        """An event the platform produced on its own (not a party's or the platform's decision)."""
        return self.actor == "platform" and self.action not in PLATFORM_ACTIONS


class LogReader:
    """Reads a log in chunks of validated :class:`LogRow`, in time order.

    ``start`` is the calendar date of t = 0 (ISO stamps without a time zone need it); ``openers``
    are the pack's own opening actions, ``(actor, name)``.
    """

    def __init__(
        self,
        path: str | Path,
        contracts: dict[str, ContractRow],
        digits: int,
        *,
        mapping: Mapping | None = None,
        start: dt.date | None = None,
        openers: frozenset[tuple[str, str]] = frozenset(),
        chunk_rows: int = CHUNK_ROWS,
    ) -> None:
        self.path = Path(path)
        self.name = str(path)
        self.contracts = contracts
        self.digits = digits
        self.mapping = mapping or Mapping()
        self.start = start
        self.openers = openers
        self.chunk_rows = chunk_rows
        self.parquet = self.path.suffix.lower() in (".parquet", ".pq")
        self.rows_read = 0
        self.last_time = 0.0
        #: contracts of the list a replay is done with and forgot (they stay known to the log)
        self.retired: dict[str, str] | set[str] = set()
        self._stamps: str | None = None  # "days", "aware" or "naive": fixed by the first row
        self._t0: dt.datetime | None = None
        self._money: dict[str, int] = {}
        self._header: list[str] = []
        _check_size(path, MAX_LOG_BYTES, "log")

    # the table, chunk by chunk, as dicts of our column -> list of raw values
    def _chunks(self) -> Iterator[Any]:
        import pandas as pd

        if self.parquet:
            import pyarrow as pa
            import pyarrow.parquet as pq

            try:
                pf = pq.ParquetFile(self.path)
                self._check_header(list(pf.schema_arrow.names))
                if pf.metadata.num_rows == 0:
                    raise InputError([Problem(self.name, None, None, "the log has columns and no rows")])
                for batch in pf.iter_batches(batch_size=self.chunk_rows):
                    yield batch.to_pandas()
            except (pa.ArrowException, OSError) as exc:
                raise InputError(
                    [Problem(self.name, None, None, f"not a Parquet table: {_first_line(exc)}")]
                ) from None
            return
        try:
            reader = pd.read_csv(
                self.path,
                dtype=str,
                keep_default_na=False,
                na_filter=False,
                chunksize=self.chunk_rows,
                encoding="utf-8",
            )
            first = True
            rows = 0
            for chunk in reader:
                if first:
                    self._check_header(list(chunk.columns))
                    first = False
                if not isinstance(chunk.index, pd.RangeIndex):  # a first row with more fields than the header
                    raise InputError(
                        [
                            Problem(
                                self.name,
                                2,
                                None,
                                f"line 2 has more fields than the header's {len(chunk.columns)}",
                            )
                        ]
                    )
                rows += len(chunk)
                yield chunk
            if not rows:
                raise InputError([Problem(self.name, None, None, "the log has a header and no rows")])
        except pd.errors.EmptyDataError:
            raise InputError([Problem(self.name, None, None, "not a table: the file is empty")]) from None
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
            raise InputError(
                [Problem(self.name, None, None, f"not a CSV table: {_first_line(exc)}")]
            ) from None

    def _check_header(self, header: list[str]) -> None:
        m = self.mapping
        theirs = {m.columns.get(c, c): c for c in (*REQUIRED, *OPTIONAL)}
        problems = []
        raw = self._raw_header() if not self.parquet else header
        twice = sorted({c for c in raw if raw.count(c) > 1})
        if twice:
            raise InputError(
                [Problem(self.name, 1, raw.index(twice[0]) + 1, f"column {twice[0]!r} appears twice")]
            )
        hinted: set[str] = set()
        for i, col in enumerate(header):
            if col in theirs or col in IGNORED or col in m.ignore:
                continue
            hint = difflib.get_close_matches(col, list(theirs), n=1)
            hinted.update(theirs[h] for h in hint)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            problems.append(
                Problem(
                    self.name,
                    1,
                    i + 1,
                    f"unknown column {col!r}{extra}: rename it with --map "
                    f"{theirs[hint[0]] if hint else 'OURS'}={col} or a mapping file's columns:, or list it "
                    "under ignore:",
                )
            )
        for ours in REQUIRED:
            if m.columns.get(ours, ours) not in header and ours not in hinted:  # a typo: said above
                problems.append(Problem(self.name, 1, None, f"required column {ours!r} is missing"))
        if problems:
            raise InputError(problems)
        self._header = header
        self._theirs = {t: o for t, o in theirs.items() if t in header}
        #: our columns the log has
        self.present = frozenset(self._theirs.values())

    def _raw_header(self) -> list[str]:
        """The CSV's first line as written (pandas renames a repeated column ``time.1``)."""
        import csv

        with self.path.open(encoding="utf-8", errors="replace", newline="") as f:
            return next(csv.reader([f.readline()]), [])

    def __iter__(self) -> Iterator[list[LogRow]]:
        line = 1
        for chunk in self._chunks():
            data = {self._theirs[t]: chunk[t].tolist() for t in chunk.columns if t in self._theirs}
            n = len(chunk)
            out: list[LogRow] = []
            problems: list[Problem] = []
            get = {k: data.get(k) for k in (*REQUIRED, *OPTIONAL)}
            for i in range(n):
                line += 1
                try:
                    out.append(
                        self._row(line, {k: (v[i] if v is not None else None) for k, v in get.items()})
                    )
                except _Bad as bad:
                    col = self.mapping.columns.get(bad.column, bad.column)
                    where = self._header.index(col) + 1 if col in self._header else None
                    problems.append(Problem(self.name, line, where, f"column {col!r}: {bad.message}"))
                    if len(problems) >= 20 or isinstance(bad, _Fatal):
                        break
            if problems:
                raise InputError(problems)
            self.rows_read += n
            yield out

    def _row(self, line: int, raw: dict[str, Any]) -> LogRow:
        t = self._time(raw["time"])
        if t < self.last_time:
            raise _Bad(
                "time",
                f"{_shown(raw['time'])} is before the previous row's time: the log must be in time order",
            )
        if t > MAX_DAYS:
            raise _Bad("time", f"{_shown(raw['time'])} is more than {MAX_DAYS:g} days after t = 0")
        self.last_time = t
        cid = _text(raw["contract"], "contract")
        if cid not in self.contracts and cid not in self.retired:
            raise _Bad("contract", f"contract {cid!r} is not in the contracts file")
        mid = _text(raw["milestone"], "milestone", optional=True)
        actor = _text(raw["actor"], "actor")
        actor = self.mapping.actors.get(actor, actor)
        action = _text(raw["action"], "action")
        their_actor = _text(raw["actor"], "actor")
        action = self.mapping.actions.get(f"{their_actor}/{action}", self.mapping.actions.get(action, action))
        if actor not in ACTIONS:
            raise _Bad(
                "actor",
                f"unknown actor {actor!r}: map it with a mapping file's actors: "
                f"(ours are {', '.join(ACTIONS)})",
            )
        if not self._action_ok(actor, action):
            raise _Bad(
                "action",
                f"{actor} action {action!r} is not one of the pack's: map it with a mapping file's actions:; "
                + _action_hint(action),
            )
        outcome = _text(raw["outcome"], "outcome", optional=True) if raw["outcome"] is not None else ""
        if outcome not in ("", "accepted", "rejected"):
            raise _Bad("outcome", f"expected accepted or rejected, got {outcome!r}")
        amount = self._amount(raw["amount"], "amount")
        escrow = self._amount(raw["escrow"], "escrow")
        args = self._args(raw["args"]) if raw["args"] is not None else ()
        return LogRow(line, t, cid, mid, actor, action, outcome == "rejected", amount, args, escrow)

    def _action_ok(self, actor: str, action: str) -> bool:
        if actor == "platform" and action in AUTOMATIC_NAMES:
            return True
        return action in ACTIONS[actor] or (actor, action) in self.openers

    def _amount(self, value: Any, column: str) -> int | None:
        if value is None:
            return None
        if isinstance(value, float) and math.isnan(value):
            return None
        key = value if isinstance(value, str) else repr(value)
        if key == "":
            return None
        cents = self._money.get(key)
        if cents is None:
            try:
                cents = parse_money(value, self.digits, allow_zero=True)
            except UnitError as exc:
                raise _Bad(column, str(exc)) from None
            if len(self._money) > 100_000:
                self._money.clear()
            self._money[key] = cents
        return cents

    def _args(self, value: Any) -> tuple[tuple[str, Any], ...]:
        text = "" if value is None else str(value).strip()
        if not text:
            return ()
        if len(text) > MAX_CELL:
            raise _Bad("args", f"is longer than {MAX_CELL} characters")
        out = []
        for part in text.split(";"):
            key, sep, val = part.partition("=")
            key = key.strip()
            if not sep or key not in _ARG_KEYS:
                raise _Bad(
                    "args",
                    f"expected key=value pairs joined by ';' with keys {', '.join(_ARG_KEYS)}, got {part!r}",
                )
            val = val.strip()
            try:
                if key in ("amount", "release", "refund"):
                    out.append((key, parse_money(val, self.digits, allow_zero=True)))
                elif key == "due":
                    out.append((key, parse_duration(_number_or_text(val))))
                elif key == "position":
                    if not val.isdigit():
                        raise UnitError(f"position is a 0-based index, got {val!r}")
                    out.append((key, int(val)))
                elif key == "order":
                    out.append((key, tuple(val.split())))
                else:
                    if not val:
                        raise UnitError(f"{key} is a name")
                    out.append((key, val))
            except UnitError as exc:
                raise _Bad("args", f"{key}: {exc}") from None
        return tuple(out)

    def _time(self, value: Any) -> float:
        if value is None or (isinstance(value, str) and not value.strip()):
            raise _Bad("time", "is empty")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if self._stamps not in (None, "days"):
                raise _Bad("time", "mixes day offsets with timestamps")
            self._stamps = "days"
            t = float(value)
            if not math.isfinite(t) or t < 0:
                raise _Bad("time", f"expected a time >= 0 in days, got {value!r}")
            return t
        if hasattr(value, "to_pydatetime"):  # a Parquet timestamp column
            value = value.to_pydatetime()
        if isinstance(value, str):
            text = value.strip()
            if self._stamps in (None, "days"):
                try:
                    t = float(text)
                except ValueError:
                    if self._stamps == "days":
                        raise _Bad("time", f"expected days since t = 0, got {_shown(value)}") from None
                else:
                    if not math.isfinite(t) or t < 0:
                        raise _Bad("time", f"expected a time >= 0 in days, got {_shown(value)}")
                    self._stamps = "days"
                    return t
            try:
                value = dt.datetime.fromisoformat(text)
            except ValueError:
                raise _Bad(
                    "time", f"expected days since t = 0 or an ISO 8601 timestamp, got {_shown(text)}"
                ) from None
        if not isinstance(value, dt.datetime):
            raise _Bad("time", f"expected days since t = 0 or an ISO 8601 timestamp, got {_shown(value)}")
        aware = value.tzinfo is not None and value.utcoffset() is not None
        kind = "aware" if aware else "naive"
        if self._stamps is None:
            if not aware and self.start is None:
                raise _Fatal(
                    "time",
                    "timestamps without a time zone need --start DATE (the date of t = 0); "
                    "or give the zone in the stamps (2026-01-05T10:00:00+00:00)",
                )
            self._stamps = kind
            day = self.start or value.astimezone(dt.UTC).date()
            self._t0 = dt.datetime.combine(day, dt.time(), dt.UTC if aware else None)
        elif self._stamps != kind:
            raise _Bad("time", "mixes timestamps with and without a time zone")
        assert self._t0 is not None
        t = (value - self._t0).total_seconds() / 86_400.0
        if t < 0:
            raise _Bad("time", f"{_shown(value.isoformat())} is before t = 0 ({self._t0.date().isoformat()})")
        return round(t * 86_400_000) / 86_400_000

    @property
    def origin(self) -> dt.datetime | None:
        """The instant of t = 0 when the log's times are timestamps."""
        return self._t0


def _text(value: Any, column: str, *, optional: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        if optional:
            return ""
        raise _Bad(column, "is empty")
    text = str(value).strip()
    if not text and not optional:
        raise _Bad(column, "is empty")
    if len(text) > MAX_CELL:
        raise _Bad(column, f"is longer than {MAX_CELL} characters")
    return text


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
