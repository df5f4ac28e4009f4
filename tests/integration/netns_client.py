"""Client half of tests/integration/test_netns.py: find a service, call each node, report JSON.

    python netns_client.py NAME NODES     # registry, interfaces... from MICRO_* env vars

Waits (up to 20 s) until NAME has NODES nodes, calls Greeter.SayHello on each node by address
and once through the selector, and prints ``{"nodes": [...], "replies": {...}, "selected": ...}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import micro
from micro.errors import ServiceNotFound


async def main(name: str, want: int) -> None:
    async with micro.Client(timeout=3.0) as client:
        registry = client.registry
        assert registry is not None
        deadline = time.monotonic() + 20
        addresses: list[str] = []
        while len(addresses) < want:
            if time.monotonic() > deadline:
                raise SystemExit(f"found {addresses} of {name}, wanted {want} nodes")
            try:
                found = await registry.get_service(name)
                addresses = sorted(n.address for s in found for n in s.nodes)
            except ServiceNotFound:
                pass
            await asyncio.sleep(0.1)
        replies = {}
        for address in addresses:
            rsp = await client.call(name, "Greeter.SayHello", {"name": address}, address=address)
            replies[address] = rsp["msg"]
        selected = await client.call(name, "Greeter.SayHello", {"name": "selector"})
        print(json.dumps({"nodes": addresses, "replies": replies, "selected": selected["msg"]}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
