"""The examples work as their docstrings say (in-process, on memory backends)."""

from __future__ import annotations

from examples.greeter.server import Greeter
from examples.streaming.server import Counter
from micro.testing import serve


async def test_greeter_example() -> None:
    async with serve(Greeter(), name="greeter") as client:
        assert await client.call("greeter", "Greeter.SayHello", {"name": "Ann"}) == {
            "msg": "Hello Ann"
        }


async def test_streaming_example_server_stream() -> None:
    async with serve(Counter(), name="counter") as client:
        req = {"to": 4, "delay": 0}
        async with client.stream("counter", "Counter.Count", req) as stream:
            assert [tick["n"] async for tick in stream] == [1, 2, 3, 4]


async def test_streaming_example_bidi_stream() -> None:
    async with serve(Counter(), name="counter") as client:
        async with client.stream("counter", "Counter.Echo") as stream:
            for text in ("hello", "streams"):
                await stream.send({"text": text})
                assert (await stream.recv())["text"] == text.upper()
            await stream.close_send()
            assert [line async for line in stream] == []
