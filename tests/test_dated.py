"""Dated policy values (FORMAT section 8): versions, transitions at their boundaries, bad input."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sim
from sim.app.cli import main
from sim.core.yamlio import InputError
from sim.inputs.scenario import load_scenario
from sim.policy.model import flat_values, load_policy

CHANGE = "2027-03-01"  # t = 9d for scenarios starting 2027-02-20 (a Saturday)
MS = 1 / 86_400_000

PACK = f"""\
policy: dated_test
extends: upwork
review:
  window: {{values: {{{CHANGE}: 10d}}}}
fees:
  - name: freelancer_service
    payer: freelancer
    on: release
    values:
      2020-01-01: {{percent: 10}}
      {CHANGE}: {{percent: 20}}
"""


def _scenario(folder: Path, script: list[str], transition: str, *, start: str = "2027-02-20") -> Path:
    (folder / "pack.yaml").write_text(PACK, encoding="utf-8")
    steps = "\n".join(f"      - {s}" for s in script)
    path = folder / f"s_{transition}.yaml"
    path.write_text(
        f"""\
scenario: crossing the change
policy: pack.yaml
policy_overrides: {{transition: {transition}}}
start: {start}
contracts:
  - id: c1
    client: acme
    freelancer: ana
    milestones:
      - {{id: m1, amount: 300.00}}
      - {{id: m2, amount: 300.00}}
    script:
{steps}
""",
        encoding="utf-8",
    )
    return path


def _fees(result: sim.Result) -> dict[str, int]:
    led = result.ledger
    fees = led[led["flow"] == "fees"]
    return {m: int(fees[fees["milestone"] == m]["amount"].sum()) for m in ("m1", "m2")}


def _auto(result: sim.Result) -> list[float]:
    ev = result.events
    return sorted(ev[ev["action"] == "auto_approve"]["time"].round(6).tolist())


@pytest.mark.parametrize(
    ("transition", "fees"),
    [
        # m1 released before the change (10%); m2 funded and released after it
        ("new_contracts", {"m1": 3000, "m2": 3000}),  # offered before: 10% for the whole contract
        ("new_milestones", {"m1": 3000, "m2": 6000}),  # m2 funded after the change: 20%
        ("immediate", {"m1": 3000, "m2": 6000}),
    ],
)
def test_each_transition_mode_charges_its_version(tmp_path: Path, transition: str, fees: dict) -> None:
    script = [
        "{at: 0d, client: offer}",
        "{at: 0d, client: fund, milestone: m1}",
        "{at: 1d, freelancer: accept_offer}",
        "{at: 2d, freelancer: submit, milestone: m1}",
        "{at: 3d, client: approve, milestone: m1}",
        "{at: 10d, client: fund, milestone: m2}",
        "{at: 11d, freelancer: submit, milestone: m2}",
        "{at: 12d, client: approve, milestone: m2}",
    ]
    result = sim.run(_scenario(tmp_path, script, transition))
    assert _fees(result) == fees
    ev = result.events
    decided = ev[ev["action"] == "approve"].set_index("milestone")["policy_version"].to_dict()
    assert decided["m1"] == "2020-01-01"
    assert decided["m2"] == ("2020-01-01" if transition == "new_contracts" else CHANGE)


@pytest.mark.parametrize(("offset", "fee"), [(-MS, 3000), (0.0, 6000)])
def test_an_offer_one_millisecond_before_the_change_is_grandfathered(tmp_path, offset, fee) -> None:
    at = 9 + offset
    script = [
        f"{{at: {at!r}, client: offer}}",
        f"{{at: {at!r}, client: fund, milestone: m1}}",
        "{at: 10d, freelancer: accept_offer}",
        "{at: 10d, freelancer: submit, milestone: m1}",
        "{at: 11d, client: approve, milestone: m1}",
    ]
    result = sim.run(_scenario(tmp_path, script, "new_contracts"))
    assert _fees(result)["m1"] == fee


@pytest.mark.parametrize(("fund_at", "fee"), [(9 - MS, 3000), (9.0, 6000)])
def test_a_milestone_funded_on_the_change_date_takes_the_new_version(tmp_path, fund_at, fee) -> None:
    script = [
        "{at: 0d, client: offer}",
        "{at: 1d, freelancer: accept_offer}",
        f"{{at: {fund_at!r}, client: fund, milestone: m1}}",
        "{at: 10d, freelancer: submit, milestone: m1}",
        "{at: 11d, client: approve, milestone: m1}",
    ]
    result = sim.run(_scenario(tmp_path, script, "new_milestones"))
    assert _fees(result)["m1"] == fee


@pytest.mark.parametrize(
    ("transition", "autos"),
    [
        # submitted at 5d (window 14d, started before the change): it keeps 14d in every mode;
        # the second submission at 12d is after the change: 10d unless the contract is grandfathered
        ("new_contracts", [19.0, 26.0]),
        ("new_milestones", [19.0, 26.0]),  # m2 was funded at 5d, before the change
        ("immediate", [19.0, 22.0]),
    ],
)
def test_a_timer_keeps_the_length_it_started_with(tmp_path, transition, autos) -> None:
    script = [
        "{at: 0d, client: offer}",
        "{at: 0d, client: fund, milestone: m1}",
        "{at: 1d, freelancer: accept_offer}",
        "{at: 5d, freelancer: submit, milestone: m1}",
        "{at: 5d, client: fund, milestone: m2}",
        "{at: 12d, freelancer: submit, milestone: m2}",
    ]
    path = _scenario(tmp_path, script, transition)
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text.replace("policy_overrides: {", "policy_overrides: {milestones.funding: any_number, ")
    )
    assert _auto(sim.run(path)) == autos


def test_versions_and_policies_at(capsys) -> None:
    policy = load_policy("upwork_history")
    assert [v.shown for v in policy.versions][:3] == ["2015-01-01", "2016-06-01", "2020-01-01"]
    old = policy.at(dt.date(2023, 5, 2))
    new = policy.at(dt.date(2023, 5, 3))
    assert old.fees[0].tiers and old.fees[0].tier_basis == "pair_lifetime"
    assert not new.fees[0].tiers and str(new.fees[0].percent) == "10"
    assert new.source("fees.freelancer_service.percent").startswith("rules/upwork_history.yaml:")
    assert main(["policies", "--at", "2024-06-01", "upwork_history"]) == 0
    out = capsys.readouterr().out
    assert "in force on 2024-06-01: the version from 2023-12-01" in out
    assert "window: 5bd" in out
    assert main(["policies", "--at", "2014-06-01", "upwork_history"]) == 2
    assert "before the first dated version" in capsys.readouterr().err
    assert main(["policies", "--at", "June 2024", "upwork_history"]) == 2
    assert "--at expects a date like 2024-06-01" in capsys.readouterr().err


def _problem(tmp_path: Path, body: str) -> str:
    path = tmp_path / "bad.yaml"
    path.write_text("policy: bad\nextends: upwork\n" + body, encoding="utf-8")
    with pytest.raises(InputError) as info:
        load_policy(path)
    return str(info.value)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("review:\n  window: {values: {2027-03-01: 10d, 2020-01-01: 14d}}\n", "bad.yaml:4:38"),
        ("review:\n  window: {values: {2027-03-01: 10d, 2020-01-01: 14d}}\n", "dates must be in order"),
        ("review:\n  window: {values: {2027-03-01: 10d, 2027-03-01: 9d}}\n", "duplicate key"),
        ("review:\n  window: {values: {2027-03-01: ten days}}\n", "bad.yaml:4:33"),
        ("review:\n  window: {values: {2027-03-01: ten days}}\n", "cannot read duration"),
        ("review:\n  window: {values: {2027-02-30: 10d}}\n", "not a date of the calendar"),
        ("review:\n  window: {values: {March 2027: 10d}}\n", "expected a date like 2023-05-03"),
        ("currency: {values: {2027-03-01: GBP}}\n", "currency cannot change over time"),
        ("milestones:\n  funding: {values: {2027-03-01: any_number}}\n", "cannot change over time"),
        ("review:\n  window: {values: {}}\n", "values: maps dates to values"),
        ("review:\n  window: {values: {2027-03-01: {values: {2027-04-01: 3d}}}}\n", "another dated value"),
        ("transition: sometimes\n", "transition"),
    ],
)
def test_bad_dated_values_name_file_line_column(tmp_path, body, message) -> None:
    assert message in _problem(tmp_path, body)


def test_a_dated_pack_needs_a_start_on_or_after_its_first_version(tmp_path, capsys) -> None:
    base = (
        "scenario: s\npolicy: upwork_history\ncontracts:\n  - {id: c1, client: a, freelancer: b, "
        "milestones: [{id: m1, amount: 10.00}], script: [{at: 0d, client: offer}]}\n"
    )
    (tmp_path / "no_start.yaml").write_text(base, encoding="utf-8")
    assert main(["validate", str(tmp_path / "no_start.yaml")]) == 2
    assert "required key 'start' is missing: the policy has dated values" in capsys.readouterr().err
    (tmp_path / "early.yaml").write_text(base + "start: 2014-12-31\n", encoding="utf-8")
    assert main(["validate", str(tmp_path / "early.yaml")]) == 2
    err = capsys.readouterr().err
    assert "early.yaml:5:8" in err and "before the first dated version of upwork_history" in err


# ------------------------------------------------------------------ a single version is today's pack

SCRIPTED = sorted(
    p
    for p in (Path(__file__).parent.parent / "scenarios" / "upwork").glob("*.yaml")
    if "population" not in p.read_text(encoding="utf-8")
)


def _columns_without(text: str, drop: set[str]) -> list[list[str]]:
    rows = list(csv.reader(io.StringIO(text)))
    keep = [i for i, name in enumerate(rows[0]) if name not in drop]
    return [[r[i] for i in keep] for r in rows]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    index=st.integers(0, max(len(SCRIPTED) - 1, 0)),
    window=st.integers(1, 30),
    first=st.dates(dt.date(1990, 1, 1), dt.date(2026, 3, 2)),
)
def test_a_single_dated_version_gives_todays_results_byte_for_byte(tmp_path_factory, index, window, first):
    folder = tmp_path_factory.mktemp("single")
    base = dataclasses.replace(load_scenario(SCRIPTED[index]), start=dt.date(2026, 3, 2))
    outs = {}
    for name, value in (("plain", f"{window}d"), ("dated", {"values": {first.isoformat(): f"{window}d"}})):
        scenario = base.with_overrides([("review.window", value)])
        assert scenario.policy.dated == (name == "dated")
        outs[name] = sim.run(scenario).write(folder / name)
    for table in ("ledger.csv", "milestones.csv", "balances.csv"):
        assert (outs["plain"] / table).read_bytes() == (outs["dated"] / table).read_bytes(), table
    plain = (outs["plain"] / "events.csv").read_text(encoding="utf-8")
    dated = (outs["dated"] / "events.csv").read_text(encoding="utf-8")
    drop = {"source", "policy_version"}  # where the window was written, and the one version's date
    assert _columns_without(plain, drop) == _columns_without(dated, drop)
    a = json.loads((outs["plain"] / "summary.json").read_text(encoding="utf-8"))
    b = json.loads((outs["dated"] / "summary.json").read_text(encoding="utf-8"))
    for key in ("totals", "kpis", "contracts", "expectations"):
        assert a[key] == b[key], key


def test_upwork_history_in_2026_is_upwork_2026() -> None:
    # the history ends where the current pack stands: every value the same on a 2026 date
    now = flat_values(load_policy("upwork_history").at(dt.date(2026, 6, 1)).resolved_values())
    current = flat_values(load_policy("upwork_2026").resolved_values())
    differ = {k for k in now.keys() | current.keys() if now.get(k) != current.get(k)}
    assert differ == {"policy", "title", "extends"}
