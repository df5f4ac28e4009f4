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
    parser.add_argument("--modes", default=f"{SEQUENTIAL},{CONCURRENT}")
    parser.add_argument("--seconds", type=float, default=3.0, help="per mode (default 3)")
    parser.add_argument("--warmup", type=float, default=0.5, help="before each mode")
    parser.add_argument("--concurrency", type=int, default=64, help="calls in flight")
    parser.add_argument("--no-uvloop", dest="uvloop", action="store_false")
    parser.add_argument(
        "--pin", action="store_true", help="pin the client to CPU 0 and servers to CPU 1"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results here")
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672//")
    parser.add_argument("--nats-url", default="nats://127.0.0.1:4222")
    parser.add_argument("--nameko-max-workers", type=int, default=64)
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
        outcome.servers[name] = {"address": server.address, "idle_rss_mb": rss, "loop": loop}
        log(f"{name}: server pid {server.pid} at {server.address}, idle RSS {rss or 0:.1f} MB")
        outcome.results += runner.run(target.run_modes(server.address, options, modes))
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
    if options.pin:
        if len(os.sched_getaffinity(0)) < 2:
            log("--pin needs 2 CPUs; not pinning")
            options.pin = False
        else:
            os.sched_setaffinity(0, {0})


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="micro-bench-") as workdir:
        options = build_options(args, Path(workdir))
        pin_client(options)
        config = {
            "seconds": options.seconds,
            "warmup": options.warmup,
            "concurrency": options.concurrency,
            "modes": args.mode_names,
            "pin": options.pin,
            "client_loop": loop_name(options.uvloop),
            "nameko_max_workers": options.nameko_max_workers,
        }
        log(f"event loop: {config['client_loop']} (client and asyncio servers)")
        outcome = report.Outcome()
        loaded = []
        with asyncio.Runner(loop_factory=loop_factory(options.uvloop)) as runner:
            for name in args.target_names:
                target = bench_target(name, options, args.mode_names, runner, outcome)
                if target is not None:
                    loaded.append(target)
        if args.import_runs > 0:
            outcome.imports = probe_imports(loaded, options, args.import_runs)
    machine = report.machine_info()
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
