"""Output folders: which ones the tool may write or replace, and writing them all or nothing.

The tool replaces only a folder it made itself: every output folder holds a marker file,
``.milestone-sim``, naming the tool. A non-empty folder without the marker is refused unless
``force`` is given; ``/``, the home folder, the current folder and any folder above it are refused
even then. ``staged(out)`` hands out a temporary sibling folder (``.<name>.tmp-<pid>``) to write
into; on success the previous folder is renamed away, the new one renamed into place, and only
then is the old one deleted. A failed run therefore leaves the previous outputs whole, and a
reader never sees a mix of two runs or a truncated file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .. import __version__
from ..core.yamlio import InputError, Problem

MARKER = ".milestone-sim"
_MARK_TEXT = "milestone-sim"


class OutputError(Exception):
    """The outputs could not be written (disk full, permission lost, ...): not bad input."""


def marker_text() -> str:
    """What the marker file holds: the tool's name and version."""
    return f"{_MARK_TEXT} {__version__}\n"


def is_marked(folder: Path) -> bool:
    """True when ``folder`` holds the tool's marker (the tool made it)."""
    try:
        head = (folder / MARKER).read_text(encoding="utf-8", errors="replace")[:100]
    except OSError:
        return False
    return head.startswith(_MARK_TEXT)


def mark(folder: Path) -> None:
    """Write the marker into ``folder``."""
    (folder / MARKER).write_text(marker_text(), encoding="utf-8")


def _refuse(source: str, message: str) -> InputError:
    return InputError([Problem(source, None, None, message)])


def _protected(target: Path) -> str | None:
    """Why ``target`` may never be an output folder, or None."""
    if target.parent == target:
        return "is the root folder"
    try:
        if target == Path.home().resolve():
            return "is your home folder"
    except (RuntimeError, KeyError, OSError):
        pass
    cwd = Path.cwd().resolve()
    if target == cwd:
        return "is the current folder"
    if target in cwd.parents:
        return "is a parent of the current folder"
    return None


def check_out_dir(path: str | Path, *, force: bool = False, source: str = "<command line --out>") -> Path:
    """Check that ``path`` can take the outputs, before anything runs; return it resolved.

    Raises InputError located at ``source`` (how the folder was given) when the path is a file,
    a protected folder, a non-empty folder the tool did not make (without ``force``), or a place
    where nothing can be written.
    """
    raw = Path(path)
    target = raw.expanduser().resolve()
    why = _protected(target)
    if why:
        raise _refuse(source, f"{raw} {why}: the tool replaces its output folder, choose another one")
    if target.exists() or target.is_symlink():
        if not target.is_dir():
            raise _refuse(source, f"{raw} exists and is not a folder")
        if not force and not is_marked(target) and any(target.iterdir()):
            raise _refuse(
                source,
                f"{raw} is not empty and was not made by milestone-sim (no {MARKER} file in it); "
                "choose another folder, or give --force (force=True in Python) to replace it",
            )
    ancestor = target.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise _refuse(source, f"{raw}: {ancestor} is not a folder")
    try:  # a real probe: permissions, read-only and special file systems all show here
        fd, probe = tempfile.mkstemp(prefix=".milestone-sim-probe-", dir=ancestor)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise _refuse(source, f"{raw}: cannot write in {ancestor} ({exc.strerror or exc})") from None
    return target


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


@contextlib.contextmanager
def staged(path: str | Path, *, force: bool = False, source: str = "<command line --out>") -> Iterator[Path]:
    """A temporary sibling folder to write the outputs into, renamed to ``path`` on success.

    On any error the temporary folder is deleted and ``path`` is left as it was; an OSError
    while writing becomes an OutputError with one readable line.
    """
    target = check_out_dir(path, force=force, source=source)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove(tmp)
        tmp.mkdir()
        mark(tmp)
    except OSError as exc:
        raise OutputError(f"cannot write the outputs into {path}: {exc.strerror or exc}") from None
    try:
        yield tmp
        if target.exists() or target.is_symlink():
            _remove(old)
            os.rename(target, old)
            os.rename(tmp, target)
            _remove(old)
        else:
            os.rename(tmp, target)
    except OSError as exc:
        _remove(tmp)
        if old.exists() and not target.exists():
            with contextlib.suppress(OSError):
                os.rename(old, target)
        raise OutputError(f"cannot write the outputs into {path}: {exc.strerror or exc}") from None
    except BaseException:
        _remove(tmp)
        raise


def prepare_in_place(path: str | Path, *, force: bool = False, source: str = "<command line --out>") -> Path:
    """Create (or reuse) a marked output folder that is written in place (sweeps: parts, resume)."""
    target = check_out_dir(path, force=force, source=source)
    try:
        target.mkdir(parents=True, exist_ok=True)
        if not is_marked(target):
            mark(target)
    except OSError as exc:
        raise OutputError(f"cannot write the outputs into {path}: {exc.strerror or exc}") from None
    return target


def replace_file(path: Path, write: object) -> None:
    """Write a file through a temporary sibling renamed into place (``write(tmp_path)``)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)  # type: ignore[operator]
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
