"""micro.testing.serve: the real server and client on memory backends."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from msgspec import Struct

from micro import errors, metadata
from micro.testing import serve


class HelloRequest(Struct):
    name: str


class Greeter:
    async def say_hello(self, req: HelloRequest) -> dict[str, str]:
        user = metadata.get_value("X-User", "nobody")
        return {"msg": f"Hello {req.name}", "user": user or ""}

    async def count(self, req: dict[str, int]) -> AsyncIterator[dict[str, int]]:
        for n in range(req["to"]):
            yield {"n": n}


async def test_serve_calls_validates_and_carries_metadata() -> None:
    async with serve(Greeter(), name="greeter") as client:
        with metadata.context({"X-User": "ann"}):
            rsp = await client.call("greeter", "Greeter.SayHello", {"name": "Jo"})
        assert rsp == {"msg": "Hello Jo", "user": "ann"}
        with pytest.raises(errors.BadRequest, match=r"\$\.name"):
            await client.call("greeter", "Greeter.SayHello", {"name": 1})
        with pytest.raises(errors.NotFound):
            await client.call("greeter", "Greeter.Nope", {})
        with pytest.raises(errors.ServiceNotFound):
            await client.call("nobody", "Greeter.SayHello", {}, retries=0)


async def test_serve_streams() -> None:
    async with (
        serve(Greeter(), name="greeter") as client,
        client.stream("greeter", "Greeter.Count", {"to": 3}) as stream,
    ):
        assert [msg["n"] async for msg in stream] == [0, 1, 2]


async def test_contract_suites_are_exported() -> None:
    import micro.testing as testing

    assert callable(testing.check_registry)
    assert callable(testing.check_transport)
    with pytest.raises(AttributeError):
        _ = testing.check_nothing
