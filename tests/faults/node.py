"""One node of the fault tests: a real server process on loopback; prints its address.

Its handlers model what the faults need: ``Fault.Hello`` answers at once (or after the delay
``Fault.SetDelay`` sets: a node gone slow), and ``Fault.Work`` holds one of ``FAULT_SLOTS``
worker slots for ``FAULT_WORK`` seconds (a fixed capacity, such as a database pool), so
that calls past the capacity queue. ``MICRO_RESILIENCE_*`` settings apply as in any service.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from micro.registry.memory import MemoryRegistry
from micro.server.rpc import RpcServer


class Fault:
    def __init__(self) -> None:
        self.delay = 0.0
        self.slots = asyncio.Semaphore(int(os.environ.get("FAULT_SLOTS", "8")))
        self.work_seconds = float(os.environ.get("FAULT_WORK", "0.05"))

    async def hello(self, req: dict[str, Any]) -> dict[str, Any]:
        if self.delay:
            await asyncio.sleep(self.delay)
        return {"pid": os.getpid()}

    async def set_delay(self, req: dict[str, Any]) -> dict[str, Any]:
        self.delay = float(req["seconds"])
        return {}

    async def work(self, req: dict[str, Any]) -> dict[str, Any]:
        async with self.slots:
            await asyncio.sleep(self.work_seconds)
        return {}


async def main() -> None:
    server = RpcServer(name="faults", address="127.0.0.1:0", registry=MemoryRegistry())
    server.handle(Fault())
    await server.start()
    print(server.address, flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
