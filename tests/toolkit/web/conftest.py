"""Fixtures of the dashboard's tests: a Dashboard driven in process (httpx over ASGI) or
served by uvicorn on a free loopback port, the web app of :mod:`.webapp`, a greeter.

Routing tests use the memory registry; the tests of the real ``micro web`` process use mDNS
on loopback (tests/conftest.py keeps it there).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from micro.client.rpc import RpcClient
from micro.registry.memory import MemoryRegistry
from micro.server.rpc import RpcServer
from micro.toolkit.web import Dashboard, WebOptions
from micro.transport.memory import MemoryTransport
from tests.toolkit.web import webapp

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from examples.greeter.server import Greeter

ORIGIN = "http://dash"
"""The dashboard's origin for in-process requests (their Host is ``dash``)."""


class Env:
    """A memory registry and transport, with the greeter and a maker of dashboards."""

    def __init__(self) -> None:
        self.registry = MemoryRegistry()
        self.transport = MemoryTransport()
        self.client = RpcClient(registry=self.registry, transport=self.transport)
        self.exits = AsyncExitStack()

    async def greeter(self, name: str = "greeter") -> RpcServer:
        server = RpcServer(
            name=name, address="127.0.0.1:0", registry=self.registry, transport=self.transport
        )
        server.handle(Greeter())
        await server.start()
        self.exits.push_async_callback(server.stop, grace=0.5)
        return server

    def dashboard(self, **options: Any) -> Dashboard:
        auth = options.pop("auth", None)
        options.setdefault("access_log", False)
        dash = Dashboard(
            WebOptions(**options), registry=self.registry, client=self.client, auth=auth
        )
        self.exits.push_async_callback(dash.close)
        return dash

    async def http(self, dash: Dashboard, **options: Any) -> httpx.AsyncClient:
        """An httpx client driving ``dash`` in process (peer 10.1.2.3, Host ``dash``)."""
        http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=dash, client=("10.1.2.3", 5000)),
            base_url=ORIGIN,
            **options,
        )
        self.exits.push_async_callback(http.aclose)
        await dash.start()
        return http

    async def serve(self, app: Any) -> str:
        """Serve ``app`` with uvicorn on a free loopback port; its base URL."""
        port = webapp.free_port()
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        )
        task = asyncio.create_task(server.serve())

        async def stop() -> None:
            server.should_exit = True
            await task

        self.exits.push_async_callback(stop)
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        return f"http://127.0.0.1:{port}"

    async def webapp(self, name: str, **kwargs: Any) -> str:
        """The web app registered as ``go.micro.web.<name>``; its node's address."""
        service = await self.exits.enter_async_context(webapp.serve(self.registry, name, **kwargs))
        return service.nodes[0].address

    async def close(self) -> None:
        await self.exits.aclose()
        await self.client.close()
        await self.registry.close()


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    e = Env()
    yield e
    await e.close()


MakeDashboard = Callable[..., Dashboard]
