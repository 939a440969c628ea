"""The architecture of the README's design section, checked: one-way imports, a pure state machine."""

from __future__ import annotations

import ast
import re
from pathlib import Path

SIM = Path(__file__).resolve().parent.parent / "sim"

#: lowest first: a subpackage imports only from the subpackages before it, and inside a subpackage a
#: module imports only the modules before it (its ``__init__`` comes last: it may re-export them)
LAYERS: dict[str, list[str]] = {
    "core": ["units", "yamlio", "problems", "schema"],
    "money": ["ledger"],
    "policy": ["calendar", "values", "procedures", "dated", "model"],
    "machine": [
        "vocabulary",
        "records",
        "effects",
        "procedures",
        "guards",
        "actions",
        "transitions",
        "contract",
    ],
    "inputs": ["distributions", "population_spec", "scenario"],
    "engine": ["collector", "environment", "simulation"],
    "behaviour": ["population"],
    "analysis": ["aging", "tables", "expect", "explain"],
    "experiments": ["runner", "outdir", "executors", "batch", "sweeps", "paired", "transition"],
    "audit": ["log", "replay", "spec", "calibrate"],
    "viz": [
        "plots",
        "market_charts",
        "diagram",
        "policy_diagram",
        "report_text",
        "report",
        "audit_report",
        "calibration_report",
    ],
    "app": ["cli", "pytest_plugin"],
}
#: the top: ``sim/__init__.py`` (the public API, which wires the layers) and ``python -m sim``
TOP = ("__init__", "__main__")


def _name(path: Path) -> str:
    """``sim.experiments.batch`` for sim/experiments/batch.py, ``sim.viz`` for sim/viz/__init__.py."""
    parts = ["sim", *path.relative_to(SIM).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(dotted: str) -> bool:
    rel = Path(*dotted.split(".")[1:])
    return (SIM / rel).with_suffix(".py").exists() or (SIM / rel / "__init__.py").exists()


def _imports(path: Path) -> list[tuple[str, tuple[str, ...], bool]]:
    """(sim module, names, typing-only) for every import of a sim module in a file.

    Lazy imports and ``if TYPE_CHECKING:`` imports are included (the last flagged typing-only).
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only.update(id(n) for n in ast.walk(node))
    me = _name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: list[tuple[str, tuple[str, ...], bool]] = []
    for node in ast.walk(tree):
        typing = id(node) in typing_only
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target != "sim" and not target.startswith("sim."):
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if _is_module(sub):  # from . import plots
                    found.append((sub, (), typing))
                else:
                    found.append((target, (alias.name,), typing))
        elif isinstance(node, ast.Import):
            found += [(a.name, (), typing) for a in node.names if a.name.startswith("sim.")]
    return found


def _rank(dotted: str) -> tuple[int, int]:
    """(subpackage, module) rank; a subpackage's ``__init__`` ranks above its modules."""
    parts = dotted.split(".")[1:]
    layer = list(LAYERS).index(parts[0])
    modules = LAYERS[parts[0]]
    return layer, (modules.index(parts[1]) if len(parts) > 1 else len(modules))


def _all_files() -> list[Path]:
    return sorted(p for p in SIM.rglob("*.py") if "rules" not in p.relative_to(SIM).parts)


def test_every_module_is_placed_in_a_layer():
    placed = {f"{pkg}/{m}.py" for pkg, mods in LAYERS.items() for m in [*mods, "__init__"]}
    placed |= {f"{m}.py" for m in TOP}
    found = {p.relative_to(SIM).as_posix() for p in _all_files()}
    assert found == placed


def test_imports_go_one_way():
    """Every import points down the layers, lazy and ``TYPE_CHECKING`` imports included."""
    wrong = []
    for path in _all_files():
        me = _name(path)
        if path.parent == SIM:  # the top may import anything
            continue
        mine = _rank(me)
        for target, names, typing in _imports(path):
            if target == "sim":
                # `from .. import __version__` reads the version, set before sim/__init__'s imports
                if names != ("__version__",):
                    wrong.append(f"{me} imports {names} from sim")
                continue
            if _rank(target) >= mine:
                wrong.append(f"{me} imports {target}" + (" (TYPE_CHECKING)" if typing else ""))
    assert wrong == [], wrong


def test_typing_only_imports_are_checked():
    """The check above sees ``if TYPE_CHECKING:`` imports (there are some, e.g. viz's ``Result``)."""
    typing = [t for p in _all_files() for t, _, only in _imports(p) if only]
    assert "sim.experiments.batch" in typing


def test_no_module_imports_private_names():
    """A name another module needs is public (no underscore) in the module that owns it."""
    wrong = []
    for path in _all_files():
        for target, names, _ in _imports(path):
            private = [n for n in names if n.startswith("_") and n != "__version__"]
            wrong += [f"{_name(path)}: {target}.{n}" for n in private]
    assert wrong == [], wrong


MACHINE = sorted((SIM / "machine").glob("*.py"))


def test_the_state_machine_is_pure():
    """machine decides what actions do: no SimPy, no clock, no randomness in any of its modules."""
    assert len(MACHINE) >= 5
    for path in MACHINE:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        modules = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names} | {
            n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
        }
        banned = ("simpy", "numpy", "random", "time", "datetime")
        assert not {m for m in modules if m.split(".")[0] in banned}, path
        assert {t.split(".")[1] for t, _, _ in _imports(path)} <= {"core", "money", "policy", "machine"}, path


def test_only_the_state_machine_decides():
    """Rejections and outcomes are made in machine; the layers above only schedule and record."""
    for path in _all_files():
        if path in MACHINE:
            continue
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"\b(Rejected|Outcome)\(", text), path


def test_only_the_environment_subclass_touches_simpy_internals():
    """SimPy is used through its public API; engine.environment's subclass extends it in one place."""
    internals = re.compile(r"\._(queue|now|eid|ok|value)\b")
    offenders = [
        f"{path.relative_to(SIM)}:{n}"
        for path in sorted(SIM.rglob("*.py"))
        if path.relative_to(SIM).as_posix() != "engine/environment.py"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if internals.search(line)
    ]
    assert offenders == [], offenders
