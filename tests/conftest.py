"""Shared fixtures: paths to the project's folders and a helper to write scenario files."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# YAML files under tests/ are inputs of the tests (many deliberately invalid), not scenarios to collect.
# The hostile corpus (tests/hostile) is run by test_hostile_corpus.py; its audit files have expect:.
collect_ignore_glob = ["data/*", "data/**/*", "hostile/*.yaml", "hostile/**/*.yaml"]


#: a small marketplace for sweep and executor tests (seed and size vary per test module)
TINY_POPULATION = """\
scenario: tiny marketplace
policy: upwork
seed: {seed}
replications: 3
until: 100d
population:
  arrivals: {{count: {count}, over: 20d}}
  milestones:
    count: {{poisson: {{mean: 2}}, minimum: 1}}
    amount: {{lognormal: {{median: 250, sigma: 0.9}}}}
  client:
    review:
      delay: {{exponential: {{mean: 6d}}}}
      decision: {{approve: 0.8, request_changes: 0.15, refund: 0.05}}
  freelancer:
    work: {{gamma: {{mean: 5d, cv: 0.6}}}}
    refund_response: {{approve: 0.5, dispute: 0.3, silent: 0.2, delay: {{exponential: {{mean: 2d}}}}}}
  platform:
    dispute_agents: 1
    dispute_handling: {{exponential: {{mean: 4d}}}}
"""


@pytest.fixture
def root() -> Path:
    """The project's top folder."""
    return ROOT


@pytest.fixture
def write(tmp_path: Path):
    """Write a file under a temporary folder and return its path."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return _write
