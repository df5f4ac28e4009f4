"""The ``terminal`` input: one command per line on stdin, each reply on stdout.

Works on a terminal and on a pipe or file (``echo ping | micro bot --inputs terminal``); the
end of input ends the bot once the commands in flight have answered.
"""

from __future__ import annotations

import asyncio
import getpass
import os
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
        self._fd: int | None = None

    async def connect(self) -> None:
        # add_reader, not connect_read_pipe: that one makes the descriptor non-blocking, and
        # on a terminal stdin and stdout share it (big replies would fail, and the shell
        # would get it back non-blocking)
        reader = self._reader = asyncio.StreamReader()
        fd = sys.stdin.fileno()
        try:
            asyncio.get_running_loop().add_reader(fd, self._readable, fd)
            self._fd = fd
        except (OSError, ValueError):  # a regular file: reading it never blocks for long
            reader.feed_data(sys.stdin.buffer.read())
            reader.feed_eof()
        if sys.stdin.isatty():
            print("micro bot: type a command (help lists them), Ctrl-D to quit", file=sys.stderr)

    def _readable(self, fd: int) -> None:
        assert self._reader is not None
        try:
            data = os.read(fd, 65536)
        except OSError:
            data = b""
        if data:
            self._reader.feed_data(data)
        else:
            self._stop_reading()
            self._reader.feed_eof()

    def _stop_reading(self) -> None:
        if self._fd is not None:
            asyncio.get_running_loop().remove_reader(self._fd)
            self._fd = None

    async def events(self) -> AsyncIterator[Event]:
        assert self._reader is not None, "connect() first"
        while line := await self._reader.readline():
            text = line.decode(errors="replace").strip()
            if text:
                yield Event(text=text, sender=self.user, channel="terminal")

    async def send(self, event: Event, reply: str) -> None:
        print(reply, flush=True)

    async def close(self) -> None:
        self._stop_reading()

    def default_users(self) -> tuple[str, ...]:
        return (self.user,)
