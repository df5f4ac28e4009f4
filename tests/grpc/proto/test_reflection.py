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
