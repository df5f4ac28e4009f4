"""The quick-start demo: a greeter service in one process, called from another.

Run with ``scripts/demo``. It starts ``examples/greeter/server.py``, looks the service up
over mDNS, calls it from a second process (``examples/greeter/client.py``) and with a raw
HTTP request as curl would send it, then stops the service and shows it leave the registry.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

from micro.errors import ServiceNotFound
from micro.registry import Registry

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
SERVING = re.compile(rb"serving on \S+ as (\S+)")


def say(text: str) -> None:
    print(f"\n\033[1m==> {text}\033[0m", flush=True)


async def nodes_of(registry: Registry, name: str) -> dict[str, tuple[Any, Any]]:
    """node id -> (service, node) for every registered node of ``name``."""
    try:
        services = await registry.get_service(name)
    except ServiceNotFound:
        return {}
    return {node.id: (svc, node) for svc in services for node in svc.nodes}


async def wait_for_node(registry: Registry, name: str, node_id: str) -> tuple[Any, Any]:
    """Our node of ``name`` (other greeters on the machine may be registered too)."""
    deadline = time.monotonic() + 10.0
    while (found := (await nodes_of(registry, name)).get(node_id)) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} node {node_id} not found over mDNS")
        await asyncio.sleep(0.1)
    return found


async def node_id_from(log: asyncio.StreamReader, seen: list[bytes]) -> str:
    """Echo the server's log lines and return the node id of its "serving on" line."""
    while line := await log.readline():
        seen.append(line)
        sys.stderr.write(line.decode(errors="replace"))
        if match := SERVING.search(line):
            return match[1].decode()
    raise RuntimeError("the greeter exited before serving:\n" + b"".join(seen).decode())


async def echo(log: asyncio.StreamReader) -> None:
    while line := await log.readline():
        sys.stderr.write(line.decode(errors="replace"))


def curl_like(address: str) -> tuple[int, dict[str, str], bytes]:
    host, _, port = address.rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    headers = {
        "Content-Type": "application/json",
        "Micro-Service": "greeter",
        "Micro-Endpoint": "Greeter.SayHello",
    }
    conn.request("POST", "/", body=b'{"name": "curl"}', headers=headers)
    rsp = conn.getresponse()
    return rsp.status, dict(rsp.getheaders()), rsp.read()


async def call_with_cli(env: dict[str, str]) -> int:
    """``micro call greeter Greeter.SayHello`` in a subprocess; its output indented."""
    micro = Path(PY).with_name("micro")
    cli = await asyncio.create_subprocess_exec(
        str(micro), "call", "greeter", "Greeter.SayHello", '{"name": "cli"}',
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(cli.communicate(), 30)
    print("  ", output.decode().strip().replace("\n", "\n   "))
    return cli.returncode or 0


async def main() -> int:
    from micro.registry.mdns import MdnsRegistry

    env = dict(os.environ)
    say("Starting the greeter service in its own process: python examples/greeter/server.py")
    server = await asyncio.create_subprocess_exec(
        PY, str(ROOT / "examples/greeter/server.py"), env=env, stderr=asyncio.subprocess.PIPE
    )
    assert server.stderr is not None
    echoing: asyncio.Task[None] | None = None
    try:
        started = time.monotonic()
        node_id = await asyncio.wait_for(node_id_from(server.stderr, []), 30)
        echoing = asyncio.create_task(echo(server.stderr))
        async with MdnsRegistry() as registry:
            svc, node = await wait_for_node(registry, "greeter", node_id)
            say(f"Found it over mDNS in {time.monotonic() - started:.2f} s:")
            print(f"   greeter {svc.version} node {node.id} at {node.address}")
            for ep in svc.endpoints:
                print(f"   endpoint {ep.name}")
            address = node.address

            say("Calling Greeter.SayHello from a second process: python examples/greeter/client.py")
            started = time.monotonic()
            client = await asyncio.create_subprocess_exec(
                PY,
                str(ROOT / "examples/greeter/client.py"),
                "John",
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            output, _ = await asyncio.wait_for(client.communicate(), 30)
            print("  ", output.decode().strip())
            took = time.monotonic() - started
            print(f"   (a fresh process started, discovered, called and exited in {took:.2f} s)")
            if client.returncode != 0:
                return client.returncode or 1

            transport = node.metadata.get("transport", "http")
            if transport == "http":
                say("Calling it the way curl does (plain HTTP POST with Micro-* headers):")
                print(
                    f"   curl -H 'Content-Type: application/json' -H 'Micro-Service: greeter' "
                    f"\\\n        -H 'Micro-Endpoint: Greeter.SayHello' "
                    f'-d \'{{"name": "curl"}}\' http://{address}/'
                )
                status, _, body = await asyncio.to_thread(curl_like, address)
                print(f"   HTTP {status}: {json.loads(body)}")
            else:  # curl speaks HTTP only; the micro command speaks every transport
                say(f"Calling it with the micro command (the node speaks {transport}, not HTTP):")
                print("""   micro call greeter Greeter.SayHello '{"name": "cli"}'""")
                status = await call_with_cli(env)
                if status != 0:
                    return status

            say("Stopping the service with SIGTERM: it deregisters and drains")
            server.send_signal(signal.SIGTERM)
            await asyncio.wait_for(server.wait(), 15)
            if node_id in await nodes_of(registry, "greeter"):
                print(f"   greeter node {node_id} is still registered (unexpected)")
                return 1
            print(f"   greeter node {node_id} is gone from the registry")
    finally:
        if echoing is not None:
            echoing.cancel()
        if server.returncode is None:
            server.kill()
            await server.wait()
    say("Done. Next: examples/streaming, docs/, and `scripts/test` for the whole suite.")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
