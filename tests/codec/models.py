"""Types shared by the codec tests: the go-micro greeter sample and richer shapes."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import TypedDict

import msgspec
import pydantic


class Request(msgspec.Struct):
    """The Go sample's ``go.micro.srv.greeter.Request``."""

    name: str


class Response(msgspec.Struct):
    msg: str


class Item(msgspec.Struct):
    sku: str
    qty: int
    price: float = 0.0


class Order(msgspec.Struct, rename="camel"):
    order_id: int
    items: list[Item]
    note: str | None = None
    tags: dict[str, str] = {}
    paid: bool = False
    blob: bytes = b""
    placed_at: dt.datetime | None = None


@dataclasses.dataclass
class ItemDC:
    sku: str
    qty: int


@dataclasses.dataclass
class OrderDC:
    order_id: int
    items: list[ItemDC]
    note: str | None = None


class ItemTD(TypedDict):
    sku: str
    qty: int


class OrderTD(TypedDict):
    order_id: int
    items: list[ItemTD]


class ItemModel(pydantic.BaseModel):
    sku: str
    qty: int


class OrderModel(pydantic.BaseModel):
    order_id: int = pydantic.Field(alias="orderId")
    items: list[ItemModel]


class Holder(msgspec.Struct):
    """A msgspec Struct that carries a pydantic model inside."""

    order: OrderModel
