"""Outputs that tell the truth (issue 8): the run ends when nothing live is pending, the milestones
table adds up to the ledger, outcomes tell in-flight work from cancelled and never-funded
milestones, CSV times are exact, capped fees say so, charts show user text literally, and event
rows show what the client paid and carry an amount only when money moves."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text

import sim
from sim.analysis.tables import write_csv
from sim.engine.environment import TICKS_PER_DAY
from sim.viz import plots

ROOT = Path(__file__).resolve().parent.parent
UPWORK = ROOT / "scenarios" / "upwork"
FLOWS = ("funded", "released", "bonus", "refunded", "fees")

BEATEN = """\
scenario: {title}
policy: {policy}
contracts:
  - id: {cid}
    client: acme
    freelancer: ana
    milestones:
      - {{id: {mid}, amount: 100.00}}
    script:
      - {{at: 0d, client: offer}}
      - {{at: 0d, client: fund, milestone: {mid}}}
      - {{at: 0d, freelancer: accept_offer}}
      - {{at: 1d, freelancer: submit, milestone: {mid}}}
      - {{at: 2d, client: approve, milestone: {mid}}}
"""


def _beaten(write, title: str = "approved before the window ends", policy: str = "upwork", **ids) -> Path:
    cid, mid = ids.get("cid", "c1"), ids.get("mid", "m1")
    return write("beaten.yaml", BEATEN.format(title=title, policy=policy, cid=cid, mid=mid))


# ------------------------------------------------------------------------------ 1. the end of a run


def test_a_beaten_timer_does_not_stretch_the_run(write) -> None:
    result = sim.run(_beaten(write))
    rt = result.runs[0]
    assert rt.end == 2.0  # the approval, not the stale review timer at 15d
    assert result.kpis["escrow_float_avg"]["mean"] == pytest.approx(100.00)
    assert rt.balances["time"].max() == 2.0
    for name in ("balances", "flows"):
        fig = getattr(result.plot, name)()
        right = max(ax.get_xlim()[1] for ax in fig.axes)
        assert right == pytest.approx(2.0 * 1.03), name  # the x range ends at 2d (plus 3% room)


def test_a_live_timer_still_ends_the_run_when_it_fires(write) -> None:
    path = write(
        "silent.yaml",
        BEATEN.format(title="silent", policy="upwork", cid="c1", mid="m1").replace(
            "      - {at: 2d, client: approve, milestone: m1}\n", ""
        ),
    )
    result = sim.run(path)
    assert result.runs[0].end == 15.0  # submitted at 1d + the 14-day window: auto_approve
    assert list(result.events["action"])[-1] == "auto_approve"


def test_without_an_event_log_snapshots_stop_at_the_last_event() -> None:
    from sim.engine.simulation import Simulation
    from sim.inputs.scenario import load_scenario

    scenario = load_scenario(UPWORK / "approve_within_window.yaml")
    s = Simulation(scenario.policy, keep_events=False, balance_every=1.0)
    for spec in scenario.contracts:
        s.add_contract(spec)
        s.script(spec)
    end = s.run()
    assert end == 12.0  # approve at 12d; the review timer (19d) was beaten
    times = [row[0] for row in s.rec.balances]
    assert times[-1] == 12.0 and max(times) == 12.0
    assert s.rec.escrow_area / end == pytest.approx(50000 * 12 / 12)


# ------------------------------------------------------------------------------ 2. milestones add up


def _assert_adds_up(result: sim.Result) -> None:
    ms = result.milestones
    for rt in result.runs:
        rows = ms[ms["replication"] == rt.replication] if "replication" in ms.columns else ms
        for flow in FLOWS:
            assert int(rows[flow].sum()) == rt.totals[flow], flow


@pytest.mark.parametrize(
    "name",
    [
        "partial_release_remainder_refunded",
        "refund_disputed_and_resolved",
        "end_contract_then_refund",
        "partial_release_credit_funds_next",
    ],
)
def test_milestones_table_adds_up_to_the_ledger(name: str) -> None:
    result = sim.run(UPWORK / f"{name}.yaml")
    _assert_adds_up(result)


def test_contract_credit_refunded_has_its_own_row() -> None:
    result = sim.run(UPWORK / "partial_release_remainder_refunded.yaml")
    ms = result.milestones
    credit = ms[ms["milestone"] == "(credit)"]
    assert len(credit) == 1
    row = credit.iloc[0]
    assert (row["contract"], row["state"], row["outcome"]) == ("c1", "credit", "credit")
    assert row["refunded"] == 20000 and row["released"] == 0 and row["amount"] == 0
    assert result.kpis["milestones"]["mean"] == 2  # the credit row is not a milestone


def test_credit_released_in_a_dispute_is_on_the_credit_row(write) -> None:
    path = write(
        "dispute_credit.yaml",
        """\
scenario: credit released in a dispute
policy: upwork
contracts:
  - id: c1
    client: acme
    freelancer: ana
    milestones:
      - {id: m1, amount: 500.00}
      - {id: m2, amount: 300.00}
    script:
      - {at: 0d, client: offer}
      - {at: 0d, client: fund, milestone: m1}
      - {at: 0d, freelancer: accept_offer}
      - {at: 1d, freelancer: submit, milestone: m1}
      - {at: 2d, client: approve, milestone: m1, amount: 200.00}
      - {at: 3d, client: request_refund}
      - {at: 4d, freelancer: dispute}
      - {at: 5d, platform: resolve_dispute, release: 100.00, refund: 200.00}
""",
    )
    result = sim.run(path)
    _assert_adds_up(result)
    credit = result.milestones.set_index("milestone").loc["(credit)"]
    assert (credit["released"], credit["refunded"]) == (10000, 20000)


def test_population_milestones_add_up_to_the_ledger(write) -> None:
    path = write(
        "pop.yaml",
        """\
scenario: partial releases, refunds and disputes
policy: upwork_fees
seed: 3
replications: 2
until: 60d
population:
  arrivals: {rate: 4/d}
  milestones:
    count: {poisson: {mean: 2}, minimum: 1}
    amount: {lognormal: {median: 250, sigma: 0.9}}
  client:
    withdraw: {probability: 0.05, delay: {exponential: {mean: 1d}}}
    review:
      delay: {exponential: {mean: 5d}}
      decision: {approve: 0.5, request_changes: 0.1, partial: 0.15, bonus: 0.1, refund: 0.15}
  freelancer:
    accept: {probability: 0.9, delay: {exponential: {mean: 1d}}}
    refund_response: {approve: 0.3, dispute: 0.5, silent: 0.2, delay: {exponential: {mean: 2d}}}
  platform:
    dispute_agents: 2
    dispute_outcome: {release: 0.3, refund: 0.3, split: 0.4}
""",
    )
    result = sim.run(path, workers=1)
    ms = result.milestones
    assert (ms["milestone"] == "(credit)").any()  # the case the rule is for did happen
    _assert_adds_up(result)


# ------------------------------------------------------------------------------ 3. outcomes


OUTCOMES_SCRIPT = """\
scenario: open, cancelled and never funded
policy: upwork_fees
contracts:
  - {id: declined, client: k1, freelancer: f1, milestones: [{id: m1, amount: 50}, {id: m2, amount: 60}],
     script: [{at: 0d, client: offer}, {at: 1d, freelancer: decline_offer}]}
  - {id: withdrawn, client: k2, freelancer: f2, milestones: [{id: m1, amount: 50}],
     script: [{at: 0d, client: offer}, {at: 1d, client: withdraw_offer}]}
  - {id: expired, client: k3, freelancer: f3, milestones: [{id: m1, amount: 50}],
     script: [{at: 0d, client: offer}]}
  - {id: ended, client: k4, freelancer: f4, milestones: [{id: m1, amount: 50}, {id: m2, amount: 60}],
     script: [{at: 0d, client: offer}, {at: 0d, client: fund, milestone: m1},
              {at: 0d, freelancer: accept_offer}, {at: 1d, client: approve, milestone: m1},
              {at: 2d, client: end_contract}]}
  - {id: draft, client: k5, freelancer: f5, milestones: [{id: m1, amount: 50}], script: []}
  - {id: working, client: k6, freelancer: f6, milestones: [{id: m1, amount: 50}, {id: m2, amount: 60}],
     script: [{at: 0d, client: offer}, {at: 0d, client: fund, milestone: m1},
              {at: 0d, freelancer: accept_offer}, {at: 40d, freelancer: submit, milestone: m1}]}
"""


def test_outcomes_tell_in_flight_from_cancelled_and_never_funded(write) -> None:
    result = sim.run(write("outcomes.yaml", OUTCOMES_SCRIPT))
    ms = result.milestones
    got = {(r.contract, r.milestone): r.outcome for r in ms.itertuples()}
    assert got == {
        ("declined", "m1"): "cancelled",
        ("declined", "m2"): "cancelled",
        ("withdrawn", "m1"): "cancelled",
        ("expired", "m1"): "cancelled",  # the 30-day offer expiry of upwork_fees
        ("ended", "m1"): "approved",
        ("ended", "m2"): "never_funded",
        ("draft", "m1"): "never_funded",
        ("working", "m1"): "auto_approved",  # submitted at 40d, window 14d: released at 54d
        ("working", "m2"): "open",  # planned in an active contract: could still be funded
    }
    fig = result.plot.outcomes()
    title = fig.get_supxlabel()
    assert "4 cancelled (offer declined, withdrawn or expired)" in title
    assert "2 never funded" in title and "1 still open" in title


def test_in_flight_work_at_the_horizon_is_open(write) -> None:
    text = OUTCOMES_SCRIPT.replace("policy: upwork_fees\n", "policy: upwork_fees\nuntil: 45d\n")
    ms = sim.run(write("outcomes.yaml", text)).milestones
    working = ms[ms["contract"] == "working"].set_index("milestone")["outcome"]
    assert working.to_dict() == {"m1": "open", "m2": "open"}  # in review at 45d


def test_no_planned_milestone_of_a_declined_contract_is_open(write) -> None:
    path = write(
        "declines.yaml",
        """\
scenario: many declines
policy: upwork
seed: 2
until: 30d
population:
  arrivals: {rate: 5/d}
  milestones: {count: 3, amount: 100}
  client:
    withdraw: {probability: 0.2, delay: {exponential: {mean: 1d}}}
  freelancer:
    accept: {probability: 0.6, delay: {exponential: {mean: 1d}}}
""",
    )
    result = sim.run(path, workers=1)
    ms = result.milestones
    final = result.events.groupby("contract")["contract_state"].last()
    ms = ms.assign(contract_state=ms["contract"].map(final))
    gone = ms[ms["contract_state"].isin(("declined", "withdrawn"))]
    assert len(gone) > 30
    # funded ones were refunded with the offer; the planned rest is cancelled, none is open
    assert gone.loc[gone["funded_at"].isna(), "outcome"].eq("cancelled").all()
    assert gone.loc[gone["funded_at"].notna(), "outcome"].eq("refunded").all()
    assert not ms.loc[ms["outcome"] == "open", "contract_state"].isin(("declined", "withdrawn")).any()
    assert result.kpis["milestones"]["mean"] == len(ms)


# ------------------------------------------------------------------------------ 4. exact CSV times


def test_csv_times_read_back_to_the_engine_tick(write, tmp_path: Path) -> None:
    path = write(
        "times.yaml",
        """\
scenario: sampled times
policy: upwork
seed: 9
until: 20d
population:
  arrivals: {rate: 3/d}
  milestones: {amount: 100}
""",
    )
    result = sim.run(path, workers=1)
    out = tmp_path / "events.csv"
    write_csv(result.events, out)
    with out.open(encoding="utf-8") as fh:
        written = [row["time"] for row in csv.DictReader(fh)]
    engine = list(result.events["time"])
    assert len(written) == len(engine) > 100
    off_grid_at_6 = 0
    for text, t in zip(written, engine, strict=True):
        ticks = float(text) * TICKS_PER_DAY
        assert abs(ticks - round(ticks)) < 0.05, text  # 9 decimals: within 0.0432 of a tick
        assert round(ticks) == round(t * TICKS_PER_DAY), text
        off_grid_at_6 += round(float(f"{t:.6f}") * TICKS_PER_DAY) != round(t * TICKS_PER_DAY)
    assert off_grid_at_6 > 0  # the case that 6 decimals got wrong is in the data


# ------------------------------------------------------------------------------ 5. capped fees


def test_a_fixed_fee_above_the_release_is_capped_and_says_so(write) -> None:
    write(
        "flat_fee.yaml",
        """\
policy: flat_fee
title: a flat 10.00 fee on every release
extends: upwork
fees:
  - {name: flat, payer: freelancer, on: release, fixed: 10.00}
""",
    )
    path = write(
        "capped.yaml",
        """\
scenario: a fee larger than the release
policy: flat_fee.yaml
contracts:
  - id: c1
    client: acme
    freelancer: ana
    milestones:
      - {id: m1, amount: 6.00}
    script:
      - {at: 0d, client: offer}
      - {at: 0d, client: fund, milestone: m1}
      - {at: 0d, freelancer: accept_offer}
      - {at: 1d, client: approve, milestone: m1}
""",
    )
    result = sim.run(path)
    row = result.events[result.events["action"] == "approve"].iloc[0]
    assert row["amount"] == 600
    assert (
        "fee capped at the release: the freelancer fee of 10.00 USD is more than the 6.00 USD"
        in (row["message"])
    )
    assert result.totals["fees"] == 600


# ------------------------------------------------------------------------------ 7. literal chart text


def test_charts_show_dollar_signs_and_backslashes_literally(write, tmp_path: Path) -> None:
    title = r"$5^^2$ \frac"
    result = sim.run(_beaten(write, title=title, cid="$c1", mid="m$1"))
    names = plots.applicable(result)
    assert {"balances", "flows", "timeline", "time_to_payment", "outcomes", "sankey"} <= set(names)
    for name in names:
        fig = plots.CHART_FUNCTIONS[name](result)
        FigureCanvasAgg(fig)
        fig.savefig(tmp_path / f"{name}.png")  # mathtext would raise on "$5^^2$"
        texts = [t for t in fig.findobj(Text) if t.get_text()]
        assert all(not t.get_parse_math() for t in texts), name
        if name == "timeline":
            shown = [t.get_text() for t in texts]
            assert f"Timeline: {title}" in shown
            assert "contract $c1" in shown and any(s.startswith("m$1 ") for s in shown)


# ------------------------------------------------------------------------------ 8. truthful event rows


def test_a_funding_shows_what_the_client_paid_with_fees(write) -> None:
    result = sim.run(_beaten(write, policy="upwork_fees"))
    fund = result.events[result.events["action"] == "fund"].iloc[0]
    assert fund["amount"] == 10000  # the milestone's amount, as before
    assert "client paid 105.00 USD (100.00 USD + 5.00 USD fees)" in fund["message"]
    fig = result.plot.timeline()
    assert "fund (paid 105.00)" in [t.get_text() for t in fig.findobj(Text)]
    from sim.viz.report_text import timeline

    assert "client paid 105.00 USD" in timeline(result)


def test_only_rows_that_move_money_carry_an_amount() -> None:
    result = sim.run(UPWORK / "partial_release_remainder_refunded.yaml")
    ev = result.events
    silent = ("offer", "accept_offer", "submit", "request_refund", "request_changes", "end_contract")
    accepted = ev[ev["outcome"] == "accepted"]
    assert set(accepted["action"]) & set(silent) == {"offer", "accept_offer", "submit", "request_refund"}
    assert (accepted.loc[accepted["action"].isin(silent), "amount"] == 0).all()
    offer = ev[ev["action"] == "offer"].iloc[0]
    assert offer["amount"] == 0 and "800.00 USD in total" in offer["message"]
    request = ev[ev["action"] == "request_refund"].iloc[0]
    assert request["amount"] == 0 and "refund of 200.00 USD requested" in request["message"]
    approve = ev[ev["action"] == "approve"].iloc[0]
    assert approve["amount"] == 30000  # money-moving rows keep their amount


def test_a_deleted_milestone_says_deleted() -> None:
    result = sim.run(UPWORK / "active_locked.yaml")
    ev = result.events
    deleted = ev[(ev["action"] == "delete_milestone") & (ev["outcome"] == "accepted")]
    assert len(deleted) >= 1
    assert set(deleted["state"]) == {"deleted"}
    ms = result.milestones
    for mid in deleted["milestone"]:
        row = ms[(ms["milestone"] == mid)].iloc[0]
        assert (row["state"], row["outcome"]) == ("deleted", "deleted")
