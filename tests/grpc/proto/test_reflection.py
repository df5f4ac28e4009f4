"""Server reflection over generated descriptors, driven by the real grpcurl binary."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped]
import msgspec
import pytest

from micro.grpc._protogen import ProtoFile, from_specs
from micro.grpc._reflection import reflection_handlers
from micro.server.handler import introspect
from tests.grpc.proto import rich_service

pytestmark = pytest.mark.integration

GRPCURL = str(Path(sys.executable).with_name("grpcurl"))


class Greeting(msgspec.Struct):
    name: str
    times: int = 1
    tags: list[str] = []


class Reply(msgspec.Struct):
    msg: str
    user_id: int = 0


class Say:
    async def hello(self, req: Greeting) -> Reply:
        return Reply(msg=" ".join([f"Hello {req.name}"] * req.times), user_id=len(req.tags))


def echo_handler(proto: ProtoFile) -> grpc.GenericRpcHandler:
    """``Say.Hello`` served through the dynamic classes and the converters."""
    request_cls = proto.request_class("Say.Hello")
    response_cls = proto.response_class("Say.Hello")

    async def hello(message: Any, context: Any) -> Any:
        reply = await Say().hello(proto.from_message(message, Greeting))
        return proto.to_message(reply, response_cls)

    method = grpc.unary_unary_rpc_method_handler(
        hello,
        request_deserializer=request_cls.FromString,
        response_serializer=response_cls.SerializeToString,
    )
    return grpc.method_handlers_generic_handler("greeter.Say", {"Hello": method})


@pytest.fixture
async def server() -> AsyncIterator[str]:
    proto = from_specs("greeter", introspect(Say()))
    srv = grpc.aio.server()
    srv.add_generic_rpc_handlers([echo_handler(proto), *reflection_handlers([proto.file])])
    port = srv.add_insecure_port("127.0.0.1:0")
    await srv.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await srv.stop(None)


async def grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [GRPCURL, "-plaintext", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


async def test_list_shows_the_service_and_reflection(server: str) -> None:
    done = await grpcurl(server, "list")
    assert done.returncode == 0, done.stderr
    listed = done.stdout.split()
    assert "greeter.Say" in listed
    assert "grpc.reflection.v1.ServerReflection" in listed


async def test_describe_shows_methods_and_fields(server: str) -> None:
    done = await grpcurl(server, "describe", "greeter.Say")
    assert done.returncode == 0, done.stderr
    assert "rpc Hello ( .greeter.Greeting ) returns ( .greeter.Reply )" in done.stdout
    done = await grpcurl(server, "describe", "greeter.Greeting")
    assert done.returncode == 0, done.stderr
    assert "string name = 1" in done.stdout
    assert "int64 times = 2" in done.stdout
    assert "repeated string tags = 3" in done.stdout


async def test_json_call_goes_through_the_dynamic_classes(server: str) -> None:
    body = json.dumps({"name": "Ada", "times": 2, "tags": ["a", "b", "c"]})
    done = await grpcurl("-d", body, server, "greeter.Say/Hello")
    assert done.returncode == 0, done.stderr
    # proto3 JSON with the json_name of each field: msgspec's keys, int64 as a string
    assert json.loads(done.stdout) == {"msg": "Hello Ada Hello Ada", "user_id": "3"}


async def test_unknown_symbol_is_not_found(server: str) -> None:
    done = await grpcurl(server, "describe", "greeter.Nope")
    assert done.returncode != 0


@pytest.fixture
async def shop() -> AsyncIterator[str]:
    """Shop.Place served through ProtoFile.decoder/encoder, with reflection."""
    proto = from_specs("shop", introspect(rich_service.Shop()))
    rpc = proto.rpcs["Shop.Place"]
    decode = proto.decoder(rpc.request, rich_service.Order)
    encode = proto.encoder(rpc.response)

    async def place(order: rich_service.Order, context: Any) -> rich_service.Receipt:
        total = sum(order.prices.get(item.sku, 0.0) * item.qty for item in order.items)
        note = f"{order.customerName}:{order.color.value}:{order.speed}"
        return rich_service.Receipt(order_id=order.id, total=total, lines=[rich_service.Item(note)])

    method = grpc.unary_unary_rpc_method_handler(
        place, request_deserializer=decode, response_serializer=encode
    )
    srv = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler("shop.Shop", {"Place": method})
    srv.add_generic_rpc_handlers([handler, *reflection_handlers([proto.file])])
    port = srv.add_insecure_port("127.0.0.1:0")
    await srv.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await srv.stop(None)


async def test_grpcurl_json_with_enums_maps_and_camel_keys(shop: str) -> None:
    order = {
        "id": 7,
        "items": [{"sku": "a", "qty": 2}, {"sku": "b"}],
        "color": "green",
        "speed": "fast",
        "prices": {"a": 1.5, "b": 10},
        "customerName": "Ann",
    }
    done = await grpcurl("-d", json.dumps(order), shop, "shop.Shop/Place")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "order_id": "7",
        "total": 13.0,
        "lines": [{"sku": "Ann:green:fast", "qty": "1"}],  # grpcurl leaves out empty lists
    }
    described = await grpcurl(shop, "describe", "shop.Color")
    assert described.returncode == 0, described.stderr
    assert "green = 0;" in described.stdout
