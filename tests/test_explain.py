"""``explain`` (FORMAT section 9): why each posting happened, named by keys whose written value is
the one applied."""

from __future__ import annotations

import dataclasses
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pytest

import sim
from sim.app.cli import main
from sim.core.units import UnitError, parse_duration
from sim.core.yamlio import load_file
from sim.inputs.scenario import load_scenario

ROOT = Path(__file__).parent.parent
SCENARIOS = sorted((ROOT / "scenarios").rglob("*.yaml"))
STORY = ROOT / "scenarios" / "upwork_2026" / "arbitration_both_pay_platform_decides.yaml"


def test_result_explain_prints_the_chain_and_returns_a_frame(capsys) -> None:
    result = sim.run(STORY)
    frame = result.explain(milestone="c1/m1")
    out = capsys.readouterr().out
    hold = frame[frame["action"] == "funds_available"].iloc[0]
    assert hold["time"] == 25.0 and hold["moved"] == 40500
    assert hold["cause"] == "resolve_dispute at 20d" and hold["since_cause"] == 5.0
    assert hold["policy_keys"] == "hold.after_release" and hold["values"] == "5d"
    assert hold["source"] == "rules/upwork_fees.yaml:12:18"
    assert (
        "25d    funds_available c1/m1: 405.00 USD freelancer:ana:pending -> freelancer:ana:available" in out
    )
    assert "a timer started by the resolve_dispute at 20d (5d before)" in out
    assert "because hold.after_release = 5d (rules/upwork_fees.yaml:12:18)" in out
    assert frame[frame["action"] == "pay_fee"]["moved"].tolist() == [29100, 29100]


def test_a_refused_action_names_its_guard(capsys) -> None:
    path = ROOT / "scenarios" / "upwork" / "active_locked.yaml"
    frame = sim.run(path).explain(quiet=True)
    refused = frame[frame["outcome"] == "rejected"].iloc[0]
    assert refused["rule"] == "active_locked"
    assert "refused by rule active_locked" in refused["why"]
    assert "milestones.active_locked" in refused["why"]
    assert capsys.readouterr().out == ""


def test_explain_reads_an_output_folder_as_it_reads_the_run(tmp_path, capsys) -> None:
    out = tmp_path / "out"
    assert main(["run", str(STORY), "--out", str(out), "--no-charts", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["explain", str(out), "--milestone", "c1/m1"]) == 0
    from_folder = capsys.readouterr().out
    assert main(["explain", str(STORY), "--milestone", "c1/m1"]) == 0
    assert capsys.readouterr().out == from_folder
    assert main(["explain", str(out), "--at", "12d"]) == 0
    assert capsys.readouterr().out.startswith(
        "12d    pay_fee c1/m1: 291.00 USD freelancer:ana:available -> platform"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--milestone", "c9/m1"], "no milestone 'c9/m1' in this run"),
        (["--contract", "zz"], "no contract 'zz' in this run"),
        (["--at", "soon"], "cannot read duration"),
    ],
)
def test_bad_explain_options_exit_2(tmp_path, capsys, args, message) -> None:
    out = tmp_path / "out"
    assert main(["run", str(STORY), "--out", str(out), "--no-charts", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["explain", str(out), *args]) == 2
    assert message in capsys.readouterr().err


def test_explain_refuses_a_folder_that_is_not_a_run(tmp_path, capsys) -> None:
    (tmp_path / "events.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    assert main(["explain", str(tmp_path)]) == 2
    assert "ledger.csv: not an output folder of milestone-sim run" in capsys.readouterr().err


# ----------------------------------------------- every posting of every scenario: a key, its value


def _same(written: Any, shown: Any) -> bool:
    """A value as the YAML file wrote it and as the resolved policy shows it are the same value."""
    if isinstance(written, bool) or isinstance(shown, bool):
        return str(written).lower() == str(shown).lower()
    if isinstance(written, list) and isinstance(shown, list):
        return sorted(map(str, written)) == sorted(map(str, shown))
    if str(written).strip() == str(shown):
        return True
    try:
        return Decimal(str(written)) == Decimal(str(shown))
    except InvalidOperation:
        pass
    try:
        return parse_duration(written) == parse_duration(shown)
    except (UnitError, TypeError):
        return False


def _written_at(source: str) -> tuple[bool, Any]:
    """The value written at ``file:line:column`` (built-in packs as rules/NAME.yaml)."""
    file, line, col = source.rsplit(":", 2)
    path = ROOT / file if file.startswith("rules/") else Path(file)
    doc = load_file(path)
    for loc, mark in doc.marks.items():
        if mark == (int(line), int(col)):
            value: Any = doc.data
            for part in loc:
                value = value[part]
            return True, value
    return False, None


def _applied(values: dict[str, Any], key: str, written: Any) -> bool:
    if key in values:
        return _same(written, values[key])
    if not isinstance(written, dict):
        return False
    inner = {k: v for k, v in written.items() if k != "name" and not isinstance(v, (dict, list))}
    return bool(inner) and all(_same(v, values.get(f"{key}.{k}")) for k, v in inner.items())


def _check(scenario_path: Path) -> int:
    sc = load_scenario(scenario_path)
    if sc.is_population:  # its first 20 days: every kind of posting, in seconds
        sc = dataclasses.replace(sc, until=20.0)
    result = sim.run(sc, replications=1, events="full")
    frame = result.explain(quiet=True)
    values = sc.policy.values_by_version()
    moved = frame[frame["moved"] != 0]
    checked = 0
    for row in moved.itertuples(index=False):
        keys = [k for k in row.policy_keys.split(";") if k]
        sources = [s for s in row.source.split(";") if s]
        known = values[row.policy_version]
        found = False
        for key, source in zip(keys, sources, strict=True):
            if source in ("default", "--set"):
                continue
            ok, written = _written_at(source)
            if ok and _applied(known, key, written):
                found = True
                break
        assert found, f"{scenario_path.name}: {row.action} at {row.time}: no key of {keys} at {sources}"
        checked += 1
    return checked


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_posting_names_a_key_whose_written_value_is_applied(path: Path) -> None:
    if path.name.startswith("_") or "scenario:" not in path.read_text(encoding="utf-8"):
        pytest.skip("not a scenario")
    _check(path)


def test_a_dated_key_is_explained_by_the_version_that_decided(tmp_path) -> None:
    (tmp_path / "pack.yaml").write_text(
        "policy: p\nextends: upwork\nfees:\n  - name: freelancer_service\n    payer: freelancer\n"
        "    on: release\n    values:\n      2020-01-01: {percent: 10}\n      2023-05-03: {percent: 20}\n",
        encoding="utf-8",
    )
    (tmp_path / "s.yaml").write_text(
        "scenario: s\npolicy: pack.yaml\npolicy_overrides: {transition: immediate}\nstart: 2023-05-01\n"
        "contracts:\n  - id: c1\n    client: acme\n    freelancer: ana\n"
        "    milestones: [{id: m1, amount: 100.00}, {id: m2, amount: 100.00}]\n    script:\n"
        "      - {at: 0d, client: offer}\n      - {at: 0d, client: fund, milestone: m1}\n"
        "      - {at: 0d, freelancer: accept_offer}\n      - {at: 1d, freelancer: submit, milestone: m1}\n"
        "      - {at: 1d, client: approve, milestone: m1}\n      - {at: 2d, client: fund, milestone: m2}\n"
        "      - {at: 3d, freelancer: submit, milestone: m2}\n"
        "      - {at: 3d, client: approve, milestone: m2}\n",
        encoding="utf-8",
    )
    frame = sim.run(tmp_path / "s.yaml").explain(quiet=True)
    approvals = frame[frame["action"] == "approve"].set_index("milestone")
    assert approvals.loc["m1", "policy_version"] == "2020-01-01"
    assert approvals.loc["m2", "policy_version"] == "2023-05-03"
    assert "fees.freelancer_service = percent 10 (" in approvals.loc["m1", "why"]
    assert (
        f"fees.freelancer_service = percent 20 ({tmp_path / 'pack.yaml'}:9:19)" in approvals.loc["m2", "why"]
    )
    assert "under the version in force from 2023-05-03" in approvals.loc["m2", "why"]
    assert _check(tmp_path / "s.yaml") == 4


def test_an_automatic_event_cites_the_window_length_its_timer_started_with() -> None:
    # immediate mode: a dispute opened under the 7-day answer fires after 7 days, when 5bd is in force
    path = ROOT / "scenarios" / "upwork_history" / "dispute_window_7d_kept_across_change_immediate.yaml"
    frame = sim.run(path).explain(quiet=True)
    first = frame[frame["action"] == "auto_release"].iloc[0]
    assert first["policy_version"] == "2023-12-01"  # the outcome is decided under the new version
    assert "procedures.dispute.client_response.window = 7d (rules/upwork_history.yaml:83:25)" in first["why"]
    assert first["since_cause"] == 7.0
