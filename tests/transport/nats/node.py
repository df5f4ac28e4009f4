"""A node for the kill and restart tests: serves ``Node.Hang`` (never answers) and
``Node.Who`` over the nats transport, prints its address, runs until killed.

    python -m tests.transport.nats.node NATS_URL NAME
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from micro.registry.memory import MemoryRegistry
from micro.server.rpc import RpcServer
from micro.transport.nats import NatsTransport


class Node:
    def __init__(self, name: str) -> None:
        self.name = name

    async def hang(self, req: dict[str, Any]) -> dict[str, Any]:
        print("hanging", flush=True)
        await asyncio.Event().wait()
        return {}

    async def who(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"node": self.name}


async def serve(url: str, name: str) -> None:
    server = RpcServer(
        name="nodes",
        address=":0",
        transport=NatsTransport(address=url),
        registry=MemoryRegistry(),
        register_interval=0,
    )
    server.handle(Node(name))
    await server.start()
    print(server.address, flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], sys.argv[2]))
