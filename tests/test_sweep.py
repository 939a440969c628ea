"""Sweeps and paired comparisons: designs, common random numbers, bad input, significance."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import TINY_POPULATION

import sim
from sim.app.cli import main
from sim.core.yamlio import InputError
from sim.experiments.paired import paired_differences
from sim.experiments.sweeps import build_variants, parse_grid_option
from sim.inputs.scenario import load_scenario

TINY = TINY_POPULATION.format(seed=11, count=150)


@pytest.fixture
def tiny(write) -> Path:
    return write("tiny.yaml", TINY)


def test_factorial_takes_every_combination(tiny: Path) -> None:
    base = load_scenario(tiny)
    grid = {"review.window": ["3d", "7d", "14d"], "population.platform.dispute_agents": [1, 2]}
    variants = build_variants(base, grid)
    assert len(variants) == 6
    assert [dict(v.values) for v in variants][:2] == [
        {"review.window": "3d", "population.platform.dispute_agents": 1},
        {"review.window": "3d", "population.platform.dispute_agents": 2},
    ]
    assert variants[1].scenario.population.dispute_agents == 2
    assert variants[2].scenario.policy.review.window == 7.0


def test_zip_pairs_values(tiny: Path) -> None:
    base = load_scenario(tiny)
    grid = {"review.window": ["3d", "14d"], "population.platform.dispute_agents": [1, 2]}
    variants = build_variants(base, grid, zip=True)
    assert [dict(v.values) for v in variants] == [
        {"review.window": "3d", "population.platform.dispute_agents": 1},
        {"review.window": "14d", "population.platform.dispute_agents": 2},
    ]


def test_zip_needs_equal_lengths(tiny: Path) -> None:
    base = load_scenario(tiny)
    with pytest.raises(InputError, match="--zip pairs values"):
        build_variants(base, {"review.window": ["3d", "14d"], "hold.after_release": ["0d"]}, zip=True)


def test_sweep_table_has_a_row_per_variant_and_replication(tiny: Path, tmp_path: Path) -> None:
    res = sim.sweep(
        tiny,
        {
            "review.window": ["3d", "14d"],
            "population.client.review.delay": [2, {"exponential": {"mean": "6d"}}],
        },
        replications=2,
        backend="inprocess",
        out=tmp_path / "out",
    )
    runs = res.runs
    assert len(runs) == 4 * 2
    assert list(runs.columns[:5]) == [
        "variant",
        "review.window",
        "population.client.review.delay",
        "replication",
        "seed",
    ]
    assert set(sim.analysis.tables.KPI_NAMES) <= set(runs.columns)
    assert (runs["seed"] == 11).all()
    for name in ("sweep.parquet", "sweep.csv", "summary.csv", "summary.parquet", "sweep.json", "sweep.png"):
        assert (tmp_path / "out" / name).is_file(), name
    back = pd.read_parquet(tmp_path / "out" / "sweep.parquet")
    pd.testing.assert_frame_equal(back, runs)
    # a longer review window lets fewer milestones be approved by silence
    means = runs.groupby("review.window")["auto_approved_share"].mean()
    assert means["3d"] > means["14d"]


def test_common_random_numbers_same_contracts_in_every_variant(tiny: Path, tmp_path: Path) -> None:
    res = sim.sweep(
        tiny,
        {"review.window": ["2d", "21d"], "refund.response_window": ["1d", "14d"]},
        zip=True,
        backend="inprocess",
        out=tmp_path / "out",
    )
    ms = res.milestones()
    cols = ["replication", "contract", "milestone", "amount", "due"]
    a = ms[ms["variant"] == 0][cols].reset_index(drop=True)
    b = ms[ms["variant"] == 1][cols].reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    assert a["replication"].nunique() == 3
    # ... and different replications see different contracts
    r0 = a[a["replication"] == 0]["amount"].to_numpy()
    r1 = a[a["replication"] == 1]["amount"].to_numpy()
    assert len(r0) != len(r1) or (r0 != r1).any()
    # the policies differ, so what happens to the milestones differs
    assert not ms[ms["variant"] == 0]["outcome"].equals(ms[ms["variant"] == 1]["outcome"])


def test_policy_pack_and_path_as_factor(tiny: Path, root: Path) -> None:
    pack = str(root / "rules" / "upwork_fees.yaml")
    variants = build_variants(load_scenario(tiny), {"policy": ["upwork", pack]})
    assert [v.scenario.policy.policy for v in variants] == ["upwork", "upwork_fees"]


def test_parse_grid_option_reads_yaml_values() -> None:
    assert parse_grid_option("review.window=3d,7d, 14d") == ("review.window", ["3d", "7d", "14d"])
    assert parse_grid_option("population.platform.dispute_agents=1,2") == (
        "population.platform.dispute_agents",
        [1, 2],
    )
    _key, values = parse_grid_option("population.client.review.delay={exponential: {mean: 2d}},3")
    assert values == [{"exponential": {"mean": "2d"}}, 3]


BAD_GRIDS = [
    (["--grid", "review.windw=3d,7d"], "unknown key 'windw'"),
    (["--grid", "review.window=3d,-7d"], "zero or positive"),
    (["--grid", "review.window"], "expected KEY=V1,V2"),
    (["--grid", "review.window="], "expected KEY=V1,V2"),
    (["--grid", "population.client.reviw.delay=1,2"], "unknown key 'reviw'"),
    (["--grid", "population.platform.dispute_agents=0,2"], "whole number >= 1"),
    (["--grid", "seed=1,2"], "use --seed"),
    (["--grid", "review.window=3d,3d"], "listed twice"),
    (["--grid", "review.window=3d", "--grid", "review.window=7d"], "factor given twice"),
    (["--grid", "review.window=3d,7d", "--grid", "hold.after_release=0d,1d,2d", "--zip"], "--zip pairs"),
    (["--grid", "policy=upwork,nosuch"], "unknown policy pack 'nosuch'"),
    (["--grid", "review.window=3d", "--kpi", "nope"], "unknown KPI"),
    (["--grid", "review.window=3d", "--replications", "0"], "from 1 to 10,000"),
]


@pytest.mark.parametrize(("args", "message"), BAD_GRIDS, ids=[a[1] for a, _ in BAD_GRIDS])
def test_bad_sweep_input_exits_2_and_writes_nothing(
    tiny: Path, tmp_path: Path, capsys, args, message
) -> None:
    out = tmp_path / "never"
    assert main(["sweep", str(tiny), "--out", str(out), "--inprocess", *args]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert not out.exists()


def test_cli_sweep_prints_means_with_intervals(tiny: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "s"
    args = ["--grid", "review.window=3d,14d", "--replications", "2", "--inprocess", "--out", str(out)]
    code = main(["sweep", str(tiny), *args, "--kpi", "auto_approved_share", "--no-charts"])
    assert code == 0
    text = capsys.readouterr().out
    assert "2 variants (full factorial) x 2 replications" in text
    assert "auto_approved_share" in text and "±" in text
    assert (out / "sweep.csv").is_file() and not (out / "sweep.png").exists()
    assert len(list((out / "parts").glob("*.parquet"))) == 4


def test_sweep_help_says_full_factorial(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    assert "FULL FACTORIAL" in capsys.readouterr().out


# ------------------------------------------------------------------------------ compare


def test_compare_finds_the_review_window_effect(tiny: Path, tmp_path: Path) -> None:
    res = sim.compare(
        tiny,
        {"review.window": "3d"},
        {"review.window": "21d"},
        replications=4,
        backend="inprocess",
        out=tmp_path / "c",
    )
    d = res.diff.set_index("kpi")
    assert d.loc["auto_approved_share", "significant"]
    assert d.loc["auto_approved_share", "ci_high"] < 0
    assert d.loc["time_to_payment_days_mean", "significant"]
    assert not d.loc["contracts", "significant"]  # same contracts on both sides
    assert d.loc["contracts", "diff"] == 0
    for name in ("compare.csv", "compare.parquet", "runs.csv", "runs.parquet", "compare.png", "compare.json"):
        assert (tmp_path / "c" / name).is_file(), name


def test_compare_a_policy_with_itself_is_refused(tiny: Path) -> None:
    with pytest.raises(InputError, match="compare needs a difference between A and B"):
        sim.compare(tiny, "upwork", "upwork", replications=3, backend="inprocess")


def test_paired_differences_of_identical_sides_are_zero_and_not_significant() -> None:
    a = pd.DataFrame({"replication": range(3)} | {k: [0.1, 0.2, 0.3] for k in sim.analysis.tables.KPI_NAMES})
    b = a.copy()
    b["escrow_float_avg"] = [0.1 + 1e-17, 0.2 - 2e-17, 0.3 + 5e-17]  # sums taken in another order
    d = paired_differences(a, b)
    assert (d["diff"] == 0).all() and d["significant"].sum() == 0


def test_paired_interval_matches_a_paired_t_test() -> None:
    from scipy import stats

    a = pd.DataFrame(
        {"replication": range(5)} | {k: [1.0, 2.0, 3.0, 4.0, 5.0] for k in sim.analysis.tables.KPI_NAMES}
    )
    b = a.copy()
    b["approved_share"] = [1.5, 2.1, 3.9, 4.2, 5.6]
    d = paired_differences(a, b).set_index("kpi").loc["approved_share"]
    t = stats.ttest_rel(b["approved_share"], a["approved_share"])
    assert d["p_value"] == pytest.approx(t.pvalue)
    ci = t.confidence_interval(0.95)
    assert (d["ci_low"], d["ci_high"]) == pytest.approx((ci.low, ci.high))


def test_cli_compare(tiny: Path, tmp_path: Path, capsys) -> None:
    sides = ["--set-a", "review.window=3d", "--set-b", "review.window=21d"]
    args = ["--replications", "3", "--inprocess", "--out", str(tmp_path / "c"), "--no-charts"]
    code = main(["compare", str(tiny), *sides, *args])
    assert code == 0
    text = capsys.readouterr().out
    assert "A: review.window=3d" in text and "B: review.window=21d" in text
    assert "significant: " in text and "auto_approved_share" in text.split("significant: ")[-1]


def test_cli_compare_bad_side_exits_2(tiny: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "c"
    code = main(
        ["compare", str(tiny), "--policy", "nosuch", "--set-a", "review.window=-1d", "--out", str(out)]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "<command line A>" in err and "<command line B>" in err
    assert not out.exists()


def test_cli_resume_recomputes_only_the_missing_run(tiny: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "s"
    args = ["sweep", str(tiny), "--grid", "review.window=3d,14d", "--replications", "2"]
    args += ["--inprocess", "--out", str(out), "--no-charts", "--quiet"]
    assert main(args) == 0
    first = (out / "sweep.csv").read_bytes()
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "parts").glob("*.parquet")}
    (out / "parts" / "v0001-r00000.parquet").unlink()
    assert main([*args, "--resume"]) == 0
    now = {p.name: p.stat().st_mtime_ns for p in (out / "parts").glob("*.parquet")}
    assert {n for n in now if now[n] != stamps[n]} == {"v0001-r00000.parquet"}
    assert (out / "sweep.csv").read_bytes() == first


EMPIRICAL = """\
scenario: empirical amounts
policy: upwork
seed: 2
replications: 1
until: 60d
population:
  arrivals: {count: 40, over: 10d}
  milestones:
    count: 1
    amount: {empirical: {file: amounts.csv, column: amount}}
  client:
    review: {delay: {exponential: {mean: 3d}}, decision: {approve: 1}}
"""


def test_resume_reruns_when_an_empirical_csv_changes_with_the_same_row_count(write, tmp_path: Path) -> None:
    path = write("emp.yaml", EMPIRICAL)
    write("amounts.csv", "amount\n100\n200\n300\n")
    out = tmp_path / "s"
    args = ["sweep", str(path), "--grid", "review.window=3d,14d", "--inprocess"]
    args += ["--out", str(out), "--no-charts", "--quiet"]
    assert main(args) == 0
    before = pd.read_csv(out / "sweep.csv")
    write("amounts.csv", "amount\n1000\n2000\n3000\n")  # same rows, other values
    assert main([*args, "--resume"]) == 0
    after = pd.read_csv(out / "sweep.csv")
    assert (after["funded_total"] > 5 * before["funded_total"]).all()
    milestones = pd.read_parquet(out / "parts")
    assert set(milestones["amount"]) <= {100000, 200000, 300000}


def test_fingerprint_covers_the_code(tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sim.experiments import sweeps

    sc = load_scenario(tiny)
    first = sweeps.fingerprint(sc)
    digest = sweeps.code_digest()
    assert len(digest) == 64 and sweeps.code_digest() is digest  # computed once per process
    monkeypatch.setattr(sweeps, "code_digest", lambda: "another version of the engine")
    assert sweeps.fingerprint(sc) != first
