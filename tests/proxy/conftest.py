"""A remote environment behind a real ``micro proxy``: services on the http transport over
loopback, registered in a memory registry only the proxy sees, a broker (memory, or NATS
JetStream), and the proxy app served by uvicorn on a free port. The laptop side under test
reaches all of it through the proxy's address alone."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from micro.broker import Broker
from micro.broker.memory import MemoryBroker
from micro.client.rpc import RpcClient
from micro.registry.memory import MemoryRegistry
from micro.server.rpc import RpcServer
from micro.settings import BACKEND_GROUPS, PROXY_GROUPS, SERVICE_GROUPS, Settings, load
from micro.toolkit.api.auth import static_tokens
from micro.toolkit.proxy import ProxyApp, ProxyOptions

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from examples.greeter.server import Greeter
from examples.streaming.server import Counter
from tests.proxy.services import Failing, Headers

TOKEN = "laptop-s3cret"


def laptop_settings(**env: str) -> Settings:
    """The laptop's settings from ``env`` only (not the test process's environment)."""
    return load(groups=BACKEND_GROUPS, environ=env)


class Remote:
    """The remote environment and its proxy (see the module docs)."""

    def __init__(self, broker: Broker | None = None) -> None:
        self.registry = MemoryRegistry()
        self.broker: Broker = broker if broker is not None else MemoryBroker()
        quiet = load(groups=BACKEND_GROUPS, environ={})
        self.client = RpcClient(registry=self.registry, broker=self.broker, settings=quiet)
        self.servers: list[RpcServer] = []
        self.app: ProxyApp | None = None
        self.address = ""
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.exits = AsyncExitStack()

    async def serve(self, name: str, *handlers: object, **subscribers: Any) -> RpcServer:
        server = RpcServer(
            name=name,
            address="127.0.0.1:0",
            registry=self.registry,
            broker=self.broker,
            settings=load(groups=SERVICE_GROUPS, environ={}),
        )
        for handler in handlers:
            server.handle(handler)
        for topic, subscriber in subscribers.items():
            server.subscribe(topic, subscriber)
        await server.start()
        self.servers.append(server)
        return server

    async def start_proxy(self, *, token: str | None = None, port: int = 0, **options: Any) -> str:
        """Serve a (new) proxy app over these backends; its ``host:port``."""
        options.setdefault("access_log", False)
        app = ProxyApp(
            ProxyOptions(**options),
            registry=self.registry,
            client=self.client,
            broker=self.broker,
            auth=static_tokens([token]) if token else None,
            settings=load(groups=PROXY_GROUPS, environ={}),
        )
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        async with asyncio.timeout(10):
            while not server.started:
                assert not task.done(), "uvicorn did not start"
                await asyncio.sleep(0.01)
        self.app, self._server, self._task = app, server, task
        self.address = f"127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
        return self.address

    async def stop_proxy(self) -> None:
        """Stop the proxy as ``micro proxy`` does on SIGTERM: sockets end, then the server."""
        app, server, task = self.app, self._server, self._task
        self.app, self._server, self._task = None, None, None
        if app is not None:
            app.end_streams()
        if server is not None and task is not None:
            server.should_exit = True
            await task
        if app is not None:
            await app.close()

    async def close(self) -> None:
        await self.stop_proxy()
        await self.exits.aclose()
        for server in self.servers:
            await server.stop(grace=0.5)
        await self.client.close()
        await self.broker.disconnect()
        await self.registry.close()


@pytest.fixture
async def remote() -> AsyncIterator[Remote]:
    """The remote environment with greeter (SayHello, Count, Echo), failing and headers
    services; its proxy is not started (``await remote.start_proxy()``)."""
    env = Remote()
    await env.broker.connect()
    await env.serve("greeter", Greeter(), Counter())
    await env.serve("failing", Failing())
    await env.serve("headers", Headers())
    yield env
    await env.close()


@pytest.fixture
async def proxy(remote: Remote) -> str:
    """The address of a proxy to ``remote`` without auth."""
    return await remote.start_proxy()
