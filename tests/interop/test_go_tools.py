"""`micro stream` and the gateway's WebSocket streams against a go-micro v1.0 node."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator

import pytest
import uvicorn
import websockets

from micro.client.rpc import RpcClient
from micro.registry.mdns import MdnsRegistry
from micro.registry.memory import MemoryRegistry
from micro.testing import eventually
from micro.toolkit.api import ApiOptions, Gateway
from micro.transport.http import HttpTransport
from tests.interop.go_v1 import GoV1Server
from tests.toolkit.cli.conftest import MICRO, base_env

pytestmark = pytest.mark.integration


async def micro(*args: str) -> tuple[int, str, str]:
    """Run the ``micro`` executable (the loop keeps serving the Go peer meanwhile)."""
    proc = await asyncio.create_subprocess_exec(
        MICRO, *args, env=base_env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(30):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def go_in_mdns() -> AsyncIterator[tuple[GoV1Server, str]]:
    """The v1.0 greeter announced over mDNS under a name of its own."""
    server = await GoV1Server().start()
    name = f"go.micro.srv.greeter-{uuid.uuid4().hex[:8]}"
    service = server.service(name)
    async with MdnsRegistry() as registry:
        await registry.register(service, ttl=30)
        try:
            yield server, name
        finally:
            await registry.deregister(service)
            await server.close()


async def test_micro_stream(go_in_mdns: tuple[GoV1Server, str]) -> None:
    server, name = go_in_mdns
    code, out, err = await micro("-o", "json", "stream", name, "Say.Stream", '{"name": "John"}')
    assert code == 0, err
    assert json.loads(out) == [{"msg": f"Hello John #{n}"} for n in range(3)]
    assert [r.request for r in server.received] == [{"name": "John"}]


async def test_micro_stream_refuses_a_go_unary_endpoint(
    go_in_mdns: tuple[GoV1Server, str],
) -> None:
    server, name = go_in_mdns
    code, out, err = await micro("stream", name, "Say.Hello", '{"name": "John"}')
    assert (code, out) == (2, "")
    assert f"use: micro call {name} Say.Hello" in err
    assert server.connections == 0  # told by the registry: nothing was called


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def gateway(go_server: GoV1Server, registry: MemoryRegistry) -> AsyncIterator[str]:
    """``micro api --namespace go.micro.srv`` in process, in front of the v1.0 greeter."""
    transport = HttpTransport()
    client = RpcClient(registry=registry, transport=transport, retries=0)
    options = ApiOptions(namespace="go.micro.srv", access_log=False)
    port = free_port()
    config = uvicorn.Config(
        Gateway(options, registry=registry, client=client),
        host="127.0.0.1",
        port=port,
        log_level="warning",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                await asyncio.sleep(0.02)
        yield f"ws://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        await client.close()
        await transport.close()


async def test_websocket_stream(gateway: str, go_server: GoV1Server) -> None:
    async with websockets.connect(gateway + "/greeter/say/stream") as ws:
        await ws.send(json.dumps({"name": "John"}))
        got = [json.loads(m) async for m in ws]
        assert ws.close_code == 1000
    assert got == [{"msg": f"Hello John #{n}"} for n in range(3)]
    assert [r.request for r in go_server.received] == [{"name": "John"}]


async def test_websocket_bidi_then_disconnect(gateway: str, go_server: GoV1Server) -> None:
    async with websockets.connect(gateway + "/greeter/say/echo") as ws:
        for name in ("a", "b"):
            await ws.send(json.dumps({"name": name}))
            assert json.loads(await ws.recv()) == {"msg": f"echo {name}"}
    await eventually(lambda: go_server.ended == 1)  # the gateway closed the stream
    assert [r.request for r in go_server.received] == [{"name": "a"}, {"name": "b"}]


async def test_websocket_to_an_unknown_go_method(gateway: str) -> None:
    async with websockets.connect(gateway + "/greeter/say/nope") as ws:
        await ws.send(json.dumps({"name": "John"}))
        error = json.loads(await ws.recv())["error"]
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
    assert (error["code"], error["detail"]) == (
        500,
        "error during request: rpc: can't find method Nope",
    )
    assert ws.close_code == 4500
