"""The command line: pick targets, run each against its own server process, print the report."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import harness, report
from benchmarks.harness import CONCURRENT, SEQUENTIAL, Options, log
from benchmarks.loops import loop_factory, loop_name
from benchmarks.probes import import_time_ms
from benchmarks.targets import TARGET_MODULES, TargetImportError, load_target

IDLE_SETTLE_S = 0.5
BUSY_WARN_PCT = 15.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Side-by-side greeter RPC benchmark: micro against its anchors.",
    )
    parser.add_argument(
        "--targets",
        default=",".join(TARGET_MODULES),
        help=f"comma-separated, from: {', '.join(TARGET_MODULES)} (default: all)",
    )
    parser.add_argument(
        "--modes", default=f"{SEQUENTIAL},{CONCURRENT}", help="comma-separated (default: both)"
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="per mode (default 3)")
    parser.add_argument("--warmup", type=float, default=0.5, help="before each mode")
    parser.add_argument("--concurrency", type=int, default=64, help="calls in flight")
    parser.add_argument(
        "--no-uvloop",
        dest="uvloop",
        action="store_false",
        help="default asyncio loop in the client and the asyncio servers",
    )
    parser.add_argument(
        "--pin",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="pin the client to CPU 0 and each server to CPU 1 (default: on when 2+ CPUs)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="measure each mode N times against the same server and keep the median by req/s",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each repetition, wait up to this long for other processes to go idle",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results here")
    parser.add_argument(
        "--amqp-url", default="amqp://guest:guest@127.0.0.1:5672//", help="RabbitMQ for nameko"
    )
    parser.add_argument("--nats-url", default="nats://127.0.0.1:4222", help="for the nats target")
    parser.add_argument(
        "--nameko-max-workers",
        type=int,
        default=64,
        help="nameko server max_workers, which is also its AMQP prefetch (nameko default: 10)",
    )
    parser.add_argument(
        "--import-runs", type=int, default=7, help="runs per import-time probe (0: skip)"
    )
    args = parser.parse_args(argv)
    args.target_names = _split(args.targets, TARGET_MODULES, parser, "--targets")
    args.mode_names = _split(args.modes, (SEQUENTIAL, CONCURRENT), parser, "--modes")
    return args


def _split(value: str, allowed: Any, parser: argparse.ArgumentParser, flag: str) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in allowed]
    if unknown or not names:
        parser.error(f"{flag}: unknown {unknown or value!r}; choose from {', '.join(allowed)}")
    return names


def build_options(args: argparse.Namespace, workdir: Path) -> Options:
    return Options(
        seconds=args.seconds,
        warmup=args.warmup,
        concurrency=args.concurrency,
        uvloop=args.uvloop,
        pin=args.pin,
        amqp_url=args.amqp_url,
        nats_url=args.nats_url,
        nameko_max_workers=args.nameko_max_workers,
        repeat=max(1, args.repeat),
        quiet_wait=args.quiet_wait,
        workdir=workdir,
    )


def bench_target(
    name: str,
    options: Options,
    modes: list[str],
    runner: asyncio.Runner,
    outcome: report.Outcome,
) -> harness.Target | None:
    """Start the target's server, measure each mode, always stop the server."""
    try:
        target = load_target(name)
    except TargetImportError as exc:
        outcome.skipped[name] = str(exc)
        log(f"{name}: SKIPPED, {exc}")
        return None
    reason = target.unavailable(options)
    if reason:
        outcome.skipped[name] = reason
        log(f"{name}: SKIPPED, {reason}")
        return None
    server = None
    try:
        log(f"{name}: starting server ({target.title})")
        server = target.start_server(options)
        time.sleep(IDLE_SETTLE_S)
        rss = server.rss_mb()
        loop = target.loop_note or loop_name(options.uvloop)
        outcome.servers[name] = {
            "address": server.address,
            "idle_rss_mb": rss,
            "loop": loop,
            "broker": target.broker_info(options),
        }
        log(f"{name}: server pid {server.pid} at {server.address}, idle RSS {rss or 0:.1f} MB")
        runs = []
        for repetition in range(1, options.repeat + 1):
            if options.repeat > 1:
                log(f"{name}: repetition {repetition} of {options.repeat}")
            wait_until_quiet(options.quiet_wait)
            runs.append(runner.run(target.run_modes(server, options, modes)))
        outcome.results += harness.median_runs(runs)
    except Exception as exc:
        outcome.failed[name] = f"{type(exc).__name__}: {exc}"
        log(f"{name}: FAILED, {type(exc).__name__}: {exc}")
    finally:
        if server is not None:
            server.stop()
        target.cleanup(options)
    return target


def probe_imports(targets: list[harness.Target], options: Options, runs: int) -> dict[str, Any]:
    probes = {}
    for target in targets:
        for label, code in target.import_probes.items():
            log(f"{label}: timing {code!r} ({runs} runs)")
            try:
                probe = import_time_ms(code, options.python, runs)
            except Exception as exc:
                log(f"{label}: import probe failed: {exc}")
                continue
            probes[label] = {"target": target.name, "code": code, **probe}
    return probes


def pin_client(options: Options) -> None:
    """Client on CPU 0, servers on CPU 1: a core each, and no same-core ping-pong.

    Unpinned, the scheduler sometimes runs client and server on one CPU, which makes a
    sequential round trip several times faster and the sequential figures unstable.
    """
    if not options.pin:
        return
    if not {0, 1} <= os.sched_getaffinity(0):
        log("pinning needs CPUs 0 and 1; not pinning")
        options.pin = False
        return
    os.sched_setaffinity(0, {0})


def machine_busy_pct(sample_s: float = 1.0) -> float | None:
    """User+system CPU of the whole machine over ``sample_s``, in % of one CPU."""
    before = harness.read_busy_seconds()
    time.sleep(sample_s)
    after = harness.read_busy_seconds()
    return None if before is None or after is None else (after - before) / sample_s * 100


def wait_until_quiet(max_wait: float) -> None:
    """Wait up to ``max_wait`` s for the machine to be idle (the benchmark's own servers are)."""
    if max_wait <= 0:
        return
    deadline = time.monotonic() + max_wait
    busy = machine_busy_pct(0.5)
    while busy is not None and busy > BUSY_WARN_PCT:
        if time.monotonic() >= deadline:
            log(f"still busy ({busy:.0f}% of a CPU) after {max_wait:g} s; measuring anyway")
            return
        log(f"waiting for a quiet machine ({busy:.0f}% of a CPU busy)")
        busy = machine_busy_pct(2.0)


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="micro-bench-") as workdir:
        options = build_options(args, Path(workdir))
        cpus_usable = len(os.sched_getaffinity(0))
        pin_client(options)
        config: dict[str, Any] = {
            "seconds": options.seconds,
            "warmup": options.warmup,
            "concurrency": options.concurrency,
            "modes": args.mode_names,
            "pin": options.pin,
            "client_loop": loop_name(options.uvloop),
            "nameko_max_workers": options.nameko_max_workers,
            "repeat": options.repeat,
        }
        log(f"event loop: {config['client_loop']} (client and asyncio servers)")
        busy = config["busy_before_pct"] = machine_busy_pct()
        if busy is not None and busy > BUSY_WARN_PCT:
            log(f"WARNING: the machine is busy ({busy:.0f}% of a CPU) before the run")
        outcome = report.Outcome()
        loaded = []
        with asyncio.Runner(loop_factory=loop_factory(options.uvloop)) as runner:
            for name in args.target_names:
                target = bench_target(name, options, args.mode_names, runner, outcome)
                if target is not None:
                    loaded.append(target)
        if args.import_runs > 0:
            outcome.imports = probe_imports(loaded, options, args.import_runs)
    machine = report.machine_info(cpus_usable)
    print(report.render(outcome, machine, config))
    if args.json:
        report.write_json(args.json, outcome, machine, config)
        log(f"wrote {args.json}")
    return 1 if outcome.failed else 0


def _sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    harness.make_src_importable()
    signal.signal(signal.SIGTERM, _sigterm)
    try:
        return run(args)
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        harness.terminate_all()
        sys.stderr.flush()
