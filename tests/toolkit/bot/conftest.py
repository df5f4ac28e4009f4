"""A bot over real RpcServers on a memory registry, and an input fed by the test."""

from __future__ import annotations

import asyncio
import base64
import importlib.util
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from micro.client.rpc import RpcClient
from micro.registry.memory import MemoryRegistry
from micro.server.rpc import RpcServer
from micro.settings import BACKEND_GROUPS, BOT_GROUPS, SERVICE_GROUPS, load
from micro.toolkit.bot import Bot, Event, Input
from micro.toolkit.cli.runtime import Runtime

ROOT = Path(__file__).resolve().parents[3]


def load_example() -> Any:
    """examples/bot-command/command.py as a module."""
    spec = importlib.util.spec_from_file_location(
        "bot_command_example", ROOT / "examples" / "bot-command" / "command.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Greeter:
    async def say_hello(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"msg": f"Hello {req.get('name')}"}


class Command:
    """A command service speaking go-micro's JSON shapes, recording what it was sent."""

    def __init__(self, delay: float = 0.0) -> None:
        self.received: list[dict[str, Any]] = []
        self.delay = delay

    async def help(self, req: dict[str, Any]) -> dict[str, Any]:
        self.received.append(req)
        return {"usage": "shout [text]", "description": "Shouts the text"}

    async def exec(self, req: dict[str, Any]) -> dict[str, Any]:
        self.received.append(req)
        await asyncio.sleep(self.delay)
        args = req.get("args") or []
        if len(args) < 2:
            return {"result": "", "error": "shout what?"}
        text = " ".join(args[1:]).upper().encode()
        return {"result": base64.b64encode(text).decode(), "error": ""}


class MemoryInput(Input):
    """Events the test puts in; replies collected in ``replies``."""

    name = "memory"

    def __init__(
        self,
        *,
        code_blocks: bool = False,
        users: tuple[str, ...] | None = None,
        max_chars: int | None = None,
    ) -> None:
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self.replies: asyncio.Queue[tuple[Event, str]] = asyncio.Queue()
        self.code_blocks = code_blocks  # type: ignore[misc]
        self.max_chars = max_chars  # type: ignore[misc]
        self.users = users

    async def connect(self) -> None:
        return None

    async def events(self) -> AsyncIterator[Event]:
        while (event := await self.queue.get()) is not None:
            yield event

    async def send(self, event: Event, reply: str) -> None:
        await self.replies.put((event, reply))

    def default_users(self) -> tuple[str, ...] | None:
        return self.users

    def say(self, text: str, sender: str = "alice") -> None:
        self.queue.put_nowait(Event(text=text, sender=sender, channel="room"))

    async def reply(self, timeout: float = 5.0) -> str:
        async with asyncio.timeout(timeout):
            _, text = await self.replies.get()
        return text


class Env:
    """A memory registry with real servers, a client and a runtime the bot shares."""

    def __init__(self) -> None:
        self.registry = MemoryRegistry()
        self.client = RpcClient(
            registry=self.registry, settings=load(groups=BACKEND_GROUPS, environ={})
        )
        self.servers: list[RpcServer] = []

    async def serve(self, name: str, handler: object) -> RpcServer:
        server = RpcServer(
            name=name,
            address="127.0.0.1:0",
            registry=self.registry,
            settings=load(groups=SERVICE_GROUPS, environ={}),
        )
        server.handle(handler)
        await server.start()
        self.servers.append(server)
        return server

    def bot(self, *inputs: Input, **env: str) -> Bot:
        settings = load(groups=BOT_GROUPS, environ={"MICRO_REGISTRY": "memory", **env})
        rt = Runtime(settings)
        rt.registry, rt._client = self.registry, self.client
        return Bot(rt, inputs, settings)


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    made = Env()
    try:
        yield made
    finally:
        for server in made.servers:
            await server.stop()
        await made.client.close()
