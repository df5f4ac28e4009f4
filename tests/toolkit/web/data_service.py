"""A service for the dashboard's data tests: typed calls, a stream that records its end,
a subscriber that records events.

    python data_service.py --server_name NAME --record FILE [--topic TOPIC]

``--record`` gets one JSON line per thing seen: ``{"cancelled": n}`` when a
``Ticker.Ticks`` stream is cancelled after tick n, ``{"event": ...}`` per event on
``--topic``. The service also serves the greeter and the gateway tests' ``Calc``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from msgspec import Struct

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import micro
from examples.greeter.server import Greeter
from tests.toolkit.api.services import Calc


class TicksRequest(Struct):
    to: int
    delay: float = 0.05


class Tick(Struct):
    n: int


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--record", required=True)
    parser.add_argument("--topic", default="")
    ours, rest = parser.parse_known_args(argv)

    def record(obj: Any) -> None:
        with open(ours.record, "a", encoding="utf-8") as f:
            f.write(json.dumps(obj) + "\n")

    class Ticker:
        async def ticks(self, req: TicksRequest) -> AsyncIterator[Tick]:
            """Send 1..to; a cancelled stream is recorded."""
            n = 0
            try:
                for n in range(1, req.to + 1):
                    await asyncio.sleep(req.delay)
                    yield Tick(n=n)
            except (asyncio.CancelledError, GeneratorExit):
                record({"cancelled": n})
                raise

    service = micro.Service()
    service.handle(Greeter())
    service.handle(Calc())
    service.handle(Ticker())
    if ours.topic:

        @service.subscribe(ours.topic)
        async def on_event(event: dict[str, Any]) -> None:
            record({"event": event})

    service.run(rest)


if __name__ == "__main__":
    main(sys.argv[1:])
