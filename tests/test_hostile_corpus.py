"""The hostile-input corpus of issue 8: every file under tests/hostile/ through `run`, `validate` and `test`.

Each corpus file is one case, named for it, with a comment on its first line saying what it tests.
A line ending in `# HOSTILE` is the line an error must point at (`file:line:column`). Packs that a
case references live in tests/hostile/packs/, CSV files in tests/hostile/data/. Symlinks, FIFOs and
files "outside" the scenario's folder are made by the tests in a temporary folder, never in git.

Every case asserts what the issue demands, not what the tool does today:

- bad input: exit 2, `error:` lines naming the file (and the line:column of the `# HOSTILE` line),
  a message that names what a user needs (the key, the distribution, "outside", ...), no traceback,
  nothing written (not into --out, not anywhere in the case's folder);
- inputs the issue says must work (`$5^^2$` in a title, free text, controls): exit 0 and outputs;
- never: a traceback, an exit other than 0/1/2, a hang, the contents of /etc/passwd or of the
  environment (/proc/self/environ) in a message.

How cases run: scripted regular-file cases run in-process through `sim.app.cli.main` with capsys (a
SIGALRM guard turns a hang into a failure). Devices, FIFOs, /proc and population runs go through a
`CliWorker`: one long-lived child process that imports the CLI once and calls `sim.app.cli.main` per
request, under an address-space limit (a run that tries to allocate gigabytes fails there, not on
the machine) and a per-request timeout (a hang kills and restarts the child). Its stdin is a pipe
that never delivers data, so reading `/dev/stdin` blocks as it would on a terminal, and its
environment holds a secret that must never appear in a message.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sim.app.cli import main

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = ROOT / "tests" / "hostile"
MARKER = "# HOSTILE"

#: a value only the worker's environment holds: /proc/self/environ must never leak it
SECRET_VAR = "MILESTONE_SIM_HOSTILE_SECRET"
SECRET = "s3cret-" + os.urandom(6).hex()

#: address-space limit of the worker (importing the CLI takes about 1.6 GiB of address space)
WORKER_MEMORY = 4 * 1024**3

# --------------------------------------------------------------------------------------------------
# running the CLI


@dataclass
class Outcome:
    """What one CLI call did."""

    argv: list[str]
    code: int | None = None
    out: str = ""
    err: str = ""
    crash: str | None = None  # an exception that escaped main(), with its traceback
    timed_out: bool = False
    died: str | None = None  # the worker process died (signal, memory limit)
    seconds: float = 0.0

    def describe(self) -> str:
        tail = (self.err[-1500:] or "(empty)").rstrip()
        what = (
            f"timed out after {self.seconds:.1f}s"
            if self.timed_out
            else self.died or (f"crashed:\n{self.crash}" if self.crash else f"exit {self.code}")
        )
        return f"milestone-sim {' '.join(self.argv)}: {what}\n--- stderr (tail) ---\n{tail}"

    @property
    def text(self) -> str:
        return self.out + self.err + (self.crash or "")


_CHILD = r"""
import contextlib, io, json, os, resource, sys, traceback
req_fd, resp_fd, limit = (int(a) for a in sys.argv[1:4])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from sim.app.cli import main
requests = os.fdopen(req_fd, "r", encoding="utf-8")
responses = os.fdopen(resp_fd, "w", encoding="utf-8")
responses.write("ready\n")
responses.flush()

def stream():
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="backslashreplace", write_through=True)

for line in requests:
    req = json.loads(line)
    saved = {k: os.environ.get(k) for k in req["env"]}
    os.environ.update(req["env"])
    os.chdir(req["cwd"])
    out, err = stream(), stream()
    code, crash = None, None
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(req["argv"])
            except SystemExit as exc:
                if isinstance(exc.code, str):
                    print(exc.code, file=sys.stderr)
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        crash = traceback.format_exc()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    texts = [s.buffer.getvalue().decode("utf-8", "backslashreplace") for s in (out, err)]
    responses.write(json.dumps({"code": code, "out": texts[0], "err": texts[1], "crash": crash}) + "\n")
    responses.flush()
"""


class CliWorker:
    """A child process that calls `sim.app.cli.main(argv)` per request, bounded in memory and time."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._fds: list[int] = []
        self._buffer = b""
        self._log = None

    def _start(self) -> None:
        req_r, req_w = os.pipe()
        resp_r, resp_w = os.pipe()
        stdin_r, stdin_w = os.pipe()  # stdin_w stays open and silent: /dev/stdin blocks
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
        env[SECRET_VAR] = SECRET
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - the child's stderr, closed in close()
        cmd = [sys.executable, "-c", _CHILD, str(req_r), str(resp_w), str(WORKER_MEMORY)]
        self._proc = subprocess.Popen(
            cmd,
            stdin=stdin_r,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            pass_fds=(req_r, resp_w),
            cwd=ROOT,
            env=env,
        )
        for fd in (req_r, resp_w, stdin_r):
            os.close(fd)
        self._fds = [req_w, resp_r, stdin_w]
        self._buffer = b""
        if self._read_line(120.0) != b"ready":
            self.close()
            raise RuntimeError("the CLI worker did not start")

    def _read_line(self, timeout: float) -> bytes | None:
        """One line from the worker, or None on timeout or end of file."""
        resp_r = self._fds[1]
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([resp_r], [], [], left)[0]:
                return None
            chunk = os.read(resp_r, 1 << 20)
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line

    def run(self, argv: list[str], cwd: Path, timeout: float = 20.0, env: dict | None = None) -> Outcome:
        if self._proc is None:
            self._start()
        assert self._proc is not None
        outcome = Outcome(list(argv))
        request = json.dumps({"argv": list(argv), "cwd": str(cwd), "env": env or {}}) + "\n"
        start = time.monotonic()
        os.write(self._fds[0], request.encode())
        line = self._read_line(timeout)
        outcome.seconds = time.monotonic() - start
        if line is None:
            status = self._proc.poll()
            if status is None:
                outcome.timed_out = True
            else:
                self._log.seek(0)
                log = self._log.read()[-2000:].decode("utf-8", "replace")
                outcome.died = f"the CLI process died (status {status}); its stderr:\n{log}"
            self.close()
            return outcome
        reply = json.loads(line)
        outcome.code, outcome.out, outcome.err, outcome.crash = (
            reply["code"],
            reply["out"],
            reply["err"],
            reply["crash"],
        )
        return outcome

    def close(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            self._proc = None
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds = []
        if self._log is not None:
            self._log.close()
            self._log = None


class _Hang(BaseException):
    """Raised by SIGALRM in an in-process call (a BaseException, so `except Exception` lets it pass)."""


def run_in_process(
    argv: list[str], cwd: Path, capsys: pytest.CaptureFixture, timeout: float = 20.0
) -> Outcome:
    """`sim.app.cli.main(argv)` in this process, with cwd set, output captured and a hang bounded."""
    outcome = Outcome(list(argv))

    def _alarm(signum: int, frame: object) -> None:
        raise _Hang

    old_handler = signal.signal(signal.SIGALRM, _alarm)
    old_cwd = os.getcwd()
    start = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        os.chdir(cwd)
        try:
            outcome.code = main(argv)
        except SystemExit as exc:
            outcome.code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except _Hang:
            outcome.timed_out = True
        except Exception:
            outcome.crash = traceback.format_exc()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        os.chdir(old_cwd)
    outcome.seconds = time.monotonic() - start
    outcome.out, outcome.err = capsys.readouterr()
    return outcome


@pytest.fixture(scope="module")
def worker() -> Iterator[CliWorker]:
    w = CliWorker()
    yield w
    w.close()


# --------------------------------------------------------------------------------------------------
# what every call must satisfy


def _passwd_lines() -> list[str]:
    try:
        lines = Path("/etc/passwd").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    return [line[:12] for line in lines[:5] if len(line) > 12]  # "root:x:0:0:r": a leak, even cut short


PASSWD_LINES = _passwd_lines()


def tree(folder: Path) -> set[str]:
    """Every path under folder (symlinks and FIFOs listed, never followed or opened)."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def assert_sane(o: Outcome) -> None:
    """No hang, no crash, no traceback, exit 0/1/2, nothing leaked."""
    assert not o.timed_out, f"hang: {o.describe()}"
    assert o.died is None, o.describe()
    assert o.crash is None, f"an exception escaped main(): {o.describe()}"
    assert "Traceback" not in o.out + o.err, f"a traceback was printed: {o.describe()}"
    assert o.code in (0, 1, 2), f"exit code must be 0, 1 or 2: {o.describe()}"
    for line in PASSWD_LINES:
        assert line not in o.text, f"the contents of /etc/passwd were echoed: {o.describe()}"
    assert SECRET not in o.text, f"the environment (/proc/self/environ) was echoed: {o.describe()}"


def error_lines(o: Outcome) -> list[str]:
    return [line for line in o.err.splitlines() if line.startswith("error:")]


def assert_bad(
    o: Outcome,
    *,
    files: tuple[str, ...] = (),
    line: int | None = None,
    also: tuple[str, ...] = (),
    says: tuple[str, ...] = (),
    where: Path | None = None,
) -> None:
    """Exit 2 with `error:` lines naming one of `files` (at `line` when given, or a path in `also`)
    and saying at least one of `says` (case-insensitive), outside the folder `where` of the test
    (its name is the test's name, which would match anything)."""
    assert_sane(o)
    assert o.code == 2, f"bad input must exit 2: {o.describe()}"
    errors = error_lines(o)
    assert errors, f"no 'error:' line on stderr: {o.describe()}"
    joined = "\n".join(errors)
    if files:
        if line is not None:
            at_line = [rf"{re.escape(f)}:{line}:\d+" for f in files]
            named = any(re.search(p, joined) for p in at_line) or any(a in joined for a in also)
            want = f"{' or '.join(f'{f}:{line}:<col>' for f in files)}" + (f" or {also}" if also else "")
        else:
            named = any(f in joined for f in files + also)
            want = f"one of {files + also}"
        assert named, f"the error must name {want}: {o.describe()}"
    if says:
        words = joined
        for folder in {str(where), os.path.realpath(where)} if where is not None else ():
            words = words.replace(folder, "<tmp>")
        assert any(s.lower() in words.lower() for s in says), (
            f"the error must say one of {says}: {o.describe()}"
        )


def assert_nothing_written(o: Outcome, folder: Path, before: set[str], out: Path | None) -> None:
    """After an exit 2: --out does not exist or is empty, and nothing else appeared in folder."""
    if out is not None and out.exists():
        assert out.is_dir() and not any(out.iterdir()), (
            f"outputs written after exit 2: {sorted(tree(out))}; {o.describe()}"
        )
    after = tree(folder) - ({str(out.relative_to(folder))} if out is not None and out.exists() else set())
    assert after == before, f"files written after exit 2: {sorted(after - before)}; {o.describe()}"


# --------------------------------------------------------------------------------------------------
# the cases


def _outside_csv(tmp: Path, case_dir: Path) -> None:
    (tmp / "outside.csv").write_text("amount,x\n100.00,1\n200.00,2\n", encoding="utf-8")


def _symlink_csv(tmp: Path, case_dir: Path) -> None:
    _outside_csv(tmp, case_dir)
    (case_dir / "linked.csv").symlink_to(tmp / "outside.csv")


def _outside_pack(tmp: Path, case_dir: Path) -> None:
    shutil.copy(ROOT / "rules" / "upwork.yaml", tmp / "outside_pack.yaml")


def _symlink_pack(tmp: Path, case_dir: Path) -> None:
    _outside_pack(tmp, case_dir)
    (case_dir / "linked_pack.yaml").symlink_to(tmp / "outside_pack.yaml")


def _fifo(name: str) -> Callable[[Path, Path], None]:
    def make(tmp: Path, case_dir: Path) -> None:
        os.mkfifo(case_dir / name)

    return make


BAD = {"run": "bad", "validate": "bad", "test": "bad"}
GOOD = {"run": "ok", "validate": "ok", "test": "nothing_checked"}
#: found only by simulating: `run` must exit 2; validate may pass it (or refuse it early)
RUN_TIME = {"run": "bad", "validate": "no_crash", "test": "no_crash"}

BOUND = (
    "1000 years",
    "1,000 years",
    "year",
    "too large",
    "too long",
    "at most",
    "maximum",
    "limit",
    "exceed",
)
OUTSIDE = ("outside", "confine", "allowed folder", "below only", "--allow")
NOT_REGULAR = ("regular", "not a file", "device", "fifo", "pipe", "outside")


@dataclass(frozen=True)
class Case:
    name: str
    says: tuple[str, ...] = ()  # for exit 2: the message says at least one of these (case-insensitive)
    expect: dict[str, str] = field(default_factory=lambda: dict(BAD))
    worker: bool = False  # a device, FIFO or /proc: never in this process
    setup: Callable[[Path, Path], None] | None = None  # (tmp folder, case folder)
    error_file: str | None = None  # the file holding the `# HOSTILE` line, relative to tests/hostile
    also: tuple[str, ...] = ()  # other names an error may give instead of file:line (a device path)
    timeout: float = 20.0
    run_args: tuple[str, ...] = ()
    charts: bool = False

    @property
    def path(self) -> Path:
        return HOSTILE / f"{self.name}.yaml"

    @property
    def population(self) -> bool:
        return "\npopulation:" in self.path.read_text(encoding="utf-8")


#: the reason, not the path (every message names the path)
PASSWD = OUTSIDE
ENVIRON = OUTSIDE
NO_BLOCK = 5.0  # a refusal takes milliseconds; five seconds is a hang

CASES = [
    # huge durations and horizons
    Case("at_1e308", says=BOUND),
    Case("review_window_1e308", says=("review.window",)),
    Case("until_1e308", says=("until",)),
    Case("until_1e308_population", says=("until",)),
    Case("arrivals_over_1e308", says=("over",)),
    Case(
        "until_long_events_none",
        says=("until",),
        expect={"run": "ok_or_bad", "validate": "no_crash", "test": "no_crash"},
        run_args=("--events", "none"),
        timeout=30.0,
    ),
    # distribution parameters, counts and rates
    Case("lognormal_sigma_1e300", says=("sigma",)),
    Case("poisson_mean_1e300", says=("mean",)),
    Case("arrivals_count_1e20", says=("count",)),
    Case("arrivals_count_2e9", says=("count",)),
    Case("arrivals_rate_1e10_per_day", says=("rate",)),
    Case("replications_1e30", says=("replications",), timeout=10.0),
    # money
    Case("amount_1e999999", says=("amount",)),
    Case("subcent_amount", says=("amount", "decimal", "5.005")),
    Case("sampled_amount_overflow", says=("lognormal", "amount"), expect=dict(RUN_TIME)),
    # free text and titles: must work
    Case("description_1e999", expect=dict(GOOD)),
    Case("title_tex", expect=dict(GOOD), charts=True, worker=True),  # the worker has matplotlib warm
    Case("no_expect", expect=dict(GOOD)),
    # behaviour that never lets time pass
    Case("population_loop", says=("loop", "time", "instant", "events"), expect=dict(RUN_TIME), timeout=10.0),
    # ids and vocabulary
    Case("party_id_colon_freelancer", says=("freelancer", "ana:x")),
    Case("party_id_colon_client", says=("client", "acme:y")),
    Case("unknown_action", says=("acept_offer",)),
    Case("unknown_override_key", says=("review.windw",)),
    # procedures (issue 9): loops without time, unknown stages, impossible fees
    Case("procedure_instant_loop", says=("no time passing",)),
    Case("procedure_unknown_stage", says=("mediaton",)),
    Case("procedure_fee_1e999999", says=("amount",)),
    # issue 10: a stage no timeout closes and the population may leave unanswered
    Case("population_never_answers", says=("no on_timeout", "refund_request.respond", "silent")),
    # policy packs from where they must not come
    Case("policy_etc_passwd", says=PASSWD, also=("/etc/passwd",)),
    Case("policy_proc_environ", says=ENVIRON, also=("/proc/self/environ",), worker=True),
    Case("policy_dev_zero", says=NOT_REGULAR, also=("/dev/zero",), worker=True, timeout=NO_BLOCK),
    Case("policy_dev_urandom", says=NOT_REGULAR, also=("/dev/urandom",), worker=True, timeout=NO_BLOCK),
    Case("policy_dev_stdin", says=NOT_REGULAR, also=("/dev/stdin",), worker=True, timeout=NO_BLOCK),
    Case(
        "policy_fifo",
        says=NOT_REGULAR,
        also=("fifo_pack.yaml",),
        worker=True,
        timeout=NO_BLOCK,
        setup=_fifo("fifo_pack.yaml"),
    ),
    Case("policy_outside", says=OUTSIDE, setup=_outside_pack),
    Case("policy_symlink", says=(*OUTSIDE, "symlink", "symbolic link"), setup=_symlink_pack),
    Case(
        "extends_etc_passwd",
        says=PASSWD,
        error_file="packs/extends_etc_passwd.yaml",
        also=("/etc/passwd",),
    ),
    Case(
        "extends_proc_environ",
        says=ENVIRON,
        error_file="packs/extends_proc_environ.yaml",
        also=("/proc/self/environ",),
        worker=True,
    ),
    Case(
        "extends_dev_zero",
        says=NOT_REGULAR,
        error_file="packs/extends_dev_zero.yaml",
        also=("/dev/zero",),
        worker=True,
        timeout=NO_BLOCK,
    ),
    # empirical CSV files
    Case("empirical_ok", expect=dict(GOOD)),
    Case("population_ok", expect=dict(GOOD)),
    Case("empirical_etc_passwd", says=PASSWD, also=("/etc/passwd",)),
    Case("empirical_proc_environ", says=ENVIRON, also=("/proc/self/environ",), worker=True),
    Case("empirical_outside_dotdot", says=OUTSIDE, setup=_outside_csv),
    Case("empirical_symlink", says=(*OUTSIDE, "symlink", "symbolic link"), setup=_symlink_csv),
    Case("empirical_dev_zero", says=NOT_REGULAR, also=("/dev/zero",), worker=True, timeout=NO_BLOCK),
    Case("empirical_dev_urandom", says=NOT_REGULAR, also=("/dev/urandom",), worker=True, timeout=NO_BLOCK),
    Case("empirical_dev_stdin", says=NOT_REGULAR, also=("/dev/stdin",), worker=True, timeout=NO_BLOCK),
    Case(
        "empirical_fifo",
        says=NOT_REGULAR,
        also=("fifo.csv",),
        worker=True,
        timeout=NO_BLOCK,
        setup=_fifo("fifo.csv"),
    ),
    Case("empirical_non_utf8", says=("utf-8", "utf8", "encoding", "decode"), also=("non_utf8.csv",)),
    # audit files (FORMAT section 10): their files are confined like a scenario's; `run` is not for them
    Case(
        "audit_log_etc_passwd", says=PASSWD, also=("/etc/passwd",), expect={"validate": "bad", "test": "bad"}
    ),
    Case(
        "audit_log_dev_zero",
        says=OUTSIDE,
        also=("/dev/zero",),
        worker=True,
        timeout=NO_BLOCK,
        expect={"validate": "bad", "test": "bad"},
    ),
    Case(
        "audit_mapping_python_tag",
        says=("tag",),
        error_file="data/audit_mapping_python_tag.yaml",
        expect={"validate": "bad", "test": "bad"},
    ),
    # a fixture of the option tests below (too slow to run here: options must be checked before it runs)
    Case("options_slow_population", expect={"validate": "ok", "test": "nothing_checked"}),
]
CASE_BY_NAME = {c.name: c for c in CASES}


def test_every_corpus_file_is_a_case_with_a_comment() -> None:
    files = {p.stem for p in HOSTILE.glob("*.yaml")}
    assert files == set(CASE_BY_NAME), (
        f"corpus files without a case: {sorted(files - set(CASE_BY_NAME))}; "
        f"cases without a file: {sorted(set(CASE_BY_NAME) - files)}"
    )
    for path in HOSTILE.rglob("*.yaml"):  # cases and the packs they name (CSV files have no comments)
        text = path.read_bytes()
        assert text.startswith(b"# "), f"{path.name}: the first line must say what the case tests"
        assert b"\nexpect:" not in text, f"{path.name}: pytest would collect it as a scenario test"


def _marker_line(path: Path) -> int | None:
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if text.rstrip().endswith(MARKER):
            return number
    return None


def _prepare(tmp_path: Path, case: Case) -> tuple[Path, Path]:
    """Copy the corpus to tmp/hostile (a fresh folder per case) and run the case's setup."""
    case_dir = tmp_path / "hostile"
    shutil.copytree(HOSTILE, case_dir)
    if case.setup is not None:
        case.setup(tmp_path, case_dir)
    return case_dir, case_dir / case.path.name


def _call(
    case: Case,
    command: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    worker: CliWorker,
) -> tuple[Outcome, Path, set[str]]:
    _, scenario = _prepare(tmp_path, case)
    out = tmp_path / "out"
    if command == "run":
        argv = ["run", str(scenario), "--out", str(out), "--workers", "1", *case.run_args]
        if not case.charts:
            argv.append("--no-charts")
    else:
        argv = [command, str(scenario)]
    before = tree(tmp_path)
    in_worker = case.worker or (command == "run" and case.population)
    if in_worker:
        o = worker.run(argv, cwd=tmp_path, timeout=case.timeout)
    else:
        o = run_in_process(argv, tmp_path, capsys, timeout=case.timeout)
    return o, out, before


def _strict_json(text: str) -> object:
    def refuse(name: str) -> object:
        raise AssertionError(f"summary.json holds {name}: not valid JSON")

    return json.loads(text, parse_constant=refuse)


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _check_ok(case: Case, command: str, o: Outcome, out: Path) -> None:
    assert_sane(o)
    assert o.code == 0, f"{case.name} must succeed: {o.describe()}"
    if command != "run":
        return
    summary = out / "summary.json"
    assert summary.is_file(), f"no summary.json in {out}: {o.describe()}"
    data = _strict_json(summary.read_text(encoding="utf-8"))
    if case.name == "description_1e999":
        assert "1e999" in set(_strings(data)), "description: 1e999 must be kept as the text '1e999'"
    if case.charts:
        assert list(out.glob("*.png")), f"no chart written: {sorted(tree(out))}"
        report = (out / "report.html").read_text(encoding="utf-8")
        assert "$5^^2$" in report, "the title must be shown literally in the report"


def _check_nothing_checked(case: Case, o: Outcome) -> None:
    """`test` on a named file with nothing to check: reported as such, never a silent pass."""
    assert_sane(o)
    assert not (o.code == 0 and "0 passed, 0 failed" in o.out), (
        f"`test` passed silently with nothing checked: {o.describe()}\n--- stdout ---\n{o.out}"
    )
    assert case.path.name in o.text or case.name in o.text, f"the file must be named: {o.out}{o.err}"
    assert any(s in o.text.lower() for s in ("expect", "nothing to check", "nothing checked")), (
        f"the report must say there is nothing to check: {o.out}{o.err}"
    )


#: every case with every command it has an expectation for (options_slow_population is not run)
CASE_COMMANDS = [(c, cmd) for c in CASES for cmd in ("run", "validate", "test") if cmd in c.expect]


@pytest.mark.parametrize(("case", "command"), CASE_COMMANDS, ids=[f"{c.name}-{m}" for c, m in CASE_COMMANDS])
def test_corpus(case: Case, command: str, tmp_path: Path, capsys: pytest.CaptureFixture, worker: CliWorker):
    kind = case.expect[command]
    o, out, before = _call(case, command, tmp_path, capsys, worker)
    error_path = HOSTILE / (case.error_file or case.path.name)
    files = (error_path.name,)
    if kind == "ok_or_bad" and o.code == 0:
        kind = "ok"
    if kind == "no_crash":
        assert_sane(o)
        if o.code == 2:
            assert error_lines(o), f"exit 2 without an 'error:' line: {o.describe()}"
            assert_nothing_written(o, tmp_path, before, out)
        return
    if kind == "ok":
        _check_ok(case, command, o, out)
        return
    if kind == "nothing_checked":
        _check_nothing_checked(case, o)
        return
    assert_bad(o, where=tmp_path, files=files, line=_marker_line(error_path), also=case.also, says=case.says)
    assert_nothing_written(o, tmp_path, before, out)


@pytest.mark.parametrize("pack", sorted(p.name for p in (HOSTILE / "packs").glob("*.yaml")))
def test_hostile_packs_validate_on_their_own(pack: str, tmp_path: Path, worker: CliWorker):
    """`validate` on the pack file itself: the same refusal, naming the pack's `extends:` line."""
    case_dir = tmp_path / "hostile"
    shutil.copytree(HOSTILE, case_dir)
    before = tree(tmp_path)
    o = worker.run(["validate", str(case_dir / "packs" / pack)], cwd=tmp_path, timeout=NO_BLOCK)
    target = re.search(r"^extends: (\S+)", (HOSTILE / "packs" / pack).read_text(), re.M)
    assert target is not None
    assert_bad(
        o,
        where=tmp_path,
        files=(pack,),
        line=_marker_line(HOSTILE / "packs" / pack),
        also=(target.group(1),),
        says=NOT_REGULAR if target.group(1).startswith("/dev/") else OUTSIDE,
    )
    assert_nothing_written(o, tmp_path, before, None)


# --------------------------------------------------------------------------------------------------
# devices, FIFOs and system files given as the scenario itself

ARGUMENTS = ["/dev/zero", "/dev/urandom", "/dev/stdin", "FIFO", "/etc/passwd", "/proc/self/environ"]


@pytest.mark.parametrize("command", ["run", "validate", "test"])
@pytest.mark.parametrize("argument", ARGUMENTS)
def test_device_or_system_file_as_the_scenario(
    argument: str, command: str, tmp_path: Path, worker: CliWorker
):
    if argument == "FIFO":
        path = tmp_path / "scenario_fifo.yaml"
        os.mkfifo(path)
        argument = str(path)
    out = tmp_path / "out"
    argv = [command, argument] + (["--out", str(out), "--no-charts"] if command == "run" else [])
    before = tree(tmp_path)
    o = worker.run(argv, cwd=tmp_path, timeout=NO_BLOCK)
    says = NOT_REGULAR if argument.startswith(("/dev/", str(tmp_path))) else ()
    assert_bad(o, where=tmp_path, files=(Path(argument).name,), says=says)
    assert_nothing_written(o, tmp_path, before, out)


# --------------------------------------------------------------------------------------------------
# command-line options: checked before simulating; --out guarded; --set as --grid

#: `options_slow_population` simulates for minutes: an option found bad only after simulating times out
OPTION_TIMEOUT = 10.0


def _slow(tmp_path: Path) -> Path:
    case_dir = tmp_path / "hostile"
    shutil.copytree(HOSTILE, case_dir)
    return case_dir / "options_slow_population.yaml"


def test_run_seed_minus_one_on_a_population_exits_2_before_simulating(tmp_path: Path, worker: CliWorker):
    scenario = _slow(tmp_path)
    out = tmp_path / "out"
    before = tree(tmp_path)
    o = worker.run(
        ["run", str(scenario), "--seed", "-1", "--out", str(out), "--no-charts", "--workers", "1"],
        cwd=tmp_path,
        timeout=OPTION_TIMEOUT,
    )
    assert_bad(o, where=tmp_path, says=("seed",))
    assert_nothing_written(o, tmp_path, before, out)


def test_out_naming_an_existing_file_exits_2_before_simulating(tmp_path: Path, worker: CliWorker):
    scenario = _slow(tmp_path)
    existing = tmp_path / "notes.txt"
    existing.write_text("keep me\n", encoding="utf-8")
    before = tree(tmp_path)
    o = worker.run(
        ["run", str(scenario), "--out", str(existing), "--no-charts", "--workers", "1"],
        cwd=tmp_path,
        timeout=OPTION_TIMEOUT,
    )
    assert_bad(o, where=tmp_path, says=("--out", "not a folder", "not a directory", "is a file"))
    assert existing.read_text(encoding="utf-8") == "keep me\n"
    assert tree(tmp_path) == before


def test_out_naming_an_existing_file_on_a_scripted_run(tmp_path: Path, capsys: pytest.CaptureFixture):
    scenario = tmp_path / "no_expect.yaml"
    shutil.copy(HOSTILE / "no_expect.yaml", scenario)
    existing = tmp_path / "notes.txt"
    existing.write_text("keep me\n", encoding="utf-8")
    before = tree(tmp_path)
    o = run_in_process(["run", str(scenario), "--out", str(existing), "--no-charts"], tmp_path, capsys)
    assert_bad(o, where=tmp_path, says=("--out", "not a folder", "not a directory", "is a file"))
    assert existing.read_text(encoding="utf-8") == "keep me\n"
    assert tree(tmp_path) == before


_OUTPUT_NAMES = re.compile(
    r"^(events|ledger|milestones|balances)\.csv$|^summary\.json$|^report\.html$|\.png$"
)


def test_out_root_is_refused_before_simulating(tmp_path: Path, worker: CliWorker):
    """`--out /`: exit 2 at once. The scenario simulates for minutes, so a tool that checked --out only
    after simulating is stopped by the timeout before it could write into /."""
    scenario = _slow(tmp_path)
    root_before = set(os.listdir("/"))
    try:
        o = worker.run(
            ["run", str(scenario), "--out", "/", "--no-charts", "--workers", "1"],
            cwd=tmp_path,
            timeout=OPTION_TIMEOUT,
        )
    finally:
        stray = set(os.listdir("/")) - root_before
        for name in stray:  # outputs an unguarded tool wrote into / (only names the tool writes)
            if _OUTPUT_NAMES.search(name) and Path("/", name).is_file():
                Path("/", name).unlink()
    assert not stray, f"files written into /: {sorted(stray)}"
    assert_bad(o, where=tmp_path, says=("--out", "output folder", "refuse"))


def test_out_non_empty_folder_not_made_by_the_tool_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture):
    scenario = tmp_path / "no_expect.yaml"
    shutil.copy(HOSTILE / "no_expect.yaml", scenario)
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "events.csv").write_text("my own events\n", encoding="utf-8")
    (folder / "thesis.txt").write_text("do not touch\n", encoding="utf-8")
    before = tree(tmp_path)
    o = run_in_process(["run", str(scenario), "--out", str(folder), "--no-charts"], tmp_path, capsys)
    assert_bad(o, where=tmp_path, says=("--out", "not empty", "non-empty", "--force"))
    assert (folder / "events.csv").read_text(encoding="utf-8") == "my own events\n"
    assert (folder / "thesis.txt").read_text(encoding="utf-8") == "do not touch\n"
    assert tree(tmp_path) == before


def test_out_home_folder_is_refused(tmp_path: Path, worker: CliWorker):
    scenario = tmp_path / "no_expect.yaml"
    shutil.copy(HOSTILE / "no_expect.yaml", scenario)
    home = tmp_path / "userdir"  # not named "home": the message must say it
    home.mkdir()
    (home / ".bashrc").write_text("# mine\n", encoding="utf-8")
    before = tree(tmp_path)
    o = worker.run(
        ["run", str(scenario), "--out", str(home), "--no-charts"], cwd=tmp_path, env={"HOME": str(home)}
    )
    assert_bad(o, where=tmp_path, says=("--out", "home", "not empty", "non-empty", "--force"))
    assert (home / ".bashrc").read_text(encoding="utf-8") == "# mine\n"
    assert tree(tmp_path) == before


def test_set_until_is_accepted_on_run(tmp_path: Path, capsys: pytest.CaptureFixture):
    scenario = tmp_path / "no_expect.yaml"
    shutil.copy(HOSTILE / "no_expect.yaml", scenario)
    out = tmp_path / "out"
    o = run_in_process(
        ["run", str(scenario), "--set", "until=30d", "--out", str(out), "--no-charts"], tmp_path, capsys
    )
    assert_sane(o)
    assert o.code == 0, f"--set until=30d must be accepted as --grid until= is: {o.describe()}"
    assert "did you mean" not in o.err
    assert (out / "summary.json").is_file()


def test_set_review_window_1e308_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture):
    scenario = tmp_path / "no_expect.yaml"
    shutil.copy(HOSTILE / "no_expect.yaml", scenario)
    out = tmp_path / "out"
    before = tree(tmp_path)
    o = run_in_process(
        ["run", str(scenario), "--set", "review.window=1e308", "--out", str(out), "--no-charts"],
        tmp_path,
        capsys,
    )
    assert_bad(o, where=tmp_path, says=("review.window",))
    assert_nothing_written(o, tmp_path, before, out)


#: with /dev allowed explicitly (MILESTONE_SIM_ALLOW_PATHS, the implementation's "explicit option" of
#: the issue), confinement no longer stops a device: reading it must still be refused, without blocking
DEVICE_CASES = [
    "policy_dev_zero",
    "policy_dev_urandom",
    "policy_dev_stdin",
    "extends_dev_zero",
    "empirical_dev_zero",
    "empirical_dev_urandom",
    "empirical_dev_stdin",
]
DEVICE_SAYS = ("regular", "not a file", "device", "fifo", "pipe", "size", "too large")


@pytest.mark.parametrize("command", ["run", "validate"])
@pytest.mark.parametrize("name", DEVICE_CASES)
def test_devices_are_not_read_even_in_an_allowed_folder(
    name: str, command: str, tmp_path: Path, capsys: pytest.CaptureFixture, worker: CliWorker
):
    case = CASE_BY_NAME[name]
    _, scenario = _prepare(tmp_path, case)
    out = tmp_path / "out"
    argv = [command, str(scenario)] + (
        ["--out", str(out), "--no-charts", "--workers", "1"] if command == "run" else []
    )
    before = tree(tmp_path)
    o = worker.run(argv, cwd=tmp_path, timeout=NO_BLOCK, env={"MILESTONE_SIM_ALLOW_PATHS": "/dev"})
    error_path = HOSTILE / (case.error_file or case.path.name)
    # /dev/stdin resolves to /proc/self/fd/0, outside /dev: refusing it as outside is right too
    says = DEVICE_SAYS + (OUTSIDE if "stdin" in name else ())
    line = _marker_line(error_path)
    assert_bad(o, where=tmp_path, files=(error_path.name,), line=line, also=case.also, says=says)
    assert_nothing_written(o, tmp_path, before, out)
