"""A stage with no on_timeout that the population may leave unanswered could hold escrow forever:
exit 2 at load, under --set policy=, and in compare, with the stage, the party and the share."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import sim
from sim.app.cli import main
from sim.core.yamlio import InputError
from sim.inputs.population_spec import stalling_stages

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"

PACK = """\
policy: stally
title: a refund answer with no timeout
extends: upwork
refund: null
procedures:
  refund_request:
    opened_by: {client: request_refund}
    covers: contract
    state: refund_requested
    stages:
      - name: respond
        party: freelancer
        window: 7d
        answers: {accept: refund, decline: nothing}
"""

POPULATION = """\
scenario: a population that may stay silent
policy: {policy}
seed: 1
until: 20d
population:
  arrivals: {{rate: 2/d}}
  milestones: {{amount: 100}}
  client:
    review: {{delay: {{exponential: {{mean: 2d}}}}, decision: {{approve: 0.8, refund: 0.2}}}}
  freelancer:
    responds: {{accept: 0.5, decline: 0.3, silent: {silent}}}
{extra}"""


def _files(write, silent: float = 0.2, extra: str = "", policy: str = "pack.yaml"):
    write("pack.yaml", PACK)
    decline = round(0.5 - silent, 10)
    text = POPULATION.format(policy=policy, silent=silent, extra=extra).replace(
        "decline: 0.3", f"decline: {decline}"
    )
    return write("pop.yaml", text)


def test_a_silent_share_at_a_stage_without_timeout_is_exit_2_at_the_population(write, capsys):
    path = _files(write)
    code = main(["run", str(path), "--out", str(path.parent / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert "pop.yaml:5:1:" in err, err  # the population block
    assert "stage refund_request.respond of policy stally has no on_timeout" in err
    assert "the freelancer stays silent there with probability 0.2" in err
    assert "population.stages: {refund_request.respond: {accept: 1}}" in err
    assert "Traceback" not in err
    assert not (path.parent / "out").exists()


def test_a_stage_entry_that_keeps_the_silence_is_named_at_its_line(write, capsys):
    extra = "  stages:\n    refund_request.respond: {accept: 0.9, silent: 0.1}\n"
    path = _files(write, extra=extra)
    code = main(["run", str(path), "--out", str(path.parent / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert "pop.yaml:13:5:" in err, err  # the stage entry
    assert "with probability 0.1" in err


def test_a_population_that_always_answers_runs_and_ends_every_request(write):
    path = _files(write, silent=0.0)
    result = sim.run(path, replications=1)
    ms = result.milestones
    assert len(ms) > 10 and (ms["state"] != "refund_requested").all()


def test_the_same_population_under_a_stalling_pack_by_set_is_exit_2(write, capsys):
    path = _files(write, silent=0.2, policy="upwork")
    scenario = sim.load_scenario(path)  # upwork's refund request times out: fine
    assert scenario.policy.policy == "upwork"
    code = main(["run", str(path), "--set", f"policy={path.parent / 'pack.yaml'}", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert "stage refund_request.respond of policy stally has no on_timeout" in err, err


def test_compare_with_a_stalling_pack_is_exit_2_and_writes_nothing(write, capsys):
    path = _files(write, silent=0.2, policy="upwork")
    out = path.parent / "cmp"
    code = main(
        [
            "compare",
            str(path),
            "--policy",
            "upwork",
            "--policy",
            str(path.parent / "pack.yaml"),
            "--out",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "stage refund_request.respond of policy stally has no on_timeout" in err, err
    assert not out.exists()


def test_with_overrides_checks_the_population_against_the_new_pack(write):
    path = _files(write, silent=0.2, policy="upwork")
    scenario = sim.load_scenario(path)
    other = dataclasses.replace(scenario, policy_ref=str(path.parent / "pack.yaml"))
    with pytest.raises(InputError) as info:
        other.with_overrides([])
    [problem] = info.value.problems
    assert (problem.file, problem.line, problem.column) == (str(path), 5, 1)
    assert "no on_timeout" in problem.message


def test_every_built_in_population_answers_every_built_in_pack():
    for pop_file in ("markets/freelance_year.yaml", "populations/marketplace_year.yaml"):
        scenario = sim.load_scenario(SCENARIOS / pop_file)
        for pack in (
            "upwork",
            "upwork_2026",
            "fiverr",
            "freelancer_com",
            "escrow_com",
            "peopleperhour",
            "guru",
        ):
            assert stalling_stages(scenario.population, sim.load_policy(pack)) == [], (pop_file, pack)
