"""Escrow aging (FORMAT section 11): ``held_days``, the escrow-age KPIs, ``aging.csv`` and its chart.

The scenarios below are small enough to work out by hand: each expected row is written out to the
cent. A day end t counts the events at t, so money funded at 0 is 7 days old (bucket 7-14) at t = 7
and money released at t is gone from the row at t.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sim
from sim.analysis.aging import AGING_COLUMNS, BUCKET_COLUMNS, aging_table, day_ends, held_days
from sim.analysis.tables import KPI_NAMES, MILESTONE_COLUMNS
from sim.app.cli import main
from sim.viz import plots

ROOT = Path(__file__).resolve().parent.parent

# 500.00 funded at 0 and released at 20; m2 is never funded
ONE = """\
scenario: 500.00 held from day 0 to day 20
policy: upwork
contracts:
  - id: c1
    client: acme
    freelancer: ana
    milestones:
      - {id: m1, amount: 500.00, due: 10d}
      - {id: m2, amount: 100.00, due: 30d}
    script:
      - {at: 0d, client: offer}
      - {at: 0d, client: fund, milestone: m1}
      - {at: 1d, freelancer: accept_offer}
      - {at: 10d, freelancer: submit, milestone: m1}
      - {at: 20d, client: approve, milestone: m1}
"""

# m1 500.00 at 0, 200.00 of it released at 8: 300.00 stays as credit (aged from 0); m2 400.00 is
# funded at 9 with 100.00 from the client and the credit, and released in full at 16
PARTIAL = """\
scenario: 200.00 of 500.00 released; the 300.00 credit pays most of m2
policy: upwork
contracts:
  - id: c1
    client: acme
    freelancer: ana
    milestones:
      - {id: m1, amount: 500.00, due: 10d}
      - {id: m2, amount: 400.00, due: 20d}
    script:
      - {at: 0d, client: offer}
      - {at: 0d, client: fund, milestone: m1}
      - {at: 1d, freelancer: accept_offer}
      - {at: 5d, freelancer: submit, milestone: m1}
      - {at: 8d, client: approve, milestone: m1, amount: "200.00"}
      - {at: 9d, client: fund, milestone: m2}
      - {at: 12d, freelancer: submit, milestone: m2}
      - {at: 16d, client: approve, milestone: m2, amount: "RELEASE"}
"""

# m1 300.00 at 0 released at 12; m2 200.00 funded at 10 still held when the run ends at 40.5
TWO = """\
scenario: Two milestones funded ten days apart
policy: upwork
policy_overrides: {milestones.funding: any_number}
until: 40d12h
contracts:
  - id: c1
    client: acme
    freelancer: ana
    milestones:
      - {id: m1, amount: 300.00, due: 10d}
      - {id: m2, amount: 200.00, due: 30d}
    script:
      - {at: 0d, client: offer}
      - {at: 0d, client: fund, milestone: m1}
      - {at: 1d, freelancer: accept_offer}
      - {at: 5d, freelancer: submit, milestone: m1}
      - {at: 10d, client: fund, milestone: m2}
      - {at: 12d, client: approve, milestone: m1}
"""

# every delay constant: each replication funds 4 x 100.00 at 1 and releases it at 6
CONSTANT_POPULATION = """\
scenario: Four contracts, one milestone each, every delay constant
policy: upwork
seed: 3
replications: 2
until: 30d
population:
  arrivals: {count: 4, over: 0d}
  milestones:
    count: 1
    amount: 100.00
  client:
    fund_delay: 1d
    review:
      delay: 2d
      decision: {approve: 1.0}
  freelancer:
    accept: {probability: 1.0, delay: 1d}
    work: 3d
"""

MIXED_POPULATION = """\
scenario: A small marketplace with partial releases, refunds and work that outlasts the horizon
policy: upwork
seed: 11
replications: 1
until: 60d
population:
  arrivals: {count: 60, over: 30d}
  milestones:
    count: {poisson: {mean: 2}, minimum: 1}
    amount: {lognormal: {median: 250, sigma: 0.9}}
  client:
    review:
      delay: {exponential: {mean: 6d}}
      decision: {approve: 0.7, request_changes: 0.1, partial: 0.1, refund: 0.1}
  freelancer:
    work: {gamma: {mean: 12d, cv: 0.8}}
    refund_response: {approve: 0.5, dispute: 0.3, silent: 0.2, delay: {exponential: {mean: 2d}}}
"""


def _run(tmp_path: Path, text: str, name: str = "s.yaml", **kw) -> sim.Result:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return sim.run(path, **kw)


def _rows(result: sim.Result) -> dict[float, tuple[int, ...]]:
    """Aging rows by time: the buckets in minor units."""
    return {float(r["time"]): tuple(int(r[b]) for b in BUCKET_COLUMNS) for _, r in result.aging.iterrows()}


def _escrow_at_day_ends(result: sim.Result) -> np.ndarray:
    """Escrow of balances.csv at each aging row: the last balance at or before it."""
    bal, times = result.balances, result.aging["time"].to_numpy(dtype=float)
    if bal.empty:
        return np.zeros(len(times), dtype=np.int64)
    i = np.searchsorted(bal["time"].to_numpy(dtype=float), times + 1e-9, side="right") - 1
    return np.where(i >= 0, bal["escrow"].to_numpy(dtype=np.int64)[np.maximum(i, 0)], 0)


# ------------------------------------------------------------------------------ hand-computed rows


def test_one_milestone_moves_through_the_buckets(tmp_path: Path) -> None:
    result = _run(tmp_path, ONE)
    rows = _rows(result)
    assert list(rows) == [float(t) for t in range(1, 21)]  # day ends 1..20, the run ends at 20
    for t in range(1, 7):
        assert rows[t] == (50000, 0, 0, 0, 0), t
    for t in range(7, 14):
        assert rows[t] == (0, 50000, 0, 0, 0), t
    for t in range(14, 20):
        assert rows[t] == (0, 0, 50000, 0, 0), t
    assert rows[20] == (0, 0, 0, 0, 0)  # released at 20: gone at the end of day 20
    assert tuple(result.aging.columns) == AGING_COLUMNS
    assert all(result.aging[b].dtype == np.int64 for b in BUCKET_COLUMNS)


def test_partial_release_keeps_the_credit_at_its_first_age(tmp_path: Path) -> None:
    result = _run(tmp_path, PARTIAL.replace('"RELEASE"', '"400.00"'))
    rows = _rows(result)
    assert list(rows) == [float(t) for t in range(1, 17)]
    for t in range(1, 7):
        assert rows[t] == (50000, 0, 0, 0, 0), t
    assert rows[7] == (0, 50000, 0, 0, 0)
    assert rows[8] == (0, 30000, 0, 0, 0)  # 200.00 released at 8: 300.00 credit, 8 days old
    for t in range(9, 14):  # m2 funded at 9: 100.00 new money beside the 300.00 credit
        assert rows[t] == (10000, 30000, 0, 0, 0), t
    for t in (14, 15):  # the credit is 14 days old: it entered escrow at 0, not when m2 was funded
        assert rows[t] == (10000, 0, 30000, 0, 0), t
    assert rows[16] == (0, 0, 0, 0, 0)


def test_a_partial_release_takes_the_milestones_own_money_first(tmp_path: Path) -> None:
    """m2 releases 250.00 of its 400.00: its own 100.00 (funded at 9) first, then 150.00 of the
    credit from day 0; 150.00 stays, 16 days old."""
    result = _run(tmp_path, PARTIAL.replace('"RELEASE"', '"250.00"'))
    rows = _rows(result)
    assert rows[15] == (10000, 0, 30000, 0, 0)
    assert rows[max(rows)] == (0, 0, 15000, 0, 0)
    assert result.runs[0].escrow_by_contract == {"c1": 15000}


def test_two_milestones_funded_at_different_times(tmp_path: Path) -> None:
    result = _run(tmp_path, TWO)
    rows = _rows(result)
    assert list(rows) == [*(float(t) for t in range(1, 41)), 40.5]  # the end, not a whole day, last
    for t in range(1, 7):
        assert rows[t] == (30000, 0, 0, 0, 0), t
    for t in (7, 8, 9):
        assert rows[t] == (0, 30000, 0, 0, 0), t
    assert rows[10] == rows[11] == (20000, 30000, 0, 0, 0)  # m2 funded at 10: 0 days old at 10
    for t in range(12, 17):  # m1 released at 12
        assert rows[t] == (20000, 0, 0, 0, 0), t
    assert rows[17] == rows[23] == (0, 20000, 0, 0, 0)
    assert rows[24] == rows[39] == (0, 0, 20000, 0, 0)
    assert rows[40] == rows[40.5] == (0, 0, 0, 20000, 0)  # 30 days old at 40: 30-90


def test_money_held_90_days_is_in_the_last_bucket(tmp_path: Path) -> None:
    """m1 (funded at 0) and m2 (at 10) are never submitted nor released; the run ends at 100."""
    text = TWO.replace("until: 40d12h", "until: 100d")
    for step in ("{at: 5d, freelancer: submit, milestone: m1}", "{at: 12d, client: approve, milestone: m1}"):
        text = text.replace(f"      - {step}\n", "")
    rows = _rows(_run(tmp_path, text))
    assert len(rows) == 100
    assert rows[89] == (0, 0, 0, 30000 + 20000, 0)
    assert rows[90] == rows[99] == (0, 0, 0, 20000, 30000)  # m1 is 90 days old at 90
    assert rows[100] == (0, 0, 0, 0, 50000)


# ------------------------------------------------------------------------------ held_days


def test_held_days_per_milestone(tmp_path: Path) -> None:
    ms = _run(tmp_path, ONE).milestones.set_index("milestone")
    assert ms.loc["m1", "held_days"] == 20.0
    assert math.isnan(ms.loc["m2", "held_days"])  # never funded
    ms = _run(tmp_path, PARTIAL.replace('"RELEASE"', '"400.00"'), "p.yaml").milestones.set_index("milestone")
    assert (ms.loc["m1", "held_days"], ms.loc["m2", "held_days"]) == (8.0, 7.0)
    ms = _run(tmp_path, TWO, "t.yaml").milestones.set_index("milestone")
    assert (ms.loc["m1", "held_days"], ms.loc["m2", "held_days"]) == (12.0, 30.5)  # m2 to the end
    cols = list(MILESTONE_COLUMNS)
    assert cols[cols.index("closed_at") + 1] == "held_days"


def test_held_days_is_exact_on_the_millisecond_grid() -> None:
    frame = pd.DataFrame({"funded_at": [0.1, 0.3, np.nan], "closed_at": [0.3, np.nan, np.nan]})
    held = held_days(frame, 1.0)
    assert held.iloc[0] == 0.2 and held.iloc[1] == 0.7 and math.isnan(held.iloc[2])


def test_day_ends() -> None:
    assert list(day_ends(3.0)) == [1.0, 2.0, 3.0]
    assert list(day_ends(2.25)) == [1.0, 2.0, 2.25]
    assert list(day_ends(0.5)) == [0.5]
    assert list(day_ends(0.0)) == []
    long = day_ends(20_000.0)  # over 10,000 days: 10,000 evenly spaced rows, as the balance snapshots
    assert len(long) == 10_000 and long[0] == 2.0 and long[-1] == 20_000.0


# ------------------------------------------------------------------------------ KPIs


def test_kpis_of_a_constant_population(tmp_path: Path) -> None:
    result = _run(tmp_path, CONSTANT_POPULATION)
    assert {"escrow_age_p50_days", "escrow_age_p90_days"} <= set(KPI_NAMES)
    for name in ("escrow_age_p50_days", "escrow_age_p90_days"):  # funded at 1, released at 6
        assert result.kpis[name] == {"mean": 5.0, "ci_low": 5.0, "ci_high": 5.0, "n": 2}
    aging = result.aging
    assert list(aging.columns) == [*AGING_COLUMNS, "replication"]
    for rep in (0, 1):
        part = aging[aging["replication"] == rep].set_index("time")
        assert len(part) == 30
        assert (part.loc[1.0:5.0, "0-7"] == 40000).all()  # 4 x 100.00, 0-4 days old
        assert (part.loc[6.0:, list(BUCKET_COLUMNS)] == 0).all().all()
        assert (part.loc[:, ["7-14", "14-30", "30-90", "90+"]] == 0).all().all()


def test_kpis_are_percentiles_of_held_days(tmp_path: Path) -> None:
    result = _run(tmp_path, MIXED_POPULATION)
    ms = result.milestones
    funded = ms[ms["funded_at"].notna()]
    assert len(funded) > 50 and funded["closed_at"].isna().any()  # some still held at 60
    open_ = funded[funded["closed_at"].isna()]
    assert np.allclose(open_["held_days"], 60.0 - open_["funded_at"], rtol=0, atol=1e-9)
    shut = funded[funded["closed_at"].notna()]
    assert np.allclose(shut["held_days"], shut["closed_at"] - shut["funded_at"], rtol=0, atol=1e-9)
    assert ms[ms["funded_at"].isna()]["held_days"].isna().all()
    held = funded["held_days"].to_numpy()
    assert result.kpis["escrow_age_p50_days"]["mean"] == pytest.approx(float(np.percentile(held, 50)))
    assert result.kpis["escrow_age_p90_days"]["mean"] == pytest.approx(float(np.percentile(held, 90)))


def test_kpis_without_funding_are_empty() -> None:
    result = sim.run(ROOT / "scenarios/upwork/minimum_amount_on_offer.yaml")
    for name in ("escrow_age_p50_days", "escrow_age_p90_days"):
        assert result.kpis[name] == {"mean": None, "ci_low": None, "ci_high": None, "n": 0}
    assert (result.aging[list(BUCKET_COLUMNS)] == 0).all().all()


# ------------------------------------------------------------------------------ adds up to escrow

SCENARIOS = [
    "upwork/partial_release_credit_funds_next.yaml",
    "upwork/partial_release_remainder_refunded.yaml",
    "upwork/end_contract_then_refund.yaml",
    "upwork/refund_disputed_and_resolved.yaml",
    "upwork/offer_withdrawn.yaml",
    "upwork_2026/dispute_over_contract_credit.yaml",
    "upwork_2026/dormant_everyone_silent_refunds_client.yaml",
    "fiverr/fiverr_balance_pays_the_next_order.yaml",
    "guru/arbitration_fee_on_the_whole_safepay_balance.yaml",
    "guru/small_claim_split_fee_waived.yaml",
    "peopleperhour/refund_declined_support_decides.yaml",
    "peopleperhour/partial_payment_rest_stays_as_credit.yaml",
    "freelancer_com/milestones_funded_on_creation_any_order.yaml",
    "escrow_com/whole_transaction_funded_on_acceptance.yaml",
]


@pytest.mark.parametrize("name", SCENARIOS)
def test_buckets_add_up_to_the_escrow_balance(name: str) -> None:
    result = sim.run(ROOT / "scenarios" / name)
    aging = result.aging
    assert len(aging) > 0
    total = aging[list(BUCKET_COLUMNS)].sum(axis=1).to_numpy()
    assert (total == _escrow_at_day_ends(result)).all(), name
    assert (aging[list(BUCKET_COLUMNS)] >= 0).all().all()


def test_population_with_the_event_log_adds_up(tmp_path: Path) -> None:
    result = _run(tmp_path, MIXED_POPULATION, events="full")
    total = result.aging[list(BUCKET_COLUMNS)].sum(axis=1).to_numpy()
    assert len(total) == 60 and total.max() > 0
    assert (total == _escrow_at_day_ends(result)).all()


def test_streaming_runs_estimate_from_the_milestones(tmp_path: Path) -> None:
    """Without postings each funded milestone holds its amount from funded_at to closed_at: exact
    when every milestone is released whole (the constant population), an estimate otherwise."""
    full = _run(tmp_path, CONSTANT_POPULATION, events="full")
    none = _run(tmp_path, CONSTANT_POPULATION, events="none")
    assert none.events_mode == "none"
    pd.testing.assert_frame_equal(full.aging, none.aging)
    mixed = _run(tmp_path, MIXED_POPULATION, "m.yaml", events="none")
    rt = mixed.runs[0]
    pd.testing.assert_frame_equal(mixed.aging, aging_table(rt.milestones, rt.end))


# ------------------------------------------------------------------------------ outputs


def test_cli_writes_aging_csv_and_chart(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "one.yaml"
    path.write_text(ONE, encoding="utf-8")
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out), "--quiet"]) == 0
    with open(out / "aging.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["time", "0-7", "7-14", "14-30", "30-90", "90+"]
    assert rows[1] == ["1", "500.00", "0.00", "0.00", "0.00", "0.00"]
    assert rows[7] == ["7", "0.00", "500.00", "0.00", "0.00", "0.00"]
    assert rows[14] == ["14", "0.00", "0.00", "500.00", "0.00", "0.00"]
    assert rows[20] == ["20", "0.00", "0.00", "0.00", "0.00", "0.00"]
    assert len(rows) == 21
    with open(out / "milestones.csv", encoding="utf-8", newline="") as fh:
        ms = {r["milestone"]: r for r in csv.DictReader(fh)}
    assert (ms["m1"]["funded_at"], ms["m1"]["closed_at"], ms["m1"]["held_days"]) == ("0", "20", "20")
    assert ms["m2"]["held_days"] == ""
    png = out / "aging.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (out / "report.html").read_text(encoding="utf-8")
    assert 'id="chart-aging"' in html and "aging.png" in html
    assert html.index('id="chart-balances"') < html.index('id="chart-aging"')


def test_multi_replication_aging_csv_has_a_replication_column(tmp_path: Path) -> None:
    result = _run(tmp_path, CONSTANT_POPULATION)
    result.write(tmp_path / "o", table_format="csv")
    frame = pd.read_csv(tmp_path / "o" / "aging.csv", dtype=str)
    assert list(frame.columns) == [*AGING_COLUMNS, "replication"]
    assert len(frame) == 60 and frame.iloc[0].tolist() == ["1", "400.00", "0.00", "0.00", "0.00", "0.00", "0"]


def test_aging_chart(tmp_path: Path) -> None:
    result = _run(tmp_path, TWO)
    fig = plots.aging(result)
    ax = fig.axes[0]
    assert ax.get_title() == "Escrow by age of the money"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "90+ days",
        "30-90 days",
        "14-30 days",
        "7-14 days",
        "0-7 days",
    ]
    heights = sum(p.get_height() for p in ax.patches if abs(p.get_x() + p.get_width() / 2 - 10.0) < 1e-9)
    assert heights == pytest.approx(500.0)  # bars at day 10: 200.00 + 300.00
    assert "aging" in plots.applicable(result)
    none = _run(tmp_path, CONSTANT_POPULATION, "c.yaml", events="none")
    assert "estimated" in plots.aging(none).axes[0].get_title()
