"""A small stand-in for the dashboard app, for the data handlers' tests.

:class:`Harness` has what the handlers use (options, settings, a real registry over mDNS
on loopback, a selector, a client with :func:`record_node`, a broker, ``read_body``,
``live``) and routes ``/_/...`` to the handlers; :func:`serve` runs it under uvicorn on a
free loopback port, so SSE, WebSocket and disconnects are real HTTP.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from micro import plugins
from micro.broker import Broker
from micro.client.rpc import RpcClient
from micro.registry import Registry
from micro.selector import Selector
from micro.settings import BACKEND_GROUPS, Settings, load
from micro.toolkit.api._http import read_body
from micro.toolkit.web import calls, live, nodes, terminal
from micro.toolkit.web.live import Live
from micro.toolkit.web.options import WebOptions

ROOT = Path(__file__).resolve().parents[3]
DATA_SERVICE = Path(__file__).resolve().with_name("data_service.py")
GREETER = ROOT / "tests" / "integration" / "greeter_service.py"


class Harness:
    """Just enough of the dashboard for the live/nodes/calls/terminal routes."""

    def __init__(
        self, options: WebOptions, settings: Settings, registry: Registry | None = None
    ) -> None:
        self.options = options
        self.settings = settings
        self.registry = registry or plugins.create("registry", settings=settings)
        self.client = RpcClient(
            registry=self.registry, settings=settings, wrappers=[calls.record_node]
        )
        self._broker: Broker | None = None
        self.live = Live(self)
        self.routes: dict[str, ASGIApp] = {
            **live.routes(self),
            **nodes.routes(self),
            **calls.routes(self),
            **terminal.routes(self),
        }

    @property
    def selector(self) -> Selector:
        assert self.client.selector is not None
        return self.client.selector

    @property
    def broker(self) -> Broker:
        if self._broker is None:
            self._broker = plugins.create_broker(registry=self.registry, settings=self.settings)
        return self._broker

    async def read_body(self, scope: Scope, receive: Receive) -> bytes:
        return await read_body(
            scope, receive, limit=self.options.max_body, timeout=self.options.read_timeout
        )

    async def start(self) -> None:
        await self.registry.start()
        await self.client.start()
        await self.live.start()

    async def close(self) -> None:
        await self.live.close()
        if self._broker is not None:
            await self._broker.disconnect()
        await self.client.close()
        await self.registry.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self.routes.get(scope["path"])
        if app is not None:
            await app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 4404})
            return
        body = b'{"error":{"detail":"no such route"}}'
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": body})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def serve(
    registry: Registry | None = None, **options: Any
) -> AsyncIterator[tuple[Harness, str]]:
    """A started :class:`Harness` behind uvicorn; yields it and its base URL."""
    options.setdefault("access_log", False)
    harness = Harness(WebOptions(**options), load(groups=BACKEND_GROUPS), registry)
    await harness.start()
    port = free_port()
    config = uvicorn.Config(
        harness,
        host="127.0.0.1",
        port=port,
        lifespan="off",
        log_level="warning",
        ws="websockets-sansio",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), "uvicorn did not start"
            await asyncio.sleep(0.02)
        yield harness, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await harness.live.close()  # ends the event streams, so uvicorn can stop
        await asyncio.wait_for(task, 10)
        await harness.close()


# -- service processes ----------------------------------------------------------------------


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MICRO_")}
    env.update(
        MICRO_MDNS_INTERFACES="127.0.0.1", MICRO_SERVER_ADDRESS="127.0.0.1:0", PYTHONPATH=str(ROOT)
    )
    env.update(extra)
    return env


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


Spawn = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Start service scripts (``script, name, *args``); all are killed when the test ends."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(script: Path, name: str, *args: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, str(script), "--server_name", name, *args],
            env=base_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


async def wait_for(check: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    """Poll ``check()`` (sync) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.05)


def records(path: Path) -> list[dict[str, Any]]:
    """The JSON lines ``data_service.py --record`` wrote so far."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    """``(event, data)`` pairs of a Server-Sent Events response; ``("", ": ping")`` for pings."""
    event, data = "", []
    async for line in response.aiter_lines():
        if line.startswith(":"):
            yield "", line
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif not line and (event or data):
            yield event or "message", "\n".join(data)
            event, data = "", []
