"""A service with a slow endpoint, for drain and crash tests (run as a subprocess)."""

from __future__ import annotations

import asyncio
import sys

from msgspec import Struct

import micro


class SleepRequest(Struct):
    seconds: float


class Sleeper:
    async def sleep(self, req: SleepRequest) -> dict[str, float]:
        await asyncio.sleep(req.seconds)
        return {"slept": req.seconds}


if __name__ == "__main__":
    service = micro.Service()
    service.handle(Sleeper())
    service.run(sys.argv[1:])
