"""The gateway's memory under waves of invalid and odd HTTP, measured from /proc (Linux).

    .venv/bin/python -m benchmarks.gateway_junk                   # 2 waves of 50,000
    .venv/bin/python -m benchmarks.gateway_junk --requests 5000 --kinds long-path

Starts ``micro api`` (memory registry, no access log) as a subprocess, reads its RSS, sends
``--requests`` requests over raw loopback sockets (one connection each, 64 at once, every
kind in turn), reads the RSS again and after a pause, then repeats the same wave. A table or
cache that grows with what clients send shows as growth in the second wave too; memory the
allocator keeps after the first wave does not grow again. The gateway is always stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from benchmarks.gateway import PY, ROOT, env, free_port

WORKERS = 64
PAUSE = 5.0

KINDS: dict[str, Callable[[int], bytes]] = {
    "garbage": lambda i: bytes((i * 7 + k * 13) % 256 for k in range(1 + i % 200)) + b"\r\n\r\n",
    "bad-method": lambda i: b"G\x01T / HTTP/1.1\r\n\r\n",
    "bad-header": lambda i: b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",
    "bad-length": lambda i: b"POST /a/b HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n",
    "bad-chunk": lambda i: (
        b"POST /a/b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
    ),
    "bad-json": lambda i: (
        b"POST /a/b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n{x%d" % (i % 10)
    ),
    "new-path": lambda i: b"GET /p%d/q%d HTTP/1.1\r\nHost: h%d\r\n\r\n" % (i, i, i),
    "long-path": lambda i: b"GET /" + b"a" * 8000 + b"%d HTTP/1.1\r\nHost: x\r\n\r\n" % i,
    "long-header": lambda i: (
        b"GET /health HTTP/1.1\r\nHost: x\r\nX-" + b"h" * 200 + (b"%d: 1\r\n\r\n" % i)
    ),
}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


async def _one(port: int, data: bytes) -> None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(5):
            await reader.read(65536)
    except (OSError, TimeoutError):
        pass
    finally:
        writer.close()


async def wave(port: int, requests: int, kinds: list[str]) -> None:
    """``requests`` requests, kinds in turn, at most WORKERS connections open at once."""
    queue = iter(range(requests))

    async def worker() -> None:
        for i in queue:
            await _one(port, KINDS[kinds[i % len(kinds)]](i))

    await asyncio.gather(*(worker() for _ in range(WORKERS)))


def start_gateway(
    port: int,
    *args: str,
    extra_env: dict[str, str] | None = None,
    stderr: IO[bytes] | int = subprocess.DEVNULL,
) -> subprocess.Popen[bytes]:
    """``micro api`` on 127.0.0.1:``port`` (memory registry, no namespace, no access log),
    ``args`` and ``extra_env`` overriding those; returns once it accepts connections."""
    argv = [PY, "-m", "micro.toolkit.api", "--address", f"127.0.0.1:{port}", "--namespace", ""]
    proc = subprocess.Popen(
        [*argv, "--no-access-log", "--log-level", "error", *args],
        env={**env(), "MICRO_REGISTRY": "memory", **(extra_env or {})},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("the gateway did not start") from None
            time.sleep(0.2)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def measure(requests: int, kinds: list[str]) -> list[tuple[str, float]]:
    """(moment, RSS in MB) before, after each wave and after each pause."""
    port = free_port()
    proc = start_gateway(port)
    try:
        rows = [("before", rss_mb(proc.pid))]
        for n in (1, 2):
            started = time.monotonic()
            asyncio.run(wave(port, requests, kinds))
            rows.append((f"after wave {n} ({time.monotonic() - started:.0f}s)", rss_mb(proc.pid)))
            time.sleep(PAUSE)
            rows.append((f"after wave {n} + {PAUSE:g}s", rss_mb(proc.pid)))
        return rows
    finally:
        stop(proc)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gateway_junk", description=__doc__)
    p.add_argument("--requests", type=int, default=50_000, help="requests per wave (50000)")
    p.add_argument("--kinds", default=",".join(KINDS), help="comma list of: " + ", ".join(KINDS))
    opts = p.parse_args(argv)
    kinds = [k.strip() for k in opts.kinds.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        p.error(f"unknown kinds {unknown}; known: {', '.join(KINDS)}")
    print(f"{opts.requests} requests per wave, kinds: {', '.join(kinds)}")
    for moment, mb in measure(opts.requests, kinds):
        print(f"  {moment:<24} {mb:7.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
