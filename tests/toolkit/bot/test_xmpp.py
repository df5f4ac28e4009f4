"""The real ``micro bot --inputs xmpp`` process on a private Prosody, over mDNS with a real
greeter process, talked to by a real slixmpp user."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from micro.settings import BOT_GROUPS, load
from micro.toolkit.bot.commands import USAGE
from micro.toolkit.bot.input import create_input
from micro.toolkit.bot.xmpp import HipChatInput, XmppInput
from tests.toolkit.bot.prosody import DOMAIN, MUC, Server, User, prosody
from tests.toolkit.cli.conftest import GREETER, MICRO, ROOT, base_env, unique

pytestmark = [pytest.mark.integration, pytest.mark.slow]
COMMAND = ROOT / "examples" / "bot-command" / "command.py"
ACCOUNTS = {"bot": "botpw", "alice": "alicepw", "mallory": "mallorypw"}
BOT = f"bot@{DOMAIN}"
ROOM = f"lobby@{MUC}"


def start_bot(server: Server, log: Path, *args: str, **env: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [MICRO, "bot", "--inputs", "xmpp", "--xmpp-username", BOT,
             "--xmpp-server", f"127.0.0.1:{server.port}", "--log-level", "info", *args],
            env=base_env(MICRO_XMPP_PASSWORD="botpw", **env),
            stdout=subprocess.DEVNULL,
            stderr=out,
        )  # fmt: skip


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with prosody(tmp_path_factory.mktemp("prosody"), ACCOUNTS) as made:
        yield made


@pytest.fixture(scope="module")
def greeter() -> Iterator[str]:
    name = unique("greeter")
    proc = subprocess.Popen(
        [sys.executable, str(GREETER), "--server_name", name],
        env=base_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    yield name
    stop(proc)


@pytest.fixture(scope="module")
def bot(server: Server, greeter: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    log = tmp_path_factory.mktemp("bot") / "bot.log"
    proc = start_bot(server, log, "--xmpp-tls", "none", "--xmpp-rooms", ROOM,
                     "--xmpp-nick", "microbot", "--allow-users", f"alice@{DOMAIN}")  # fmt: skip
    yield log
    stop(proc)
    assert proc.returncode == 0, log.read_text()  # SIGTERM: logged out, exit 0


@pytest.fixture
async def alice(server: Server, bot: Path) -> AsyncIterator[User]:
    user = User("alice", ACCOUNTS["alice"], server)
    await user.connect()
    yield user
    await user.close()


async def test_direct_chat_lists_and_calls_services(alice: User, greeter: str) -> None:
    assert "pong" in await alice.ask(BOT, "ping", "pong")
    assert greeter in await alice.ask(BOT, "list services", greeter)
    reply = await alice.ask(BOT, f'call {greeter} Greeter.SayHello {{"name":"John"}}', "Hello")
    assert "Hello John" in reply


async def test_room_answers_only_when_addressed(alice: User) -> None:
    # the bot answers a DM once it has joined its rooms: it made the room, so it owns it and
    # sees alice's real JID (the allow-list's name for her)
    await alice.ask(BOT, "ping", "pong")
    await alice.join(ROOM)
    assert await alice.ask(ROOM, "microbot: echo first", "first", mtype="groupchat") == "first"
    alice.say(ROOM, "echo unaddressed", "groupchat")
    alice.say(ROOM, "microbotx echo wrong nick", "groupchat")
    assert await alice.ask(ROOM, "microbot echo second", "second", mtype="groupchat") == "second"
    deadline = time.monotonic() + 1.5
    while (got := await alice.next(max(deadline - time.monotonic(), 0.01))) is not None:
        assert "unaddressed" not in got[2], got
        assert "wrong nick" not in got[2], got


async def test_every_builtin_in_a_direct_chat(alice: User, greeter: str) -> None:
    assert await alice.ask(BOT, "echo hi  there", "hi") == "hi there"
    assert (await alice.ask(BOT, "time", "Server time")).startswith("Server time is: ")
    assert await alice.ask(BOT, "hello", "up?") == "hey what's up?"
    laws = await alice.ask(BOT, "the three laws", "robot")
    assert laws.startswith("1. A robot may not injure")
    assert len(laws.splitlines()) == 3
    got = await alice.ask(BOT, f"get service {greeter}", "Greeter.SayHello")
    assert greeter in got
    assert "ok" in (await alice.ask(BOT, f"health {greeter}", "ok")).split()
    missing = await alice.ask(BOT, "call nosuch Greeter.SayHello {}", "error")
    assert missing.startswith("error executing cmd:")
    ext = unique("ext")
    node = {"id": f"{ext}-1", "address": "127.0.0.1:9"}
    definition = json.dumps({"name": ext, "version": "1", "nodes": [node]})
    assert await alice.ask(BOT, f"register service {definition}", "ok") == "ok"
    assert ext in await alice.ask(BOT, "list services", ext)
    assert await alice.ask(BOT, f"deregister service {definition}", "ok") == "ok"
    assert await gone(alice, ext)
    helped = await alice.ask(BOT, "help", "Returns the list of commands")
    for usage, description in USAGE.values():
        assert f"{usage} - {description}" in helped.splitlines()


async def gone(user: User, word: str, command: str = "list services") -> bool:
    """Whether ``word`` leaves the bot's reply to ``command`` within ten tries."""
    for _ in range(10):
        if word not in await user.ask(BOT, command, ""):
            return True
        await asyncio.sleep(0.5)
    return False


async def test_command_service_started_after_the_bot(alice: User) -> None:
    proc = subprocess.Popen(  # noqa: ASYNC220 - started at once, stopped at the end
        [sys.executable, str(COMMAND), "--server_name", "go.micro.bot.roll"],
        env=base_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert "rolled 1" in await alice.ask(BOT, "roll 1", "rolled 1", tries=20)
        helped = await alice.ask(BOT, "help", "roll [sides]")
        assert "roll [sides] - Rolls a die (6 sides unless told)" in helped.splitlines()
        refused = await alice.ask(BOT, "roll x", "error")
        assert refused == "error executing cmd: sides must be a positive number, got 'x'"
    finally:
        stop(proc)
    # a service that stops takes its command with it
    assert await gone(alice, "roll [sides]", "help")
    alice.say(BOT, "roll 1")
    assert "pong" in await alice.ask(BOT, "ping", "pong")
    while (got := await alice.next(0.5)) is not None:
        assert "rolled" not in got[2], got


async def test_user_not_allowed_gets_no_answer(server: Server, alice: User) -> None:
    mallory = User("mallory", ACCOUNTS["mallory"], server)
    await mallory.connect()
    try:
        assert "pong" in await alice.ask(BOT, "ping", "pong")  # the bot is up
        mallory.say(BOT, "ping")
        assert "pong" in await alice.ask(BOT, "ping", "pong")  # after mallory's ping
        assert await mallory.next(1.0) is None
    finally:
        await mallory.close()


async def test_starttls_with_a_self_signed_certificate(tmp_path: Path, greeter: str) -> None:
    with prosody(tmp_path / "tls", {"bot": "botpw", "alice": "alicepw"}, tls=True) as server:
        assert server.cert is not None
        untrusted = subprocess.run(  # noqa: ASYNC221 - bounded, nothing else runs meanwhile
            [MICRO, "bot", "--inputs", "xmpp", "--xmpp-username", BOT,
             "--xmpp-server", f"127.0.0.1:{server.port}"],
            env=base_env(MICRO_REGISTRY="memory", MICRO_XMPP_PASSWORD="botpw"),
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert untrusted.returncode == 1
        assert untrusted.stderr.startswith("micro bot: xmpp: cannot connect"), untrusted.stderr
        assert "not trusted" in untrusted.stderr
        assert len(untrusted.stderr.strip().splitlines()) == 1, untrusted.stderr
        proc = start_bot(server, tmp_path / "bot.log", "--xmpp-ca-file", str(server.cert))
        user = User("alice", "alicepw", server)
        try:
            await user.connect()
            assert "pong" in await user.ask(BOT, "ping", "pong")
        finally:
            await user.close()
            stop(proc)


def test_bad_password_fails_fast_with_one_line(server: Server) -> None:
    began = time.monotonic()
    done = subprocess.run(
        [MICRO, "bot", "--inputs", "xmpp", "--xmpp_username", BOT, "--xmpp-tls", "none",
         "--xmpp-server", f"127.0.0.1:{server.port}"],
        env=base_env(MICRO_REGISTRY="memory", MICRO_BOT_XMPP_PASSWORD="wrong"),
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert time.monotonic() - began < 20
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(
        f"micro bot: xmpp: cannot connect to 127.0.0.1:{server.port} as {BOT}"
    )


def test_no_plaintext_unless_asked(server: Server) -> None:
    done = subprocess.run(
        [MICRO, "bot", "--inputs", "xmpp", "--xmpp-username", BOT,
         "--xmpp-server", f"127.0.0.1:{server.port}"],
        env=base_env(MICRO_REGISTRY="memory", MICRO_XMPP_PASSWORD="botpw"),
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip().endswith(
        ": the server offers no TLS (--xmpp-tls none allows plaintext)"
    )


def test_missing_username_is_one_line() -> None:
    done = subprocess.run(
        [MICRO, "bot", "--inputs", "xmpp"], env=base_env(MICRO_REGISTRY="memory"),
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert (
        done.stderr.strip()
        == "micro bot: xmpp: --xmpp-username must be the bot's JID (user@server)"
    )


def test_addressed_and_server_address() -> None:
    made = XmppInput({"xmpp_username": "bot@example.org", "xmpp_nick": "Bot"})
    assert made.addressed("bot: list services") == "list services"
    assert made.addressed("Bot, ping") == "ping"
    assert made.addressed("@bot ping") == "ping"
    assert made.addressed("bots ping") == ""
    assert made.addressed("ping bot") == ""
    assert made._address() == ("example.org", 5222)
    made = XmppInput({"xmpp_username": "bot@example.org", "xmpp_server": "[::1]:5333"})
    assert made._address() == ("::1", 5333)
    assert made.nick == "bot"


def test_hipchat_is_xmpp_with_hipchats_flags_and_defaults() -> None:
    settings = load(
        groups=BOT_GROUPS,
        flags={"hipchat_username": "1_2@chat.hipchat.com", "hipchat_nick": "Micro Bot"},
        environ={"MICRO_HIPCHAT_PASSWORD": "pw", "MICRO_XMPP_USERNAME": "other@example.org"},
    )
    made = create_input("hipchat", settings)
    assert isinstance(made, HipChatInput)
    assert (made.jid, made.password, made.nick) == ("1_2@chat.hipchat.com", "pw", "Micro Bot")
    assert made._address() == ("chat.hipchat.com", 5222)
    assert made.addressed("micro bot: ping") == "ping"


async def test_reconnects_when_the_server_comes_back(tmp_path: Path) -> None:
    root, accounts = tmp_path / "prosody", {"bot": "botpw", "alice": "alicepw"}
    root.mkdir()
    bot = None
    try:
        with prosody(root, accounts) as server:
            bot = start_bot(server, tmp_path / "bot.log", "--xmpp-tls", "none",
                            MICRO_REGISTRY="memory")  # fmt: skip
            await talk(server)
        began = time.monotonic()
        with prosody(root, accounts, port=server.port):
            await talk(server, tries=20)
        assert bot.poll() is None
        assert time.monotonic() - began < 25
    finally:
        if bot is not None:
            stop(bot)


async def talk(server: Server, tries: int = 15) -> None:
    user = User("alice", "alicepw", server)
    await user.connect()
    try:
        assert "pong" in await user.ask(BOT, "ping", "pong", tries=tries)
    finally:
        await user.close()
