"""A service with nested, optional, repeated, map and enum fields and streams (for tests).

Served under the name given by --server_name; the types are importable, so a test can build
the same file in process and compare it with what ``micro proto`` prints.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import micro
from micro.server import Stream


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Item(msgspec.Struct):
    sku: str
    qty: int = 1
    tags: list[str] = []


class Order(msgspec.Struct):
    id: int
    items: list[Item]
    note: str | None = None
    color: Color = Color.RED
    speed: Literal["slow", "fast"] = "slow"
    prices: dict[str, float] = {}
    extra: dict[str, Any] = {}
    payload: bytes = b""
    customerName: str = ""


class Receipt(msgspec.Struct):
    order_id: int
    total: float
    lines: list[Item] = []


class Shop:
    async def place(self, req: Order) -> Receipt:
        return Receipt(order_id=req.id, total=0.0, lines=req.items)

    async def track(self, req: Order) -> AsyncIterator[Receipt]:
        yield Receipt(order_id=req.id, total=0.0)

    async def chat(self, stream: Stream[Item, Item]) -> None:
        return None

    async def ping(self) -> None:
        return None


if __name__ == "__main__":
    service = micro.Service()
    service.handle(Shop())
    service.run(sys.argv[1:])
