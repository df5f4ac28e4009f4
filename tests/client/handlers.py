"""Handlers the end-to-end tests serve (module level, so annotations resolve)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgspec

from micro import metadata
from micro.server import Stream


class HelloRequest(msgspec.Struct):
    name: str


class HelloResponse(msgspec.Struct):
    msg: str


class CountRequest(msgspec.Struct):
    to: int


class Item(msgspec.Struct):
    n: int


class Greeter:
    def __init__(self) -> None:
        self.boom_calls = 0
        self.cancelled = asyncio.Event()

    async def say_hello(self, req: HelloRequest) -> HelloResponse:
        return HelloResponse(msg=f"Hello {req.name}")

    async def boom(self, req: dict[str, Any]) -> dict[str, Any]:
        self.boom_calls += 1
        raise ValueError("boom")

    async def slow(self, req: dict[str, Any]) -> dict[str, Any]:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return {}

    async def whoami(self, req: dict[str, Any]) -> dict[str, str]:
        return dict(metadata.get())

    async def count(self, req: CountRequest) -> AsyncIterator[Item]:
        for n in range(req.to):
            yield Item(n)

    async def count_then_fail(self, req: CountRequest) -> AsyncIterator[Item]:
        yield Item(0)
        raise ValueError("ran dry")

    async def chat(self, stream: Stream[Item, Item]) -> None:
        async for item in stream:
            await stream.send(Item(item.n * 10))
