"""Audit files: "production conforms to the policy" kept as a regression test (FORMAT section 10).

An audit file is YAML with one top-level key ``audit``::

    audit:
      log: production_log.csv        # beside this file (or below it)
      contracts: contracts.csv
      policy: upwork                 # a built-in pack or a pack file
      mapping: mapping.yaml          # optional: the log's own names
      start: 2026-01-05              # optional: the date of t = 0
      tolerance: 1h                  # optional (default 1h)
      expect:
        findings: 7                  # how many findings in all
        by_kind: {late: 1, early: 1} # exactly these per kind; a kind not listed: none
        at_stake: "2561.04"          # optional: the money at stake in all

The pytest plugin collects these files; ``milestone-sim test`` runs them too. Files are read from
the audit file's folder and below only (or an allowed folder), like a scenario's.
"""

from __future__ import annotations

import datetime as dt
import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.units import UnitError, format_money, parse_duration, parse_money
from ..core.yamlio import Doc, InputError, Loc, Problem, allowed_roots, confined, load_file, outside_message
from ..policy.model import Policy, load_policy
from .log import Mapping, load_mapping
from .replay import KINDS, MAX_TOLERANCE, TOLERANCE, AuditResult, audit

KEYS = ("log", "contracts", "policy", "mapping", "start", "tolerance", "expect")
EXPECT_KEYS = ("findings", "by_kind", "at_stake")


@dataclass(frozen=True)
class AuditFile:
    """A validated audit file."""

    path: Path
    log: Path
    contracts: Path
    policy: Policy
    mapping: Mapping
    start: dt.date | None
    tolerance: float
    findings: int | None
    by_kind: dict[str, int] | None
    at_stake: int | None
    doc: Doc

    def line_of(self, *loc: Any) -> int:
        return self.doc.where(("audit", *loc))[0] or 1


def is_audit_text(text: str) -> bool:
    """Does this YAML text look like an audit file (a top-level ``audit:`` key)?"""
    return any(line.startswith("audit:") or line.startswith("audit :") for line in text.splitlines())


def load_audit_file(path: str | Path, allow: tuple[Path, ...] = ()) -> AuditFile:
    """Read and check an audit file; every problem is reported with its file:line:column."""
    doc = load_file(path)
    problems: list[Problem] = []
    data = doc.data
    if not isinstance(data, dict) or "audit" not in data:
        raise InputError([doc.problem((), "an audit file has one top-level key, audit:")])
    for key in data:
        if key != "audit":
            problems.append(
                doc.problem((key,), f"unknown top-level key {key!r}; an audit file has audit: only", key=True)
            )
    spec = data["audit"]
    if not isinstance(spec, dict):
        raise InputError([doc.problem(("audit",), f"audit is a mapping of {', '.join(KEYS)}")])
    _keys(doc, spec, KEYS, ("audit",), problems)
    for key in ("log", "contracts", "policy", "expect"):
        if key not in spec:
            problems.append(doc.problem(("audit",), f"required key {key!r} is missing", key=True))
    folder = Path(path).resolve().parent
    roots = allowed_roots(folder, allow=allow)

    def file(key: str) -> Path | None:
        value = spec.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            problems.append(doc.problem(("audit", key), f"{key} is a file name"))
            return None
        real = confined(folder / value, roots)
        if real is None:
            problems.append(doc.problem(("audit", key), outside_message(value, roots)))
            return None
        if not real.is_file():
            problems.append(doc.problem(("audit", key), f"no such file: {value}"))
            return None
        return real

    log, contracts, mapping_path = file("log"), file("contracts"), file("mapping")
    start = None
    if "start" in spec:
        value = spec["start"]
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            start = value
        else:
            try:
                start = dt.date.fromisoformat(str(value))
            except ValueError:
                problems.append(
                    doc.problem(("audit", "start"), f"start is a date like 2026-01-05, got {value!r}")
                )
    tolerance = TOLERANCE
    if "tolerance" in spec:
        try:
            tolerance = parse_duration(spec["tolerance"])
            if not 0 <= tolerance <= MAX_TOLERANCE:
                raise UnitError(f"the tolerance is between 0 and {MAX_TOLERANCE:g}d")
        except UnitError as exc:
            problems.append(doc.problem(("audit", "tolerance"), str(exc)))
    policy = None
    if isinstance(spec.get("policy"), str):
        try:
            policy = load_policy(
                spec["policy"], base=folder, ref_doc=doc, ref_loc=("audit", "policy"), allow=allow
            )
        except InputError as exc:
            problems.extend(exc.problems)
    elif "policy" in spec:
        problems.append(doc.problem(("audit", "policy"), "policy is a pack name or a pack file"))
    mapping = Mapping()
    if mapping_path is not None:
        try:
            mapping = load_mapping(mapping_path)
        except InputError as exc:
            problems.extend(exc.problems)
    findings = by_kind = at_stake = None
    expect = spec.get("expect")
    if isinstance(expect, dict):
        _keys(doc, expect, EXPECT_KEYS, ("audit", "expect"), problems)
        if "findings" in expect:
            n = expect["findings"]
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                problems.append(
                    doc.problem(("audit", "expect", "findings"), f"findings is a count >= 0, got {n!r}")
                )
            else:
                findings = n
        if "by_kind" in expect:
            block = expect["by_kind"]
            if not isinstance(block, dict):
                problems.append(
                    doc.problem(("audit", "expect", "by_kind"), "by_kind is a mapping of kind: count")
                )
            else:
                by_kind = {}
                _keys(doc, block, KINDS, ("audit", "expect", "by_kind"), problems)
                for kind, n in block.items():
                    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                        problems.append(
                            doc.problem(("audit", "expect", "by_kind", kind), f"a count >= 0, got {n!r}")
                        )
                    elif kind in KINDS:
                        by_kind[kind] = n
        if "at_stake" in expect and policy is not None:
            try:
                at_stake = parse_money(expect["at_stake"], policy.digits, allow_zero=True)
            except UnitError as exc:
                problems.append(doc.problem(("audit", "expect", "at_stake"), str(exc)))
        if findings is None and by_kind is None and all(k in EXPECT_KEYS for k in expect):
            problems.append(doc.problem(("audit", "expect"), "expect needs findings: N or by_kind: {...}"))
    elif "expect" in spec:
        problems.append(doc.problem(("audit", "expect"), f"expect is a mapping of {', '.join(EXPECT_KEYS)}"))
    if problems:
        raise InputError(problems)
    assert log is not None and contracts is not None and policy is not None
    return AuditFile(
        Path(path), log, contracts, policy, mapping, start, tolerance, findings, by_kind, at_stake, doc
    )


def _keys(doc: Doc, data: dict, allowed: tuple[str, ...], loc: Loc, problems: list[Problem]) -> None:
    for key in data:
        if key not in allowed:
            hint = difflib.get_close_matches(str(key), allowed, n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            problems.append(
                doc.problem(
                    (*loc, key), f"unknown key {key!r}{extra}; allowed: {', '.join(allowed)}", key=True
                )
            )


def run_audit_file(spec: AuditFile) -> tuple[AuditResult, list[str]]:
    """Audit the file's log; return the result and what its expectations found wrong (each
    naming the file and line of the expectation, what was expected and what was found)."""
    result = audit(
        spec.log,
        spec.contracts,
        spec.policy,
        tolerance=spec.tolerance,
        start=spec.start,
        mapping=spec.mapping,
    )
    df = result.frame()
    failures = []
    name = str(spec.path)
    if spec.findings is not None and len(df) != spec.findings:
        failures.append(
            f"{name}:{spec.line_of('expect', 'findings')}: "
            f"expected {spec.findings} finding(s), found {len(df)}"
        )
    if spec.by_kind is not None:
        counts = df["kind"].value_counts().to_dict()
        for kind in KINDS:
            want, got = spec.by_kind.get(kind, 0), int(counts.get(kind, 0))
            if want != got:
                where = ("expect", "by_kind", kind) if kind in spec.by_kind else ("expect", "by_kind")
                failures.append(f"{name}:{spec.line_of(*where)}: expected {want} {kind}, found {got}")
    if spec.at_stake is not None:
        total = int(df["at_stake"].sum()) if len(df) else 0
        if total != spec.at_stake:
            d = spec.policy.digits
            failures.append(
                f"{name}:{spec.line_of('expect', 'at_stake')}: "
                f"expected {format_money(spec.at_stake, d)} at stake, "
                f"found {format_money(total, d)}"
            )
    if failures and len(df):
        shown = df.head(20)
        failures.append("findings:")
        failures += [
            f"  {r.time:g}d {r.contract}/{r.milestone} {r.kind} {r.rule}: "
            f"expected {r.expected}; found {r.found}"
            for r in shown.itertuples()
        ]
    return result, failures
