"""Command-line options around the scenario: --allow-path, warnings, bounds, collection (issue 8)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sim.app.cli import main
from sim.core.yamlio import ALLOW_ENV

pytest_plugins = ["pytester"]

SCRIPTED = """\
scenario: A pack from a shared folder
policy: {policy}
until: 30d
contracts:
  - id: c1
    client: acme
    freelancer: ana
    milestones: [{{id: m1, amount: 100}}]
    script:
      - {{at: 0d, client: offer}}
      - {{at: 0d, client: fund, milestone: m1}}
      - {{at: 1d, freelancer: accept_offer}}
      - {{at: 2d, freelancer: submit, milestone: m1}}
      - {{at: 40d, client: approve, milestone: m1}}
"""


@pytest.fixture(autouse=True)
def _no_allowance_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ALLOW_ENV, raising=False)


@pytest.fixture
def shared(tmp_path: Path) -> tuple[Path, Path]:
    """``tmp/packs/team.yaml`` (outside the scenario's folder) and ``tmp/scen/s.yaml`` naming it."""
    (tmp_path / "packs").mkdir()
    (tmp_path / "packs" / "team.yaml").write_text(
        "policy: team\nextends: upwork\nreview:\n  window: 9d\n", encoding="utf-8"
    )
    (tmp_path / "scen").mkdir()
    scen = tmp_path / "scen" / "s.yaml"
    scen.write_text(SCRIPTED.format(policy="../packs/team.yaml"), encoding="utf-8")
    return tmp_path / "packs", scen


@pytest.mark.parametrize("command", ["run", "validate", "test"])
def test_a_pack_outside_the_scenario_folder_needs_allow_path(
    command: str, shared: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    packs, scen = shared
    extra = ["--out", str(tmp_path / "o"), "--no-charts"] if command == "run" else []
    assert main([command, str(scen), *extra]) == 2
    err = capsys.readouterr().err
    assert "outside the allowed folders" in err and "--allow-path" in err
    assert not (tmp_path / "o").exists()
    code = main([command, str(scen), *extra, "--allow-path", str(packs)])
    out = capsys.readouterr()
    # test: the file has no expectations, so nothing was checked (exit 1); run and validate pass
    assert code == (1 if command == "test" else 0), out.err
    assert "outside the allowed folders" not in out.err


def test_allow_path_must_name_a_folder(shared: tuple[Path, Path], capsys: pytest.CaptureFixture) -> None:
    _, scen = shared
    assert main(["validate", str(scen), "--allow-path", str(scen.parent / "nope")]) == 2
    assert "--allow-path" in capsys.readouterr().err


def test_the_pack_read_through_allow_path_decides(shared: tuple[Path, Path], tmp_path: Path) -> None:
    packs, scen = shared
    out = tmp_path / "o"
    assert (
        main(["run", str(scen), "--out", str(out), "--no-charts", "--quiet", "--allow-path", str(packs)]) == 0
    )
    # the team pack's 9-day window released m1 at 2d + 9d, before the scripted approve at 40d
    events = (out / "events.csv").read_text(encoding="utf-8")
    assert "11,c1,m1,platform,auto_approve,accepted,,100.00" in events


def test_steps_after_until_are_warned_about(
    shared: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    packs, scen = shared
    main(["validate", str(scen), "--allow-path", str(packs)])
    err = capsys.readouterr().err
    assert f"warning: {scen}:14:14: contracts[0].script[4].at: step at 40d" in err
    assert "after until (30d) and will not run" in err


@pytest.mark.parametrize(
    ("option", "says"),
    [
        (["--replications", "10001"], "--replications must be from 1 to 10,000"),
        (["--replications", "0"], "--replications must be from 1 to 10,000"),
        (["--workers", "100000"], "--workers must be from 1 to 256"),
        (["--seed", str(2**64)], "--seed must be a whole number from 0 to 2**63 - 1"),
    ],
)
def test_counting_options_are_bounded_before_anything_runs(
    option: list[str], says: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    scen = Path(__file__).parents[1] / "scenarios" / "populations" / "marketplace_year.yaml"
    assert main(["run", str(scen), "--out", str(tmp_path / "o"), *option]) == 2
    assert says in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


BONUS = """\
scenario: Bonuses larger than any amount the ledger holds
policy: upwork
until: 30d
population:
  arrivals: {count: 2, over: 1d}
  milestones:
    count: 1
    amount: 9000000000000
  client:
    fund_delay: 0
    review:
      delay: 1d
      decision: {bonus: 1}
      bonus_fraction: 900
  freelancer:
    accept: {probability: 1, delay: 0}
    work: 1d
"""


def test_a_sampled_bonus_above_the_cap_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    scen = tmp_path / "bonus.yaml"
    scen.write_text(BONUS, encoding="utf-8")
    assert main(["run", str(scen), "--out", str(tmp_path / "o"), "--no-charts", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "population.client.review.bonus_fraction" in err
    assert "above the largest supported amount" in err
    assert "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_pytest_does_not_read_a_fifo_named_yaml(pytester: pytest.Pytester) -> None:
    fifo = pytester.path / "blocked.yaml"
    os.mkfifo(fifo)
    (pytester.path / "ok.yaml").write_text(
        SCRIPTED.format(policy="upwork").replace("until: 30d\n", "")
        + "expect:\n  - event: {action: auto_approve, milestone: c1/m1, at: 16d}\n",
        encoding="utf-8",
    )
    items = pytester.inline_genitems(str(pytester.path))[0]
    assert [item.path.name for item in items] == ["ok.yaml"]
