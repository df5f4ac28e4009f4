"""The bot: reads every input, runs each message in a task of its own, answers it.

Dispatch follows go-micro's bot: a built-in command first (its first word, or ``the three
laws``), else the command service ``<namespace>.<first word>``, called with
``Command.Exec{args}`` (the message's words, command word first) and answered with its
``result``. Command services are found by listing the registry at start and watching it:
one that appears later is probed with ``Command.Help`` and added, one that goes is dropped.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from micro.errors import MicroError
from micro.settings import Settings
from micro.toolkit.bot.commands import BUILTINS, PRIVILEGED, USAGE
from micro.toolkit.bot.input import Event, Input
from micro.toolkit.bot.text import chunks
from micro.toolkit.cli.app import CliError
from micro.toolkit.cli.runtime import Runtime, one_line

__all__ = ["Bot", "CommandService"]

log = logging.getLogger("micro.bot")
JSON = "application/json"
PROBE_TIMEOUT = 5.0
WATCH_RETRY = 1.0
_LAWS = re.compile(r"^(the )?three laws( of robotics)?$")


@dataclass(frozen=True)
class CommandService:
    """A command service found in the registry, with what its ``Command.Help`` said."""

    name: str
    usage: str
    description: str


class Bot:
    """Answers commands from ``inputs`` over ``runtime``'s registry and client.

    ``settings`` are the ``bot`` group's (``bot_namespace``, ``bot_timeout``,
    ``bot_allow_users``, ``bot_admins``, ``bot_disable``).
    """

    def __init__(self, runtime: Runtime, inputs: Sequence[Input], settings: Settings) -> None:
        self.runtime = runtime
        self.inputs = list(inputs)
        self.namespace = str(settings["bot_namespace"]).rstrip(".")
        self.timeout = float(settings["bot_timeout"])
        self.allow_users = tuple(settings["bot_allow_users"])
        self.admins = tuple(settings["bot_admins"])
        self.disabled = frozenset(settings["bot_disable"])
        self.commands: dict[str, CommandService] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # -- command services ---------------------------------------------------------------

    def _word(self, name: str) -> str | None:
        prefix = self.namespace + "."
        return name[len(prefix) :] if name.startswith(prefix) and len(name) > len(prefix) else None

    async def probe(self, name: str) -> None:
        """Ask ``name`` for ``Command.Help``; add it as a command when it answers."""
        word = self._word(name)
        if word is None:
            return
        try:
            rsp = await self.runtime.client.call(
                name, "Command.Help", {}, timeout=PROBE_TIMEOUT, content_type=JSON, retries=0
            )
        except (MicroError, OSError, TimeoutError) as exc:
            log.info("%s does not answer Command.Help: %s", name, exc)
            return
        rsp = rsp if isinstance(rsp, dict) else {}
        usage = str(rsp.get("usage") or word)
        self.commands[word] = CommandService(name, usage, str(rsp.get("description") or ""))

    async def discover(self) -> None:
        """Probe every command service the registry lists now."""
        found = await self.runtime.registry_op(self.runtime.registry.list_services())
        names = {s.name for s in found if self._word(s.name) is not None}
        await asyncio.gather(*(self.probe(name) for name in names))

    async def watch(self) -> None:
        """Follow the registry: a deleted command service goes, any other change re-probes.
        A watch that breaks is started again (and the registry listed again) after a pause."""
        while True:
            try:
                await self._follow()
            except (MicroError, OSError, TimeoutError, CliError) as exc:
                log.warning("registry watch broke, again in %gs: %s", WATCH_RETRY, exc)
            await asyncio.sleep(WATCH_RETRY)
            with contextlib.suppress(MicroError, OSError, TimeoutError, CliError):
                await self.discover()

    async def _follow(self) -> None:
        async for result in self.runtime.registry.watch():
            word = self._word(result.service.name)
            if word is None:
                continue
            if result.action == "delete":
                if not await self._still_there(result.service.name):
                    self.commands.pop(word, None)
            else:
                self._spawn(self.probe(result.service.name))

    async def _still_there(self, name: str) -> bool:
        """A delete may name one node of several: the command stays while one is left."""
        try:
            return bool(await self.runtime.registry.get_service(name))
        except (MicroError, OSError, TimeoutError):
            return False

    # -- messages -----------------------------------------------------------------------

    def allowed(self, source: Input, sender: str) -> bool:
        """Whether the bot answers ``sender`` on ``source``."""
        users = self.allow_users or source.default_users()
        return users is None or sender in users

    async def handle(self, source: Input, text: str, sender: str) -> str | None:
        """The reply to one message (``None``: no reply), within ``bot_timeout``."""
        try:
            async with asyncio.timeout(self.timeout):
                return await self._run(source, text, sender)
        except TimeoutError:
            return f"error executing cmd: no answer within {self.timeout:g}s"

    async def _run(self, source: Input, text: str, sender: str) -> str | None:
        words = text.split()
        if not words:
            return None
        word = "the three laws" if _LAWS.match(" ".join(words)) else words[0]
        if word == "help":
            return self.help()
        builtin = BUILTINS.get(word)
        if builtin is not None:
            refused = self._refused(word, sender)
            if refused:
                return refused
            return await self._guard(builtin(self.runtime, words, source.code_blocks))
        service = self.commands.get(word)
        if service is not None:
            return await self._guard(self.exec(service, words))
        if source.hint_unknown:
            return f"unknown command {word!r}: 'help' lists the commands"
        return None

    def _refused(self, word: str, sender: str) -> str | None:
        if word in self.disabled:
            return f"error executing cmd: {word} is disabled"
        if word in PRIVILEGED and self.admins and sender not in self.admins:
            return f"error executing cmd: {word} is for admins only"
        return None

    async def _guard(self, reply: Any) -> str:
        try:
            return str(await reply)
        except CliError as exc:
            return f"error executing cmd: {exc}"
        except MicroError as exc:
            return f"error executing cmd: {exc.detail or exc}"
        except Exception as exc:  # one failing command must not stop the bot
            log.exception("command failed")
            text = one_line(exc).replace(" (--debug shows the traceback)", "")
            return f"error executing cmd: {text}"

    async def exec(self, service: CommandService, words: list[str]) -> str:
        """``Command.Exec{args}`` on ``service``; its ``result`` as text.

        Raises:
            CliError: the call failed or the service answered with an ``error``.
        """
        try:
            rsp = await self.runtime.client.call(
                service.name, "Command.Exec", {"args": words}, timeout=self.timeout,
                content_type=JSON,
            )  # fmt: skip
        except MicroError as exc:
            raise CliError(exc.detail or str(exc)) from exc
        rsp = rsp if isinstance(rsp, dict) else {}
        if rsp.get("error"):
            raise CliError(str(rsp["error"]))
        return _decode(rsp.get("result"))

    def help(self) -> str:
        """``usage - description`` of every command, built-ins first."""
        lines = [f"{u} - {d}" for w, (u, d) in USAGE.items() if w not in self.disabled]
        for word in sorted(self.commands):
            cmd = self.commands[word]
            lines.append(f"{cmd.usage} - {cmd.description}" if cmd.description else cmd.usage)
        return "\n".join(lines)

    # -- running ------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _answer(self, source: Input, event: Event) -> None:
        reply = await self.handle(source, event.text, event.sender)
        if reply is None:
            return
        for part in chunks(reply, source.max_chars):
            try:
                await source.send(event, part)
            except Exception:  # a reply that cannot go out must not stop the bot
                log.exception("cannot send the reply on %s", source.name)
                return

    async def serve_input(self, source: Input) -> None:
        """Answer ``source``'s messages until it ends; wait for the replies in flight."""
        pending: set[asyncio.Task[None]] = set()
        async for event in source.events():
            if not self.allowed(source, event.sender):
                log.warning("ignoring %s on %s: not an allowed user", event.sender, source.name)
                continue
            task = self._spawn(self._answer(source, event))
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:
            await asyncio.wait(pending)

    async def run(self) -> None:
        """Connect the inputs, find the command services, answer until every input ends."""
        watcher = asyncio.create_task(self.watch())
        try:
            await self.discover()
            for source in self.inputs:
                await source.connect()
            await asyncio.gather(*(self.serve_input(source) for source in self.inputs))
        finally:
            watcher.cancel()
            for task in list(self._tasks):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            for source in self.inputs:
                await source.close()


def _decode(result: Any) -> str:
    """``ExecResponse.result``: bytes, base64 text in JSON (as Go marshals ``[]byte``)."""
    if result is None:
        return ""
    if isinstance(result, bytes | bytearray):
        return bytes(result).decode(errors="replace")
    try:
        return base64.b64decode(str(result), validate=True).decode(errors="replace")
    except (binascii.Error, ValueError):
        return str(result)
