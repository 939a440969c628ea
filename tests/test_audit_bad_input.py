"""`milestone-sim audit` from its contract (FORMAT section 10, `audit --help`, scenarios/audit/).

Bad input exits 2 with a message naming the file (and, for a row, its line and column: header line 1,
first data row line 2), no traceback, and nothing written: the --out folder does not exist afterwards.
Good input exits 0 (the log conforms) or 1 (findings), and writes audit.csv, summary.json, audit.html.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sim.app.cli import main

ROOT = Path(__file__).resolve().parent.parent
AUDIT = ROOT / "scenarios" / "audit"

HEADER = "time,contract,milestone,actor,action,amount"

#: one contract under upwork: funded, submitted at 5d, auto-approved by silence at 5d + 14d = 19d
GOOD_ROWS = [
    "0,c1,,client,offer,0.00",
    "0,c1,m1,client,fund,500.00",
    "1,c1,,freelancer,accept_offer,0.00",
    "5,c1,m1,freelancer,submit,0.00",
    "19,c1,m1,platform,auto_approve,500.00",
]
CONTRACTS = "contract,client,freelancer,milestone,amount,due\nc1,acme,ana,m1,500.00,10\n"

FINDING_KEYS = ("kind", "contract", "milestone", "at_stake")


def _log(*rows: str, header: str = HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


def _cli(capsys: pytest.CaptureFixture, *args: str | Path) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:  # an argparse error
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def _case_id(case) -> str:
    return case.values[0].id if hasattr(case, "values") else case.id


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _error_line(err: str, where: str) -> str:
    """The stderr line that gives the position `where` (e.g. "/tmp/x/log.csv:3:6:")."""
    lines = [line for line in err.splitlines() if where in line]
    assert lines, f"no message at {where!r} in stderr:\n{err}"
    return lines[0]


def _assert_refused(code: int, err: str, out_dir: Path, before: set[str], folder: Path) -> None:
    assert code == 2, err
    assert "Traceback" not in err, err
    assert "internal error" not in err, err
    assert not out_dir.exists(), f"{out_dir} was written for bad input"
    assert _files(folder) == before, "bad input wrote files"


def _late_log(tmp_path: Path, header: str = HEADER) -> tuple[Path, Path]:
    """A log whose auto_approve comes one day late (20d instead of 19d)."""
    rows = [*GOOD_ROWS[:-1], "20,c1,m1,platform,auto_approve,500.00"]
    log = tmp_path / "late.csv"
    log.write_text(_log(*rows, header=header), encoding="utf-8")
    contracts = tmp_path / "contracts.csv"
    contracts.write_text(CONTRACTS, encoding="utf-8")
    return log, contracts


# --------------------------------------------------------------------------------------------------
# bad rows and columns of the log: file:line:column and the column's name


@dataclass(frozen=True)
class RowCase:
    id: str
    log: str
    line: int
    column: int  # 1-based position of the column in the header
    name: str  # the column's name as the log spells it
    says: tuple[str, ...]  # fragments of the explanation
    args: tuple[str, ...] = ()
    mapping: str | None = None


ROW_CASES = [
    RowCase(
        "unknown column",
        _log("0,c1,,client,offer,0.00,red", header=HEADER + ",colour"),
        1,
        7,
        "colour",
        ("unknown column",),
    ),
    RowCase(
        "unknown action without a mapping",
        _log(GOOD_ROWS[0], "0,c1,m1,client,pay_now,500.00"),
        3,
        5,
        "action",
        ("'pay_now'",),
    ),
    RowCase(
        "unknown actor without a mapping",
        _log("0,c1,,buyer,offer,0.00"),
        2,
        4,
        "actor",
        ("'buyer'",),
    ),
    RowCase(
        "the marketplace's action name needs the mapping's actions:",
        _log(
            "2026-01-05T00:00:00+00:00,c1,,buyer,offer,0.00",
            "2026-01-05T01:00:00+00:00,c1,m1,buyer,escrow_funded,500.00",
            header="created_at,contract,milestone,actor,action,amount",
        ),
        3,
        5,
        "action",
        ("'escrow_funded'",),
        mapping="columns:\n  time: created_at\nactors:\n  buyer: client\n",
    ),
    RowCase(
        "unparseable time in days",
        _log(GOOD_ROWS[0], "abc,c1,m1,client,fund,500.00"),
        3,
        1,
        "time",
        ("'abc'",),
    ),
    RowCase(
        "unparseable ISO timestamp",
        _log(
            "2026-01-05T00:00:00+00:00,c1,,client,offer,0.00",
            "2026-13-45T00:00:00+00:00,c1,m1,client,fund,500.00",
        ),
        3,
        1,
        "time",
        ("'2026-13-45T00:00:00+00:00'",),
    ),
    RowCase(
        "rows out of time order (days)",
        _log("1,c1,,client,offer,0.00", "0,c1,m1,client,fund,500.00"),
        3,
        1,
        "time",
        ("time order",),
    ),
    RowCase(
        "rows out of time order (ISO)",
        _log(
            "2026-01-05T00:00:00+00:00,c1,,client,offer,0.00",
            "2026-01-05T05:00:00+00:00,c1,m1,client,fund,500.00",
            "2026-01-05T04:59:59+00:00,c1,,freelancer,accept_offer,0.00",
        ),
        4,
        1,
        "time",
        ("time order",),
    ),
    RowCase(
        "a renamed time column is named as the log spells it",
        _log(GOOD_ROWS[0], "xyz,c1,m1,client,fund,500.00", header=HEADER.replace("time", "when")),
        3,
        1,
        "when",
        ("'xyz'",),
        args=("--map", "time=when"),
    ),
    RowCase(
        "contract not in CONTRACTS",
        _log(GOOD_ROWS[0], "0,c9,,client,offer,0.00"),
        3,
        2,
        "contract",
        ("'c9'", "contracts file"),
    ),
    RowCase(
        "amount with three decimals (USD)",
        _log(GOOD_ROWS[0], "0,c1,m1,client,fund,5.005"),
        3,
        6,
        "amount",
        ("5.005", "decimal"),
    ),
    RowCase(
        "escrow balance with three decimals",
        _log("0,c1,,client,offer,0.00,0.00", "0,c1,m1,client,fund,500.00,500.005", header=HEADER + ",escrow"),
        3,
        7,
        "escrow",
        ("500.005",),
    ),
    RowCase(
        "non-numeric amount",
        _log("0,c1,,client,offer,zero"),
        2,
        6,
        "amount",
        ("'zero'",),
    ),
    RowCase(
        "ISO timestamp without a zone and no --start (one row)",
        _log("2026-01-05T00:00:00,c1,,client,offer,0.00"),
        2,
        1,
        "time",
        ("--start",),
    ),
    RowCase(
        "ISO timestamps without a zone and no --start (two rows)",
        _log("2026-01-05T00:00:00,c1,,client,offer,0.00", "2026-01-05T01:00:00,c1,m1,client,fund,500.00"),
        2,
        1,
        "time",
        ("--start",),
    ),
    RowCase(
        "timestamps with and without a zone mixed",
        _log(
            "2026-01-05T00:00:00+00:00,c1,,client,offer,0.00",
            "2026-01-05T01:00:00,c1,m1,client,fund,500.00",
        ),
        3,
        1,
        "time",
        ("time zone",),
    ),
]


@pytest.mark.parametrize("case", ROW_CASES, ids=[_case_id(c) for c in ROW_CASES])
def test_bad_row_names_file_line_and_column(case: RowCase, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    log = folder / "log.csv"
    log.write_text(case.log, encoding="utf-8")
    contracts = folder / "contracts.csv"
    contracts.write_text(CONTRACTS, encoding="utf-8")
    args: list[str | Path] = [*case.args]
    if case.mapping is not None:
        mapping = folder / "mapping.yaml"
        mapping.write_text(case.mapping, encoding="utf-8")
        args += ["--mapping", mapping]
    before = _files(folder)
    out_dir = tmp_path / "out"
    code, _, err = _cli(
        capsys, "audit", log, "--contracts", contracts, "--policy", "upwork", *args, "--out", out_dir
    )
    _assert_refused(code, err, out_dir, before, folder)
    message = _error_line(err, f"{log}:{case.line}:{case.column}:")
    assert f"'{case.name}'" in message, message
    for fragment in case.says:
        assert fragment in message, message


def test_example_log_without_its_mapping_names_its_first_column(tmp_path: Path, capsys) -> None:
    log = AUDIT / "clean_log.csv"
    out_dir = tmp_path / "out"
    code, _, err = _cli(
        capsys, "audit", log, "--contracts", AUDIT / "contracts.csv", "--policy", "upwork", "--out", out_dir
    )
    _assert_refused(code, err, out_dir, set(), tmp_path)
    assert "'created_at'" in _error_line(err, f"{log}:1:1:")


# --------------------------------------------------------------------------------------------------
# logs that are not tables


def _parquet_header_only(path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = HEADER.split(",")
    types = [pa.float64(), pa.string(), pa.string(), pa.string(), pa.string(), pa.float64()]
    pq.write_table(pa.table({n: pa.array([], t) for n, t in zip(names, types, strict=True)}), path)


@dataclass(frozen=True)
class TableCase:
    id: str
    name: str
    content: bytes | None  # None: a directory (or a Parquet file made by `make`)
    says: tuple[str, ...] = ()
    make: object = field(default=None, compare=False)


TABLE_CASES = [
    TableCase(
        "binary garbage (invalid UTF-8)", "log.csv", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\xfe\x80" * 20
    ),
    TableCase("binary garbage (NUL bytes)", "log.csv", bytes(range(0, 32)) * 8),
    TableCase("empty file", "log.csv", b"", ("empty",)),
    TableCase("only blank lines", "log.csv", b"\n\n\n"),
    TableCase("header only", "log.csv", (HEADER + "\n").encode()),
    TableCase("a directory", "log.csv", None),
    TableCase("garbage named .parquet", "log.parquet", b"PAR1 this is not parquet PAR1"),
    TableCase("header-only Parquet", "log.parquet", None, make=_parquet_header_only),
]


@pytest.mark.parametrize("case", TABLE_CASES, ids=[_case_id(c) for c in TABLE_CASES])
def test_log_that_is_not_a_table(case: TableCase, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    log = folder / case.name
    if case.make is not None:
        case.make(log)
    elif case.content is None:
        log.mkdir()
    else:
        log.write_bytes(case.content)
    contracts = folder / "contracts.csv"
    contracts.write_text(CONTRACTS, encoding="utf-8")
    before = _files(folder)
    out_dir = tmp_path / "out"
    code, _, err = _cli(
        capsys, "audit", log, "--contracts", contracts, "--policy", "upwork", "--out", out_dir
    )
    _assert_refused(code, err, out_dir, before, folder)
    message = _error_line(err, f"{log}:")
    for fragment in case.says:
        assert fragment in message, message


def test_missing_log_file(tmp_path: Path, capsys) -> None:
    (tmp_path / "contracts.csv").write_text(CONTRACTS)
    log = tmp_path / "nosuch.csv"
    out_dir = tmp_path / "out"
    before = _files(tmp_path)
    code, _, err = _cli(
        capsys,
        "audit",
        log,
        "--contracts",
        tmp_path / "contracts.csv",
        "--policy",
        "upwork",
        "--out",
        out_dir,
    )
    _assert_refused(code, err, out_dir, before, tmp_path)
    _error_line(err, f"{log}:")


def test_bad_parquet_row_names_line_and_column(tmp_path: Path, capsys) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    log = tmp_path / "log.parquet"
    table = {
        "time": [0.0, 0.0],
        "contract": ["c1", "c1"],
        "milestone": ["", "m1"],
        "actor": ["client", "client"],
        "action": ["offer", "fund"],
        "amount": [0.0, 5.005],
    }
    pq.write_table(pa.table(table), log)
    (tmp_path / "contracts.csv").write_text(CONTRACTS)
    before = _files(tmp_path)
    out_dir = tmp_path / "out"
    code, _, err = _cli(
        capsys,
        "audit",
        log,
        "--contracts",
        tmp_path / "contracts.csv",
        "--policy",
        "upwork",
        "--out",
        out_dir,
    )
    _assert_refused(code, err, out_dir, before, tmp_path)
    assert "'amount'" in _error_line(err, f"{log}:3:6:")


# --------------------------------------------------------------------------------------------------
# bad options


OPTION_CASES = [  # option, value, what the message must quote
    ("--tolerance", "banana", "banana"),
    ("--tolerance", "-1h", "-1h"),
    ("--tolerance", "", ""),
    ("--tolerance", "1x", "1x"),
    ("--map", "foo", "foo"),
    ("--map", "time=", "time="),
    ("--map", "=when", "=when"),
    ("--map", "nosuch=time", "nosuch"),
    ("--start", "notadate", "notadate"),
    ("--start", "2026-02-30", "2026-02-30"),
]


@pytest.mark.parametrize(
    ("option", "value", "named"), OPTION_CASES, ids=[f"{o} {v!r}" for o, v, _ in OPTION_CASES]
)
def test_bad_option(option: str, value: str, named: str, tmp_path: Path, capsys) -> None:
    log = tmp_path / "log.csv"
    log.write_text(_log(*GOOD_ROWS))
    (tmp_path / "contracts.csv").write_text(CONTRACTS)
    before = _files(tmp_path)
    out_dir = tmp_path / "out"
    code, _, err = _cli(
        capsys,
        "audit",
        log,
        "--contracts",
        tmp_path / "contracts.csv",
        "--policy",
        "upwork",
        f"{option}={value}",
        "--out",
        out_dir,
    )
    _assert_refused(code, err, out_dir, before, tmp_path)
    message = _error_line(err, option)
    assert f"'{named}'" in message, message


# --------------------------------------------------------------------------------------------------
# bad mapping files: mapping.yaml:line:column and the key


@dataclass(frozen=True)
class MappingCase:
    id: str
    text: str
    line: int
    column: int | None  # None: only the line is checked
    says: tuple[str, ...]


MAPPING_CASES = [
    MappingCase(
        "unknown top-level key (typo)",
        "columns:\n  time: time\nactoins:\n  paid: fund\n",
        3,
        1,
        ("'actoins'", "actions"),
    ),
    MappingCase("unknown top-level key", "colours: {}\n", 1, 1, ("'colours'",)),
    MappingCase("unknown column of ours", "columns:\n  time: time\n  colour: x\n", 3, 3, ("'colour'",)),
    MappingCase("columns is a list", "columns: [time, contract]\n", 1, 10, ("columns",)),
    MappingCase("a column name is a number", "columns:\n  time: 5\n", 2, 3, ("columns",)),
    MappingCase("ignore is a string", "ignore: colour\n", 1, 9, ("ignore",)),
    MappingCase("the file is a list", "- columns\n- actions\n", 1, 1, ()),
    MappingCase("action mapped to no action", "actions:\n  paid: pay_now\n", 2, 9, ("'pay_now'",)),
    MappingCase("actor mapped to no role", "actors:\n  buyer: king\n", 2, 10, ("'king'",)),
    MappingCase("YAML syntax error", "columns:\n  time: [created_at\n", 3, None, ("YAML",)),
    MappingCase(
        "unsafe tag !!python/object", "columns: !!python/object:os.system {}\n", 1, 10, ("!!python/object",)
    ),
]


@pytest.mark.parametrize("case", MAPPING_CASES, ids=[c.id for c in MAPPING_CASES])
def test_bad_mapping_file(case: MappingCase, tmp_path: Path, capsys) -> None:
    log = tmp_path / "log.csv"
    log.write_text(_log(*GOOD_ROWS))
    (tmp_path / "contracts.csv").write_text(CONTRACTS)
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(case.text)
    before = _files(tmp_path)
    out_dir = tmp_path / "out"
    code, _, err = _cli(
        capsys,
        "audit",
        log,
        "--contracts",
        tmp_path / "contracts.csv",
        "--policy",
        "upwork",
        "--mapping",
        mapping,
        "--out",
        out_dir,
    )
    _assert_refused(code, err, out_dir, before, tmp_path)
    where = f"{mapping}:{case.line}:" + (f"{case.column}:" if case.column is not None else "")
    message = _error_line(err, where)
    for fragment in case.says:
        assert fragment in message, message


def test_unsafe_mapping_tag_runs_nothing(tmp_path: Path, capsys) -> None:
    marker = tmp_path / "PWNED"
    log = tmp_path / "log.csv"
    log.write_text(_log(*GOOD_ROWS))
    (tmp_path / "contracts.csv").write_text(CONTRACTS)
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(f"columns:\n  time: !!python/object/apply:os.system ['touch {marker}']\n")
    before = _files(tmp_path)
    out_dir = tmp_path / "out"
    code, _, err = _cli(
        capsys,
        "audit",
        log,
        "--contracts",
        tmp_path / "contracts.csv",
        "--policy",
        "upwork",
        "--mapping",
        mapping,
        "--out",
        out_dir,
    )
    assert not marker.exists()
    _assert_refused(code, err, out_dir, before, tmp_path)
    assert "!!python/object/apply:os.system" in _error_line(err, f"{mapping}:2:9:")


def test_missing_mapping_file(tmp_path: Path, capsys) -> None:
    log = tmp_path / "log.csv"
    log.write_text(_log(*GOOD_ROWS))
    (tmp_path / "contracts.csv").write_text(CONTRACTS)
    mapping = tmp_path / "nosuch.yaml"
    before = _files(tmp_path)
    out_dir = tmp_path / "out"
    code, _, err = _cli(
        capsys,
        "audit",
        log,
        "--contracts",
        tmp_path / "contracts.csv",
        "--policy",
        "upwork",
        "--mapping",
        mapping,
        "--out",
        out_dir,
    )
    _assert_refused(code, err, out_dir, before, tmp_path)
    _error_line(err, f"{mapping}:")


# --------------------------------------------------------------------------------------------------
# good paths


def _assert_outputs(out_dir: Path) -> None:
    for name in ("audit.csv", "summary.json", "audit.html"):
        assert (out_dir / name).is_file(), name


@pytest.mark.parametrize(
    "scenario",
    ["refund_disputed_and_resolved", "auto_approve_after_silence", "partial_release_remainder_refunded"],
)
def test_a_runs_own_outputs_conform(scenario: str, tmp_path: Path, capsys) -> None:
    run_dir = tmp_path / "run"
    code, _, err = _cli(capsys, "run", ROOT / "scenarios" / "upwork" / f"{scenario}.yaml", "--out", run_dir)
    assert code == 0, err
    out_dir = tmp_path / "audit"
    code, _, err = _cli(
        capsys,
        "audit",
        run_dir / "events.csv",
        "--contracts",
        run_dir / "contracts.csv",
        "--policy",
        "upwork",
        "--out",
        out_dir,
    )
    assert code == 0, err
    _assert_outputs(out_dir)
    assert _rows(out_dir / "audit.csv") == []
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["findings"] == 0
    assert summary["conforms"] is True


def test_clean_example_log_conforms(tmp_path: Path, capsys) -> None:
    out_dir = tmp_path / "out"
    code, _, err = _cli(
        capsys,
        "audit",
        AUDIT / "clean_log.csv",
        "--contracts",
        AUDIT / "contracts.csv",
        "--policy",
        "upwork",
        "--mapping",
        AUDIT / "mapping.yaml",
        "--out",
        out_dir,
    )
    assert code == 0, err
    _assert_outputs(out_dir)
    assert _rows(out_dir / "audit.csv") == []


def _injected() -> list[dict[str, str]]:
    return _rows(AUDIT / "injected.csv")


def _assert_findings_are_injected(rows: list[dict[str, str]]) -> None:
    injected = _injected()
    assert len(injected) == 7
    key = lambda r: tuple(r[k] for k in FINDING_KEYS)  # noqa: E731
    assert sorted(map(key, rows)) == sorted(map(key, injected))
    found = {key(r): float(r["time"]) for r in rows}
    for row in injected:
        assert found[key(row)] == pytest.approx(float(row["time"]), abs=1e-6), row


@pytest.fixture(scope="module")
def production_audit(tmp_path_factory) -> tuple[int, Path]:
    out_dir = tmp_path_factory.mktemp("production") / "out"
    code = main(
        [
            "audit",
            str(AUDIT / "production_log.csv"),
            "--contracts",
            str(AUDIT / "contracts.csv"),
            "--policy",
            "upwork",
            "--mapping",
            str(AUDIT / "mapping.yaml"),
            "--out",
            str(out_dir),
            "--quiet",
        ]
    )
    return code, out_dir


def test_production_log_has_exactly_the_injected_findings(production_audit) -> None:
    code, out_dir = production_audit
    assert code == 1
    _assert_outputs(out_dir)
    _assert_findings_are_injected(_rows(out_dir / "audit.csv"))


def test_production_summary_counts_the_injected_kinds(production_audit) -> None:
    _, out_dir = production_audit
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["conforms"] is False
    assert summary["findings"] == 7
    assert summary["by_kind"] == dict(Counter(r["kind"] for r in _injected()))
    assert summary["at_stake_by_kind"] == {r["kind"]: r["at_stake"] for r in _injected()}


def test_parquet_copy_gives_the_same_findings(production_audit, tmp_path: Path, capsys) -> None:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    log = tmp_path / "production_log.parquet"
    pq.write_table(pacsv.read_csv(AUDIT / "production_log.csv"), log)
    out_dir = tmp_path / "out"
    code, _, err = _cli(
        capsys,
        "audit",
        log,
        "--contracts",
        AUDIT / "contracts.csv",
        "--policy",
        "upwork",
        "--mapping",
        AUDIT / "mapping.yaml",
        "--out",
        out_dir,
    )
    assert code == 1, err
    _assert_outputs(out_dir)
    rows = _rows(out_dir / "audit.csv")
    _assert_findings_are_injected(rows)
    _, csv_out = production_audit
    assert rows == _rows(csv_out / "audit.csv")


def test_late_automatic_event_is_one_finding(tmp_path: Path, capsys) -> None:
    log, contracts = _late_log(tmp_path)
    out_dir = tmp_path / "out"
    code, _, err = _cli(
        capsys, "audit", log, "--contracts", contracts, "--policy", "upwork", "--out", out_dir
    )
    assert code == 1, err
    _assert_outputs(out_dir)
    [row] = _rows(out_dir / "audit.csv")
    assert (row["kind"], row["contract"], row["milestone"], row["at_stake"]) == ("late", "c1", "m1", "500.00")
    assert float(row["time"]) == pytest.approx(20.0, abs=1e-6)
    assert row["line"] == "6"


def test_map_renames_columns_instead_of_a_mapping_file(tmp_path: Path, capsys) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    log, contracts = _late_log(plain)
    code, _, err = _cli(
        capsys, "audit", log, "--contracts", contracts, "--policy", "upwork", "--out", tmp_path / "o1"
    )
    assert code == 1, err

    renamed = tmp_path / "renamed"
    renamed.mkdir()
    header = "when,contract_id,milestone,actor,action,sum"
    log2, contracts2 = _late_log(renamed, header=header)
    common = ["audit", log2, "--contracts", contracts2, "--policy", "upwork"]
    code, _, err = _cli(capsys, *common, "--out", tmp_path / "o0")
    assert code == 2, "the renamed log must not be read without --map"
    maps = ["--map", "time=when", "--map", "contract=contract_id", "--map", "amount=sum"]
    code, _, err = _cli(capsys, *common, *maps, "--out", tmp_path / "o2")
    assert code == 1, err
    assert _rows(tmp_path / "o2" / "audit.csv") == _rows(tmp_path / "o1" / "audit.csv")


def test_map_on_a_conforming_log(tmp_path: Path, capsys) -> None:
    log = tmp_path / "log.csv"
    log.write_text(_log(*GOOD_ROWS, header=HEADER.replace("action", "event")))
    (tmp_path / "contracts.csv").write_text(CONTRACTS)
    out_dir = tmp_path / "out"
    code, _, err = _cli(
        capsys,
        "audit",
        log,
        "--contracts",
        tmp_path / "contracts.csv",
        "--policy",
        "upwork",
        "--map",
        "action=event",
        "--out",
        out_dir,
    )
    assert code == 0, err
    assert _rows(out_dir / "audit.csv") == []


def test_tolerance_with_units_absorbs_a_late_event(tmp_path: Path, capsys) -> None:
    log, contracts = _late_log(tmp_path)
    common = ["audit", log, "--contracts", contracts, "--policy", "upwork"]
    code, _, err = _cli(capsys, *common, "--tolerance", "1d12h", "--out", tmp_path / "wide")
    assert code == 0, err
    code, _, err = _cli(capsys, *common, "--tolerance", "23h", "--out", tmp_path / "narrow")
    assert code == 1, err


def test_tolerance_as_a_number_of_days(tmp_path: Path, capsys) -> None:
    log, contracts = _late_log(tmp_path)
    code, _, err = _cli(
        capsys,
        "audit",
        log,
        "--contracts",
        contracts,
        "--policy",
        "upwork",
        "--tolerance",
        "2",
        "--out",
        tmp_path / "out",
    )
    assert code == 0, err


def test_timestamps_without_zone_with_start(tmp_path: Path, capsys) -> None:
    stamps = {
        "0": "2026-01-05T00:00:00",
        "1": "2026-01-06T00:00:00",
        "5": "2026-01-10T00:00:00",
        "20": "2026-01-25T00:00:00",
    }
    rows = [*GOOD_ROWS[:-1], "20,c1,m1,platform,auto_approve,500.00"]
    rows = [stamps[r.split(",", 1)[0]] + "," + r.split(",", 1)[1] for r in rows]
    log = tmp_path / "log.csv"
    log.write_text(_log(*rows))
    (tmp_path / "contracts.csv").write_text(CONTRACTS)
    out_dir = tmp_path / "out"
    code, _, err = _cli(
        capsys,
        "audit",
        log,
        "--contracts",
        tmp_path / "contracts.csv",
        "--policy",
        "upwork",
        "--start",
        "2026-01-05",
        "--out",
        out_dir,
    )
    assert code == 1, err
    [row] = _rows(out_dir / "audit.csv")
    assert (row["kind"], row["contract"], row["milestone"], row["at_stake"]) == ("late", "c1", "m1", "500.00")
    assert float(row["time"]) == pytest.approx(20.0, abs=1e-6)


def test_row_with_too_many_fields_is_refused_at_its_line(tmp_path: Path, capsys) -> None:
    log = tmp_path / "log.csv"
    log.write_text(_log(*GOOD_ROWS[:2], "1,c1,,freelancer,accept_offer,0.00,extra"))
    (tmp_path / "contracts.csv").write_text(CONTRACTS)
    before = _files(tmp_path)
    out_dir = tmp_path / "out"
    code, _, err = _cli(
        capsys,
        "audit",
        log,
        "--contracts",
        tmp_path / "contracts.csv",
        "--policy",
        "upwork",
        "--out",
        out_dir,
    )
    _assert_refused(code, err, out_dir, before, tmp_path)
    message = _error_line(err, f"{log}")
    assert f"{log}:4:" in message or "line 4" in message, message


def test_row_with_too_many_fields_is_not_blamed_on_its_time(tmp_path: Path, capsys) -> None:
    log = tmp_path / "log.csv"
    log.write_text(_log("0,c1,,client,offer,0.00,extra"))
    (tmp_path / "contracts.csv").write_text(CONTRACTS)
    out_dir = tmp_path / "out"
    code, _, err = _cli(
        capsys,
        "audit",
        log,
        "--contracts",
        tmp_path / "contracts.csv",
        "--policy",
        "upwork",
        "--out",
        out_dir,
    )
    assert code == 2, err
    message = _error_line(err, f"{log}:2:")
    assert "got 'c1'" not in message, message
    assert "column 'time'" not in message, message
