"""Another process for the mDNS tests (run as a script, never imported by pytest).

python mdns_peer.py register NAME TTL INTERVAL   # prints "ready", re-registers forever
python mdns_peer.py lookup NAME                  # prints {"elapsed": s, "nodes": [...]}
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

STARTED = time.monotonic()

from micro.registry import Endpoint, Node, Service  # noqa: E402
from micro.registry.mdns import MdnsRegistry  # noqa: E402


async def register(name: str, ttl: float, interval: float) -> None:
    node = Node(f"{name}-node", "127.0.0.1:50061", {"protocol": "mucp"})
    service = Service(name, "1.0.0", {}, [Endpoint("Say.Hello")], [node])
    async with MdnsRegistry() as registry:
        await registry.register(service, ttl=ttl)
        print("ready", flush=True)
        while True:
            await asyncio.sleep(interval)
            await registry.register(service, ttl=ttl)


async def lookup(name: str) -> None:
    imported = time.monotonic()
    async with MdnsRegistry() as registry:
        services = await registry.get_service(name)
    done = time.monotonic()
    nodes = [n.address for s in services for n in s.nodes]
    report = {"elapsed": done - imported, "since_start": done - STARTED, "nodes": nodes}
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "register":
        asyncio.run(register(sys.argv[2], float(sys.argv[3]), float(sys.argv[4])))
    else:
        asyncio.run(lookup(sys.argv[2]))
