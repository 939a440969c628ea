"""The HTML report: every section, every chart embedded, no network, deterministic; the CLI writes it."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

import sim
from sim.app.cli import main
from sim.viz import plots, report

ROOT = Path(__file__).resolve().parent.parent
UPWORK = ROOT / "scenarios" / "upwork"

POPULATION = """
scenario: A tiny marketplace for the report
policy: upwork
policy_overrides: {review.window: 10d}
seed: 11
replications: 2
start: 2026-01-05
until: 30d
population:
  arrivals: {rate: 2/d}
  milestones:
    amount: {lognormal: {median: 300, sigma: 0.8}}
  client:
    review:
      delay: {exponential: {mean: 5d}}
      decision: {approve: 0.8, refund: 0.2}
  freelancer:
    refund_response: {approve: 0.2, dispute: 0.8, silent: 0.0, delay: {exponential: {mean: 1d}}}
  platform:
    dispute_agents: 1
    dispute_handling: {exponential: {mean: 8d}}
"""


@pytest.fixture(scope="module")
def scripted(tmp_path_factory: pytest.TempPathFactory) -> tuple[sim.Result, Path]:
    result = sim.run(UPWORK / "refund_disputed_and_resolved.yaml")
    out = tmp_path_factory.mktemp("scripted")
    return result, report.write_report(result, out)


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> tuple[sim.Result, Path]:
    folder = tmp_path_factory.mktemp("pop")
    path = folder / "tiny.yaml"
    path.write_text(POPULATION, encoding="utf-8")
    result = sim.run(path)
    return result, report.write_report(result, folder / "out")


def _embedded(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)]


@pytest.mark.parametrize("which", ["scripted", "population"])
def test_report_has_every_section_and_every_chart(which: str, request: pytest.FixtureRequest) -> None:
    result, path = request.getfixturevalue(which)
    assert path.name == "report.html"
    html = path.read_text(encoding="utf-8")
    for section in report.SECTIONS:
        assert f'<section id="{section}">' in html
    assert result.scenario.title in html
    names = plots.applicable(result)
    images = _embedded(html)
    assert len(images) == len(names) >= 5
    for name, png in zip(names, images, strict=True):
        file = path.parent / f"{name}.png"
        assert file.read_bytes() == png, f"{name}.png is the embedded image"
        assert png.startswith(b"\x89PNG") and len(png) > 10_000
        assert f'id="chart-{name}"' in html
    for kpi in ("auto_approved_share", "time_to_payment_days_mean", "escrow_float_avg"):
        assert f"<code>{kpi}</code>" in html
    assert "review.window" in html


def test_report_is_self_contained(scripted: tuple[sim.Result, Path]) -> None:
    html = scripted[1].read_text(encoding="utf-8")
    assert "<script" not in html.lower()
    assert not re.search(r"(src|href)=\"(https?:)?//", html), "no network resources"
    assert "<style>" in html
    assert all(href.startswith("#") for href in re.findall(r'href="([^"]*)"', html))


def test_scripted_report_shows_ledger_totals_and_expectations(scripted: tuple[sim.Result, Path]) -> None:
    _, path = scripted
    html = path.read_text(encoding="utf-8")
    fund_flows = html.split('<section id="fund-flows">')[1].split("</section>")[0]
    for amount in ("500.00", "333.33", "166.67"):
        assert amount in fund_flows
    assert "client:acme" in fund_flows and "freelancer:ana:available" in fund_flows
    expectations = html.split('<section id="expectations">')[1]
    assert "7 of 7 hold" in expectations and expectations.count("holds</span>") == 7
    assert "milestone c1/m1 is disputed" in expectations
    assert "<code>time_to_payment</code>: no milestone was paid after a submission" in html


def test_population_report_shows_intervals_and_overrides(population: tuple[sim.Result, Path]) -> None:
    _, path = population
    html = path.read_text(encoding="utf-8")
    assert "dispute_queue.png" in html and (path.parent / "dispute_queue.png").exists()
    assert "Mean over 2 replications" in html and "…" in html
    assert 'review.window</code> <span class="badge set">overridden</span>' in html
    assert "10d" in html
    assert "Population settings" in html
    assert "This scenario states no expectations." in html
    assert "timeline" in html.split('<section id="charts">')[1]  # listed as not drawn, with why


def test_failed_expectations_are_explained(tmp_path: Path) -> None:
    text = (UPWORK / "auto_approve_after_silence.yaml").read_text(encoding="utf-8")
    text = text.replace("at: 19d", "at: 18d", 1)
    path = tmp_path / "wrong.yaml"
    path.write_text(text, encoding="utf-8")
    result = sim.run(path)
    assert not result.ok
    html = report.write_report(result, tmp_path / "out").read_text(encoding="utf-8")
    assert 'class="badge bad">' in html and "fails</span>" in html
    assert '<ul class="problems"><li>' in html


def test_report_is_deterministic(tmp_path: Path) -> None:
    result = sim.run(UPWORK / "partial_release_credit_funds_next.yaml")
    first = report.write_report(result, tmp_path / "a")
    again = report.write_report(sim.run(UPWORK / "partial_release_credit_funds_next.yaml"), tmp_path / "b")
    assert first.read_bytes() == again.read_bytes()
    for png in first.parent.glob("*.png"):
        assert png.read_bytes() == (tmp_path / "b" / png.name).read_bytes()
        assert b"Software" not in png.read_bytes()


def test_cli_run_writes_the_report_unless_told_not_to(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    scenario = str(UPWORK / "refund_approved.yaml")
    assert main(["run", scenario, "--out", str(tmp_path / "with"), "--quiet"]) == 0
    assert (tmp_path / "with" / "report.html").exists()
    assert (tmp_path / "with" / "timeline.png").exists()
    assert main(["run", scenario, "--out", str(tmp_path / "without"), "--quiet", "--no-charts"]) == 0
    assert not (tmp_path / "without" / "report.html").exists()
    assert not list((tmp_path / "without").glob("*.png"))
    capsys.readouterr()


def test_scripted_report_says_why_each_posting_happened(
    scripted: tuple[sim.Result, Path], population: tuple[sim.Result, Path]
) -> None:
    result, path = scripted
    why = path.read_text(encoding="utf-8").split('<section id="why">')[1].split("</section>")[0]
    frame = result.explain(quiet=True)
    assert why.count("<tr>") == len(frame) + 1  # the header, then one row per posting or refusal
    assert "because milestones.funding = one_at_a_time (rules/upwork.yaml:10:12)" in why
    assert "because refund.dispute = true (rules/upwork.yaml:23:12)" in why
    assert "500.00 USD client:acme -&gt; escrow:c1 (funded)" in why
    pop_why = population[1].read_text(encoding="utf-8").split('<section id="why">')[1].split("</section>")[0]
    assert "milestone-sim explain OUT_DIR --contract ID" in pop_why
