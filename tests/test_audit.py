"""Audits of event logs against packs (FORMAT section 10): round trips and each kind of deviation.

A run's own ``events.csv`` and ``contracts.csv`` audited against its pack find nothing, for every
scripted scenario in ``scenarios/`` and for population runs; each kind of deviation injected into
a log is found once, with its money at stake to the cent, and nothing else is.
"""

from __future__ import annotations

import dataclasses
import filecmp
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sim
from sim.analysis.tables import write_csv
from sim.app.cli import main
from sim.audit.replay import audit

ROOT = Path(__file__).resolve().parent.parent
SCRIPTED = sorted(
    p
    for p in (ROOT / "scenarios").rglob("*.yaml")
    if p.parent.name not in ("populations", "markets", "audit") and not p.name.startswith("_")
)
POPULATIONS = [
    ROOT / "scenarios/populations/marketplace_year.yaml",
    ROOT / "scenarios/populations/marketplace_year_2026.yaml",
    ROOT / "scenarios/populations/review_window_change_2027.yaml",
    ROOT / "scenarios/audit/marketplace.yaml",
]


def _write_run(result: sim.Result, folder: Path) -> tuple[Path, Path]:
    digits = result.scenario.policy.digits
    write_csv(result.events, folder / "events.csv", digits)
    write_csv(result.contracts, folder / "contracts.csv", digits)
    return folder / "events.csv", folder / "contracts.csv"


def _audit_run(result: sim.Result, folder: Path, **kwargs) -> pd.DataFrame:
    log, contracts = _write_run(result, folder)
    sc = result.scenario
    return audit(log, contracts, sc.policy, start=sc.start, **kwargs).frame()


def _is_scripted(path: Path) -> bool:
    try:
        return not sim.load_scenario(path).is_population
    except sim.InputError:
        return False  # a deliberately broken example is not a log anyone could audit


@pytest.mark.parametrize("path", [p for p in SCRIPTED if _is_scripted(p)], ids=lambda p: p.stem)
def test_a_scripted_runs_own_log_conforms_to_its_pack(path, tmp_path):
    result = sim.run(path)
    found = _audit_run(result, tmp_path)
    assert found.empty, found[["time", "contract", "kind", "expected", "found"]].to_string()


@pytest.mark.parametrize("path", POPULATIONS, ids=lambda p: p.stem)
def test_a_population_runs_own_log_conforms_to_its_pack(path, tmp_path):
    sc = sim.load_scenario(path)
    sc = dataclasses.replace(sc, until=min(sc.until or 45.0, 45.0), replications=1)
    result = sim.run(sc, replications=1, events="full")
    assert len(result.events) > 1000  # a real log: offers, fundings, reviews, refunds, disputes
    found = _audit_run(result, tmp_path)
    assert found.empty, found[["time", "contract", "kind", "expected", "found"]].to_string()


# ------------------------------------------------------------------------------ one deviation each

AUTO = ROOT / "scenarios/upwork/auto_approve_after_silence.yaml"  # submit 5d, auto_approve 19d, 500.00
ONE_AT_A_TIME = ROOT / "scenarios/upwork/one_milestone_funded_at_a_time.yaml"
REFUND = ROOT / "scenarios/upwork/refund_by_silence_after_7_days.yaml"


def _log(path: Path, folder: Path) -> tuple[pd.DataFrame, Path, sim.Scenario]:
    result = sim.run(path)
    log, contracts = _write_run(result, folder)
    return pd.read_csv(log, dtype=str, keep_default_na=False), contracts, result.scenario


def _found(df: pd.DataFrame, contracts: Path, sc: sim.Scenario, folder: Path, **kwargs) -> pd.DataFrame:
    df = df.assign(_t=df["time"].astype(float)).sort_values("_t", kind="stable").drop(columns="_t")
    df.to_csv(folder / "log.csv", index=False)
    return audit(folder / "log.csv", contracts, sc.policy, start=sc.start, **kwargs).frame()


def _row(**values: str) -> dict[str, str]:
    base = {"outcome": "accepted", "milestone": "", "amount": "0.00", "args": ""}
    return {**base, **values}


def _add(df: pd.DataFrame, **values: str) -> pd.DataFrame:
    return pd.concat([df, pd.DataFrame([_row(**values)])], ignore_index=True).fillna("")


def test_a_missing_auto_release_is_found_once_with_its_money(tmp_path):
    df, contracts, sc = _log(AUTO, tmp_path)
    # production never released at 19d; the client approved by hand at 25d
    df = df[df["action"] != "auto_approve"]
    df = _add(df, time="25", contract="c1", milestone="m1", actor="client", action="approve", amount="500.00")
    found = _found(df, contracts, sc, tmp_path)
    assert found[["time", "contract", "milestone", "kind", "at_stake"]].values.tolist() == [
        [19.0, "c1", "m1", "missing_automatic", 50000]
    ]
    assert found.loc[0, "policy_keys"].split(";")[0] == "review.window"
    assert found.loc[0, "source"].startswith("rules/upwork.yaml:14:")


def test_a_log_that_ends_before_the_timer_is_not_missing_anything(tmp_path):
    df, contracts, sc = _log(AUTO, tmp_path)
    assert _found(df[df["action"] != "auto_approve"], contracts, sc, tmp_path).empty  # it ends at 5d


@pytest.mark.parametrize(("shift", "kind"), [(2.0, "late"), (-3.0, "early"), (0.5 / 24, None)])
def test_an_auto_release_off_its_time_is_late_or_early_beyond_the_tolerance(tmp_path, shift, kind):
    df, contracts, sc = _log(AUTO, tmp_path)
    i = df.index[df["action"] == "auto_approve"][0]
    df.loc[i, "time"] = repr(19.0 + shift)
    found = _found(df, contracts, sc, tmp_path)
    if kind is None:  # half an hour: within the default hour
        assert found.empty
        return
    assert found[["time", "kind", "at_stake"]].values.tolist() == [[19.0 + shift, kind, 50000]]
    assert found.loc[0, "expected"] == "auto_approve at 19d"


def test_the_tolerance_decides_what_is_late(tmp_path):
    df, contracts, sc = _log(AUTO, tmp_path)
    i = df.index[df["action"] == "auto_approve"][0]
    df.loc[i, "time"] = "21"
    assert _found(df, contracts, sc, tmp_path, tolerance=3.0).empty
    assert _found(df, contracts, sc, tmp_path, tolerance=1.0)["kind"].tolist() == ["late"]


def test_a_refund_paid_before_its_window_ended_is_early(tmp_path):
    df, contracts, sc = _log(REFUND, tmp_path)
    i = df.index[df["action"] == "auto_refund"][0]
    t = float(df.loc[i, "time"])
    df.loc[i, "time"] = repr(t - 2)
    found = _found(df, contracts, sc, tmp_path)
    assert found[["kind", "at_stake"]].values.tolist() == [["early", round(float(df.loc[i, "amount"]) * 100)]]
    assert found.loc[0, "policy_keys"].startswith("refund.response_window")


def test_a_second_milestone_funded_while_one_is_active_is_rejected_by_policy(tmp_path):
    df, contracts, sc = _log(ONE_AT_A_TIME, tmp_path)
    # the log funds m2 at 2d and production accepted it; the rest of the log follows from that
    df = df[~((df["milestone"] == "m2") & (df["action"] == "fund"))]
    df = _add(df, time="2", contract="c1", milestone="m2", actor="client", action="fund", amount="250.00")
    found = _found(df, contracts, sc, tmp_path)
    assert found[["time", "milestone", "kind", "rule", "at_stake"]].values.tolist() == [
        [2.0, "m2", "rejected_by_policy", "one_at_a_time", 25000]
    ]
    assert found.loc[0, "policy_keys"] == "milestones.funding"
    assert "milestone m1 is funded" in found.loc[0, "expected"]


def test_a_wrong_amount_and_a_wrong_escrow_balance_are_mismatches(tmp_path):
    df, contracts, sc = _log(AUTO, tmp_path)
    df["escrow"] = ["0.00", "500.00", "500.00", "500.00", "0.00"]
    assert _found(df, contracts, sc, tmp_path).empty
    df.loc[df["action"] == "auto_approve", "amount"] = "450.00"
    df.loc[df["action"] == "submit", "escrow"] = "499.99"
    found = _found(df, contracts, sc, tmp_path)
    assert found[["time", "kind", "at_stake"]].values.tolist() == [
        [5.0, "balance_mismatch", 1],
        [19.0, "amount_mismatch", 5000],
    ]


def test_an_automatic_event_no_timer_explains_is_unexpected(tmp_path):
    df, contracts, sc = _log(ONE_AT_A_TIME, tmp_path)
    df = _add(
        df, time="8", contract="c1", milestone="m1", actor="platform", action="auto_approve", amount="500.00"
    )
    found = _found(df, contracts, sc, tmp_path)
    assert found[["time", "kind", "at_stake"]].values.tolist() == [[8.0, "unexpected_automatic", 50000]]


def test_a_refusal_in_the_log_that_the_pack_allows_is_rejected_in_log(tmp_path):
    df, contracts, sc = _log(AUTO, tmp_path)
    df.loc[df["action"] == "submit", "outcome"] = "rejected"
    found = _found(df[df["action"] != "auto_approve"], contracts, sc, tmp_path)
    assert found[["time", "kind"]].values.tolist() == [[5.0, "rejected_in_log"]]


# ------------------------------------------------------------------------------ the worked example

EXAMPLE = ROOT / "scenarios/audit"


def test_the_example_finds_exactly_what_make_log_injected(tmp_path):
    code = main(
        [
            "audit",
            str(EXAMPLE / "production_log.csv"),
            "--contracts",
            str(EXAMPLE / "contracts.csv"),
            "--policy",
            "upwork",
            "--mapping",
            str(EXAMPLE / "mapping.yaml"),
            "--out",
            str(tmp_path / "out"),
            "--no-charts",
        ]
    )
    assert code == 1
    found = pd.read_csv(tmp_path / "out/audit.csv", dtype=str, keep_default_na=False)
    injected = pd.read_csv(EXAMPLE / "injected.csv", dtype=str, keep_default_na=False)
    key = ["kind", "contract", "milestone", "at_stake"]
    assert sorted(map(tuple, found[key].values)) == sorted(map(tuple, injected[key].values))
    assert sorted(found["time"].astype(float).round(6)) == sorted(injected["time"].astype(float).round(6))
    assert set(found["kind"]) == {
        "missing_automatic",
        "late",
        "early",
        "rejected_by_policy",
        "amount_mismatch",
        "balance_mismatch",
        "unexpected_automatic",
    }


def test_the_example_clean_log_conforms(tmp_path):
    code = main(
        [
            "audit",
            str(EXAMPLE / "clean_log.csv"),
            "--contracts",
            str(EXAMPLE / "contracts.csv"),
            "--policy",
            "upwork",
            "--mapping",
            str(EXAMPLE / "mapping.yaml"),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 0
    assert (tmp_path / "out/audit.html").read_text(encoding="utf-8").count(
        "The log conforms to the pack."
    ) == 1


def test_make_log_writes_the_committed_files_byte_for_byte(tmp_path):
    subprocess.run(
        [sys.executable, str(EXAMPLE / "make_log.py"), "--out", str(tmp_path)], check=True, cwd=tmp_path
    )
    for name in ("contracts.csv", "clean_log.csv", "production_log.csv", "injected.csv"):
        assert filecmp.cmp(tmp_path / name, EXAMPLE / name, shallow=False), name


def test_a_big_log_streams_in_chunks_with_the_same_findings(tmp_path):
    from sim.audit.log import Mapping, load_mapping

    mapping: Mapping = load_mapping(EXAMPLE / "mapping.yaml")
    policy = sim.load_policy("upwork")
    whole = audit(EXAMPLE / "production_log.csv", EXAMPLE / "contracts.csv", policy, mapping=mapping).frame()
    small = audit(
        EXAMPLE / "production_log.csv", EXAMPLE / "contracts.csv", policy, mapping=mapping, chunk_rows=97
    ).frame()
    pd.testing.assert_frame_equal(whole, small)
    assert len(whole) == 7


# ------------------------------------------------------------------------------ audit files

pytest_plugins = ["pytester"]


def _audit_file(folder: Path, expect: str) -> Path:
    import shutil

    for name in ("production_log.csv", "contracts.csv", "mapping.yaml"):
        shutil.copy(EXAMPLE / name, folder / name)
    path = folder / "nightly_audit.yaml"
    path.write_text(
        "audit:\n  log: production_log.csv\n  contracts: contracts.csv\n  policy: upwork\n"
        f"  mapping: mapping.yaml\n  expect:\n{expect}",
        encoding="utf-8",
    )
    return path


def test_pytest_collects_audit_files_and_names_the_expectation_that_failed(pytester):
    _audit_file(pytester.path, "    findings: 7\n    by_kind: {late: 1, early: 2}\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "nightly_audit.yaml:8: expected 2 early, found 1" in out
    assert "expected 0 missing_automatic, found 1" in out  # a kind not listed: none expected
    assert "expected 7 finding(s)" not in out  # the total was right


def test_pytest_passes_an_audit_file_whose_findings_are_as_expected(pytester):
    _audit_file(
        pytester.path,
        "    findings: 7\n    at_stake: '2561.04'\n",
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_the_cli_test_command_runs_audit_files(tmp_path, capsys):
    path = _audit_file(tmp_path, "    findings: 0\n")
    assert main(["test", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"{path}:7: expected 0 finding(s), found 7" in out


def test_an_audit_file_with_a_typo_is_bad_input_at_its_line(tmp_path, capsys):
    path = _audit_file(tmp_path, "    findigs: 0\n")
    assert main(["test", str(path)]) == 2
    err = capsys.readouterr().err
    assert (
        err == f"error: {path}:7:5: audit.expect.findigs: unknown key 'findigs' (did you mean 'findings'?); "
        "allowed: findings, by_kind, at_stake\n"
    )


# ------------------------------------------------------------------------------ escrow aging of a log


def test_the_audited_logs_escrow_aging_is_the_runs_own_to_the_cent(tmp_path):
    result = sim.run(EXAMPLE / "marketplace.yaml")
    log, contracts = _write_run(result, tmp_path)
    audited = audit(log, contracts, result.scenario.policy, chunk_rows=500)
    mine, theirs = audited.aging, result.aging
    whole = theirs[theirs["time"] <= audited.horizon]  # the run ends at 60d, its log's last event before
    pd.testing.assert_frame_equal(
        mine.iloc[: len(whole)].reset_index(drop=True), whole.reset_index(drop=True)
    )
    assert mine.drop(columns="time").to_numpy().sum() > 0
    closed = result.milestones[result.milestones["closed_at"].notna()]
    ages = audited.escrow_age()
    assert ages["escrow_age_p50_days"] == pytest.approx(
        float(
            np.percentile(np.concatenate([closed["held_days"], np.asarray(audited.held)[len(closed) :]]), 50)
        ),
        rel=0.05,
    )


def test_an_audit_writes_aging_csv_and_its_chart(tmp_path):
    argv = ["audit", str(EXAMPLE / "clean_log.csv"), "--contracts", str(EXAMPLE / "contracts.csv")]
    assert (
        main(
            [
                *argv,
                "--policy",
                "upwork",
                "--mapping",
                str(EXAMPLE / "mapping.yaml"),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 0
    )
    aging = pd.read_csv(tmp_path / "o/aging.csv", dtype=str)
    assert list(aging.columns) == ["time", "0-7", "7-14", "14-30", "30-90", "90+"]
    assert aging["time"].tolist()[:3] == ["1", "2", "3"]
    assert (tmp_path / "o/audit_aging.png").stat().st_size > 10_000
    summary = (tmp_path / "o/summary.json").read_text(encoding="utf-8")
    assert '"escrow_age_p50_days"' in summary and '"escrow_age_p90_days"' in summary
