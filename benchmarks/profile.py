"""Where one greeter call's CPU goes: client and server of one transport, profiled together.

    python -m benchmarks.profile --transport tcp --calls 20000 --concurrency 64

The ``micro`` benchmark target's greeter (benchmarks/targets/micro_http.py) is served and
called in this one process under cProfile, so that every function of both sides is counted.
The report gives the CPU per call grouped by layer (micro's client, server, transport,
codec; asyncio; msgspec; the rest) and the functions with the most time of their own. The
absolute figures include cProfile's own overhead (roughly doubling a call's cost); the
shares between layers are what to read.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import time
from collections import defaultdict

import micro
from benchmarks.harness import REQUEST
from benchmarks.targets.micro_http import ENDPOINT, SERVICE, format_address, open_service

LAYERS = (  # first match wins: (label, substring of "<file> <function>")
    ("system calls", "_socket.socket"),
    ("system calls", "select.epoll"),
    ("system calls", "_SelectorSocketTransport"),
    ("micro client", "micro/client/"),
    ("micro server", "micro/server/"),
    ("micro transport", "micro/transport/"),
    ("micro codec", "micro/codec/"),
    ("micro (other)", "micro/"),
    ("nats-py / aio-pika", "/nats/"),
    ("nats-py / aio-pika", "aio_pika"),
    ("nats-py / aio-pika", "aiormq"),
    ("asyncio", "asyncio/"),
    ("asyncio", "uvloop"),
    ("msgspec", "msgspec"),
    ("C builtins (dict, str, len...)", "~ "),
)


async def run(transport: str, calls: int, concurrency: int) -> tuple[cProfile.Profile, float]:
    address, stop = await open_service(transport)
    client = micro.Client(registry="memory", transport=transport)
    try:
        for _ in range(200):  # warm the pool and the caches outside the profile
            await client.call(SERVICE, ENDPOINT, REQUEST, address=address)
        left = calls

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await client.call(SERVICE, ENDPOINT, REQUEST, address=format_address(address))

        profile = cProfile.Profile()
        started = time.perf_counter()
        profile.enable()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        profile.disable()
        return profile, time.perf_counter() - started
    finally:
        await client.close()
        await stop()


def layer(filename: str, function: str) -> str:
    where = f"{filename} {function}"
    return next((label for label, mark in LAYERS if mark in where), "other")


def report(profile: cProfile.Profile, calls: int, elapsed: float, top: int) -> str:
    stats = pstats.Stats(profile)
    raw = stats.stats  # type: ignore[attr-defined]  # {(file, line, fn): (cc, nc, tt, ct, callers)}
    by_layer: dict[str, float] = defaultdict(float)
    total = 0.0
    for (filename, _, function), (_, _, own, _, _) in raw.items():
        by_layer[layer(filename, function)] += own
        total += own
    lines = [
        f"{calls} calls in {elapsed:.2f} s under the profiler ({calls / elapsed:,.0f} calls/s),"
        f" {total / calls * 1e6:.1f} us of profiled CPU per call (client and server together)",
        "",
        f"{'layer':<32} {'us/call':>9} {'share':>7}",
    ]
    for name, own in sorted(by_layer.items(), key=lambda kv: -kv[1]):
        lines.append(f"{name:<32} {own / calls * 1e6:>9.1f} {own / total:>7.1%}")
    lines += ["", f"{'function (own time)':<70} {'us/call':>9} {'calls/call':>10}"]
    ranked = sorted(raw.items(), key=lambda kv: -kv[1][2])[:top]
    for (filename, line, function), (_, ncalls, own, _, _) in ranked:
        short = filename.split("site-packages/")[-1].split("src/")[-1]
        where = f"{short}:{line} {function}"
        lines.append(f"{where[-70:]:<70} {own / calls * 1e6:>9.2f} {ncalls / calls:>10.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__)
    parser.add_argument("--transport", default="tcp", help="micro transport (default tcp)")
    parser.add_argument("--calls", type=int, default=20000, help="calls profiled")
    parser.add_argument("--concurrency", type=int, default=64, help="calls in flight")
    parser.add_argument("--top", type=int, default=25, help="functions listed")
    args = parser.parse_args(argv)
    profile, elapsed = asyncio.run(run(args.transport, args.calls, args.concurrency))
    print(report(profile, args.calls, elapsed, args.top))


if __name__ == "__main__":
    main()
