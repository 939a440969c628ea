"""Charts: each has data in it, and what it plots matches the ledger to the cent."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

import sim
from sim.viz import plots

ROOT = Path(__file__).resolve().parent.parent
UPWORK = ROOT / "scenarios" / "upwork"

TINY_POPULATION = """
scenario: A tiny marketplace for chart tests
policy: upwork
seed: 5
replications: 2
start: 2026-01-05
until: 40d
population:
  arrivals: {rate: 3/d}
  milestones:
    count: {poisson: {mean: 2}, minimum: 1}
    amount: {lognormal: {median: 250, sigma: 0.9}}
  client:
    fund_delay: {exponential: {mean: 1d}}
    review:
      delay: {exponential: {mean: 6d}}
      decision: {approve: 0.7, request_changes: 0.1, partial: 0.05, bonus: 0.05, refund: 0.1}
  freelancer:
    accept: {probability: 0.95, delay: {exponential: {mean: 1d}}}
    work: {gamma: {mean: 5d, cv: 0.6}}
    refund_response: {approve: 0.2, dispute: 0.6, silent: 0.2, delay: {exponential: {mean: 2d}}}
  platform:
    dispute_agents: 1
    dispute_handling: {exponential: {mean: 6d}}
"""


@pytest.fixture(scope="module")
def pop_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pop") / "tiny.yaml"
    path.write_text(TINY_POPULATION, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def population(pop_path: Path) -> sim.Result:
    return sim.run(pop_path)


@pytest.fixture(scope="module")
def disputed() -> sim.Result:
    return sim.run(UPWORK / "refund_disputed_and_resolved.yaml")


@pytest.fixture(scope="module")
def resubmitted() -> sim.Result:
    return sim.run(UPWORK / "request_changes_restarts_window.yaml")


@pytest.fixture(scope="module")
def with_fees(tmp_path_factory: pytest.TempPathFactory) -> sim.Result:
    """A bonus under the pack with fees and a security hold: client and freelancer fees both move."""
    text = (UPWORK / "bonus_paid_directly.yaml").read_text(encoding="utf-8")
    text = text.replace("policy: upwork\n", "policy: upwork_fees\n").split("\nexpect:")[0] + "\n"
    path = tmp_path_factory.mktemp("fees") / "bonus_fees.yaml"
    path.write_text(text, encoding="utf-8")
    return sim.run(path)


def _line(fig: Figure, label_start: str, ax_index: int = 0):
    for line in fig.axes[ax_index].get_lines():
        if str(line.get_label()).startswith(label_start):
            return line
    raise AssertionError(
        f"no line labelled {label_start!r}: {[ln.get_label() for ln in fig.axes[ax_index].lines]}"
    )


def _texts(fig: Figure) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def _assert_readable(fig: Figure) -> None:
    """Every chart has a title and labelled axes; it is a plain Figure, not a pyplot one."""
    ax = fig.axes[0]
    title = (fig._suptitle.get_text() if fig._suptitle is not None else "") or ax.get_title()
    assert title.strip()
    if ax.axison:
        assert any(a.get_xlabel() for a in fig.axes)
        assert all(a.get_ylabel() for a in fig.axes)
    assert fig.canvas.manager is None


# ------------------------------------------------------------------------------ flows, balances


@pytest.mark.parametrize("name", ["disputed", "resubmitted", "with_fees", "population"])
def test_cumulative_flows_end_at_the_ledger_totals(name: str, request: pytest.FixtureRequest) -> None:
    result = request.getfixturevalue(name)
    fig = plots.flows(result)
    _assert_readable(fig)
    scale = 10**result.digits
    drawn = 0
    for flow, total in result.totals.items():
        if total == 0:
            continue
        line = _line(fig, flow)
        assert line.get_ydata()[-1] == pytest.approx(total / scale, abs=1e-9)
        assert line.get_xdata()[-1] == pytest.approx(result.runs[0].end)
        drawn += 1
    assert drawn >= 2
    assert "USD" in fig.axes[0].get_ylabel()


def test_balances_end_at_the_final_balances(with_fees: sim.Result) -> None:
    fig = plots.balances(with_fees)
    _assert_readable(fig)
    last = with_fees.balances.iloc[-1]
    held, paid = fig.axes
    assert _line(fig, "held in escrow", 0).get_ydata()[-1] == last["escrow"] / 100
    assert max(_line(fig, "released, in security hold", 0).get_ydata()) > 0
    assert _line(fig, "paid to freelancers", 1).get_ydata()[-1] == last["freelancer"] / 100
    assert _line(fig, "platform fees", 1).get_ydata()[-1] == with_fees.totals["fees"] / 100
    assert "USD" in held.get_ylabel() and "USD" in paid.get_ylabel()


def test_balances_show_refunds_and_the_escrow_peak(disputed: sim.Result) -> None:
    fig = plots.balances(disputed)
    assert max(_line(fig, "held in escrow", 0).get_ydata()) == 500.0
    assert _line(fig, "refunded to clients", 1).get_ydata()[-1] == pytest.approx(166.67)
    assert _line(fig, "paid to freelancers", 1).get_ydata()[-1] == pytest.approx(333.33)


def test_time_axis_names_the_calendar_start(population: sim.Result, disputed: sim.Result) -> None:
    assert "2026-01-05" in plots.balances(population).axes[1].get_xlabel()
    assert plots.flows(disputed).axes[0].get_xlabel() == "Days since start of the run"


# ------------------------------------------------------------------------------ timeline


def test_timeline_draws_phases_events_and_windows(disputed: sim.Result) -> None:
    fig = plots.timeline(disputed)
    _assert_readable(fig)
    ax = fig.axes[0]
    bars = [c for c in ax.collections if isinstance(c, PolyCollection)]
    phases = {c.get_gid() for c in bars}
    assert {"phase:funded", "phase:submitted", "phase:refund_requested", "phase:disputed"} <= phases
    # the disputed bar spans 8d to 30d
    (disputed_bar,) = [c for c in bars if c.get_gid() == "phase:disputed"]
    xs = disputed_bar.get_paths()[0].vertices[:, 0]
    assert (xs.min(), xs.max()) == (8.0, 30.0)
    windows = {str(line.get_gid()) for line in ax.lines if str(line.get_gid()).startswith("window:")}
    assert windows == {"window:review", "window:refund"}
    assert [t.get_text() for t in ax.get_yticklabels()] == ["contract c1", "m1  500.00"]
    texts = " ".join(_texts(fig))
    for action in ("offer", "fund", "submit", "request_refund", "dispute", "resolve_dispute", "resolved"):
        assert action in texts
    assert "refund window 7d (stopped)" in texts and "review window 14d (stopped)" in texts


def test_timeline_review_window_runs_from_the_resubmission(resubmitted: sim.Result) -> None:
    ax = plots.timeline(resubmitted).axes[0]
    live = [line for line in ax.lines if line.get_gid() == "window:review"]
    spans = sorted((float(line.get_xdata()[0]), float(line.get_xdata()[-1])) for line in live)
    assert spans == [(5.0, 8.0), (12.0, 26.0)]  # stopped by the change request; then ran out at 26d
    assert "never funded" in _texts(plots.timeline(resubmitted))


def test_timeline_marks_rejections() -> None:
    result = sim.run(UPWORK / "sequential_funding_order.yaml")
    texts = " ".join(_texts(plots.timeline(result)))
    assert "fund ✕ funding_order" in texts


def test_timeline_of_a_population_needs_chosen_contracts(population: sim.Result) -> None:
    with pytest.raises(ValueError, match="contracts="):
        plots.timeline(population)
    first = population.runs[0].milestones["contract"].iloc[0]
    fig = population.plot.timeline(contracts=[first])
    assert fig.axes[0].get_yticklabels()[0].get_text() == f"contract {first}"


# ------------------------------------------------------------------------------ distributions


def test_time_to_payment_one_bar_per_paid_milestone(resubmitted: sim.Result) -> None:
    fig = plots.time_to_payment(resubmitted)
    _assert_readable(fig)
    bars = [p for p in fig.axes[0].patches if isinstance(p, Rectangle) and p.get_gid() == "payment"]
    assert [b.get_width() for b in bars] == [21.0]  # first submission 5d, auto-approved 26d
    assert "review window 14d" in _texts(fig)


def test_time_to_payment_histogram_counts_every_paid_milestone(population: sim.Result) -> None:
    fig = plots.time_to_payment(population)
    _assert_readable(fig)
    heights = [p.get_height() for p in fig.axes[0].patches if isinstance(p, Rectangle)]
    paid = population.milestones["outcome"].isin(["approved", "auto_approved"])
    paid &= population.milestones["first_submitted_at"].notna()
    assert len(heights) > 10
    assert sum(heights) == paid.sum() > plots.SMALL_N
    window = [ln for ln in fig.axes[0].lines if list(ln.get_xdata()) == [14.0, 14.0]]
    assert window, "the review window is marked"


def test_outcome_shares_match_the_kpis(population: sim.Result) -> None:
    fig = plots.outcomes(population)
    _assert_readable(fig)
    heights = np.array([p.get_height() for p in fig.axes[0].patches])
    assert len(heights) == len(plots.OUTCOMES)
    assert heights.sum() == pytest.approx(100.0)
    kpis = population.kpis
    assert heights[0] == pytest.approx(100 * kpis["approved_share"]["mean"])
    assert heights[1] == pytest.approx(100 * kpis["auto_approved_share"]["mean"])
    assert heights[2] + heights[3] == pytest.approx(100 * kpis["refunded_share"]["mean"])
    assert heights[4] == pytest.approx(100 * kpis["disputed_share"]["mean"])
    assert fig.axes[0].containers, "intervals are drawn with replications"
    table = plots.outcome_shares(population)
    assert table["ci_low"].notna().all()


def test_outcomes_of_one_scripted_milestone(disputed: sim.Result) -> None:
    heights = [p.get_height() for p in plots.outcomes(disputed).axes[0].patches]
    assert heights == [0.0, 0.0, 0.0, 0.0, 100.0]


# ------------------------------------------------------------------------------ Sankey


def _sankey_amounts(fig: Figure) -> list[float]:
    out = []
    for text in _texts(fig):
        m = re.search(r"\n([\d,]+\.\d\d) USD", text)
        if m:
            out.append(float(m.group(1).replace(",", "")))
    return out


@pytest.mark.parametrize("name", ["disputed", "with_fees", "population"])
def test_sankey_balances_in_and_out(name: str, request: pytest.FixtureRequest) -> None:
    result = request.getfixturevalue(name)
    flows = plots.money_flows(result)
    tot = result.totals
    paid_in = sum(flows["in"].values())
    assert flows["in"]["funded"] == tot["funded"] and flows["in"]["bonus"] == tot["bonus"]
    assert sum(flows["out"].values()) == paid_in
    assert flows["out"]["refunded"] == tot["refunded"]
    if len(result.runs) == 1:
        assert flows["out"]["in escrow"] == result.balances.iloc[-1]["escrow"]
    fig = plots.sankey(result)
    assert fig.axes[0].get_title()
    amounts = _sankey_amounts(fig)
    nonzero = [v for v in [*flows["in"].values(), *flows["out"].values()] if v]
    assert len(amounts) == len(nonzero)
    assert sum(amounts) == pytest.approx(2 * paid_in / 100)


def test_sankey_without_fees_sums_to_funded_plus_bonus(disputed: sim.Result) -> None:
    flows = plots.money_flows(disputed)
    assert flows["in"]["client fees"] == 0
    assert sum(flows["out"].values()) == disputed.totals["funded"] + disputed.totals["bonus"] == 50000


def test_sankey_with_fees_splits_who_paid_them(with_fees: sim.Result) -> None:
    flows = plots.money_flows(with_fees)
    assert flows["in"] == {"funded": 50000, "bonus": 7525, "client fees": 2876}
    assert flows["out"] == {"freelancers": 51772, "platform fees": 8629, "refunded": 0, "in escrow": 0}


# ------------------------------------------------------------------------------ disputes, applicability


def test_dispute_queue_plots_every_replication(population: sim.Result) -> None:
    fig = plots.dispute_queue(population)
    _assert_readable(fig)
    queues = [r.extra["dispute_queue"] for r in population.runs if "dispute_queue" in r.extra]
    lines = fig.axes[0].get_lines()
    assert len(lines) == len(queues) >= 1
    assert max(max(ln.get_ydata()) for ln in lines) == max(int(q["queue"].max()) for q in queues)


def test_applicable_charts(disputed: sim.Result, resubmitted: sim.Result, population: sim.Result) -> None:
    assert plots.applicable(disputed) == ["balances", "aging", "flows", "timeline", "outcomes", "sankey"]
    assert "time_to_payment" in plots.applicable(resubmitted)
    assert plots.applicable(population) == [
        "balances",
        "aging",
        "flows",
        "time_to_payment",
        "outcomes",
        "sankey",
        "dispute_queue",
    ]
    assert set(plots.applicable(disputed)) <= set(plots.CHARTS) == set(plots.NOT_APPLICABLE)


def test_population_without_event_log(pop_path: Path) -> None:
    result = sim.run(pop_path, replications=1, events="none")
    names = plots.applicable(result)
    assert "flows" not in names and "timeline" not in names and "dispute_queue" not in names
    for name in names:
        _assert_readable(plots.CHART_FUNCTIONS[name](result))
    flows = plots.money_flows(result)
    assert sum(flows["in"].values()) == sum(flows["out"].values())


def test_nothing_moved_means_no_money_charts() -> None:
    result = sim.run(UPWORK / "minimum_amount_on_offer.yaml")
    names = plots.applicable(result)
    assert "sankey" not in names and "balances" not in names and "flows" not in names
    assert "aging" not in names
    with pytest.raises(ValueError):
        plots.sankey(result)
    with pytest.raises(ValueError, match="no money was held in escrow"):
        plots.aging(result)


def test_plotter_exposes_every_chart(disputed: sim.Result) -> None:
    plot = disputed.plot
    assert isinstance(plot, plots.Plotter)
    assert plot.available() == plots.applicable(disputed)
    for name in plot.available():
        assert isinstance(getattr(plot, name)(), Figure)
    assert set(plot.all()) == set(plot.available())
    png = plot.sankey()._repr_png_()
    assert png.startswith(b"\x89PNG") and b"matplotlib" not in png


def test_money_text_is_exact() -> None:
    assert plots.money_text(525889753, 2) == "5,258,897.53"
    assert plots.money_text(-5, 2) == "-0.05"
    assert plots.money_text(1200, 0) == "1,200"
