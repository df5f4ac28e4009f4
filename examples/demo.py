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
import signal
import sys
import time
from pathlib import Path

from micro.errors import ServiceNotFound
from micro.registry import Registry

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def say(text: str) -> None:
    print(f"\n\033[1m==> {text}\033[0m", flush=True)


async def wait_for(registry: Registry, name: str, seconds: float = 10.0) -> list[object]:
    deadline = time.monotonic() + seconds
    while True:
        try:
            return list(await registry.get_service(name))
        except ServiceNotFound:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


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


async def main() -> int:
    from micro.registry.mdns import MdnsRegistry

    env = dict(os.environ)
    say("Starting the greeter service in its own process: python examples/greeter/server.py")
    server = await asyncio.create_subprocess_exec(
        PY, str(ROOT / "examples/greeter/server.py"), env=env
    )
    try:
        async with MdnsRegistry() as registry:
            started = time.monotonic()
            services = await wait_for(registry, "greeter")
            say(f"Found it over mDNS in {time.monotonic() - started:.2f} s:")
            for svc in services:
                for node in svc.nodes:  # type: ignore[attr-defined]
                    print(f"   greeter {svc.version} node {node.id} at {node.address}")  # type: ignore[attr-defined]
                for ep in svc.endpoints:  # type: ignore[attr-defined]
                    print(f"   endpoint {ep.name}")
            address = services[0].nodes[0].address  # type: ignore[attr-defined]

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

            say("Calling it the way curl does (plain HTTP POST with Micro-* headers):")
            print(
                f"   curl -H 'Content-Type: application/json' -H 'Micro-Service: greeter' \\\n"
                f"        -H 'Micro-Endpoint: Greeter.SayHello' -d '{{\"name\": \"curl\"}}' "
                f"http://{address}/"
            )
            status, _, body = await asyncio.to_thread(curl_like, address)
            print(f"   HTTP {status}: {json.loads(body)}")

            say("Stopping the service with SIGTERM: it deregisters and drains")
            server.send_signal(signal.SIGTERM)
            await asyncio.wait_for(server.wait(), 15)
            try:
                await registry.get_service("greeter")
                print("   greeter is still registered (unexpected)")
                return 1
            except ServiceNotFound:
                print("   greeter is gone from the registry")
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()
    say("Done. Next: examples/streaming, docs/, and `scripts/test` for the whole suite.")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
