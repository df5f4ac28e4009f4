"""micro.Client through a real proxy: calls, streams and publishes reach the remote
services, and their errors arrive unchanged across the hop."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from examples.greeter.server import HelloResponse
from examples.streaming.server import Tick
from micro.broker import Event
from micro.client import CallFunc, CallOptions, Request
from micro.client.rpc import RpcClient
from micro.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    InternalServerError,
    MicroError,
    NotFound,
    ServiceNotFound,
    Timeout,
    Unauthorized,
)
from micro.registry import Node
from tests.proxy.conftest import TOKEN, Remote, laptop_settings
from tests.proxy.services import Failing

pytestmark = pytest.mark.integration


def laptop(address: str, **options: Any) -> RpcClient:
    """``micro.Client()`` on a laptop whose only setting is the proxy's address."""
    env = {"MICRO_PROXY_ADDRESS": address}
    token = options.pop("token", None)
    if token:
        env["MICRO_PROXY_TOKEN"] = token
    return RpcClient(settings=laptop_settings(**env), **options)


async def test_a_call_reaches_the_service_and_decodes_its_answer(proxy: str) -> None:
    async with laptop(proxy) as client:
        rsp = await client.call("greeter", "Greeter.SayHello", {"name": "John"})
        assert rsp == {"msg": "Hello John"}
        typed = await client.call(
            "greeter", "Greeter.SayHello", {"name": "Ann"}, response_type=HelloResponse
        )
        assert typed == HelloResponse(msg="Hello Ann")


@pytest.mark.parametrize(
    ("endpoint", "cls"),
    [
        ("Failing.Missing", NotFound),
        ("Failing.Forbid", Forbidden),
        ("Failing.Conflict", Conflict),
        ("Failing.Invalid", BadRequest),
        ("Failing.Crash", InternalServerError),
    ],
)
async def test_errors_arrive_unchanged(
    remote: Remote, proxy: str, endpoint: str, cls: type[MicroError]
) -> None:
    with pytest.raises(MicroError) as direct:
        await remote.client.call("failing", endpoint, {"id": 7}, retries=0)
    async with laptop(proxy) as client:
        with pytest.raises(cls) as through:
            await client.call("failing", endpoint, {"id": 7}, retries=0)
    assert type(through.value) is type(direct.value)
    assert through.value.to_dict() == direct.value.to_dict()


async def test_no_call_runs_more_often_than_without_the_proxy(remote: Remote, proxy: str) -> None:
    Failing.crashes = 0
    with pytest.raises(InternalServerError):
        await remote.client.call("failing", "Failing.Crash", {})
    direct, Failing.crashes = Failing.crashes, 0
    async with laptop(proxy) as client:
        with pytest.raises(InternalServerError):
            await client.call("failing", "Failing.Crash", {})
    assert Failing.crashes == direct == 2  # the proxy's client retried once, as a direct one


async def test_an_unknown_service_is_service_not_found(proxy: str) -> None:
    async with laptop(proxy) as client:
        with pytest.raises(ServiceNotFound, match="nobody"):
            await client.call("nobody", "No.Body", {})


async def test_the_deadline_holds_across_the_hop(proxy: str) -> None:
    async with laptop(proxy) as client:
        started = time.monotonic()
        with pytest.raises(Timeout):
            await client.call("failing", "Failing.Slow", {"seconds": 5}, timeout=0.5)
        assert time.monotonic() - started < 2


async def test_metadata_goes_along_and_the_token_does_not(remote: Remote) -> None:
    address = await remote.start_proxy(token=TOKEN)
    async with laptop(address, token=TOKEN, from_service="laptop") as client:
        got = await client.call("headers", "Headers.Echo", {}, metadata={"x-user-id": "42"})
    assert got["X-User-Id"] == "42"
    assert got["Micro-From-Service"] == "laptop"
    assert "Authorization" not in got
    assert TOKEN not in str(got)


async def test_a_call_to_one_node_by_address(remote: Remote, proxy: str) -> None:
    node = (await remote.registry.get_service("greeter"))[0].nodes[0]
    async with laptop(proxy) as client:
        rsp = await client.call("greeter", "Greeter.SayHello", {"name": "N"}, address=node.address)
        assert rsp == {"msg": "Hello N"}
        other = (await remote.registry.get_service("headers"))[0].nodes[0]
        with pytest.raises(MicroError) as caught:  # that node does not serve greeter
            await client.call("greeter", "Greeter.SayHello", {}, address=other.address, retries=0)
        assert caught.value.code == 404


async def test_wrappers_see_the_proxy_as_the_node(proxy: str) -> None:
    seen: list[Node] = []

    def record(next_call: CallFunc) -> CallFunc:
        async def wrapped(node: Node, req: Request, opts: CallOptions) -> Any:
            seen.append(node)
            return await next_call(node, req, opts)

        return wrapped

    async with laptop(proxy, wrappers=[record]) as client:
        await client.call("greeter", "Greeter.SayHello", {"name": "W"})
    assert [n.address for n in seen] == [proxy]
    assert seen[0].metadata["proxy"] == f"http://{proxy}"


async def test_a_server_stream(proxy: str) -> None:
    async with (
        laptop(proxy) as client,
        client.stream("greeter", "Counter.Count", {"to": 3, "delay": 0.01}) as stream,
    ):
        items = [item async for item in stream]
    assert items == [{"n": 1}, {"n": 2}, {"n": 3}]


async def test_a_bidirectional_stream_with_close_send(proxy: str) -> None:
    async with laptop(proxy) as client:
        stream = client.stream("greeter", "Counter.Echo", response_type=dict)
        async with stream:
            for word in ("one", "two"):
                await stream.send({"text": word})
                assert await stream.recv() == {"text": word.upper()}
            await stream.close_send()
            with pytest.raises(StopAsyncIteration):  # the handler ends once we ended our side
                await asyncio.wait_for(stream.recv(), 5)


async def test_stream_messages_decode_into_the_response_type(proxy: str) -> None:
    async with laptop(proxy) as client:
        stream = client.stream("greeter", "Counter.Count", {"to": 2}, response_type=Tick)
        async with stream:
            assert [t async for t in stream] == [Tick(1), Tick(2)]


async def test_a_stream_error_arrives_as_its_class(proxy: str) -> None:
    async with laptop(proxy) as client:
        stream = client.stream("nobody", "No.Body", {})
        async with stream:
            with pytest.raises(NotFound, match="nobody"):
                await stream.recv()


async def test_publish_reaches_a_remote_subscriber(remote: Remote, proxy: str) -> None:
    got: list[Event] = []
    arrived = asyncio.Event()

    async def on_event(event: Event) -> None:
        got.append(event)
        arrived.set()

    await remote.broker.subscribe("user.created", on_event)
    async with laptop(proxy, from_service="laptop") as client:
        await client.publish("user.created", {"id": 1}, metadata={"x-trace": "t1"})
    await asyncio.wait_for(arrived.wait(), 5)
    header = got[0].message.header
    assert got[0].message.body == b'{"id":1}'
    assert header["Content-Type"] == "application/json"
    assert header["Micro-Topic"] == "user.created"
    assert header["Micro-From-Service"] == "laptop"
    assert header["X-Trace"] == "t1"
    assert len(header["Micro-Id"]) == 36


async def test_a_token_is_required_and_checked(remote: Remote) -> None:
    address = await remote.start_proxy(token=TOKEN)
    async with laptop(address) as client:
        with pytest.raises(Unauthorized, match="requires a token"):
            await client.call("greeter", "Greeter.SayHello", {"name": "x"})
        with pytest.raises(Unauthorized):
            await client.publish("t", {})
        with pytest.raises(Unauthorized):
            async with client.stream("greeter", "Counter.Count", {"to": 1}) as stream:
                await stream.recv()
    async with laptop(address, token="wrong") as client:
        with pytest.raises(Unauthorized, match="refused the token"):
            await client.call("greeter", "Greeter.SayHello", {"name": "x"})
    async with laptop(address, token=TOKEN) as client:
        assert await client.call("greeter", "Greeter.SayHello", {"name": "x"}) == {"msg": "Hello x"}


async def test_the_blocking_client_goes_through_the_proxy(proxy: str) -> None:
    def run() -> Any:
        with RpcClient.blocking(proxy=proxy, settings=laptop_settings()) as client:
            return client.call("greeter", "Greeter.SayHello", {"name": "B"})

    assert await asyncio.to_thread(run) == {"msg": "Hello B"}
