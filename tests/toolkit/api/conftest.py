"""In-process gateway fixtures: real RpcServers on memory backends, the app via httpx."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp

from micro.broker.memory import MemoryBroker
from micro.client.rpc import RpcClient
from micro.registry.memory import MemoryRegistry
from micro.server.rpc import RpcServer
from micro.toolkit.api import ApiOptions, Gateway
from micro.transport.memory import MemoryTransport
from tests.toolkit.api.services import Auth, Calc, Failing, Shop

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from examples.greeter.server import Greeter
from examples.streaming.server import Counter

GREETER_META = {"Greeter.SayHello": {"path": "^/hello$", "method": "POST", "handler": "rpc"}}
SHOP_META = {"Shop.Items": {"path": "^/store(/|$)", "handler": "api"}}


class Stack:
    """Memory registry, transport and broker with the test services, and a gateway maker."""

    def __init__(self) -> None:
        self.registry = MemoryRegistry()
        self.transport = MemoryTransport()
        self.broker = MemoryBroker()
        self.client = RpcClient(
            registry=self.registry, transport=self.transport, broker=self.broker
        )
        self.servers: list[RpcServer] = []
        self.exits = AsyncExitStack()

    async def serve(
        self, name: str, *handlers: object, meta: dict[str, Any] | None = None
    ) -> RpcServer:
        server = RpcServer(
            name=name, address="127.0.0.1:0", registry=self.registry, transport=self.transport
        )
        for handler in handlers:
            server.handle(handler, metadata=meta)
        await server.start()
        self.servers.append(server)
        return server

    async def gateway(self, **options: Any) -> tuple[Gateway, httpx.AsyncClient]:
        auth = options.pop("auth", None)
        selector = options.pop("selector", None)
        options.setdefault("access_log", False)
        gw = Gateway(
            ApiOptions(**options),
            registry=self.registry,
            selector=selector,
            client=self.client,
            auth=auth,
        )
        self.exits.push_async_callback(gw.close)
        http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=gw, client=("10.1.2.3", 5000)),
            base_url="http://gateway",
        )
        self.exits.push_async_callback(http.aclose)
        await gw.start()
        return gw, http

    async def close(self) -> None:
        await self.exits.aclose()
        for server in self.servers:
            await server.stop(grace=0.5)
        await self.client.close()
        await self.broker.disconnect()
        await self.registry.close()


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    s = Stack()
    await s.broker.connect()
    await s.serve("go.micro.api.greeter", Greeter(), Counter(), meta=GREETER_META)
    await s.serve("go.micro.api.calc", Calc())
    await s.serve("go.micro.api.failing", Failing())
    await s.serve("go.micro.api.shop", Shop(), meta=SHOP_META)
    await s.serve("go.micro.auth", Auth())
    yield s
    await s.close()


MakeGateway = Callable[..., Any]


@asynccontextmanager
async def asgi_server(app: ASGIApp) -> AsyncIterator[str]:
    """``app`` served by uvicorn on a free loopback port; yields its ``host:port``."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", access_log=False
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), "uvicorn did not start"
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
