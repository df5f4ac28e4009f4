"""Unary calls: headers on the wire, decoding, errors, selection, metadata, wrappers."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from micro import metadata
from micro.client import CallFunc, CallOptions, Request
from micro.client.rpc import RpcClient
from micro.errors import (
    BadRequest,
    CodecError,
    Conflict,
    ConnectError,
    InternalServerError,
    MicroError,
    NoneAvailable,
    NotFound,
    ServiceNotFound,
    Timeout,
)
from micro.registry import Node
from micro.registry.memory import MemoryRegistry
from micro.selector.filters import filter_version
from tests.client.conftest import no_backoff
from tests.client.fakes import (
    FakeServer,
    RecordingSelector,
    RecordingTransport,
    answer,
    fail,
    slow,
)


class Hello(msgspec.Struct):
    msg: str


async def test_call_sends_the_protocol_headers(client: RpcClient, server: FakeServer) -> None:
    rsp = await client.call("greeter", "Greeter.SayHello", {"name": "John"}, timeout=2.0)

    assert rsp == {"name": "John"}
    (request,) = server.requests
    header = request.header
    assert header["Content-Type"] == "application/json"
    assert header["Accept"] == "application/json"
    assert header["Micro-Service"] == "greeter"
    assert header["Micro-Endpoint"] == "Greeter.SayHello"
    assert header["Micro-Method"] == "Greeter.SayHello"
    assert 1.5e9 < int(header["Timeout"]) <= 2e9
    assert header["Micro-Id"].isdigit()
    assert "Micro-From-Service" not in header
    assert msgspec.json.decode(request.body) == {"name": "John"}


async def test_micro_id_counts_up(client: RpcClient, server: FakeServer) -> None:
    for _ in range(3):
        await client.call("greeter", "Greeter.SayHello", {})
    ids = [int(r.header["Micro-Id"]) for r in server.requests]
    assert ids == [ids[0], ids[0] + 1, ids[0] + 2]


async def test_from_service_header(transport: RecordingTransport, server: FakeServer) -> None:
    async with RpcClient(transport=transport, from_service="caller") as client:
        await client.call("greeter", "Greeter.SayHello", {}, address=server.address)
    assert server.requests[0].header["Micro-From-Service"] == "caller"


async def test_response_decoded_into_type(client: RpcClient, server: FakeServer) -> None:
    server.handlers["Greeter.SayHello"] = answer({"msg": "Hello John"})
    rsp = await client.call("greeter", "Greeter.SayHello", {"name": "John"}, response_type=Hello)
    assert rsp == Hello(msg="Hello John")


async def test_response_that_does_not_fit_the_type(client: RpcClient, server: FakeServer) -> None:
    server.handlers["Greeter.SayHello"] = answer({"msg": 42})
    with pytest.raises(CodecError, match=r"\$\.msg"):
        await client.call("greeter", "Greeter.SayHello", {}, response_type=Hello)


async def test_request_that_cannot_be_encoded(client: RpcClient, server: FakeServer) -> None:
    with pytest.raises(CodecError):
        await client.call("greeter", "Greeter.SayHello", object())
    assert server.requests == []


async def test_content_type_per_call(client: RpcClient, server: FakeServer) -> None:
    rsp = await client.call(
        "greeter", "Greeter.SayHello", b"raw", content_type="application/octet-stream"
    )
    assert server.requests[0].header["Content-Type"] == "application/octet-stream"
    assert server.requests[0].body == b"raw"
    assert rsp == b"raw"


@pytest.mark.parametrize(
    ("error", "cls"),
    [
        (BadRequest("bad name", id="greeter"), BadRequest),
        (NotFound("no such thing", id="greeter"), NotFound),
        (Conflict("taken", id="greeter"), Conflict),
        (InternalServerError("boom", id="greeter"), InternalServerError),
        (MicroError("teapot", id="greeter", code=418), MicroError),
    ],
)
async def test_micro_error_json_raises_its_class(
    client: RpcClient, server: FakeServer, error: MicroError, cls: type[MicroError]
) -> None:
    server.handlers["Greeter.SayHello"] = fail(error)
    with pytest.raises(cls) as info:
        await client.call("greeter", "Greeter.SayHello", {}, retries=0)
    assert type(info.value) is cls
    assert info.value == error


async def test_plain_text_error_has_code_zero_and_is_not_retried(
    client: RpcClient, server: FakeServer
) -> None:
    server.handlers["Greeter.SayHello"] = fail("rpc: can't find method Greeter.SayHello")
    with pytest.raises(MicroError) as info:
        await client.call("greeter", "Greeter.SayHello", {}, retries=3)
    assert info.value.code == 0
    assert info.value.detail == "rpc: can't find method Greeter.SayHello"
    assert len(server.requests) == 1


async def test_legacy_x_micro_error_header(client: RpcClient, server: FakeServer) -> None:
    server.handlers["Greeter.SayHello"] = fail(NotFound("gone", id="old"), legacy=True)
    with pytest.raises(NotFound, match="gone"):
        await client.call("greeter", "Greeter.SayHello", {})


async def test_unknown_service(client: RpcClient, server: FakeServer) -> None:
    with pytest.raises(ServiceNotFound) as info:
        await client.call("nobody", "Nobody.Home", {})
    assert info.value.code == 404
    assert info.value.detail == "service nobody: not found (no node in the memory registry)"


async def test_filters_that_leave_no_node(client: RpcClient, server: FakeServer) -> None:
    with pytest.raises(NoneAvailable):
        await client.call("greeter", "Greeter.SayHello", {}, filters=[filter_version("9.9")])


async def test_filters_and_metadata_reach_the_selector(transport: RecordingTransport) -> None:
    server = await FakeServer(transport).start()
    selector = RecordingSelector([Node(id="n1", address=server.address)])
    only_v1 = filter_version("1")
    async with RpcClient(transport=transport, selector=selector) as client:
        await client.call("greeter", "Greeter.SayHello", {}, filters=[only_v1], metadata={"k": "v"})
    assert selector.selects == [("greeter", (only_v1,), {"K": "v"})]


async def test_address_bypasses_the_selector(transport: RecordingTransport) -> None:
    server = await FakeServer(transport).start()
    selector = RecordingSelector([])
    async with RpcClient(transport=transport, selector=selector) as client:
        assert await client.call("anything", "Any.Thing", {"a": 1}, address=server.address)
    assert selector.selects == []
    assert selector.marks == []
    assert server.requests[0].header["Micro-Service"] == "anything"


async def test_several_addresses_rotate(transport: RecordingTransport) -> None:
    one = await FakeServer(transport).start()
    two = await FakeServer(transport).start()
    async with RpcClient(transport=transport) as client:
        for _ in range(4):
            await client.call("greeter", "Greeter.SayHello", {}, address=[one.address, two.address])
    assert len(one.requests) == len(two.requests) == 2


async def test_mark_reports_each_attempt(transport: RecordingTransport) -> None:
    server = await FakeServer(transport).start()
    dead = Node(id="dead", address="127.0.0.1:1")
    live = Node(id="live", address=server.address)
    selector = RecordingSelector([dead, live])
    async with RpcClient(transport=transport, selector=selector, backoff=no_backoff) as client:
        await client.call("greeter", "Greeter.SayHello", {})
        server.handlers["Greeter.Fail"] = fail(BadRequest("no", id="greeter"))
        with pytest.raises(BadRequest):
            await client.call("greeter", "Greeter.Fail", {})
    # each select() starts a new cycle at the dead node: it fails, the retry reaches the live one
    dead_1, live_1, dead_2, live_2 = selector.marks
    for service, address, error in (dead_1, dead_2):
        assert (service, address) == ("greeter", "127.0.0.1:1")
        assert isinstance(error, ConnectError)
    assert live_1 == ("greeter", server.address, None)
    assert live_2[:2] == ("greeter", server.address)
    assert isinstance(live_2[2], BadRequest)  # the selector decides what counts against a node
    assert len(selector.selects) == 2


async def test_call_timeout(client: RpcClient, server: FakeServer) -> None:
    server.handlers["Greeter.Slow"] = slow(5.0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(Timeout) as info:
        await client.call("greeter", "Greeter.Slow", {}, timeout=0.2)
    assert 0.19 <= loop.time() - started < 1.0
    assert info.value.code == 408
    assert info.value.detail.startswith("call timeout: greeter Greeter.Slow")
    assert isinstance(info.value, TimeoutError)


async def test_outer_cancellation_is_not_a_timeout(client: RpcClient, server: FakeServer) -> None:
    server.handlers["Greeter.Slow"] = slow(5.0)
    task = asyncio.create_task(client.call("greeter", "Greeter.Slow", {}, timeout=10))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_timeout_inside_an_outer_timeout(client: RpcClient, server: FakeServer) -> None:
    """The call's own deadline fires first and becomes Timeout; the outer scope is unharmed."""
    server.handlers["Greeter.Slow"] = slow(5.0)
    async with asyncio.timeout(5):
        with pytest.raises(Timeout):
            await client.call("greeter", "Greeter.Slow", {}, timeout=0.05)
        assert await client.call("greeter", "Greeter.SayHello", {"x": 1}) == {"x": 1}


async def test_outer_timeout_wins_over_a_longer_call_timeout(
    client: RpcClient, server: FakeServer
) -> None:
    server.handlers["Greeter.Slow"] = slow(5.0)
    with pytest.raises(TimeoutError) as info:
        async with asyncio.timeout(0.05):
            await client.call("greeter", "Greeter.Slow", {}, timeout=10)
    assert not isinstance(info.value, MicroError)


async def test_metadata_per_call_and_from_context(client: RpcClient, server: FakeServer) -> None:
    with metadata.context({"x-user-id": "42", "X-Trace": "outer"}):
        await client.call("greeter", "Greeter.SayHello", {}, metadata={"x-trace": "inner"})
    header = server.requests[0].header
    assert header["X-User-Id"] == "42"
    assert header["X-Trace"] == "inner"


async def test_metadata_cannot_override_protocol_headers(
    client: RpcClient, server: FakeServer
) -> None:
    await client.call(
        "greeter", "Greeter.SayHello", {}, metadata={"Micro-Service": "evil", "Timeout": "1"}
    )
    header = server.requests[0].header
    assert header["Micro-Service"] == "greeter"
    assert int(header["Timeout"]) > 1_000_000


async def test_wrappers_run_in_order_per_attempt(
    transport: RecordingTransport, registry: MemoryRegistry, server: FakeServer
) -> None:
    seen: list[str] = []

    def tag(name: str) -> Any:
        def wrapper(next_call: CallFunc) -> CallFunc:
            async def call(node: Node, req: Request, opts: CallOptions) -> Any:
                seen.append(f"{name}>{node.address}")
                try:
                    return await next_call(node, req, opts)
                finally:
                    seen.append(f"{name}<")

            return call

        return wrapper

    server.handlers["Greeter.Flaky"] = fail(InternalServerError("flaky", id="greeter"))
    client = RpcClient(
        transport=transport,
        registry=registry,
        wrappers=[tag("outer"), tag("inner")],
        backoff=no_backoff,
    )
    async with client:
        await client.call("greeter", "Greeter.SayHello", {})
        assert seen == [f"outer>{server.address}", f"inner>{server.address}", "inner<", "outer<"]
        seen.clear()
        with pytest.raises(InternalServerError):
            await client.call("greeter", "Greeter.Flaky", {}, retries=1)
        assert seen.count(f"outer>{server.address}") == 2


async def test_wrapper_can_answer_without_the_network(transport: RecordingTransport) -> None:
    def cached(next_call: CallFunc) -> CallFunc:
        async def call(node: Node, req: Request, opts: CallOptions) -> Any:
            return {"cached": req.endpoint, "deadline_left": opts.deadline > 0}

        return call

    async with RpcClient(transport=transport, wrappers=[cached]) as client:
        rsp = await client.call("x", "X.Y", address="127.0.0.1:1")
    assert rsp == {"cached": "X.Y", "deadline_left": True}
    assert transport.dialed == []


async def test_closed_client_refuses_calls(client: RpcClient, server: FakeServer) -> None:
    await client.close()
    await client.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        await client.call("greeter", "Greeter.SayHello", {})


async def test_unknown_service_through_a_custom_selector(transport: RecordingTransport) -> None:
    async with RpcClient(transport=transport, selector=RecordingSelector([])) as client:
        with pytest.raises(ServiceNotFound) as info:
            await client.call("nobody", "Nobody.Home", {})
    assert info.value.detail == "service nobody: not found"
    assert info.value.id == "go.micro.client"
