"""``micro cli`` driven through a pty with real keystrokes: completion, history, commands."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from tests.toolkit.cli.conftest import (
    COUNTER,
    GREETER,
    HERE,
    MICRO,
    SLOW,
    Spawn,
    base_env,
    unique,
    wait_registered,
)

pytestmark = pytest.mark.integration

TAB, UP = "\t", "\x1b[A"
PROMPT = "micro>"


@pytest.fixture
def shell(tmp_path: Path) -> Iterator[pexpect.spawn]:
    env = base_env(
        MICRO_CLI_HISTORY=str(tmp_path / "history"), TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1"
    )
    child = pexpect.spawn(MICRO, ["cli"], env=env, encoding="utf-8", timeout=15)
    child.setwinsize(40, 200)
    try:
        child.expect_exact(PROMPT)
        yield child
    finally:
        child.close(force=True)


def test_shell_completes_calls_and_keeps_history(
    spawn: Spawn, shell: pexpect.spawn, tmp_path: Path
) -> None:
    name = unique("shell")
    spawn(GREETER, name)
    wait_registered(name)

    # the terminal only receives what completion added to the typed prefix
    shell.send("ca" + TAB)  # command name
    shell.expect_exact("ll")
    shell.send(" " + name[:8] + TAB)  # service name, from the registry
    shell.expect_exact(name[8:])
    shell.send(" Gr" + TAB)  # endpoint of that service
    shell.expect_exact("eeter.SayHello")
    shell.send(""" '{"name": "Pty"}'\r""")
    shell.expect_exact('"msg": "Hello Pty"')
    shell.expect_exact(PROMPT)

    shell.send("list services\r")
    shell.expect(re.escape(name))
    shell.expect_exact(PROMPT)

    shell.send("get service nobody-here\r")
    shell.expect_exact("error: service not found: nobody-here")
    shell.expect_exact(PROMPT)

    shell.send("lst\r")
    shell.expect_exact("did you mean 'list'?")
    shell.expect_exact(PROMPT)

    shell.send(UP + UP + UP + UP)  # back to the call
    shell.expect_exact("Pty")
    shell.send("\r")
    shell.expect_exact('"msg": "Hello Pty"')
    shell.expect_exact(PROMPT)

    shell.send("exit\r")
    shell.expect(pexpect.EOF)
    history = (tmp_path / "history").read_text()
    assert f"call {name} Greeter.SayHello" in history
    assert "list services" in history


def test_json_goes_unquoted_after_call_stream_and_publish(
    spawn: Spawn, shell: pexpect.spawn, tmp_path: Path
) -> None:
    """As in go-micro's shell: JSON typed without quotes keeps its quotes and spaces, with
    options before or after it; JSON that does not parse says where."""
    greeter, counter, sub = unique("shell-json"), unique("shell-count"), unique("shell-sub")
    topic, events = unique("shell-topic"), tmp_path / "events.jsonl"
    spawn(GREETER, greeter)
    spawn(COUNTER, counter)
    spawn(HERE / "subscriber_service.py", sub, "--topic", topic, "--out", str(events))
    for name in (greeter, counter, sub):
        wait_registered(name)

    shell.send(f'call {greeter} Greeter.SayHello {{"name": "John  Smith"}}\r')
    shell.expect_exact('"msg": "Hello John  Smith"')
    shell.expect_exact(PROMPT)
    shell.send(f"call -m k=v {greeter} Greeter.SayHello [1] -t 5s\r")
    shell.expect_exact("error: error calling")  # the list reached the service as JSON
    shell.expect_exact(PROMPT)
    shell.send(f'stream {counter} Counter.Count {{"to": 2, "delay": 0.01}} -o json\r')
    shell.expect_exact('{"n": 2}')
    shell.expect_exact(PROMPT)
    shell.send(f'publish {topic} {{"id": 7, "note": "a b"}}\r')
    shell.expect_exact(f"published to {topic}")
    shell.expect_exact(PROMPT)
    shell.send(f"call {greeter} Greeter.SayHello {{name: John}}\r")
    shell.expect_exact("error: invalid JSON request (argument) at line 1, column 2")
    shell.expect_exact(PROMPT)

    deadline = time.monotonic() + 10
    while not events.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [json.loads(line) for line in events.read_text().splitlines()] == [
        {"id": 7, "note": "a b"}
    ]


def test_shell_help_and_ctrl_d(shell: pexpect.spawn) -> None:
    shell.send("help\r")
    shell.expect_exact("deregister service <json>")
    shell.expect_exact(PROMPT)
    shell.send("run x.py\r")
    shell.expect_exact("does not run inside the shell")
    shell.expect_exact(PROMPT)
    shell.sendeof()
    shell.expect(pexpect.EOF)
    shell.close()
    assert shell.exitstatus == 0


def test_ctrl_c_cancels_the_running_command_not_the_shell(
    spawn: Spawn, shell: pexpect.spawn
) -> None:
    name = unique("slow")
    spawn(SLOW, name)
    wait_registered(name)

    shell.send(f"""call {name} Sleeper.Sleep '{{"seconds": 60}}' --timeout 120s\r""")
    shell.expect_exact(f"calling {name} Sleeper.Sleep")  # the spinner: the call is waiting
    shell.sendintr()
    shell.expect_exact("cancelled")
    shell.expect_exact(PROMPT)

    shell.send(f"""call {name} Sleeper.Sleep '{{"seconds": 0}}'\r""")
    shell.expect_exact('"slept": 0')  # the session and its client still work
    shell.expect_exact(PROMPT)

    shell.sendintr()  # at the prompt: the shell stays
    shell.send("help\r")
    shell.expect_exact("deregister service <json>")
    shell.expect_exact(PROMPT)
    shell.send("quit\r")
    shell.expect(pexpect.EOF)
    shell.close()
    assert shell.exitstatus == 0
