"""population.by_policy (issue 10, part 4): a pack's own behaviour for what only exists there, on
the same contracts as every other pack; arrivals and milestones cannot be set per pack."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import sim

POPULATION = """\
scenario: revisions only where the pack counts them
policy: upwork
seed: 3
until: 120d
population:
  arrivals: {count: 80, over: 20d}
  milestones:
    count: {uniform: {low: 1, high: 3}}
    amount: {uniform: {low: 50, high: 500}}
  client:
    fund_delay: 0
    review:
      delay: {exponential: {mean: 1d}}
      decision: {approve: 1.0}
  freelancer:
    accept: {probability: 1.0, delay: 0}
    work: 2d
    rework: 1d
  by_policy:
    fiverr:
      client:
        review:
          delay: {exponential: {mean: 1d}}
          decision: {request_changes: 1.0}
"""


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    path = tmp_path / "pop.yaml"
    path.write_text(POPULATION, encoding="utf-8")
    return path


def test_the_pack_named_gets_its_own_behaviour_and_the_others_the_shared_one(scenario: Path):
    shared = sim.run(scenario, policy="upwork", replications=1, events="full").runs[0].milestones
    fiverr = sim.run(scenario, policy="fiverr", replications=1, events="full").runs[0].milestones
    # the same contracts and milestones under both packs (common random numbers)
    key = ["contract", "milestone", "amount"]
    assert shared[key].reset_index(drop=True).equals(fiverr[key].reset_index(drop=True))
    assert len(shared) > 80
    # upwork: the shared client approves every submission; fiverr: its client asks for revisions
    # until the package's limit (max_change_requests: 2), then accepts
    assert (shared["change_requests"] == 0).all()
    # until the package's limit (max_change_requests: 2), then accepts; a slow review may lose the
    # race to the 3-day auto-completion first
    approved = fiverr[fiverr["outcome"] == "approved"]
    assert len(approved) > 50
    assert (approved["change_requests"] == 2).all()
    assert (fiverr["change_requests"] <= 2).all() and fiverr["change_requests"].sum() > 2 * len(approved)


def test_a_pack_not_named_uses_the_shared_behaviour(scenario: Path):
    a = sim.run(scenario, policy="upwork", replications=1).kpis
    text = scenario.read_text(encoding="utf-8").replace("by_policy:\n    fiverr:", "by_policy:\n    guru:")
    scenario.write_text(text, encoding="utf-8")
    b = sim.run(scenario, policy="upwork", replications=1).kpis
    assert a == b


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("      arrivals: {count: 5}\n", "unknown key 'arrivals'"),
        ("      client: 3\n", "client is a mapping"),
    ],
)
def test_a_by_policy_entry_may_set_behaviour_only(scenario: Path, entry: str, message: str):
    text = scenario.read_text(encoding="utf-8")
    head, _, _ = text.partition("  by_policy:\n")
    scenario.write_text(head + "  by_policy:\n    fiverr:\n" + entry, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "sim", "validate", str(scenario)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    assert message in out
    assert "pop.yaml:" in out and "Traceback" not in out
