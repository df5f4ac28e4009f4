"""Types and handlers the server tests serve (module level, so annotations resolve)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, TypedDict

import msgspec
import pydantic

from micro import errors, metadata
from micro.server import Stream


class HelloRequest(msgspec.Struct):
    name: str


class HelloResponse(msgspec.Struct):
    msg: str


class Inner(msgspec.Struct):
    qty: int


class Order(msgspec.Struct):
    id: str
    items: list[Inner]


@dataclass
class DataRequest:
    count: int
    label: str = "x"


class Typed(TypedDict):
    value: float


class PydanticRequest(pydantic.BaseModel):
    age: int


class Say:
    """Mirrors the Go greeter whose bytes were captured (service go.micro.srv.greeter)."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.finished = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.thread_names: list[str] = []

    async def hello(self, req: HelloRequest) -> HelloResponse:
        return HelloResponse(msg=f"Hello {req.name}")

    async def fail(self, req: HelloRequest) -> HelloResponse:
        raise errors.BadRequest(f'bad name "{req.name}"', id="go.micro.srv.greeter")

    async def boom(self, req: HelloRequest) -> HelloResponse:
        raise ValueError("boom")

    async def anonymous_error(self) -> None:
        raise errors.Forbidden("no")

    async def slow(self, req: HelloRequest) -> HelloResponse:
        self.started.set()
        try:
            await asyncio.sleep(float(req.name or "30"))
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        self.finished.set()
        return HelloResponse(msg="slow done")

    async def stubborn(self) -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            return "finished anyway"  # swallows the cancellation: still a 408
        return "slept"

    async def own_timeout(self) -> str:
        try:
            async with asyncio.timeout(0.01):
                await asyncio.sleep(1)
        except TimeoutError:
            return "own timeout"
        return "no timeout"

    def blocking(self, req: HelloRequest) -> HelloResponse:
        self.thread_names.append(threading.current_thread().name)
        return HelloResponse(msg=f"sync {req.name} {metadata.get_value('X-User', '-')}")

    async def whoami(self) -> dict[str, Any]:
        return {"metadata": dict(metadata.get())}

    async def order(self, req: Order) -> int:
        return sum(item.qty for item in req.items)

    async def data(self, req: DataRequest) -> str:
        return f"{req.label}{req.count}"

    async def typed(self, req: Typed) -> float:
        return req["value"] * 2

    async def pyd(self, req: PydanticRequest) -> int:
        return req.age + 1

    async def maybe(self, req: HelloRequest | None = None) -> str:
        return "none" if req is None else req.name

    async def raw(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"got": req}

    async def unencodable(self) -> object:
        return object()

    async def stream(self, stream: Stream[HelloRequest, HelloResponse]) -> None:
        """Go's Say.Stream: receive one request, answer it three times."""
        req = await stream.recv()
        for i in range(3):
            await stream.send(HelloResponse(msg=f"Hello {req.name} #{i}"))

    async def echo(self, stream: Stream[HelloRequest, HelloResponse]) -> None:
        async for req in stream:
            await stream.send(HelloResponse(msg=f"echo {req.name}"))
        await stream.send(HelloResponse(msg="bye"))

    async def count(self, req: HelloRequest) -> AsyncIterator[HelloResponse]:
        for i in range(int(req.name)):
            yield HelloResponse(msg=f"#{i}")

    async def ticks(self) -> AsyncIterator[HelloResponse]:
        """A server stream that takes no request."""
        for i in range(2):
            yield HelloResponse(msg=f"tick {i}")

    async def count_then_fail(self, req: HelloRequest) -> AsyncIterator[HelloResponse]:
        yield HelloResponse(msg="first")
        raise errors.Conflict("second failed")

    async def watch(self, req: HelloRequest) -> AsyncIterator[HelloResponse]:
        yield HelloResponse(msg="watching")
        self.started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        yield HelloResponse(msg="never")

    async def hang(self, stream: Stream[HelloRequest, HelloResponse]) -> None:
        self.started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise

    def _private(self) -> None:
        raise AssertionError("never served")
