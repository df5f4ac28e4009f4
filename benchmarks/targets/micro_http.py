"""``micro``: micro's own HTTP transport (go-micro "mucp" over HTTP/1.1), the system under test.

Written against the public API (README.md, "A service" and "Calling")::

    service = micro.Service("bench.greeter", address="127.0.0.1:0", registry="memory",
                            transport="http")
    service.handle(Greeter())
    await service.start()            # then service.server.address is the bound address
    ...
    await service.stop()

    client = micro.Client(registry="memory", transport="http")
    await client.call("bench.greeter", "Greeter.SayHello", {"name": "John"}, address=ADDR)
    await client.close()

If ``import micro`` fails, or ``micro.Service`` / ``micro.Client`` do not resolve yet, the
runner skips this target and says why. ``micro_transports.py`` runs the same service and
client on micro's other transports (``micro-tcp``, ``micro-nats``, ``micro-rabbitmq``).
"""

# No ``from __future__ import annotations``: the handler's annotations stay real classes,
# exactly as in README.md's example (micro should cope with string annotations too).

from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from msgspec import Struct

import micro
from benchmarks.harness import REQUEST, Client, Options, Target

SERVICE = "bench.greeter"
ENDPOINT = "Greeter.SayHello"


class HelloRequest(Struct):
    name: str


class HelloResponse(Struct):
    msg: str


class Greeter:
    async def say_hello(self, req: HelloRequest) -> HelloResponse:
        return HelloResponse(msg=f"Hello {req.name}")


def format_address(address: Any) -> str:
    """``host:port`` from a string or a ``(host, port)`` tuple."""
    if isinstance(address, tuple):
        return f"{address[0]}:{address[1]}"
    return str(address)


async def open_service(transport: str) -> tuple[str, Callable[[], Awaitable[None]]]:
    """Start the greeter on the ``transport`` plugin; return its listener address and stop.

    The address is whatever the transport's listener reports (``host:port`` for http and
    tcp, a subject or a queue name for a broker transport): the client calls exactly that.
    """
    service = micro.Service(SERVICE, address="127.0.0.1:0", registry="memory", transport=transport)
    service.handle(Greeter())
    await service.start()
    return format_address(service.server.address), service.stop


async def open_server() -> tuple[str, Callable[[], Awaitable[None]]]:
    return await open_service(MicroTarget.transport)


class MicroTarget(Target):
    name = "micro"
    title = "micro HTTP transport (mucp over HTTP/1.1)"
    server_module = __name__
    #: The transport plugin (micro.plugins' "transport" table) of both Service and Client;
    #: named, so that ``MICRO_TRANSPORT`` in the environment does not change what is measured.
    transport: ClassVar[str] = "http"
    import_probes = {
        "micro": "import micro",
        "micro (Service+Client)": "import micro; micro.Service; micro.Client",
    }

    def unavailable(self, options: Options) -> str | None:
        try:  # Service and Client are imported lazily by ``micro.__getattr__``
            micro.Service, micro.Client  # noqa: B018
        except (ImportError, AttributeError) as exc:
            return f"micro's API is not ready: {type(exc).__name__}: {exc}"
        return None

    async def make_client(self, address: str) -> Client:
        client = micro.Client(registry="memory", transport=self.transport)

        async def call() -> Any:
            return await client.call(SERVICE, ENDPOINT, REQUEST, address=address)

        return Client(call=call, close=client.close)


TARGET = MicroTarget()
