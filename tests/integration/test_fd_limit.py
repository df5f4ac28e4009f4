"""A service under a 1,024 file-descriptor limit keeps serving while another process holds
1,100 idle connections to it: the listener's default limit stays under the descriptor limit
and makes room by closing the connections idle longest."""

from __future__ import annotations

import asyncio
import os
import resource
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from micro.client.rpc import RpcClient
from micro.transport.http import HttpTransport
from tests.integration.conftest import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]

IDLE_CONNECTIONS = 1100

SERVER = """
import asyncio, resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))
from micro.registry.memory import MemoryRegistry
from micro.server.rpc import RpcServer
from micro.transport.http import HttpTransport
from tests.server.handlers import Say

async def main():
    server = RpcServer(name="greeter", address="127.0.0.1:0", transport=HttpTransport(),
                       registry=MemoryRegistry(), register_interval=0)
    server.handle(Say())
    await server.start()
    print(server.address, flush=True)
    await asyncio.Event().wait()

if sys.argv[1] == "uvloop":
    import uvloop
    uvloop.run(main())
else:
    asyncio.run(main())
"""

OPENER = """
import resource, socket, sys
_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
host, port = sys.argv[1].rsplit(":", 1)
held = [socket.create_connection((host, int(port)), timeout=5) for _ in range(int(sys.argv[2]))]
print(len(held), flush=True)
sys.stdin.read()  # hold them, sending nothing, until the test ends
"""


Start = Callable[..., Awaitable[asyncio.subprocess.Process]]


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Start]:
    """Runs ``python -c code args``; its stderr goes to ``tmp_path/<name>.log`` (a pipe
    nobody reads would stall the child, and a paused pipe stalls ``wait``)."""
    started: list[asyncio.subprocess.Process] = []

    async def run(name: str, code: str, *args: str) -> asyncio.subprocess.Process:
        with (tmp_path / f"{name}.log").open("wb") as log:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                code,
                *args,
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
            )
        started.append(proc)
        return proc

    yield run
    for proc in started:
        if proc.returncode is None:
            proc.kill()
    for proc in started:
        await asyncio.wait_for(proc.communicate(), 10)


async def first_line(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 10)
    assert line, "the process exited (its log is in the test's tmp_path)"
    return line.decode().strip()


@pytest.mark.skipif(
    resource.getrlimit(resource.RLIMIT_NOFILE)[1] < IDLE_CONNECTIONS + 100,
    reason="the opening process needs more than 1,100 descriptors",
)
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
async def test_valid_calls_succeed_while_idle_connections_exceed_the_fd_limit(
    start: Start, tmp_path: Path, loop: str
) -> None:
    async with asyncio.timeout(20):
        server = await start("server", SERVER, loop)
        address = await first_line(server)
        opener = await start("opener", OPENER, address, str(IDLE_CONNECTIONS))
        assert await first_line(opener) == str(IDLE_CONNECTIONS)
        transport = HttpTransport()
        try:
            for n in range(20):  # a new connection for every call, each accepted and served
                async with RpcClient(transport=transport, retries=0, pool_size=0) as client:
                    reply = await client.call(
                        "greeter", "Say.Hello", {"name": f"n{n}"}, address=address, timeout=5
                    )
                assert reply == {"msg": f"Hello n{n}"}
        finally:
            await transport.close()

    server.kill()
    await asyncio.wait_for(server.communicate(), 10)
    log = (tmp_path / "server.log").read_text()
    assert "Traceback" not in log
    assert log.count("the limit of this listener") == 1, log
