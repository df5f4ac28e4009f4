"""The proxy over real services on memory backends: in-process through httpx, or served by
uvicorn on a free loopback port (for WebSockets and TLS)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn

from micro.settings import PROXY_GROUPS, Settings, load
from micro.toolkit.api.connections import server_config
from micro.toolkit.proxy import ProxyApp, ProxyOptions
from tests.toolkit.api.conftest import Stack
from tests.toolkit.api.services import Calc, Failing, Headers
from tests.toolkit.proxy.services import Ticker

TOKEN = "s3cret"


def quiet_settings(**env: str) -> Settings:
    """Proxy settings from ``env`` only (not the test process's environment)."""
    return load(groups=PROXY_GROUPS, environ=env)


class ProxyStack(Stack):
    """The gateway tests' stack (memory registry, transport, broker, real servers) with a
    proxy maker."""

    async def proxy(self, **options: Any) -> tuple[ProxyApp, httpx.AsyncClient]:
        app = self.app(**options)
        http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("10.1.2.3", 5000)),
            base_url="http://proxy",
        )
        self.exits.push_async_callback(http.aclose)
        await app.start()
        return app, http

    def app(self, **options: Any) -> ProxyApp:
        auth = options.pop("auth", None)
        settings = options.pop("settings", None) or quiet_settings()
        broker = options.pop("broker", self.broker)
        options.setdefault("access_log", False)
        app = ProxyApp(
            ProxyOptions(**options),
            registry=self.registry,
            client=self.client,
            broker=broker,
            auth=auth,
            settings=settings,
        )
        self.exits.push_async_callback(app.close)
        return app

    async def served(self, app: ProxyApp, **tls: Any) -> str:
        """``app`` behind uvicorn (the proxy's own server config) on 127.0.0.1; its
        ``host:port``."""
        cm = serve(app, **tls)
        address = await cm.__aenter__()
        self.exits.push_async_exit(cm.__aexit__)
        return address


@asynccontextmanager
async def serve(app: ProxyApp, **tls: Any) -> AsyncIterator[str]:
    config = server_config(
        app, app.options, host="127.0.0.1", port=0, log_level="warning", lifespan="off", **tls
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                assert not task.done(), "uvicorn did not start"
                await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"127.0.0.1:{port}"
    finally:
        app.end_streams()
        server.should_exit = True
        await task


@pytest.fixture
async def stack() -> AsyncIterator[ProxyStack]:
    from examples.greeter.server import Greeter
    from examples.streaming.server import Counter

    s = ProxyStack()
    await s.broker.connect()
    await s.serve("greeter", Greeter(), Counter())
    await s.serve("calc", Calc())
    await s.serve("failing", Failing())
    await s.serve("headers", Headers())
    await s.serve("ticker", Ticker())
    yield s
    await s.close()
