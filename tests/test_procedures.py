"""Procedures (FORMAT section 7): declarations validated with file:line:column, and run to the cent.

The upwork_2026 pack's dispute path, fees and dormancy are checked end to end through ``sim.run``;
a Freelancer.com-like lifecycle (disputes opened by either party, silence favouring the filer, a
percentage fee with a minimum) is declared in YAML alone and run the same way.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import sim
from sim.app.cli import main
from sim.core.yamlio import InputError
from sim.policy import load_policy

# ------------------------------------------------------------------------------ validation

BAD_PROCEDURES = {
    "unknown procedure": (
        """
        procedures:
          escrow_refund:
            opened_by: {client: request_refund}
            stages:
              - {name: respond, party: freelancer, window: 7d, answers: {decline: {procedure: arbitraton}}}
        """,
        5,
        "unknown procedure 'arbitraton'",
    ),
    "unknown stage": (
        """
        procedures:
          dispute:
            stages:
              - name: answer
                party: client
                window: 5d
                answers: {decline: {stage: mediate}}
                on_timeout: release
              - {name: mediation, party: platform}
        """,
        7,
        "has no stage 'mediate'",
    ),
    "neither window nor platform": (
        """
        procedures:
          dispute:
            stages:
              - {name: answer, party: client, answers: {accept: release}}
        """,
        4,
        "neither a window nor a platform decision",
    ),
    "answers at a platform stage": (
        """
        procedures:
          dispute:
            stages:
              - {name: decide, party: platform, answers: {accept: release}}
        """,
        4,
        "a platform stage has no answers",
    ),
    "a stage that can never end": (
        """
        procedures:
          dispute:
            stages:
              - {name: wait, party: client, window: 5d}
        """,
        4,
        "can never end",
    ),
    "fee bounds": (
        """
        procedures:
          dispute:
            stages:
              - name: offer
                party: both
                window: 7d
                fee: {percent: 5, minimum: 50.00, maximum: 25.00}
                on_timeout: refund
        """,
        7,
        "minimum is more than its maximum",
    ),
    "to_payer with no fee": (
        """
        procedures:
          dispute:
            stages:
              - name: offer
                party: both
                window: 7d
                on_timeout: {none: refund, one: to_payer, both: refund}
        """,
        7,
        "to_payer needs a fee",
    ),
    "next after the last stage": (
        """
        procedures:
          dispute:
            stages:
              - {name: answer, party: client, window: 5d, on_timeout: next}
        """,
        4,
        "next after the last stage",
    ),
    "a loop with no time passing": (
        """
        procedures:
          dispute:
            stages:
              - {name: a, party: client, window: 0d, on_timeout: next}
              - {name: b, party: freelancer, window: 0d, on_timeout: {stage: a}}
        """,
        4,
        "time out into each other with no time passing",
    ),
    "an unknown outcome": (
        """
        procedures:
          dispute:
            stages:
              - {name: answer, party: client, window: 5d, on_timeout: give_up}
        """,
        4,
        "give_up",
    ),
    "an unknown party": (
        """
        procedures:
          dispute:
            stages:
              - {name: answer, party: agent, window: 5d, on_timeout: release}
        """,
        4,
        "agent",
    ),
    "dormancy naming no procedure": (
        """
        dormancy: {after: 90d, procedure: sleeping}
        """,
        1,
        "unknown procedure 'sleeping'",
    ),
    "apply_proposal with no proposal": (
        """
        procedures:
          dispute:
            stages:
              - {name: answer, party: both, window: 2d, answers: {accept: apply_proposal}, on_timeout: refund}
        """,
        4,
        "apply_proposal needs an earlier platform stage",
    ),
}


def _pack(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "pack.yaml"
    path.write_text("policy: p\nextends: upwork\n" + textwrap.dedent(body).strip() + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("case", sorted(BAD_PROCEDURES))
def test_bad_procedure_definitions_exit_2_with_file_line_column(case, tmp_path, capsys):
    body, line, words = BAD_PROCEDURES[case]
    path = _pack(tmp_path, body)
    before = sorted(p.name for p in tmp_path.iterdir())
    code = main(["validate", str(path)])
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert "Traceback" not in err
    assert f"{path}:{line + 2}:" in err, err  # two header lines precede the body
    assert words in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_good_procedure_definition_validates(tmp_path, capsys):
    path = _pack(tmp_path, FREELANCER_LIKE)
    assert main(["validate", str(path)]) == 0, capsys.readouterr()


def test_problem_points_at_the_value_in_a_nested_mapping(tmp_path):
    path = _pack(tmp_path, BAD_PROCEDURES["unknown procedure"][0])
    with pytest.raises(InputError) as info:
        load_policy(str(path))
    [problem] = info.value.problems
    assert (problem.line, problem.column) == (7, 87)  # the misspelt name itself


# ------------------------------------------------------------------------------ running procedures


def _run(tmp_path: Path, text: str, policy: str | None = None) -> sim.Result:
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent(text).strip() + "\n", encoding="utf-8")
    return sim.run(path, events="full")


def _balances(result: sim.Result) -> dict[str, int]:
    bal: dict[str, int] = {}
    for row in result.runs[0].ledger.itertuples(index=False):
        frm, to, amount = row.from_account, row.to_account, int(row.amount)
        bal[frm] = bal.get(frm, 0) + (amount if frm.startswith("client:") else -amount)
        bal[to] = bal.get(to, 0) + (-amount if to.startswith("client:") else amount)
    return {k: v for k, v in bal.items() if v}


def _events(result: sim.Result) -> list[tuple[float, str, int]]:
    ev = result.runs[0].events
    return [
        (round(float(t), 6), a, int(x))
        for t, a, x in zip(ev["time"], ev["action"], ev["amount"], strict=True)
    ]


DISPUTE = """
scenario: the upwork_2026 dispute path
policy: upwork_2026
start: 2026-03-02          # a Monday
contracts:
  - id: c1
    client: acme
    freelancer: ana
    milestones: [{id: m1, amount: 500.00}]
    script:
      - {at: 0d, client: offer}
      - {at: 0d, client: fund, milestone: m1}
      - {at: 1d, freelancer: accept_offer}
      - {at: 2d, client: request_refund}
      - {at: 3d, freelancer: dispute}            # Thursday: the client's 5bd end the next Thursday
{more}
"""


def _dispute(tmp_path: Path, *steps: str) -> sim.Result:
    more = "\n".join(f"      - {s}" for s in steps)
    return _run(tmp_path, DISPUTE.replace("{more}", more))


def test_client_silent_five_business_days_releases_to_the_freelancer(tmp_path):
    result = _dispute(tmp_path)
    # opened Thursday 2026-03-05 00:00 (t=3): 5 business days skip the weekend, so t=10 (Thursday)
    assert (10.0, "auto_release", 50000) in _events(result)
    m = result.runs[0].milestones.set_index("milestone").loc["m1"]
    assert (m["state"], m["outcome"]) == ("released", "auto_released")
    # 500 released less the 10% service fee; the client paid 500 + 5% + the 4.95 initiation fee
    assert _balances(result) == {
        "client:acme": 52995,
        "freelancer:ana:available": 45000,
        "platform": 7995,
    }


def test_the_client_accepts_the_dispute(tmp_path):
    result = _dispute(tmp_path, "{at: 4d, client: respond, answer: accept}")
    assert (4.0, "respond", 50000) in _events(result)
    assert result.runs[0].milestones.set_index("milestone").loc["m1", "outcome"] == "released"


def test_mediation_proposal_accepted_by_both_applies_the_split(tmp_path):
    result = _dispute(
        tmp_path,
        "{at: 4d, client: respond, answer: decline}",
        "{at: 5d, platform: resolve_dispute, release: 300.00, refund: 200.00}",
        "{at: 6d, client: respond, answer: accept}",
        "{at: 6.5d, freelancer: respond, answer: accept}",
    )
    events = _events(result)
    assert (5.0, "resolve_dispute", 0) in events  # a proposal moves no money
    assert (6.5, "respond", 50000) in events
    bal = _balances(result)
    # the client paid 525 + 4.95, got 200 back; ana got 300 less 30 (10%)
    assert bal["client:acme"] == 32995
    assert bal["freelancer:ana:available"] == 27000
    assert bal["platform"] == 5995
    assert result.runs[0].milestones.set_index("milestone").loc["m1", "outcome"] == "resolved"


def test_one_party_accepting_a_proposal_waits_for_the_other(tmp_path):
    result = _dispute(
        tmp_path,
        "{at: 4d, client: respond, answer: decline}",
        "{at: 5d, platform: resolve_dispute, release: 300.00, refund: 200.00}",
        "{at: 6d, client: respond, answer: accept}",
    )
    ev = result.runs[0].events
    # the freelancer never answered: after 2 days the arbitration offer opens, 7 days later the
    # client is refunded because nobody paid the fee
    assert list(ev.loc[ev["time"] == 7.0, "action"]) == ["stage_timeout"]
    assert "in arbitration" in ev.loc[ev["time"] == 7.0, "message"].iloc[0]
    assert (14.0, "auto_refund", 50000) in _events(result)


def test_arbitration_only_the_freelancer_pays_gets_the_money_and_the_fee_back(tmp_path):
    result = _dispute(
        tmp_path,
        "{at: 4d, client: respond, answer: decline}",
        "{at: 5d, platform: resolve_dispute, release: 300.00, refund: 200.00}",
        "{at: 6d, client: respond, answer: decline}",
        "{at: 7d, freelancer: pay_fee}",
    )
    events = _events(result)
    assert (7.0, "pay_fee", 29100) in events
    assert (13.0, "auto_release", 50000) in events
    assert (13.0, "fee_returned", 29100) in events
    bal = _balances(result)
    assert bal.get("freelancer:ana:pending", 0) + bal.get("freelancer:ana:available", 0) == 45000
    assert bal["platform"] == 7995  # the arbitration fee was returned
    assert result.runs[0].totals["fees"] == 7995


def test_arbitration_both_pay_the_platform_decides_and_keeps_the_fees(tmp_path):
    result = _dispute(
        tmp_path,
        "{at: 4d, client: respond, answer: decline}",
        "{at: 5d, platform: resolve_dispute, release: 300.00, refund: 200.00}",
        "{at: 6d, client: respond, answer: decline}",
        "{at: 7d, freelancer: pay_fee}",
        "{at: 8d, client: pay_fee}",
        "{at: 20d, platform: resolve_dispute, release: 100.00, refund: 400.00}",
    )
    events = _events(result)
    assert (8.0, "all_paid", 0) in events  # both paid: arbitration starts at once
    assert (20.0, "resolve_dispute", 50000) in events
    bal = _balances(result)
    # ana: 100 released less 10 fee (available after the 5-day hold), less her 291 arbitration
    # fee: a net position below zero
    assert "freelancer:ana:pending" not in bal
    assert bal["freelancer:ana:available"] == 9000 - 29100
    # acme: 525 + 4.95 + 291 paid, 400 back
    assert bal["client:acme"] == 52500 + 495 + 29100 - 40000
    assert bal["platform"] == 2500 + 495 + 1000 + 2 * 29100
    assert bal.get("escrow:c1", 0) == 0


def test_the_contract_initiation_fee_is_returned_when_nothing_was_released(tmp_path):
    result = _run(
        tmp_path,
        """
        scenario: withdrawn offer
        policy: upwork_2026
        start: 2026-03-02
        contracts:
          - id: c1
            client: acme
            freelancer: ana
            milestones: [{id: m1, amount: 100.00}]
            script:
              - {at: 0d, client: offer}
              - {at: 0d, client: fund, milestone: m1}
              - {at: 2d, client: withdraw_offer}
        """,
    )
    events = _events(result)
    assert (0.0, "fund", 10000) in events
    assert (2.0, "offer_refund", 10000) in events
    assert (2.0, "fee_returned", 495) in events
    # the 5% marketplace fee on the funding is not refundable; the initiation fee is
    assert _balances(result) == {"client:acme": 500, "platform": 500}


def test_the_contract_initiation_fee_is_charged_once(tmp_path):
    result = _run(
        tmp_path,
        """
        scenario: two fundings
        policy: upwork_2026
        start: 2026-03-02
        contracts:
          - id: c1
            client: acme
            freelancer: ana
            milestones: [{id: m1, amount: 100.00}, {id: m2, amount: 100.00}]
            script:
              - {at: 0d, client: offer}
              - {at: 0d, client: fund, milestone: m1}
              - {at: 1d, freelancer: accept_offer}
              - {at: 2d, client: approve, milestone: m1}
              - {at: 3d, client: fund, milestone: m2}
              - {at: 4d, client: approve, milestone: m2}
              - {at: 5d, client: end_contract}
        """,
    )
    fees = result.runs[0].ledger
    client_fees = fees[(fees["flow"] == "fees") & (fees["from_account"] == "client:acme")]
    assert sorted(client_fees["amount"]) == [495, 500, 500]
    assert "fee_returned" not in set(result.runs[0].events["action"])


DORMANT = """
scenario: dormancy
policy: upwork_2026
start: 2026-03-02
contracts:
  - id: c1
    client: acme
    freelancer: ana
    milestones: [{id: m1, amount: 200.00, due: 10d}]
    script:
      - {at: 0d, client: offer}
      - {at: 0d, client: fund, milestone: m1}
      - {at: 1d, freelancer: accept_offer}
{more}
"""


def test_dormancy_notices_then_everyone_silent_refunds_the_client(tmp_path):
    result = _run(tmp_path, DORMANT.replace("{more}", ""))
    ev = result.runs[0].events
    # the last activity is at 1d, the due date at 10d: dormant 90 days after the due date
    notices = list(ev.loc[ev["action"] == "dormancy_notice", "time"])
    assert notices == [86.0, 93.0]
    assert list(ev.loc[ev["action"] == "dormant", "time"]) == [100.0]
    # client 7d, freelancer 7d, then the money goes back to the client
    assert (114.0, "auto_refund", 20000) in _events(result)
    m = result.runs[0].milestones.set_index("milestone").loc["m1"]
    assert (m["state"], m["outcome"]) == ("refunded", "auto_refunded")


def test_dormancy_freelancer_asks_and_the_silent_client_pays(tmp_path):
    more = "      - {at: 108d, freelancer: respond, answer: request_release}"
    result = _run(tmp_path, DORMANT.replace("{more}", more))
    assert (122.0, "auto_release", 20000) in _events(result)


def test_activity_restarts_the_dormancy_clock(tmp_path):
    more = "      - {at: 95d, client: edit_milestone, milestone: m1, due: 95d}"
    result = _run(tmp_path, DORMANT.replace("{more}", more))
    ev = result.runs[0].events
    # edit_milestone of a funded milestone's due date is rejected (active_locked): no activity
    assert list(ev.loc[ev["action"] == "dormant", "time"]) == [100.0]
    more = "      - {at: 95d, client: add_milestone, milestone: {id: m2, amount: 50.00, due: 120d}}"
    result = _run(tmp_path, DORMANT.replace("{more}", more))
    ev = result.runs[0].events
    assert list(ev.loc[ev["action"] == "dormant", "time"]) == [210.0]


# ------------------------------------------------------------------------------ a lifecycle in YAML alone

FREELANCER_LIKE = """
procedures:
  dispute:
    opened_by: {client: open_dispute, freelancer: open_dispute}
    covers: milestone
    stages:
      - name: respond
        party: respondent
        window: 4d
        answers: {accept: favour_filer, decline: next}
        on_timeout: favour_filer
      - name: arbitration
        party: both
        window: 4d
        fee: {percent: 5, minimum: 5.00, payer: each, refund_to: winner}
        on_timeout: {none: favour_respondent, one: to_payer, both: next}
      - {name: decide, party: platform, decision: binding}
"""


def _freelancer_like(tmp_path: Path, *steps: str) -> sim.Result:
    (tmp_path / "fl.yaml").write_text(
        "policy: freelancer_like\nextends: upwork\n" + textwrap.dedent(FREELANCER_LIKE).strip() + "\n",
        encoding="utf-8",
    )
    more = "\n".join(f"      - {s}" for s in steps)
    return _run(
        tmp_path,
        f"""
scenario: a freelancer.com-like dispute
policy: fl.yaml
contracts:
  - id: c1
    client: acme
    freelancer: ana
    milestones: [{{id: m1, amount: 60.00}}]
    script:
      - {{at: 0d, client: offer}}
      - {{at: 0d, client: fund, milestone: m1}}
      - {{at: 1d, freelancer: accept_offer}}
{more}
""",
    )


def test_a_client_filed_dispute_the_freelancer_ignores_refunds_the_filer(tmp_path):
    result = _freelancer_like(tmp_path, "{at: 2d, client: open_dispute, milestone: m1}")
    assert (6.0, "auto_refund", 6000) in _events(result)


def test_a_freelancer_filed_dispute_the_client_ignores_pays_the_filer(tmp_path):
    result = _freelancer_like(tmp_path, "{at: 2d, freelancer: open_dispute, milestone: m1}")
    assert (6.0, "auto_release", 6000) in _events(result)


def test_the_percentage_fee_has_its_minimum_and_the_winner_gets_it_back(tmp_path):
    result = _freelancer_like(
        tmp_path,
        "{at: 2d, freelancer: open_dispute, milestone: m1}",
        "{at: 3d, client: respond, answer: decline}",
        "{at: 4d, client: pay_fee}",
        "{at: 4d, freelancer: pay_fee}",
        "{at: 9d, platform: resolve_dispute, release: 60.00, refund: 0}",
    )
    events = _events(result)
    # 5% of 60.00 is 3.00, below the 5.00 minimum
    assert (4.0, "pay_fee", 500) in events
    assert (9.0, "resolve_dispute", 6000) in events
    assert (9.0, "fee_returned", 500) in events  # the winner's fee comes back
    assert _balances(result) == {"client:acme": 6500, "freelancer:ana:available": 6000, "platform": 500}


def test_a_pack_action_is_rejected_outside_its_states(tmp_path):
    result = _freelancer_like(tmp_path, "{at: 2d, client: open_dispute}")  # covers: milestone
    ev = result.runs[0].events
    last = ev.iloc[-1]
    assert (last["action"], last["outcome"], last["rule"]) == ("open_dispute", "rejected", "invalid_state")
    assert "covers one milestone" in last["message"]


def test_a_misspelt_stage_key_gets_a_did_you_mean(tmp_path, capsys):
    path = _pack(tmp_path, BAD_PROCEDURES["a stage that can never end"][0].replace("window: 5d", "windw: 5d"))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:6:" in err
    assert "unknown key 'windw' (did you mean 'window'?)" in err
    assert "allowed: answers, decision, fee, name, on_timeout, party, requires, window" in err


def test_upwork_2026_without_start_names_the_business_day_stage(tmp_path, capsys):
    """Found by the fuzz test: a bd window inside a procedure crashed the start check."""
    text = DISPUTE.replace("{more}", "").replace("start: 2026-03-02          # a Monday\n", "")
    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "required key 'start' is missing" in err
    assert "procedures.dispute.client_response.window is 5bd" in err
    assert not (tmp_path / "out").exists()
