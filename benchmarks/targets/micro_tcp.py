"""``micro-tcp``: micro over its own ``tcp`` transport (streams multiplexed on one connection).

The same greeter as :mod:`benchmarks.targets.micro_http`, with ``transport="tcp"`` on both
sides; the client's 64 calls in flight share one TCP connection.
"""

from collections.abc import Awaitable, Callable
from typing import Any

import micro
from benchmarks.harness import REQUEST, Client, Target
from benchmarks.targets.micro_http import ENDPOINT, SERVICE, Greeter, MicroTarget, format_address


async def open_server() -> tuple[str, Callable[[], Awaitable[None]]]:
    service = micro.Service(SERVICE, address="127.0.0.1:0", registry="memory", transport="tcp")
    service.handle(Greeter())
    await service.start()
    return format_address(service.server.address), service.stop


class MicroTcpTarget(MicroTarget):
    name = "micro-tcp"
    title = "micro tcp transport (own framing, multiplexed streams)"
    server_module = __name__
    import_probes: dict[str, str] = {}

    async def make_client(self, address: str) -> Client:
        client = micro.Client(registry="memory", transport="tcp")

        async def call() -> Any:
            return await client.call(SERVICE, ENDPOINT, REQUEST, address=address)

        return Client(call=call, close=client.close)


TARGET: Target = MicroTcpTarget()
