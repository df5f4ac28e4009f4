"""A node on the rabbitmq transport in a process of its own, for tests that SIGKILL it.

    python -m tests.transport.rabbitmq.node <amqp url> <exchange>

Prints ``address <queue>`` once serving, and ``holding`` when ``Node.Hold`` is called (which
then never answers).
"""

from __future__ import annotations

import asyncio
import sys

from msgspec import Struct

from micro.registry.memory import MemoryRegistry
from micro.server.rpc import RpcServer
from micro.transport.rabbitmq import RabbitmqTransport


class Empty(Struct):
    pass


class Node:
    async def hold(self, req: Empty) -> Empty:
        print("holding", flush=True)
        await asyncio.sleep(3600)
        return Empty()


async def main(url: str, exchange: str) -> None:
    transport = RabbitmqTransport(address=url, exchange=exchange)
    server = RpcServer(
        name="rmq.node", address=":0", transport=transport, registry=MemoryRegistry()
    )
    server.handle(Node())
    await server.start()
    print("address", server.address, flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
