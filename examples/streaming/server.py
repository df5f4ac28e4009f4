"""Streaming endpoints: a server stream (Counter.Count) and a bidirectional one (Counter.Echo).

python examples/streaming/server.py
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from msgspec import Struct

import micro
from micro.server import Stream


class CountRequest(Struct):
    to: int
    delay: float = 0.05


class Tick(Struct):
    n: int


class Line(Struct):
    text: str


class Counter:
    async def count(self, req: CountRequest) -> AsyncIterator[Tick]:
        """Send 1..to, one message each."""
        for n in range(1, req.to + 1):
            await asyncio.sleep(req.delay)
            yield Tick(n=n)

    async def echo(self, stream: Stream[Line, Line]) -> None:
        """Answer every line the client sends, upper-cased, until it ends its side."""
        async for line in stream:
            await stream.send(Line(text=line.text.upper()))


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    service = micro.Service("counter")
    service.handle(Counter())
    service.run()


if __name__ == "__main__":
    main()
