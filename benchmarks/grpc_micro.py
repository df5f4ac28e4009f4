"""micro's gRPC server and client beside plain grpcio, in one run.

    .venv/bin/python -m benchmarks.grpc_micro --seconds 2
    .venv/bin/python -m benchmarks.grpc_micro --targets grpc,micro-grpc-server --json out.json

The targets are in :mod:`benchmarks.targets.micro_grpc`; each runs its server in a subprocess
and measures one call at a time and ``--concurrency`` calls in flight, as the main runner
does (``benchmarks/README.md``, "Method"). The goals, each a req/s ratio in both modes:

- ``micro-grpc-server / grpc`` >= 0.9: micro's server, called by a grpcio stub, against a
  grpcio servicer;
- ``micro-grpc-client / grpc`` >= 0.9: micro's client against a grpcio stub, both calling
  the grpcio servicer;
- ``micro-grpc-stream / grpc-stream`` >= 0.9: a server stream of 10 replies.

A benchmark, not a test: it prints the figures and whether each goal was met.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks import harness
from benchmarks.cli import pin_client
from benchmarks.harness import CONCURRENT, SEQUENTIAL, Measurement, Options, log, median_runs
from benchmarks.loops import loop_factory
from benchmarks.report import Goal
from benchmarks.targets.micro_grpc import TARGETS

GOALS = tuple(
    Goal(subject, anchor, mode, 0.9)
    for subject, anchor in (
        ("micro-grpc-server", "grpc"),
        ("micro-grpc-client", "grpc"),
        ("micro-grpc-stream", "grpc-stream"),
    )
    for mode in (SEQUENTIAL, CONCURRENT)
)


async def measure(names: list[str], options: Options, repeat: int) -> list[Measurement]:
    """Each target's modes; with ``repeat`` > 1 the targets are measured in turn that many
    times (so that a busy spell on the shared machine hits them alike), keeping the median."""
    runs: dict[str, list[list[Measurement]]] = {}
    for _ in range(repeat):
        for target in TARGETS:
            if target.name not in names:
                continue
            server = target.start_server(options)
            try:
                modes = await target.run_modes(server, options, (SEQUENTIAL, CONCURRENT))
            finally:
                server.stop()
            runs.setdefault(target.name, []).append(modes)
    return [m for repeats in runs.values() for m in median_runs(repeats)]


def render(results: list[Measurement]) -> tuple[str, list[dict[str, Any]]]:
    lines = [
        "| target | mode | req/s | p50 ms | p99 ms | server CPU us/call | client CPU us/call |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in results:
        lines.append(
            f"| {m.target} | {m.mode} (x{m.concurrency}) | {m.rps:,.0f} | {m.p50_ms:.3f} | "
            f"{m.p99_ms:.3f} | {_us(m.server_cpu_us)} | {_us(m.client_cpu_us)} |"
        )
    rps = {(m.target, m.mode): m.rps for m in results}
    goals = []
    lines += ["", "| subject / anchor | mode | ratio | goal | verdict |", "|---|---|---|---|---|"]
    for goal in GOALS:
        subject, anchor = rps.get((goal.subject, goal.mode)), rps.get((goal.anchor, goal.mode))
        ratio = subject / anchor if subject and anchor else None
        verdict = "pending" if ratio is None else ("met" if goal.met(ratio) else "NOT MET")
        shown = "-" if ratio is None else f"{ratio:.2f}x"
        lines.append(
            f"| {goal.subject} / {goal.anchor} | {goal.mode} | {shown} | {goal.text} | {verdict} |"
        )
        goals.append({**vars_of(goal), "ratio": ratio, "verdict": verdict})
    return "\n".join(lines), goals


def vars_of(goal: Goal) -> dict[str, Any]:
    return {"subject": goal.subject, "anchor": goal.anchor, "mode": goal.mode}


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.grpc_micro", description=__doc__)
    p.add_argument("--targets", default=",".join(t.name for t in TARGETS))
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--warmup", type=float, default=0.5)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--no-uvloop", dest="uvloop", action="store_false")
    p.add_argument("--no-pin", dest="pin", action="store_false")
    p.add_argument("--repeat", type=int, default=1, help="rounds; the median is kept")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    harness.make_src_importable()
    try:
        with tempfile.TemporaryDirectory(prefix="micro-bench-grpc-") as workdir:
            options = Options(
                seconds=args.seconds,
                warmup=args.warmup,
                concurrency=args.concurrency,
                uvloop=args.uvloop,
                pin=args.pin,
                workdir=Path(workdir),
            )
            pin_client(options)
            with asyncio.Runner(loop_factory=loop_factory(options.uvloop)) as runner:
                results = runner.run(measure(args.targets.split(","), options, args.repeat))
    finally:
        harness.terminate_all()
    table, goals = render(results)
    print(table)
    if args.json:
        rows = [m.as_dict() for m in results]
        args.json.write_text(json.dumps({"results": rows, "goals": goals}, indent=2))
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
