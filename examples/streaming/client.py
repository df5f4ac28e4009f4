"""Use both streams of the counter service.

python examples/streaming/client.py
"""

from __future__ import annotations

import asyncio

import micro


async def main() -> None:
    async with micro.Client() as client:
        async with client.stream("counter", "Counter.Count", {"to": 3}) as stream:
            async for tick in stream:
                print("tick", tick["n"])
        async with client.stream("counter", "Counter.Echo") as stream:
            for text in ("hello", "streams"):
                await stream.send({"text": text})
                print("echo", (await stream.recv())["text"])
            await stream.close_send()


if __name__ == "__main__":
    asyncio.run(main())
