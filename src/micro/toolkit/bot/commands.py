"""The built-in commands, with go-micro's words and replies, over ``micro``'s CLI code.

Each takes the bot's :class:`~micro.toolkit.cli.runtime.Runtime`, the message's words and
whether the input wants code blocks, and returns the reply. ``get``, ``health``, ``call``,
``register`` and ``deregister`` run the ``micro`` command's own coroutines (captured as
plain text), so they answer as ``micro get service``... does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from micro.settings import Settings
from micro.toolkit.bot.text import CHAT_LINES, CHAT_WIDTH, shorten
from micro.toolkit.cli.app import CliError, build_parser
from micro.toolkit.cli.commands import execute
from micro.toolkit.cli.output import CAPTURE_WIDTH, captured
from micro.toolkit.cli.runtime import Runtime

__all__ = ["BUILTINS", "PRIVILEGED", "USAGE", "Builtin", "fenced"]

Builtin = Callable[[Runtime, list[str], bool], Awaitable[str]]
PRIVILEGED = frozenset({"call", "register", "deregister"})
"""Commands that change or reach into services: ``bot_admins`` limits them."""
THREE_LAWS = """1. A robot may not injure a human being or, through inaction, allow a human being to come to harm.
2. A robot must obey the orders given it by human beings except where such orders would conflict with the First Law.
3. A robot must protect its own existence as long as such protection does not conflict with the First or Second Law."""  # noqa: E501
USAGE = {
    "echo": ("echo [text]", "Returns the [text]"),
    "time": ("time", "Returns the server time"),
    "hello": ("hello", "Returns a greeting"),
    "ping": ("ping", "Returns pong"),
    "list": ("list services", "Returns a list of registered services"),
    "get": ("get service [name]", "Returns a registered service"),
    "health": ("health [service]", "Returns health of a service"),
    "call": ("call [service] [endpoint] [request]", "Returns the response for a service call"),
    "register": ("register service [definition]", "Registers a service"),
    "deregister": ("deregister service [definition]", "Deregisters a service"),
    "the three laws": ("the three laws", "Returns the three laws of robotics"),
    "help": ("help", "Returns the list of commands"),
}


def fenced(text: str, code_blocks: bool, lang: str = "") -> str:
    """``text`` in a Markdown code block when the input shows them, else as it is."""
    return f"```{lang}\n{text}\n```" if code_blocks and text else text


async def _cli(rt: Runtime, words: list[str], chat: bool = False) -> str:
    """Run ``micro <words>`` inside ``rt``; its output as plain text (for a chat: tables
    fitted to :data:`CHAT_WIDTH` columns, at most :data:`CHAT_LINES` lines).

    Raises:
        CliError: the command failed, or its words do not parse.
    """
    parser = build_parser()
    parser.prog = "micro"
    with captured(CHAT_WIDTH if chat else CAPTURE_WIDTH) as buffer:
        try:
            args = parser.parse_args(words)
        except SystemExit:
            raise CliError(buffer.getvalue().strip() or "cannot parse the command") from None
        values = {**dict(rt.settings.items()), "output": "table"}
        args.settings = Settings(values, dict.fromkeys(values, "bot"))
        await execute(rt, args)
    text = "\n".join(line.rstrip() for line in buffer.getvalue().strip("\n").splitlines())
    return shorten(text, CHAT_LINES, f"micro {' '.join(words)} shows all") if chat else text


def _json_only(text: str) -> str:
    """``text``, refused when the CLI would read it from a file or stdin instead."""
    if text.startswith(("@", "-")):
        raise CliError("expected JSON here")
    return text


async def echo(rt: Runtime, words: list[str], code_blocks: bool) -> str:
    return " ".join(words[1:]) or "echo what?"


async def time(rt: Runtime, words: list[str], code_blocks: bool) -> str:
    now = datetime.now().astimezone()
    return "Server time is: " + now.strftime("%a, %d %b %Y %H:%M:%S %Z")


async def hello(rt: Runtime, words: list[str], code_blocks: bool) -> str:
    return "hey what's up?"


async def ping(rt: Runtime, words: list[str], code_blocks: bool) -> str:
    return "pong"


async def three_laws(rt: Runtime, words: list[str], code_blocks: bool) -> str:
    return THREE_LAWS


async def list_(rt: Runtime, words: list[str], code_blocks: bool) -> str:
    if len(words) < 2:
        return "list what?"
    if words[1] != "services":
        return "unknown command...\nsupported commands:\nlist services"
    found = await rt.registry_op(rt.registry.list_services())
    return "\n".join(sorted({s.name for s in found}))


async def get(rt: Runtime, words: list[str], code_blocks: bool) -> str:
    if len(words) < 2:
        return "get what?"
    if words[1] != "service":
        return "unknown command...\nsupported commands:\nget service [name]"
    if len(words) < 3:
        return "require service name"
    return fenced(await _cli(rt, ["get", "service", words[2]], code_blocks), code_blocks)


async def health(rt: Runtime, words: list[str], code_blocks: bool) -> str:
    if len(words) < 2:
        return "health of what?"
    return fenced(await _cli(rt, ["health", words[1]], code_blocks), code_blocks)


async def call(rt: Runtime, words: list[str], code_blocks: bool) -> str:
    if len(words) < 3:
        return "call what?"
    request = _json_only(" ".join(words[3:]) or "{}")
    return fenced(await _cli(rt, ["call", words[1], words[2], request]), code_blocks, "json")


async def register(rt: Runtime, words: list[str], code_blocks: bool) -> str:
    if len(words) < 2:
        return f"{words[0]} what?"
    if words[1] != "service":
        return f"unknown command...\nsupported commands:\n{USAGE[words[0]][0]}"
    if len(words) < 3:
        return "require service definition"
    definition = _json_only(" ".join(words[2:]))
    await _cli(rt, [words[0], "service", definition])
    return "ok"


BUILTINS: dict[str, Builtin] = {
    "echo": echo,
    "time": time,
    "hello": hello,
    "ping": ping,
    "list": list_,
    "get": get,
    "health": health,
    "call": call,
    "register": register,
    "deregister": register,
    "the three laws": three_laws,
}
"""Command word -> coroutine (``help`` is the bot's own: it lists the command services)."""
