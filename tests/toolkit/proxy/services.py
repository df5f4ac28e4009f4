"""Handlers the proxy tests serve besides the gateway tests' ones."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any


class Ticker:
    """A stream that runs until its caller goes; ``ended`` is set when it does."""

    ended = asyncio.Event()

    async def forever(self, req: dict[str, Any]) -> AsyncIterator[dict[str, int]]:
        Ticker.ended = asyncio.Event()
        n = 0
        try:
            while True:
                n += 1
                yield {"n": n}
                await asyncio.sleep(0.05)
        finally:
            Ticker.ended.set()
