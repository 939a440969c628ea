"""Policy packs: the upwork pack encodes the article exactly; extends, overrides and errors with positions."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from sim.core.yamlio import InputError, Problem, load_text
from sim.policy import RULE_IDS, Policy, builtin_packs, load_policy, parse_set_option, resolve_pack


def _problems(*args, **kwargs) -> list[Problem]:
    with pytest.raises(InputError) as info:
        load_policy(*args, **kwargs)
    return info.value.problems


def _cli(key: str, value) -> tuple:
    return (key, value, None, ())


# ------------------------------------------------------------------------------ the upwork pack


@pytest.fixture(scope="module")
def upwork() -> Policy:
    return load_policy("upwork")


def test_upwork_pack_is_built_in():
    packs = builtin_packs()
    assert "upwork" in packs
    assert packs["upwork"].name == "upwork.yaml"
    assert "upwork_fees" in packs
    assert "upwork_2026" in packs


def test_upwork_identity(upwork: Policy):
    assert upwork.policy == "upwork"
    assert upwork.extends is None
    assert upwork.currency == "USD"
    assert upwork.digits == 2
    assert upwork.title


def test_upwork_review_14_days_then_approve(upwork: Policy):
    assert upwork.review.window == 14.0
    assert upwork.review.on_timeout == "approve"
    assert upwork.review.max_change_requests is None  # the article sets no limit


def test_upwork_refund_7_days_then_refund_and_dispute_allowed(upwork: Policy):
    assert upwork.refund.response_window == 7.0
    assert upwork.refund.on_timeout == "refund"
    assert upwork.refund.dispute is True


def test_upwork_minimum_5_dollars_one_at_a_time_in_order(upwork: Policy):
    assert upwork.milestones.minimum_amount == 500
    assert type(upwork.milestones.minimum_amount) is int
    assert upwork.milestones.funding == "one_at_a_time"
    assert upwork.milestones.funding_order == "sequential"


def test_upwork_funded_milestones_fully_locked(upwork: Policy):
    assert upwork.milestones.active_locked == frozenset({"amount", "due_date", "order", "delete"})


def test_upwork_partial_and_bonus_release(upwork: Policy):
    assert upwork.release.partial is True
    assert upwork.release.bonus is True


def test_upwork_offer_refunds(upwork: Policy):
    assert upwork.offer.refund_on_withdraw is True
    assert upwork.offer.refund_on_decline is True
    assert upwork.offer.expires_after is None  # the article gives no expiry


def test_upwork_no_fees_no_hold(upwork: Policy):
    assert upwork.fees == ()
    assert upwork.hold.after_release == 0.0


def test_upwork_resolved_is_what_summary_json_shows(upwork: Policy):
    resolved = upwork.resolved()
    assert resolved["milestones"] == {
        "minimum_amount": "5.00",
        "funding": "one_at_a_time",
        "funding_order": "sequential",
        "active_locked": ["amount", "delete", "due_date", "order"],
    }
    assert resolved["review"] == {"window": "14d", "on_timeout": "approve", "max_change_requests": None}
    assert resolved["refund"] == {"response_window": "7d", "on_timeout": "refund", "dispute": True}
    assert resolved["release"] == {"partial": True, "bonus": True}
    assert resolved["offer"] == {"refund_on_withdraw": True, "refund_on_decline": True, "expires_after": None}
    assert resolved["hold"] == {"after_release": "0d"}
    assert resolved["fees"] == []


def test_policy_is_frozen(upwork: Policy):
    with pytest.raises(Exception):  # noqa: B017 - pydantic raises its ValidationError
        upwork.review.window = 7.0  # type: ignore[misc]


def test_rule_ids_are_those_of_format_md():
    assert set(RULE_IDS) == {
        "minimum_amount",
        "one_at_a_time",
        "funding_order",
        "active_locked",
        "partial_release",
        "bonus",
        "dispute",
        "max_change_requests",
        "invalid_state",
        "insufficient_escrow",
        # FORMAT section 7: procedures
        "procedure",
        "not_your_turn",
        # issue 10: late cancellation (Fiverr) and the freelancer's cancel (Freelancer.com)
        "late_cancel",
        "freelancer_cancel",
        # issue 10: Guru's delayed auto-pay (review.extensions) and the freelancer's lock on it
        "review_extension",
        # issue 10: PeoplePerHour's iterations before a refund request (after_change_requests)
        "revisions_first",
        # issue 10: Fiverr's early payout, reversed releases, and due-date extension requests
        "early_payout",
        "reversal",
        "due_extension",
    }


# ------------------------------------------------------------------------------ upwork_fees extends upwork


def test_upwork_fees_extends_upwork():
    pol = load_policy("upwork_fees")
    assert pol.policy == "upwork_fees"
    assert pol.extends == "upwork"
    # inherited unchanged
    assert pol.review.window == 14.0
    assert pol.refund.response_window == 7.0
    assert pol.milestones.minimum_amount == 500
    assert pol.milestones.funding == "one_at_a_time"
    # its own
    assert pol.hold.after_release == 5.0
    assert pol.offer.expires_after == 30.0
    assert pol.offer.refund_on_withdraw is True  # a sibling key of the overridden one survives


def test_upwork_fees_fees():
    pol = load_policy("upwork_fees")
    fees = {(f.payer, f.on): f for f in pol.fees}
    assert set(fees) == {
        ("freelancer", "release"),
        ("freelancer", "bonus"),
        ("client", "funding"),
        ("client", "bonus"),
    }
    assert fees[("freelancer", "release")].percent == Decimal(10)
    assert fees[("freelancer", "bonus")].percent == Decimal(10)
    assert fees[("client", "funding")].percent == Decimal(5)
    assert fees[("client", "bonus")].percent == Decimal(5)
    assert all(f.rounding == "half_up" and f.fixed is None for f in pol.fees)


def test_upwork_fees_resolved():
    resolved = load_policy("upwork_fees").resolved()
    assert resolved["hold"] == {"after_release": "5d"}
    assert resolved["offer"]["expires_after"] == "30d"
    assert {
        "name": "freelancer_service",
        "payer": "freelancer",
        "on": "release",
        "percent": "10",
    }.items() <= (resolved["fees"][0].items())


# ------------------------------------------------------------------------------ by path, extends


def test_load_by_path_relative_and_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "mine.yaml").write_text(
        "policy: mine\nextends: upwork\nreview:\n  window: 10d\n", encoding="utf-8"
    )
    by_abs = load_policy(str(tmp_path / "mine.yaml"))
    assert by_abs.policy == "mine"
    assert by_abs.review.window == 10.0
    assert by_abs.review.on_timeout == "approve"  # from upwork
    assert by_abs.refund.response_window == 7.0
    by_base = load_policy("mine.yaml", base=tmp_path)
    assert by_base == by_abs
    monkeypatch.chdir(tmp_path)
    assert load_policy("mine.yaml") == by_abs
    assert load_policy(Path("mine.yaml")) == by_abs


def test_extends_a_path_relative_to_the_child(tmp_path: Path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "parent.yaml").write_text(
        "policy: parent\nextends: upwork\nrelease:\n  bonus: false\n", encoding="utf-8"
    )
    (tmp_path / "child.yaml").write_text(
        "policy: child\nextends: sub/parent.yaml\nrelease:\n  partial: false\n", encoding="utf-8"
    )
    pol = load_policy(str(tmp_path / "child.yaml"))
    assert pol.policy == "child"
    assert pol.release.partial is False
    assert pol.release.bonus is False
    assert pol.review.window == 14.0


def test_extends_list_is_replaced_not_merged(tmp_path: Path):
    (tmp_path / "p.yaml").write_text(
        "policy: p\nextends: upwork_fees\nfees:\n  - {name: only, payer: client, on: funding, percent: 1}\n",
        encoding="utf-8",
    )
    pol = load_policy(str(tmp_path / "p.yaml"))
    assert [f.name for f in pol.fees] == ["only"]
    assert pol.hold.after_release == 5.0


def test_extends_cycle(tmp_path: Path):
    (tmp_path / "a.yaml").write_text("policy: a\nextends: b.yaml\n", encoding="utf-8")
    (tmp_path / "b.yaml").write_text("policy: b\nextends: a.yaml\n", encoding="utf-8")
    [problem] = _problems(str(tmp_path / "a.yaml"))
    assert problem.file.endswith("b.yaml")
    assert (problem.line, problem.column) == (2, 10)
    assert problem.key == "extends"
    assert "cycle" in problem.message


def test_extends_itself(tmp_path: Path):
    (tmp_path / "self.yaml").write_text("policy: s\nextends: self.yaml\n", encoding="utf-8")
    [problem] = _problems(str(tmp_path / "self.yaml"))
    assert problem.line == 2
    assert "cycle" in problem.message


def test_extends_unknown_pack(tmp_path: Path):
    (tmp_path / "e.yaml").write_text("policy: e\nextends: upwrok\n", encoding="utf-8")
    [problem] = _problems(str(tmp_path / "e.yaml"))
    assert (problem.line, problem.column, problem.key) == (2, 10, "extends")
    assert "unknown policy pack 'upwrok'" in problem.message
    assert "upwork" in problem.message


def test_unknown_pack_name():
    [problem] = _problems("upwrk")
    assert "unknown policy pack 'upwrk'" in problem.message
    assert "upwork, upwork_2026, upwork_fees" in problem.message


def test_unknown_pack_path(tmp_path: Path):
    [problem] = _problems(str(tmp_path / "missing.yaml"))
    assert "unknown policy pack" in problem.message


def test_resolve_pack():
    assert resolve_pack("upwork") == builtin_packs()["upwork"]
    assert resolve_pack("nope") is None


def test_policy_file_must_be_a_mapping(tmp_path: Path):
    (tmp_path / "l.yaml").write_text("- a\n- b\n", encoding="utf-8")
    [problem] = _problems(str(tmp_path / "l.yaml"))
    assert problem.line == 1
    assert "mapping" in problem.message


def test_missing_required_section(tmp_path: Path):
    (tmp_path / "f.yaml").write_text(
        "policy: f\nmilestones:\n  minimum_amount: 5\nrefund: {response_window: 7d}\n"
    )
    [problem] = _problems(str(tmp_path / "f.yaml"))
    assert (problem.key, problem.line, problem.column) == ("review", 1, 1)
    assert "required key is missing" in problem.message


def test_every_missing_required_section_is_reported(tmp_path: Path):
    (tmp_path / "f.yaml").write_text("policy: f\nmilestones:\n  minimum_amount: 5\n", encoding="utf-8")
    problems = _problems(str(tmp_path / "f.yaml"))
    keys = {p.key for p in problems}
    assert {"review", "refund"} <= keys
    assert all("required key is missing" in p.message for p in problems)


# ------------------------------------------------------------------------------ dotted overrides


def test_dotted_overrides():
    pol = load_policy(
        "upwork",
        [
            _cli("review.window", "7d"),
            _cli("release.partial", False),
            _cli("milestones.minimum_amount", "10.50"),
            _cli("review.max_change_requests", 2),
        ],
    )
    assert pol.review.window == 7.0
    assert pol.review.on_timeout == "approve"  # siblings untouched
    assert pol.release.partial is False
    assert pol.release.bonus is True
    assert pol.milestones.minimum_amount == 1050
    assert pol.review.max_change_requests == 2


def test_override_a_whole_section_merges_into_it():
    pol = load_policy("upwork", [_cli("review", {"window": "3d"})])
    assert pol.review.window == 3.0
    assert pol.review.on_timeout == "approve"


def test_override_applies_on_top_of_extends():
    pol = load_policy("upwork_fees", [_cli("hold.after_release", "0d"), _cli("fees", [])])
    assert pol.hold.after_release == 0.0
    assert pol.fees == ()


def test_overrides_do_not_leak_between_loads():
    load_policy("upwork", [_cli("review.window", "1d")])
    assert load_policy("upwork").review.window == 14.0


def test_override_from_a_document_points_at_it():
    doc = load_text("policy: upwork\npolicy_overrides:\n  review.windw: 3d\n", "s.yaml")
    [problem] = _problems("upwork", [("review.windw", "3d", doc, ("policy_overrides", "review.windw"))])
    assert (problem.file, problem.line, problem.column) == ("s.yaml", 3, 3)
    assert problem.key == "review.windw"
    assert "did you mean 'window'" in problem.message


def test_override_from_the_command_line():
    [problem] = _problems("upwork", [_cli("review.windw", "3d")])
    assert problem.file.startswith("<command line")
    assert problem.key == "review.windw"
    assert "unknown key 'windw'" in problem.message
    assert "did you mean 'window'" in problem.message


def test_override_into_a_list_is_blamed_on_the_override():
    [problem] = _problems("upwork", [_cli("fees.0.percent", 3)])
    assert problem.file.startswith("<command line")
    assert "fees" in (problem.key or "")


def test_malformed_override_key():
    [problem] = _problems("upwork", [_cli("review..window", "3d")])
    assert "malformed override key 'review..window'" in problem.message


def test_parse_set_option():
    assert parse_set_option("review.window=7d") == ("review.window", "7d")
    assert parse_set_option("release.partial=false") == ("release.partial", False)
    assert parse_set_option("milestones.minimum_amount=5.50") == ("milestones.minimum_amount", 5.5)
    assert parse_set_option("milestones.active_locked=[amount, order]") == (
        "milestones.active_locked",
        ["amount", "order"],
    )
    assert parse_set_option("review.on_timeout=no") == ("review.on_timeout", "no")
    with pytest.raises(InputError, match="KEY=VALUE"):
        parse_set_option("review.window")


# ------------------------------------------------------------------------------ unknown keys, wrong types


BAD_PACK = """\
policy: bad
extends: upwork
review:
  windw: 3d
release:
  partial: "yes"
milestones:
  minimum_amount: 5.001
  funding: sometimes
refund:
  response_window: 14x
"""


@pytest.fixture
def bad_pack(tmp_path: Path) -> dict[str, Problem]:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_PACK, encoding="utf-8")
    problems = _problems(str(path))
    assert all(p.file == str(path) for p in problems)
    return {p.key: p for p in problems}


def test_every_problem_of_a_pack_is_reported(bad_pack):
    assert set(bad_pack) == {
        "review.windw",
        "release.partial",
        "milestones.minimum_amount",
        "milestones.funding",
        "refund.response_window",
    }


def test_unknown_key_in_pack_with_position_and_did_you_mean(bad_pack):
    problem = bad_pack["review.windw"]
    assert (problem.line, problem.column) == (4, 3)
    assert "unknown key 'windw'" in problem.message
    assert "did you mean 'window'" in problem.message
    allowed = "allowed: extensions, max_change_requests, notices, on_timeout, starts_after, window"
    assert allowed in problem.message


def test_partial_yes_is_not_a_boolean(bad_pack):
    problem = bad_pack["release.partial"]
    assert (problem.line, problem.column) == (6, 12)
    assert "boolean" in problem.message
    assert "'yes'" in problem.message


def test_minimum_amount_with_three_decimals(bad_pack):
    problem = bad_pack["milestones.minimum_amount"]
    assert (problem.line, problem.column) == (8, 19)
    assert "5.001" in problem.message
    assert "more than 2 decimal places" in problem.message


def test_funding_sometimes(bad_pack):
    problem = bad_pack["milestones.funding"]
    assert (problem.line, problem.column) == (9, 12)
    assert "'sometimes'" in problem.message
    assert "one_at_a_time" in problem.message
    assert "any_number" in problem.message


def test_window_14x(bad_pack):
    problem = bad_pack["refund.response_window"]
    assert (problem.line, problem.column) == (11, 20)
    assert "14x" in problem.message


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        ("review.window", "14x", "cannot read duration '14x'"),
        ("review.window", "-1d", "-1d"),
        ("review.window", -3, "zero or positive"),
        ("release.partial", "yes", "boolean"),
        ("release.partial", 1, "boolean"),
        ("refund.dispute", "no", "boolean"),
        ("milestones.minimum_amount", 5.001, "more than 2 decimal places"),
        ("milestones.minimum_amount", 0, "greater than zero"),
        ("milestones.minimum_amount", -5, "greater than zero"),
        ("milestones.minimum_amount", True, "expected an amount"),
        ("milestones.funding", "sometimes", "'sometimes'"),
        ("milestones.funding_order", "random", "'random'"),
        ("milestones.active_locked", ["amount", "colour"], "'colour'"),
        ("review.on_timeout", "release", "'release'"),
        ("refund.on_timeout", "keep", "'keep'"),
        ("review.max_change_requests", -1, "greater than or equal to 0"),
        ("review.max_change_requests", True, "integer"),
        ("review.max_change_requests", 1.5, "integer"),
        ("currency", "XYZ", "'XYZ'"),
        ("review", 3, "wrong type"),
        ("fees", [{"name": "x", "payer": "nobody", "on": "release", "percent": 1}], "'nobody'"),
        ("fees", [{"name": "x", "payer": "client", "on": "release", "percent": 101}], "between 0 and 100"),
        ("fees", [{"name": "x", "payer": "client", "on": "release", "percnt": 3}], "did you mean 'percent'"),
        ("foo", 1, "unknown key 'foo'"),
    ],
)
def test_wrong_values_are_input_errors_naming_the_key(key, value, needle):
    problems = _problems("upwork", [_cli(key, value)])
    assert any(p.key is not None and p.key.startswith(key.split(".")[0]) for p in problems)
    assert any(needle in p.message for p in problems), [str(p) for p in problems]


def test_fee_fields():
    pol = load_policy(
        "upwork",
        [
            _cli(
                "fees",
                [
                    {
                        "name": "svc",
                        "payer": "freelancer",
                        "on": "release",
                        "percent": "2.75",
                        "fixed": 0.3,
                        "rounding": "half_even",
                    }
                ],
            )
        ],
    )
    [fee] = pol.fees
    assert fee.percent == Decimal("2.75")
    assert fee.fixed == 30
    assert fee.rounding == "half_even"
