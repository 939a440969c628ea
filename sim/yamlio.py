"""Safe YAML loading that remembers where every value stands, so errors name file:line:column.

The document is composed with PyYAML's safe composer and converted by hand: only the plain
YAML types are built (no tags beyond the core schema, never ``yaml.load``), YAML 1.1 surprises
are switched off (``no`` stays the string "no", ``1:30`` stays "1:30", ``0100`` stays "0100"),
duplicate keys are errors, and size, depth and alias expansion are bounded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 1024 * 1024
MAX_NODES = 200_000
MAX_DEPTH = 64

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input, located as precisely as known."""

    file: str
    line: int | None
    column: int | None
    message: str
    key: str | None = None

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}:{self.column or 1}"
        key = f" {self.key}:" if self.key else ""
        return f"{where}:{key} {self.message}"


class InputError(Exception):
    """Bad input: one or more problems, each with its location. The CLI exits 2 on it."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass
class Doc:
    """A loaded YAML document: plain data plus the source position of every value and key."""

    file: str
    data: Any
    marks: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[Loc, tuple[int, int]] = field(default_factory=dict)

    def where(self, loc: Loc, *, key: bool = False) -> tuple[int | None, int | None]:
        """Line and column (1-based) of the value at ``loc``, or of its nearest known parent."""
        table = self.key_marks if key else self.marks
        probe = tuple(loc)
        while probe:
            if probe in table:
                return table[probe]
            if probe in self.marks:
                return self.marks[probe]
            probe = probe[:-1]
        return self.marks.get((), (None, None))

    def problem(self, loc: Loc, message: str, *, key: bool = False) -> Problem:
        """A Problem at ``loc`` with a dotted key name."""
        line, col = self.where(loc, key=key)
        return Problem(self.file, line, col, message, dotted(loc) or None)


def dotted(loc: Loc) -> str:
    """('contracts', 0, 'script', 2) -> 'contracts[0].script[2]'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


_INT = re.compile(r"^[-+]?(0|[1-9][0-9_]*)$")
_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9][0-9_]*\.[0-9_]*|[0-9][0-9_]*(?=[eE]))([eE][-+]?[0-9]+)?$")
_NULL = {"", "~", "null", "Null", "NULL"}
_TRUE = {"true", "True", "TRUE"}
_FALSE = {"false", "False", "FALSE"}
_STD_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:seq",
}


class _Composer(yaml.SafeLoader):
    """SafeLoader whose implicit resolvers are off: every plain scalar composes as a string.

    Scalars that carry an explicit tag (``!!str 10``) are marked, so they are not typed again.
    """

    def compose_scalar_node(self, anchor: Any) -> yaml.ScalarNode:
        explicit = self.peek_event().tag not in (None, "!")
        node = super().compose_scalar_node(anchor)
        node.explicit = explicit  # type: ignore[attr-defined]
        return node


_Composer.yaml_implicit_resolvers = {}


def _deepest(text: str) -> tuple[int, int] | None:
    """Line and column where flow brackets first nest deeper than MAX_DEPTH, if they do."""
    depth, line, col = 0, 1, 0
    for ch in text:
        col += 1
        if ch == "\n":
            line, col = line + 1, 0
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return line, col
        elif ch in "]}":
            depth -= 1
    return None


def _scalar(node: yaml.ScalarNode) -> Any:
    text = node.value
    if node.style is not None:  # quoted or block scalar: always a string
        return text
    if text in _NULL:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    if _INT.match(text):
        return int(text.replace("_", ""))
    if _FLOAT.match(text) and any(ch.isdigit() for ch in text):
        return float(text.replace("_", ""))
    return text


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def load_text(text: str, file: str = "<string>") -> Doc:
    """Load one YAML document from text; raise InputError with a position on any problem."""
    if len(text.encode("utf-8", errors="replace")) > MAX_BYTES:
        raise InputError([Problem(file, 1, 1, f"file is larger than {MAX_BYTES // 1024} KiB")])
    try:
        node = yaml.compose(text, Loader=_Composer)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        what = exc.problem or exc.context or "invalid YAML"
        raise InputError([Problem(file, line, col, f"YAML syntax error: {what}")]) from None
    except yaml.YAMLError as exc:
        raise InputError([Problem(file, 1, 1, f"YAML error: {exc}")]) from None
    except RecursionError:
        line, col = _deepest(text) or (1, 1)
        raise InputError(
            [Problem(file, line, col, f"document is nested deeper than {MAX_DEPTH} levels")]
        ) from None
    doc = Doc(file, None)
    if node is None:
        doc.marks[()] = (1, 1)
        return doc
    budget = [MAX_NODES]
    doc.data = _convert(node, (), doc, budget, set())
    return doc


def _convert(node: yaml.Node, loc: Loc, doc: Doc, budget: list[int], stack: set[int]) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise InputError(
            [doc.problem(loc, f"document expands to more than {MAX_NODES} values (alias bomb?)")]
        )
    if len(loc) > MAX_DEPTH:
        raise InputError([doc.problem(loc, f"document is nested deeper than {MAX_DEPTH} levels")])
    if id(node) in stack:
        raise InputError([doc.problem(loc, "recursive alias: a value contains itself")])
    doc.marks.setdefault(loc, _mark(node))
    if node.tag not in _STD_TAGS:
        line, col = _mark(node)
        tag = node.tag.replace("tag:yaml.org,2002:", "!!")
        message = f"tag {tag!r} is not allowed (plain YAML only)"
        raise InputError([Problem(doc.file, line, col, message, dotted(loc) or None)])
    if isinstance(node, yaml.ScalarNode):
        if node.tag == "tag:yaml.org,2002:str":
            return node.value if getattr(node, "explicit", False) else _scalar(node)
        return _tagged(node, doc)
    stack.add(id(node))
    try:
        if isinstance(node, yaml.SequenceNode):
            return [_convert(child, (*loc, i), doc, budget, stack) for i, child in enumerate(node.value)]
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                line, col = _mark(key_node)
                raise InputError([Problem(doc.file, line, col, "mapping keys must be plain scalars")])
            if key_node.tag == "tag:yaml.org,2002:merge" or key_node.value == "<<":
                line, col = _mark(key_node)
                raise InputError([Problem(doc.file, line, col, "merge keys (<<) are not supported")])
            key = str(key_node.value)
            if key in out:
                line, col = _mark(key_node)
                first = doc.key_marks.get((*loc, key), (None, None))[0]
                raise InputError(
                    [
                        Problem(
                            doc.file,
                            line,
                            col,
                            f"duplicate key (first defined on line {first})",
                            dotted((*loc, key)),
                        )
                    ]
                )
            doc.key_marks[(*loc, key)] = _mark(key_node)
            out[key] = _convert(value_node, (*loc, key), doc, budget, stack)
        return out
    finally:
        stack.discard(id(node))


def _tagged(node: yaml.ScalarNode, doc: Doc) -> Any:
    """A scalar with an explicit core tag such as ``!!str 10``."""
    value = _scalar(node) if node.style is None else node.value
    tag = node.tag.rsplit(":", 1)[-1]
    if tag == "str":
        return node.value
    if tag == "int" and isinstance(value, int):
        return value
    if tag == "float" and isinstance(value, (int, float)):
        return float(value)
    if tag == "bool" and isinstance(value, bool):
        return value
    if tag == "null" and value is None:
        return None
    line, col = _mark(node)
    raise InputError([Problem(doc.file, line, col, f"value {node.value!r} does not match !!{tag}")])


def load_file(path: str | Path) -> Doc:
    """Load a YAML file; a missing or unreadable file is an InputError too."""
    p = Path(path)
    name = str(path)
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise InputError([Problem(name, None, None, f"cannot read file: {exc.strerror}")]) from None
    if size > MAX_BYTES:
        raise InputError([Problem(name, 1, 1, f"file is larger than {MAX_BYTES // 1024} KiB")])
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError([Problem(name, None, None, f"cannot read file: {exc}")]) from None
    return load_text(text, name)
