"""A service that fails on purpose, plus a ghost node at a dead address (for CLI tests).

python failing_service.py --server_name NAME

Endpoints: Failing.Fail raises a 500, Failing.Slow sleeps longer than any test timeout.
After start it also registers a second node of NAME at a loopback port nothing listens on,
so that ``micro health NAME`` sees one live node and one dead one.
"""

from __future__ import annotations

import asyncio
import socket
import sys

from msgspec import Struct

import micro
from micro.errors import InternalServerError
from micro.registry import Node
from micro.registry import Service as Record
from micro.registry.mdns import MdnsRegistry


class Empty(Struct):
    pass


class Failing:
    async def fail(self, req: Empty) -> Empty:
        raise InternalServerError("it failed on purpose", id="failing")

    async def slow(self, req: Empty) -> Empty:
        await asyncio.sleep(30)
        return Empty()


def dead_address() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def main(argv: list[str]) -> None:
    registry = MdnsRegistry()
    service = micro.Service(registry=registry)
    service.handle(Failing())

    @service.hook("after_start")
    async def ghost() -> None:
        node = Node(id=f"{service.name}-ghost", address=dead_address())
        await registry.register(Record(name=service.name, nodes=[node]), ttl=60)

    service.run(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
