"""Determinism: same files, same seed, same bytes, in this process or another, whatever PYTHONHASHSEED.

Python salts ``hash()`` of strings per process, so any set of strings iterated on a path that
affects results (ids, accounts, milestones) changes the order of rows, the ties of a heap or the
draws of a random stream from one process to the next. A run in-process twice can agree with
itself and still differ from a run with another hash seed, hence the subprocesses below.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from sim.app.cli import main as cli_main

ROOT = Path(__file__).resolve().parent.parent
SCRIPTED = sorted((ROOT / "scenarios" / "upwork").glob("*.yaml"))
POPULATIONS = sorted((ROOT / "scenarios" / "populations").glob("*.yaml"))
#: the tables every run writes, as CSV (scripted runs) or Parquet (populations: run --format)
TABLES = ("events", "ledger", "milestones", "balances", "contracts", "aging")
HASH_SEEDS = ("0", "1", "12345")


def read_outputs(folder: Path) -> dict[str, bytes]:
    """Every file a run wrote, by relative path, as bytes."""
    files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    missing = [t for t in TABLES if f"{t}.csv" not in files and f"{t}.parquet" not in files]
    missing += [] if "summary.json" in files else ["summary.json"]
    assert not missing, f"{folder} lacks {sorted(missing)}"
    return files


def assert_same(a: dict[str, bytes], b: dict[str, bytes], what: str) -> None:
    assert sorted(a) == sorted(b), f"{what}: different files {sorted(a)} vs {sorted(b)}"
    for name in sorted(a):
        if a[name] != b[name]:
            la, lb = a[name].splitlines(), b[name].splitlines()
            pairs = enumerate(zip(la, lb, strict=False))
            first = next((i for i, (x, y) in pairs if x != y), min(len(la), len(lb)))
            raise AssertionError(
                f"{what}: {name} differs at line {first + 1}:\n"
                f"  {la[first] if first < len(la) else b'<end>'!r}\n"
                f"  {lb[first] if first < len(lb) else b'<end>'!r}"
            )


def cli_run(scenario: Path, out: Path, *extra: str) -> dict[str, bytes]:
    code = cli_main(["run", str(scenario), "--out", str(out), "--no-charts", "--quiet", *extra])
    assert code == 0, f"milestone-sim run {scenario.name} exited {code}"
    return read_outputs(out)


def run_in_subprocesses(jobs: list[tuple[Path, tuple[str, ...]]], out: Path) -> dict[str, Path]:
    """Run the scenarios through the CLI in fresh interpreters, one per PYTHONHASHSEED, at once.

    Returns, per hash seed, the folder holding one output folder per job (named by job index).
    """
    procs = {}
    for seed in HASH_SEEDS:
        folder = out / f"hash{seed}"
        spec = [(str(s), str(folder / str(i)), list(x)) for i, (s, x) in enumerate(jobs)]
        code = (
            "import sys\n"
            "from sim.app.cli import main\n"
            f"for scenario, out, extra in {spec!r}:\n"
            "    code = main(['run', scenario, '--out', out, '--no-charts', '--quiet', *extra])\n"
            "    if code:\n"
            "        sys.exit(f'{scenario} exited {code}')\n"
        )
        env = {**os.environ, "PYTHONHASHSEED": seed}
        procs[seed] = subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    for seed, proc in procs.items():
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"PYTHONHASHSEED={seed}: {err[-3000:]}"
    return {seed: out / f"hash{seed}" for seed in HASH_SEEDS}


# ------------------------------------------------------------------------------------ scripted


def test_there_are_scripted_scenarios():
    assert len(SCRIPTED) >= 10, SCRIPTED


@pytest.mark.parametrize("scenario", SCRIPTED, ids=lambda p: p.stem)
def test_scripted_run_twice_is_byte_identical(scenario, tmp_path):
    first = cli_run(scenario, tmp_path / "first")
    second = cli_run(scenario, tmp_path / "second")
    assert_same(first, second, scenario.name)


def test_api_write_matches_cli(tmp_path):
    """``sim.run(...).write(dir)`` and ``milestone-sim run`` write the same bytes."""
    import sim

    scenario = SCRIPTED[0]
    via_cli = cli_run(scenario, tmp_path / "cli")
    sim.run(scenario).write(tmp_path / "api")
    assert_same(via_cli, read_outputs(tmp_path / "api"), scenario.name)


def test_scripted_runs_ignore_pythonhashseed(hash_runs, tmp_path):
    """Every scripted scenario, in fresh interpreters with different hash seeds, and in this one."""
    folders, jobs = hash_runs
    for i, (scenario, extra) in enumerate(jobs):
        if scenario.parent.name != "upwork":
            continue
        here = cli_run(scenario, tmp_path / str(i), *extra)
        for seed, folder in folders.items():
            assert_same(here, read_outputs(folder / str(i)), f"{scenario.name} with PYTHONHASHSEED={seed}")


# ---------------------------------------------------------------------------------- population


def make_small_population(folder: Path) -> tuple[Path | None, str]:
    """A copy of a population scenario cut to 60 days and 2 replications (same folder contents),
    or None and the reason there is none."""
    if not POPULATIONS:
        return None, "no population scenario in scenarios/populations/ yet"
    source = POPULATIONS[0]
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    policy = str(data.get("policy", ""))
    if policy.endswith((".yaml", ".yml")):
        return None, f"{source.name} names its policy by path ({policy}); a copy would not find it"
    folder.mkdir(parents=True, exist_ok=True)
    for sibling in source.parent.iterdir():  # e.g. CSV files of empirical distributions
        if sibling.is_file() and sibling.suffix not in (".yaml", ".yml"):
            (folder / sibling.name).write_bytes(sibling.read_bytes())
    data["until"] = "60d"
    data["replications"] = 2
    copy = folder / source.name
    copy.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return copy, ""


@pytest.fixture(scope="module")
def population_copy(tmp_path_factory) -> tuple[Path | None, str]:
    return make_small_population(tmp_path_factory.mktemp("populations"))


@pytest.fixture
def small_population(population_copy) -> Path:
    path, reason = population_copy
    if path is None:
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def hash_runs(tmp_path_factory, population_copy):
    """All scripted scenarios (and the small population) run once per PYTHONHASHSEED."""
    jobs: list[tuple[Path, tuple[str, ...]]] = [(s, ()) for s in SCRIPTED]
    if population_copy[0] is not None:
        jobs.append((population_copy[0], POP_ARGS))
    return run_in_subprocesses(jobs, tmp_path_factory.mktemp("hash")), jobs


POP_ARGS = ("--seed", "11", "--replications", "2", "--set", "review.window=10d")


def test_population_run_twice_is_byte_identical(small_population, tmp_path):
    first = cli_run(small_population, tmp_path / "first", *POP_ARGS)
    second = cli_run(small_population, tmp_path / "second", *POP_ARGS)
    assert_same(first, second, small_population.name)
    assert len(pd.read_parquet(io.BytesIO(first["milestones.parquet"]))) > 100  # populations: Parquet


def test_population_tables_as_csv_are_byte_identical_too(small_population, tmp_path):
    first = cli_run(small_population, tmp_path / "first", *POP_ARGS, "--format", "csv")
    second = cli_run(small_population, tmp_path / "second", *POP_ARGS, "--format", "csv")
    assert_same(first, second, small_population.name)
    assert first["milestones.csv"].count(b"\n") > 100


def test_population_depends_on_the_seed(small_population, tmp_path):
    """Not vacuous: another seed samples other contracts."""
    first = cli_run(small_population, tmp_path / "a", *POP_ARGS)
    other = cli_run(small_population, tmp_path / "b", "--seed", "12", *POP_ARGS[2:])
    assert first["milestones.parquet"] != other["milestones.parquet"]


def test_population_ignores_pythonhashseed(small_population, hash_runs, tmp_path):
    folders, jobs = hash_runs
    index = next(i for i, (s, _) in enumerate(jobs) if s == small_population)
    here = cli_run(small_population, tmp_path / "here", *POP_ARGS)
    for seed, folder in folders.items():
        got = read_outputs(folder / str(index))
        assert_same(here, got, f"{small_population.name} with PYTHONHASHSEED={seed}")


def test_comparison_sees_a_one_byte_difference():
    """The byte comparison itself can fail (and says where)."""
    a = {"events.csv": b"time,amount\n0,500.00\n"}
    with pytest.raises(AssertionError, match=r"events\.csv differs at line 2"):
        assert_same(a, {"events.csv": b"time,amount\n0,500.01\n"}, "self-test")
    with pytest.raises(AssertionError, match="different files"):
        assert_same(a, {**a, "extra.csv": b""}, "self-test")


# ---------------------------------------------------------------------------------- event modes


def _run_cli_bounded(args: list[str], seconds: float) -> subprocess.CompletedProcess | None:
    """Run the CLI in a subprocess capped in time and memory; None when it did not finish."""

    def cap_memory() -> None:  # a runaway run must fail here, not take the machine down
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (768 * 1024**2, 768 * 1024**2))

    try:
        return subprocess.run(
            [sys.executable, "-m", "sim", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=seconds,
            preexec_fn=cap_memory,
        )
    except subprocess.TimeoutExpired:
        return None


def test_event_mode_none_gives_the_same_numbers_for_a_scripted_scenario(tmp_path):
    scenario = ROOT / "scenarios" / "upwork" / "approve_within_window.yaml"
    outputs = {}
    for mode in ("full", "none"):
        out = tmp_path / mode
        proc = _run_cli_bounded(
            ["run", str(scenario), "--out", str(out), "--no-charts", "--quiet", "--events", mode], 10
        )
        assert proc is not None, f"--events {mode} did not finish within 10 s (or ran out of memory)"
        assert proc.returncode == 0, proc.stderr[-2000:]
        outputs[mode] = (
            read_outputs(out) if mode == "full" else {p.name: p.read_bytes() for p in out.iterdir()}
        )
    assert outputs["full"]["milestones.csv"] == outputs["none"]["milestones.csv"]


def test_event_mode_none_gives_the_same_numbers_for_a_population(small_population):
    import math

    import pandas as pd

    import sim

    full = sim.run(small_population, seed=3, replications=2)
    lean = sim.run(small_population, seed=3, replications=2, events="none")
    pd.testing.assert_frame_equal(full.milestones, lean.milestones)
    assert [r.totals for r in full.runs] == [r.totals for r in lean.runs]
    for name, value in full.kpis.items():
        a, b = value["mean"], lean.kpis[name]["mean"]
        assert a == b or (a is not None and b is not None and math.isnan(a) and math.isnan(b)), name
