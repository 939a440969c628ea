"""Comparing two or more packs on one population: common random numbers, currencies, charts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_POPULATION

import sim
import sim.experiments.executors
import sim.experiments.paired
from sim.analysis.tables import KPI_NAMES, MONEY_KPIS
from sim.app.cli import main
from sim.core.yamlio import InputError
from sim.experiments.paired import PacksResult, compare_packs, text_blocks
from sim.viz import market_charts

# upwork_2026 counts business days: the scenario needs a start date
TINY = TINY_POPULATION.format(seed=5, count=120).replace("until: 100d", "until: 40d\nstart: 2026-01-05")
GBP_PACK = "policy: upwork_gbp\ntitle: Upwork's rules in pounds\nextends: upwork\ncurrency: GBP\n"
EUR_PACK = "policy: upwork_eur\ntitle: Upwork's rules in euros\nextends: upwork\ncurrency: EUR\n"
PACKS = ["upwork", "upwork_fees", "upwork_2026"]
REPS = 2


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scenario and two pack files in other currencies, side by side."""
    root = tmp_path_factory.mktemp("markets")
    (root / "tiny.yaml").write_text(TINY, encoding="utf-8")
    (root / "upwork_gbp.yaml").write_text(GBP_PACK, encoding="utf-8")
    (root / "upwork_eur.yaml").write_text(EUR_PACK, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def packs(folder: Path) -> list[str]:
    return [*PACKS, str(folder / "upwork_gbp.yaml")]


@pytest.fixture(scope="module")
def result(folder: Path, packs: list[str]) -> PacksResult:
    """Four packs (three in USD, one in GBP), no exchange rate, outputs and charts written."""
    market_charts.install()
    return sim.compare(
        folder / "tiny.yaml", policies=packs, replications=REPS, backend="inprocess", out=folder / "out"
    )


@pytest.fixture(scope="module")
def per_seed(folder: Path, packs: list[str]) -> list[list[dict[str, float]]]:
    """Each pack run on its own with sim.run, on the comparison's seed: KPIs per replication."""
    base = sim.load_scenario(folder / "tiny.yaml")
    out = []
    for pack in packs:
        sc = sim.experiments.sweeps.apply_factors(base, {"policy": pack})
        res = sim.run(sc, seed=base.seed, replications=REPS, events="none")
        out.append([run.kpis for run in res.runs])
    return out


@pytest.fixture
def no_simulation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to simulate fails the test: bad options must be refused before."""

    def boom(*args: object, **kw: object) -> None:
        raise AssertionError("simulated although an option was invalid")

    monkeypatch.setattr(sim.experiments.paired, "run_replication", boom)
    monkeypatch.setattr(sim.experiments.executors, "run_replication", boom)


# ------------------------------------------------------------------------------ common random numbers


def test_every_pack_plays_the_same_contracts(result: PacksResult) -> None:
    assert result.labels == ["upwork", "upwork_fees", "upwork_2026", "upwork_gbp"]
    assert result.currencies == ["USD", "USD", "USD", "GBP"]
    runs = result.runs
    assert len(runs) == 4 * REPS and set(runs["seed"]) == {result.seed}
    for kpi in ("contracts", "milestones", "funded_total"):
        table = runs.pivot(index="replication", columns="pack", values=kpi)
        assert (table.nunique(axis=1) == 1).all(), kpi  # the same value under every pack, run by run
        assert table.iloc[0, 0] > 0
    s = result.summary.set_index(["pack", "kpi"])
    assert {s.loc[(i, "funded_total"), "mean"] for i in range(4)} == {s.loc[(0, "funded_total"), "mean"]}
    d = result.diff.set_index(["pack", "kpi"])
    for i in (1, 2, 3):
        assert d.loc[(i, "contracts"), "diff"] == 0 and d.loc[(i, "milestones"), "diff"] == 0
    for i in (1, 2):  # in USD: compared, and equal
        assert d.loc[(i, "funded_total"), "diff"] == 0 and not d.loc[(i, "funded_total"), "significant"]


def test_paired_differences_are_those_of_runs_per_seed(result: PacksResult, per_seed) -> None:
    from scipy import stats

    d = result.diff.set_index(["pack", "kpi"])
    s = result.summary.set_index(["pack", "kpi"])
    for i, runs in enumerate(per_seed):
        for kpi in KPI_NAMES:
            mine = np.array([r[kpi] for r in runs], dtype=float)
            if not np.isnan(mine).any():
                assert s.loc[(i, kpi), "mean"] == pytest.approx(mine.mean(), rel=1e-9, abs=1e-9), (i, kpi)
    for i in (1, 2):
        for kpi in KPI_NAMES:
            first = np.array([r[kpi] for r in per_seed[0]], dtype=float)
            pack = np.array([r[kpi] for r in per_seed[i]], dtype=float)
            delta = pack - first
            if np.isnan(delta).any():
                continue
            row = d.loc[(i, kpi)]
            assert row["diff"] == pytest.approx(delta.mean(), rel=1e-9, abs=1e-6), (i, kpi)
            if np.ptp(delta) > 1e-6 * max(1.0, np.abs(first).max()):
                half = stats.t.ppf(0.975, REPS - 1) * delta.std(ddof=1) / math.sqrt(REPS)
                assert row["ci_high"] - row["diff"] == pytest.approx(half, rel=1e-9), (i, kpi)
                t = stats.ttest_rel(pack, first)
                assert row["p_value"] == pytest.approx(t.pvalue, rel=1e-9), (i, kpi)
    fees = [[r["fees_total"] for r in runs] for runs in per_seed]
    assert fees[0] == [0.0, 0.0] and min(fees[1]) > 0 and min(fees[2]) > 0
    assert d.loc[(1, "fees_total"), "diff"] == pytest.approx(np.mean(fees[1]))


def test_three_packs_in_usd_tables(result: PacksResult) -> None:
    assert len(result.summary) == 4 * len(KPI_NAMES)
    assert len(result.diff) == 3 * len(KPI_NAMES)
    money = result.summary[result.summary["kpi"].isin(sorted(MONEY_KPIS))]
    assert list(money.groupby("pack")["currency"].first()) == ["USD", "USD", "USD", "GBP"]
    assert set(result.summary.loc[~result.summary["kpi"].isin(sorted(MONEY_KPIS)), "currency"]) == {""}
    sig = result.significant
    assert "fees_total" in sig["upwork_fees"] and "fees_total" in sig["upwork_2026"]
    assert "fees_total" not in sig["upwork_gbp"]
    table = result.table()
    assert list(table.columns) == result.labels
    assert list(table.loc["currency (money KPIs)"]) == ["USD", "USD", "USD", "GBP"]
    assert table.loc["fees_total", "upwork"] == "0.00 ± 0.00"
    assert list(result.diff_table().columns) == result.labels[1:]


def test_money_of_another_currency_is_not_compared_without_a_rate(result: PacksResult) -> None:
    d = result.diff[result.diff["pack"] == 3].set_index("kpi")
    for kpi in MONEY_KPIS:
        assert not d.loc[kpi, "compared"] and math.isnan(d.loc[kpi, "diff"]) and d.loc[kpi, "n"] == 0
        assert not d.loc[kpi, "significant"] and d.loc[kpi, "currency"] == ""
    assert d.loc["approved_share", "compared"] and d.loc["approved_share", "diff"] == 0
    assert result.not_compared == {"upwork_gbp": [k for k in KPI_NAMES if k in MONEY_KPIS]}
    assert result.diff_table().loc["funded_total (USD)", "upwork_gbp"] == "n/a: GBP vs USD"


def test_where_the_money_went_adds_up(result: PacksResult) -> None:
    m = result.money
    shares = m.groupby("pack")["share"].sum()
    assert shares.to_numpy() == pytest.approx([1.0] * 4)
    runs = result.runs
    # conservation, run by run: what the clients paid net = escrow + freelancers + platform
    held = runs["escrow_end_total"] + runs["freelancers_net_total"] + runs["platform_total"]
    assert runs["clients_net_total"].to_numpy() == pytest.approx(held.to_numpy())
    assert runs["platform_total"].to_numpy() == pytest.approx(runs["fees_total"].to_numpy())
    escrow = runs["funded_total"] - runs["released_total"] - runs["refunded_total"]
    assert runs["escrow_end_total"].to_numpy() == pytest.approx(escrow.to_numpy())
    seg = m.set_index(["pack", "segment"])
    assert seg.loc[(0, "fees"), "amount"] == 0 and seg.loc[(1, "fees"), "share"] > 0.05
    # without fees, the freelancers get what was released and the bonuses
    free = runs[runs["pack"] == 0]
    assert free["freelancers_net_total"].to_numpy() == pytest.approx(
        (free["released_total"] + free["bonus_total"]).to_numpy()
    )
    assert seg.loc[(3, "freelancers_net"), "share"] == pytest.approx(seg.loc[(0, "freelancers_net"), "share"])


def test_outputs_and_charts_are_written(result: PacksResult, folder: Path) -> None:
    out = folder / "out"
    for stem in ("summary", "differences", "runs", "money"):
        assert (out / f"{stem}.csv").is_file() and (out / f"{stem}.parquet").is_file(), stem
    manifest = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert [p["label"] for p in manifest["packs"]] == result.labels
    assert [p["currency"] for p in manifest["packs"]] == ["USD", "USD", "USD", "GBP"]
    assert manifest["seed"] == 5 and manifest["replications"] == REPS
    assert manifest["seeds"] == [{"replication": r, "seed": 5} for r in range(REPS)]
    assert manifest["fx"] == {"rates": {}, "meaning": {}}
    assert manifest["charts"] == ["kpis.png", "time_to_payment.png", "money.png"]
    from matplotlib.image import imread

    for name in manifest["charts"]:
        png = out / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000, name
        pixels = imread(png)
        assert pixels.shape[0] > 300 and pixels.shape[1] > 800 and pixels[..., :3].std() > 0.05, name
    paid = result.payment_days()
    counts = paid.groupby("pack").size()
    assert len(counts) == 4 and counts.nunique() == 1  # the same milestones paid under every pack
    mean = paid.groupby(["pack", "replication"])["days"].mean().groupby("pack").mean()
    s = result.summary.set_index(["pack", "kpi"])
    assert mean.to_numpy() == pytest.approx(
        [s.loc[(i, "time_to_payment_days_mean"), "mean"] for i in range(4)]
    )


def test_the_chart_texts_are_literal(result: PacksResult) -> None:
    from matplotlib.text import Text

    figures = result.charts()
    assert set(figures) == {"kpis", "time_to_payment", "money"}
    for name, fig in figures.items():
        texts = fig.findobj(Text)
        assert texts and all(not t.get_parse_math() for t in texts), name
    kpis = figures["kpis"]
    titles = [ax.get_title() for ax in kpis.axes if ax.get_title()]
    assert titles[:2] == ["fees_total (own currency)", "released_total (own currency)"]


# ------------------------------------------------------------------------------ exchange rates


def test_fx_converts_money_differences_and_is_recorded(folder: Path, result: PacksResult) -> None:
    gbp = str(folder / "upwork_gbp.yaml")
    res = sim.compare(
        folder / "tiny.yaml",
        policies=["upwork", gbp],
        fx={"GBP": "1.27"},
        replications=REPS,
        backend="inprocess",
        out=folder / "fx",
        charts=False,
    )
    d = res.diff.set_index("kpi")
    funded = result.runs.loc[result.runs["pack"] == 0, "funded_total"]
    assert d.loc["funded_total", "diff"] == pytest.approx(0.27 * funded.mean())
    assert d.loc["funded_total", "compared"] and d.loc["funded_total", "currency"] == "USD"
    assert d.loc["funded_total", "fx_rate"] == 1.27 and d.loc["funded_total", "significant"]
    assert d.loc["contracts", "diff"] == 0
    manifest = json.loads((folder / "fx" / "summary.json").read_text(encoding="utf-8"))
    assert manifest["fx"] == {"rates": {"GBP": 1.27}, "meaning": {"GBP": "1 GBP = 1.27 USD"}}
    assert [p["fx_rate"] for p in manifest["packs"]] == [1.0, 1.27]
    assert manifest["base_currency"] == "USD" and manifest["charts"] == []


def test_cli_fx_is_recorded_and_printed(folder: Path, capsys) -> None:
    out = folder / "cli-fx"
    args = ["compare", str(folder / "tiny.yaml"), "--policy", "upwork", "--policy", "upwork_fees"]
    args += ["--policy", str(folder / "upwork_gbp.yaml"), "--fx", "GBP=1.27"]
    args += ["--replications", "2", "--inprocess", "--out", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "money differences in USD, at 1 GBP = 1.27 USD" in text
    assert max(len(line) for line in text.splitlines()) <= 110
    assert "3 packs x 2 replications on the same seeds (seed 5)" in text
    assert "  upwork_fees: fees_total" in text
    manifest = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert manifest["fx"]["rates"] == {"GBP": 1.27}
    assert [p["label"] for p in manifest["packs"]] == ["upwork", "upwork_fees", "upwork_gbp"]
    assert manifest["charts"] == ["kpis.png", "time_to_payment.png", "money.png"]
    for name in manifest["charts"]:
        assert (out / name).stat().st_size > 20_000
    diff = json.loads((out / "summary.json").read_text(encoding="utf-8"))["significant"]
    assert "funded_total" in diff["upwork_gbp"]  # 1.27 x the same funding


def test_a_missing_rate_exits_2_naming_the_currency(folder: Path, capsys, no_simulation) -> None:
    out = folder / "missing"
    args = ["compare", str(folder / "tiny.yaml"), "--policy", "upwork"]
    args += ["--policy", str(folder / "upwork_gbp.yaml"), "--policy", str(folder / "upwork_eur.yaml")]
    args += ["--fx", "GBP=1.27", "--inprocess", "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "no exchange rate for EUR (pack upwork_eur): give --fx EUR=RATE" in err
    assert "1 EUR = RATE USD" in err and err.count("error:") == 1
    assert not out.exists()
    with pytest.raises(InputError, match=r"no exchange rate for EUR .*fx=\{'EUR': RATE\}"):
        compare_packs(
            folder / "tiny.yaml",
            ["upwork", str(folder / "upwork_gbp.yaml"), str(folder / "upwork_eur.yaml")],
            fx={"GBP": 1.27},
            backend="inprocess",
        )


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("GBP=0", "bad rate '0' for GBP in --fx: give a positive number of USD per GBP"),
        ("GBP=-1.2", "bad rate '-1.2' for GBP"),
        ("GBP=abc", "bad rate 'abc' for GBP"),
        ("GBP=nan", "bad rate 'nan' for GBP"),
        ("GBP=inf", "bad rate 'inf' for GBP"),
        ("XYZ=1.2", "unknown currency code 'XYZ' in --fx; currencies: USD, EUR, GBP"),
        ("EUR=1.1", "no pack is in EUR"),
        ("USD=1", "USD is the first pack's currency"),
        ("GBP", "expected CURRENCY=RATE (e.g. GBP=1.27), got 'GBP'"),
    ],
)
def test_a_bad_rate_exits_2(folder: Path, capsys, no_simulation, option: str, message: str) -> None:
    out = folder / "bad"
    args = ["compare", str(folder / "tiny.yaml"), "--policy", "upwork"]
    args += ["--policy", str(folder / "upwork_gbp.yaml"), "--fx", option, "--inprocess", "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "<command line --fx>" in err and message in err
    assert not out.exists()


def test_a_rate_given_twice_exits_2(folder: Path, capsys, no_simulation) -> None:
    args = ["compare", str(folder / "tiny.yaml"), "--policy", "upwork", "--policy"]
    args += [str(folder / "upwork_gbp.yaml"), "--fx", "GBP=1.27", "--fx", "gbp=1.3", "--inprocess"]
    assert main(args) == 2
    assert "--fx GBP is given twice" in capsys.readouterr().err


# ------------------------------------------------------------------------------ A/B form, packs form


def test_two_packs_without_fx_keep_the_a_b_form_and_agree_with_the_packs_form(folder: Path) -> None:
    tiny = folder / "tiny.yaml"
    ab = sim.compare(tiny, "upwork", "upwork_2026", replications=REPS, backend="inprocess", charts=False)
    assert type(ab).__name__ == "CompareResult"
    packs = sim.compare(tiny, policies=["upwork", "upwork_2026"], replications=REPS, backend="inprocess")
    assert isinstance(packs, PacksResult)
    a = ab.diff.set_index("kpi")
    p = packs.diff.set_index("kpi")
    for col_ab, col_p in (("a_mean", "first_mean"), ("b_mean", "pack_mean"), ("diff", "diff")):
        assert np.allclose(a[col_ab], p[col_p], equal_nan=True), col_ab
    assert list(a["significant"]) == list(p["significant"])


def test_a_and_b_in_two_currencies_are_refused_or_compared_as_packs(folder: Path, capsys) -> None:
    tiny, gbp = folder / "tiny.yaml", str(folder / "upwork_gbp.yaml")
    with pytest.raises(InputError, match="A is in USD and B in GBP: money of two currencies is never"):
        sim.compare(tiny, "upwork", gbp, replications=REPS, backend="inprocess")
    args = ["compare", str(tiny), "--policy", "upwork", "--policy", gbp, "--replications", "2"]
    args += ["--inprocess", "--no-charts", "--out", str(folder / "two")]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "2 packs x 2 replications" in text
    assert "money KPIs of upwork_gbp are in GBP: not compared with USD (give --fx GBP=RATE" in text
    assert (folder / "two" / "summary.json").is_file() and not (folder / "two" / "compare.json").exists()


def test_set_a_with_three_packs_exits_2(folder: Path, capsys, no_simulation) -> None:
    args = ["compare", str(folder / "tiny.yaml"), *[x for p in PACKS for x in ("--policy", p)]]
    args += ["--set-a", "review.window=3d", "--inprocess"]
    assert main(args) == 2
    assert "--set-a/--set-b choose the two sides of an A/B comparison" in capsys.readouterr().err


def test_the_same_pack_twice_is_refused(folder: Path, no_simulation) -> None:
    with pytest.raises(InputError, match=r"packs 1 \(upwork\) and 3 \(upwork\) are the same"):
        sim.compare(folder / "tiny.yaml", policies=["upwork", "upwork_fees", "upwork"], backend="inprocess")
    with pytest.raises(InputError, match="comparing packs needs two or more, got 1"):
        sim.compare(folder / "tiny.yaml", policies=["upwork"], backend="inprocess")


def test_wide_tables_are_split_into_blocks_of_110_columns(result: PacksResult) -> None:
    import pandas as pd

    wide = pd.DataFrame({f"pack_number_{i}": ["123,456,789 ± 12,345,678 *"] * 3 for i in range(6)})
    wide.index = ["time_to_payment_days_mean", "fees_total (USD)", "contracts"]
    text = text_blocks(wide)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 110
    assert sum(line.startswith("kpi ") for line in lines) == 2  # two blocks, each with its header
    assert all(f"pack_number_{i}" in text for i in range(6))
    assert text_blocks(result.table()).splitlines()[0].split() == ["kpi", *result.labels]


def test_an_in_memory_change_to_the_scenario_is_kept_under_every_pack():
    """``dataclasses.replace(scenario, until=...)`` then compare: every pack plays the shorter run,
    the same contracts as a run of that pack alone on the changed scenario."""
    import dataclasses

    base = sim.load_scenario(Path(__file__).resolve().parent.parent / "scenarios/markets/freelance_year.yaml")
    short = dataclasses.replace(base, until=20.0, replications=1)
    res = compare_packs(short, ["upwork", "guru"], charts=False, progress=False, backend="inprocess")
    assert [v.scenario.until for v in res.packs] == [20.0, 20.0]
    assert res.packs[1].scenario.population == short.population
    alone = sim.run(dataclasses.replace(short, policy_ref="guru").with_overrides([]), replications=1)
    contracts = alone.kpis["contracts"]["mean"]
    assert list(res.runs["contracts"]) == [contracts, contracts]
    assert contracts == pytest.approx(15 * 20, rel=0.25)  # 15 a day for 20 days, not a year's worth


def test_a_sweep_over_packs_of_two_currencies_is_exit_2_and_points_to_compare(capsys, tmp_path):
    """A sweep has one table and one chart axis and no exchange rate: USD and GBP variants would be
    mixed in them, so it refuses before running anything."""
    scenario = Path(__file__).resolve().parent.parent / "scenarios/markets/freelance_year.yaml"
    out = tmp_path / "sweep"
    code = main(["sweep", str(scenario), "--grid", "policy=upwork,peopleperhour", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert "<command line --grid>: policy: the variants count money in GBP and USD" in err
    assert "upwork (USD), peopleperhour (GBP)" in err and "--fx GBP=RATE" in err
    assert "Traceback" not in err and not out.exists()
    with pytest.raises(InputError, match="count money in GBP and USD"):
        sim.sweep(scenario, grid={"policy": ["upwork", "peopleperhour"]})
