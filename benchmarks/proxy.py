"""``micro proxy``: calls through the proxy next to direct calls, in one run on one machine.

    .venv/bin/python -m benchmarks.proxy                     # 4 s per run: about 40 s in all
    .venv/bin/python -m benchmarks.proxy --seconds 3 --json out.json

Processes, all on 127.0.0.1, discovery by mDNS on loopback under a unique service name:

- the greeter (examples/greeter's handler, a ``micro.Service`` on the http transport);
- ``micro proxy`` (``python -m micro.toolkit.proxy``, no access log, no auth);
- one asyncio load process per run, calling ``Greeter.SayHello`` with:
  - ``direct``: ``micro.Client()``, straight to the greeter;
  - ``proxy``: ``micro.Client(proxy="127.0.0.1:<port>")``, the laptop's path: ``POST /rpc``
    to the proxy, whose own ``micro.Client`` calls the greeter;
  - ``proxy-raw``: the same ``POST /rpc``, pre-encoded, on plain keep-alive sockets (the
    cost of the proxy alone, with next to nothing spent by the client).

Each runs with 1 request in flight (sequential) and 32, after a 0.5 s warm-up. The report
gives requests/s, p50 and p99; the CPU time per call of the load process (measured run only)
and of the proxy and the greeter (from /proc, warm-up included); then the proxy's added p50
latency (proxy p50 - direct p50 at 1 in flight) and its throughput ratio (proxy / direct at
32 in flight). The CPU times hold steadier than req/s on a machine shared with other work.

CPU pinning (``--pin``, Linux only):

- ``split`` (default with 2+ CPUs): the proxy alone on CPU 0; the greeter and the load on
  CPU 1, as a proxy on a machine of its own would be. Direct calls leave CPU 0 idle.
- ``none``: the scheduler decides.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from benchmarks.gateway import PY, ROOT, Procs, _affinity, _run, _workers, env, free_port

PINS = {  # --pin -> (CPUs of the proxy, of the greeter, of the load processes)
    "split": ({0}, {1}, {1}),
    "none": (None, None, None),
}
KINDS = ("direct", "proxy", "proxy-raw")
GOAL_ADDED_P50_MS = 1.0
GOAL_THROUGHPUT = 0.5
WARMUP = 0.5


# -- the load process -----------------------------------------------------------------------


def load(kind: str, service: str, proxy: str, connections: int, seconds: float) -> None:
    """Calls of one ``kind`` (see the module docstring); prints one JSON result line."""

    async def main() -> None:
        if kind == "proxy-raw":
            call, close = await raw_caller(proxy, service, connections)
        else:
            call, close = await client_caller(kind, proxy, service)
        try:
            await _first_answer(call)
            warm = await _workers(call, connections, WARMUP)
            cpu = time.process_time()
            result = await _workers(call, connections, seconds)
            result["client_cpu_us"] = (time.process_time() - cpu) / result["requests"] * 1e6
            result["all_requests"] = warm["requests"] + result["requests"]
            print(json.dumps(result), flush=True)
        finally:
            await close()

    _run(main())


Caller = tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]


async def client_caller(kind: str, proxy: str, service: str) -> Caller:
    import micro

    options: dict[str, Any] = {"proxy": proxy} if kind == "proxy" else {}
    client = micro.Client(**options)
    await client.__aenter__()

    async def call() -> None:
        rsp = await client.call(service, "Greeter.SayHello", {"name": "John"})
        assert rsp["msg"] == "Hello John", rsp

    async def close() -> None:
        await client.__aexit__(None, None, None)

    return call, close


async def raw_caller(proxy: str, service: str, connections: int) -> Caller:
    """``POST /rpc`` on ``connections`` keep-alive sockets, one call at a time on each."""
    host, port = proxy.rsplit(":", 1)
    body = json.dumps(
        {"service": service, "endpoint": "Greeter.SayHello", "request": {"name": "John"}}
    ).encode()
    request = (
        f"POST /rpc HTTP/1.1\r\nHost: {proxy}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(await asyncio.open_connection(host, int(port)))

    async def call() -> None:
        reader, writer = await idle.get()
        try:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            answer = await reader.readexactly(length)
        except BaseException:
            writer.close()
            idle.put_nowait(await asyncio.open_connection(host, int(port)))
            raise
        idle.put_nowait((reader, writer))
        if not head.startswith(b"HTTP/1.1 200") or b"Hello John" not in answer:
            raise RuntimeError(f"unexpected answer: {head!r} {answer!r}")

    async def close() -> None:
        while not idle.empty():
            idle.get_nowait()[1].close()

    return call, close


async def _first_answer(call: Callable[[], Awaitable[None]], within: float = 20.0) -> None:
    """Until discovery has found the greeter (mDNS, for us or for the proxy)."""
    deadline = time.monotonic() + within
    while True:
        try:
            await call()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


# -- the run --------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (0 where /proc is missing)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_load(args: list[str], timeout: float, cpus: set[int] | None) -> dict[str, Any]:
    out = subprocess.run(
        [PY, "-m", "benchmarks.proxy", "--load", *args],
        capture_output=True,
        env=env(),
        timeout=timeout,
        cwd=ROOT,
        preexec_fn=_affinity(cpus),
    )
    if out.returncode:
        raise RuntimeError(out.stderr.decode()[-2000:])
    return dict(json.loads(out.stdout.decode().strip().splitlines()[-1]))


def wait_health(url: str, timeout: float = 30.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:g}s")


def measure(opts: argparse.Namespace) -> list[dict[str, Any]]:
    procs = Procs()
    service = f"bench-{uuid.uuid4().hex[:8]}.greeter"
    proxy_cpus, greeter_cpus, load_cpus = PINS[opts.pin]
    try:
        greeter = procs.start(
            [PY, "-m", "benchmarks.gateway", "--serve-greeter", service], greeter_cpus
        )
        greeter.stdout.readline()  # type: ignore[union-attr]  # ADDRESS: serving
        port = free_port()
        server = procs.start(
            [
                PY, "-m", "micro.toolkit.proxy", "--address", f"127.0.0.1:{port}",
                "--no-access-log", "--log-level", "warning",
            ],
            proxy_cpus,
        )  # fmt: skip
        proxy = f"127.0.0.1:{port}"
        wait_health(f"http://{proxy}/health")
        rows = []
        for connections in opts.connections_list:
            for kind in opts.kinds:
                args = [kind, service, proxy, str(connections), str(opts.seconds)]
                before = cpu_seconds(server.pid), cpu_seconds(greeter.pid)
                result = run_load(args, opts.seconds + 60, load_cpus)
                calls = result.pop("all_requests")
                result["proxy_cpu_us"] = (cpu_seconds(server.pid) - before[0]) / calls * 1e6
                result["greeter_cpu_us"] = (cpu_seconds(greeter.pid) - before[1]) / calls * 1e6
                row = {"target": kind, "connections": connections, "pin": opts.pin, **result}
                rows.append(row)
                print(f"  {kind:9} c={connections:<3} {_line(result)}", file=sys.stderr)
        return rows
    finally:
        procs.stop()


def _line(r: dict[str, Any]) -> str:
    return (
        f"{r['rps']:>9,.0f} req/s  p50 {r['p50_ms']:.3f} ms  p99 {r['p99_ms']:.3f} ms  "
        f"CPU/call: client {r['client_cpu_us']:.0f} us, proxy {r['proxy_cpu_us']:.0f} us, "
        f"greeter {r['greeter_cpu_us']:.0f} us"
    )


def report(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| calls | in flight | req/s | p50 ms | p99 ms | client CPU µs/call | proxy CPU µs/call "
        "| greeter CPU µs/call |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        cells = [r["target"], r["connections"], f"{r['rps']:,.0f}"]
        cells += [f"{r[k]:.3f}" for k in ("p50_ms", "p99_ms")]
        cells += [f"{r[k]:.0f}" for k in ("client_cpu_us", "proxy_cpu_us", "greeter_cpu_us")]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines += ["", f"- CPU pinning: {rows[0]['pin']} (see --help)"]
    by = {(r["target"], r["connections"]): r for r in rows}
    counts = sorted({r["connections"] for r in rows})
    for c in counts:
        direct = by.get(("direct", c))
        for kind in ("proxy", "proxy-raw"):
            proxied = by.get((kind, c))
            if direct is None or proxied is None:
                continue
            lines.append(
                f"- {c} in flight, {kind}: p50 - direct p50 = "
                f"{proxied['p50_ms'] - direct['p50_ms']:+.3f} ms; {kind}/direct throughput "
                f"{proxied['rps'] / direct['rps']:.2f}x"
            )
    least, most = counts[0], counts[-1]
    keys = [("direct", least), ("proxy", least), ("direct", most), ("proxy", most)]
    if all(k in by for k in keys):
        added = by[("proxy", least)]["p50_ms"] - by[("direct", least)]["p50_ms"]
        ratio = by[("proxy", most)]["rps"] / by[("direct", most)]["rps"]
        met = added < GOAL_ADDED_P50_MS and ratio >= GOAL_THROUGHPUT
        lines.append(
            f"- goal (under {GOAL_ADDED_P50_MS:g} ms added at p50 with {least} in flight, at "
            f"least {GOAL_THROUGHPUT:g}x the throughput with {most}): "
            f"{'met' if met else 'missed'} ({added:+.3f} ms, {ratio:.2f}x)"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.proxy", description=(__doc__ or "").split("\n\n")[0]
    )
    p.add_argument("--seconds", type=float, default=4.0, help="length of each measured run (4)")
    p.add_argument("--connections", default="1,32", help="in-flight requests per run (1,32)")
    p.add_argument("--kinds", default=",".join(KINDS), help=f"calls to run ({','.join(KINDS)})")
    p.add_argument(
        "--pin",
        choices=sorted(PINS),
        default=None,
        help="CPU pinning: split (default with 2+ CPUs) or none; see the docstring",
    )
    p.add_argument("--json", help="also write the rows as JSON here")
    p.add_argument("--load", nargs=5, help=argparse.SUPPRESS)
    opts = p.parse_args(argv)
    if opts.load:
        kind, service, proxy, c, s = opts.load
        load(kind, service, proxy, int(c), float(s))
        return 0
    opts.connections_list = [int(c) for c in opts.connections.split(",")]
    opts.kinds = [k for k in opts.kinds.split(",") if k]
    if unknown := set(opts.kinds) - set(KINDS):
        p.error(f"unknown --kinds {','.join(sorted(unknown))}; choose from {','.join(KINDS)}")
    for name in [name for name in os.environ if name.startswith("MICRO_PROXY_")]:
        # the direct calls must be direct, and micro proxy would read MICRO_PROXY_ADDRESS as
        # its listen address: the children get none of the caller's
        del os.environ[name]
    if opts.pin is None:
        cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
        opts.pin = "split" if {0, 1} <= cpus else "none"
    print(f"pinning: {opts.pin}", file=sys.stderr)
    rows = measure(opts)
    sys.stderr.flush()
    print(report(rows))
    if opts.json:
        Path(opts.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
