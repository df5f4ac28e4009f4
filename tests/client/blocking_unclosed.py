"""Run as a script: serve Debug on a loop thread, call it with a BlockingClient that is never
closed, and exit. Nothing may be written to stderr (tests/client/test_sync.py).

python tests/client/blocking_unclosed.py SERVICE_NAME
"""

from __future__ import annotations

import asyncio
import sys
import threading

from micro.client.sync import BlockingClient
from micro.registry.mdns import MdnsRegistry
from micro.server.rpc import RpcServer
from micro.transport.http import HttpTransport


async def stop(server: RpcServer) -> None:
    await server.stop()
    await server.registry.close()
    await server.transport.close()
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)


def main(name: str) -> None:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = RpcServer(
        name=name, address="127.0.0.1:0", transport=HttpTransport(), registry=MdnsRegistry()
    )
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)

    client = BlockingClient()  # the registry from the environment: mdns, on loopback
    print(client.call(name, "Debug.Health", {}))

    asyncio.run_coroutine_threadsafe(stop(server), loop).result(10)  # the server is tidy
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


if __name__ == "__main__":
    main(sys.argv[1])
