"""Pydantic validation of loaded YAML, with every error mapped back to file:line:column.

Shared by ``policy`` and ``scenario``: a model is validated against plain data, and each
pydantic error location is looked up in the document's position table. Unknown keys list the
allowed ones (with a did-you-mean); unit errors keep their own message.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Callable
from typing import Any

import pydantic
from pydantic import BaseModel

from .yamlio import InputError, Loc, Problem

#: Locate a data location: returns a Problem factory for a message at that location.
Locator = Callable[[Loc, str, bool], Problem]


def _model_at(model: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The model class that owns the mapping at ``loc``, if the path leads to one."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            current = _unwrap_container(current)
            continue
        if typing.get_origin(_unwrap(current)) is dict:  # a mapping of names to models (procedures)
            current = _unwrap_container(current)
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(part)
        if field is None:
            return None
        current = _unwrap(field.annotation)
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        return models[0] if models else (args[0] if args else tp)
    return tp


def _unwrap_container(tp: Any) -> Any:
    tp = _unwrap(tp)
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (list, tuple, frozenset, set) and args:
        return _unwrap(args[0])
    if typing.get_origin(tp) is dict and len(args) == 2:
        return _unwrap(args[1])
    return tp


def _clean_loc(loc: tuple[Any, ...], data: Any) -> Loc:
    """Keep the loc parts that are data keys; drop pydantic's internal ones (union branches)."""
    out: list[str | int] = []
    cur = data
    for n, part in enumerate(loc):
        if isinstance(cur, dict) and part in cur:
            out.append(part)
            cur = cur[part]
        elif isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur):
            out.append(part)
            cur = cur[part]
        elif n == len(loc) - 1 and isinstance(part, str) and "[" not in part:
            out.append(part)  # a required key that is missing
    return tuple(out)


def validate(
    model: type[BaseModel],
    data: Any,
    locate: Locator,
    *,
    context: dict[str, Any] | None = None,
) -> Any:
    """Validate ``data`` against ``model``; raise InputError with one Problem per error."""
    try:
        return model.model_validate(data, context=context or {})
    except pydantic.ValidationError as exc:
        problems = []
        seen = set()
        for err in exc.errors(include_url=False):
            loc = _clean_loc(tuple(err["loc"]), data)
            kind = err["type"]
            if kind == "extra_forbidden":
                owner = _model_at(model, loc[:-1])
                allowed = sorted(owner.model_fields) if owner else []
                name = str(loc[-1]) if loc else "?"
                hint = difflib.get_close_matches(name, allowed, n=1)
                msg = f"unknown key {name!r}"
                if hint:
                    msg += f" (did you mean {hint[0]!r}?)"
                if allowed:
                    msg += f"; allowed: {', '.join(allowed)}"
                problem = locate(loc, msg, True)
            elif kind == "missing":
                problem = locate(loc, "required key is missing", False)
            else:
                msg = str(err["msg"])
                for prefix in ("Value error, ", "Assertion failed, "):
                    if msg.startswith(prefix):
                        msg = msg[len(prefix) :]
                if kind.startswith(("literal_error", "enum")):
                    msg = f"got {err.get('input')!r}; {msg[0].lower()}{msg[1:]}"
                elif kind.endswith("_type") or kind.endswith("_parsing"):
                    msg = f"wrong type: {msg[0].lower()}{msg[1:]}, got {err.get('input')!r}"
                problem = locate(loc, msg, False)
            marker = (problem.line, problem.column, problem.key, problem.message)
            if marker not in seen:
                seen.add(marker)
                problems.append(problem)
        raise InputError(problems) from None
