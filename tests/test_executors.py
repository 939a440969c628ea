"""Execution backends: the same rows whatever runs them, streaming parts, resume, no side effects."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import TINY_POPULATION

import sim
from sim.experiments.executors import Dask, InProcess, LocalProcesses, RunTask, chunk_size, map_runs
from sim.inputs.scenario import load_scenario

TINY = TINY_POPULATION.format(seed=5, count=120)
GRID = {"review.window": ["3d", "14d"], "population.platform.dispute_agents": [1, 2]}


@pytest.fixture
def tiny(write) -> Path:
    return write("tiny.yaml", TINY)


def _sweep(tiny: Path, out: Path, backend, **kw) -> sim.SweepResult:
    return sim.sweep(tiny, GRID, replications=2, backend=backend, out=out, charts=False, **kw)


def test_identical_rows_in_process_local_processes_and_dask(tiny: Path, tmp_path: Path) -> None:
    ref = _sweep(tiny, tmp_path / "inprocess", "inprocess")
    with LocalProcesses(2) as procs:
        local = _sweep(tiny, tmp_path / "processes", procs)
        assert procs.workers == 2
    try:
        dask = Dask(workers=2)
        dask.client  # noqa: B018 - starts the LocalCluster (2 worker processes, 1 thread each)
    except Exception as exc:  # pragma: no cover - only when the machine cannot start a cluster
        pytest.skip(f"Dask LocalCluster could not start: {exc}")
    with dask:
        workers = dask.client.scheduler_info()["workers"].values()
        assert len(workers) == 2 and all(w["nthreads"] == 1 for w in workers)
        on_dask = _sweep(tiny, tmp_path / "dask", dask)
    assert len(ref.runs) == 8
    for other in (local, on_dask):
        pd.testing.assert_frame_equal(other.runs, ref.runs)
        pd.testing.assert_frame_equal(other.milestones(), ref.milestones())
    for name in ("sweep.csv", "summary.csv"):
        text = (tmp_path / "inprocess" / name).read_bytes()
        assert (tmp_path / "processes" / name).read_bytes() == text
        assert (tmp_path / "dask" / name).read_bytes() == text


def test_worker_count_does_not_change_results(tiny: Path, tmp_path: Path) -> None:
    one = _sweep(tiny, tmp_path / "one", "processes", workers=1)
    ref = _sweep(tiny, tmp_path / "ref", "inprocess")
    pd.testing.assert_frame_equal(one.runs, ref.runs)


def test_map_runs_yields_in_task_order(tiny: Path) -> None:
    sc = load_scenario(tiny)
    tasks = [RunTask(sc, 0, rep, 5) for rep in (4, 0, 3, 1, 2)]
    with LocalProcesses(2) as procs:
        got = list(map_runs(tasks, procs, chunksize=1))
    assert [o.replication for o in got] == [4, 0, 3, 1, 2]
    direct = list(map_runs(tasks, InProcess()))
    assert [o.kpis for o in got] == [o.kpis for o in direct]


def test_chunk_size_balances_and_caps() -> None:
    assert chunk_size(16, 2) == 2
    assert chunk_size(3, 8) == 1
    assert chunk_size(100_000, 2) == 16


def test_parts_hold_rows_and_only_kpis_come_back(tiny: Path, tmp_path: Path) -> None:
    res = _sweep(tiny, tmp_path / "out", "inprocess")
    parts = sorted((tmp_path / "out" / "parts").glob("*.parquet"))
    assert [p.name for p in parts][:3] == [
        "v0000-r00000.parquet",
        "v0000-r00001.parquet",
        "v0001-r00000.parquet",
    ]
    assert len(parts) == 8
    assert not list((tmp_path / "out" / "parts").glob(".*"))  # no temporary files left
    one = pd.read_parquet(parts[3])
    assert set(one["variant"]) == {1} and set(one["replication"]) == {1}
    assert res.runs.loc[3, "milestones"] == len(one)


def test_resume_recomputes_only_missing_parts(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = _sweep(tiny, out, "inprocess")
    parts = out / "parts"
    stamps = {p.name: p.stat().st_mtime_ns for p in parts.glob("*.parquet")}
    victim = parts / "v0002-r00001.parquet"
    victim.unlink()
    again = _sweep(tiny, out, "inprocess", resume=True)
    now = {p.name: p.stat().st_mtime_ns for p in parts.glob("*.parquet")}
    assert set(now) == set(stamps)
    changed = {name for name in now if now[name] != stamps[name]}
    assert changed == {victim.name}
    pd.testing.assert_frame_equal(again.runs, first.runs)
    # a part written for other inputs (another seed) is not reused
    reseeded = _sweep(tiny, out, "inprocess", resume=True, seed=6)
    assert all(p.stat().st_mtime_ns != now[p.name] for p in parts.glob("*.parquet"))
    assert not reseeded.runs["time_to_payment_days_mean"].equals(first.runs["time_to_payment_days_mean"])


class _Interrupting(InProcess):
    """Runs two chunks, then behaves like Ctrl-C."""

    def __init__(self) -> None:
        self.calls = 0

    def submit(self, fn, arg):
        self.calls += 1
        if self.calls > 2:
            raise KeyboardInterrupt
        return super().submit(fn, arg)


def test_interrupted_sweep_keeps_finished_runs(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        _sweep(tiny, out, _Interrupting())
    kept = sorted(p.name for p in (out / "parts").glob("*.parquet"))
    assert kept == ["v0000-r00000.parquet", "v0000-r00001.parquet"]
    resumed = _sweep(tiny, out, "inprocess", resume=True)
    assert len(resumed.runs) == 8
    pd.testing.assert_frame_equal(resumed.runs, _sweep(tiny, tmp_path / "fresh", "inprocess").runs)


def test_import_has_no_side_effects() -> None:
    code = (
        "import multiprocessing as mp, threading, sim, sim.experiments.executors, sim.experiments.sweeps\n"
        "assert mp.get_start_method(allow_none=True) is None, mp.get_start_method()\n"
        "assert not mp.active_children()\n"
        "print(threading.active_count())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"


def test_progress_bar_is_quiet_without_a_terminal(tiny: Path, capsys) -> None:
    sc = load_scenario(tiny)
    list(map_runs([RunTask(sc, 0, 0, 5)], "inprocess"))
    assert capsys.readouterr().err == ""


def _children() -> dict[int, list[int]]:
    """pid -> child pids, from /proc (Linux)."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(b")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _descendants(pid: int) -> set[int]:
    tree, found, todo = _children(), set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in (b"Z", b"X")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
def test_workers_stop_when_the_parent_is_killed(write, tmp_path: Path) -> None:
    import signal
    import time

    path = write("slow.yaml", TINY_POPULATION.format(seed=4, count=400))
    out = tmp_path / "s"
    args = ["sweep", str(path), "--grid", "review.window=2d,3d,5d,7d,9d,11d,14d,21d", "--replications", "8"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "sim", *args, "--workers", "2", "--out", str(out), "--quiet", "--no-charts"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 90
        while not list((out / "parts").glob("*.parquet")):  # the workers are at work
            assert proc.poll() is None, "the sweep ended before it could be killed"
            assert time.monotonic() < deadline, "no part written in 90 s"
            time.sleep(0.1)
        workers = _descendants(proc.pid)
        assert len(workers) >= 2, "no worker processes found"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 5
        while any(_running(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = sorted(w for w in workers if _running(w))
        assert left == [], f"worker processes {left} still running 5 s after the parent was killed"
        parts = sorted(p.name for p in (out / "parts").iterdir())
        time.sleep(1.5)
        assert sorted(p.name for p in (out / "parts").iterdir()) == parts  # nobody writes any more
    finally:
        if proc.poll() is None:
            proc.kill()
        for w in workers:  # do not leave them behind, even when the test failed
            if _running(w):
                with contextlib.suppress(OSError):
                    os.kill(w, signal.SIGKILL)
