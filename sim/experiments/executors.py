"""Where runs execute: in-process, local processes, or a Dask cluster, behind one interface.

``map_runs(tasks, backend, workers)`` plays every ``RunTask`` (one replication of one scenario
variant) and yields a ``RunOutcome`` per task, in task order, whatever order they finished in.
Each run writes its tidy per-milestone rows to its own Parquet part file (atomically: a temporary
file renamed into place), so only the KPI dict travels back to the caller and memory stays flat
as the number of runs grows. A finished part carries its KPIs and a fingerprint of its inputs in
the Parquet metadata, which is what ``--resume`` reads to skip it.

Nothing happens at import time: pools and clusters start on first use and stop on ``close()``.
Local processes use the ``forkserver`` start method where the platform has it (``spawn``
elsewhere), so they work from Jupyter and never inherit a half-initialised parent; as with any
``multiprocessing`` code, a script that starts a sweep needs an ``if __name__ == "__main__":``
guard.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..inputs.scenario import Scenario
from .runner import run_replication

BACKENDS = ("inprocess", "processes", "dask")
BROKEN_HINT = (
    "A worker process died. Worker processes import the script that started them: if you call "
    "sim.run(workers=...), sim.sweep or sim.compare from a script, put the call under "
    "'if __name__ == \"__main__\":' (code piped to python on stdin cannot be re-imported). "
    "Otherwise the worker ran out of memory or crashed; try backend='inprocess' to see the error."
)
KPIS_META = b"milestone_sim.kpis"
KEY_META = b"milestone_sim.key"


class RunFailed(RuntimeError):
    """A run raised: an engine bug (bad input is caught before anything runs)."""


@dataclass(frozen=True)
class RunTask:
    """One replication of one variant: what to play and where to put its rows."""

    scenario: Scenario
    variant: int
    replication: int
    seed: int
    part: str | None = None  # Parquet part to write (None: keep no rows)
    key: str = ""  # fingerprint of the inputs, stored in the part for --resume
    events: str = "none"


@dataclass(frozen=True)
class RunOutcome:
    """What travels back from a run: its KPIs, not its rows."""

    variant: int
    replication: int
    kpis: dict[str, float]
    rows: int
    seconds: float  # wall time in the worker
    reused: bool = False  # taken from an existing part (resume), not recomputed
    cpu_seconds: float = 0.0  # CPU time the worker got for it (less than seconds on a busy machine)


# ------------------------------------------------------------------------------ one run


def execute(task: RunTask) -> RunOutcome:
    """Play one task, write its part file, return its KPIs."""
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        tables = run_replication(task.scenario, task.replication, task.seed, task.events)
        rows = len(tables.milestones)
        if task.part is not None:
            write_part(tables.milestones, Path(task.part), task, tables.kpis)
    except Exception as exc:
        raise RunFailed(
            f"variant {task.variant}, replication {task.replication}: {type(exc).__name__}: {exc}"
        ) from exc
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return RunOutcome(task.variant, task.replication, tables.kpis, rows, wall, cpu_seconds=cpu)


def run_chunk(tasks: Sequence[RunTask]) -> list[RunOutcome]:
    """Play a chunk of tasks in one worker call (fewer round trips than one call per run)."""
    return [execute(t) for t in tasks]


def write_part(milestones: Any, path: Path, task: RunTask, kpis: dict[str, float]) -> None:
    """Write one run's milestone rows (with variant and replication) as a Parquet file, atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    df = milestones.copy()
    df.insert(0, "replication", task.replication)
    df.insert(0, "variant", task.variant)
    table = pa.Table.from_pandas(df, preserve_index=False)
    fields = []
    for f in table.schema:  # one schema for every part: strings as string, empty columns too
        if pa.types.is_null(f.type) or pa.types.is_large_string(f.type):
            fields.append(pa.field(f.name, pa.string()))
        else:
            fields.append(f)
    table = table.cast(pa.schema(fields, metadata=table.schema.metadata))
    meta = dict(table.schema.metadata or {})
    meta[KPIS_META] = json.dumps(kpis, sort_keys=True).encode()
    meta[KEY_META] = task.key.encode()
    table = table.replace_schema_metadata(meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def read_part_outcome(task: RunTask) -> RunOutcome | None:
    """The outcome stored in a task's finished part, or None when missing, stale or unreadable."""
    if task.part is None or not os.path.exists(task.part):
        return None
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(task.part)
        meta = schema.metadata or {}
        if meta.get(KEY_META, b"").decode() != task.key:
            return None
        kpis = json.loads(meta[KPIS_META])
        rows = pq.ParquetFile(task.part).metadata.num_rows
    except Exception:  # a damaged part is simply recomputed
        return None
    return RunOutcome(task.variant, task.replication, kpis, rows, 0.0, reused=True)


# ------------------------------------------------------------------------------ backends


class Backend(ABC):
    """Runs functions somewhere; ``submit`` returns a future, ``wait_any`` waits for one."""

    name: str = ""

    @property
    @abstractmethod
    def workers(self) -> int:
        """How many runs go on at once."""

    @abstractmethod
    def submit(self, fn: Callable[[Any], Any], arg: Any) -> Any:
        """Start ``fn(arg)``; return a future-like object with ``result()``."""

    def wait_any(self, pending: set[Any]) -> tuple[set[Any], set[Any]]:
        """Block until at least one future is done; return (done, not done)."""
        done, not_done = wait(pending, return_when=FIRST_COMPLETED)
        return set(done), set(not_done)

    def cancel(self, pending: set[Any]) -> None:
        """Cancel futures that have not started."""
        for f in pending:
            f.cancel()

    def close(self) -> None:  # noqa: B027 - nothing to release by default
        """Release pools, clients and clusters this backend started."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InProcess(Backend):
    """Runs each task in the calling process, one after another: for debugging and profiling."""

    name = "inprocess"

    @property
    def workers(self) -> int:
        return 1

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> Future:
        fut: Future = Future()
        try:
            fut.set_result(fn(arg))
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            fut.set_exception(exc)
        return fut


def default_workers() -> int:
    """The CPUs this process may use."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _ignore_sigint() -> None:
    """Ctrl-C stops the parent, which then stops the pool cleanly."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


#: how often a worker checks that the process that started it is still alive (seconds)
PARENT_POLL = 0.25


def _parent_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else (the pid was reused): treat as gone
        return False
    if sys.platform.startswith("linux"):  # a zombie parent is a dead one
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                state = fh.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        return state not in (b"Z", b"X")
    return True


def watch_parent(pid: int, poll: float = PARENT_POLL) -> None:
    """Exit this worker at once when process ``pid`` (the caller that started the pool) dies.

    On Linux the kernel is also asked to kill the worker when its own parent (the forkserver)
    dies (``PR_SET_PDEATHSIG``); a daemon thread polls ``pid`` everywhere, since under forkserver
    the caller is not the worker's parent.
    """
    import threading

    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while True:
            if not _parent_alive(pid):
                os._exit(70)  # the parent is gone: nobody will read what this worker writes
            time.sleep(poll)

    threading.Thread(target=watch, name="milestone-sim-parent-watch", daemon=True).start()


def _worker_init(parent: int) -> None:
    """Worker initializer: ignore Ctrl-C (the parent handles it) and die with the parent."""
    _ignore_sigint()
    watch_parent(parent)


class LocalProcesses(Backend):
    """A pool of local worker processes, started on first use and kept until ``close()``.

    Reuse one instance across sweeps (``with LocalProcesses(4) as b: sim.sweep(..., backend=b)``)
    to pay the worker start-up once.
    """

    name = "processes"

    def __init__(self, workers: int | None = None, start_method: str | None = None) -> None:
        import multiprocessing

        self._workers = workers or default_workers()
        if start_method is None:
            methods = multiprocessing.get_all_start_methods()
            start_method = "forkserver" if "forkserver" in methods else "spawn"
        self.start_method = start_method
        self._pool: ProcessPoolExecutor | None = None

    @property
    def workers(self) -> int:
        return self._workers

    def _ensure(self) -> ProcessPoolExecutor:
        if self._pool is None:
            import multiprocessing

            ctx = multiprocessing.get_context(self.start_method)
            self._pool = ProcessPoolExecutor(
                self._workers, mp_context=ctx, initializer=_worker_init, initargs=(os.getpid(),)
            )
        return self._pool

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> Future:
        return self._ensure().submit(fn, arg)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class Dask(Backend):
    """Dask distributed: a scheduler at ``address``, or a ``LocalCluster`` of process workers.

    Workers write part files themselves, so with a remote scheduler the output folder must be on
    a file system every worker can reach under the same path.
    """

    name = "dask"

    def __init__(self, address: str | None = None, workers: int | None = None, client: Any = None) -> None:
        self.address = None if address in (None, "local") else address
        self._requested = workers
        self._client = client
        self._cluster: Any = None
        self._own = client is None

    @property
    def client(self) -> Any:
        """The ``distributed.Client``, connecting or starting the cluster on first use."""
        if self._client is None:
            import logging

            from dask.distributed import Client, LocalCluster

            if self.address is None:
                self._cluster = LocalCluster(
                    n_workers=self._requested or default_workers(),
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                )
                self._client = Client(self._cluster)
            else:
                self._client = Client(self.address, timeout="10s")
        return self._client

    @property
    def workers(self) -> int:
        return max(1, sum(self.client.nthreads().values()))

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> Any:
        return self.client.submit(fn, arg, pure=False)

    def wait_any(self, pending: set[Any]) -> tuple[set[Any], set[Any]]:
        from dask.distributed import wait as dask_wait

        done, not_done = dask_wait(list(pending), return_when="FIRST_COMPLETED")
        return set(done), set(not_done)

    def close(self) -> None:
        if self._own and self._client is not None:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None


def make_backend(name: str, workers: int | None = None, scheduler: str | None = None) -> Backend:
    """A backend by name: ``inprocess``, ``processes`` (default) or ``dask``."""
    if name == "inprocess":
        return InProcess()
    if name == "processes":
        return LocalProcesses(workers)
    if name == "dask":
        return Dask(scheduler, workers)
    raise ValueError(f"unknown backend {name!r}; backends: {', '.join(BACKENDS)}")


# ------------------------------------------------------------------------------ the map


def chunk_size(n_tasks: int, workers: int) -> int:
    """Tasks per worker call: about four chunks per worker for balance, at most 16 runs."""
    return max(1, min(16, math.ceil(n_tasks / (4 * max(workers, 1)))))


def map_runs(
    tasks: Sequence[RunTask],
    backend: str | Backend = "processes",
    workers: int | None = None,
    *,
    scheduler: str | None = None,
    chunksize: int | None = None,
    progress: bool | None = None,
) -> Iterator[RunOutcome]:
    """Play every task on the backend and yield their outcomes in task order.

    ``backend`` is a name (``inprocess``, ``processes``, ``dask``) or a ``Backend`` you keep open
    across calls. A backend made here is closed when the iteration ends. ``progress``: a tqdm bar
    on stderr (default: only when stderr is a terminal).
    """
    own = not isinstance(backend, Backend)
    be = make_backend(backend, workers, scheduler) if own else backend
    bar = _bar(len(tasks), progress)
    pending: dict[Any, int] = {}
    try:
        if not tasks:
            return
        size = chunksize or (1 if isinstance(be, InProcess) else chunk_size(len(tasks), be.workers))
        chunks = [list(tasks[i : i + size]) for i in range(0, len(tasks), size)]
        window = 1 if isinstance(be, InProcess) else 2 * be.workers  # chunks in flight
        finished: dict[int, list[RunOutcome]] = {}
        next_submit = next_yield = 0
        while next_yield < len(chunks):
            while next_submit < len(chunks) and len(pending) < window:
                pending[be.submit(run_chunk, chunks[next_submit])] = next_submit
                next_submit += 1
            done, _ = be.wait_any(set(pending))
            for fut in done:
                index = pending.pop(fut)
                try:
                    finished[index] = fut.result()
                except BrokenProcessPool as exc:
                    raise BrokenProcessPool(f"{exc}\n{BROKEN_HINT}") from None
                if bar is not None:
                    bar.update(len(finished[index]))
            while next_yield in finished:
                yield from finished.pop(next_yield)
                next_yield += 1
    finally:
        if pending:
            be.cancel(set(pending))
        if bar is not None:
            bar.close()
        if own:
            be.close()


def _bar(total: int, enabled: bool | None) -> Any:
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled or total < 1:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="runs", unit="run", file=sys.stderr, smoothing=0.1)
