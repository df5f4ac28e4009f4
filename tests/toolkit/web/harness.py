"""The real dashboard under uvicorn on a free loopback port, for the data handlers' tests.

:func:`serve` builds a :class:`~micro.toolkit.web.Dashboard` (a real registry over mDNS on
loopback unless one is given) and serves it, so SSE, WebSocket and disconnects are real HTTP.
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

from micro.registry import Registry
from micro.settings import BACKEND_GROUPS, load
from micro.toolkit.web import Dashboard
from micro.toolkit.web.options import WebOptions

ROOT = Path(__file__).resolve().parents[3]
DATA_SERVICE = Path(__file__).resolve().with_name("data_service.py")
GREETER = ROOT / "tests" / "integration" / "greeter_service.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def serve(
    registry: Registry | None = None, **options: Any
) -> AsyncIterator[tuple[Dashboard, str]]:
    """A started :class:`Dashboard` behind uvicorn; yields it and its base URL."""
    options.setdefault("access_log", False)
    harness = Dashboard(
        WebOptions(**options), registry=registry, settings=load(groups=BACKEND_GROUPS)
    )
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
