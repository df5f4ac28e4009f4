"""``python -m benchmarks.pubsub``: publish N small events per backend, micro vs the raw library.

    .venv/bin/python -m benchmarks.pubsub                        # every backend, 100k events
    .venv/bin/python -m benchmarks.pubsub --backends http --n 20000

Each backend is a module ``benchmarks/pubsub_<name>.py`` exposing
``async def run(n: int) -> dict[str, float]`` that returns ``{"micro": msgs_per_s, "raw":
msgs_per_s}`` (received messages per second through micro's broker and through the client
library alone, same payload, same machine, same run). A module that is missing, or whose
server is unreachable, is reported as skipped with the reason. Runs on uvloop when
installed. A backend that gives no result within ``--timeout`` seconds is reported as
skipped. These are benchmarks, not tests: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import sys
from typing import Any

BACKENDS = ("http", "nats", "redis", "rabbitmq", "mqtt")


async def _measure(name: str, n: int, timeout: float) -> dict[str, Any]:
    try:
        module = importlib.import_module(f"benchmarks.pubsub_{name}")
    except ImportError as exc:
        return {"skipped": f"no benchmark module ({exc})"}
    try:
        result: dict[str, float] = await asyncio.wait_for(module.run(n), timeout)
    except TimeoutError:
        return {"skipped": f"no result within {timeout:g}s"}
    except Exception as exc:  # a server that is not running, a missing driver
        return {"skipped": f"{type(exc).__name__}: {exc}"}
    return dict(result)


def _table(results: dict[str, dict[str, Any]], n: int) -> str:
    lines = [
        f"pub/sub: {n} events per backend, received msgs/s",
        f"{'backend':<10} {'micro':>10} {'raw':>10} {'micro/raw':>10}",
    ]
    for name, res in results.items():
        if "skipped" in res:
            lines.append(f"{name:<10} skipped: {res['skipped']}")
            continue
        micro, raw = res["micro"], res["raw"]
        ratio = micro / raw if raw else float("nan")
        lines.append(f"{name:<10} {micro:>10,.0f} {raw:>10,.0f} {ratio:>9.2f}x")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pubsub", description=__doc__)
    parser.add_argument("--n", type=int, default=100_000, help="events per backend")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per backend")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    names = [b.strip() for b in args.backends.split(",") if b.strip()]

    async def measure_all() -> dict[str, dict[str, Any]]:
        out = {}
        for name in names:
            print(f"measuring {name}...", file=sys.stderr, flush=True)
            out[name] = await _measure(name, args.n, args.timeout)
        return out

    try:
        import uvloop

        results = uvloop.run(measure_all())
    except ImportError:
        results = asyncio.run(measure_all())
    print(_table(results, args.n))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"n": args.n, "results": results}, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
