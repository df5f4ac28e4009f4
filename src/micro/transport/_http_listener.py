"""The HTTP transport's listener: accepts connections, runs a handler task for each, and
reclaims them.

Reclaiming, so that idle sockets never starve valid calls of file descriptors:

* ``read_timeout``: a request not in full within that many seconds of its first byte is
  refused with 408 (slow heads and bodies);
* ``idle_timeout``: a connection with no request in progress for that long (a fresh one
  that sent nothing, a kept-alive one between requests) is closed;
* ``max_connections``: at the limit, the connections idle longest are closed to make room
  before the next one is accepted; only while none is idle does the listener stop
  accepting (new peers wait in the listen backlog; it asks again every 0.1 s).

One sweep over the connections enforces both timeouts, rather than a timer per request or
per connection: the request path only notes the time (a clock read, no heap push).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import socket

from micro.errors import ConnectionClosed
from micro.transport import Handler, Listener
from micro.transport._http_accept import RETRY_SECONDS, Acceptor, bind
from micro.transport._http_server import LINGER_SECONDS, READ_TIMEOUT_SECONDS, HttpServerSocket
from micro.transport._http_wire import join_address

logger = logging.getLogger("micro.transport.http")

IDLE_TIMEOUT_SECONDS = 90.0  # above the client pool's 60 s TTL: see docs/decisions.md
MAX_CONNECTIONS = 10_000
WARN_EVERY_SECONDS = 60.0  # a failing accept (out of descriptors) logs at most this often


def default_max_connections() -> int:
    """:data:`MAX_CONNECTIONS`, or 3/4 of the file-descriptor limit when that is lower.

    The quarter left is for what else the process opens (its client's pool, a registry,
    files, connections being closed): a listener that takes every descriptor makes
    ``accept`` fail instead.
    """
    try:
        import resource
    except ImportError:  # not on Unix
        return MAX_CONNECTIONS
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(1, min(MAX_CONNECTIONS, soft * 3 // 4))


class HttpListener(Listener):
    """Accepts connections and runs ``handler(socket)`` in one task per connection.

    Beyond :class:`~micro.transport.Listener`, a server can drain on shutdown:
    :attr:`connections` (the open accepted sockets), :meth:`close_idle`,
    :meth:`wait_closed` and :meth:`abort`. The options are those of
    :class:`~micro.transport.http.HttpTransport`; ``max_connections=None`` means
    :func:`default_max_connections`, read when the listener starts.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        max_body: int,
        max_header: int,
        linger: float = LINGER_SECONDS,
        read_timeout: float | None = READ_TIMEOUT_SECONDS,
        idle_timeout: float | None = IDLE_TIMEOUT_SECONDS,
        max_connections: int | None = None,
    ) -> None:
        if max_connections is not None and max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.max_body = max_body
        self.max_header = max_header
        self.linger = linger
        self.read_timeout = read_timeout
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections or MAX_CONNECTIONS
        self._default_limit = max_connections is None
        self._handler = handler
        self._acceptor: Acceptor | None = None
        self._address = ""
        self._connections: set[HttpServerSocket] = set()
        self._opening: set[asyncio.Task[None]] = set()  # accepted, being set up
        self._pending = 0  # accepted, not attached yet (counted against the limit)
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self._full = False  # at the limit and warned; cleared once back under 90 % of it
        self._quiet_until = 0.0  # no warning about a failing accept before this loop time

    async def start(self, host: str, port: int, *, backlog: int) -> None:
        """Bind and start accepting.

        Raises:
            OSError: the address cannot be resolved or bound.
        """
        if self._default_limit:
            self.max_connections = default_max_connections()
        sockets = await bind(host, port, backlog=backlog)
        self._address = join_address(sockets[0].getsockname())
        self._acceptor = Acceptor(
            sockets, room=self._has_room, accepted=self._open, failed=self._accept_failed
        )
        self._acceptor.resume()

    @property
    def address(self) -> str:
        return self._address

    @property
    def connections(self) -> frozenset[HttpServerSocket]:
        """The accepted connections still open."""
        return frozenset(self._connections)

    async def close(self) -> None:
        """Stop accepting; open connections stay with their handlers."""
        acceptor, self._acceptor = self._acceptor, None
        if acceptor is not None:
            acceptor.close()
            await asyncio.sleep(0)

    def close_idle(self) -> int:
        """Close every connection with no request in progress (see ``HttpServerSocket.idle``).

        Returns how many were closed. Their handlers' ``recv`` raises ConnectionClosed.
        """
        idle = [conn for conn in self._connections if conn.idle]
        for conn in idle:
            conn._close_now()
        return len(idle)

    async def wait_closed(self, timeout: float | None = None) -> bool:
        """Wait until every connection handler has returned; False if ``timeout`` passed."""
        tasks = set(self._tasks)
        if not tasks:
            return True
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        return not pending

    async def abort(self, grace: float = 0.1) -> None:
        """Close every connection; cancel the handlers still running ``grace`` seconds later."""
        if self._opening:
            await asyncio.wait(set(self._opening))
        for conn in list(self._connections):
            conn._close_now(force=True)
        tasks = list(self._tasks)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        for conn in list(self._connections):
            await conn.wait_lost()
        if self._sweeper is not None and not self._connections:
            self._sweeper.cancel()
            self._sweeper = None

    # ------------------------------------------------------------------ accepting

    def _accept(self) -> HttpServerSocket:
        """The protocol for one accepted connection (a subclass may serve another kind)."""
        return HttpServerSocket(self)

    def _has_room(self, make: bool) -> bool:
        """Whether one more connection may be accepted; when ``make``, close idle ones to
        make room if need be."""
        if len(self._connections) + self._pending < self.max_connections:
            return True
        if not make:
            return False
        if not self._full:
            self._full = True
            logger.warning(
                "%s: %d connections, the limit of this listener (max_connections): closing "
                "the longest idle ones to make room for new ones",
                self._address,
                self.max_connections,
            )
        return self._make_room()

    def _make_room(self) -> bool:
        """Close the connections idle longest; False when none is idle.

        One scan closes a batch (1/64 of the limit), so that a flood of new connections
        costs one scan per batch rather than one per connection.
        """
        count = max(1, self.max_connections // 64)
        idle = (conn for conn in self._connections if conn.idle)
        oldest = heapq.nsmallest(count, idle, key=_last_active)
        for conn in oldest:
            self._connections.discard(conn)  # counted out now; the socket closes just after
            conn._close_now()
        return bool(oldest)

    def _accept_failed(self, exc: OSError) -> None:
        """``accept`` failed (out of descriptors, most likely): free some, try again later."""
        closed = self._make_room()
        now = asyncio.get_running_loop().time()
        if now >= self._quiet_until:
            self._quiet_until = now + WARN_EVERY_SECONDS
            logger.warning(
                "%s: cannot accept a connection (%s) with %d open: %s; retrying in %gs",
                self._address,
                exc.strerror or exc,
                len(self._connections),
                "closed the longest idle ones" if closed else "none is idle",
                RETRY_SECONDS,
            )

    def _open(self, sock: socket.socket) -> None:
        self._pending += 1
        task = asyncio.get_running_loop().create_task(self._connect(sock))
        self._opening.add(task)
        task.add_done_callback(self._opening.discard)

    async def _connect(self, sock: socket.socket) -> None:
        made: list[HttpServerSocket] = []

        def make() -> HttpServerSocket:
            made.append(self._accept())
            return made[0]

        try:
            await asyncio.get_running_loop().connect_accepted_socket(make, sock)
        except OSError:  # the peer was gone before the transport was set up
            sock.close()
        finally:
            if not made or made[0].transport is None:  # never attached
                self._pending -= 1

    def _attach(self, conn: HttpServerSocket) -> None:
        self._pending -= 1
        self._connections.add(conn)
        loop = asyncio.get_running_loop()
        task = loop.create_task(self._serve(conn))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if self._sweeper is None and (self.read_timeout or self.idle_timeout):
            self._sweeper = loop.call_later(self._sweep_every(), self._sweep)

    def _detach(self, conn: HttpServerSocket) -> None:
        self._connections.discard(conn)
        if self._full and len(self._connections) + self._pending < self.max_connections * 0.9:
            self._full = False
        acceptor = self._acceptor
        if acceptor is not None and acceptor.paused:
            acceptor.resume()

    # ------------------------------------------------------------------ reclaiming

    def _sweep_every(self) -> float:
        timeouts = [t / 4 for t in (self.read_timeout, self.idle_timeout) if t]
        return min([1.0, *timeouts])

    def _sweep(self) -> None:
        """Refuse requests read for longer than ``read_timeout`` and close connections idle
        for longer than ``idle_timeout``; runs while connections exist."""
        self._sweeper = None
        if not self._connections or not (self.read_timeout or self.idle_timeout):
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        began_by = now - self.read_timeout if self.read_timeout else 0.0
        idle_since = now - self.idle_timeout if self.idle_timeout else 0.0
        for conn in list(self._connections):
            if conn._began:
                if conn._began <= began_by:
                    conn._read_timed_out(self.read_timeout or 0.0)
            elif conn._active <= idle_since and conn.idle:
                conn._close_now()
        self._sweeper = loop.call_later(self._sweep_every(), self._sweep)

    async def _serve(self, conn: HttpServerSocket) -> None:
        try:
            await self._handler(conn)
        except ConnectionClosed:
            pass
        except Exception:
            logger.exception("handler for the connection from %s failed", conn.remote)
        finally:
            await conn.close()


def _last_active(conn: HttpServerSocket) -> float:
    return conn._active
