"""The command line tells the truth: options checked before running, `test` never passes silently,
`--events none` keeps per-contract flows and expectations, compare needs two different sides,
`--set` takes what `--grid` takes, `--version`."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT, TINY_POPULATION

import sim
from sim.app.cli import main
from sim.core.yamlio import InputError
from sim.experiments import runner
from sim.experiments.paired import CompareResult, paired_differences
from sim.experiments.sweeps import Variant, apply_factors, format_kpi

TINY = TINY_POPULATION.format(seed=3, count=40)
SCRIPTED = ROOT / "scenarios" / "upwork" / "partial_release_credit_funds_next.yaml"
SILENCE = ROOT / "scenarios" / "upwork" / "auto_approve_after_silence.yaml"

NO_EXPECT = """\
scenario: nothing to check
policy: upwork
contracts:
  - id: c1
    client: acme
    freelancer: ana
    milestones:
      - {id: m1, amount: 500.00, due: 10d}
    script:
      - {at: 0d, client: offer}
"""


@pytest.fixture
def no_simulation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to simulate fails the test: options must be refused before."""

    def boom(*args: object, **kw: object) -> None:
        raise AssertionError("simulated although an option was invalid")

    monkeypatch.setattr(runner, "run_replication", boom)
    monkeypatch.setattr(sim.experiments.batch, "run_replication", boom)
    monkeypatch.setattr(sim.experiments.executors, "run_replication", boom)


# ------------------------------------------------------------------------------ 1: options first


def test_run_seed_minus_one_on_a_population_exits_2(write, tmp_path: Path, capsys, no_simulation) -> None:
    path = write("tiny.yaml", TINY)
    out = tmp_path / "o"
    assert main(["run", str(path), "--seed", "-1", "--out", str(out)]) == 2
    assert "--seed must be a whole number from 0" in capsys.readouterr().err
    assert not out.exists()


def test_run_out_naming_a_file_exits_2_before_simulating(tmp_path: Path, capsys, no_simulation) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("mine\n", encoding="utf-8")
    assert main(["run", str(SCRIPTED), "--out", str(target)]) == 2
    err = capsys.readouterr().err
    assert f"error: <command line --out>: {target} exists and is not a folder" in err
    assert target.read_text(encoding="utf-8") == "mine\n"


def test_run_out_in_an_unwritable_place_exits_2_before_simulating(
    tmp_path: Path, capsys, no_simulation
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    assert main(["run", str(SCRIPTED), "--out", str(blocker / "sub" / "out")]) == 2
    assert "<command line --out>" in capsys.readouterr().err
    assert main(["run", str(SCRIPTED), "--out", "/proc/no/such/place"]) == 2
    assert "cannot write in /proc" in capsys.readouterr().err


# ------------------------------------------------------------------------------ 7: --version


def test_version_prints_name_and_version() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sim", "--version"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"milestone-sim {sim.__version__}"


# ------------------------------------------------------------------------------ 8: test validates


def test_test_reports_a_named_file_without_expectations_and_fails(write, capsys) -> None:
    path = write("plain.yaml", NO_EXPECT)
    assert main(["test", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"no expectations: {path}" in out
    assert "nothing was checked" in out


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ("client: offer}", "client: offr}", "unknown client action 'offr'"),
        ("amount: 500.00", "amount: 500.005", "500.005"),
        ("policy: upwork\n", "policy: upwork\npolicy_overrides: {review.windw: 3d}\n", "windw"),
    ],
)
def test_test_validates_files_without_expectations(write, capsys, old: str, new: str, needle: str) -> None:
    path = write("bad.yaml", NO_EXPECT.replace(old, new))
    assert main(["test", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"error: {path}:" in err and needle in err


def test_test_in_a_folder_validates_packs_and_counts_files_without_expectations(
    write, tmp_path: Path, capsys
) -> None:
    write("suite/plain.yaml", NO_EXPECT)
    write("suite/pack.yaml", "policy: mine\nextends: upwork\nreview: {window: 3d}\n")
    (tmp_path / "suite" / "ok.yaml").write_text(SILENCE.read_text(encoding="utf-8"), encoding="utf-8")
    assert main(["test", str(tmp_path / "suite")]) == 0
    out = capsys.readouterr().out
    assert "1 passed, 0 failed, 1 without expectations, 1 policy pack(s) valid" in out
    write("suite/pack.yaml", "policy: mine\nextends: upwork\nreview: {windw: 3d}\n")
    assert main(["test", str(tmp_path / "suite")]) == 2
    assert "windw" in capsys.readouterr().err


# ------------------------------------------------------------------------------ 9: --events none


def test_events_none_on_a_scripted_run_keeps_flows_and_expectations(tmp_path: Path, capsys) -> None:
    out = tmp_path / "o"
    assert main(["run", str(SCRIPTED), "--events", "none", "--out", str(out), "--no-charts"]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["events"] == "none"
    c1 = summary["contracts"][0]
    full = sim.run(SCRIPTED).summary()["contracts"][0]
    assert c1 == full and c1["funded"] != "0.00"
    assert summary["expectations"] == {"total": len(sim.run(SCRIPTED).check()), "failed": 0}
    row = next(line for line in printed.splitlines() if line.strip().startswith("c1 "))
    assert c1["funded"] in row and c1["released"] in row
    assert (out / "events.csv").read_text(encoding="utf-8").count("\n") == 1  # header only
    assert (out / "ledger.csv").read_text(encoding="utf-8").count("\n") == 1


# ------------------------------------------------------------------------------ 10: the Python API


def test_run_refuses_zero_replications() -> None:
    with pytest.raises(InputError, match="replications must be from 1 to 10,000, got 0"):
        sim.run(SCRIPTED, replications=0)
    with pytest.raises(InputError, match="seed must be a whole number from 0"):
        sim.run(SCRIPTED, seed=-1)


def test_run_accepts_events_auto_like_the_cli(write) -> None:
    assert sim.run(SCRIPTED, events="auto").events_mode == "full"
    tiny = sim.run(write("tiny.yaml", TINY), events="auto", replications=1)
    assert tiny.events_mode == "full" and len(tiny.events) > 0
    big = TINY_POPULATION.format(seed=1, count=60_000).replace("until: 100d", "until: 20d")
    sc = sim.load_scenario(write("big.yaml", big))
    assert sim.experiments.batch.resolve_events(sc, "auto") == "none"


# ------------------------------------------------------------------------------ 11: compare


def test_compare_without_a_second_side_exits_2(write, tmp_path: Path, capsys, no_simulation) -> None:
    path = write("tiny.yaml", TINY)
    out = tmp_path / "c"
    assert main(["compare", str(path), "--out", str(out), "--inprocess"]) == 2
    err = capsys.readouterr().err
    assert "compare needs a difference between A and B: give --policy or --set-a/--set-b" in err
    assert not out.exists()


def test_compare_refuses_sides_that_resolve_to_the_same(write, capsys, no_simulation) -> None:
    path = write("tiny.yaml", TINY)
    assert main(["compare", str(path), "--policy", "upwork", "--inprocess"]) == 2
    assert "compare needs a difference between A and B" in capsys.readouterr().err
    # review.window=14d is upwork's own value: A and B are the same policy
    args = ["compare", str(path), "--set-b", "review.window=14d", "--inprocess"]
    assert main(args) == 2
    with pytest.raises(InputError, match="compare needs a difference"):
        sim.compare(path, "upwork", "upwork", backend="inprocess")


def test_compare_table_has_no_negative_zero() -> None:
    assert format_kpi("fees_total", -1e-13) == "0.00"
    assert format_kpi("approved_share", -0.0) == "0.000"
    assert format_kpi("escrow_float_avg", -0.004) == "0.00"
    assert format_kpi("escrow_float_avg", -0.5) == "-0.50"


def _fake_compare(a: dict[str, list[float]], b: dict[str, list[float]]) -> CompareResult:
    names = sim.analysis.tables.KPI_NAMES
    reps = len(next(iter(a.values())))
    fa = pd.DataFrame({"replication": range(reps)} | {k: a.get(k, [1.0] * reps) for k in names})
    fb = pd.DataFrame({"replication": range(reps)} | {k: b.get(k, [1.0] * reps) for k in names})
    diff = paired_differences(fa, fb)
    sc = sim.load_scenario(SCRIPTED)
    return CompareResult(pd.DataFrame(), diff, Variant(0, (), sc), Variant(1, (), sc), 0, reps)


def test_compare_noise_is_zero_and_a_zero_a_keeps_its_kpi_in_the_chart() -> None:
    base = [100.1, 200.2, 300.3]
    noisy = [x + 1e-13 * (i - 1) for i, x in enumerate(base)]
    res = _fake_compare(
        {"escrow_float_avg": base, "fees_total": [0.0, 0.0, 0.0]},
        {"escrow_float_avg": noisy, "fees_total": [1.0, 2.0, 3.0]},
    )
    d = res.diff.set_index("kpi")
    assert d.loc["escrow_float_avg", "diff"] == 0.0
    assert not d.loc["escrow_float_avg", "significant"]
    assert math.isnan(d.loc["fees_total", "rel_diff"]) and d.loc["fees_total", "diff"] == 2.0
    fig = res.plot()
    labels = [t.get_text() for ax in fig.axes for t in ax.get_yticklabels()]
    assert "fees_total" in labels  # A is 0: shown as an absolute difference, not dropped
    rel_ax = fig.axes[0]
    low, high = rel_ax.get_xlim()
    assert high - low >= 1e-6  # not scaled to float noise
    table = res.table()
    cells = " ".join(" ".join(map(str, row)) for row in table.itertuples(index=False))
    assert not re.search(r"-0(?:\.0+)?(?![\d.])", cells), cells


# ------------------------------------------------------------------------------ 12: --set = --grid


def test_set_until_works_on_run(tmp_path: Path) -> None:
    out = tmp_path / "o"
    assert main(["run", str(SILENCE), "--set", "until=10d", "--out", str(out), "--no-charts", "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["scenario"]["until"] == "10d"
    events = (out / "events.csv").read_text(encoding="utf-8")
    assert "auto_approve" not in events  # the review window (19d) lies past the horizon


def test_set_population_parameter_on_run_and_sweep(write, tmp_path: Path) -> None:
    path = write("tiny.yaml", TINY)
    sc = apply_factors(sim.load_scenario(path), {"population.platform.dispute_agents": 4})
    assert sc.population.dispute_agents == 4
    out = tmp_path / "o"
    args = ["run", str(path), "--set", "population.platform.dispute_agents=4", "--replications", "1"]
    assert main([*args, "--out", str(out), "--no-charts", "--quiet"]) == 0
    definition = json.loads((out / "summary.json").read_text(encoding="utf-8"))["scenario"]["definition"]
    assert definition["population"]["platform"]["dispute_agents"] == 4
    sweep = ["sweep", str(path), "--grid", "review.window=3d,14d", "--set", "until=50d", "--inprocess"]
    assert main([*sweep, "--replications", "1", "--out", str(tmp_path / "s"), "--no-charts", "--quiet"]) == 0
    manifest = json.loads((tmp_path / "s" / "sweep.json").read_text(encoding="utf-8"))
    assert len(manifest["variants"]) == 2


def test_set_until_on_compare_sides(write, tmp_path: Path, capsys) -> None:
    path = write("tiny.yaml", TINY)
    args = ["compare", str(path), "--set-a", "until=40d", "--set-b", "until=60d", "--inprocess"]
    assert main([*args, "--replications", "2", "--out", str(tmp_path / "c"), "--no-charts"]) == 0
    assert "A: until=40d" in capsys.readouterr().out


def test_set_unknown_key_still_says_did_you_mean(capsys) -> None:
    assert main(["run", str(SILENCE), "--set", "review.windw=3d"]) == 2
    assert "windw" in capsys.readouterr().err
    assert main(["run", str(SILENCE), "--set", "seed=3"]) == 2
    assert "use --seed" in capsys.readouterr().err
