"""Jupyter: a Result shows itself in a few lines (and as HTML); check() results read as a table."""

from __future__ import annotations

from pathlib import Path

from conftest import ROOT, TINY_POPULATION

import sim
from sim.analysis.expect import CheckResults

SILENCE = ROOT / "scenarios" / "upwork" / "auto_approve_after_silence.yaml"

WRONG = """\
scenario: one wrong expectation
policy: upwork
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
  - at: end
    totals: {released: 400}
  - event: {action: auto_approve, milestone: c1/m1}
"""


def test_repr_is_short_and_says_what_ran() -> None:
    result = sim.run(SILENCE)
    text = repr(result)
    assert len(text) < 400 and text.count("\n") <= 3
    assert "A silent client lets the review timer pay the freelancer" in text
    assert "policy upwork" in text and "1 replication(s)" in text and "seed 0" in text
    assert "events full" in text and "released 500.00" in text
    assert "expectations 4 of 4 hold" in text


def test_repr_of_a_population_is_short(write) -> None:
    result = sim.run(write("tiny.yaml", TINY_POPULATION.format(seed=2, count=30)), replications=2)
    assert len(repr(result)) < 400
    assert "2 replication(s)" in repr(result)
    html = result._repr_html_()
    assert "<table>" in html and "escrow_float_avg" in html and "95% interval" in html


def test_repr_html_has_totals_and_expectations(write) -> None:
    result = sim.run(write("wrong.yaml", WRONG))
    html = result._repr_html_()
    assert "one wrong expectation" in html
    assert "<td>released</td><td style='text-align:right'>500.00</td>" in html
    assert "1 of 2 expectations hold" in html and "FAIL" in html


def test_check_results_print_one_line_per_expectation(write, tmp_path: Path) -> None:
    path = write("wrong.yaml", WRONG)
    checks = sim.run(path).check()
    assert isinstance(checks, CheckResults) and isinstance(checks, list) and len(checks) == 2
    assert not checks.ok
    lines = str(checks).splitlines()
    assert lines[0] == "1 of 2 expectations hold"
    assert (
        lines[1]
        == f"FAIL {path}:15: total released at the end: expected 400.00, found 500.00 (difference 100.00)"
    )
    assert lines[2] == f"ok   {path}:17: event action=auto_approve, milestone=c1/m1"
    assert repr(checks) == str(checks)
    html = checks._repr_html_()
    assert html.count("<tr>") == 3 and "FAIL" in html and f"{path}:15" in html
    assert sim.run(SILENCE).check().ok
