"""`milestone-sim run`: the output folder (CSV tables, summary.json) and the printed fund-flow summary."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

import sim
from sim.app.cli import main
from sim.policy import load_policy

# m1 500.00 is partly released (320.55); the 179.45 credit pays most of m2 (300.00), whose approval adds
# a 50.00 bonus; funding m2 early is rejected (one_at_a_time). Totals: funded 620.55, released 620.55.
STORY = """\
scenario: Partial release, credit, bonus and one rejection
policy: upwork
start: 2026-01-05
contracts:
  - id: c1
    client: acme
    freelancer: ana
    milestones:
      - {id: m1, amount: 500.00, due: 10d}
      - {id: m2, amount: 300.00, due: 20d}
    script:
      - {at: 0d, client: offer}
      - {at: 0d, client: fund, milestone: m1}
      - {at: 1d, freelancer: accept_offer}
      - {at: 2d, client: fund, milestone: m2}
      - {at: 5d, freelancer: submit, milestone: m1}
      - {at: 6d, client: approve, milestone: m1, amount: "320.55"}
      - {at: 7d, client: fund, milestone: m2}
      - {at: 10d, freelancer: submit, milestone: m2}
      - {at: 12d, client: approve, milestone: m2, amount: 350}
expect:
  - at: end
    balances: {escrow: 0, "client:acme": 670.55, "freelancer:ana": 670.55}
    totals: {funded: 620.55, released: 620.55, bonus: 50.00}
  - rejected: {action: fund, rule: one_at_a_time, milestone: c1/m2, at: 2d}
"""

SILENT = """\
scenario: A silent client
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
"""

OUTPUTS = {"events.csv", "ledger.csv", "milestones.csv", "balances.csv", "summary.json"}


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Run STORY once through the CLI; return its folder, stdout and exit code."""
    import contextlib
    import io

    base = tmp_path_factory.mktemp("story")
    scenario = base / "story.yaml"
    scenario.write_text(STORY, encoding="utf-8")
    out_dir = base / "out"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["run", str(scenario), "--out", str(out_dir), "--no-charts"])
    return {
        "code": code,
        "out": out_dir,
        "stdout": stdout.getvalue(),
        "stderr": stderr.getvalue(),
        "file": scenario,
    }


def test_run_exits_0_and_writes_every_table(story):
    assert story["code"] == 0, story["stderr"]
    assert {p.name for p in story["out"].iterdir()} >= OUTPUTS
    assert f"outputs written to {story['out']}/" in story["stdout"]


def test_ledger_csv_to_the_cent(story):
    rows = _rows(story["out"] / "ledger.csv")
    assert list(rows[0]) == [
        "time", "from_account", "to_account", "flow", "amount", "contract", "milestone", "event"
    ]  # fmt: skip
    got = [
        (r["time"], r["from_account"], r["to_account"], r["flow"], r["amount"], r["milestone"]) for r in rows
    ]
    # each posting names the events.csv row that made it: the release and the bonus are one approve
    events = _rows(story["out"] / "events.csv")
    made_by = [(events[int(r["event"])]["action"], events[int(r["event"])]["milestone"]) for r in rows]
    assert made_by == [
        ("fund", "m1"),
        ("approve", "m1"),
        ("fund", "m2"),
        ("approve", "m2"),
        ("approve", "m2"),
    ]
    assert got == [
        ("0", "client:acme", "escrow:c1", "funded", "500.00", "m1"),
        ("6", "escrow:c1", "freelancer:ana:available", "released", "320.55", "m1"),
        ("7", "client:acme", "escrow:c1", "funded", "120.55", "m2"),
        ("12", "escrow:c1", "freelancer:ana:available", "released", "300.00", "m2"),
        ("12", "client:acme", "freelancer:ana:available", "bonus", "50.00", "m2"),
    ]


def test_events_csv_records_accepted_and_rejected(story):
    rows = _rows(story["out"] / "events.csv")
    for column in (
        "time",
        "contract",
        "milestone",
        "actor",
        "action",
        "outcome",
        "rule",
        "amount",
        "message",
    ):
        assert column in rows[0]
    rejected = [r for r in rows if r["outcome"] == "rejected"]
    assert len(rejected) == 1
    [r] = rejected
    assert (r["time"], r["milestone"], r["actor"], r["action"], r["rule"]) == (
        "2",
        "m2",
        "client",
        "fund",
        "one_at_a_time",
    )
    assert "m1" in r["message"]
    approve = [r for r in rows if r["action"] == "approve"]
    assert [(r["time"], r["milestone"], r["amount"]) for r in approve] == [
        ("6", "m1", "320.55"),
        ("12", "m2", "350.00"),
    ]
    assert all(r["outcome"] == "accepted" for r in approve)
    offer = next(r for r in rows if r["action"] == "offer")
    assert offer["amount"] == "0.00"  # an offer moves no money
    assert "800.00 USD in total" in offer["message"]


def test_milestones_csv(story):
    rows = {r["milestone"]: r for r in _rows(story["out"] / "milestones.csv")}
    assert set(rows) == {"m1", "m2"}
    m1, m2 = rows["m1"], rows["m2"]
    assert (m1["amount"], m1["released"], m1["refunded"], m1["bonus"]) == ("500.00", "320.55", "0.00", "0.00")
    assert (m1["state"], m1["outcome"]) == ("released", "approved")
    assert (m1["funded_at"], m1["first_submitted_at"], m1["closed_at"]) == ("0", "5", "6")
    assert (m2["amount"], m2["released"], m2["bonus"]) == ("300.00", "300.00", "50.00")
    assert (m2["funded_at"], m2["closed_at"], m2["outcome"]) == ("7", "12", "approved")
    assert m1["change_requests"] == m2["change_requests"] == "0"


def test_balances_csv(story):
    rows = _rows(story["out"] / "balances.csv")
    for column in ("time", "client", "escrow", "freelancer", "platform"):
        assert column in rows[0]
    last = rows[-1]
    assert (last["time"], last["client"], last["escrow"], last["freelancer"], last["platform"]) == (
        "12",
        "670.55",
        "0.00",
        "670.55",
        "0.00",
    )
    after_partial = next(r for r in rows if r["time"] == "6")
    assert (after_partial["escrow"], after_partial["freelancer"]) == ("179.45", "320.55")
    for row in rows:  # conservation in every row, computed from the exported text
        held = sum(float(row[k]) for k in ("escrow", "freelancer", "platform"))
        assert abs(float(row["client"]) - held) < 0.005


def test_money_in_csvs_has_exactly_two_decimals(story):
    money = {"amount", "released", "refunded", "bonus", "client", "escrow", "freelancer", "platform"}
    for name in ("events.csv", "ledger.csv", "milestones.csv", "balances.csv"):
        for row in _rows(story["out"] / name):
            for key, value in row.items():
                if key in money:
                    whole, _, cents = value.partition(".")
                    assert whole.lstrip("-").isdigit() and len(cents) == 2, (name, key, value)
        text = (story["out"] / name).read_text(encoding="utf-8")
        assert "e+" not in text and "0000000" not in text  # no float noise
        assert "\r\n" not in text


def test_summary_json_has_resolved_policy_scenario_seed_version(story):
    summary = json.loads((story["out"] / "summary.json").read_text(encoding="utf-8"))
    assert summary["tool"] == {"name": "milestone-sim", "version": sim.__version__}
    assert summary["policy"] == load_policy("upwork").resolved()
    assert summary["policy"]["review"]["window"] == "14d"
    assert summary["seed"] == 0
    assert summary["replications"] == 1
    assert summary["currency"] == "USD"
    scenario = summary["scenario"]
    assert scenario["title"] == "Partial release, credit, bonus and one rejection"
    assert scenario["file"].endswith("story.yaml")
    assert scenario["start"] == "2026-01-05"
    assert scenario["definition"]["contracts"][0]["milestones"][0] == {
        "id": "m1",
        "amount": 500.0,
        "due": "10d",
    }
    assert summary["totals"] == {
        "funded": "620.55",
        "released": "620.55",
        "bonus": "50.00",
        "refunded": "0.00",
        "fees": "0.00",
    }
    [c1] = summary["contracts"]
    assert (c1["contract"], c1["state"], c1["escrow"], c1["funded"]) == ("c1", "active", "0.00", "620.55")
    assert summary["expectations"] == {"total": 2, "failed": 0}


def test_printed_fund_flow_table(story):
    text = story["stdout"]
    assert "Partial release, credit, bonus and one rejection" in text
    assert "policy upwork, seed 0" in text
    assert "Fund flows (USD)" in text
    lines = text.splitlines()
    header = next(line for line in lines if line.split()[:3] == ["contract", "state", "funded"])
    assert header.split() == [
        "contract",
        "state",
        "funded",
        "released",
        "bonus",
        "refunded",
        "fees",
        "in",
        "escrow",
    ]
    c1 = next(line for line in lines if line.split()[:1] == ["c1"])
    assert c1.split() == ["c1", "active", "620.55", "620.55", "50.00", "0.00", "0.00", "0.00"]
    total = next(line for line in lines if line.split()[:1] == ["total"])
    assert total.split() == ["total", "620.55", "620.55", "50.00", "0.00", "0.00", "0.00"]
    assert "Expectations: 2 of 2 hold" in text


def test_printed_timeline_shows_the_rejection(story):
    line = next(line for line in story["stdout"].splitlines() if "REJECTED" in line)
    assert "one_at_a_time" in line
    assert "c1/m2" in line


def test_quiet_prints_only_where_outputs_went(tmp_path: Path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(SILENT, encoding="utf-8")
    assert main(["run", str(path), "--out", str(tmp_path / "o"), "--quiet", "--no-charts"]) == 0
    out = capsys.readouterr().out
    assert out.strip() == f"outputs written to {tmp_path / 'o'}/"


def test_default_out_folder_is_out_slash_stem(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "silent_client.yaml").write_text(SILENT, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["run", "silent_client.yaml", "--quiet", "--no-charts"]) == 0
    assert {p.name for p in (tmp_path / "out" / "silent_client").iterdir()} >= OUTPUTS


def test_set_and_seed_are_applied_and_recorded(tmp_path: Path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(SILENT, encoding="utf-8")
    out = tmp_path / "o"
    code = main(
        ["run", str(path), "--out", str(out), "--set", "review.window=3d", "--seed", "42", "--no-charts"]
    )
    assert code == 0
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["seed"] == 42
    assert summary["policy"]["review"]["window"] == "3d"
    assert summary["policy_overrides"] == {"review.window": "3d"}
    auto = [r for r in _rows(out / "events.csv") if r["action"] == "auto_approve"]
    assert [(r["time"], r["amount"]) for r in auto] == [("8", "500.00")]  # 5d + 3d, not 19d
    assert "seed 42" in capsys.readouterr().out


def test_run_with_fees_and_hold(tmp_path: Path, capsys):
    path = tmp_path / "fees.yaml"
    path.write_text(
        SILENT.replace("policy: upwork", "policy: upwork_fees").replace("amount: 500.00", "amount: 333.33"),
        encoding="utf-8",
    )
    out = tmp_path / "o"
    assert main(["run", str(path), "--out", str(out), "--quiet", "--no-charts"]) == 0
    ledger = [
        (r["time"], r["from_account"], r["to_account"], r["flow"], r["amount"])
        for r in _rows(out / "ledger.csv")
    ]
    assert ledger == [
        ("0", "client:acme", "escrow:c1", "funded", "333.33"),
        ("0", "client:acme", "platform", "fees", "16.67"),
        ("19", "escrow:c1", "freelancer:ana:pending", "released", "333.33"),
        ("19", "freelancer:ana:pending", "platform", "fees", "33.33"),
        ("24", "freelancer:ana:pending", "freelancer:ana:available", "available", "300.00"),
    ]
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["totals"]["fees"] == "50.00"
    assert summary["policy"]["hold"] == {"after_release": "5d"}


def test_python_dash_m_sim_run(tmp_path: Path):
    path = tmp_path / "s.yaml"
    path.write_text(SILENT, encoding="utf-8")
    out = tmp_path / "o"
    proc = subprocess.run(
        [sys.executable, "-m", "sim", "run", str(path), "--out", str(out), "--no-charts"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Fund flows (USD)" in proc.stdout
    assert "Traceback" not in proc.stderr
    assert {p.name for p in out.iterdir()} >= OUTPUTS
    ledger = _rows(out / "ledger.csv")
    assert [(r["time"], r["flow"], r["amount"]) for r in ledger] == [
        ("0", "funded", "500.00"),
        ("19", "released", "500.00"),
    ]


def test_python_dash_m_sim_exit_2_on_bad_input(tmp_path: Path):
    path = tmp_path / "s.yaml"
    path.write_text(SILENT.replace("amount: 500.00", "amount: 5.005"), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "sim", "run", str(path), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert f"{path}:8:26: contracts[0].milestones[0].amount:" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


def test_python_api_matches_the_files(story):
    result = sim.run(story["file"])
    assert result.totals == {"funded": 62055, "released": 62055, "bonus": 5000, "refunded": 0, "fees": 0}
    assert result.ok
    assert result.ledger["amount"].tolist() == [50000, 32055, 12055, 30000, 5000]
