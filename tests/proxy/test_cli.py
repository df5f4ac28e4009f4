"""Every ``micro`` command through a proxy, from a process that knows only the proxy's
address: the services live in a memory registry inside this test process, which the proxy
alone can read (the command also names a remote etcd it could not reach)."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import pexpect
import pytest

from micro.broker import Event
from tests.proxy.conftest import TOKEN, Remote
from tests.toolkit.cli.conftest import MICRO, base_env, free_port

pytestmark = pytest.mark.integration


def proxy_env(address: str, **extra: str) -> dict[str, str]:
    return base_env(
        MICRO_PROXY_ADDRESS=address,
        MICRO_REGISTRY="etcd",  # the remote environment's: unreachable from the laptop
        MICRO_REGISTRY_ADDRESS=f"127.0.0.1:{free_port()}",
        **extra,
    )


async def micro(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``micro args...`` in a thread, so that the proxy in this loop keeps serving."""

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [MICRO, *args], env=env, capture_output=True, text=True, timeout=30, check=False
        )

    return await asyncio.to_thread(run)


async def micro_json(*args: str, env: dict[str, str]) -> Any:
    done = await micro("-o", "json", *args, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.slow
async def test_every_command_works_through_the_proxy(remote: Remote, proxy: str) -> None:
    env = proxy_env(proxy)
    assert {"greeter", "failing", "headers"} <= set(await micro_json("list", "services", env=env))
    [greeter] = await micro_json("get", "service", "greeter", env=env)
    assert "Greeter.SayHello" in {e["name"] for e in greeter["endpoints"]}
    assert len(await micro_json("list", "nodes", "greeter", env=env)) == 1

    call = await micro_json("call", "greeter", "Greeter.SayHello", '{"name": "CLI"}', env=env)
    assert call == {"msg": "Hello CLI"}
    streamed = await micro_json("stream", "greeter", "Counter.Count", '{"to": 3}', env=env)
    assert streamed == [{"n": 1}, {"n": 2}, {"n": 3}]

    [health] = await micro_json("health", "greeter", env=env)
    assert health["status"] == "ok", health
    [stats] = await micro_json("stats", "greeter", env=env)
    assert "error" not in stats, stats

    got: list[Event] = []
    await remote.broker.subscribe("cli.events", lambda e: _append(got, e))
    published = await micro_json("publish", "cli.events", '{"n": 1}', env=env)
    assert published == {"topic": "cli.events", "published": True}
    await _eventually(lambda: len(got) == 1)
    assert json.loads(got[0].message.body) == {"n": 1}

    record = {"name": "from-cli", "nodes": [{"id": "cli-1", "address": "127.0.0.1:9"}]}
    await micro_json("register", "service", json.dumps(record), env=env)
    assert (await remote.registry.get_service("from-cli"))[0].nodes[0].id == "cli-1"
    await micro_json("deregister", "service", json.dumps(record), env=env)
    assert [s.name for s in await remote.registry.list_services()].count("from-cli") == 0


async def test_errors_read_as_the_services_through_the_proxy(proxy: str) -> None:
    env = proxy_env(proxy)
    missing = await micro("call", "failing", "Failing.Missing", '{"id": 7}', env=env)
    assert missing.returncode == 1
    assert "no user 7 (404 Not Found)" in missing.stderr
    nobody = await micro("call", "nobody", "No.Body", "{}", env=env)
    assert nobody.stderr.strip() == "micro: service not found: nobody"
    unknown = await micro("get", "service", "nobody", env=env)
    assert unknown.stderr.strip() == "micro: service not found: nobody"


async def test_an_unreachable_proxy_is_one_line_naming_it() -> None:
    address = f"127.0.0.1:{free_port()}"
    env = proxy_env(address)
    expected = f"micro: cannot reach the proxy at http://{address}: "
    for args in (
        ("list", "services"),
        ("call", "greeter", "Greeter.SayHello", "{}"),
        ("publish", "t", "{}"),
        ("health", "greeter"),
    ):
        done = await micro(*args, env=env)
        assert done.returncode == 1, (args, done.stderr)
        assert done.stderr.startswith(expected), (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    bad = await micro("list", "services", env=proxy_env("proxy.example"))
    assert bad.returncode == 2
    assert "has no port" in bad.stderr


async def test_the_token_flag(remote: Remote) -> None:
    address = await remote.start_proxy(token=TOKEN)
    refused = await micro("list", "services", env=proxy_env(address))
    assert refused.returncode == 1
    assert "requires a token" in refused.stderr
    listed = await micro_json("--proxy-token", TOKEN, "list", "services", env=proxy_env(address))
    assert "greeter" in listed
    flag_only = base_env()
    call = await micro_json(
        "--proxy-address",
        address,
        "--proxy-token",
        TOKEN,
        "call",
        "greeter",
        "Greeter.SayHello",
        '{"name": "Flag"}',
        env=flag_only,
    )
    assert call == {"msg": "Hello Flag"}


async def test_the_shell_through_the_proxy(proxy: str, tmp_path: Path) -> None:
    env = proxy_env(
        proxy,
        MICRO_CLI_HISTORY=str(tmp_path / "history"),
        TERM="xterm",
        PROMPT_TOOLKIT_NO_CPR="1",
    )

    def session() -> None:
        child = pexpect.spawn(MICRO, ["cli"], env=env, encoding="utf-8", timeout=15)
        child.setwinsize(40, 200)
        try:
            child.expect_exact("micro>")
            child.send("list services\r")
            child.expect_exact("greeter")
            child.expect_exact("micro>")
            child.send("""call greeter Greeter.SayHello {"name": "Shell"}\r""")
            child.expect_exact('"msg": "Hello Shell"')
            child.expect_exact("micro>")
            child.send("quit\r")
            child.expect(pexpect.EOF)
        finally:
            child.close(force=True)

    await asyncio.to_thread(session)


async def _append(events: list[Event], event: Event) -> None:
    events.append(event)


async def _eventually(condition: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)
