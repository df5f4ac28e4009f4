"""The gateway's HTTP connections: uvicorn's httptools protocol with the limits it lacks.

uvicorn bounds neither how long a new connection may stay silent nor how long a request head
may take to arrive (a slowloris client dribbling header bytes holds a connection forever),
and its ``limit_concurrency`` answers 503 to every request once idle sockets fill it.
:class:`GatewayProtocol` adds, per connection:

- an idle timeout: a connection waiting for a request (new, or after an answer) that does not
  start one within ``idle_timeout`` seconds is closed;
- a header timeout: a request head not complete ``header_timeout`` seconds after its first
  byte is answered 408 and the connection closed;
- a head size limit: a request head still incomplete after :data:`MAX_HEAD` bytes is
  answered 431 and the connection closed (uvicorn buffered heads of any size);
- a connection limit: past ``max_connections`` open connections, the one waiting longest for
  a request is closed, so idle sockets cannot lock out clients with requests to make; a
  warning says so, at most once a minute;
- answers after a half-close: a client that shuts down its sending side after a complete
  request gets its answers, then the connection closes (uvicorn closed at once);
- a client gone with pipelined requests: every unanswered request is marked disconnected,
  not only the last one read, so the answer in progress is dropped instead of written to a
  closed transport (uvloop raised there, and uvicorn logged a traceback per request).

:func:`protocol_class` makes the class ``uvicorn.Config(http=...)`` takes. It leans on
uvicorn's ``HttpToolsProtocol`` internals (``cycle``, ``pipeline``, the parser callbacks);
``tests/toolkit/api/test_connections.py`` fails if a uvicorn release moves them.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from micro.errors import MicroError
from micro.toolkit.api._errors import API_ID

__all__ = ["ConnectionLimit", "GatewayProtocol", "protocol_class"]

log = logging.getLogger("micro.api")

WARN_EVERY = 60.0
LINGER = 2.0
MAX_HEAD = 64 * 1024
"""Bytes a request head (request line and headers) may take; counted in whole reads, so a
head that ends in the read that passes the limit is still served."""


class ConnectionLimit:
    """What the connections of one listener share: the limit, and who waits for a request.

    ``waiting`` is ordered by when each connection started waiting (opened, or answered its
    last request), so its first entry is the longest idle.
    """

    def __init__(self, max_connections: int) -> None:
        self.max_connections = max_connections  # 0: no limit
        self.waiting: dict[GatewayProtocol, None] = {}
        self.closing: set[GatewayProtocol] = set()  # closed here, connection_lost not yet run
        self._closed = 0
        self._warned_at: float | None = None

    def admit(self, newcomer: GatewayProtocol, open_now: int) -> None:
        """Close the longest-idle connection (else ``newcomer``) when over the limit."""
        if not self.max_connections or open_now - len(self.closing) <= self.max_connections:
            return
        victim = next((c for c in self.waiting if c is not newcomer), newcomer)
        self.closing.add(victim)
        self.waiting.pop(victim, None)
        victim.transport.close()
        self._closed += 1
        now = newcomer.loop.time()
        if self._warned_at is None or now - self._warned_at >= WARN_EVERY:
            log.warning(
                "%d connections open (--max-connections): closing the longest idle ones, "
                "%d so far since the last warning",
                self.max_connections,
                self._closed,
            )
            self._warned_at, self._closed = now, 0

    def forget(self, conn: GatewayProtocol) -> None:
        self.waiting.pop(conn, None)
        self.closing.discard(conn)


class GatewayProtocol(HttpToolsProtocol):
    """uvicorn's httptools HTTP/1.1 protocol with the limits of the module docstring."""

    limit: ClassVar[ConnectionLimit]
    idle_timeout: ClassVar[float]
    header_timeout: ClassVar[float]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        self._cycles: deque[RequestResponseCycle] = deque()  # read, oldest first
        self._eof = False
        self._head_bytes: int | None = None  # None: not inside a request head
        self._refused = False

    # -- connection events ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._wait_for_request()
        self.limit.admit(self, len(self.connections))

    def connection_lost(self, exc: Exception | None) -> None:
        for cycle in self._unanswered():
            cycle.disconnected = True
            cycle.message_event.set()
        self._cycles.clear()
        self._cancel_timer()
        self.limit.forget(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # the rest of a refused request: read and dropped until the client closes
        super().data_received(data)
        if self._head_bytes is None or self.transport.is_closing():
            return
        self._head_bytes += len(data)  # the head is still incomplete after all of it
        if self._head_bytes > MAX_HEAD:
            self._refuse(431, f"request head over {MAX_HEAD} bytes")

    def eof_received(self) -> bool | None:  # type: ignore[override]
        if self._refused:
            return None
        unanswered = self._unanswered()
        if unanswered and not unanswered[-1].more_body:
            self._eof = True  # every request was read in full: answer, then close
            return True
        return None  # nothing to answer, or a body cut short: close now

    # -- parser callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.limit.waiting.pop(self, None)
        self._head_bytes = 0
        self._arm(self.header_timeout, self._head_too_slow)

    def on_headers_complete(self) -> None:
        self._head_bytes = None
        self._cancel_timer()
        super().on_headers_complete()
        cycle = self.cycle  # a new one, unless the head asked for a WebSocket
        if cycle is None or cycle.response_complete:
            return
        if not self._cycles or self._cycles[-1] is not cycle:
            self._cycles.append(cycle)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        while self._cycles and self._cycles[0].response_complete:
            self._cycles.popleft()
        if self._cycles or self.transport.is_closing():
            return
        if self._eof:
            self.transport.close()
        else:
            self._wait_for_request()

    # -- timers -----------------------------------------------------------------------------

    def _unanswered(self) -> list[RequestResponseCycle]:
        return [cycle for cycle in self._cycles if not cycle.response_complete]

    def _wait_for_request(self) -> None:
        self.limit.waiting[self] = None
        self._arm(self.idle_timeout, self._idle)

    def _arm(self, seconds: float, expire: Any) -> None:
        self._cancel_timer()
        self._timer = self.loop.call_later(seconds, expire)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _idle(self) -> None:
        self._timer = None
        if not self._unanswered():
            self.transport.close()

    def _head_too_slow(self) -> None:
        self._timer = None
        if self._unanswered():  # a pipelined head waits for reading to resume: not its fault
            self._arm(self.header_timeout, self._head_too_slow)
            return
        self._refuse(408, f"request head not received within {self.header_timeout:g}s")

    def _refuse(self, code: int, detail: str) -> None:
        """Answer go-micro's JSON error ``code`` with no request for the app, then close.

        The close lingers: what the client still sends is read and dropped for up to
        :data:`LINGER` seconds, since closing a socket with unread data resets it, and the
        reset can destroy the answer before the client reads it.
        """
        if self._unanswered():  # answering now would put this answer before theirs
            self.transport.close()
            return
        err = MicroError(detail, id=API_ID, code=code)
        body = err.to_json()
        head = (
            f"HTTP/1.1 {code} {err.status}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        self.transport.write((head + body).encode())
        self._refused = True
        self.flow.resume_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._arm(LINGER, self.transport.close)


def protocol_class(
    *, idle_timeout: float, header_timeout: float, max_connections: int
) -> type[GatewayProtocol]:
    """A :class:`GatewayProtocol` class for one listener, for ``uvicorn.Config(http=...)``."""
    return type(
        "GatewayProtocol",
        (GatewayProtocol,),
        {
            "limit": ConnectionLimit(max_connections),
            "idle_timeout": idle_timeout,
            "header_timeout": header_timeout,
        },
    )
