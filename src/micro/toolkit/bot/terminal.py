"""The ``terminal`` input: one command per line on stdin, each reply on stdout.

Works on a terminal and on a pipe or file (``echo ping | micro bot --inputs terminal``); the
end of input ends the bot once the commands in flight have answered.
"""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import AsyncIterator

from micro.toolkit.bot.input import Event, Input

__all__ = ["TerminalInput"]


class TerminalInput(Input):
    """Lines of stdin from the local user; replies printed plainly."""

    name = "terminal"
    hint_unknown = True

    def __init__(self) -> None:
        self.user = getpass.getuser()
        self._reader: asyncio.StreamReader | None = None
        self._transport: asyncio.BaseTransport | None = None

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        try:
            self._transport, _ = await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
            )
        except ValueError:  # a regular file: reading it never blocks for long
            reader.feed_data(sys.stdin.buffer.read())
            reader.feed_eof()
        self._reader = reader
        if sys.stdin.isatty():
            print("micro bot: type a command (help lists them), Ctrl-D to quit", file=sys.stderr)

    async def events(self) -> AsyncIterator[Event]:
        assert self._reader is not None, "connect() first"
        while line := await self._reader.readline():
            text = line.decode(errors="replace").strip()
            if text:
                yield Event(text=text, sender=self.user, channel="terminal")

    async def send(self, event: Event, reply: str) -> None:
        print(reply, flush=True)

    async def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def default_users(self) -> tuple[str, ...]:
        return (self.user,)
