"""Inputs at the edge of the representable (issue 8): exit 2 with file:line:column, never a traceback.

Huge durations, overflowing distribution parameters, amounts beyond the cap (written or sampled),
free text that is not text, party ids that alias accounts, error cascades and script steps after
``until``. Each case goes through the CLI as a user would and checks that nothing is written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sim.app.cli import main
from sim.behaviour.population import sample_contract
from sim.core.units import MAX_DAYS, MAX_MINOR
from sim.core.yamlio import InputError
from sim.inputs.distributions import MAX_CV, MAX_POISSON_MEAN, MAX_SIGMA
from sim.inputs.population_spec import MAX_CONTRACTS, MAX_MILESTONES_PER_CONTRACT
from sim.inputs.scenario import load_scenario

SCRIPTED = """\
scenario: Bounds base
policy: upwork
until: 30d
contracts:
  - id: c1
    client: acme
    freelancer: ana
    milestones:
      - {id: m1, amount: 500.00, due: 10d}
    script:
      - {at: 0d, client: offer}
      - {at: 0d, client: fund, milestone: m1}
      - {at: 1d, freelancer: accept_offer}
      - {at: 5d, freelancer: submit, milestone: m1}
expect:
  - at: 25d
    milestones: {c1/m1: released}
"""

POPULATION = """\
scenario: Bounds population
policy: upwork
seed: 1
until: 30d
population:
  arrivals: {count: 5, over: 10d}
  milestones:
    count: {poisson: {mean: 2}, minimum: 1}
    amount: {lognormal: {median: 250, sigma: 0.9}}
  client:
    review: {delay: {exponential: {mean: 4d}}}
"""


def _edit(base: str, old: str, new: str) -> str:
    assert base.count(old) == 1, old
    return base.replace(old, new)


def _line_of(text: str, fragment: str) -> int:
    [n] = [i for i, line in enumerate(text.splitlines(), start=1) if fragment in line]
    return n


def _run(tmp_path: Path, capsys: pytest.CaptureFixture, text: str, *extra: str) -> tuple[Path, int, str]:
    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    code = main(["run", str(path), "--out", str(tmp_path / "out"), "--no-charts", *extra])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert "internal error" not in err
    return path, code, err


def _assert_refused(tmp_path: Path, code: int, err: str, where: str, *says: str) -> None:
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.startswith(f"error: {where}")]
    assert lines, f"no error at {where}:\n{err}"
    for fragment in says:
        assert any(fragment in line for line in lines), f"{fragment!r} not in:\n{err}"
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------ 1. huge durations


@pytest.mark.parametrize(
    ("old", "new", "fragment", "key"),
    [
        ("{at: 5d, freelancer: submit", "{at: 1e308, freelancer: submit", "at: 1e308", "script[3].at"),
        ("until: 30d", "until: 1e308", "until: 1e308", "until"),
        ("until: 30d", "until: 365251d", "until: 365251d", "until"),
        (
            "      - {id: m1, amount: 500.00, due: 10d}",
            "      - {id: m1, amount: 500.00, due: 1e308}",
            "due:",
            "due",
        ),
        (
            "policy: upwork\n",
            "policy: upwork\npolicy_overrides: {review.window: 1e308}\n",
            "review.window",
            "review.window",
        ),
    ],
)
def test_huge_duration_in_a_file(tmp_path: Path, capsys, old: str, new: str, fragment: str, key: str):
    text = _edit(SCRIPTED, old, new)
    path, code, err = _run(tmp_path, capsys, text)
    _assert_refused(
        tmp_path, code, err, f"{path}:{_line_of(text, fragment)}:", key, "longer than the longest supported"
    )
    assert "1,000 years = 365250d" in err


def test_huge_duration_of_arrivals_over(tmp_path: Path, capsys):
    text = _edit(POPULATION, "over: 10d", "over: 1e308")
    path, code, err = _run(tmp_path, capsys, text)
    _assert_refused(tmp_path, code, err, f"{path}:6:", "population.arrivals.over", "1,000 years")


def test_huge_duration_on_the_command_line(tmp_path: Path, capsys):
    _path, code, err = _run(tmp_path, capsys, SCRIPTED, "--set", "review.window=1e308")
    _assert_refused(tmp_path, code, err, "<command line", "review.window", "longest supported (1,000 years")


@pytest.mark.parametrize("factor", ["review.window=1e308", "until=1e308"])
def test_huge_duration_in_a_sweep_grid(tmp_path: Path, capsys, factor: str):
    path = tmp_path / "s.yaml"
    path.write_text(POPULATION, encoding="utf-8")
    code = main(
        ["sweep", str(path), "--grid", f"{factor},10d", "--out", str(tmp_path / "out"), "--inprocess"]
    )
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert code == 2, err
    assert "longest supported (1,000 years" in err
    assert factor.split("=")[0] in err
    assert not (tmp_path / "out").exists()


def test_the_longest_duration_is_accepted():
    from sim.core.units import parse_duration

    assert parse_duration(f"{MAX_DAYS:.0f}d") == 365_250.0
    assert parse_duration("1000w") == 7000.0


# ------------------------------------------------------------------------------ 2. distribution parameters


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        (
            "amount: {lognormal: {median: 250, sigma: 0.9}}",
            "amount: {lognormal: {median: 5, sigma: 1e300}}",
            f"lognormal sigma must be at most {MAX_SIGMA:g}",
        ),
        (
            "count: {poisson: {mean: 2}, minimum: 1}",
            "count: {poisson: {mean: 1e300}, minimum: 1}",
            f"poisson mean must be at most {MAX_POISSON_MEAN:,.0f}",
        ),
        (
            "delay: {exponential: {mean: 4d}}",
            "delay: {gamma: {mean: 4d, cv: 1e10}}",
            f"gamma cv must be at most {MAX_CV:g}",
        ),
        (
            "count: {poisson: {mean: 2}, minimum: 1}",
            "count: {poisson: {mean: 5000}, minimum: 1}",
            f"a contract has at most {MAX_MILESTONES_PER_CONTRACT:,}",
        ),
        (
            "count: {poisson: {mean: 2}, minimum: 1}",
            "count: {poisson: {mean: 2}, maximum: 100000}",
            f"more than the most supported ({MAX_MILESTONES_PER_CONTRACT:,})",
        ),
    ],
)
def test_overflowing_distribution_parameters(tmp_path: Path, capsys, old: str, new: str, says: str):
    text = _edit(POPULATION, old, new)
    path, code, err = _run(tmp_path, capsys, text)
    _assert_refused(tmp_path, code, err, f"{path}:{_line_of(text, new)}:", says)


@pytest.mark.parametrize(
    ("arrivals", "says"),
    [
        ("{count: 100000000000000000000}", f"more than the most supported ({MAX_CONTRACTS:,})"),
        ("{count: 2000000000}", f"more than the most supported ({MAX_CONTRACTS:,})"),
        ("{rate: 10000000000/d}", "higher than the highest supported (10,000,000/d)"),
        ("{rate: 400000/d}", f"expects 1.2e+07 contracts; a run has at most {MAX_CONTRACTS:,}"),
    ],
)
def test_too_many_contracts(tmp_path: Path, capsys, arrivals: str, says: str):
    text = _edit(POPULATION, "arrivals: {count: 5, over: 10d}", f"arrivals: {arrivals}")
    path, code, err = _run(tmp_path, capsys, text)
    _assert_refused(tmp_path, code, err, f"{path}:6:", "population.arrivals", says)


def test_rate_times_until_from_a_sweep_grid(tmp_path: Path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(_edit(POPULATION, "arrivals: {count: 5, over: 10d}", "arrivals: {rate: 1000/d}"), "utf-8")
    code = main(
        ["sweep", str(path), "--grid", "until=20000d,10d", "--out", str(tmp_path / "out"), "--inprocess"]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"expects 2e+07 contracts; a run has at most {MAX_CONTRACTS:,}" in err
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------ 3. money


def test_amount_with_a_huge_exponent(tmp_path: Path, capsys):
    text = _edit(SCRIPTED, "amount: 500.00", 'amount: "1e999999"')
    path, code, err = _run(tmp_path, capsys, text)
    _assert_refused(tmp_path, code, err, f"{path}:9:", "amount", "larger than the largest supported")


def test_amount_with_more_digits_than_decimal_precision_is_not_rounded(tmp_path: Path, capsys):
    text = _edit(SCRIPTED, "amount: 500.00", 'amount: "500.000000000000000000000000000001"')
    path, code, err = _run(tmp_path, capsys, text)
    _assert_refused(tmp_path, code, err, f"{path}:9:", "more than 2 decimal places")


def test_amount_distribution_whose_mean_is_above_the_cap(tmp_path: Path, capsys):
    text = _edit(POPULATION, "median: 250, sigma: 0.9", "median: 1000000000000, sigma: 9")
    path, code, err = _run(tmp_path, capsys, text)
    _assert_refused(
        tmp_path,
        code,
        err,
        f"{path}:9:",
        "population.milestones.amount",
        "above the largest supported amount",
    )


def test_sampled_amount_above_the_cap_stops_the_run(tmp_path: Path, capsys):
    # mean 1.2e12 is under the cap (1e13), but the tail reaches above it within a few contracts
    text = _edit(POPULATION, "median: 250, sigma: 0.9", "median: 10000000000, sigma: 3")
    text = _edit(text, "count: 5, over: 10d", "count: 2000, over: 10d")
    path, code, err = _run(tmp_path, capsys, text)
    _assert_refused(
        tmp_path,
        code,
        err,
        f"{path}:9:",
        "population.milestones.amount",
        "lognormal(median=1e+10, sigma=3) gave",
        "above the largest supported amount (10,000,000,000,000)",
    )


def test_sample_contract_raises_an_input_error_with_the_location(tmp_path: Path):
    path = tmp_path / "s.yaml"
    path.write_text(_edit(POPULATION, "median: 250, sigma: 0.9", "median: 10000000000, sigma: 3"), "utf-8")
    pop = load_scenario(path).population
    assert pop is not None
    rng = np.random.default_rng(0)
    with pytest.raises(InputError) as info:
        for i in range(5000):
            for m in sample_contract(pop, i, rng, 2).milestones:
                assert m.amount <= MAX_MINOR
    [problem] = info.value.problems
    assert (problem.file, problem.line, problem.column) == (str(path), 9, 13)
    assert problem.key == "population.milestones.amount"


def test_sampled_milestone_count_above_the_limit(tmp_path: Path, capsys):
    text = _edit(
        POPULATION, "count: {poisson: {mean: 2}, minimum: 1}", "count: {lognormal: {median: 2, sigma: 6}}"
    )
    text = _edit(text, "count: 5, over: 10d", "count: 300, over: 10d")
    path, code, err = _run(tmp_path, capsys, text)
    _assert_refused(
        tmp_path, code, err, f"{path}:8:", "population.milestones.count", f"a contract has at most {1000:,}"
    )


# ------------------------------------------------------------------------------ 4. free text is text


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("scenario: Bounds base", "scenario: Bounds base\ndescription: [a, b]", "description"),
        ("scenario: Bounds base", "scenario: Bounds base\ndescription: {a: 1}", "description"),
        ("scenario: Bounds base", "scenario: [a, b]", "scenario"),
    ],
)
def test_free_text_must_be_text(tmp_path: Path, capsys, old: str, new: str, key: str):
    text = _edit(SCRIPTED, old, new)
    path, code, err = _run(tmp_path, capsys, text)
    line = _line_of(text, f"{key}:")
    _assert_refused(tmp_path, code, err, f"{path}:{line}:", f"{key}:", "is text; got")


def test_free_text_keeps_what_was_written(tmp_path: Path, capsys):
    import json

    path = tmp_path / "s.yaml"
    path.write_text(_edit(SCRIPTED, "scenario: Bounds base", "scenario: 12\ndescription: 1e999"), "utf-8")
    sc = load_scenario(path)
    assert sc.title == "12"
    assert sc.raw["description"] == "1e999"
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--no-charts"]) == 0
    summary = (tmp_path / "out" / "summary.json").read_text(encoding="utf-8")
    assert "Infinity" not in summary
    assert "1e999" in summary
    json.loads(summary)
    capsys.readouterr()


# ------------------------------------------------------------------------------ 7. party ids


@pytest.mark.parametrize(
    ("old", "new", "key", "says"),
    [
        ("freelancer: ana", 'freelancer: "ana:x"', "freelancer", "may not contain ':' or '/'"),
        ("client: acme", 'client: "acme/2"', "client", "may not contain ':' or '/'"),
        ("client: acme", 'client: "  "', "client", "must not be empty"),
        ("freelancer: ana", 'freelancer: ""', "freelancer", "must not be empty"),
        ("id: c1", 'id: ""', "id", "must not be empty"),
    ],
)
def test_party_ids_that_accounts_cannot_hold(tmp_path: Path, capsys, old: str, new: str, key: str, says: str):
    text = _edit(SCRIPTED, old, new)
    path, code, err = _run(tmp_path, capsys, text)
    _assert_refused(tmp_path, code, err, f"{path}:{_line_of(text, new)}:", f"contracts[0].{key}:", says)


# ------------------------------------------------------------------------------ 9. one error per root cause


def _errors(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def test_misspelt_actor_in_a_step_is_one_error(tmp_path: Path, capsys):
    text = _edit(SCRIPTED, "{at: 0d, client: fund", "{at: 0d, clinet: fund")
    path, code, err = _run(tmp_path, capsys, text)
    assert code == 2
    [line] = _errors(err)
    assert line.startswith(f"error: {path}:12:18: contracts[0].script[1].clinet: unknown key 'clinet'")
    assert "did you mean 'client'?" in line


def test_misspelt_party_key_of_a_contract_is_one_error(tmp_path: Path, capsys):
    text = _edit(SCRIPTED, "    client: acme", "    clinet: acme")
    text += '    balances: {"client:acme": 0}\n'
    path, code, err = _run(tmp_path, capsys, text)
    assert code == 2
    [line] = _errors(err)
    assert line.startswith(f"error: {path}:6:5: contracts[0].clinet: unknown key 'clinet'")
    assert "did you mean 'client'?" in line


def test_action_typo_has_a_did_you_mean(tmp_path: Path, capsys):
    text = _edit(SCRIPTED, "freelancer: submit, milestone: m1}", "client: aprove, milestone: m1}")
    path, code, err = _run(tmp_path, capsys, text)
    assert code == 2
    [line] = _errors(err)
    assert line.startswith(
        f"error: {path}:14:26: contracts[0].script[3].client: unknown client action 'aprove'"
    )
    assert "(did you mean 'approve'?)" in line


def test_action_of_another_actor_says_whose_it_is(tmp_path: Path, capsys):
    text = _edit(SCRIPTED, "freelancer: submit, milestone: m1}", "client: submit, milestone: m1}")
    path, code, err = _run(tmp_path, capsys, text)
    assert code == 2
    [line] = _errors(err)
    assert line.startswith(f"error: {path}:14:26: contracts[0].script[3].client:")
    assert "submit is a freelancer action, not a client one (write freelancer: submit)" in line


def test_missing_policy_says_it_is_missing(tmp_path: Path, capsys):
    text = _edit(SCRIPTED, "policy: upwork\n", "")
    path, code, err = _run(tmp_path, capsys, text)
    assert code == 2
    [line] = _errors(err)
    assert line == f"error: {path}:1:1: required key 'policy' is missing: name a pack (e.g. upwork) or a path"


def test_misspelt_policy_key_is_one_error(tmp_path: Path, capsys):
    text = _edit(SCRIPTED, "policy: upwork", "polcy: upwork")
    path, code, err = _run(tmp_path, capsys, text)
    assert code == 2
    [line] = _errors(err)
    assert line.startswith(f"error: {path}:2:1: polcy: unknown key 'polcy' (did you mean 'policy'?)")


# ------------------------------------------------------------------------------ 10. steps after until


def test_steps_after_until_are_warnings_with_their_position(tmp_path: Path):
    path = tmp_path / "s.yaml"
    text = _edit(SCRIPTED, "{at: 5d, freelancer: submit", "{at: 40d, freelancer: submit")
    path.write_text(text, encoding="utf-8")
    sc = load_scenario(path)
    [warning] = sc.warnings
    assert (warning.file, warning.line, warning.column) == (str(path), 14, 14)
    assert warning.key == "contracts[0].script[3].at"
    assert warning.message == "step at 40d is after until (30d) and will not run"


def test_steps_up_to_until_give_no_warning(tmp_path: Path):
    path = tmp_path / "s.yaml"
    path.write_text(_edit(SCRIPTED, "{at: 5d, freelancer: submit", "{at: 30d, freelancer: submit"), "utf-8")
    assert load_scenario(path).warnings == ()


def test_sampled_amount_above_the_cap_in_worker_processes(tmp_path: Path, capsys):
    text = _edit(POPULATION, "median: 250, sigma: 0.9", "median: 10000000000, sigma: 3")
    text = _edit(text, "count: 5, over: 10d", "count: 2000, over: 10d")
    path, code, err = _run(tmp_path, capsys, text, "--replications", "2", "--workers", "2")
    _assert_refused(tmp_path, code, err, f"{path}:9:", "population.milestones.amount", "gave")


def test_input_error_keeps_its_problems_across_processes():
    import pickle

    from sim.core.yamlio import Problem

    exc = InputError([Problem("a.yaml", 3, 4, "bad", "k"), Problem("b.yaml", None, None, "worse")])
    back = pickle.loads(pickle.dumps(exc))
    assert back.problems == exc.problems
    assert str(back) == "a.yaml:3:4: k: bad\nb.yaml: worse"


def test_replications_are_bounded(tmp_path: Path, capsys):
    from sim.inputs.scenario import MAX_REPLICATIONS

    text = _edit(POPULATION, "seed: 1", "seed: 1\nreplications: 1000000000000")
    path, code, err = _run(tmp_path, capsys, text)
    _assert_refused(
        tmp_path, code, err, f"{path}:4:", "replications", f"the most supported is {MAX_REPLICATIONS:,}"
    )


def test_empty_milestone_id(tmp_path: Path, capsys):
    text = _edit(SCRIPTED, "{id: m1, amount", '{id: " ", amount')
    path, code, err = _run(tmp_path, capsys, text)
    _assert_refused(tmp_path, code, err, f"{path}:9:", "milestones[0].id", "must not be empty")


def test_a_large_count_mean_with_a_maximum_is_accepted(tmp_path: Path):
    path = tmp_path / "s.yaml"
    text = _edit(
        POPULATION, "count: {poisson: {mean: 2}, minimum: 1}", "count: {poisson: {mean: 5000}, maximum: 3}"
    )
    path.write_text(text, encoding="utf-8")
    pop = load_scenario(path).population
    assert pop is not None
    spec = sample_contract(pop, 0, np.random.default_rng(0), 2)
    assert len(spec.milestones) == 3
