"""The bot's built-ins and command services, against real servers on a memory registry."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from micro.registry import Node, Service
from micro.toolkit.bot import Bot, create_input
from tests.toolkit.bot.conftest import Command, Env, Greeter, MemoryInput, load_example

TERMINAL = MemoryInput()


async def ask(bot: Bot, text: str, source: Any = TERMINAL, sender: str = "alice") -> str | None:
    return await bot.handle(source, text, sender)


@asynccontextmanager
async def running(bot: Bot) -> AsyncIterator[None]:
    task = asyncio.create_task(bot.run())
    await asyncio.sleep(0.05)
    try:
        yield
    finally:
        for source in bot.inputs:
            assert isinstance(source, MemoryInput)
            source.queue.put_nowait(None)
        await asyncio.wait_for(task, 5)


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)


@pytest.mark.parametrize(
    ("text", "reply"),
    [
        ("echo hi there", "hi there"),
        ("echo", "echo what?"),
        ("hello", "hey what's up?"),
        ("ping", "pong"),
        ("list", "list what?"),
        ("get", "get what?"),
        ("get service", "require service name"),
        ("health", "health of what?"),
        ("call greeter", "call what?"),
        ("register", "register what?"),
        ("register service", "require service definition"),
        ("deregister", "deregister what?"),
    ],
)
async def test_builtin_replies(env: Env, text: str, reply: str) -> None:
    assert await ask(env.bot(), text) == reply


async def test_time_and_the_three_laws(env: Env) -> None:
    bot = env.bot()
    time = await ask(bot, "time")
    assert time is not None
    assert re.fullmatch(r"Server time is: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d \S+", time)
    laws = await ask(bot, "the three laws")
    assert laws is not None
    assert laws.startswith("1. A robot may not injure")
    assert len(laws.splitlines()) == 3
    assert await ask(bot, "three laws of robotics") == laws
    assert await ask(bot, "the three laws please") is None  # not a command: no reply


async def test_registry_commands_over_real_servers(env: Env) -> None:
    await env.serve("greeter", Greeter())
    await env.serve("billing", Greeter())
    bot = env.bot()
    assert await ask(bot, "list services") == "billing\ngreeter"
    assert (
        await ask(bot, "list nodes")
    ) == "unknown command...\nsupported commands:\nlist services"
    got = await ask(bot, "get service greeter")
    assert got is not None
    assert "greeter" in got
    assert "Greeter.SayHello" in got
    assert await ask(bot, "get service nope") == "error executing cmd: service not found: nope"
    health = await ask(bot, "health greeter")
    assert health is not None
    assert "ok" in health.split()
    assert not health.startswith("```")


async def test_call_replies_json_in_a_code_block_where_the_input_wants_it(env: Env) -> None:
    await env.serve("greeter", Greeter())
    bot = env.bot()
    plain = await ask(bot, 'call greeter Greeter.SayHello {"name": "John"}')
    assert plain is not None
    assert json.loads(plain) == {"msg": "Hello John"}
    chat = await ask(
        bot, 'call greeter Greeter.SayHello {"name": "John"}', MemoryInput(code_blocks=True)
    )
    assert chat is not None
    assert chat.startswith("```json\n")
    assert chat.endswith("\n```")
    assert json.loads(chat[len("```json\n") : -len("\n```")]) == {"msg": "Hello John"}
    missing = await ask(bot, "call greeter Greeter.Nope")
    assert missing is not None
    assert missing.startswith("error executing cmd: error calling greeter")
    assert await ask(bot, "call greeter Greeter.SayHello @/etc/passwd") == (
        "error executing cmd: expected JSON here"
    )


async def test_register_and_deregister(env: Env) -> None:
    bot = env.bot()
    definition = json.dumps({"name": "ext", "nodes": [{"id": "ext-1", "address": "10.0.0.1:9"}]})
    assert await ask(bot, f"register service {definition}") == "ok"
    assert [s.name for s in await env.registry.get_service("ext")] == ["ext"]
    assert await ask(bot, f"deregister service {definition}") == "ok"
    assert "ext" not in {s.name for s in await env.registry.list_services()}
    bad = await ask(bot, "register service {nope")
    assert bad is not None
    assert bad.startswith("error executing cmd: invalid JSON service")


async def test_command_service_help_exec_and_its_wire_shapes(env: Env) -> None:
    command = Command()
    await env.serve("go.micro.bot.shout", command)
    await env.serve("go.micro.botanist", Command())  # not in the namespace: no dot after it
    bot = env.bot()
    await bot.discover()
    assert list(bot.commands) == ["shout"]
    assert (await ask(bot, "help") or "").endswith(
        "help - Returns the list of commands\nshout [text] - Shouts the text"
    )
    assert await ask(bot, "shout hi there") == "HI THERE"  # result decoded from base64
    assert await ask(bot, "shout") == "error executing cmd: shout what?"
    assert command.received == [{}, {"args": ["shout", "hi", "there"]}, {"args": ["shout"]}]


async def test_the_example_command_service(env: Env) -> None:
    example = load_example()
    await env.serve("go.micro.bot.roll", example.Command())
    bot = env.bot()
    await bot.discover()
    assert "roll [sides] - Rolls a die (6 sides unless told)" in (await ask(bot, "help") or "")
    assert await ask(bot, "roll 1") == "rolled 1"
    assert (
        await ask(bot, "roll x") == "error executing cmd: sides must be a positive number, got 'x'"
    )


async def test_a_command_service_that_comes_later_is_picked_up_and_one_that_goes_dropped(
    env: Env,
) -> None:
    source = MemoryInput()
    bot = env.bot(source, MICRO_BOT_NAMESPACE="acme.bot")
    async with running(bot):
        assert bot.commands == {}
        server = await env.serve("acme.bot.shout", Command())
        await until(lambda: "shout" in bot.commands)
        source.say("shout late")
        assert await source.reply() == "LATE"
        await server.stop()
        env.servers.remove(server)
        await until(lambda: "shout" not in bot.commands)
        source.say("shout gone")
    assert source.replies.empty()  # unknown commands get no reply on a chat input


async def test_one_node_leaving_keeps_the_command(env: Env) -> None:
    source = MemoryInput()
    bot = env.bot(source)
    await env.serve("go.micro.bot.shout", Command())
    async with running(bot):
        await until(lambda: "shout" in bot.commands)
        extra = Service(
            name="go.micro.bot.shout", version="9", nodes=[Node(id="x", address="10.0.0.9:1")]
        )
        await env.registry.register(extra)
        await env.registry.deregister(extra)
        await asyncio.sleep(0.2)
        assert "shout" in bot.commands


async def test_a_slow_command_times_out_without_holding_up_others(env: Env) -> None:
    await env.serve("go.micro.bot.shout", Command(delay=3))
    source = MemoryInput()
    bot = env.bot(source, MICRO_BOT_TIMEOUT="300ms")
    async with running(bot):
        await until(lambda: "shout" in bot.commands)
        source.say("shout slowly")
        source.say("ping")
        assert await source.reply(timeout=0.25) == "pong"
        assert await source.reply(timeout=1) == "error executing cmd: no answer within 0.3s"


async def test_allow_list_admins_and_disabled_commands(env: Env) -> None:
    source = MemoryInput(users=("alice",))
    bot = env.bot(source, MICRO_BOT_ADMINS="root", MICRO_BOT_DISABLE="register,time")
    assert bot.allowed(source, "alice")
    assert not bot.allowed(source, "mallory")
    assert await ask(bot, "time") == "error executing cmd: time is disabled"
    assert await ask(bot, "register service {}") == "error executing cmd: register is disabled"
    assert await ask(bot, "call greeter X.Y", sender="alice") == (
        "error executing cmd: call is for admins only"
    )
    assert (await ask(bot, "call greeter X.Y", sender="root") or "").startswith(
        "error executing cmd: service not found"
    )
    words = [line.split()[0] for line in (await ask(bot, "help") or "").splitlines()]
    assert "time" not in words
    assert "register" not in words
    assert "deregister" in words
    assert "call" in words
    async with running(bot):
        source.say("ping", sender="mallory")
        source.say("ping", sender="alice")
        assert await source.reply() == "pong"
    assert source.replies.empty()
    listed = env.bot(source, MICRO_BOT_ALLOW_USERS="mallory")
    assert listed.allowed(source, "mallory")
    assert not listed.allowed(source, "alice")
    everyone = env.bot(MemoryInput())
    assert everyone.allowed(MemoryInput(), "anyone")


def test_inputs_by_name() -> None:
    terminal = create_input("terminal")
    assert terminal.name == "terminal"
    assert not terminal.code_blocks
    assert terminal.default_users() is not None
    assert len(terminal.default_users() or ()) == 1
    with pytest.raises(ValueError, match="unknown input 'irc'"):
        create_input("irc")


async def test_a_broken_registry_watch_is_started_again(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    from micro.errors import RegistryError
    from micro.toolkit.bot import dispatch

    monkeypatch.setattr(dispatch, "WATCH_RETRY", 0.05)
    watch, calls = env.registry.watch, []

    def flaky(service: str | None = None) -> Any:
        calls.append(service)
        if len(calls) == 1:
            raise RegistryError("watch lost")
        return watch(service)

    monkeypatch.setattr(env.registry, "watch", flaky)
    source = MemoryInput()
    bot = env.bot(source)
    async with running(bot):
        await until(lambda: len(calls) >= 2)
        await env.serve("go.micro.bot.shout", Command())
        await until(lambda: "shout" in bot.commands)


async def test_a_long_reply_goes_in_parts_and_tables_fit_a_chat(env: Env) -> None:
    await env.serve("greeter", Greeter())
    for i in range(60):  # many nodes: a long table
        node = Node(id=f"greeter-extra-{i:02d}", address=f"10.0.0.{i}:9", metadata={"k": "v"})
        await env.registry.register(Service(name="greeter", version="1", nodes=[node]))
    source = MemoryInput(code_blocks=True, max_chars=500)
    bot = env.bot(source)
    async with running(bot):
        source.say("get service greeter")
        parts = [await source.reply()]
        while not source.replies.empty() or len(parts) < 2:
            parts.append(await source.reply())
    assert all(len(part) <= 500 for part in parts)
    assert all(part.startswith("```\n") and part.endswith("\n```") for part in parts)
    lines = [line for part in parts for line in part.split("\n")[1:-1]]
    assert all(len(line) <= 72 for line in lines), max(lines, key=len)
    assert len(lines) == 40
    assert lines[-1].startswith("… ")
    assert lines[-1].endswith("more lines (micro get service greeter shows all)")
    terminal = await ask(bot, "get service greeter")  # the terminal gets it all
    assert terminal is not None
    assert "greeter-extra-59" in terminal
