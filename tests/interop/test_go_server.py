"""micro's client streams against a go-micro v1.0 server (the simulated peer)."""

from __future__ import annotations

import pytest

from micro.client.rpc import RpcClient
from micro.errors import MicroError
from tests.interop.go_v1 import SERVICE, GoV1Server


async def test_server_stream_gets_its_request(client: RpcClient, go_server: GoV1Server) -> None:
    async with client.stream(SERVICE, "Say.Stream", {"name": "John"}, timeout=2) as stream:
        items = [item async for item in stream]
    assert items == [{"msg": f"Hello John #{n}"} for n in range(3)]
    assert [r.request for r in go_server.received] == [{"name": "John"}]


async def test_unknown_stream_endpoint(client: RpcClient, go_server: GoV1Server) -> None:
    async with client.stream(SERVICE, "Say.Nope", {"name": "x"}, timeout=2) as stream:
        with pytest.raises(MicroError) as info:
            await stream.recv()
    assert (info.value.code, info.value.detail) == (0, "rpc: can't find method Nope")
