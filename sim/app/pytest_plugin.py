"""pytest plugin: every scenario YAML file with ``expect:`` becomes a test item, and so does every
audit file (``audit:`` with ``expect:``, FORMAT section 10).

Installed with the package (entry point ``pytest11``), so ``pytest scenarios/`` collects a
regression suite without any conftest. A failing item reads like ``milestone-sim test``: each
failed expectation with file:line, what was expected and what was found.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_EXPECT = re.compile(r"^expect\s*:", re.MULTILINE)
_SCENARIO = re.compile(r"^scenario\s*:", re.MULTILINE)
_AUDIT = re.compile(r"^audit\s*:", re.MULTILINE)
_AUDIT_EXPECT = re.compile(r"^\s+expect\s*:", re.MULTILINE)


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    """Collect ``*.yaml``/``*.yml`` files that declare a scenario with expectations."""
    if file_path.suffix not in (".yaml", ".yml"):
        return None
    from ..core.yamlio import MAX_BYTES, InputError, read_text_bounded

    try:  # bounded, regular files only: a FIFO or device named *.yaml is not read (nor collected)
        head = read_text_bounded(file_path, MAX_BYTES, "file")
    except InputError:
        return None
    if _EXPECT.search(head) and _SCENARIO.search(head):
        return ScenarioFile.from_parent(parent, path=file_path)
    if _AUDIT.search(head) and _AUDIT_EXPECT.search(head):
        return AuditFileCollector.from_parent(parent, path=file_path)
    return None


class AuditFileCollector(pytest.File):
    """An audit file (``audit:`` with ``expect:``): one item that audits its log."""

    def collect(self) -> Iterator[pytest.Item]:
        yield AuditItem.from_parent(self, name="audit")


class AuditItem(pytest.Item):
    """Audits the file's log against its pack and checks the expected findings."""

    def runtest(self) -> None:
        from ..audit.spec import load_audit_file, run_audit_file
        from ..core.yamlio import InputError

        try:
            _result, failures = run_audit_file(load_audit_file(self.path))
        except InputError as exc:
            raise ScenarioFailure("invalid audit file:\n" + str(exc)) from None
        if failures:
            raise ScenarioFailure("\n".join(failures))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, ScenarioFailure):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"audit: {self.path.name}"


class ScenarioFile(pytest.File):
    """A scenario file: one item that runs it and checks all its expectations."""

    def collect(self) -> Iterator[pytest.Item]:
        yield ScenarioItem.from_parent(self, name="expectations")


class ScenarioFailure(Exception):
    """Expectations of a scenario did not hold, or the scenario is invalid input."""


class ScenarioItem(pytest.Item):
    """Runs the scenario and checks its expectations."""

    def runtest(self) -> None:
        from ..core.yamlio import InputError
        from ..experiments.batch import run

        try:
            result = run(self.path)
        except InputError as exc:
            raise ScenarioFailure("invalid scenario:\n" + str(exc)) from None
        bad = [c for c in result.check() if not c.ok]
        if bad:
            total = len(result.check())
            lines = [f"{len(bad)} of {total} expectations failed:"]
            lines += [c.describe() for c in bad]
            raise ScenarioFailure("\n".join(lines))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, ScenarioFailure):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"scenario: {self.path.name}"
