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

Each backend runs ``--rounds`` times (default 3), so its raw and micro runs alternate in
time and a burst of load on this machine hits both sides rather than one; the table shows
the median of each side and the range of the per-round ratios. Modules that also measure a
second mode (``micro_js``/``raw_js``, ``micro_pubsub``/``raw_pubsub``) get a row for it.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import statistics
import sys
from typing import Any

BACKENDS = ("http", "nats", "redis", "rabbitmq", "mqtt")


async def _measure(name: str, n: int, timeout: float, rounds: int) -> dict[str, Any]:
    try:
        module = importlib.import_module(f"benchmarks.pubsub_{name}")
    except ImportError as exc:
        return {"skipped": f"no benchmark module ({exc})"}
    runs: list[dict[str, float]] = []
    for i in range(rounds):
        print(f"  {name} round {i + 1}/{rounds}...", file=sys.stderr, flush=True)
        try:
            runs.append(dict(await asyncio.wait_for(module.run(n), timeout)))
        except TimeoutError:
            return {"skipped": f"no result within {timeout:g}s"}
        except Exception as exc:  # a server that is not running, a missing driver
            return {"skipped": f"{type(exc).__name__}: {exc}"}
    result: dict[str, Any] = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    result["rounds"] = runs
    return result


def _modes(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(label suffix, micro key, raw key) for every measured mode of one backend."""
    out = []
    for key in result:
        if key.startswith("micro") and "raw" + key[len("micro") :] in result:
            suffix = key[len("micro") :]
            out.append((suffix.replace("_", " "), key, "raw" + suffix))
    return out


def _table(results: dict[str, dict[str, Any]], n: int) -> str:
    lines = [
        f"pub/sub: {n} events per backend, received msgs/s (median of the rounds)",
        f"{'backend':<16} {'micro':>10} {'raw':>10} {'micro/raw':>10}   per-round ratios",
    ]
    for name, res in results.items():
        if "skipped" in res:
            lines.append(f"{name:<16} skipped: {res['skipped']}")
            continue
        for suffix, micro_key, raw_key in _modes(res):
            micro, raw = res[micro_key], res[raw_key]
            ratio = micro / raw if raw else float("nan")
            each = sorted(r[micro_key] / r[raw_key] for r in res["rounds"] if r[raw_key])
            spread = f"{each[0]:.2f}-{each[-1]:.2f}x" if each else ""
            label = name + suffix
            lines.append(f"{label:<16} {micro:>10,.0f} {raw:>10,.0f} {ratio:>9.2f}x   {spread}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pubsub", description=__doc__)
    parser.add_argument("--n", type=int, default=100_000, help="events per backend")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per backend")
    parser.add_argument("--rounds", type=int, default=3, help="runs per backend (median)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    names = [b.strip() for b in args.backends.split(",") if b.strip()]

    async def measure_all() -> dict[str, dict[str, Any]]:
        out = {}
        for name in names:
            print(f"measuring {name}...", file=sys.stderr, flush=True)
            out[name] = await _measure(name, args.n, args.timeout, max(1, args.rounds))
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
