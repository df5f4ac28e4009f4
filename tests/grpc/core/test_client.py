"""micro.Client over gRPC: through the registry to GrpcServer nodes, to a mixed fleet, and
by address to a plain grpcio server it did not build; errors, deadlines and metadata."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import grpc  # type: ignore[import-untyped]
import pytest

from micro.client.rpc import RpcClient
from micro.errors import (
    BadRequest,
    Conflict,
    ConnectError,
    InternalServerError,
    MicroError,
    NotFound,
    Timeout,
)
from micro.grpc._status import from_status, to_status
from micro.grpc.server import GrpcServer
from micro.registry import Node
from micro.registry.memory import MemoryRegistry
from micro.server import HandlerFunc, Request
from micro.server.rpc import RpcServer
from micro.transport.http import HttpTransport
from tests.grpc.core.handlers import CountRequest, Greeter, HelloRequest, HelloResponse


@pytest.fixture
async def client(registry: MemoryRegistry) -> AsyncIterator[RpcClient]:
    async with RpcClient(registry=registry, from_service="caller", retries=0) as c:
        yield c


# -- the status table ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status", "back"),
    [
        (400, grpc.StatusCode.INVALID_ARGUMENT, 400),
        (401, grpc.StatusCode.UNAUTHENTICATED, 401),
        (403, grpc.StatusCode.PERMISSION_DENIED, 403),
        (404, grpc.StatusCode.NOT_FOUND, 404),
        (408, grpc.StatusCode.DEADLINE_EXCEEDED, 408),
        (504, grpc.StatusCode.DEADLINE_EXCEEDED, 408),
        (409, grpc.StatusCode.ALREADY_EXISTS, 409),
        (429, grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
        (501, grpc.StatusCode.UNIMPLEMENTED, 501),
        (503, grpc.StatusCode.UNAVAILABLE, 503),
        (500, grpc.StatusCode.INTERNAL, 500),
    ],
)
def test_codes_map_both_ways(code: int, status: grpc.StatusCode, back: int) -> None:
    error = MicroError("it went wrong", id="svc", code=code)
    got, message, trailers = to_status(error)
    assert (got, message) == (status, "it went wrong")
    assert from_status(got, message, trailers, id="x") == error  # the trailer: exact
    plain = from_status(got, message, None, id="x")  # a server that is not micro
    assert (plain.code, plain.detail) == (back, "it went wrong")


def test_aborted_is_a_conflict() -> None:
    error = from_status(grpc.StatusCode.ABORTED, "raced", (), id="x")
    assert isinstance(error, Conflict)


# -- through the registry to a GrpcServer -------------------------------------------------


async def test_typed_unary_and_streams_over_grpc_json(
    json_server: GrpcServer, client: RpcClient
) -> None:
    rsp = await client.call(
        "greeter", "Greeter.SayHello", HelloRequest("John"), response_type=HelloResponse
    )
    assert rsp == HelloResponse("Hello John")
    async with client.stream(
        "greeter", "Greeter.Count", CountRequest(3), response_type=HelloResponse
    ) as stream:
        items = [item.msg async for item in stream]
    assert items == ["#0", "#1", "#2"]
    async with client.stream("greeter", "Greeter.Chat") as chat:
        await chat.send({"name": "a"})
        assert await chat.recv() == {"msg": "Hi a"}
        await chat.send({"name": "b"})
        await chat.close_send()
        assert await chat.recv() == {"msg": "Hi b"}
        with pytest.raises(StopAsyncIteration):
            await chat.recv()


async def test_validation_error_is_a_400_naming_the_field(
    json_server: GrpcServer, client: RpcClient
) -> None:
    with pytest.raises(BadRequest) as caught:
        await client.call("greeter", "Greeter.SayHello", {"name": 5})
    assert "name" in caught.value.detail
    assert caught.value.id == "greeter"


@pytest.mark.parametrize(
    ("kind", "error_type", "status"),
    [
        ("missing", NotFound, grpc.StatusCode.NOT_FOUND),
        ("conflict", Conflict, grpc.StatusCode.ALREADY_EXISTS),
        ("crash", InternalServerError, grpc.StatusCode.INTERNAL),
    ],
)
async def test_handler_errors_reach_micro_and_plain_clients(
    json_server: GrpcServer,
    client: RpcClient,
    kind: str,
    error_type: type[MicroError],
    status: grpc.StatusCode,
) -> None:
    with pytest.raises(error_type) as caught:
        await client.call("greeter", "Greeter.Fail", {"kind": kind})
    assert caught.value.id == "greeter"
    async with grpc.aio.insecure_channel(json_server.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as raw:
            await channel.unary_unary("/greeter.Greeter/Fail")(b'{"kind": "%s"}' % kind.encode())
    assert raw.value.code() == status
    assert raw.value.details() == caught.value.detail
    if kind == "crash":
        assert "RuntimeError: boom" in caught.value.detail


async def test_client_deadline_reaches_the_server_and_cancels_the_handler(
    registry: MemoryRegistry, client: RpcClient
) -> None:
    seen: list[str] = []

    def spy(next: HandlerFunc) -> HandlerFunc:
        async def call(request: Request) -> Any:
            seen.append(request.header.get("Timeout", ""))
            return await next(request)

        return call

    handler = Greeter()
    server = GrpcServer(name="greeter", address="127.0.0.1:0", registry=registry, wrappers=[spy])
    server.handle(handler)
    async with server:
        started = time.monotonic()
        with pytest.raises(Timeout):
            await client.call("greeter", "Greeter.Sleep", {"seconds": 5}, timeout=0.3)
        assert time.monotonic() - started < 2
        for _ in range(50):
            if handler.cancelled:
                break
            await asyncio.sleep(0.02)
        assert handler.cancelled == 1
        # the deadline arrived as micro's Timeout header (ns), at most the 0.3 s given
        assert 0 < int(seen[0]) <= 300_000_000

        # a server-side Timeout crosses as DEADLINE_EXCEEDED and comes back a 408
        with pytest.raises(Timeout) as caught:
            await client.call("greeter", "Greeter.RaiseTimeout")
        assert caught.value.detail == "the upstream took too long"


async def test_a_plain_grpc_deadline_bounds_the_handler(json_server: GrpcServer) -> None:
    async with grpc.aio.insecure_channel(json_server.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await channel.unary_unary("/greeter.Greeter/Sleep")(b'{"seconds": 5}', timeout=0.3)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_stream_timeout_ends_a_slow_stream(
    json_server: GrpcServer, client: RpcClient
) -> None:
    async with client.stream("greeter", "Greeter.SlowStream", {"seconds": 5}, timeout=0.5) as s:
        assert await s.recv() == {"msg": "first"}
        with pytest.raises(Timeout):
            await s.recv()


async def test_metadata_travels_as_grpc_metadata(
    json_server: GrpcServer, client: RpcClient
) -> None:
    got = await client.call("greeter", "Greeter.Who", metadata={"X-User-Id": "42"})
    assert got["X-User-Id"] == "42"
    assert got["Micro-From-Service"] == "caller"
    assert not any(key.lower().startswith("grpc-") for key in got)
    async with grpc.aio.insecure_channel(json_server.address) as channel:
        who = channel.unary_unary("/greeter.Greeter/Who")
        pairs = (("x-trace", "t1"), ("x-bin-bin", b"\x00"))
        raw = await who(b"", metadata=(*pairs, ("micro-content-type", "application/json")))
        # without the JSON mark: the generated message (a map of strings, as protobuf)
        as_proto = await who(b"", metadata=pairs)
    assert b'"X-Trace":"t1"' in raw
    assert b"X-Bin-Bin" not in raw
    assert b"X-Trace" in as_proto
    assert not as_proto.startswith(b"{")


async def test_json_calls_reach_a_protobuf_handler(
    proto_server: GrpcServer, client: RpcClient, stubs: tuple[ModuleType, ModuleType]
) -> None:
    """Dicts from micro's client (and ``micro call``) are read as protobuf's JSON mapping;
    protobuf messages go as protobuf."""
    pb2, _ = stubs
    assert await client.call("greeter", "Greeter.SayHello", {"name": "json"}) == {
        "msg": "Hello json"
    }
    rsp = await client.call(
        "greeter", "Greeter.SayHello", pb2.HelloRequest(name="pb"), response_type=pb2.HelloReply
    )
    assert rsp == pb2.HelloReply(msg="Hello pb")
    with pytest.raises(BadRequest):
        await client.call("greeter", "Greeter.SayHello", {"nom": "typo"})


async def test_unreachable_node_is_a_connect_error(registry: MemoryRegistry) -> None:
    async with RpcClient(registry=registry, protocol="grpc", retries=0) as client:
        port = _free_port()
        with pytest.raises(ConnectError):
            await client.call("x", "A.B", {}, address=f"127.0.0.1:{port}", timeout=2)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- a mixed fleet ------------------------------------------------------------------------


async def test_default_client_calls_both_nodes_of_a_mixed_fleet(
    registry: MemoryRegistry, client: RpcClient
) -> None:
    via_mucp, via_grpc = Greeter(" (mucp)"), Greeter(" (grpc)")
    transport = HttpTransport()
    mucp = RpcServer(name="greeter", address="127.0.0.1:0", registry=registry, transport=transport)
    mucp.handle(via_mucp)
    grpc_node = GrpcServer(name="greeter", address="127.0.0.1:0", registry=registry)
    grpc_node.handle(via_grpc)
    async with mucp, grpc_node:
        (service,) = await registry.get_service("greeter")
        protocols = sorted(n.metadata.get("protocol", "") for n in service.nodes)
        assert protocols == ["grpc", "mucp"]
        answers = {
            (await client.call("greeter", "Greeter.SayHello", {"name": "n"}))["msg"]
            for _ in range(20)
        }
        async with client.stream("greeter", "Greeter.Count", {"to": 2}) as stream:
            assert [item async for item in stream] == [{"msg": "#0"}, {"msg": "#1"}]
    await transport.close()
    assert answers == {"Hello n (mucp)", "Hello n (grpc)"}
    assert via_mucp.calls > 0
    assert via_grpc.calls > 0
    assert via_mucp.calls + via_grpc.calls == 20


# -- a plain grpcio server, by address -----------------------------------------------------


async def test_grpc_client_calls_a_plain_grpcio_server(
    stubs: tuple[ModuleType, ModuleType],
) -> None:
    pb2, pb2_grpc = stubs

    class Plain(pb2_grpc.GreeterServicer):  # type: ignore[misc,name-defined]
        async def SayHello(self, request: Any, context: Any) -> Any:
            if request.name == "nobody":
                await context.abort(grpc.StatusCode.NOT_FOUND, "no such person")
            meta = dict(context.invocation_metadata())
            return pb2.HelloReply(msg=f"Hello {request.name} {meta.get('x-user-id')}")

        async def Count(self, request: Any, context: Any) -> Any:
            for i in range(request.to):
                yield pb2.HelloReply(msg=str(i))

    server = grpc.aio.server()
    pb2_grpc.add_GreeterServicer_to_server(Plain(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    address = f"127.0.0.1:{port}"
    try:
        async with RpcClient(registry=MemoryRegistry(), protocol="grpc", retries=0) as client:
            rsp = await client.call(
                "greeter",
                "Greeter.SayHello",
                pb2.HelloRequest(name="plain"),
                response_type=pb2.HelloReply,
                address=address,
                metadata={"X-User-Id": "7"},
            )
            assert rsp.msg == "Hello plain 7"
            by_path = await client.call(
                "any",
                "/greeter.Greeter/SayHello",
                pb2.HelloRequest(name="path"),
                response_type=pb2.HelloReply,
                address=address,
            )
            assert by_path.msg == "Hello path None"
            with pytest.raises(NotFound) as caught:
                await client.call(
                    "greeter",
                    "Greeter.SayHello",
                    pb2.HelloRequest(name="nobody"),
                    response_type=pb2.HelloReply,
                    address=address,
                )
            assert caught.value.detail == "no such person"
            async with client.stream(
                "greeter",
                "Greeter.Count",
                pb2.CountRequest(to=3),
                response_type=pb2.HelloReply,
                address=address,
            ) as stream:
                assert [r.msg async for r in stream] == ["0", "1", "2"]
        async with RpcClient(registry=MemoryRegistry(), retries=0) as auto:
            # the default client, by address: grpc:// says the address speaks gRPC
            rsp = await auto.call(
                "greeter",
                "Greeter.SayHello",
                pb2.HelloRequest(name="auto"),
                response_type=pb2.HelloReply,
                address=f"grpc://{address}",
            )
            assert rsp.msg == "Hello auto None"
    finally:
        await server.stop(0)


def test_micro_client_env_picks_the_protocol(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MICRO_CLIENT", "grpc")
    assert RpcClient().protocol == "grpc"
    monkeypatch.setenv("MICRO_CLIENT", "mucp")
    client = RpcClient()
    assert client.protocol == "mucp"
    assert not client.speaks_grpc(Node(id="n", address="a:1", metadata={"protocol": "grpc"}))
    monkeypatch.setenv("MICRO_CLIENT", "http2")
    with pytest.raises(ValueError, match="auto, mucp or grpc"):
        RpcClient()


async def test_channels_are_kept_per_address_and_the_oldest_retired(
    monkeypatch: pytest.MonkeyPatch, json_server: GrpcServer
) -> None:
    import micro.grpc.client as grpc_client

    monkeypatch.setattr(grpc_client, "_CHANNELS", 2)
    caller = grpc_client.GrpcCaller()
    first = caller.channel(json_server.address)
    assert caller.channel(json_server.address) is first
    caller.channel("127.0.0.1:1")
    caller.channel("127.0.0.1:2")  # a third address retires the first
    for _ in range(100):
        if first.get_state() == grpc.ChannelConnectivity.SHUTDOWN:
            break
        await asyncio.sleep(0.02)
    assert first.get_state() == grpc.ChannelConnectivity.SHUTDOWN
    again = caller.channel(json_server.address)
    assert again is not first
    assert await again.unary_unary("/greeter.Greeter/SayHello")(b'{"name":"x"}') == (
        b'{"msg":"Hello x"}'
    )
    await caller.close()
