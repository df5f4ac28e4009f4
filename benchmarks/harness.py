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
import threading
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
    pin: bool = True
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672//"
    nats_url: str = "nats://127.0.0.1:4222"
    nameko_max_workers: int = 64
    repeat: int = 1
    quiet_wait: float = 0.0
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
    """When pinning, servers run on CPU 1 (the client pins itself to CPU 0)."""
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
        self._drain: threading.Thread | None = None

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
                        self._drain_stdout()
                        return line[len(READY_PREFIX) :].strip()
            elif self.proc.poll() is not None:
                break
        code = self.proc.poll()
        why = f"exited with code {code}" if code is not None else f"not ready in {timeout:.0f} s"
        raise RuntimeError(f"{self.name} server {why}; log tail:\n{self.log_tail()}")

    def _drain_stdout(self) -> None:
        """Copy whatever the server prints later into its log, so a full pipe never blocks it."""
        assert self.proc is not None
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()

        def copy() -> None:
            with open(self.log_path, "ab") as log_file:
                while chunk := os.read(fd, 65536):
                    log_file.write(chunk)

        self._drain = threading.Thread(target=copy, name=f"{self.name}-stdout", daemon=True)
        self._drain.start()

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
        untrack(self.proc.pid)
        if self._drain is not None:
            self._drain.join(timeout=1.0)  # EOF once the process group is gone
        if self.proc.stdout is not None and (self._drain is None or not self._drain.is_alive()):
            self.proc.stdout.close()


def read_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of ``pid`` so far, from ``/proc/<pid>/stat``."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def read_busy_seconds() -> float | None:
    """CPU time all processes spent in user and system mode (first line of ``/proc/stat``).

    irq/softirq are left out on purpose: loopback traffic is processed in softirq and is
    charged there rather than to the processes that cause it.
    """
    try:
        with open("/proc/stat") as stat:
            user, nice, system = (int(v) for v in stat.readline().split()[1:4])
    except (OSError, ValueError):
        return None
    return (user + nice + system) / os.sysconf("SC_CLK_TCK")


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
class CpuUse:
    """CPU seconds the client and the server spent during one measured run."""

    client_s: float | None
    server_s: float | None
    #: Busy CPU of the whole machine minus client and server: brokers, and anything else.
    other_s: float | None = None

    @staticmethod
    def per_call_us(seconds: float | None, calls: int) -> float | None:
        return None if seconds is None or not calls else seconds / calls * 1e6


class CpuMeter:
    """Measures this process's CPU (all threads) and a server's, between start and stop."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.busy0 = read_busy_seconds()
        self.client0 = time.process_time()
        self.server0 = read_cpu_seconds(server_pid)

    def stop(self) -> CpuUse:
        client = time.process_time() - self.client0
        server = _delta(self.server0, read_cpu_seconds(self.server_pid))
        busy = _delta(self.busy0, read_busy_seconds())
        other = None if busy is None or server is None else max(0.0, busy - client - server)
        return CpuUse(client_s=client, server_s=server, other_s=other)


def _delta(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else after - before


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
    #: CPU time per call of the measuring process and of the server process, if known.
    client_cpu_us: float | None = None
    server_cpu_us: float | None = None
    #: Other busy CPU on the machine during the run, in % of one CPU (brokers, or noise).
    other_cpu_pct: float | None = None
    #: req/s of every repetition when the run was repeated (this one is the median).
    rps_runs: list[float] = field(default_factory=list)

    @classmethod
    def from_latencies(
        cls,
        target: str,
        mode: str,
        concurrency: int,
        latencies: list[float],
        elapsed: float,
        cpu: CpuUse | None = None,
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
            client_cpu_us=cpu.per_call_us(cpu.client_s, len(ordered)) if cpu else None,
            server_cpu_us=cpu.per_call_us(cpu.server_s, len(ordered)) if cpu else None,
            other_cpu_pct=cpu.other_s / elapsed * 100 if cpu and cpu.other_s is not None else None,
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def median_runs(runs: list[list[Measurement]]) -> list[Measurement]:
    """Per mode, the repetition with the median req/s, remembering every repetition's req/s."""
    chosen = []
    for repeats in zip(*runs, strict=True):
        ranked = sorted(repeats, key=lambda m: m.rps)
        median = ranked[(len(ranked) - 1) // 2]
        median.rps_runs = [m.rps for m in repeats]
        chosen.append(median)
    return chosen


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

    def broker_info(self, options: Options) -> str | None:
        """The broker in the path, with its version (for the report), if any."""
        return None

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
        self, server: ServerProcess, options: Options, modes: Iterable[str]
    ) -> list[Measurement]:
        """Check the answer once, then warm up and measure each mode with one client."""
        client = await self.make_client(server.address)
        try:
            await check_answer(self.name, client)
            results = []
            for mode in modes:
                concurrency = options.concurrency_for(mode)
                log(f"{self.name}: warm-up {options.warmup:g} s, {mode} (x{concurrency})")
                await run_load(client.call, concurrency, options.warmup)
                log(f"{self.name}: {mode} for {options.seconds:g} s with {concurrency} in flight")
                meter = CpuMeter(server.pid)
                latencies, elapsed = await run_load(client.call, concurrency, options.seconds)
                cpu = meter.stop()
                results.append(
                    Measurement.from_latencies(
                        self.name, mode, concurrency, latencies, elapsed, cpu
                    )
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
