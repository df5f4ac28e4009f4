"""``micro mcp`` next to a direct call: one run, one machine, the service in its own process.

    .venv/bin/python -m benchmarks.mcp                     # 2 s per measurement
    .venv/bin/python -m benchmarks.mcp --seconds 5 --json out.json

The service (``benchmarks/_mcp_service.py``: the greeter plus 99 typed endpoints, so 100
endpoint tools) runs in its own process, registered over mDNS on loopback under a unique
name. From this process, one call at a time for ``--seconds`` each:

- ``direct``: ``micro.Client.call(service, "Greeter.SayHello", {"name": "John"})``;
- ``stdio call`` / ``http call``: the same call as the tool ``<service>.Greeter.SayHello``
  through a ``micro mcp`` process, with the MCP SDK's own client (stdio: the client spawns
  it; http: Streamable HTTP at ``/mcp``; both with the client's response cache off);
- ``stdio list`` / ``http list``: ``tools/list`` (the 100 endpoint tools and the built-ins);
- ``gateway call`` / ``gateway list``: the gateway's own work, in this process: the
  ``tools/call`` handler (checks, argument validation, the RPC through the same
  ``micro.Client``, the result) and the ``tools/list`` handler plus the dump of its result
  to wire JSON, without the SDK's transport and JSON-RPC layers.

It prints p50/p99 (ms) and calls/s of each, and the goals (the gateway adds under 1 ms to a
call at p50; it lists 100 tools in under 1 ms) with whether each is met. A benchmark, not a
test: it exits 0 unless a phase failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from benchmarks.gateway import free_port

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
REQUEST = {"name": "John"}


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("MICRO_")}
    out.update(
        PYTHONPATH=f"{ROOT}:{ROOT / 'src'}",
        MICRO_MDNS_INTERFACES="127.0.0.1",
        MICRO_SERVER_ADDRESS="127.0.0.1:0",
    )
    return out


async def measure(call: Callable[[], Awaitable[Any]], seconds: float) -> dict[str, float]:
    """Sequential calls for ``seconds`` (after a short warm-up): p50, p99 (ms), calls/s."""
    warm = time.perf_counter() + min(0.5, seconds / 4)
    while time.perf_counter() < warm:
        await call()
    samples: list[float] = []
    start = time.perf_counter()
    end = start + seconds
    while (now := time.perf_counter()) < end:
        await call()
        samples.append(time.perf_counter() - now)
    elapsed = time.perf_counter() - start
    samples.sort()
    return {
        "p50_ms": statistics.median(samples) * 1000,
        "p99_ms": samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1000,
        "per_s": len(samples) / elapsed,
        "n": len(samples),
    }


async def wait_tools(list_tools: Callable[[], Awaitable[Any]], service: str, want: int) -> int:
    """Wait until the listing has the service's ``want`` tools; the listing's size."""
    deadline = time.monotonic() + 30
    while True:
        tools = (await list_tools()).tools
        if sum(t.name.startswith(service + ".") for t in tools) >= want:
            return len(tools)
        assert time.monotonic() < deadline, f"{service}'s {want} tools never listed"
        await asyncio.sleep(0.2)


async def check_call(call: Callable[[], Awaitable[Any]]) -> None:
    """Fail the run when the measured call does not succeed (a tool error is no figure)."""
    result = await call()
    assert not getattr(result, "is_error", False), result


async def run(args: argparse.Namespace) -> dict[str, Any]:
    import httpx2
    from mcp import Client, StdioServerParameters
    from mcp.client.streamable_http import streamable_http_client

    import micro

    service = f"bench-mcp-{uuid.uuid4().hex[:6]}.svc"
    tool = f"{service}.Greeter.SayHello"
    want = args.ops + 1
    results: dict[str, Any] = {}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(subprocess.Popen(
            [PY, str(ROOT / "benchmarks/_mcp_service.py"), "--server_name", service,
             "--ops", str(args.ops)], env=env(), stderr=subprocess.DEVNULL,
        ))  # fmt: skip
        os.environ.update(MICRO_MDNS_INTERFACES="127.0.0.1")
        async with micro.Client() as client:
            deadline = time.monotonic() + 20
            while True:
                try:
                    await client.call(service, "Greeter.SayHello", REQUEST, timeout=2)
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.2)
            results["direct"] = await measure(
                lambda: client.call(service, "Greeter.SayHello", REQUEST), args.seconds
            )
            results.update(await _in_process(client, service, tool, want, args.seconds))

        quiet = ["--no-audit-log", "--no-access-log", "--log-level", "warning"]
        params = StdioServerParameters(
            command=PY, args=["-m", "micro.toolkit.mcp", *quiet], env=env(), cwd=str(ROOT)
        )
        async with Client(params, cache=None) as mcp:
            results["tools"] = await wait_tools(mcp.list_tools, service, want)
            await check_call(lambda: mcp.call_tool(tool, REQUEST))
            results["stdio call"] = await measure(
                lambda: mcp.call_tool(tool, REQUEST), args.seconds
            )
            results["stdio list"] = await measure(mcp.list_tools, args.seconds)

        port = free_port()
        procs.append(subprocess.Popen(
            [PY, "-m", "micro.toolkit.mcp", "--address", f"127.0.0.1:{port}", *quiet],
            env=env(), cwd=ROOT,
        ))  # fmt: skip
        async with httpx2.AsyncClient(timeout=30) as http:
            deadline = time.monotonic() + 20
            while True:
                try:
                    if (await http.get(f"http://127.0.0.1:{port}/health")).status_code == 200:
                        break
                except httpx2.HTTPError:
                    pass
                assert time.monotonic() < deadline, "micro mcp --address did not start"
                await asyncio.sleep(0.1)
            transport = streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http)
            async with Client(transport, cache=None) as mcp:
                await wait_tools(mcp.list_tools, service, want)
                await check_call(lambda: mcp.call_tool(tool, REQUEST))
                results["http call"] = await measure(
                    lambda: mcp.call_tool(tool, REQUEST), args.seconds
                )
                results["http list"] = await measure(mcp.list_tools, args.seconds)
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    return results


async def _in_process(client: Any, service: str, tool: str, want: int, seconds: float) -> Any:
    """The gateway's handlers called directly, over the same client and registry."""
    import mcp_types as types

    from micro.toolkit.mcp import McpGateway, McpOptions

    gateway = McpGateway(McpOptions(audit_log=False), client=client)
    await gateway.start()
    try:
        ctx: Any = SimpleNamespace(request=None)
        deadline = time.monotonic() + 30
        while sum(e.service == service for e in gateway.index.tools.values()) < want:
            assert time.monotonic() < deadline, f"{service}'s tools never indexed"
            await asyncio.sleep(0.2)
        params = types.CallToolRequestParams(name=tool, arguments=REQUEST)
        await check_call(lambda: gateway.calls.call_tool(ctx, params))

        async def listed() -> None:
            result = await gateway.calls.list_tools(ctx, None)
            result.model_dump(by_alias=True, mode="json", exclude_none=True)

        return {
            "gateway call": await measure(lambda: gateway.calls.call_tool(ctx, params), seconds),
            "gateway list": await measure(listed, seconds),
        }
    finally:
        await gateway.close()


def report(results: dict[str, Any]) -> str:
    rows = ["direct", "gateway call", "stdio call", "http call", "gateway list", "stdio list",
            "http list"]  # fmt: skip
    lines = [
        f"micro mcp, {results.get('tools', '?')} tools listed (endpoints + built-ins)",
        "",
        f"| {'measure':<13} | {'p50 ms':>7} | {'p99 ms':>7} | {'calls/s':>8} |",
        f"|{'-' * 15}|{'-' * 9}:|{'-' * 9}:|{'-' * 10}:|",
    ]
    for name in rows:
        r = results[name]
        lines.append(
            f"| {name:<13} | {r['p50_ms']:7.3f} | {r['p99_ms']:7.3f} | {r['per_s']:8,.0f} |"
        )
    direct = results["direct"]["p50_ms"]
    own = results["gateway call"]["p50_ms"] - direct
    lines += ["", "goals:"]
    lines.append(f"  gateway adds to a call, own work: {own:+.3f} ms (goal < 1 ms: "
                 f"{'met' if own < 1 else 'not met'})")  # fmt: skip
    for era in ("stdio", "http"):
        added = results[f"{era} call"]["p50_ms"] - direct
        lines.append(f"  gateway adds to a call, {era} with the SDK client: {added:+.3f} ms "
                     f"(goal < 1 ms: {'met' if added < 1 else 'not met'})")  # fmt: skip
    for name in ("gateway list", "stdio list", "http list"):
        p50 = results[name]["p50_ms"]
        lines.append(f"  {name} of 100 tools: {p50:.3f} ms (goal < 1 ms: "
                     f"{'met' if p50 < 1 else 'not met'})")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mcp", description=__doc__.split(
        "\n")[0])  # fmt: skip
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement (2)")
    parser.add_argument("--ops", type=int, default=99, help="endpoints beside SayHello (99)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    results = asyncio.run(run(args))
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
