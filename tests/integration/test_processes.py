"""The issue's done-when, end to end: real processes, default mDNS registry, HTTP transport."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time

import pytest

import micro
from micro.registry.mdns import MdnsRegistry
from tests.integration.conftest import ROOT, SpawnFn, wait_gone, wait_registered

pytestmark = pytest.mark.integration


async def test_greeter_called_from_a_second_process(
    spawn: SpawnFn, registry: MdnsRegistry, unique_name: str
) -> None:
    await spawn("tests/integration/greeter_service.py", unique_name)
    service = await wait_registered(registry, unique_name)
    assert [ep.name for ep in service.endpoints] == ["Greeter.SayHello"]
    assert service.nodes[0].address.startswith("127.0.0.1:")
    assert service.nodes[0].metadata["protocol"] == "mucp"

    code = (
        "import asyncio, sys, micro\n"
        "async def main():\n"
        "    async with micro.Client() as c:\n"
        "        r = await c.call(sys.argv[1], 'Greeter.SayHello', {'name': 'John'}, timeout=3)\n"
        "        print(r['msg'])\n"
        "asyncio.run(main())\n"
    )
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, unique_name, stdout=asyncio.subprocess.PIPE, env=os.environ
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0
    assert out.decode().strip() == "Hello John"
    # a fresh process discovers over mDNS and calls well within the 2 s discovery budget
    assert time.monotonic() - started < 5


async def test_curl_calls_the_service(
    spawn: SpawnFn, registry: MdnsRegistry, unique_name: str
) -> None:
    await spawn("tests/integration/greeter_service.py", unique_name)
    address = (await wait_registered(registry, unique_name)).nodes[0].address
    proc = await asyncio.create_subprocess_exec(
        "curl", "-sS", "-i", f"http://{address}/",
        "-H", "Content-Type: application/json",
        "-H", f"Micro-Service: {unique_name}",
        "-H", "Micro-Endpoint: Greeter.SayHello",
        "-d", '{"name": "curl"}',
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 10)
    head, _, body = out.decode().partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 200")
    assert json.loads(body) == {"msg": "Hello curl"}

    proc = await asyncio.create_subprocess_exec(
        "curl", "-sS", "-i", f"http://{address}/",
        "-H", "Content-Type: application/json",
        "-H", "Micro-Endpoint: Greeter.SayHello",
        "-d", '{"name": 42}',
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 10)
    headers = out.decode().lower()
    assert "micro-error:" in headers
    error_line = next(h for h in out.decode().splitlines() if h.lower().startswith("micro-error:"))
    err = micro.errors.MicroError.parse(error_line.split(":", 1)[1].strip())
    assert err.code == 400
    assert "$.name" in err.detail


async def test_sigkill_node_vanishes_within_its_ttl(
    spawn: SpawnFn, registry: MdnsRegistry, unique_name: str
) -> None:
    sp = await spawn(
        "tests/integration/greeter_service.py",
        unique_name,
        MICRO_REGISTER_TTL="3",
        MICRO_REGISTER_INTERVAL="1",
    )
    await wait_registered(registry, unique_name)
    sp.proc.send_signal(signal.SIGKILL)
    await sp.proc.wait()
    gone_after = await wait_gone(registry, unique_name, timeout=3 + 2)
    assert gone_after <= 5


async def test_sigterm_drains_in_flight_call_then_deregisters(
    spawn: SpawnFn, registry: MdnsRegistry, unique_name: str
) -> None:
    sp = await spawn("tests/integration/slow_service.py", unique_name)
    await wait_registered(registry, unique_name)
    async with micro.Client(registry=registry) as client:
        call = asyncio.create_task(
            client.call(unique_name, "Sleeper.Sleep", {"seconds": 1.0}, timeout=5, retries=0)
        )
        await asyncio.sleep(0.3)  # the call is in flight on the server
        sp.proc.send_signal(signal.SIGTERM)
        assert await call == {"slept": 1.0}
    assert await asyncio.wait_for(sp.proc.wait(), 10) == 0
    await wait_gone(registry, unique_name, timeout=2)


def test_core_never_imports_the_toolkit() -> None:
    core = [p for p in (ROOT / "src/micro").rglob("*.py") if "toolkit" not in p.parts]
    offenders = [str(p) for p in core if "micro.toolkit" in p.read_text()]
    assert offenders == []
