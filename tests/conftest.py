"""Shared fixtures: paths to the project's folders and a helper to write scenario files."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# YAML files under tests/ are inputs of the tests (many deliberately invalid), not scenarios to collect.
collect_ignore_glob = ["data/*", "data/**/*"]


@pytest.fixture
def root() -> Path:
    """The project's top folder."""
    return ROOT


@pytest.fixture
def write(tmp_path: Path):
    """Write a file under a temporary folder and return its path."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return _write
