"""Bad input through the CLI: exit 2, file:line:column and the key, never a traceback, nothing written.

Each case edits one line of a valid scenario (BASE); its expected position is the line of that edit.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from sim.app.cli import main

ROOT = Path(__file__).resolve().parent.parent

BASE = """\
scenario: Bad input base
policy: upwork
contracts:
  - id: c1
    client: acme
    freelancer: ana
    milestones:
      - {id: m1, amount: 500.00, due: 10d}
      - {id: m2, amount: 250.00, due: 20d}
    script:
      - {at: 0d, client: offer}
      - {at: 0d, client: fund, milestone: m1}
      - {at: 1d, freelancer: accept_offer}
      - {at: 5d, freelancer: submit, milestone: m1}
expect:
  - at: 19d
    milestones: {c1/m1: released}
    balances: {escrow: 0, "freelancer:ana": 500, "client:acme": 500}
    totals: {released: 500}
  - event: {action: auto_approve, milestone: c1/m1, at: 19d}
"""


def _edit(old: str, new: str) -> str:
    assert BASE.count(old) == 1, old
    return BASE.replace(old, new)


def _cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    line: int | None  # expected line of the problem
    column: int | None
    key: str | None  # the offending key as it must appear in the message
    says: str  # a fragment of the explanation


BOMB_LINE = "bomb: [&a [1,1,1,1,1,1,1,1,1,1], " + ", ".join(
    f"&{n} [{', '.join([f'*{p}'] * 10)}]" for p, n in zip("abcdef", "bcdefg", strict=True)
)

CASES = [
    Case(
        "yaml syntax error",
        _edit("{id: m2, amount: 250.00, due: 20d}", "{id: m2, amount: 250.00, due: 20d"),
        10,
        11,
        None,
        "YAML syntax error",
    ),
    Case(
        "misspelt top-level key",
        _edit("policy: upwork\n", "policy: upwork\npolicy_overides: {}\n"),
        3,
        1,
        "policy_overides",
        "did you mean 'policy_overrides'",
    ),
    Case(
        "unknown key in a contract",
        _edit("    client: acme\n", "    client: acme\n    freelancr: bob\n"),
        6,
        5,
        "freelancr",
        "did you mean 'freelancer'",
    ),
    Case(
        "unknown key in a milestone",
        _edit("{id: m1, amount: 500.00, due: 10d}", "{id: m1, amount: 500.00, deu: 10d}"),
        8,
        34,
        "deu",
        "did you mean 'due'",
    ),
    Case(
        "unknown key in a script step",
        _edit("{at: 0d, client: fund, milestone: m1}", "{at: 0d, client: fund, milestone: m1, amout: 5}"),
        12,
        47,
        "amout",
        "unknown key 'amout'",
    ),
    Case(
        "misspelt key in a script step",
        _edit("{at: 0d, client: fund, milestone: m1}", "{at: 0d, client: fund, milestnoe: m1}"),
        12,
        32,
        "milestnoe",
        "did you mean 'milestone'",
    ),
    Case(
        "unknown policy key in policy_overrides",
        _edit("policy: upwork\n", "policy: upwork\npolicy_overrides:\n  review.windw: 3d\n"),
        4,
        3,
        "review.windw",
        "did you mean 'window'",
    ),
    Case(
        "unknown nested policy key in policy_overrides",
        _edit("policy: upwork\n", "policy: upwork\npolicy_overrides:\n  review: {windw: 3d}\n"),
        4,
        12,
        "review.windw",
        "did you mean 'window'",
    ),
    Case(
        "wrong type in policy_overrides",
        _edit("policy: upwork\n", "policy: upwork\npolicy_overrides:\n  release.partial: sometimes\n"),
        4,
        20,
        "release.partial",
        "boolean",
    ),
    Case(
        "unparsable duration in policy_overrides",
        _edit("policy: upwork\n", "policy: upwork\npolicy_overrides: {review.window: 14x}\n"),
        3,
        35,
        "review.window",
        "14x",
    ),
    Case(
        "policy_overrides not a mapping",
        _edit("policy: upwork\n", "policy: upwork\npolicy_overrides: [review.window]\n"),
        3,
        19,
        "policy_overrides",
        "mapping",
    ),
    Case(
        "milestones is not a list",
        _edit(
            "    milestones:\n      - {id: m1, amount: 500.00, due: 10d}\n", "    milestones: 500\n    old:\n"
        ),
        7,
        17,
        "contracts[0].milestones",
        "milestones is a list",
    ),
    Case(
        "client is a list",
        _edit("    client: acme\n", "    client: [acme, bob]\n"),
        5,
        13,
        "contracts[0].client",
        "expected a name",
    ),
    Case(
        "amount with three decimals",
        _edit("amount: 250.00", "amount: 250.005"),
        9,
        26,
        "amount",
        "more than 2 decimal places",
    ),
    Case(
        "amount with three decimals in quotes",
        _edit("amount: 250.00", 'amount: "19.999"'),
        9,
        26,
        "amount",
        "more than 2 decimal places",
    ),
    Case("zero amount", _edit("amount: 250.00", "amount: 0"), 9, 26, "amount", "greater than zero"),
    Case("negative amount", _edit("amount: 250.00", "amount: -250"), 9, 26, "amount", "greater than zero"),
    Case("amount in words", _edit("amount: 250.00", "amount: lots"), 9, 26, "amount", "'lots'"),
    Case("amount yes", _edit("amount: 250.00", "amount: yes"), 9, 26, "amount", "expected an amount"),
    Case("amount true", _edit("amount: 250.00", "amount: true"), 9, 26, "amount", "True"),
    Case(
        "missing amount",
        _edit("{id: m2, amount: 250.00, due: 20d}", "{id: m2, due: 20d}"),
        9,
        9,
        "amount",
        "missing",
    ),
    Case(
        "negative approve amount",
        _edit(
            "{at: 5d, freelancer: submit, milestone: m1}",
            "{at: 5d, client: approve, milestone: m1, amount: -5}",
        ),
        14,
        58,
        "amount",
        "greater than zero",
    ),
    Case(
        "expectation amount with three decimals",
        _edit("totals: {released: 500}", "totals: {released: 500.001}"),
        19,
        24,
        "released",
        "more than 2 decimal places",
    ),
    Case("negative due", _edit("due: 20d", "due: -1d"), 9, 39, "due", "-1d"),
    Case("unparsable due", _edit("due: 20d", "due: 14x"), 9, 39, "due", "14x"),
    Case(
        "negative at", _edit("{at: 5d, freelancer", "{at: -5, freelancer"), 14, 14, "at", "zero or positive"
    ),
    Case("unparsable at", _edit("{at: 5d, freelancer", "{at: soon, freelancer"), 14, 14, "at", "'soon'"),
    Case(
        "missing at",
        _edit("{at: 1d, freelancer: accept_offer}", "{freelancer: accept_offer}"),
        13,
        9,
        "at",
        "needs 'at'",
    ),
    Case(
        "unparsable until",
        _edit("policy: upwork\n", "policy: upwork\nuntil: forever\n"),
        3,
        8,
        "until",
        "'forever'",
    ),
    Case(
        "unparsable expectation time",
        _edit("  - at: 19d\n", "  - at: 19 days\n"),
        16,
        9,
        "at",
        "'19 days'",
    ),
    Case(
        "unknown action",
        _edit("{at: 0d, client: fund, milestone: m1}", "{at: 0d, client: fnud, milestone: m1}"),
        12,
        26,
        "client",
        "unknown client action 'fnud'",
    ),
    Case(
        "action of the wrong actor",
        _edit("freelancer: accept_offer", "client: accept_offer"),
        13,
        26,
        "client",
        "accept_offer is a freelancer action, not a client one (write freelancer: accept_offer)",
    ),
    Case(
        "automatic action scripted",
        _edit("freelancer: accept_offer", "platform: auto_approve"),
        13,
        28,
        "platform",
        "automatically",
    ),
    Case(
        "unknown milestone in a step",
        _edit("submit, milestone: m1}", "submit, milestone: m9}"),
        14,
        49,
        "milestone",
        "unknown milestone 'm9'",
    ),
    Case(
        "unknown milestone in reorder",
        _edit("{at: 0d, client: offer}", "{at: 0d, client: reorder_milestones, order: [m2, m3]}"),
        11,
        53,
        "order",
        "'m3'",
    ),
    Case(
        "step needs its milestone",
        _edit("{at: 5d, freelancer: submit, milestone: m1}", "{at: 5d, freelancer: submit}"),
        14,
        9,
        "script[3]",
        "submit needs 'milestone'",
    ),
    Case(
        "unknown contract in a state expectation",
        _edit("milestones: {c1/m1: released}", "contracts: {c9: active}"),
        17,
        17,
        "c9",
        "unknown contract 'c9'",
    ),
    Case(
        "unknown contract in an event expectation",
        _edit(
            "event: {action: auto_approve, milestone: c1/m1, at: 19d}",
            "event: {action: auto_approve, contract: c9}",
        ),
        20,
        45,
        "contract",
        "unknown contract 'c9'",
    ),
    Case(
        "unknown milestone in an expectation",
        _edit("milestones: {c1/m1: released}", "milestones: {c1/m7: released}"),
        17,
        18,
        "c1/m7",
        "unknown milestone 'c1/m7'",
    ),
    Case(
        "unknown state in an expectation",
        _edit("milestones: {c1/m1: released}", "milestones: {c1/m1: relased}"),
        17,
        25,
        "c1/m1",
        "unknown state 'relased'",
    ),
    Case(
        "unknown account in an expectation",
        _edit('"freelancer:ana": 500', '"freelancer:bob": 500'),
        18,
        27,
        "freelancer:bob",
        "unknown account 'freelancer:bob'",
    ),
    Case(
        "unknown flow in an expectation",
        _edit("totals: {released: 500}", "totals: {relesed: 500}"),
        19,
        14,
        "relesed",
        "unknown flow 'relesed'",
    ),
    Case(
        "unknown rule in an expectation",
        _edit(
            "event: {action: auto_approve, milestone: c1/m1, at: 19d}",
            "rejected: {action: fund, rule: one_at_time}",
        ),
        20,
        36,
        "rule",
        "unknown rule 'one_at_time'",
    ),
    Case(
        "unknown action in an expectation",
        _edit("event: {action: auto_approve,", "event: {action: auto_aprove,"),
        20,
        21,
        "action",
        "unknown action 'auto_aprove'",
    ),
    Case(
        "unknown pack",
        _edit("policy: upwork", "policy: upwrk"),
        2,
        9,
        "policy",
        "unknown policy pack 'upwrk'",
    ),
    Case("policy is a number", _edit("policy: upwork", "policy: 5"), 2, 9, "policy", "policy names a pack"),
    Case(
        "duplicate contract id",
        _edit(
            "expect:\n",
            "  - id: c1\n    client: bob\n    freelancer: ana\n"
            "    milestones: [{id: m1, amount: 10}]\nexpect:\n",
        ),
        15,
        9,
        "contracts[1].id",
        "duplicate contract id 'c1'",
    ),
    Case(
        "duplicate milestone id",
        _edit("{id: m2, amount: 250.00, due: 20d}", "{id: m1, amount: 250.00, due: 20d}"),
        9,
        14,
        "contracts[0].milestones[1].id",
        "duplicate milestone id 'm1'",
    ),
    Case(
        "duplicate yaml key",
        _edit("    client: acme\n", "    client: acme\n    client: bob\n"),
        6,
        5,
        "contracts[0].client",
        "duplicate key (first defined on line 5)",
    ),
    Case(
        "duplicate top-level yaml key",
        _edit("expect:\n", "policy: upwork_fees\nexpect:\n"),
        15,
        1,
        "policy",
        "duplicate key",
    ),
    Case(
        "negative seed", _edit("policy: upwork\n", "policy: upwork\nseed: -1\n"), 3, 7, "seed", "whole number"
    ),
    Case(
        "zero replications",
        _edit("policy: upwork\n", "policy: upwork\nreplications: 0\n"),
        3,
        15,
        "replications",
        "whole number >= 1",
    ),
    Case(
        "impossible start date",
        _edit("policy: upwork\n", "policy: upwork\nstart: 2026-13-45\n"),
        3,
        8,
        "start",
        "calendar date",
    ),
    Case(
        "negative position",
        _edit(
            "{at: 0d, client: offer}",
            "{at: 0d, client: add_milestone, milestone: {id: m3, amount: 10}, position: -1}",
        ),
        11,
        84,
        "position",
        "0-based index",
    ),
    Case(
        "contract id with a slash",
        _edit("  - id: c1\n", "  - id: c/1\n"),
        4,
        9,
        "contracts[0].id",
        "may not contain",
    ),
    Case(
        "recursive alias",
        _edit("scenario: Bad input base\n", "scenario: Bad input base\ndescription: &x [1, *x]\n"),
        2,
        14,
        "description",
        "recursive alias",
    ),
    Case(
        "alias bomb",
        _edit("scenario: Bad input base\n", f"scenario: Bad input base\n{BOMB_LINE}]\n"),
        2,
        None,
        "bomb",
        "alias bomb",
    ),
    Case(
        "tab indentation",
        _edit("scenario: Bad input base\n", "scenario:\n\tBad input base\n"),
        2,
        1,
        None,
        "'\\t'",
    ),
    Case("empty file", "", 1, 1, None, "a scenario file is a mapping"),
    Case(
        "list instead of a mapping",
        "- scenario: x\n- policy: upwork\n",
        1,
        1,
        None,
        "a scenario file is a mapping",
    ),
]


def _run_bad(tmp_path: Path, capsys, text: str, *extra: str) -> tuple[Path, int, str, str]:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    code, out, err = _cli(capsys, "run", str(path), "--out", str(tmp_path / "out"), *extra)
    return path, code, out, err


def _assert_reported(path: Path, err: str, case: Case) -> None:
    lines = [line for line in err.splitlines() if line.startswith(f"error: {path}:")]
    assert lines, err
    where = (
        f"error: {path}:{case.line}:" if case.column is None else f"error: {path}:{case.line}:{case.column}:"
    )
    hits = [line for line in lines if line.startswith(where) and case.says in line]
    assert hits, f"expected a message at {where} saying {case.says!r}; got:\n{err}"
    if case.key is not None:
        assert any(case.key in line for line in hits), f"{case.key!r} not named in:\n{err}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_run_rejects_bad_input(tmp_path: Path, capsys, case: Case):
    path, code, out, err = _run_bad(tmp_path, capsys, case.text)
    assert code == 2, err
    assert "Traceback" not in out + err
    assert "internal error" not in err
    _assert_reported(path, err, case)
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_validate_reports_the_same(tmp_path: Path, capsys, case: Case):
    path = tmp_path / "bad.yaml"
    path.write_text(case.text, encoding="utf-8")
    code, out, err = _cli(capsys, "validate", str(path))
    assert code == 2
    assert "Traceback" not in out + err
    _assert_reported(path, err, case)


def test_all_problems_of_a_file_are_reported_together(tmp_path: Path, capsys):
    text = _edit("amount: 250.00", "amount: 250.005").replace("due: 10d", "due: 10x").replace("fnord", "")
    text = text.replace("{at: 1d, freelancer: accept_offer}", "{at: 1d, freelancer: accept_ofer}")
    path, code, _, err = _run_bad(tmp_path, capsys, text)
    assert code == 2
    assert f"{path}:8:39:" in err  # due: 10x
    assert f"{path}:9:26:" in err  # 250.005
    assert f"{path}:13:30:" in err  # accept_ofer
    assert len([line for line in err.splitlines() if line.startswith("error:")]) == 3


# ------------------------------------------------------------------------------ regressions of fixed bugs


BUG_CASES = [
    pytest.param(
        Case(
            "misspelt actor key",
            _edit("freelancer: accept_offer", "frelancer: accept_offer"),
            13,
            None,
            "frelancer",
            "",
        ),
        id="misspelt actor key",
    ),
    pytest.param(
        Case(
            "unsafe python tag",
            _edit("scenario: Bad input base", "scenario: !!python/object/apply:os.system ['echo pwned']"),
            1,
            11,
            "scenario",
            "not allowed",
        ),
        id="unsafe tag names its key",
    ),
    pytest.param(
        Case(
            "deeply nested document",
            _edit(
                "scenario: Bad input base\n",
                "scenario: Bad input base\ndescription: " + "[" * 1500 + "]" * 1500 + "\n",
            ),
            2,
            None,
            None,
            "nested deeper",
        ),
        id="deep nesting",
    ),
    pytest.param(
        Case(
            "list as expected action",
            _edit("event: {action: auto_approve,", "event: {action: [auto_approve],"),
            20,
            21,
            "action",
            "a single name",
        ),
        id="list as expected action",
    ),
]


@pytest.mark.parametrize("case", BUG_CASES)
def test_run_rejects_bad_input_fixed_bugs(tmp_path: Path, capsys, case: Case):
    path, code, out, err = _run_bad(tmp_path, capsys, case.text)
    assert code == 2, err[-500:]
    assert "Traceback" not in out + err
    _assert_reported(path, err, case)
    assert not (tmp_path / "out").exists()


def test_unsafe_tag_is_rejected_and_never_executed(tmp_path: Path, capsys):
    marker = tmp_path / "pwned"
    text = _edit("scenario: Bad input base", f"scenario: !!python/object/apply:os.system ['touch {marker}']")
    path, code, out, err = _run_bad(tmp_path, capsys, text)
    assert code == 2
    assert f"error: {path}:1:11:" in err
    assert "python/object/apply:os.system" in err
    assert "not allowed" in err
    assert "Traceback" not in out + err
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "tag",
    ["!!python/object/new:os.system", "!!python/name:os.system", "!!python/module:os", "!!binary", "!custom"],
)
def test_other_tags_are_rejected(tmp_path: Path, capsys, tag: str):
    text = _edit("    client: acme\n", f"    client: {tag} acme\n")
    path, code, _, err = _run_bad(tmp_path, capsys, text)
    assert code == 2
    assert f"error: {path}:5:13:" in err
    assert "not allowed" in err


def test_huge_amount_is_not_an_internal_error(tmp_path: Path, capsys):
    path, code, out, err = _run_bad(tmp_path, capsys, _edit("amount: 500.00", "amount: 1e20"))
    assert code == 2, err[-300:]
    assert "Traceback" not in out + err
    assert f"{path}:8:" in err and "larger than the largest supported" in err


def test_huge_document_is_rejected_quickly(tmp_path: Path, capsys):
    filler = "".join(f"# {'x' * 100}\n" for _ in range(22_000))  # > 2 MiB
    path, code, out, err = _run_bad(tmp_path, capsys, BASE + filler)
    assert code == 2
    assert f"error: {path}:1:1: file is larger than 1024 KiB" in err
    assert "Traceback" not in out + err
    assert not (tmp_path / "out").exists()


def test_missing_file(tmp_path: Path, capsys):
    code, _out, err = _cli(capsys, "run", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "out"))
    assert code == 2
    assert "nope.yaml" in err
    assert "cannot read file" in err
    assert not (tmp_path / "out").exists()


def test_file_that_is_not_utf8(tmp_path: Path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_bytes(BASE.replace("acme", "caf\xe9").encode("latin-1"))
    code, out, err = _cli(capsys, "run", str(path), "--out", str(tmp_path / "out"))
    assert code == 2
    assert f"error: {path}:5:16: file is not UTF-8 text (byte 77)" in err
    assert "Traceback" not in out + err
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------ bad policy files and --set


def test_bad_policy_file_named_by_the_scenario(tmp_path: Path, capsys):
    (tmp_path / "mine.yaml").write_text(
        "policy: mine\nextends: upwork\nreview:\n  window: 10d\n  on_timout: nothing\n", encoding="utf-8"
    )
    _path, code, out, err = _run_bad(tmp_path, capsys, _edit("policy: upwork", "policy: mine.yaml"))
    assert code == 2
    assert f"error: {tmp_path / 'mine.yaml'}:5:3: review.on_timout: unknown key 'on_timout'" in err
    assert "did you mean 'on_timeout'" in err
    assert "Traceback" not in out + err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("option", "key", "says"),
    [
        ("review.windw=3d", "review.windw", "did you mean 'window'"),
        ("review.window=3x", "review.window", "'3x'"),
        ("review.window=-1", "review.window", "zero or positive"),
        ("release.partial=yes", "release.partial", "boolean"),
        ("milestones.minimum_amount=5.001", "milestones.minimum_amount", "more than 2 decimal places"),
        ("milestones.funding=sometimes", "milestones.funding", "'sometimes'"),
        ("review.window", "review.window", "KEY=VALUE"),
        ("review..window=3d", "review..window", "malformed"),
    ],
)
def test_bad_set_option(tmp_path: Path, capsys, option: str, key: str, says: str):
    _path, code, out, err = _run_bad(tmp_path, capsys, BASE, "--set", option)
    assert code == 2, err
    [line] = [line for line in err.splitlines() if line.startswith("error:")]
    assert line.startswith("error: <command line")
    assert key in line
    assert says in line
    assert "Traceback" not in out + err
    assert not (tmp_path / "out").exists()


def test_unsafe_set_value(tmp_path: Path, capsys):
    marker = tmp_path / "pwned"
    _path, code, _out, err = _run_bad(
        tmp_path, capsys, BASE, "--set", f"review.window=!!python/object/apply:os.system ['touch {marker}']"
    )
    assert code == 2
    assert "not allowed" in err
    assert not marker.exists()


def test_bad_replications_option(tmp_path: Path, capsys):
    _path, code, _out, err = _run_bad(tmp_path, capsys, BASE, "--replications", "0")
    assert code == 2
    assert "--replications" in err
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------ validate, policies, test


def test_validate_good_scenarios(capsys):
    code, out, err = _cli(capsys, "validate", str(ROOT / "scenarios" / "upwork"))
    assert code == 0, err
    count = len(list((ROOT / "scenarios" / "upwork").glob("*.yaml")))
    assert f"{count} file(s) valid" in out
    assert err == ""


def test_validate_the_article_pack(capsys):
    code, out, err = _cli(capsys, "validate", str(ROOT / "rules" / "upwork.yaml"))
    assert code == 0, err
    assert "1 file(s) valid" in out


def test_validate_a_pack_that_extends(capsys):
    code, out, err = _cli(capsys, "validate", str(ROOT / "rules" / "upwork_fees.yaml"))
    assert code == 0, err
    assert "1 file(s) valid" in out


def test_validate_a_bad_pack(tmp_path: Path, capsys):
    path = tmp_path / "pack.yaml"
    path.write_text(
        "policy: p\nmilestones:\n  minimum_amount: 5.001\n"
        "review: {window: 14d}\nrefund: {response_window: 7d}\n",
        encoding="utf-8",
    )
    code, _out, err = _cli(capsys, "validate", str(path))
    assert code == 2
    assert (
        f"error: {path}:3:19: milestones.minimum_amount: amount 5.001 has more than 2 decimal places" in err
    )


def test_validate_missing_path(tmp_path: Path, capsys):
    code, _out, err = _cli(capsys, "validate", str(tmp_path / "nowhere"))
    assert code == 2
    assert "no such file or folder" in err


def test_policies_lists_upwork(capsys):
    code, out, _err = _cli(capsys, "policies")
    assert code == 0
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    assert "upwork" in names
    assert "upwork_fees" in names
    upwork_line = next(line for line in out.splitlines() if line.split()[0] == "upwork")
    assert "Fixed-price milestones" in upwork_line


def test_test_passes_on_the_regression_scenarios(capsys):
    code, out, err = _cli(capsys, "test", str(ROOT / "scenarios" / "upwork"))
    assert code == 0, out + err
    count = len(list((ROOT / "scenarios" / "upwork").glob("*.yaml")))
    assert f"{count} passed, 0 failed" in out
    assert "FAIL" not in out


def test_test_fails_on_a_wrong_expectation(tmp_path: Path, capsys):
    path = tmp_path / "wrong.yaml"
    path.write_text(_edit('"freelancer:ana": 500', '"freelancer:ana": 499.99'), encoding="utf-8")
    code, out, err = _cli(capsys, "test", str(path))
    assert code == 1
    assert f"FAIL {path} (1 of 2 expectations)" in out
    assert f"{path}:16: balance freelancer:ana at 19d: expected 499.99, found 500.00" in out
    assert "0 passed, 1 failed" in out
    assert "Traceback" not in out + err


def test_test_reports_a_wrong_event_expectation(tmp_path: Path, capsys):
    path = tmp_path / "wrong.yaml"
    path.write_text(_edit("milestone: c1/m1, at: 19d}", "milestone: c1/m1, at: 18d}"), encoding="utf-8")
    code, out, _ = _cli(capsys, "test", str(path))
    assert code == 1
    assert f"{path}:20: expected event matching action=auto_approve, milestone=c1/m1, at=18d" in out
    assert "auto_approve c1/m1 by platform at 19d" in out


def test_test_passes_a_good_file_and_fails_the_folder_with_a_bad_one(tmp_path: Path, capsys):
    (tmp_path / "good.yaml").write_text(BASE, encoding="utf-8")
    code, out, _ = _cli(capsys, "test", str(tmp_path / "good.yaml"))
    assert code == 0
    assert "1 passed, 0 failed" in out
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "wrong.yaml").write_text(_edit("released: 500}", "released: 400}"), encoding="utf-8")
    code, out, _ = _cli(capsys, "test", str(tmp_path))
    assert code == 1
    assert "1 passed, 1 failed" in out


def test_test_exits_2_on_invalid_input(tmp_path: Path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(_edit("amount: 250.00", "amount: 250.005"), encoding="utf-8")
    code, _out, err = _cli(capsys, "test", str(path))
    assert code == 2
    assert f"error: {path}:9:26:" in err


def test_console_script_exit_code(tmp_path: Path):
    script = Path(sys.executable).with_name("milestone-sim")
    exe = str(script) if script.exists() else shutil.which("milestone-sim")
    if exe is None:
        pytest.skip("milestone-sim console script not installed")
    path = tmp_path / "bad.yaml"
    path.write_text(_edit("amount: 250.00", "amount: 5.005"), encoding="utf-8")
    proc = subprocess.run(
        [exe, "run", str(path), "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert f"{path}:9:26:" in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not (tmp_path / "out").exists()
