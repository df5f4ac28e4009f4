"""A service for the ``micro mcp`` tests: examples/greeter's Greeter plus ``Tools``.

python tools_service.py --server_name NAME

Tools.Lookup is marked safe (read-only mode offers it); Tools.Fail answers a 404 service
error; Tools.Sum takes a list (a request MCP must wrap); Tools.Names returns a list (a result
it must wrap); Tools.Big returns ``size`` bytes; Tools.Slow sleeps ``seconds``.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from msgspec import Struct

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import micro
from examples.greeter.server import Greeter
from micro.errors import NotFound


class Key(Struct):
    key: str


class Item(Struct):
    key: str
    value: int


class Size(Struct):
    size: int


class Seconds(Struct):
    seconds: float


class Tools:
    async def lookup(self, req: Key) -> Item:
        """Look an item up by key."""
        return Item(key=req.key, value=len(req.key))

    async def fail(self, req: Key) -> Item:
        """Always fails with a service error."""
        raise NotFound(f"no item {req.key}", id="tools")

    async def sum(self, req: list[int]) -> int:
        """Add numbers up."""
        return sum(req)

    async def names(self, req: Size) -> list[str]:
        return [f"n{i}" for i in range(req.size)]

    async def big(self, req: Size) -> dict[str, str]:
        return {"data": "x" * req.size}

    async def slow(self, req: Seconds) -> Item:
        await asyncio.sleep(req.seconds)
        return Item(key="slow", value=0)


SAFE = {"Tools.Lookup": {"safe": "true"}, "Greeter.SayHello": {"safe": "true"}}

if __name__ == "__main__":
    service = micro.Service()
    service.handle(Greeter(), metadata=SAFE)
    service.handle(Tools(), metadata=SAFE)
    service.run(sys.argv[1:])
