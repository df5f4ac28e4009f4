"""Fault injection against a micro service and ``micro api``: bounded, seeded, usable as a gate.

    .venv/bin/python -m benchmarks.fuzz                  # 200,000 inputs, then slowloris and idle
    .venv/bin/python -m benchmarks.fuzz --quick          # 5,000 inputs, smaller phases: < 1 min
    .venv/bin/python -m benchmarks.fuzz --seed 7 --targets service --json out.json

Targets, each started fresh as subprocesses on 127.0.0.1 (loopback-only settings):

- ``service``: examples/greeter's typed handler in a ``micro.Service`` (memory registry), called
  in mucp over HTTP (``POST /`` with Micro-Service, Micro-Endpoint, Content-Type, Timeout);
- ``gateway``: ``micro api`` (mDNS on loopback, a unique namespace) in front of a fresh
  greeter, called with ``POST /greeter/say-hello``.

Per target: a valid call; its share of ``--requests`` inputs (benchmarks/_fuzz_cases.py) over
raw sockets, ``--concurrency`` at once; RSS after them and after ``--pause``; ``--slowloris``
connections dribbling a header byte every ``--dribble`` seconds, then ``--idle`` connections
sending nothing, each phase bounded; a final valid call. The targets' logs stay in --workdir.

Exit status 1 if a target crashed, logged a traceback, answered 5xx or failed a valid call;
a 504 to a request whose own ``Timeout`` header was fuzzed is excused (its deadline passed).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks._fuzz_cases import Case, Mutations, Request
from benchmarks._fuzz_io import hold, run_case
from benchmarks._fuzz_report import Result, count_tracebacks, table
from benchmarks.gateway import PY, env, free_port
from benchmarks.gateway_junk import start_gateway, stop
from benchmarks.harness import Options, ServerProcess, read_rss_mb, terminate_all
from benchmarks.loops import loop_factory

MAX_BODY = 1024 * 1024  # both targets get this body limit, so over-limit bodies stay cheap
TARGETS = ("service", "gateway")
# The valid calls every input is made from. Fixed bytes (no port, no random name), so that a
# seed gives the same inputs in every run.
HEADERS = ((b"Host", b"127.0.0.1"), (b"Content-Type", b"application/json"),
           (b"Micro-Service", b"greeter"), (b"Micro-Endpoint", b"Greeter.SayHello"))  # fmt: skip
SERVICE_CALL = Request(b"POST", b"/", (*HEADERS, (b"Micro-Id", b"1"), (b"Timeout", b"5000000000")))
GATEWAY_CALL = Request(b"POST", b"/greeter/say-hello", (*HEADERS, (b"Timeout", b"5")))
#: option -> (default, with --quick); --quick stays under a minute on 2 CPUs
SIZES = {"requests": (200_000, 5_000), "slowloris": (500, 50), "idle": (2_000, 200),
         "timeout": (5.0, 2.0), "pause": (5.0, 2.0), "dribble": (2.0, 1.0)}  # fmt: skip


# -- the service target's server: ``python -m benchmarks.serve benchmarks.fuzz`` -------------


async def open_server() -> tuple[str, Callable[[], Awaitable[None]]]:
    """examples/greeter's handler; name, registry and limits come from MICRO_* variables."""
    import micro
    from benchmarks.targets.micro_http import format_address
    from examples.greeter.server import Greeter

    logging.basicConfig(level=logging.WARNING)  # tracebacks reach the captured stderr
    service = micro.Service(address="127.0.0.1:0", handle_signals=False)
    service.handle(Greeter())
    await service.start()
    return format_address(service.server.address), service.stop


def service_env(name: str, registry: str, timeout: float) -> dict[str, str]:
    return {
        **env(),  # loopback only: MICRO_MDNS_INTERFACES, MICRO_SERVER_ADDRESS
        "MICRO_SERVER_NAME": name,
        "MICRO_REGISTRY": registry,
        "MICRO_TRANSPORT_MAX_BODY": str(MAX_BODY),
        "MICRO_TRANSPORT_READ_TIMEOUT": f"{timeout:g}",
        "MICRO_TRANSPORT_IDLE_TIMEOUT": f"{timeout:g}",  # read once that setting exists
    }


def has_setting(name: str) -> bool:
    from micro import settings

    return any(s.name == name for s in settings.SETTINGS)


# -- one running target -------------------------------------------------------------------------


@dataclass
class Proc:
    label: str
    proc: subprocess.Popen[bytes]
    log: Path


@dataclass
class Running:
    """The processes of one target (``procs[0]`` is the one under test) and its valid call."""

    port: int
    base: Request
    mucp: bool  # errors travel in Micro-Error, with HTTP status 200
    procs: list[Proc]
    servers: list[ServerProcess] = field(default_factory=list)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        for p in self.procs:
            if p.proc.poll() is None:
                stop(p.proc)


def start_service(name: str, registry: str, opts: argparse.Namespace) -> ServerProcess:
    argv = [PY, "-m", "benchmarks.serve", "benchmarks.fuzz"]
    options = Options(pin=False, workdir=opts.workdir)
    return ServerProcess(name, argv, options, service_env(name, registry, opts.timeout)).start()


def proc_of(label: str, server: ServerProcess) -> Proc:
    assert server.proc is not None
    return Proc(label, server.proc, server.log_path)


def start(target: str, opts: argparse.Namespace) -> Running:
    """The target's processes, once they accept connections."""
    if target == "service":  # a memory registry: the name need not be unique
        server = start_service("greeter", "memory", opts)
        port = int(server.address.rsplit(":", 1)[1])
        return Running(port, SERVICE_CALL, True, [proc_of("service", server)], [server])
    ns = f"fuzz{uuid.uuid4().hex[:8]}"  # mDNS on loopback is shared: a namespace of our own
    backend = start_service(f"{ns}.greeter", "mdns", opts)
    port, log, t = free_port(), opts.workdir / f"gateway-{ns}.log", f"{opts.timeout:g}"
    flags = ["--namespace", ns, "--log-level", "warning", "--max-body", str(MAX_BODY)]
    flags += ["--idle-timeout", t, "--header-timeout", t, "--read-timeout", t]
    with open(log, "wb") as stderr:
        gateway = start_gateway(port, *flags, extra_env={"MICRO_REGISTRY": "mdns"}, stderr=stderr)
    procs = [Proc("gateway", gateway, log), proc_of("backend service", backend)]
    return Running(port, GATEWAY_CALL, False, procs, [backend])


# -- the phases -----------------------------------------------------------------------------------


async def valid_call(run: Running) -> bool:
    outcome = await run_case(run.port, Case("valid", run.base.encode()), timeout=5, mucp=run.mucp)
    return outcome.codes == [200] and b"Hello John" in outcome.body


async def until_valid(run: Running, seconds: float = 30.0) -> bool:
    """The first valid call, retried while the gateway discovers the service."""
    deadline = time.monotonic() + seconds
    while not await valid_call(run):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.2)
    return True


async def fuzz(
    run: Running, cases: Iterator[Case], result: Result, concurrency: int, answer_timeout: float
) -> None:
    async def worker() -> None:
        for case in cases:  # one generator for every worker: the inputs keep the seeded order
            outcome = await run_case(run.port, case, timeout=answer_timeout, mucp=run.mucp)
            result.record(case, outcome)

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.fuzz_seconds = time.monotonic() - started


def rss(run: Running) -> float | None:
    return read_rss_mb(run.procs[0].proc.pid)


def alive(run: Running) -> bool:
    return all(p.proc.poll() is None for p in run.procs)


async def phases(run: Running, result: Result, opts: argparse.Namespace, seed: int) -> None:
    result.valid_start = await until_valid(run)
    if not result.valid_start:
        return
    result.rss_mb["before"] = rss(run)
    cases = itertools.islice(Mutations(run.base, max_body=MAX_BODY, seed=seed), opts.per_target)
    await fuzz(run, cases, result, opts.concurrency, opts.answer_timeout)
    result.rss_mb["after"] = rss(run)
    await asyncio.sleep(opts.pause)
    result.rss_mb[opts.pause_label] = rss(run)
    bound = 2 * opts.timeout + 5  # past both timeouts and the targets' sweep intervals

    def probe() -> Awaitable[bool]:
        return valid_call(run)

    start_line = run.base.encode().split(b"\r\n")[0]
    slow = start_line + b"\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 4096
    if alive(run):
        result.slowloris = await hold(
            run.port, opts.slowloris, head=slow, interval=opts.dribble, seconds=bound, probe=probe
        )
    if alive(run):
        result.idle = await hold(
            run.port, opts.idle, head=b"", interval=1.0, seconds=bound, probe=probe
        )
    result.valid_end = alive(run) and await valid_call(run)


def measure(target: str, opts: argparse.Namespace, seed: int) -> Result:
    """Start ``target``, run every phase against it, stop it, read its logs."""
    result = Result(target)
    run = start(target, opts)
    try:
        with asyncio.Runner(loop_factory=loop_factory(True)) as runner:
            runner.run(phases(run, result, opts, seed))
        result.crashed = [
            f"{p.label} (exit {p.proc.poll()})" for p in run.procs if p.proc.poll() is not None
        ]
    finally:
        run.stop()
    for p in run.procs:
        result.tracebacks[p.label] = count_tracebacks(p.log, result.exceptions)
    return result


# -- the command ----------------------------------------------------------------------------------


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.fuzz", description=__doc__)
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    add = p.add_argument
    quick = ", ".join(f"--{k} {v[1]:g}" for k, v in SIZES.items())
    add("--quick", action="store_true", help=f"a smoke run: {quick}")
    add("--requests", type=int, help="inputs in all, split between the targets (200000)")
    add("--seed", type=int, default=1, help="seed of the input generator (1)")
    add("--targets", default=",".join(TARGETS), help="comma list of: service, gateway")
    add("--concurrency", type=int, default=64, help="connections at once (64)")
    add("--slowloris", type=int, help="slowloris connections per target (500)")
    add("--idle", type=int, help="idle connections per target (2000)")
    add("--timeout", type=float, help="idle, header and read timeouts of the targets (5 s)")
    add("--dribble", type=float, help="seconds between two slowloris bytes (2)")
    add("--pause", type=float, help="seconds before the last RSS reading (5)")
    add("--answer-timeout", type=float, default=2.0, help="wait for an answer (2 s)")
    add("--workdir", type=Path, help="where the targets' logs go (a new temporary directory)")
    add("--json", type=Path, help="also write the results, with the inputs behind 5xx, here")
    opts = p.parse_args(argv)
    for key, (default, quick_value) in SIZES.items():
        if getattr(opts, key) is None:
            setattr(opts, key, quick_value if opts.quick else default)
    opts.target_list = [t.strip() for t in opts.targets.split(",") if t.strip()]
    if not opts.target_list or set(opts.target_list) - set(TARGETS):
        p.error(f"--targets: choose from {', '.join(TARGETS)}")
    opts.per_target = opts.requests // len(opts.target_list)
    opts.pause_label = f"after + {opts.pause:g} s"
    opts.workdir = opts.workdir or Path(tempfile.mkdtemp(prefix="micro-fuzz-"))
    return opts


def raise_fd_limit(wanted: int) -> None:
    """Raise the soft descriptor limit toward ``wanted``; the targets inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        top = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (top, hard))


def main(argv: list[str] | None = None) -> int:
    opts = parse(argv)
    raise_fd_limit(opts.idle + opts.slowloris + opts.concurrency + 1024)
    idle = "present" if has_setting("transport_idle_timeout") else "absent on this branch"
    print(
        f"[fuzz] seed {opts.seed}, {opts.per_target:,} inputs per target, logs in "
        f"{opts.workdir}; the service's idle timeout setting: {idle}",
        file=sys.stderr,
    )
    results = []
    try:
        for target in opts.target_list:
            print(f"[fuzz] {target} ...", file=sys.stderr, flush=True)
            # each target its own seed, the same whether or not the other one runs
            results.append(measure(target, opts, opts.seed + TARGETS.index(target)))
    finally:
        terminate_all()
    print(
        table(
            results,
            slowloris=f"{opts.slowloris}, a byte every {opts.dribble:g} s",
            idle=str(opts.idle),
            pause=opts.pause_label,
        )
    )
    for r in results:
        print(f"\n{r.target}: " + ("; ".join(r.faults()) or "no fault found"))
    if opts.json:
        opts.json.write_text(json.dumps([r.as_json() for r in results], indent=2))
    return 1 if any(r.faults() for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
