"""Population scenarios against closed forms (Ciw's spirit), common random numbers, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

import sim

BASE = """
scenario: {title}
policy: upwork
seed: {seed}
replications: {reps}
until: {until}
population:
{population}
"""


def _scenario(write, name: str, population: str, *, until: str = "30d", reps: int = 1, seed: int = 1):
    text = BASE.format(title=name, seed=seed, reps=reps, until=until, population=population)
    return write(f"{name}.yaml", text)


def _kpi(result: sim.Result, name: str) -> float:
    return result.kpis[name]["mean"]


def test_review_delay_racing_the_window_matches_closed_form(write):
    """Exponential review delay (mean m) against a window w: auto share exp(-w/m), TTP m(1-exp(-w/m))."""
    m, w, n = 10.0, 14.0, 20_000
    path = _scenario(
        write,
        "race",
        f"""
  arrivals: {{count: {n}}}
  milestones: {{count: 1, amount: 100}}
  client:
    review: {{delay: {{exponential: {{mean: {m}d}}}}, decision: {{approve: 1}}}}
""",
        until="400d",
    )
    result = sim.run(path, events="none")
    auto = _kpi(result, "auto_approved_share")
    expected = math.exp(-w / m)
    se = math.sqrt(expected * (1 - expected) / n)
    assert abs(auto - expected) < 4 * se, (auto, expected)
    ttp = _kpi(result, "time_to_payment_days_mean")
    expected_ttp = m * (1 - math.exp(-w / m))
    assert abs(ttp - expected_ttp) < 0.1, (ttp, expected_ttp)
    assert _kpi(result, "approved_share") == pytest.approx(1 - auto)


def test_shorter_window_raises_auto_approval_with_common_random_numbers(write):
    """The same seed under 14d and 7d windows: same contracts, more auto-approvals under 7d."""
    pop = """
  arrivals: {count: 3000, over: 30d}
  milestones: {count: {poisson: {mean: 2}, minimum: 1}, amount: {lognormal: {median: 250, sigma: 0.9}}}
  client:
    review: {delay: {exponential: {mean: 6d}}, decision: {approve: 1}}
  freelancer:
    work: {gamma: {mean: 5d, cv: 0.5}}
"""
    path = _scenario(write, "crn", pop, until="400d")
    a = sim.run(path, events="none")
    b = sim.run(path, overrides={"review.window": "7d"}, events="none")
    cols = ["contract", "milestone", "amount"]
    assert a.milestones[cols].equals(b.milestones[cols])
    assert _kpi(b, "auto_approved_share") > _kpi(a, "auto_approved_share") + 0.1
    assert math.exp(-7 / 6) == pytest.approx(_kpi(b, "auto_approved_share"), abs=0.03)


def test_escrow_float_obeys_littles_law(write):
    """Poisson arrivals of money held for a fixed time: mean escrow = rate x amount x holding time."""
    lam, amount, work, review, horizon = 5.0, 200.0, 4.0, 3.0, 200.0
    path = _scenario(
        write,
        "little",
        f"""
  arrivals: {{rate: {lam}/d}}
  milestones: {{count: 1, amount: {amount}}}
  client:
    review: {{delay: {review}d, decision: {{approve: 1}}}}
  freelancer:
    work: {work}d
""",
        until=f"{horizon}d",
        reps=8,
    )
    result = sim.run(path, events="none")
    hold = work + review
    expected = lam * amount * hold * (1 - hold / (2 * horizon))  # edge: the first contracts ramp up
    got = result.kpis["escrow_float_avg"]
    assert got["ci_low"] <= expected <= got["ci_high"] or abs(got["mean"] - expected) < 0.02 * expected, (
        got,
        expected,
    )


def _erlang_c_wait(lam: float, mu: float, c: int) -> float:
    a = lam / mu
    rho = a / c
    top = a**c / math.factorial(c) / (1 - rho)
    p_wait = top / (sum(a**k / math.factorial(k) for k in range(c)) + top)
    return p_wait / (c * mu - lam)


def test_dispute_team_matches_erlang_c(write):
    """Poisson disputes and exponential handling by c agents: mean wait = Erlang C's W_q."""
    lam, mean_handling, c = 2.0, 1.2, 3
    path = _scenario(
        write,
        "mmc",
        f"""
  arrivals: {{rate: {lam}/d}}
  milestones: {{count: 1, amount: 100}}
  client:
    review: {{delay: 1d, decision: {{refund: 1}}}}
  freelancer:
    refund_response: {{dispute: 1, delay: 0d}}
  platform:
    dispute_agents: {c}
    dispute_handling: {{exponential: {{mean: {mean_handling}d}}}}
    dispute_outcome: {{split: 1}}
""",
        until="1500d",
        reps=4,
    )
    result = sim.run(path, events="none")
    expected = _erlang_c_wait(lam, 1 / mean_handling, c)
    got = _kpi(result, "dispute_wait_days_mean")
    assert abs(got - expected) < 0.15 * expected, (got, expected)
    assert _kpi(result, "disputed_share") > 0.99


def test_replications_differ_and_same_seed_repeats(write):
    pop = """
  arrivals: {rate: 10/d}
  milestones: {count: 1, amount: {uniform: {low: 50, high: 500}}}
  client:
    review: {delay: {exponential: {mean: 5d}}}
"""
    path = _scenario(write, "reps", pop, reps=3)
    a = sim.run(path, events="none")
    b = sim.run(path, events="none")
    per_rep = a.milestones.groupby("replication")["amount"].sum()
    assert per_rep.nunique() == 3
    assert a.milestones.equals(b.milestones)
    c = sim.run(path, seed=2, events="none")
    assert not a.milestones.equals(c.milestones)


def test_every_distribution_samples_in_its_units(write, tmp_path):
    (tmp_path / "amounts.csv").write_text("amount,days\n100.00,1\n250.50,2\n40,3\n", encoding="utf-8")
    pop = """
  arrivals: {count: 400}
  milestones:
    count: {poisson: {mean: 2}, minimum: 1, maximum: 3}
    amount: {empirical: {file: amounts.csv, column: amount}}
  client:
    fund_delay: {triangular: {low: 0d, mode: 6h, high: 1d}}
    review: {delay: {empirical: {file: amounts.csv, column: days}}, decision: {approve: 1}}
  freelancer:
    accept: {probability: 1, delay: {uniform: {low: 1h, high: 2h}}}
    work: {gamma: {mean: 2d, cv: 0.5}}
"""
    path = _scenario(write, "dists", pop, until="200d")
    result = sim.run(path)
    ms = result.milestones
    assert set(ms["amount"]) <= {10000, 25050, 4000}
    assert ms.groupby("contract").size().between(1, 3).all()
    funded = result.events[result.events["action"] == "fund"]
    assert (funded["time"] >= 0).all()
    ttp = (ms["closed_at"] - ms["first_submitted_at"]).dropna().round(9)
    assert set(ttp) <= {1.0, 2.0, 3.0}


def test_money_is_conserved_in_a_population_with_everything(write):
    pop = """
  arrivals: {rate: 30/d}
  milestones: {count: {poisson: {mean: 2}, minimum: 1}, amount: {lognormal: {median: 200, sigma: 1}}}
  client:
    fund_delay: {exponential: {mean: 1d}}
    withdraw: {probability: 0.1, delay: {exponential: {mean: 1d}}}
    review:
      delay: {exponential: {mean: 8d}}
      decision: {approve: 0.5, request_changes: 0.2, partial: 0.1, bonus: 0.1, refund: 0.1}
  freelancer:
    accept: {probability: 0.9, delay: {exponential: {mean: 1d}}}
    work: {exponential: {mean: 3d}}
    rework: {exponential: {mean: 1d}}
    refund_response: {approve: 0.3, dispute: 0.4, silent: 0.3, delay: {exponential: {mean: 5d}}}
  platform:
    dispute_agents: 2
    dispute_handling: {exponential: {mean: 3d}}
    dispute_outcome: {release: 0.3, refund: 0.3, split: 0.4}
"""
    path = _scenario(write, "all", pop, until="60d")
    result = sim.run(
        path, overrides={"fees": [{"name": "svc", "payer": "freelancer", "on": "release", "percent": 10}]}
    )
    t = result.totals
    escrow_left = int(result.balances["escrow"].iloc[-1])
    assert t["funded"] - t["released"] - t["refunded"] == escrow_left
    outcomes = set(result.milestones["outcome"])
    assert {"approved", "auto_approved", "refunded", "resolved"} <= outcomes
    assert t["fees"] > 0
    ms = result.milestones
    closed = ms[ms["state"].isin(["released", "refunded", "resolved"])]
    assert (closed["released"] + closed["refunded"] <= closed["amount"]).all()


@pytest.mark.parametrize(
    ("snippet", "line", "needle"),
    [
        ("  arrivals: {rate: 40}\n", 8, "rate with its time unit"),
        (
            "  arrivals: {rate: 4/d}\n  client: {review: {decision: {approve: 0.7, request_changes: 0.2}}}\n",
            9,
            "add up to 0.9",
        ),
        (
            "  arrivals: {rate: 4/d}\n  freelancer: {work: {exponential: {mean: -2d}}}\n",
            9,
            "zero or positive",
        ),
        (
            "  arrivals: {rate: 4/d}\n  freelancer: {work: {weibull: {shape: 2}}}\n",
            9,
            "unknown distribution 'weibull'",
        ),
        ("  arrivals: {rate: 4/d}\n  freelancer: {work: {gamma: {mean: 2d, cv: 0}}}\n", 9, "cv > 0"),
        (
            "  arrivals: {rate: 4/d}\n  milestones: {amount: {uniform: {low: 10, high: 5}}}\n",
            9,
            "low <= high",
        ),
        (
            "  arrivals: {rate: 4/d}\n  freelancer: {work: {exponential: {mean: 2d}, scale: 1}}\n",
            9,
            "a distribution is one of",
        ),
        ("  arrivals: {rate: 4/d}\n  freelancer: {accept: {probability: 1.5}}\n", 9, "from 0 to 1"),
        ("  arrivals: {rate: 4/d}\n  platform: {dispute_agents: 0}\n", 9, ">= 1"),
        ("  arivals: {rate: 4/d}\n", 8, "did you mean 'arrivals'"),
    ],
)
def test_bad_population_input_exits_2_with_position(write, capsys, snippet, line, needle):
    from sim.app.cli import main

    head = "scenario: bad\npolicy: upwork\nseed: 1\nreplications: 1\nuntil: 10d\n\npopulation:\n"
    text = head + snippet + "  milestones: {amount: 100}\n" * ("milestones" not in snippet)
    path = write("bad.yaml", text)
    code = main(["run", str(path), "--out", str(path.parent / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"bad.yaml:{line}:" in err, err
    assert needle in err, err
    assert "Traceback" not in err
    assert not (path.parent / "out").exists()


@pytest.mark.parametrize(
    ("csv_text", "needle"),
    [
        ("", "is empty"),
        ("amount\n", "has no values"),
        ("other\n5\n", "has no column 'amount'"),
        ("amount\n12.345\n", "line 2, column amount"),
        ("amount\nabc\n", "cannot read 'abc'"),
    ],
)
def test_bad_empirical_csv(write, capsys, csv_text, needle):
    from sim.app.cli import main

    write("data.csv", csv_text)
    text = (
        "scenario: bad\npolicy: upwork\nuntil: 10d\npopulation:\n  arrivals: {count: 3}\n"
        "  milestones: {amount: {empirical: {file: data.csv, column: amount}}}\n"
    )
    path = write("bad.yaml", text)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml:6:" in err and needle in err, err


def test_missing_empirical_file(write, capsys):
    from sim.app.cli import main

    text = (
        "scenario: bad\npolicy: upwork\nuntil: 10d\npopulation:\n  arrivals: {count: 3}\n"
        "  milestones: {amount: {empirical: {file: nowhere.csv, column: amount}}}\n"
    )
    path = write("bad.yaml", text)
    assert main(["validate", str(path)]) == 2
    assert "cannot read nowhere.csv" in capsys.readouterr().err


def test_arrival_stream_is_poisson(write):
    from sim.behaviour.population import arrival_times
    from sim.inputs.scenario import load_scenario

    path = _scenario(write, "arr", "  arrivals: {rate: 12/d}\n  milestones: {amount: 10}\n", until="1000d")
    sc = load_scenario(path)
    times = arrival_times(sc.population, 1000.0, seed=3, replication=0)
    assert abs(len(times) - 12000) < 4 * math.sqrt(12000)
    gaps = np.diff(times)
    assert gaps.mean() == pytest.approx(1 / 12, rel=0.05)
    assert np.all(times <= 1000.0)


def test_replications_in_worker_processes_give_the_same_tables(write):
    pop = """
  arrivals: {count: 200, over: 10d}
  milestones: {count: {poisson: {mean: 2}, minimum: 1}, amount: {uniform: {low: 50, high: 500}}}
  client:
    review: {delay: {exponential: {mean: 5d}}, decision: {approve: 0.9, refund: 0.1}}
  freelancer:
    refund_response: {approve: 0.5, dispute: 0.5, delay: 1d}
"""
    path = _scenario(write, "par", pop, reps=3, until="100d")
    serial = sim.run(path, workers=1)
    parallel = sim.run(path, workers=2)
    for name in ("events", "ledger", "milestones", "balances"):
        assert getattr(serial, name).equals(getattr(parallel, name)), name
    assert serial.kpis == parallel.kpis
