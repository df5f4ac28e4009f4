"""What every target shares: options, server subprocesses, the load loop and its statistics.

A target is a small class (see :class:`Target`) that can start its server in a subprocess
(:meth:`Target.start_server`) and build an in-process async client (:meth:`Target.make_client`).
The default :meth:`Target.run_modes` checks the answer, warms up and runs each mode with the
load loop below; a target whose client cannot live in the asyncio process (nameko) overrides it.

Every child process is started in its own session, so it is its own process group; its group
id is remembered here until it has been stopped, and :func:`terminate_all` kills what is left.
"""

from __future__ import annotations

import asyncio
import math
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

REPO_ROOT = Path(__file__).resolve().parent.parent
SRC_DIR = REPO_ROOT / "src"
READY_PREFIX = "LISTENING "
EXPECTED_MSG = "Hello John"
REQUEST = {"name": "John"}

SEQUENTIAL = "sequential"
CONCURRENT = "concurrent"

_live_groups: set[int] = set()


def log(message: str) -> None:
    """Progress goes to stderr so that stdout holds only the report."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


@dataclass
class Options:
    """Run-wide settings, built from the command line."""

    seconds: float = 3.0
    warmup: float = 0.5
    concurrency: int = 64
    uvloop: bool = True
    pin: bool = False
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672//"
    nats_url: str = "nats://127.0.0.1:4222"
    nameko_max_workers: int = 64
    workdir: Path = field(default_factory=lambda: Path("/tmp"))
    python: str = sys.executable

    def concurrency_for(self, mode: str) -> int:
        return 1 if mode == SEQUENTIAL else self.concurrency


# --------------------------------------------------------------------------- processes


def subprocess_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for children: the repo root importable, then ``$PYTHONPATH``, then
    ``src/`` (so micro imports from a fresh clone; an installed or explicit one wins)."""
    env = os.environ.copy()
    paths = [str(REPO_ROOT)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    if SRC_DIR.is_dir():
        paths.append(str(SRC_DIR))
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(extra or {})
    return env


def make_src_importable() -> None:
    """In the runner itself: ``src/`` last on ``sys.path``, as for the children."""
    if SRC_DIR.is_dir() and str(SRC_DIR) not in sys.path:
        sys.path.append(str(SRC_DIR))


def server_preexec(options: Options) -> Callable[[], None] | None:
    """With ``--pin`` servers run on CPU 1 (the client pins itself to CPU 0)."""
    if not options.pin:
        return None
    return lambda: os.sched_setaffinity(0, {1})


def track(pid: int) -> None:
    _live_groups.add(pid)


def kill_group(pid: int, sig: int = signal.SIGKILL) -> None:
    """Signal the process group led by ``pid`` (a child started with a new session)."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def untrack(pid: int) -> None:
    _live_groups.discard(pid)


def terminate_all(grace: float = 2.0) -> None:
    """SIGTERM every process group still tracked, then SIGKILL what survives ``grace``."""
    if not _live_groups:
        return
    groups = sorted(_live_groups)
    for pid in groups:
        kill_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_group_alive(pid) for pid in groups):
        time.sleep(0.05)
    for pid in groups:
        kill_group(pid, signal.SIGKILL)
        untrack(pid)


def _group_alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # reap our own child so that a zombie does not count as alive
        return os.waitpid(pid, os.WNOHANG) == (0, 0)
    except ChildProcessError:
        return True


class ServerProcess:
    """One server subprocess that prints ``LISTENING <address>`` on stdout once it serves."""

    def __init__(
        self, name: str, argv: list[str], options: Options, env: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.argv = argv
        self.options = options
        self.env = subprocess_env(env)
        self.log_path = options.workdir / f"{name}-server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.address = ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> ServerProcess:
        with open(self.log_path, "wb") as log_file:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log_file,
                env=self.env,
                cwd=REPO_ROOT,
                start_new_session=True,
                preexec_fn=server_preexec(self.options),
            )
        track(self.proc.pid)
        self.address = self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> str:
        assert self.proc is not None
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        buffer = b""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([fd], [], [], min(remaining, 0.2))
            if readable:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                buffer += chunk
                for line in buffer.decode(errors="replace").splitlines():
                    if line.startswith(READY_PREFIX):
                        return line[len(READY_PREFIX) :].strip()
            elif self.proc.poll() is not None:
                break
        code = self.proc.poll()
        why = f"exited with code {code}" if code is not None else f"not ready in {timeout:.0f} s"
        raise RuntimeError(f"{self.name} server {why}; log tail:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"

    def rss_mb(self) -> float | None:
        """Resident set size of the server process, from ``/proc/<pid>/status`` (VmRSS)."""
        return read_rss_mb(self.pid)

    def stop(self, grace: float = 3.0) -> None:
        """SIGTERM the server's process group, SIGKILL it after ``grace`` seconds."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            kill_group(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                log(f"{self.name} server ignored SIGTERM for {grace:.0f} s; killing it")
        kill_group(self.proc.pid, signal.SIGKILL)  # stragglers in the group, if any
        self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        untrack(self.proc.pid)


def read_rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


# --------------------------------------------------------------------------- measurement


@dataclass
class Measurement:
    """One time-bounded run of one target in one mode."""

    target: str
    mode: str
    concurrency: int
    calls: int
    elapsed_s: float
    rps: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float

    @classmethod
    def from_latencies(
        cls, target: str, mode: str, concurrency: int, latencies: list[float], elapsed: float
    ) -> Measurement:
        if not latencies:
            raise RuntimeError(f"{target} {mode}: no call completed")
        ordered = sorted(latencies)
        return cls(
            target=target,
            mode=mode,
            concurrency=concurrency,
            calls=len(ordered),
            elapsed_s=elapsed,
            rps=len(ordered) / elapsed,
            p50_ms=percentile(ordered, 0.50) * 1e3,
            p99_ms=percentile(ordered, 0.99) * 1e3,
            mean_ms=sum(ordered) / len(ordered) * 1e3,
            max_ms=ordered[-1] * 1e3,
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


async def _worker(call: Callable[[], Awaitable[Any]], deadline: float, out: list[float]) -> None:
    clock = time.perf_counter
    while (started := clock()) < deadline:
        await call()
        out.append(clock() - started)


async def run_load(
    call: Callable[[], Awaitable[Any]], concurrency: int, seconds: float
) -> tuple[list[float], float]:
    """Keep ``concurrency`` calls in flight for ``seconds``; return latencies and wall time.

    Workers stop starting calls at the deadline; calls already in flight complete and count,
    and the wall time runs until the last of them has returned.
    """
    latencies: list[float] = []
    started = time.perf_counter()
    deadline = started + seconds
    if concurrency == 1:
        await _worker(call, deadline, latencies)
    else:
        async with asyncio.TaskGroup() as group:
            for _ in range(concurrency):
                group.create_task(_worker(call, deadline, latencies))
    return latencies, time.perf_counter() - started


# --------------------------------------------------------------------------- targets


@dataclass
class Client:
    """An in-process client: ``call()`` sends one greeter request and returns the response."""

    call: Callable[[], Awaitable[Any]]
    close: Callable[[], Awaitable[None]]


def response_msg(response: Any) -> str:
    """The ``msg`` field of a dict, a Struct/dataclass, or a protobuf message."""
    if isinstance(response, dict):
        return str(response.get("msg"))
    return str(getattr(response, "msg", response))


class Target:
    """One side of the comparison. Subclasses set the class variables and ``make_client``."""

    name: ClassVar[str]
    title: ClassVar[str]
    #: Module with ``async def open_server() -> (address, async stop)``, run by benchmarks.serve.
    server_module: ClassVar[str | None] = None
    #: label -> Python code whose import time is reported (fresh interpreter each run).
    import_probes: ClassVar[dict[str, str]] = {}
    #: What drives the event loop, if not asyncio (shown in the report).
    loop_note: ClassVar[str | None] = None

    def unavailable(self, options: Options) -> str | None:
        """A reason to skip this target (missing server, ...), or ``None``."""
        return None

    def server_env(self, options: Options) -> dict[str, str]:
        return {}

    def start_server(self, options: Options) -> ServerProcess:
        """Start the server subprocess and wait until it reports its address."""
        if self.server_module is None:
            raise NotImplementedError(f"{self.name}: no server_module")
        argv = [options.python, "-m", "benchmarks.serve", self.server_module]
        if not options.uvloop:
            argv.append("--no-uvloop")
        server = ServerProcess(self.name, argv, options, env=self.server_env(options))
        return server.start()

    async def make_client(self, address: str) -> Client:
        raise NotImplementedError

    async def run_modes(
        self, address: str, options: Options, modes: Iterable[str]
    ) -> list[Measurement]:
        """Check the answer once, then warm up and measure each mode with one client."""
        client = await self.make_client(address)
        try:
            await check_answer(self.name, client)
            results = []
            for mode in modes:
                concurrency = options.concurrency_for(mode)
                log(f"{self.name}: warm-up {options.warmup:g} s, {mode} (x{concurrency})")
                await run_load(client.call, concurrency, options.warmup)
                log(f"{self.name}: {mode} for {options.seconds:g} s with {concurrency} in flight")
                latencies, elapsed = await run_load(client.call, concurrency, options.seconds)
                results.append(
                    Measurement.from_latencies(self.name, mode, concurrency, latencies, elapsed)
                )
            return results
        finally:
            await client.close()

    def cleanup(self, options: Options) -> None:
        """Remove anything the run left outside its processes (broker queues, temp files)."""


async def check_answer(name: str, client: Client) -> None:
    response = await client.call()
    msg = response_msg(response)
    if msg != EXPECTED_MSG:
        raise AssertionError(f"{name}: expected msg {EXPECTED_MSG!r}, got {response!r}")
    log(f"{name}: answer checked ({msg!r})")
