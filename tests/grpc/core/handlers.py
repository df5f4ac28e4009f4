# mypy: disable-error-code="name-defined"
"""Handlers served over gRPC in these tests: msgspec-typed ones, and protobuf-typed ones
built over the stubs generated at test time (``proto_greeter``)."""

# no `from __future__ import annotations`: proto_greeter's annotations are the generated
# classes themselves, which exist only inside the function

import asyncio
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import msgspec

from micro import metadata
from micro.errors import Conflict, NotFound, Timeout
from micro.server import Stream


class HelloRequest(msgspec.Struct):
    name: str


class HelloResponse(msgspec.Struct):
    msg: str


class CountRequest(msgspec.Struct):
    to: int


class Sleep(msgspec.Struct):
    seconds: float


class Greeter:
    """msgspec-typed: served as application/grpc+json."""

    def __init__(self, tag: str = "") -> None:
        self.tag = tag
        self.calls = 0
        self.cancelled = 0

    async def say_hello(self, req: HelloRequest) -> HelloResponse:
        self.calls += 1
        return HelloResponse(msg=f"Hello {req.name}{self.tag}")

    async def count(self, req: CountRequest) -> AsyncIterator[HelloResponse]:
        for i in range(req.to):
            yield HelloResponse(msg=f"#{i}")

    async def chat(self, stream: Stream[HelloRequest, HelloResponse]) -> None:
        async for req in stream:
            await stream.send(HelloResponse(msg=f"Hi {req.name}"))

    async def who(self) -> dict[str, Any]:
        return dict(metadata.get())

    async def fail(self, req: dict[str, Any]) -> None:
        if req.get("kind") == "missing":
            raise NotFound("no such greeting", id="greeter")
        if req.get("kind") == "conflict":
            raise Conflict("already greeted", id="greeter")
        raise RuntimeError("boom")

    async def sleep(self, req: Sleep) -> dict[str, Any]:
        try:
            await asyncio.sleep(req.seconds)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return {"slept": req.seconds, "timeout": metadata.get().get("Timeout")}

    async def slow_stream(self, req: Sleep) -> AsyncIterator[HelloResponse]:
        yield HelloResponse(msg="first")
        await asyncio.sleep(req.seconds)
        yield HelloResponse(msg="late")

    async def raise_timeout(self) -> None:
        raise Timeout("the upstream took too long", id="greeter")


def proto_greeter(pb2: ModuleType) -> object:
    """A handler typed with the generated ``greeter`` messages: application/grpc (proto)."""

    class Greeter:
        async def say_hello(self, req: pb2.HelloRequest) -> pb2.HelloReply:
            caller = metadata.get_value("x-caller") or ""
            return pb2.HelloReply(msg=f"Hello {req.name}{caller}")

        async def count(self, req: pb2.CountRequest) -> AsyncIterator[pb2.HelloReply]:
            for i in range(req.to):
                yield pb2.HelloReply(msg=f"#{i}")

        async def sum(self, stream: Stream[pb2.CountRequest, pb2.HelloReply]) -> None:
            total = 0
            async for req in stream:
                total += req.to
            await stream.send(pb2.HelloReply(msg=str(total)))

        async def chat(self, stream: Stream[pb2.HelloRequest, pb2.HelloReply]) -> None:
            async for req in stream:
                if req.name == "bad":
                    raise NotFound(f"who is {req.name}?", id="greeter")
                await stream.send(pb2.HelloReply(msg=f"Hi {req.name}"))

    return Greeter()
