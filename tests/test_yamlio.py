"""Safe YAML loading: positions of values and keys, no YAML 1.1 surprises, no unsafe tags, bounded size."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sim.core.yamlio import MAX_BYTES, Doc, InputError, Problem, dotted, load_file, load_text

DOC = """\
scenario: demo
policy: upwork
contracts:
  - id: c1
    milestones:
      - {id: m1, amount: 500.00, due: 10d}
      - id: m2
        amount: "19.99"
"""


def _problems(text: str, file: str = "f.yaml") -> list[Problem]:
    with pytest.raises(InputError) as info:
        load_text(text, file)
    return info.value.problems


def _one(text: str, file: str = "f.yaml") -> Problem:
    problems = _problems(text, file)
    assert len(problems) == 1
    return problems[0]


# ------------------------------------------------------------------------------ positions


def test_positions_of_values():
    doc = load_text(DOC, "s.yaml")
    assert doc.marks[("scenario",)] == (1, 11)
    assert doc.marks[("policy",)] == (2, 9)
    assert doc.marks[("contracts", 0, "id")] == (4, 9)
    assert doc.marks[("contracts", 0, "milestones", 0, "amount")] == (6, 26)
    assert doc.marks[("contracts", 0, "milestones", 0, "due")] == (6, 39)
    assert doc.marks[("contracts", 0, "milestones", 1, "amount")] == (8, 17)


def test_positions_of_keys():
    doc = load_text(DOC, "s.yaml")
    assert doc.key_marks[("scenario",)] == (1, 1)
    assert doc.key_marks[("contracts",)] == (3, 1)
    assert doc.key_marks[("contracts", 0, "milestones")] == (5, 5)
    assert doc.key_marks[("contracts", 0, "milestones", 0, "due")] == (6, 34)
    assert doc.key_marks[("contracts", 0, "milestones", 1, "amount")] == (8, 9)


def test_where_falls_back_to_nearest_parent():
    doc = load_text(DOC, "s.yaml")
    # a key that is not there (e.g. a missing required key) is located at its parent mapping
    assert doc.where(("contracts", 0, "milestones", 1, "due")) == (7, 9)
    assert doc.where(("contracts", 0, "script")) == (4, 5)
    assert doc.where(("nothing", "here")) == (1, 1)
    assert doc.where(("contracts", 0, "milestones", 0, "due"), key=True) == (6, 34)


def test_problem_names_file_line_column_and_dotted_key():
    doc = load_text(DOC, "s.yaml")
    problem = doc.problem(("contracts", 0, "milestones", 1, "amount"), "bad amount")
    assert (problem.file, problem.line, problem.column) == ("s.yaml", 8, 17)
    assert problem.key == "contracts[0].milestones[1].amount"
    assert str(problem) == "s.yaml:8:17: contracts[0].milestones[1].amount: bad amount"


def test_dotted():
    assert dotted(("contracts", 0, "script", 2)) == "contracts[0].script[2]"
    assert dotted(("review", "window")) == "review.window"
    assert dotted(()) == ""


def test_problem_without_position():
    assert str(Problem("x.yaml", None, None, "cannot read file")) == "x.yaml: cannot read file"


def test_input_error_message_joins_problems():
    err = InputError([Problem("a.yaml", 1, 2, "one"), Problem("a.yaml", 3, 4, "two", "k")])
    assert str(err) == "a.yaml:1:2: one\na.yaml:3:4: k: two"


# ------------------------------------------------------------------------------ scalar types


def test_yaml_11_surprises_are_off():
    doc = load_text(
        "a: no\nb: 1:30\nc: 0100\nd: yes\ne: on\nf: off\ng: 0x10\nh: 0o17\ni: .inf\nj: 2026-01-05\nk: y\n"
    )
    assert doc.data == {
        "a": "no",
        "b": "1:30",
        "c": "0100",
        "d": "yes",
        "e": "on",
        "f": "off",
        "g": "0x10",
        "h": "0o17",
        "i": ".inf",
        "j": "2026-01-05",
        "k": "y",
    }


def test_core_scalars():
    doc = load_text(
        "a: 1\nb: 2.5\nc: true\nd: false\ne: null\nf: ~\ng:\nh: 1e3\ni: -7\nj: '5'\nk: \"true\"\n"
    )
    assert doc.data == {
        "a": 1,
        "b": 2.5,
        "c": True,
        "d": False,
        "e": None,
        "f": None,
        "g": None,
        "h": 1000.0,
        "i": -7,
        "j": "5",
        "k": "true",
    }
    assert type(doc.data["a"]) is int
    assert type(doc.data["c"]) is bool


def test_amount_text_is_kept_for_exact_parsing():
    doc = load_text('a: "5.005"\nb: 500.50\n')
    assert doc.data["a"] == "5.005"
    assert doc.data["b"] == 500.5


def test_explicit_core_tags():
    doc = load_text("a: !!int 10\nb: !!float 2\nc: !!bool true\nd: !!null null\n")
    assert doc.data == {"a": 10, "b": 2.0, "c": True, "d": None}
    assert type(doc.data["b"]) is float


def test_explicit_str_tag_keeps_a_string():
    assert load_text("a: !!str 10\n").data == {"a": "10"}


def test_mismatched_core_tag_is_rejected():
    problem = _one("a: 1\nb: !!int abc\n")
    assert (problem.line, problem.column) == (2, 4)
    assert "!!int" in problem.message


def test_empty_document():
    doc = load_text("", "e.yaml")
    assert doc.data is None
    assert doc.where(("anything",)) == (1, 1)


def test_comments_only_document():
    assert load_text("# nothing here\n").data is None


# ------------------------------------------------------------------------------ duplicate keys


def test_duplicate_top_level_key():
    problem = _one("scenario: a\npolicy: upwork\nscenario: b\n", "d.yaml")
    assert (problem.file, problem.line, problem.column) == ("d.yaml", 3, 1)
    assert problem.key == "scenario"
    assert "duplicate key" in problem.message
    assert "line 1" in problem.message


def test_duplicate_nested_key():
    problem = _one("contracts:\n  - id: c1\n    client: acme\n    client: bob\n")
    assert (problem.line, problem.column) == (4, 5)
    assert problem.key == "contracts[0].client"
    assert "first defined on line 3" in problem.message


def test_duplicate_key_in_flow_mapping():
    problem = _one("m: {id: m1, amount: 5, id: m2}\n")
    assert (problem.line, problem.column) == (1, 24)
    assert problem.key == "m.id"


def test_same_key_in_sibling_mappings_is_fine():
    assert load_text("a: {x: 1}\nb: {x: 2}\n").data == {"a": {"x": 1}, "b": {"x": 2}}


# ------------------------------------------------------------------------------ unsafe input


def test_python_tag_is_rejected_and_never_executed(tmp_path: Path):
    target = tmp_path / "pwned"
    text = f"scenario: !!python/object/apply:os.system ['touch {target}']\n"
    problem = _one(text, "u.yaml")
    assert (problem.line, problem.column) == (1, 11)
    assert "not allowed" in problem.message
    assert "python/object/apply" in problem.message
    assert not target.exists()


@pytest.mark.parametrize(
    "text",
    [
        "a: !!python/name:os.system\n",
        "a: !!python/object/new:os.system [ls]\n",
        "a: !!binary aGVsbG8=\n",
        "a: !!timestamp 2026-01-05\n",
        "a: !!set {x, y}\n",
        "a: !custom 1\n",
        "a: !!omap [{x: 1}]\n",
    ],
)
def test_non_core_tags_are_rejected(text):
    problem = _one(text)
    assert (problem.line, problem.column) == (1, 4)
    assert "not allowed" in problem.message


def test_python_tag_in_a_file_does_not_run(tmp_path: Path):
    target = tmp_path / "created-by-yaml"
    path = tmp_path / "evil.yaml"
    path.write_text(
        "scenario: x\nsteps:\n"
        "  - !!python/object/apply:pathlib.Path.touch [!!python/object/apply:pathlib.Path "
        f"['{target}']]\n",
        encoding="utf-8",
    )
    with pytest.raises(InputError) as info:
        load_file(path)
    assert info.value.problems[0].line == 3
    assert not target.exists()


def test_merge_keys_are_rejected():
    problem = _one("base: &b {x: 1}\nother:\n  <<: *b\n")
    assert (problem.line, problem.column) == (3, 3)
    assert "merge" in problem.message


def test_complex_keys_are_rejected():
    problem = _one("? [a, b]\n: 1\n")
    assert problem.line == 1
    assert "plain scalars" in problem.message


def test_aliases_within_bounds_are_expanded():
    doc = load_text("a: &x {n: 1}\nb: *x\n")
    assert doc.data == {"a": {"n": 1}, "b": {"n": 1}}


BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def test_billion_laughs_is_rejected_in_bounded_time():
    start = time.perf_counter()
    problem = _one(BOMB, "bomb.yaml")
    elapsed = time.perf_counter() - start
    assert elapsed < 5.0
    assert "alias bomb" in problem.message
    assert problem.file == "bomb.yaml"
    assert problem.line is not None
    assert problem.key is not None and problem.key.startswith("f[")  # a-e fit; f blows the budget


def test_bomb_on_one_line_is_located_on_that_line():
    line = "x: [&a [1,1,1,1,1,1,1,1,1,1], &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a], " + ", ".join(
        f"&{n} [{', '.join([f'*{p}'] * 10)}]" for p, n in zip("bcdefg", "cdefgh", strict=True)
    )
    problem = _one(f"scenario: bomb\n{line}]\n", "b.yaml")
    assert problem.line == 2
    assert problem.key is not None and problem.key.startswith("x[")


def test_recursive_alias():
    problem = _one("scenario: x\nloop: &x [1, *x]\n", "r.yaml")
    assert (problem.file, problem.line) == ("r.yaml", 2)
    assert "recursive alias" in problem.message
    assert problem.key is not None and problem.key.startswith("loop")


def test_recursive_alias_in_mapping():
    problem = _one("a: &m {self: *m}\n")
    assert problem.line == 1
    assert "recursive" in problem.message


def test_nesting_depth_is_bounded():
    text = "x: " + "[" * 100 + "]" * 100 + "\n"
    problem = _one(text)
    assert problem.line == 1
    assert "nested deeper than 64" in problem.message


def test_very_deep_nesting_is_an_input_error_not_a_recursion_error():
    text = "x: " + "[" * 1500 + "]" * 1500 + "\n"
    problem = _one(text)
    assert problem.line == 1
    assert "nested deeper" in problem.message


def test_oversized_text_is_rejected_before_parsing():
    text = "a: '" + "x" * (MAX_BYTES + 10) + "'\n"
    problem = _one(text, "big.yaml")
    assert (problem.file, problem.line, problem.column) == ("big.yaml", 1, 1)
    assert "larger than 1024 KiB" in problem.message


def test_oversized_file_is_rejected_before_reading(tmp_path: Path):
    path = tmp_path / "big.yaml"
    path.write_text("a: [" + "1," * (MAX_BYTES // 2 + 10) + "1]\n", encoding="utf-8")
    start = time.perf_counter()
    with pytest.raises(InputError) as info:
        load_file(path)
    assert time.perf_counter() - start < 1.0
    problem = info.value.problems[0]
    assert problem.line == 1
    assert "larger than" in problem.message


# ------------------------------------------------------------------------------ syntax errors


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("a: 1\nb: [1, 2\n", 3, 1),  # unclosed flow sequence: found at end of input
        ("a: 1\nb: c: d\n", 2, 5),  # mapping value where none is allowed
        ("a: 1\n  b: 2\n", 2, 4),  # bad indentation
        ("a:\n\t- 1\n", 2, 1),  # tab
        ('a: "unclosed\n', 2, 1),
        ("a: {x: 1\nb: 2\n", 2, 2),
        ("- a\nb: 1\n", 2, 1),
    ],
)
def test_syntax_errors_have_line_and_column(text, line, column):
    problem = _one(text, "syn.yaml")
    assert problem.file == "syn.yaml"
    assert (problem.line, problem.column) == (line, column)
    assert problem.message.startswith("YAML syntax error")


def test_more_than_one_document_is_an_error():
    problem = _one("a: 1\n---\nb: 2\n")
    assert problem.line == 2
    assert "syntax error" in problem.message


# ------------------------------------------------------------------------------ files


def test_load_file_names_the_file(tmp_path: Path):
    path = tmp_path / "s.yaml"
    path.write_text("a: 1\nb: [\n", encoding="utf-8")
    with pytest.raises(InputError) as info:
        load_file(path)
    assert info.value.problems[0].file == str(path)


def test_load_file_returns_doc(tmp_path: Path):
    path = tmp_path / "s.yaml"
    path.write_text(DOC, encoding="utf-8")
    doc = load_file(path)
    assert isinstance(doc, Doc)
    assert doc.file == str(path)
    assert doc.data["contracts"][0]["milestones"][1]["amount"] == "19.99"


def test_missing_file(tmp_path: Path):
    with pytest.raises(InputError) as info:
        load_file(tmp_path / "nope.yaml")
    problem = info.value.problems[0]
    assert problem.line is None
    assert "cannot read file" in problem.message


def test_file_that_is_not_utf8(tmp_path: Path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"scenario: caf\xe9\n")
    with pytest.raises(InputError) as info:
        load_file(path)
    [problem] = info.value.problems
    assert problem.message == "file is not UTF-8 text (byte 13)"
    assert (problem.line, problem.column) == (1, 14)
