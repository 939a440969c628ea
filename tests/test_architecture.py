"""The architecture of the README's design section, checked: one-way imports, a pure state machine."""

from __future__ import annotations

import ast
import re
from pathlib import Path

SIM = Path(__file__).resolve().parent.parent / "sim"

#: lowest first: a module imports (at run time, lazily or not) only modules before it
ORDER = [
    "units",
    "yamlio",
    "schema",
    "policy",
    "ledger",
    "actions",
    "distributions",
    "sampling",
    "scenario",
    "contract",
    "engine",
    "population",
    "results",
    "runner",
    "expect",
    "outdir",
    "executors",
    "plots",
    "report_text",
    "report",
    "batch",
    "sweeps",
    "paired",
    "cli",
    "pytest_plugin",
    "__init__",
    "__main__",
]


def _runtime_imports(path: Path) -> set[str]:
    """sim modules a file imports outside ``if TYPE_CHECKING:`` blocks (lazy imports included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:  # from . import x, y
                found.update(a.name for a in node.names if (SIM / f"{a.name}.py").exists())
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("sim."))
    return found


def test_every_module_is_placed_in_the_order():
    modules = {p.stem for p in SIM.glob("*.py")}
    assert modules == set(ORDER)


def test_imports_go_one_way():
    rank = {name: i for i, name in enumerate(ORDER)}
    upward = []
    for name in ORDER:
        for dep in _runtime_imports(SIM / f"{name}.py"):
            if dep in rank and rank[dep] >= rank[name] and not (name != "__init__" and dep == "__init__"):
                upward.append(f"{name} imports {dep}")
    # `from . import __version__` reads the package's version, defined before its imports
    assert upward == [], upward


def test_the_state_machine_is_pure():
    """contract decides what actions do: no SimPy, no clock, no randomness in it."""
    text = (SIM / "contract.py").read_text(encoding="utf-8")
    tree = ast.parse(text)
    modules = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names} | {
        n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
    }
    assert not {m for m in modules if m.split(".")[0] in ("simpy", "numpy", "random", "time", "datetime")}
    assert _runtime_imports(SIM / "contract.py") <= {"actions", "policy", "units"}


def test_only_the_state_machine_decides():
    """Rejections and outcomes are made in contract; the layers above only schedule and record."""
    for name in ORDER:
        if name == "contract":
            continue
        text = (SIM / f"{name}.py").read_text(encoding="utf-8")
        assert not re.search(r"\b(Rejected|Outcome)\(", text), name
