"""GrpcServer called by clients micro did not build: generated grpcio stubs, grpcurl, raw
bytes; health while serving and while draining."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc  # type: ignore[import-untyped]
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped]

from micro.errors import MicroError
from micro.grpc.server import GrpcServer, package_name
from micro.registry.memory import MemoryRegistry
from tests.grpc.core.conftest import PROTO
from tests.grpc.core.handlers import Greeter

GRPCURL = str(Path(sys.executable).with_name("grpcurl"))


def micro_error(exc: grpc.aio.AioRpcError) -> MicroError:
    found = [v for k, v in exc.trailing_metadata() or () if k == "micro-error"]
    assert found, f"no micro-error trailer in {exc.trailing_metadata()}"
    return MicroError.parse(found[0])


# -- a stub generated from the .proto ---------------------------------------------------


async def test_generated_stub_calls_unary_and_every_stream_kind(
    proto_server: GrpcServer, stubs: tuple[ModuleType, ModuleType]
) -> None:
    pb2, pb2_grpc = stubs
    async with grpc.aio.insecure_channel(proto_server.address) as channel:
        stub = pb2_grpc.GreeterStub(channel)
        reply = await stub.SayHello(pb2.HelloRequest(name="John"), metadata=(("x-caller", "!"),))
        assert reply.msg == "Hello John!"

        counted = [r.msg async for r in stub.Count(pb2.CountRequest(to=3))]
        assert counted == ["#0", "#1", "#2"]

        async def numbers() -> Any:
            for n in (1, 2, 39):
                yield pb2.CountRequest(to=n)

        assert (await stub.Sum(numbers())).msg == "42"

        chat = stub.Chat()
        await chat.write(pb2.HelloRequest(name="a"))
        assert (await chat.read()).msg == "Hi a"
        await chat.write(pb2.HelloRequest(name="b"))
        await chat.done_writing()
        assert (await chat.read()).msg == "Hi b"
        assert await chat.read() is grpc.aio.EOF
        assert await chat.code() == grpc.StatusCode.OK


async def test_a_stream_handler_error_ends_the_stream_with_its_status(
    proto_server: GrpcServer, stubs: tuple[ModuleType, ModuleType]
) -> None:
    pb2, pb2_grpc = stubs
    async with grpc.aio.insecure_channel(proto_server.address) as channel:
        chat = pb2_grpc.GreeterStub(channel).Chat()
        await chat.write(pb2.HelloRequest(name="ok"))
        assert (await chat.read()).msg == "Hi ok"
        await chat.write(pb2.HelloRequest(name="bad"))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await chat.read()
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert caught.value.details() == "who is bad?"
    assert micro_error(caught.value).to_dict()["code"] == 404


async def test_unknown_method_is_not_found_and_other_packages_unimplemented(
    proto_server: GrpcServer,
) -> None:
    async with grpc.aio.insecure_channel(proto_server.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as ours:
            await channel.unary_unary("/greeter.Greeter/Nope")(b"")
        with pytest.raises(grpc.aio.AioRpcError) as theirs:
            await channel.unary_unary("/other.Greeter/SayHello")(b"")
    assert ours.value.code() == grpc.StatusCode.NOT_FOUND
    assert "Greeter.SayHello" in micro_error(ours.value).detail  # lists what is served
    assert theirs.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_package_defaults_to_the_service_name_and_can_be_set(
    registry: MemoryRegistry, stubs: tuple[ModuleType, ModuleType]
) -> None:
    assert package_name("go.micro.srv.greeter") == "go.micro.srv.greeter"
    assert package_name("my-greeter") == "my_greeter"
    server = GrpcServer(
        name="my-greeter", address="127.0.0.1:0", registry=registry, package="greeter"
    )
    server.handle(Greeter())
    assert server.method_path("Greeter.SayHello") == "/greeter.Greeter/SayHello"
    async with server:
        (found,) = await registry.get_service("my-greeter")
        meta = found.nodes[0].metadata
        assert (meta["protocol"], meta["grpc_package"], meta["server"]) == (
            "grpc",
            "greeter",
            "grpc",
        )
        async with grpc.aio.insecure_channel(server.address) as channel:
            call = channel.unary_unary("/greeter.Greeter/SayHello")
            assert json.loads(await call(b'{"name":"x"}')) == {"msg": "Hello x"}


# -- bad input --------------------------------------------------------------------------


async def test_malformed_protobuf_and_invalid_json_are_invalid_argument(
    proto_server: GrpcServer, json_server: GrpcServer
) -> None:
    async with grpc.aio.insecure_channel(proto_server.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as bad_proto:
            await channel.unary_unary("/greeter.Greeter/SayHello")(b"\xff\xff\xff")
    assert bad_proto.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert micro_error(bad_proto.value).code == 400
    async with grpc.aio.insecure_channel(json_server.address) as channel:
        say = channel.unary_unary("/greeter.Greeter/SayHello")
        with pytest.raises(grpc.aio.AioRpcError) as bad_field:
            await say(b'{"name": 5}')
        with pytest.raises(grpc.aio.AioRpcError) as not_json:
            await say(b"\x00\x01garbage")
        assert json.loads(await say(b'{"name": "still up"}')) == {"msg": "Hello still up"}
    assert bad_field.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "name" in micro_error(bad_field.value).detail
    assert not_json.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def _raw_exchange(address: str, payload: bytes) -> bytes:
    """Send ``payload``; what came back until the server ended stream 1 or the connection
    (or went quiet for a second)."""
    host, _, port = address.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=3) as sock:
        sock.sendall(payload)
        received = b""
        try:
            while data := sock.recv(65536):
                received += data
                if any(_ends_stream(*f) for f in _frames(received)):
                    break
        except (TimeoutError, ConnectionResetError):
            pass
        return received


def _frames(data: bytes) -> list[tuple[int, int, int]]:
    """``(type, flags, stream)`` of each whole HTTP/2 frame in ``data``."""
    out, at = [], 0
    while at + 9 <= len(data):
        length = int.from_bytes(data[at : at + 3], "big")
        kind, flags = data[at + 3], data[at + 4]
        stream = int.from_bytes(data[at + 5 : at + 9], "big") & 0x7FFFFFFF
        if at + 9 + length > len(data):
            break
        out.append((kind, flags, stream))
        at += 9 + length
    return out


def _ends_stream(kind: int, flags: int, stream: int) -> bool:
    """HEADERS with END_STREAM (a status), RST_STREAM on stream 1, or GOAWAY."""
    return (stream == 1 and (kind == 0x3 or (kind == 0x1 and bool(flags & 0x1)))) or kind == 0x7


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return (
        len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload
    )


def _headers_frame(path: str, content_type: str) -> bytes:
    """A HEADERS frame, HPACK literals without indexing (no Huffman)."""

    def literal(name: str, value: str) -> bytes:
        n, v = name.encode(), value.encode()
        return b"\x00" + bytes([len(n)]) + n + bytes([len(v)]) + v

    block = b"".join(
        literal(k, v)
        for k, v in (
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", "localhost"),
            ("content-type", content_type),
            ("te", "trailers"),
        )
    )
    return _frame(0x1, 0x4, 1, block)  # END_HEADERS


async def test_raw_garbage_and_bad_frames_get_an_answer_and_the_server_lives(
    json_server: GrpcServer,
) -> None:
    address = json_server.address
    garbage = await asyncio.to_thread(_raw_exchange, address, b"GET / HTTP/1.1\r\n\r\n" * 3)
    assert garbage  # an HTTP/2 GOAWAY or an HTTP/1 error: an answer, not silence

    settings = _frame(0x4, 0, 0, b"") + _frame(0x4, 0x1, 0, b"")  # ours, and the ack of theirs
    # a gRPC message frame whose length prefix promises more than it carries
    cut = _frame(0x0, 0x1, 1, b"\x00\x00\x00\x10\x00" + b'{"na')
    wrong_type = PREFACE + settings + _headers_frame("/greeter.Greeter/SayHello", "text/plain")
    short = PREFACE + settings + _headers_frame("/greeter.Greeter/SayHello", "application/grpc")
    empty = _frame(0x0, 0x1, 1, b"")
    for payload in (wrong_type + empty, short + cut, short + empty):
        answer = await asyncio.to_thread(_raw_exchange, address, payload)
        assert any(_ends_stream(*f) for f in _frames(answer)), _frames(answer)

    async with grpc.aio.insecure_channel(address) as channel:
        call = channel.unary_unary("/greeter.Greeter/SayHello")
        assert json.loads(await call(b'{"name":"after"}')) == {"msg": "Hello after"}


# -- health -----------------------------------------------------------------------------


async def test_health_serving_then_not_serving_while_draining(
    registry: MemoryRegistry, tmp_path: Path
) -> None:
    handler = Greeter()
    server = GrpcServer(name="greeter", address="127.0.0.1:0", registry=registry)
    server.handle(handler)
    await server.start()
    async with grpc.aio.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", "greeter"):
            answer = await health.Check(health_pb2.HealthCheckRequest(service=name))
            assert answer.status == health_pb2.HealthCheckResponse.SERVING

        sleep = channel.unary_unary("/greeter.Greeter/Sleep")
        slow = asyncio.ensure_future(sleep(b'{"seconds": 3}', timeout=10))
        await asyncio.sleep(0.2)
        stopping = asyncio.create_task(server.stop(grace=5))
        await asyncio.sleep(0.1)
        answer = await health.Check(health_pb2.HealthCheckRequest(service=""))
        assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING
        probe = await asyncio.to_thread(
            grpcurl,
            "-protoset",
            str(health_protoset(tmp_path)),
            "-d",
            '{"service": "greeter"}',
            server.address,
            "grpc.health.v1.Health/Check",
        )
        assert json.loads(probe.stdout) == {"status": "NOT_SERVING"}, probe.stderr
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await channel.unary_unary("/greeter.Greeter/SayHello")(b'{"name":"late"}')
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert json.loads(await slow)["slept"] == 3  # the call in flight finished
        await stopping
    assert await registry.list_services() == []


# -- grpcurl ----------------------------------------------------------------------------


def grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GRPCURL, "-plaintext", *args], capture_output=True, text=True, timeout=30, check=False
    )


def health_protoset(tmp_path: Path) -> Path:
    from google.protobuf import descriptor_pb2

    files = descriptor_pb2.FileDescriptorSet()
    health_pb2.DESCRIPTOR.CopyToProto(files.file.add())
    path = tmp_path / "health.protoset"
    path.write_bytes(files.SerializeToString())
    return path


async def test_grpcurl_calls_unary_stream_and_health(
    proto_server: GrpcServer, tmp_path: Path
) -> None:
    address = proto_server.address
    proto = ("-import-path", str(PROTO.parent), "-proto", PROTO.name)
    unary = await asyncio.to_thread(
        grpcurl,
        *proto,
        "-H",
        "x-caller: (curl)",
        "-d",
        '{"name": "curl"}',
        address,
        "greeter.Greeter/SayHello",
    )
    assert unary.returncode == 0, unary.stderr
    assert json.loads(unary.stdout) == {"msg": "Hello curl(curl)"}

    stream = await asyncio.to_thread(
        grpcurl, *proto, "-d", '{"to": 2}', address, "greeter.Greeter/Count"
    )
    assert stream.returncode == 0, stream.stderr
    decoder = json.JSONDecoder()
    text, items, at = stream.stdout.strip(), [], 0
    while at < len(text):
        item, at = decoder.raw_decode(text, at)
        items.append(item)
        at = len(text) - len(text[at:].lstrip())
    assert items == [{"msg": "#0"}, {"msg": "#1"}]

    failing = await asyncio.to_thread(
        grpcurl, *proto, "-d", '{"name": "bad"}', address, "greeter.Greeter/Chat"
    )
    assert failing.returncode != 0
    assert "NotFound" in failing.stderr  # grpcurl names the status code

    protoset = health_protoset(tmp_path)
    check = await asyncio.to_thread(
        grpcurl, "-protoset", str(protoset), address, "grpc.health.v1.Health/Check"
    )
    assert check.returncode == 0, check.stderr
    assert json.loads(check.stdout) == {"status": "SERVING"}


async def test_load_shedding_and_the_rate_limit_apply_to_grpc_calls(
    registry: MemoryRegistry,
) -> None:
    server = GrpcServer(
        name="greeter",
        address="127.0.0.1:0",
        registry=registry,
        register_interval=0,
        max_in_flight=1,
        rate_limit=1.0,
        settings=None,
    )
    server.handle(Greeter())
    await server.start()
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            sleep = channel.unary_unary("/greeter.Greeter/Sleep")
            json_md = (("micro-content-type", "application/json"),)
            # burst of one second's worth (1 call): the first is served, slowly
            first = asyncio.ensure_future(sleep(b'{"seconds": 0.5}', metadata=json_md))
            await asyncio.sleep(0.1)
            with pytest.raises(grpc.aio.AioRpcError) as shed:  # one in flight already
                await sleep(b'{"seconds": 0}', metadata=json_md)
            assert shed.value.code() == grpc.StatusCode.UNAVAILABLE
            await first
            with pytest.raises(grpc.aio.AioRpcError) as limited:  # the bucket is empty
                await sleep(b'{"seconds": 0}', metadata=json_md)
            assert limited.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        stats = server.resilience_stats()
        assert (stats["shed"], stats["rate_limited"]) == (1, 1)
    finally:
        await server.stop(grace=1)
