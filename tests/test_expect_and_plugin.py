"""Expectations explain their failures; the pytest plugin turns scenario files into test items."""

from __future__ import annotations

import sim

pytest_plugins = ["pytester"]

SCENARIO = """\
scenario: a client approves part of a milestone
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
      - {at: 1d, freelancer: accept_offer}
      - {at: 2d, freelancer: submit, milestone: m1}
      - {at: 3d, client: approve, milestone: m1, amount: 320.55}
      - {at: 4d, client: fund, milestone: m2}
      - {at: 4d, client: fund, milestone: m1}
expect:
"""


def _checks(write, expect: str) -> list:
    path = write("s.yaml", SCENARIO + expect)
    return sim.run(path).check()


def test_state_check_holds_to_the_cent(write):
    checks = _checks(
        write,
        "  - at: 4d\n"
        "    milestones: {c1/m1: released, c1/m2: funded}\n"
        '    balances: {escrow: 300.00, "client:acme": 620.55, "freelancer:ana": 320.55}\n'
        "    totals: {funded: 620.55, released: 320.55}\n",
    )
    assert [c.ok for c in checks] == [True]


def test_a_wrong_balance_says_expected_found_difference_and_line(write):
    checks = _checks(write, '  - at: 3d\n    balances: {"client:acme": 500.01}\n')
    (check,) = checks
    assert not check.ok
    assert check.where.endswith("s.yaml:19")
    assert check.problems == ("balance client:acme at 3d: expected 500.01, found 500.00 (difference -0.01)",)


def test_state_before_and_after_an_event_at_the_same_time(write):
    checks = _checks(
        write,
        "  - at: 2.99d\n    milestones: {c1/m1: submitted}\n  - at: 3d\n    milestones: {c1/m1: released}\n",
    )
    assert all(c.ok for c in checks)


def test_a_missing_event_lists_the_nearest_candidates(write):
    (check,) = _checks(write, "  - event: {action: approve, milestone: c1/m1, at: 4d}\n")
    assert not check.ok
    assert "found: approve c1/m1 by client at 3d amount 320.55" in check.problems[0]


def test_rejected_and_no_event(write):
    checks = _checks(
        write,
        "  - rejected: {action: fund, milestone: c1/m1, rule: invalid_state, at: 4d}\n"
        "  - no_event: {action: auto_approve}\n"
        "  - rejected: {action: fund, rule: one_at_a_time}\n",
    )
    assert [c.ok for c in checks] == [True, True, False]
    assert "expected rejection matching action=fund, rule=one_at_a_time" in checks[2].problems[0]


def test_pytest_collects_scenario_files_and_reports_like_the_cli(pytester):
    pytester.makefile(
        ".yaml",
        good=SCENARIO + "  - at: end\n    milestones: {c1/m1: released}\n",
        bad=SCENARIO + "  - at: end\n    milestones: {c1/m1: refunded}\n",
        notes="just: some yaml\nexpect: nothing here\n",
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*1 of 1 expectations failed:*",
            "*bad.yaml:19: milestone c1/m1 at the end: expected refunded, found released*",
        ]
    )


def test_pytest_reports_an_invalid_scenario_as_a_failure(pytester):
    pytester.makefile(".yaml", broken=SCENARIO.replace("amount: 300.00", "amount: 300.001") + "  - at: end\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*invalid scenario*", "*broken.yaml:9:*more than 2 decimal places*"])
