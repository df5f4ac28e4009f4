"""micro's client streams against a go-micro v1.0 server (the simulated peer)."""

from __future__ import annotations

import pytest

from micro.client.rpc import RpcClient
from micro.errors import ConnectionClosed, MicroError
from micro.testing import eventually
from tests.interop.go_v1 import SERVICE, GoV1Server


async def test_server_stream_gets_its_request(client: RpcClient, go_server: GoV1Server) -> None:
    async with client.stream(SERVICE, "Say.Stream", {"name": "John"}, timeout=2) as stream:
        items = [item async for item in stream]
    assert items == [{"msg": f"Hello John #{n}"} for n in range(3)]
    assert [r.request for r in go_server.received] == [{"name": "John"}]


@pytest.mark.parametrize("end", ["close_send", "close"])
async def test_no_eos_reaches_a_v1_0_handler(
    client: RpcClient, go_server: GoV1Server, end: str
) -> None:
    """v1.0 has no end-of-stream message: its handler would read ours as a request."""
    async with client.stream(SERVICE, "Say.Echo", timeout=2) as stream:
        await stream.send({"name": "a"})
        assert await stream.recv() == {"msg": "echo a"}
        if end == "close_send":
            await stream.close_send()
            with pytest.raises(ConnectionClosed):
                await stream.send({"name": "b"})
    await eventually(lambda: go_server.ended == 1)
    assert [r.request for r in go_server.received] == [{"name": "a"}]


async def test_bidi_request_is_the_first_message(client: RpcClient, go_server: GoV1Server) -> None:
    async with client.stream(SERVICE, "Say.Echo", {"name": "a"}, timeout=2) as stream:
        assert await stream.recv() == {"msg": "echo a"}
        await stream.send({"name": "b"})
        assert await stream.recv() == {"msg": "echo b"}
    await eventually(lambda: go_server.ended == 1)
    assert [r.request for r in go_server.received] == [{"name": "a"}, {"name": "b"}]


async def test_unknown_stream_endpoint(client: RpcClient, go_server: GoV1Server) -> None:
    async with client.stream(SERVICE, "Say.Nope", {"name": "x"}, timeout=2) as stream:
        with pytest.raises(MicroError) as info:
            await stream.recv()
    assert (info.value.code, info.value.detail) == (0, "rpc: can't find method Nope")
