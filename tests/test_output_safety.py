"""Output safety: the tool replaces only folders it made, writes all or nothing, and output errors
(full disk, full or closed stdout) are one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, TINY_POPULATION

import sim
from sim.app.cli import main
from sim.core.yamlio import InputError
from sim.experiments.outdir import MARKER

SCRIPTED = ROOT / "scenarios" / "upwork" / "partial_release_credit_funds_next.yaml"
TINY = TINY_POPULATION.format(seed=9, count=30)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _siblings(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.parent.iterdir() if p.name != folder.name)


# ------------------------------------------------------------------------------ 3: which folders


def test_run_marks_its_folder_and_replaces_it_whole(tmp_path: Path) -> None:
    out = tmp_path / "o"
    assert main(["run", str(SCRIPTED), "--out", str(out), "--quiet"]) == 0
    assert (out / MARKER).read_text(encoding="utf-8") == f"milestone-sim {sim.__version__}\n"
    assert (out / "report.html").is_file() and (out / "balances.png").is_file()
    assert main(["run", str(SCRIPTED), "--out", str(out), "--quiet", "--no-charts"]) == 0
    names = {p.name for p in out.iterdir()}
    assert "report.html" not in names and "balances.png" not in names  # never a mix of two runs
    assert _siblings(out) == []  # no temporary or old folder left beside it


def test_run_refuses_a_non_empty_folder_it_did_not_make(tmp_path: Path, capsys) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious\n", encoding="utf-8")
    (out / "events.csv").write_text("my own events\n", encoding="utf-8")
    assert main(["run", str(SCRIPTED), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "<command line --out>" in err and "not made by milestone-sim" in err and "--force" in err
    assert (out / "events.csv").read_text(encoding="utf-8") == "my own events\n"
    assert main(["run", str(SCRIPTED), "--out", str(out), "--quiet", "--no-charts", "--force"]) == 0
    assert (out / MARKER).is_file() and not (out / "thesis.tex").exists()


def test_an_empty_folder_is_fine(tmp_path: Path) -> None:
    out = tmp_path / "empty"
    out.mkdir()
    assert main(["run", str(SCRIPTED), "--out", str(out), "--quiet", "--no-charts"]) == 0
    assert (out / "events.csv").is_file()


@pytest.mark.parametrize("which", ["root", "home", "cwd", "parent"])
def test_protected_folders_are_refused_even_with_force(
    which: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(work)
    target = {"root": "/", "home": str(tmp_path / "home"), "cwd": ".", "parent": str(tmp_path / "a")}[which]
    assert main(["run", str(SCRIPTED), "--out", target, "--force", "--quiet"]) == 2
    err = capsys.readouterr().err
    why = {"root": "root folder", "home": "home folder", "cwd": "current folder", "parent": "parent of"}
    assert why[which] in err
    assert list(work.iterdir()) == [] and list((tmp_path / "home").iterdir()) == []


def test_a_failed_run_leaves_the_previous_outputs_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    out = tmp_path / "o"
    assert main(["run", str(SCRIPTED), "--out", str(out), "--quiet"]) == 0
    before = _snapshot(out)
    import sim.viz.report

    def broken(result: object, folder: Path) -> None:
        (Path(folder) / "report.html").write_text("<half", encoding="utf-8")
        raise RuntimeError("the chart library fell over")

    monkeypatch.setattr(sim.viz.report, "write_report", broken)
    assert main(["run", str(SCRIPTED), "--out", str(out), "--quiet", "--seed", "5"]) == 3
    assert _snapshot(out) == before
    assert _siblings(out) == []


def test_python_write_has_the_same_guard(tmp_path: Path) -> None:
    result = sim.run(SCRIPTED)
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "keep.txt").write_text("keep\n", encoding="utf-8")
    with pytest.raises(InputError, match="not made by milestone-sim"):
        result.write(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["keep.txt"]
    result.write(tmp_path / "new")
    result.write(tmp_path / "new")  # its own folder: replaced
    assert (tmp_path / "new" / "summary.json").is_file()
    result.write(folder, force=True)
    assert (folder / "summary.json").is_file()


# ------------------------------------------------------------------------------ 2: output errors


def test_disk_full_while_writing_is_one_line_and_keeps_the_old_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    out = tmp_path / "o"
    assert main(["run", str(SCRIPTED), "--out", str(out), "--quiet", "--no-charts"]) == 0
    before = _snapshot(out)
    real = sim.analysis.tables.write_csv

    def full_disk(df: object, path: Path, digits: int = 2) -> None:
        if path.name == "ledger.csv":
            path.write_text("time,fro", encoding="utf-8")  # a truncated file, as a full disk leaves
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(df, path, digits)

    monkeypatch.setattr(sim.analysis.tables, "write_csv", full_disk)
    code = main(["run", str(SCRIPTED), "--out", str(out), "--quiet", "--no-charts", "--seed", "7"])
    assert code == 4
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert lines == [f"error: cannot write the outputs into {out}: No space left on device"]
    assert "Traceback" not in captured.err + captured.out
    assert _snapshot(out) == before
    assert _siblings(out) == []


def _cli(*args: str, **kw: object) -> list[str]:
    return [sys.executable, "-m", "sim", *args]


def test_stdout_on_dev_full_is_a_clear_error(tmp_path: Path) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            _cli("run", str(SCRIPTED), "--out", str(tmp_path / "o"), "--no-charts"),
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 4
    assert proc.stderr.strip() == "error: cannot write to standard output: No space left on device"


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        _cli("run", str(SCRIPTED), "--out", str(tmp_path / "o"), "--no-charts"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before anything is printed, as with `| head -1`
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 4
    assert err == "", err  # no traceback, no "Exception ignored ... BrokenPipeError"
    assert (tmp_path / "o" / "events.csv").is_file()


# ------------------------------------------------------------------------------ 4: sweep parts


def _sweep(path: Path, out: Path, *extra: str) -> int:
    args = ["sweep", str(path), "--grid", "review.window=3d,14d", "--replications", "1", "--inprocess"]
    return main([*args, "--out", str(out), "--no-charts", "--quiet", *extra])


def test_sweep_refuses_a_folder_it_did_not_make(write, tmp_path: Path, capsys) -> None:
    path = write("tiny.yaml", TINY)
    out = tmp_path / "s"
    (out / "parts").mkdir(parents=True)
    (out / "parts" / "data.parquet").write_bytes(b"PAR1 mine")
    (out / "parts" / ".cache.tmp").write_bytes(b"mine")
    assert _sweep(path, out) == 2
    assert "not made by milestone-sim" in capsys.readouterr().err
    assert sorted(p.name for p in (out / "parts").iterdir()) == [".cache.tmp", "data.parquet"]


def test_sweep_deletes_only_its_own_parts(write, tmp_path: Path) -> None:
    path = write("tiny.yaml", TINY)
    out = tmp_path / "s"
    assert _sweep(path, out) == 0
    assert (out / MARKER).is_file()
    parts = out / "parts"
    (parts / "data.parquet").write_bytes(b"PAR1 mine")
    (parts / ".cache.tmp").write_bytes(b"mine")
    (parts / "v0007-r00000.parquet").write_bytes(b"a part of another grid")
    (parts / ".v0000-r00000.parquet.123-0123abcd.tmp").write_bytes(b"left by a crash")
    assert _sweep(path, out) == 0
    names = sorted(p.name for p in parts.iterdir())
    assert names == [".cache.tmp", "data.parquet", "v0000-r00000.parquet", "v0001-r00000.parquet"]


def test_sweep_api_guards_its_folder_too(write, tmp_path: Path) -> None:
    path = write("tiny.yaml", TINY)
    out = tmp_path / "s"
    out.mkdir()
    (out / "notes.md").write_text("mine\n", encoding="utf-8")
    with pytest.raises(InputError, match="not made by milestone-sim"):
        sim.sweep(path, {"review.window": ["3d", "7d"]}, replications=1, backend="inprocess", out=out)
    with pytest.raises(InputError, match="not made by milestone-sim"):
        sim.compare(path, {"review.window": "3d"}, None, replications=1, backend="inprocess", out=out)
    assert [p.name for p in out.iterdir()] == ["notes.md"]
