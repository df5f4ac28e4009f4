"""The greeter service: one endpoint, Greeter.SayHello.

python examples/greeter/server.py            # registers over mDNS, serves until Ctrl-C
python examples/greeter/server.py --help     # every flag and its MICRO_* env var
"""

from __future__ import annotations

import logging

from msgspec import Struct

import micro


class HelloRequest(Struct):
    name: str


class HelloResponse(Struct):
    msg: str


class Greeter:
    async def say_hello(self, req: HelloRequest) -> HelloResponse:
        """Greet someone by name."""
        return HelloResponse(msg=f"Hello {req.name}")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    service = micro.Service("greeter", version="1.0.0")
    service.handle(Greeter())
    service.run()


if __name__ == "__main__":
    main()
