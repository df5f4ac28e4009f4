"""The tcp transport between processes: the greeter example with ``micro call``, and a
server killed with SIGKILL in the middle of a call."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time

import pytest

from micro.client.rpc import RpcClient
from micro.errors import ConnectError
from micro.registry.memory import MemoryRegistry
from micro.transport.tcp import TcpTransport
from tests.toolkit.cli.conftest import ROOT, SLOW, base_env, free_port, micro, unique

pytestmark = pytest.mark.integration

GREETER = ROOT / "examples" / "greeter" / "server.py"


async def _wait_serving(address: str, proc: asyncio.subprocess.Process) -> None:
    transport = TcpTransport()
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                sock = await transport.dial(address, timeout=1)
            except ConnectError:
                assert proc.returncode is None, "the service exited"
                assert time.monotonic() < deadline, f"nothing serves {address}"
                await asyncio.sleep(0.1)
                continue
            await sock.close()
            return
    finally:
        await transport.close()


def test_greeter_example_and_micro_call_over_tcp() -> None:
    # the example registers as "greeter": a domain of its own keeps other greeters out
    name = "greeter"
    env = base_env(MICRO_TRANSPORT="tcp", MICRO_MDNS_DOMAIN=unique("tcp"))
    proc = subprocess.Popen(
        [sys.executable, str(GREETER)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            done = micro("-o", "json", "call", name, "Greeter.SayHello", '{"name": "Tcp"}', env=env)
            if done.returncode == 0:
                break
            assert proc.poll() is None, "the greeter exited"
            assert time.monotonic() < deadline, done.stderr
            time.sleep(0.3)
        assert json.loads(done.stdout) == {"msg": "Hello Tcp"}
        node = json.loads(micro("-o", "json", "get", "service", name, env=env).stdout)
        assert "transport=tcp" in json.dumps(node) or '"transport": "tcp"' in json.dumps(node)
    finally:
        proc.kill()
        proc.wait()


async def test_a_server_killed_mid_call_fails_the_call_clearly() -> None:
    port = free_port()
    address = f"127.0.0.1:{port}"
    env = base_env(MICRO_TRANSPORT="tcp", MICRO_SERVER_ADDRESS=address, MICRO_REGISTRY="memory")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SLOW),
        "--server_name",
        "sleeper",
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    transport = TcpTransport()
    client = RpcClient(registry=MemoryRegistry(), transport=transport, retries=0)
    try:
        await _wait_serving(address, proc)
        call = asyncio.create_task(
            client.call("sleeper", "Sleeper.Sleep", {"seconds": 30}, address=address, timeout=60)
        )
        await asyncio.sleep(0.3)
        assert not call.done(), call.result()
        proc.send_signal(signal.SIGKILL)  # mid-call
        async with asyncio.timeout(10):  # no hang: the dead connection fails the call
            with pytest.raises(ConnectError) as caught:
                await call
        assert "lost" in caught.value.detail or "closed" in caught.value.detail
        with pytest.raises(ConnectError):  # and the next call dials anew, and is refused
            await client.call(
                "sleeper", "Sleeper.Sleep", {"seconds": 0}, address=address, timeout=3
            )
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        await client.close()
        await transport.close()
