"""Safe YAML loading that remembers where every value stands, so errors name file:line:column.

The document is composed with PyYAML's safe composer and converted by hand: only the plain
YAML types are built (no tags beyond the core schema, never ``yaml.load``), YAML 1.1 surprises
are switched off (``no`` stays the string "no", ``1:30`` stays "1:30", ``0100`` stays "0100"),
duplicate keys are errors, and size, depth and alias expansion are bounded.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 1024 * 1024
MAX_NODES = 200_000
MAX_DEPTH = 64
#: extra folders files may be read from, os.pathsep-separated (besides the scenario's folder tree)
ALLOW_ENV = "MILESTONE_SIM_ALLOW_PATHS"

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

    def __reduce__(self) -> tuple:
        # so that it crosses process boundaries (worker pools) with its problems intact
        return (InputError, (self.problems,))


@dataclass
class Doc:
    """A loaded YAML document: plain data plus the source position of every value and key."""

    file: str
    data: Any
    marks: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    #: the source text of every plain scalar that was typed (a number, a boolean, null), by location
    texts: dict[Loc, str] = field(default_factory=dict)

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
    except yaml.reader.ReaderError as exc:  # a control character: name it and where, never the text
        line = text.count("\n", 0, exc.position) + 1
        col = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        char = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "\0")
        message = f"YAML error: unacceptable character #x{char:04x} (special characters are not allowed)"
        raise InputError([Problem(file, line, col, message)]) from None
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
            value = node.value if getattr(node, "explicit", False) else _scalar(node)
        else:
            value = _tagged(node, doc)
        if not isinstance(value, str):
            doc.texts[loc] = node.value  # free-text keys take what was written: 1e999 stays "1e999"
        return value
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


def read_text_bounded(path: str | Path, max_bytes: int, what: str = "file") -> str:
    """The UTF-8 text of a regular file of at most ``max_bytes`` bytes; anything else is an InputError.

    Devices, FIFOs, sockets and folders are refused without reading (the file is opened
    non-blocking and checked with fstat); the size limit is enforced while reading, so a file that
    grows or lies about its size is cut off. Messages name the file and never quote its contents.
    """
    name = str(path)

    def fail(message: str, line: int | None = None, col: int | None = None) -> InputError:
        return InputError([Problem(name, line, col, message)])

    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(name, flags)
    except OSError as exc:
        raise fail(f"cannot read {what}: {exc.strerror}") from None
    chunks: list[bytes] = []
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a folder" if stat.S_ISDIR(mode) else "a device, pipe or socket"
            raise fail(f"cannot read {what}: it is {kind}, not a regular file")
        total = 0
        while True:
            try:
                chunk = os.read(fd, min(1 << 16, max_bytes + 1 - total))
            except OSError as exc:
                raise fail(f"cannot read {what}: {exc.strerror}") from None
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                size = f"{max_bytes // 1024} KiB" if max_bytes % 1024 == 0 else f"{max_bytes} bytes"
                raise fail(f"{what} is larger than {size}", 1, 1)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise fail(f"{what} is not UTF-8 text (byte {exc.start})", line, col) from None


def allowed_roots(*folders: str | Path, allow: Sequence[str | Path] = ()) -> tuple[Path, ...]:
    """The folders files may be read from: ``folders``, ``allow`` and those of MILESTONE_SIM_ALLOW_PATHS.

    The environment variable is read here and nowhere else. Every root is resolved (symlinks
    followed), so a confined path is compared with real locations.
    """
    env = [p for p in os.environ.get(ALLOW_ENV, "").split(os.pathsep) if p.strip()]
    out: dict[Path, None] = {}
    for folder in (*folders, *allow, *env):
        out[Path(os.path.realpath(folder))] = None
    return tuple(out)


def confined(path: str | Path, roots: Sequence[Path]) -> Path | None:
    """``path`` with symlinks resolved if it lies in one of ``roots`` (or below), else None."""
    real = Path(os.path.realpath(path))
    for root in roots:
        if real == root or real.is_relative_to(root):
            return real
    return None


def outside_message(ref: str, roots: Sequence[Path]) -> str:
    """Why a file reference is refused, and how to allow it."""
    where = str(roots[0]) if roots else "the scenario's folder"
    return (
        f"{_cut(ref)} is outside the allowed folders: files are read from {where} and below only "
        f"(symlinks are followed); allow another folder with --allow-path DIR or {ALLOW_ENV}"
    )


def _cut(text: str, limit: int = 80) -> str:
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def load_file(path: str | Path) -> Doc:
    """Load a YAML file; a missing, unreadable, oversized or non-UTF-8 file is an InputError too."""
    return load_text(read_text_bounded(path, MAX_BYTES, "file"), str(path))
