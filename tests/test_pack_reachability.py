"""A pack's procedures and stages must be reachable (issue 10, bad input): a procedure nothing
opens, or a stage no outcome leads to, holds keys that decide nothing. Exit 2 with file:line:column."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BASE = """\
policy: reach
extends: null
milestones: {minimum_amount: 5.00}
review: {window: 14d}
refund: null
procedures:
  complaint:
    opened_by: {client: complain}
    stages:
      - {name: respond, party: freelancer, window: 3d, answers: {accept: refund}, on_timeout: refund}
"""


def _validate(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "reach.yaml"
    path.write_text(text, encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "sim", "validate", str(path)], capture_output=True, text=True, check=False
    )


def test_a_reachable_pack_is_valid(tmp_path: Path):
    proc = _validate(tmp_path, BASE)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("extra", "where", "message"),
    [
        (
            "  orphan:\n    stages:\n      - {name: decide, party: platform, decision: binding}\n",
            "reach.yaml:12:5",
            "procedure orphan is never opened",
        ),
        (
            "      - {name: appeal, party: platform, decision: binding}\n",
            "reach.yaml:11:9",
            "stage appeal of complaint is never reached",
        ),
    ],
)
def test_an_unreachable_procedure_or_stage_is_an_error(tmp_path: Path, extra: str, where: str, message: str):
    proc = _validate(tmp_path, BASE + extra)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert where in out and message in out, out
    assert "Traceback" not in out
