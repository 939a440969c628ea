"""Fuzz the real CLI entry with structural and textual mutations of the shipped scenarios and packs.

Property, for every mutant and every command (`validate`, `test`, `run`): no traceback, no exception
escaping `sim.app.cli.main`, an exit code of 0, 1 or 2, no hang, no contents of /etc/passwd or of the
environment in a message, and after an exit 2: an `error:` line and nothing written (`--out` does
not exist or is empty).

Seeds: every `scenarios/**/*.yaml` and every `rules/*.yaml`. A seed is parsed (safe_load with only
true/false as booleans, so `on:` stays a key), mutated, dumped and/or mutated as text, and written
into a fresh temporary folder beside copies of the seed's folder (a pack mutant sits beside a shipped
scripted scenario that names it by path, so `run` and `test` load the mutant pack).

- Structural mutations: delete a key, rename it (a typo), duplicate it, replace a value with another
  type (None, 1e308, -1, 10**30, "", a long string, a list, a nested dict, "$5^^2$", "1e999999",
  "../../etc/passwd", "/dev/zero", ...), swap two values, truncate a list, repeat a list item.
- Textual mutations: truncate at a byte, insert a character (any code point) or a raw non-UTF-8
  byte, insert a tab, insert an unsafe tag (`!!python/object/apply:os.system`), insert an alias bomb.

Populations are slow to run in full. Before mutating, the population seed is shrunk to 10
contracts over 5 days, a 30-day horizon and one replication (textual mutations then work on that
shrunk text, not on the year-long file), and all three commands run on it, `run` included.
Mutations that make it huge (10**30 contracts, an until of 1e308) must be refused at validation:
the per-call timeout turns an unbounded run into a failure.

Every call goes through `CliWorker` (see test_hostile_corpus.py): `sim.app.cli.main(argv)` in one
long-lived child process, with an address-space limit and a per-call timeout (PER_CALL_TIMEOUT),
so a hang or a runaway allocation fails the example instead of the machine. Hypothesis' own
deadline is off: the per-call timeout is the bound.

Budget: `make test` runs MILESTONE_SIM_FUZZ_EXAMPLES examples (default 60: 20 each for scripted
scenarios, populations and packs; about 20 s on this 2-core machine) with derandomize=True, so CI
is reproducible, and without the shrink phase (a hang would be re-run many times). Above 100
examples the shrink phase is on. `make fuzz` runs 2000 fresh random examples
(MILESTONE_SIM_FUZZ_DERANDOMIZE=0), with shrinking.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, Phase, event, given, note, settings
from hypothesis import strategies as st
from test_hostile_corpus import CliWorker, Outcome, assert_sane, error_lines

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = sorted((ROOT / "scenarios").rglob("*.yaml"))
SCRIPTED = [p for p in SCENARIOS if "\npopulation:" not in p.read_text(encoding="utf-8")]
PACKS = sorted((ROOT / "rules").glob("*.yaml"))
POPULATIONS = [p for p in SCENARIOS if p not in SCRIPTED]
SEEDS = {"scripted": SCRIPTED, "population": POPULATIONS, "pack": PACKS}

#: examples in all, split equally among scripted scenarios, populations and packs
EXAMPLES = int(os.environ.get("MILESTONE_SIM_FUZZ_EXAMPLES", "60"))
DERANDOMIZE = os.environ.get("MILESTONE_SIM_FUZZ_DERANDOMIZE", "1") != "0"
#: a valid mutant runs in well under a second; this much is a hang
PER_CALL_TIMEOUT = 15.0

settings.register_profile(
    "milestone-sim-fuzz",
    max_examples=max(1, EXAMPLES // len(SEEDS)),
    derandomize=DERANDOMIZE,
    deadline=None,  # each CLI call is bounded by PER_CALL_TIMEOUT instead
    database=None,  # nothing written into the repository
    print_blob=True,
    phases=(
        (Phase.explicit, Phase.generate)
        if EXAMPLES <= 100
        else (Phase.explicit, Phase.generate, Phase.shrink)
    ),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FUZZ_SETTINGS = settings.get_profile("milestone-sim-fuzz")


# --------------------------------------------------------------------------------------------------
# YAML in and out


class _Loader(yaml.SafeLoader):
    """safe_load, with only true/false as booleans (YAML 1.1 would make `on:` and `no` booleans)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


class Dup:
    """A mapping written with repeated keys (a list of pairs)."""

    def __init__(self, pairs: list[tuple[object, object]]) -> None:
        self.pairs = pairs


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: object) -> bool:
        return True


_Dumper.add_representer(Dup, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v.pairs))


def load(text: str) -> object:
    return yaml.load(text, Loader=_Loader)


def dump(tree: object) -> str:
    return yaml.dump(tree, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


# --------------------------------------------------------------------------------------------------
# structural mutations

VALUES = [
    None,
    1e308,
    -1,
    0,
    10**30,
    "",
    "x" * 5000,
    [1, "two", None],
    {"nested": {"deep": [1, {"x": None}]}},
    "$5^^2$",
    "1e999999",
    "../../etc/passwd",
    "/dev/zero",
    True,
    "14d",
    -0.5,
]


DURATION = re.compile(r"[0-9.]+(w|d|h|min|s)")


def _tweakable(value: object) -> bool:
    if isinstance(value, str):
        return bool(DURATION.fullmatch(value))
    return isinstance(value, bool | int | float)


def tweak(value: object, data: st.DataObject) -> object:
    """A plausible neighbour of a scalar, so that some mutants stay valid and reach the engine."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        factor = data.draw(st.sampled_from([0, 0.5, 3, 10, 1000]), label="factor")
        return type(value)(value * factor)
    if isinstance(value, str):
        if DURATION.fullmatch(value):
            return data.draw(st.sampled_from(["0d", "1s", "1h", "13d23h59min", "99d", "365d"]), label="dur")
        return data.draw(st.sampled_from([value + "_2", value[:1], value.upper()]), label="text")
    return value


def paths(node: object, prefix: tuple = ()) -> list[tuple]:
    """Every path below the root: dict keys and list indices."""
    out = []
    if isinstance(node, dict):
        for key, value in node.items():
            out.append((*prefix, key))
            out.extend(paths(value, (*prefix, key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out.append((*prefix, index))
            out.extend(paths(value, (*prefix, index)))
    return out


def get(node: object, path: tuple) -> object:
    for step in path:
        node = node[step]  # type: ignore[index]
    return node


def typo(key: str, data: st.DataObject) -> str:
    if not key:
        return "x"
    kind = data.draw(st.sampled_from(["drop", "double", "swap", "upper", "plural"]), label="typo")
    i = data.draw(st.integers(0, len(key) - 1), label="typo at")
    if kind == "drop":
        return key[:i] + key[i + 1 :] or key + "_"
    if kind == "double":
        return key[:i] + key[i] + key[i:]
    if kind == "swap" and len(key) > 1:
        i = min(i, len(key) - 2)
        return key[:i] + key[i + 1] + key[i] + key[i + 2 :]
    if kind == "upper":
        return key.upper() if key.upper() != key else key + "S"
    return key + "s"


#: the values the issue found crashes with; "hostile" puts one in place of a scalar
HOSTILE_VALUES = [1e308, 10**30, -1, "1e999999", "$5^^2$", "../../etc/passwd", "/dev/zero", "1e308d"]
ALL_OPS = [
    "delete",
    "rename",
    "duplicate",
    "replace",
    "hostile",
    "hostile",
    "hostile",
    "tweak",
    "swap",
    "truncate",
    "repeat",
]
#: mutations that often keep a file valid, so that mutants reach the engine and the writers
GENTLE_OPS = ["tweak", "truncate", "repeat"]


def mutate_tree(tree: object, data: st.DataObject, ops: list[str]) -> tuple[object, list[str]]:
    """Apply 1-2 structural mutations drawn from ops; return the tree and a description of each."""
    tree = copy.deepcopy(tree)
    done: list[str] = []
    duplicates: list[tuple[tuple, object]] = []
    for _ in range(data.draw(st.integers(1, 2), label="structural mutations")):
        all_paths = paths(tree)
        in_dict = [p for p in all_paths if isinstance(get(tree, p[:-1]), dict)]
        lists = [p for p in [(), *all_paths] if isinstance(get(tree, p), list) and get(tree, p)]
        op = data.draw(st.sampled_from(ops), label="op")
        if op in ("delete", "rename", "duplicate") and in_dict:
            path = data.draw(st.sampled_from(in_dict), label="key")
            parent, key = get(tree, path[:-1]), path[-1]
            if op == "delete":
                del parent[key]
            elif op == "rename":
                new = typo(str(key), data)
                parent[new] = parent.pop(key)
                done.append(f"rename {path} -> {new!r}")
                continue
            else:
                value = data.draw(st.sampled_from([parent[key], *VALUES[:6]]), label="dup value")
                duplicates.append((path, value))
            done.append(f"{op} {path}")
        elif op == "replace" and all_paths:
            path = data.draw(st.sampled_from(all_paths), label="path")
            value = copy.deepcopy(data.draw(st.sampled_from(VALUES), label="value"))
            get(tree, path[:-1])[path[-1]] = value
            done.append(f"replace {path} with {str(value)[:40]!r}")
        elif op in ("tweak", "hostile") and all_paths:
            scalars = [p for p in all_paths if not isinstance(get(tree, p), dict | list)]
            if op == "tweak":  # numbers, booleans and durations: ids and names would only break references
                scalars = [p for p in scalars if _tweakable(get(tree, p))]
            if not scalars:
                continue
            path = data.draw(st.sampled_from(scalars), label="scalar")
            old = get(tree, path)
            if op == "hostile":
                new = data.draw(st.sampled_from(HOSTILE_VALUES), label="hostile value")
            else:
                new = tweak(old, data)
            get(tree, path[:-1])[path[-1]] = new
            done.append(f"{op} {path}: {str(old)[:40]!r} -> {str(new)[:40]!r}")
        elif op == "swap" and len(all_paths) >= 2:
            a = data.draw(st.sampled_from(all_paths), label="swap a")
            others = [p for p in all_paths if p[: len(a)] != a and a[: len(p)] != p]
            if not others:
                continue
            b = data.draw(st.sampled_from(others), label="swap b")
            va, vb = get(tree, a), get(tree, b)
            get(tree, a[:-1])[a[-1]], get(tree, b[:-1])[b[-1]] = vb, va
            done.append(f"swap {a} <-> {b}")
        elif op == "truncate" and lists:
            path = data.draw(st.sampled_from(lists), label="list")
            items = get(tree, path)
            keep = data.draw(st.integers(0, len(items) - 1), label="keep")
            del items[keep:]
            done.append(f"truncate {path} to {keep} items")
        elif op == "repeat" and lists:
            path = data.draw(st.sampled_from(lists), label="list")
            items = get(tree, path)
            i = data.draw(st.integers(0, len(items) - 1), label="item")
            times = data.draw(st.integers(1, 3), label="times")
            items[i + 1 : i + 1] = [copy.deepcopy(items[i]) for _ in range(times)]
            done.append(f"repeat {path}[{i}] x{times}")
    for path, value in duplicates:  # last, so that earlier paths stay valid
        try:
            parent = get(tree, path[:-1])
        except (KeyError, IndexError, TypeError):
            continue
        if isinstance(parent, dict) and path[-1] in parent:
            pairs = list(parent.items())
            pairs.append((path[-1], value))
            replacement = Dup(pairs)
            if path[:-1]:
                get(tree, path[:-2])[path[-2]] = replacement
            else:
                tree = replacement
    return tree, done


# --------------------------------------------------------------------------------------------------
# textual mutations

UNSAFE_TAG = 'evil: !!python/object/apply:os.system ["echo hi"]'
BOMB = (
    "bomb: [&a [1,1,1,1,1,1,1,1,1,1], "
    + ", ".join(f"&{n} [{', '.join([f'*{p}'] * 10)}]" for p, n in zip("abcdef", "bcdefg", strict=True))
    + "]"
)


def mutate_text(raw: bytes, data: st.DataObject) -> tuple[bytes, list[str]]:
    done: list[str] = []
    for _ in range(data.draw(st.integers(1, 2), label="textual mutations")):
        op = data.draw(
            st.sampled_from(["truncate", "char", "byte", "tab", "unsafe_tag", "alias_bomb"]), label="text op"
        )
        at = data.draw(st.integers(0, len(raw)), label="at")
        if op == "truncate":
            raw = raw[:at]
        elif op == "char":
            ch = data.draw(st.characters(codec="utf-8"), label="char")
            raw = raw[:at] + ch.encode("utf-8") + raw[at:]
            op = f"char {ch!r}"
        elif op == "byte":
            byte = data.draw(st.sampled_from([b"\xff", b"\xc3", b"\x00", b"\xe9", b"\r"]), label="byte")
            raw = raw[:at] + byte + raw[at:]
            op = f"byte {byte!r}"
        elif op == "tab":
            raw = raw[:at] + b"\t" + raw[at:]
        else:
            lines = raw.split(b"\n")
            i = data.draw(st.integers(0, len(lines)), label="line")
            indent = re.match(rb"[ ]*", lines[i]).group(0) if i < len(lines) else b""
            text = UNSAFE_TAG if op == "unsafe_tag" else BOMB
            lines.insert(i, indent + text.encode())
            raw = b"\n".join(lines)
            at = i
        done.append(f"{op} at {at}")
    return raw, done


# --------------------------------------------------------------------------------------------------
# the property


def shrink_population(tree: dict) -> dict:
    tree = copy.deepcopy(tree)
    tree.update(until="30d", replications=1)
    tree["population"]["arrivals"] = {"count": 10, "over": "5d"}
    return tree


def check(o: Outcome, out: Path | None, mutant: str) -> None:
    try:
        assert_sane(o)
        if o.code == 2:
            assert error_lines(o), f"exit 2 without an 'error:' line: {o.describe()}"
            if out is not None and out.exists():
                assert out.is_dir() and not any(out.iterdir()), (
                    f"outputs written after exit 2: {sorted(p.name for p in out.iterdir())}; {o.describe()}"
                )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- the mutant ---\n{mutant[:3000]}") from None


@pytest.fixture(scope="module")
def worker():
    w = CliWorker()
    yield w
    w.close()


@pytest.mark.parametrize("kind", list(SEEDS))
@FUZZ_SETTINGS
@given(data=st.data())
def test_mutated_inputs_never_crash_hang_or_write_after_exit_2(
    kind: str, worker: CliWorker, data: st.DataObject
):
    seed = data.draw(st.sampled_from(SEEDS[kind]), label="seed")
    raw = seed.read_bytes()
    tree = load(raw.decode("utf-8"))
    if kind == "population":
        tree = shrink_population(tree)
        raw = dump(tree).encode("utf-8")
    mode = data.draw(st.sampled_from(["structural", "gentle", "textual", "both"]), label="mode")
    done: list[str] = []
    if mode in ("structural", "gentle", "both"):
        tree, done = mutate_tree(tree, data, GENTLE_OPS if mode == "gentle" else ALL_OPS)
        raw = dump(tree).encode("utf-8")
    if mode in ("textual", "both"):
        raw, more = mutate_text(raw, data)
        done += more
    # charts cost a second a run: one run in ten, and every mutant with a `$` (TeX in titles)
    charts = data.draw(st.integers(0, 9), label="charts") == 0 or b"$" in raw
    note(f"seed {seed.relative_to(ROOT)}, {mode}: {done}")
    mutant = raw.decode("utf-8", "backslashreplace")

    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp_name:
        tmp = Path(tmp_name)
        folder = tmp / "case"
        if kind != "pack":
            shutil.copytree(seed.parent, folder)
            target = folder / seed.name
            target.write_bytes(raw)
            calls = [["validate", str(target)], ["test", str(target)], ["run", str(target)]]
        else:
            folder.mkdir()
            pack = folder / seed.name
            pack.write_bytes(raw)
            base = data.draw(st.sampled_from(SCRIPTED), label="scenario for the pack")
            text = base.read_text(encoding="utf-8")
            scenario = folder / "scenario.yaml"
            scenario.write_text(re.sub(r"(?m)^policy: .*$", f"policy: {seed.name}", text), encoding="utf-8")
            calls = [["validate", str(pack)], ["test", str(scenario)], ["run", str(scenario)]]
        for argv in calls:
            out = None
            if argv[0] == "run":
                out = tmp / "out"
                argv += ["--out", str(out), "--workers", "1"] + ([] if charts else ["--no-charts"])
            o = worker.run(argv, cwd=tmp, timeout=PER_CALL_TIMEOUT)
            event(f"{kind} {argv[0]}: exit {o.code}")
            note(f"{argv[0]}: exit {o.code}, {o.seconds:.2f}s, {(error_lines(o) or [''])[0][:200]}")
            check(o, out, mutant)
