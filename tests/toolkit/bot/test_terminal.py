"""The real ``micro bot --inputs terminal`` process: on a pipe, and on a terminal (pty)
over mDNS with a real greeter process and command service."""

from __future__ import annotations

import subprocess
import sys

import pexpect
import pytest

from tests.toolkit.cli.conftest import GREETER, MICRO, ROOT, Spawn, base_env, spawn, unique

__all__ = ["spawn"]

pytestmark = pytest.mark.integration
COMMAND = ROOT / "examples" / "bot-command" / "command.py"


def bot_process(*args: str, input: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MICRO, *args],
        env=base_env(MICRO_REGISTRY="memory", **env),
        input=input,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_piped_commands_are_answered_and_eof_ends_the_bot() -> None:
    done = bot_process("bot", "--inputs", "terminal", input="ping\n\nhello\necho a b\nnope\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "pong",
        "hey what's up?",
        "a b",
        "unknown command 'nope': 'help' lists the commands",
    ]


def test_module_entry_point_and_env_inputs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "micro.toolkit.bot"],
        env=base_env(MICRO_REGISTRY="memory", MICRO_BOT_INPUTS="terminal"),
        input="ping\n",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, "pong\n"), done.stderr


def test_disabled_commands_say_so() -> None:
    done = bot_process(
        "bot", "--inputs", "terminal", "--disable", "ping",
        input="ping\nhello\n",
    )  # fmt: skip
    assert done.stdout.splitlines() == ["error executing cmd: ping is disabled", "hey what's up?"]


@pytest.mark.slow
def test_terminal_over_mdns_with_real_services(spawn: Spawn) -> None:
    name = unique("greeter")
    spawn(GREETER, name)
    child = pexpect.spawn(
        MICRO, ["bot", "--inputs", "terminal"], env=base_env(), encoding="utf-8", timeout=20
    )
    try:
        child.expect_exact("Ctrl-D to quit")
        for _ in range(30):  # until the greeter has announced itself
            child.sendline("list services")
            if child.expect([name, pexpect.TIMEOUT], timeout=1) == 0:
                break
        else:
            raise AssertionError(f"{name} never listed")
        child.sendline(f'call {name} Greeter.SayHello {{"name": "John"}}')
        child.expect_exact('"msg": "Hello John"')
        child.sendline(f"get service {name}")  # a long reply on the terminal's own descriptor
        child.expect_exact("Greeter.SayHello")
        command = spawn(COMMAND, "go.micro.bot.roll")
        for _ in range(30):  # found through the registry watch, after the bot started
            child.sendline("roll 1")
            if child.expect(["rolled 1", pexpect.TIMEOUT], timeout=1) == 0:
                break
        else:
            raise AssertionError("roll never became a command")
        command.terminate()  # deregisters: the command goes
        command.wait(10)
        for _ in range(30):
            child.sendline("roll 1")
            if child.expect(["unknown command 'roll'", pexpect.TIMEOUT], timeout=1) == 0:
                break
        else:
            raise AssertionError("roll stayed a command")
        child.sendeof()
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)


def test_ctrl_c_on_a_terminal_stops_it_cleanly() -> None:
    child = pexpect.spawn(
        MICRO, ["bot", "--inputs", "terminal"],
        env=base_env(MICRO_REGISTRY="memory"), encoding="utf-8", timeout=20,
    )  # fmt: skip
    try:
        child.expect_exact("Ctrl-D to quit")
        child.sendline("ping")
        child.expect_exact("pong")
        child.sendintr()
        child.expect(pexpect.EOF)
        child.close()
        assert (child.exitstatus, child.signalstatus) == (0, None)
        assert "Traceback" not in (child.before or "")
    finally:
        child.close(force=True)
