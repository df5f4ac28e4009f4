"""The real ``micro mcp`` process (over stdio and Streamable HTTP) in front of real service
processes over mDNS on loopback, driven by the MCP SDK's own client.

Each test module uses its own name prefix, so the shared loopback mDNS registry holds
nothing that another test sees.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import httpx2
import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.session import IncomingMessage, MessageHandlerFnT
from mcp.client.streamable_http import streamable_http_client

from tests.toolkit.api.test_process import Proc, free_port

ROOT = Path(__file__).resolve().parents[3]
SERVICE = "tests/toolkit/mcp/tools_service.py"
PY = sys.executable


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MICRO_")}
    env.update(
        MICRO_MDNS_INTERFACES="127.0.0.1",
        MICRO_SERVER_ADDRESS="127.0.0.1:0",
        PYTHONPATH=f"{ROOT}:{ROOT / 'src'}",
    )
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def ns() -> str:
    return f"mcp-{uuid.uuid4().hex[:8]}"


def start_service(name: str, tmp: Path) -> Proc:
    """The test service as a process registered as ``name``."""
    return Proc([PY, SERVICE, "--server_name", name], tmp / f"{name}.log", base_env())


@pytest.fixture(scope="module")
def tools_service(ns: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``<ns>.tools``: the test service, for the whole module."""
    name = f"{ns}.tools"
    proc = start_service(name, tmp_path_factory.mktemp("services"))
    yield name
    proc.stop()


@asynccontextmanager
async def stdio(
    *flags: str, mode: str = "auto", on_message: MessageHandlerFnT | None = None
) -> AsyncIterator[Client]:
    """An SDK client over stdio to a ``micro mcp`` process it spawns."""
    params = StdioServerParameters(
        command=PY, args=["-m", "micro.toolkit.mcp", *flags], env=base_env(), cwd=str(ROOT)
    )
    async with Client(params, mode=mode, message_handler=on_message, cache=None) as client:
        yield client


class HttpMcp:
    """A ``micro mcp --address`` process; ``client()`` connects the SDK's client."""

    def __init__(self, tmp: Path, *flags: str) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        args = [PY, "-m", "micro.toolkit.mcp", "--address", f"127.0.0.1:{port}", *flags]
        self.proc = Proc(args, tmp / f"mcp-{port}.log", base_env())
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.stop()
                raise AssertionError(f"micro mcp did not start:\n{self.proc.text()}")
            time.sleep(0.1)

    @asynccontextmanager
    async def client(
        self,
        token: str | None = None,
        mode: str = "auto",
        on_message: MessageHandlerFnT | None = None,
    ) -> AsyncIterator[Client]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
            transport = streamable_http_client(self.url + "/mcp", http_client=http)
            async with Client(
                transport, mode=mode, message_handler=on_message, cache=None
            ) as client:
                yield client


@pytest.fixture
def http_mcp(tmp_path: Path) -> Iterator[Callable[..., HttpMcp]]:
    started: list[HttpMcp] = []

    def start(*flags: str) -> HttpMcp:
        server = HttpMcp(tmp_path, *flags)
        started.append(server)
        return server

    yield start
    for server in started:
        server.proc.stop()


async def tool_names(client: Client) -> set[str]:
    return {t.name for t in (await client.list_tools()).tools}


async def wait_tools(
    client: Client, check: Callable[[set[str]], bool], timeout: float = 20
) -> set[str]:
    """The tool names once ``check`` holds for them (polls ``tools/list``)."""
    deadline = time.monotonic() + timeout
    while True:
        names = await tool_names(client)
        if check(names):
            return names
        assert time.monotonic() < deadline, f"tools never as expected: {sorted(names)}"
        await asyncio.sleep(0.2)


class Notifications:
    """A message handler that records ``notifications/tools/list_changed``."""

    def __init__(self) -> None:
        self.count = 0
        self.event = asyncio.Event()

    async def __call__(self, message: IncomingMessage) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            self.count += 1
            self.event.set()

    async def wait(self, timeout: float = 20) -> None:
        async with asyncio.timeout(timeout):
            await self.event.wait()
        self.event.clear()
