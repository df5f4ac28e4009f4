"""``micro cli``: an interactive shell (prompt_toolkit) running the same commands.

History is kept in the ``cli_history`` setting's file (``MICRO_CLI_HISTORY``, default
``~/.micro_history``); Tab completes
command names, service names (from the registry) and, after ``call``/``stream <service>``,
that service's endpoints. One registry connection and one client serve the whole session,
so repeated calls skip discovery. ``help`` lists commands, ``quit``/``exit``/Ctrl-D leave.
Ctrl-C cancels the command running (the shell stays), or clears the line at the prompt.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncGenerator, Iterable
from typing import Any

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory

from micro.errors import MicroError
from micro.toolkit.cli.app import CliError, build_parser, given_flags
from micro.toolkit.cli.commands import COMMANDS, execute, settings_of
from micro.toolkit.cli.runtime import Runtime, one_line, split_line

__all__ = ["MicroCompleter", "run"]

SHELL_WORDS = ["help", "quit", "exit"]
NOT_IN_SHELL = {"cli", "run", "api", "web", "proxy", "bot"}
_SERVICE_AFTER = {"get": 2, "proto": 1, "call": 1, "stream": 1, "health": 1, "stats": 1}
_CACHE_SECONDS = 3.0
_LOOKUP_TIMEOUT = 1.0

HELP = """commands (each takes --help):
  list services | list nodes <service> | services
  get service <service>                   proto <service> [--package p]
  call <service> <endpoint> [json]        stream <service> <endpoint> [json]
  publish <topic> [json]                  health <service>   stats <service>
  register service <json>                 deregister service <json>
  new <name>
  help, quit, exit (or Ctrl-D)"""


class MicroCompleter(Completer):
    """Completes commands, then service and endpoint names looked up in the registry."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.commands = sorted({*COMMANDS, "services", "new", *SHELL_WORDS})
        self.services: list[str] = []
        self.endpoints: dict[str, list[str]] = {}
        self._services_at = 0.0

    async def refresh_services(self) -> None:
        """Reload service names (errors leave the old list: completion never fails)."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(_LOOKUP_TIMEOUT):
                found = await self.runtime.registry.list_services()
            self.services = sorted({s.name for s in found})
            self._services_at = time.monotonic()

    async def load_endpoints(self, service: str) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(_LOOKUP_TIMEOUT):
                versions = await self.runtime.registry.get_service(service)
            self.endpoints[service] = sorted({e.name for v in versions for e in v.endpoints})

    @staticmethod
    def _position(document: Document) -> tuple[list[str], str]:
        """(the finished words before the cursor, the word being typed)."""
        text = document.text_before_cursor
        words = text.split()
        if not text or text[-1].isspace():
            return words, ""
        return words[:-1], words[-1]

    def candidates(self, done: list[str]) -> Iterable[str]:
        """What may come after the words in ``done``."""
        if not done:
            return self.commands
        cmd, n = done[0], len(done)
        if cmd in ("list", "ls") and n == 1:
            return ["services", "nodes"]
        if cmd in ("get", "register", "deregister") and n == 1:
            return ["service"]
        if (cmd in ("list", "ls") and done[1:2] == ["nodes"] and n == 2) or (
            _SERVICE_AFTER.get(cmd) == n
        ):
            return self.services
        if cmd in ("call", "stream") and n == 2:
            return self.endpoints.get(done[1], [])
        return []

    def get_completions(self, document: Document, event: CompleteEvent) -> Iterable[Completion]:
        done, word = self._position(document)
        for name in self.candidates(done):
            if name.startswith(word):
                yield Completion(name, start_position=-len(word))

    async def get_completions_async(
        self, document: Document, event: CompleteEvent
    ) -> AsyncGenerator[Completion, None]:
        done, word = self._position(document)
        stale = time.monotonic() - self._services_at > _CACHE_SECONDS
        unknown = not any(s.startswith(word) for s in self.services)
        if done and (stale or unknown):  # a service started a moment ago is found too
            await self.refresh_services()
        if len(done) == 2 and done[0] in ("call", "stream") and done[1] not in self.endpoints:
            await self.load_endpoints(done[1])
        for completion in self.get_completions(document, event):
            yield completion


def _parse(parser: argparse.ArgumentParser, line: str, session: argparse.Namespace) -> Any:
    words = split_line(line)
    try:
        args = parser.parse_args(words)
    except SystemExit:  # --help printed its text
        return None
    if args.command in NOT_IN_SHELL:
        raise CliError(f"'{args.command}' does not run inside the shell; run 'micro {line}'")
    for name, value in given_flags(session).items():  # the session's options, unless given
        if getattr(args, name, None) is None:
            setattr(args, name, value)
    return args


async def _one(rt: Runtime, parser: argparse.ArgumentParser, line: str, session: Any) -> None:
    try:
        args = _parse(parser, line, session)
        if args is None or args.command is None:
            return
        if args.command == "new":
            from micro.toolkit.cli import scaffold

            scaffold.create(args)
            return
        await execute(rt, args)
    except CliError as exc:
        print(f"error: {exc}")
    except MicroError as exc:
        print(f"error: {exc.detail or exc}")
    except Exception as exc:  # the shell survives a failing command
        print(f"error: {one_line(exc)}")


async def _cancellable(command: Any) -> None:
    """Await ``command``; Ctrl-C (SIGINT: the terminal is not raw while it runs) cancels it.

    Only the command's task is cancelled, so the shell goes back to its prompt. (At the
    prompt, prompt_toolkit reads Ctrl-C as a key and raises KeyboardInterrupt itself.)
    """
    task = asyncio.ensure_future(command)
    loop = asyncio.get_running_loop()
    previous = signal.getsignal(signal.SIGINT)
    try:
        loop.add_signal_handler(signal.SIGINT, task.cancel)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, Windows
        await task
        return
    try:
        await task
    except asyncio.CancelledError:
        if not task.cancelled() or _cancelling():
            raise  # the shell itself is being cancelled
        print("cancelled")
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        if previous is not None:  # asyncio.run's handler, not the default one
            signal.signal(signal.SIGINT, previous)


def _cancelling() -> bool:
    current = asyncio.current_task()
    return current is not None and current.cancelling() > 0


async def _loop(session_args: argparse.Namespace, history: str) -> int:
    parser = build_parser()
    parser.prog = ""
    async with Runtime(settings_of(session_args)) as rt:
        completer = MicroCompleter(rt)
        warm = asyncio.create_task(completer.refresh_services())
        session: PromptSession[str] = PromptSession(
            history=FileHistory(history), completer=completer, complete_while_typing=False
        )
        while True:
            try:
                line = (await session.prompt_async("micro> ")).strip()
            except KeyboardInterrupt:
                continue
            except EOFError:
                break
            if line in ("quit", "exit"):
                break
            if line in ("help", "?"):
                print(HELP)
            elif line:
                await _cancellable(_one(rt, parser, line, session_args))
        warm.cancel()
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the shell until quit/exit/Ctrl-D."""
    history = os.path.expanduser(settings_of(args)["cli_history"])
    return asyncio.run(_loop(args, history))
