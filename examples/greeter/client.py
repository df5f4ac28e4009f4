"""Call the greeter: finds it in the registry (mDNS by default) and calls Greeter.SayHello.

python examples/greeter/client.py John
"""

from __future__ import annotations

import asyncio
import sys

import micro


async def main(name: str) -> None:
    async with micro.Client() as client:
        rsp = await client.call("greeter", "Greeter.SayHello", {"name": name}, timeout=2.0)
        print(rsp["msg"])


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "John"))
