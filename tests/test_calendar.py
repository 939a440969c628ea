"""Calendars and business days (FORMAT section 8): the arithmetic, the windows, bad input."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

import sim
from sim.app.cli import main
from sim.policy import load_policy
from sim.policy.calendar import BusinessDays, Calendar, Clock, parse_business_days

D = dt.date
FRI = D(2026, 1, 2)  # a Friday
UTC = Calendar()


def _cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------------------ arithmetic


def test_friday_10_00_plus_5bd_is_next_friday_10_00():
    clock = Clock(UTC, FRI)
    opened = 10 / 24  # Friday 2 January 2026, 10:00
    days = clock.days(opened, BusinessDays(5))
    assert days == 7.0
    assert clock.date_time(opened + days) == "2026-01-09 10:00"


def test_business_days_skip_the_weekend():
    assert UTC.add_business_days(FRI, 1) == D(2026, 1, 5)  # Friday + 1bd = Monday
    assert UTC.add_business_days(D(2026, 1, 7), 3) == D(2026, 1, 12)  # Wednesday + 3bd = Monday
    assert UTC.add_business_days(FRI, 10) == D(2026, 1, 16)  # two whole weeks
    assert UTC.add_business_days(FRI, 0) == FRI


def test_a_holiday_is_skipped_like_a_weekend_day():
    cal = Calendar(holidays=(D(2026, 1, 6),))  # a Tuesday
    assert cal.add_business_days(FRI, 5) == D(2026, 1, 12)
    assert Clock(cal, FRI).days(10 / 24, BusinessDays(5)) == 10.0


def test_holidays_that_push_the_end_onto_more_holidays():
    cal = Calendar(holidays=(D(2026, 1, 9), D(2026, 1, 12)))  # Friday 9, then Monday 12
    assert cal.add_business_days(FRI, 5) == D(2026, 1, 13)


def test_a_holiday_on_a_weekend_changes_nothing():
    cal = Calendar(holidays=(D(2026, 1, 3), D(2026, 1, 4)))  # Saturday and Sunday
    assert cal.add_business_days(FRI, 5) == UTC.add_business_days(FRI, 5) == D(2026, 1, 9)


def test_a_custom_weekend_friday_and_saturday():
    cal = Calendar(weekend=frozenset({4, 5}))  # fri, sat
    thursday = D(2026, 1, 1)
    assert cal.add_business_days(thursday, 1) == D(2026, 1, 4)  # Sunday is a business day
    assert cal.add_business_days(thursday, 5) == D(2026, 1, 8)  # Sun, Mon, Tue, Wed, Thu
    assert not cal.is_business_day(FRI) and cal.is_business_day(D(2026, 1, 4))


def test_a_window_opened_on_a_saturday_keeps_its_time_of_day():
    clock = Clock(UTC, FRI)
    saturday_10 = 1 + 10 / 24
    assert clock.date_time(saturday_10 + clock.days(saturday_10, BusinessDays(5))) == "2026-01-09 10:00"


def test_long_counts_match_day_by_day_counting():
    cal = Calendar(weekend=frozenset({6}), holidays=(D(2026, 3, 2), D(2026, 7, 14), D(2027, 1, 1)))
    day, n = FRI, 0
    while n < 400:
        day += dt.timedelta(days=1)
        n += cal.is_business_day(day)
    assert cal.add_business_days(FRI, 400) == day


def test_plain_durations_are_unchanged_floats():
    clock = Clock(UTC, None)
    assert clock.days(3.25, 14.0) == 14.0
    assert clock.describe(3.25, 14.0) == "14d"
    assert parse_business_days("14d") is None
    assert parse_business_days(" 5bd ") == BusinessDays(5)
    with pytest.raises(ValueError):
        parse_business_days("5.5bd")


# ------------------------------------------------------------------------------ policies


def test_pack_calendar_and_bd_windows_are_read_and_shown_as_written():
    pol = load_policy(
        "upwork",
        [
            ("review.window", "5bd", None, ()),
            ("refund.response_window", "3bd", None, ()),
            ("calendar", {"weekend": ["fri", "sat"], "holidays": ["2026-12-25"]}, None, ()),
        ],
    )
    assert pol.review.window == BusinessDays(5)
    res = pol.resolved()
    assert res["review"]["window"] == "5bd" and res["refund"]["response_window"] == "3bd"
    assert res["calendar"] == {"timezone": "UTC", "weekend": ["fri", "sat"], "holidays": ["2026-12-25"]}


def test_a_pack_without_calendar_or_bd_resolves_as_before():
    res = load_policy("upwork").resolved()
    assert "calendar" not in res and res["review"]["window"] == "14d"


# ------------------------------------------------------------------------------ runs

SCENARIO = """\
scenario: bd window
policy: upwork
policy_overrides: {{review.window: 5bd}}
{start}contracts:
  - id: c1
    client: acme
    freelancer: ana
    milestones:
      - {{id: m1, amount: 123.45, due: 10d}}
    script:
      - {{at: 0d, client: offer}}
      - {{at: 0d, client: fund, milestone: m1}}
      - {{at: 0d, freelancer: accept_offer}}
      - {{at: 10h, freelancer: submit, milestone: m1}}
"""


def test_run_outputs_name_the_bd_window_and_its_end(write, tmp_path: Path, capsys):
    path = write("s.yaml", SCENARIO.format(start="start: 2026-01-02\n"))
    code, out, err = _cli(capsys, "run", str(path), "--out", str(tmp_path / "out"))
    assert code == 0, err
    assert "review window ends in 5bd (on 2026-01-09 10:00)" in out
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["policy"]["review"]["window"] == "5bd"
    assert (tmp_path / "out" / "timeline.png").stat().st_size > 0
    events = (tmp_path / "out" / "events.csv").read_text()
    assert "\n7.416666667,c1,m1,platform,auto_approve,accepted,,123.45," in events


def test_set_review_window_in_business_days(write, capsys):
    path = write("s.yaml", SCENARIO.format(start="start: 2026-01-02\n").replace("{review.window: 5bd}", "{}"))
    result = sim.run(str(path), overrides={"review.window": "2bd"})
    auto = result.events[result.events["action"] == "auto_approve"]
    assert list(auto["time"]) == [4 + 10 / 24]  # Friday 10:00 + 2bd = Tuesday 10:00


# ------------------------------------------------------------------------------ bad input


def test_bd_without_start_is_exit_2_naming_start_and_the_key(write, capsys):
    path = write("s.yaml", SCENARIO.format(start=""))
    code, _out, err = _cli(capsys, "validate", str(path))
    assert code == 2 and "Traceback" not in err
    assert f"{path}:3:20: start: required key 'start' is missing" in err
    assert "review.window is 5bd" in err


def test_set_bd_without_start_is_exit_2_naming_start(write, capsys, tmp_path: Path):
    path = write("s.yaml", SCENARIO.format(start="").replace("{review.window: 5bd}", "{}"))
    out_dir = tmp_path / "o"
    code, _out, err = _cli(capsys, "run", str(path), "--set", "review.window=5bd", "--out", str(out_dir))
    assert code == 2 and "Traceback" not in err
    assert "start: required key 'start' is missing" in err and "review.window is 5bd" in err
    assert not out_dir.exists()


@pytest.mark.parametrize(
    ("override", "line", "column", "message"),
    [
        ("{review.window: 5.5bd}", 3, 35, "business days are a whole number"),
        ("{refund.response_window: -2bd}", 3, 44, "business days are a whole number"),
        ("{calendar.weekend: [sat, sunday]}", 3, 44, "unknown weekday 'sunday'; allowed: mon, tue"),
        ("{calendar.holidays: [2026-02-30]}", 3, 40, "'2026-02-30' is not a date of the calendar"),
        ("{calendar.holidays: [25/12/2026]}", 3, 40, "expected a date like 2026-12-25"),
        ("{calendar.holidays: [2026-12-25, 2026-12-25]}", 3, 39, "2026-12-25 more than once"),
        ("{calendar.timezone: Europe/Paris}", 3, 39, "only UTC"),
    ],
)
def test_bad_calendar_input_is_exit_2_with_its_position(write, capsys, override, line, column, message):
    text = SCENARIO.format(start="start: 2026-01-02\n").replace("{review.window: 5bd}", override)
    path = write("s.yaml", text)
    code, _out, err = _cli(capsys, "validate", str(path))
    assert code == 2 and "Traceback" not in err, err
    assert f"{path}:{line}:{column}:" in err and message in err, err


def test_bad_calendar_in_a_pack_file(write, capsys):
    pack = write(
        "pack.yaml",
        "policy: mine\nextends: upwork\ncalendar:\n"
        "  weekend: [sat, sun]\n  holidays: [2026-12-25, 2026-13-01]\n",
    )
    code, _out, err = _cli(capsys, "validate", str(pack))
    assert code == 2
    assert "pack.yaml:5:26: calendar.holidays[1]: '2026-13-01' is not a date of the calendar" in err
