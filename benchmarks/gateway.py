"""The API gateway next to its anchors: one run, one machine, load from separate processes.

    .venv/bin/python -m benchmarks.gateway                  # 5 s per run, 1 and 32 in flight
    .venv/bin/python -m benchmarks.gateway --seconds 3 --connections 64 --json out.json

Targets, each answering ``POST {"name": "John"}`` with ``{"msg": "Hello John"}``:

- ``gateway``: ``micro api`` (no access log) -> micro.Client -> the greeter service process;
- ``direct``: the greeter called with micro.Client from a load process (no HTTP gateway);
- ``starlette``: a plain uvicorn + starlette JSON endpoint (the ceiling for the gateway).

With ``--proxy`` the gateway runs ``--handler http`` instead and reverse-proxies to that
starlette endpoint (registered in mDNS as the service): the targets are ``gateway`` (through
the proxy) and ``starlette`` (the same app, straight); the app runs where the greeter would.

HTTP load comes from wrk (Debian ``wrk``) when installed, else from an asyncio load process;
the direct micro.Client load is always an asyncio process. Every server and load process is
stopped at the end. Discovery uses mDNS on loopback only, under a unique namespace.

CPU pinning (``--pin``, Linux only), so that the gateway and starlette get the same CPU:

- ``split`` (default with 2+ CPUs): the server under test (gateway or starlette) alone on
  CPU 0; wrk, the asyncio load processes and the greeter on CPU 1. The gateway's backend
  competes with the load generator, not with the gateway.
- ``shared``: the gateway, the greeter and starlette on CPU 0, the load on CPU 1: the
  gateway *and* its backend fit in the one CPU starlette has (the strictest reading).
- ``none``: the scheduler decides (what a 2-CPU box shared with other work gives).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
BODY = b'{"name": "John"}'
WRK_SCRIPT = """wrk.method = "POST"
wrk.body = '{"name": "John"}'
wrk.headers["Content-Type"] = "application/json"
"""


PINS = {  # --pin -> (CPUs of gateway/starlette, of the greeter, of the load processes)
    "split": ({0}, {1}, {1}),
    "shared": ({0}, {0}, {1}),
    "none": (None, None, None),
}


def _affinity(cpus: set[int] | None) -> Any:
    """A preexec_fn pinning the child (and the threads it starts) to ``cpus``."""
    if not cpus:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": f"{ROOT}:{ROOT / 'src'}",
        "MICRO_MDNS_INTERFACES": "127.0.0.1",
        "MICRO_SERVER_ADDRESS": "127.0.0.1:0",
    }


# -- servers run as subprocesses of this module ---------------------------------------------


def serve_plain(port: int, service: str | None = None) -> None:
    """A plain starlette JSON endpoint, the same work as the greeter; registered in mDNS as
    ``service`` (for the gateway's http handler) when given."""
    import msgspec
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def greet(request: Request) -> Response:
        req = msgspec.json.decode(await request.body())
        return Response(
            msgspec.json.encode({"msg": f"Hello {req['name']}"}), media_type="application/json"
        )

    app = Starlette(routes=[Route("/greeter/say-hello", greet, methods=["POST"])])
    if service is None:
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
        return

    async def main() -> None:
        from micro.registry import Node, Service
        from micro.registry.mdns import MdnsRegistry

        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", access_log=False
        )
        node = Node(id=f"plain-{port}", address=f"127.0.0.1:{port}")
        async with MdnsRegistry() as registry:
            await registry.register(Service(service, nodes=[node]), ttl=60)
            await uvicorn.Server(config).serve()

    _run(main())


def serve_greeter(name: str) -> None:
    """examples/greeter's handler as service ``name``; prints ADDRESS when serving."""
    import micro
    from examples.greeter.server import Greeter

    async def main() -> None:
        service = micro.Service(name, address="127.0.0.1:0", handle_signals=False)
        service.handle(Greeter())
        await service.start()
        print("ADDRESS", service.server.address, flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await service.stop()

    _run(main())


def _run(main: Any) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)


# -- load generators ------------------------------------------------------------------------


async def _workers(call: Any, connections: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - t0)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    wall = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": len(latencies) / wall,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "requests": len(latencies),
    }


def load_micro(address: str, service: str, connections: int, seconds: float) -> None:
    """micro.Client calls straight to the greeter; prints one JSON result line."""
    import micro

    async def main() -> None:
        async with micro.Client(registry="memory", pool_size=max(100, connections)) as client:

            async def call() -> None:
                rsp = await client.call(
                    service, "Greeter.SayHello", {"name": "John"}, address=address
                )
                assert rsp["msg"] == "Hello John"

            await _workers(call, connections, min(seconds, 0.5))  # warm-up
            print(json.dumps(await _workers(call, connections, seconds)), flush=True)

    _run(main())


def load_http(url: str, connections: int, seconds: float) -> None:
    """aiohttp POSTs (used when wrk is missing); prints one JSON result line."""
    import aiohttp

    async def main() -> None:
        limit = aiohttp.TCPConnector(limit=connections)
        async with aiohttp.ClientSession(connector=limit) as session:

            async def call() -> None:
                async with session.post(
                    url, data=BODY, headers={"Content-Type": "application/json"}
                ) as rsp:
                    assert rsp.status == 200
                    await rsp.read()

            await _workers(call, connections, min(seconds, 0.5))
            print(json.dumps(await _workers(call, connections, seconds)), flush=True)

    _run(main())


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def run_wrk(
    url: str, connections: int, seconds: float, cpus: set[int] | None = None
) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT)
    try:
        subprocess.run(
            ["wrk", "-t1", f"-c{connections}", "-d1s", "-s", script.name, url],
            capture_output=True,
            timeout=30,
            preexec_fn=_affinity(cpus),
        )
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{seconds:g}s",
                "--latency",
                "-s",
                script.name,
                url,
            ],
            capture_output=True,
            timeout=seconds + 30,
            check=True,
            preexec_fn=_affinity(cpus),
        ).stdout.decode()
    finally:
        os.unlink(script.name)
    pct = {
        m[0]: float(m[1]) * _UNITS[m[2]]
        for m in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s)$", out, re.M)
    }
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{url}: {errors.group(1)} failed responses")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return {"rps": rps, "p50_ms": pct["50"], "p99_ms": pct["99"], "requests": int(rps * seconds)}


def run_load(args: list[str], timeout: float, cpus: set[int] | None = None) -> dict[str, Any]:
    out = subprocess.run(
        [PY, "-m", "benchmarks.gateway", *args],
        capture_output=True,
        env=env(),
        timeout=timeout,
        cwd=ROOT,
        preexec_fn=_affinity(cpus),
    )
    if out.returncode:
        raise RuntimeError(out.stderr.decode()[-2000:])
    return dict(json.loads(out.stdout.decode().strip().splitlines()[-1]))


# -- the run ----------------------------------------------------------------------------------


class Procs:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, args: list[str], cpus: set[int] | None = None) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env(),
            cwd=ROOT,
            preexec_fn=_affinity(cpus),
        )
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_http(url: str, timeout: float = 30.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.post(url, content=BODY, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:g}s")


def measure(opts: argparse.Namespace) -> list[dict[str, Any]]:
    procs = Procs()
    ns = f"bench-{uuid.uuid4().hex[:8]}"
    service = f"{ns}.greeter"
    use_wrk = shutil.which("wrk") is not None and not opts.no_wrk
    server_cpus, greeter_cpus, load_cpus = PINS[opts.pin]
    try:
        gw_port, plain_port = free_port(), free_port()
        if opts.proxy:
            args = ["--serve-plain", str(plain_port), "--register", service]
            procs.start([PY, "-m", "benchmarks.gateway", *args], greeter_cpus)
        else:
            greeter = procs.start(
                [PY, "-m", "benchmarks.gateway", "--serve-greeter", service], greeter_cpus
            )
            address = greeter.stdout.readline().decode().split()[1]  # type: ignore[union-attr]
            procs.start(
                [PY, "-m", "benchmarks.gateway", "--serve-plain", str(plain_port)], server_cpus
            )
        procs.start(
            [
                PY,
                "-m",
                "micro.toolkit.api",
                "--address",
                f"127.0.0.1:{gw_port}",
                "--namespace",
                ns,
                "--no-access-log",
                "--log-level",
                "warning",
                *(["--handler", "http"] if opts.proxy else []),
            ],
            server_cpus,
        )
        urls = {
            "gateway": f"http://127.0.0.1:{gw_port}/greeter/say-hello",
            "starlette": f"http://127.0.0.1:{plain_port}/greeter/say-hello",
        }
        for url in urls.values():
            wait_http(url)
        rows = []
        targets = ("gateway", "direct", "starlette")
        for connections in opts.connections_list:
            for target in ("gateway", "starlette") if opts.proxy else targets:
                if target == "direct":
                    args = ["--load-micro", address, service, str(connections), str(opts.seconds)]
                    result = run_load(args, opts.seconds + 60, load_cpus)
                    tool = "asyncio micro.Client"
                elif use_wrk:
                    result = run_wrk(urls[target], connections, opts.seconds, load_cpus)
                    tool = "wrk -t1"
                else:
                    args = ["--load-http", urls[target], str(connections), str(opts.seconds)]
                    result = run_load(args, opts.seconds + 60, load_cpus)
                    tool = "asyncio aiohttp"
                rows.append(
                    {
                        "target": target,
                        "connections": connections,
                        "tool": tool,
                        "pin": opts.pin,
                        **result,
                    }
                )
                print(f"  {target:9} c={connections:<3} {_line(result)}", file=sys.stderr)
        return rows
    finally:
        procs.stop()


def _line(r: dict[str, Any]) -> str:
    return f"{r['rps']:>9,.0f} req/s  p50 {r['p50_ms']:.3f} ms  p99 {r['p99_ms']:.3f} ms"


def report(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| target | in flight | load | req/s | p50 ms | p99 ms |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        cells = [r["target"], r["connections"], r["tool"], f"{r['rps']:,.0f}"]
        cells += [f"{r['p50_ms']:.3f}", f"{r['p99_ms']:.3f}"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines.append("")
    lines.append(f"- CPU pinning: {rows[0].get('pin', 'none')} (see --help)")
    for c in sorted({r["connections"] for r in rows}):
        by = {r["target"]: r for r in rows if r["connections"] == c}
        gw, plain = by["gateway"], by["starlette"]
        direct = by.get("direct")
        if direct is None:  # --proxy
            lines.append(
                f"- {c} in flight: gateway (http handler)/starlette throughput "
                f"{gw['rps'] / plain['rps']:.2f}x; p50 {gw['p50_ms'] - plain['p50_ms']:+.3f} ms"
            )
            continue
        lines.append(
            f"- {c} in flight: gateway/starlette throughput {gw['rps'] / plain['rps']:.2f}x; "
            f"gateway p50 - direct p50 = {gw['p50_ms'] - direct['p50_ms']:+.3f} ms; "
            f"gateway/direct throughput {gw['rps'] / direct['rps']:.2f}x"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.gateway", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--seconds", type=float, default=5.0, help="length of each measured run (5)")
    p.add_argument("--connections", default="1,32", help="in-flight requests per run (1,32)")
    p.add_argument(
        "--no-wrk", action="store_true", help="HTTP load from asyncio even if wrk exists"
    )
    p.add_argument(
        "--pin",
        choices=sorted(PINS),
        default=None,
        help="CPU pinning: split (default with 2+ CPUs), shared or none; see the docstring",
    )
    p.add_argument(
        "--proxy",
        action="store_true",
        help="the gateway's http handler proxying to the starlette app (no greeter)",
    )
    p.add_argument("--json", help="also write the rows as JSON here")
    p.add_argument("--register", help=argparse.SUPPRESS)
    p.add_argument("--serve-plain", type=int, help=argparse.SUPPRESS)
    p.add_argument("--serve-greeter", help=argparse.SUPPRESS)
    p.add_argument("--load-micro", nargs=4, help=argparse.SUPPRESS)
    p.add_argument("--load-http", nargs=3, help=argparse.SUPPRESS)
    opts = p.parse_args(argv)
    if opts.serve_plain:
        serve_plain(opts.serve_plain, opts.register)
        return 0
    if opts.serve_greeter:
        serve_greeter(opts.serve_greeter)
        return 0
    if opts.load_micro:
        address, service, c, s = opts.load_micro
        load_micro(address, service, int(c), float(s))
        return 0
    if opts.load_http:
        url, c, s = opts.load_http
        load_http(url, int(c), float(s))
        return 0
    opts.connections_list = [int(c) for c in opts.connections.split(",")]
    if opts.pin is None:
        cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
        opts.pin = "split" if {0, 1} <= cpus else "none"
    print(f"pinning: {opts.pin}", file=sys.stderr)
    rows = measure(opts)
    print(report(rows))
    if opts.json:
        Path(opts.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
