"""run --format csv|parquet: Parquet for populations by default, money exact as decimals.

The Parquet tables hold the same rows and values as the CSV ones: money as DECIMAL(38, digits)
(12.50, never 12.499999), times as float days; a scripted run keeps CSV unless told; the printed
summary lists the files and their sizes; explain reads either kind of folder.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from sim.analysis.tables import write_parquet
from sim.app.cli import main

ROOT = Path(__file__).resolve().parent.parent
SCRIPTED = ROOT / "scenarios" / "upwork" / "approve_within_window.yaml"
POPULATION = """
scenario: A small population, for the table formats
policy: upwork
seed: 3
replications: 2
until: 30d
population:
  arrivals: {rate: 4/d}
  milestones:
    count: {poisson: {mean: 2}, minimum: 1}
    amount: {lognormal: {median: 180, sigma: 0.7}}
"""
TABLES = ("events", "ledger", "contracts", "milestones", "balances", "aging")


@pytest.fixture(scope="module")
def both(tmp_path_factory) -> tuple[Path, Path, str]:
    folder = tmp_path_factory.mktemp("formats")
    path = folder / "small.yaml"
    path.write_text(POPULATION, encoding="utf-8")
    args = ["run", str(path), "--no-charts", "--events", "full"]
    assert main([*args, "--out", str(folder / "csv"), "--format", "csv", "--quiet"]) == 0
    assert main([*args, "--out", str(folder / "parquet")]) == 0  # the default for a population
    return folder / "csv", folder / "parquet", path.name


def test_a_population_writes_parquet_by_default_and_csv_when_told(both) -> None:
    csv, parquet, _ = both
    assert sorted(p.name for p in parquet.iterdir() if p.suffix in (".csv", ".parquet")) == sorted(
        f"{t}.parquet" for t in TABLES
    )
    assert sorted(p.name for p in csv.iterdir() if p.suffix in (".csv", ".parquet")) == sorted(
        f"{t}.csv" for t in TABLES
    )


@pytest.mark.parametrize("table", TABLES)
def test_parquet_holds_the_csv_values_to_the_cent(both, table: str) -> None:
    csv, parquet, _ = both
    text = pd.read_csv(csv / f"{table}.csv", dtype=str, keep_default_na=False)
    exact = pd.read_parquet(parquet / f"{table}.parquet")
    assert list(exact.columns) == list(text.columns)
    assert len(exact) == len(text) and (table in ("events", "ledger") or len(exact) > 0)
    for col in text.columns:
        values = exact[col].tolist()
        if values and isinstance(next((v for v in values if v is not None), None), Decimal):
            assert [f"{v:.2f}" for v in values] == text[col].tolist(), col  # exact decimals
        elif pd.api.types.is_float_dtype(exact[col]):
            written = [float(v) if v != "" else float("nan") for v in text[col]]
            assert pd.Series(written).equals(exact[col].reset_index(drop=True)) or (
                (pd.Series(written) - exact[col]).abs().max() < 1e-9
            ), col
        else:
            assert [("" if v is None else str(v)) for v in values] == text[col].tolist(), col


def test_money_columns_are_decimals_with_the_currency_digits(both) -> None:
    _, parquet, _ = both
    schema = pq.read_schema(parquet / "ledger.parquet")
    assert str(schema.field("amount").type) == "decimal128(38, 2)"
    total = pd.read_parquet(parquet / "ledger.parquet")["amount"].sum()
    assert isinstance(total, Decimal) and total == total.quantize(Decimal("0.01"))


def test_write_parquet_is_exact_for_large_and_negative_amounts(tmp_path: Path) -> None:
    cents = [0, 1, -1, 1250, -1250, 10**15, -(10**15), 2**62]
    write_parquet(pd.DataFrame({"amount": cents, "time": [0.5] * len(cents)}), tmp_path / "t.parquet", 2)
    back = pd.read_parquet(tmp_path / "t.parquet")["amount"].tolist()
    assert back == [Decimal(c).scaleb(-2) for c in cents]
    write_parquet(pd.DataFrame({"amount": [5, 7]}), tmp_path / "yen.parquet", 0)  # JPY: no decimals
    assert pd.read_parquet(tmp_path / "yen.parquet")["amount"].tolist() == [Decimal(5), Decimal(7)]


def test_the_printed_summary_lists_the_tables_and_their_sizes(tmp_path: Path, capsys) -> None:
    path = tmp_path / "small.yaml"
    path.write_text(POPULATION, encoding="utf-8")
    assert main(["run", str(path), "--out", str(tmp_path / "o"), "--no-charts"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("tables (")]
    assert len(lines) == 1
    size = (tmp_path / "o" / "events.parquet").stat().st_size
    assert "events.parquet " in lines[0] and "summary.json " in lines[0]
    assert f"events.parquet {size / 1024:.3g} KiB" in lines[0] or f"events.parquet {size} B" in lines[0]


def test_a_scripted_run_keeps_csv_and_takes_parquet_when_told(tmp_path: Path) -> None:
    assert main(["run", str(SCRIPTED), "--out", str(tmp_path / "a"), "--no-charts", "--quiet"]) == 0
    assert (tmp_path / "a" / "events.csv").is_file() and not (tmp_path / "a" / "events.parquet").exists()
    argv = [
        "run",
        str(SCRIPTED),
        "--out",
        str(tmp_path / "b"),
        "--no-charts",
        "--quiet",
        "--format",
        "parquet",
    ]
    assert main(argv) == 0
    ledger = pd.read_parquet(tmp_path / "b" / "ledger.parquet")
    assert ledger["amount"].tolist() == [
        Decimal(v) for v in pd.read_csv(tmp_path / "a" / "ledger.csv", dtype=str)["amount"]
    ]


def test_an_unknown_format_is_refused_with_exit_2(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["run", str(SCRIPTED), "--out", str(tmp_path / "o"), "--format", "xlsx"])
    assert exc.value.code == 2
    assert "invalid choice: 'xlsx'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_explain_reads_a_parquet_folder_as_it_reads_a_csv_one(both, capsys) -> None:
    csv, parquet, _ = both
    capsys.readouterr()
    outputs = []
    for folder in (csv, parquet):
        assert main(["explain", str(folder), "--contract", "c1"]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] and "c1" in outputs[0]


def test_a_parquet_run_audits_clean_against_its_own_pack(tmp_path: Path, capsys) -> None:
    path = tmp_path / "one.yaml"
    path.write_text(POPULATION.replace("replications: 2", "replications: 1"), encoding="utf-8")
    parquet = tmp_path / "run"
    assert main(["run", str(path), "--out", str(parquet), "--events", "full", "--no-charts", "--quiet"]) == 0
    code = main(
        [
            "audit",
            str(parquet / "events.parquet"),
            "--contracts",
            str(parquet / "contracts.parquet"),
            "--policy",
            "upwork",
            "--out",
            str(tmp_path / "a"),
            "--no-charts",
            "--quiet",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert pd.read_csv(tmp_path / "a" / "audit.csv").empty


def test_a_damaged_parquet_contracts_file_is_exit_2_naming_it(both, tmp_path: Path, capsys) -> None:
    _, parquet, _ = both
    bad = tmp_path / "contracts.parquet"
    bad.write_bytes(b"PAR1" + b"\0" * 40)
    argv = ["audit", str(parquet / "events.parquet"), "--contracts", str(bad), "--policy", "upwork"]
    assert main([*argv, "--out", str(tmp_path / "a"), "--no-charts"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: not a Parquet table" in err and "Traceback" not in err
    assert not (tmp_path / "a").exists()


def test_parse_money_takes_decimals_exactly_and_refuses_extra_digits() -> None:
    from sim.core.units import UnitError, parse_money

    assert parse_money(Decimal("12.50"), 2) == 1250
    assert parse_money(Decimal("0.01"), 2) == 1
    with pytest.raises(UnitError, match="decimal"):
        parse_money(Decimal("12.505"), 2)
