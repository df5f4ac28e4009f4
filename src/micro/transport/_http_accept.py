"""Accepting TCP connections under a limit: bind the listening sockets, then accept one
connection at a time, asking the listener before each whether it has room.

Why not ``loop.create_server``: asyncio's accept loop takes up to ``backlog`` connections
per wake-up before the first ``connection_made`` runs, so a listener would learn it is over
its limit only once the descriptors are spent; at the process's descriptor limit asyncio
then logs a traceback and stops accepting for a second (what uvloop does there is its own).
Asking first keeps the count under the limit on either loop
(``tests/integration/test_fd_limit.py``: 1,100 idle connections, 1,024 descriptors).
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable

ACCEPT_BATCH = 64  # connections accepted per wake-up at most, so other work gets its turn
RETRY_SECONDS = 1.0  # after a failed accept (out of descriptors), try again this much later
ROOM_RETRY_SECONDS = 0.1  # with no room, ask again this much later (a connection may idle)


async def bind(host: str, port: int, *, backlog: int) -> list[socket.socket]:
    """Listening, non-blocking sockets on every address ``host`` resolves to.

    Raises:
        OSError: ``host`` does not resolve, or an address cannot be bound.
    """
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            if os.name == "posix":  # rebinding a port with connections in TIME_WAIT
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:  # the IPv4 address, if any, gets its own socket
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class Acceptor:
    """Accepts on ``sockets`` while ``room(make)`` is true; hands each socket to ``accepted``.

    ``room`` may make room (close idle connections) only when ``make`` is true: for the
    first connection of a wake-up, which is known to be waiting. When it cannot, the
    acceptor pauses and asks again :data:`ROOM_RETRY_SECONDS` later (the peers wait in the
    listen backlog meanwhile). A failed accept goes to ``failed``
    and accepting resumes :data:`RETRY_SECONDS` later. The owner may :meth:`resume` sooner,
    when a connection closes.
    """

    def __init__(
        self,
        sockets: list[socket.socket],
        *,
        room: Callable[[bool], bool],
        accepted: Callable[[socket.socket], None],
        failed: Callable[[OSError], None],
    ) -> None:
        self._sockets = sockets
        self._room = room
        self._accepted = accepted
        self._failed = failed
        self._loop = asyncio.get_running_loop()
        self._paused = True
        self._retry: asyncio.TimerHandle | None = None

    @property
    def paused(self) -> bool:
        return self._paused

    def resume(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if self._paused and self._sockets:
            self._paused = False
            for sock in self._sockets:
                self._loop.add_reader(sock.fileno(), self._ready, sock)

    def pause(self, retry: float | None = None) -> None:
        """Stop accepting; start again ``retry`` seconds later (if given) or on resume()."""
        if not self._paused:
            self._paused = True
            for sock in self._sockets:
                self._loop.remove_reader(sock.fileno())
        if retry is not None and self._retry is None and self._sockets:
            self._retry = self._loop.call_later(retry, self.resume)

    def close(self) -> None:
        """Stop accepting and close the listening sockets (idempotent)."""
        self.pause()
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        sockets, self._sockets = self._sockets, []
        for sock in sockets:
            sock.close()

    def _ready(self, listening: socket.socket) -> None:
        for n in range(ACCEPT_BATCH):
            if not self._room(n == 0):
                if n == 0:
                    self.pause(retry=ROOM_RETRY_SECONDS)
                return  # more may wait: the next wake-up makes room for them
            try:
                sock, _ = listening.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue  # the peer gave up while queued
            except OSError as exc:
                self.pause(retry=RETRY_SECONDS)
                self._failed(exc)
                return
            sock.setblocking(False)
            self._accepted(sock)
