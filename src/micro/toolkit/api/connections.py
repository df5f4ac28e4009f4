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
  request gets its answers, then the connection closes (uvicorn closed at once). An event
  stream (a ``text/event-stream`` answer) has no end to wait for, and a client that closed
  its socket looks the same as one that half-closed: once the client's EOF came, the app
  serving an event stream gets ``http.disconnect`` from ``receive()`` (after the request
  body), so the stream ends at once instead of at its next write;
- a client gone with pipelined requests: every unanswered request is marked disconnected,
  not only the last one read, so the answer in progress is dropped instead of written to a
  closed transport (uvloop raised there, and uvicorn logged a traceback per request).

:func:`protocol_class` makes the class ``uvicorn.Config(http=...)`` takes. It leans on
uvicorn's ``HttpToolsProtocol`` internals (``cycle``, ``pipeline``, the parser callbacks) and
on its ``RequestResponseCycle`` (built in ``on_headers_complete``; its ``receive``, ``send``,
``message_event``, ``more_body``); ``tests/toolkit/api/test_connections.py`` and
``tests/toolkit/web/test_shutdown.py`` fail if a uvicorn release moves them.

:class:`GatewayServer` is the ``uvicorn.Server`` of ``micro api`` and ``micro web``: it runs a
hook as shutdown starts (before uvicorn waits for open connections) and exits 0 after the
signal that stopped it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import signal
import socket
import ssl
from collections import deque
from collections.abc import Callable, Coroutine
from types import FrameType
from typing import Any, ClassVar, Protocol, cast

import uvicorn
from starlette.types import ASGIApp
from uvicorn._types import ASGIReceiveEvent, ASGISendEvent
from uvicorn.config import LifespanType
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from micro.errors import MicroError
from micro.toolkit.api._errors import API_ID

__all__ = ["ConnectionLimit", "GatewayProtocol", "GatewayServer", "protocol_class"]

log = logging.getLogger("micro.api")

WARN_EVERY = 60.0
LINGER = 2.0
_IDLE, _HEAD, _BUSY = 1, 2, 0  # what a connection waits for: a request, its head, its app
_EARLY = 0.001  # a timer may fire this early (the loop's clock resolution): count it as due
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


class EofAwareCycle(RequestResponseCycle):
    """uvicorn's request-response cycle, whose app is told ``http.disconnect`` after its
    request body once the client's EOF came, if its answer is an event stream (see the
    module docstring). The protocol makes each of its HTTP cycles one: that costs less per
    request than wrapping the app's ``receive`` and ``send`` in closures."""

    eof = False  # the client's EOF came (set by the protocol)
    events = False  # the answer is an event stream
    body_read = False  # receive() returned the end of the request body

    async def receive(self) -> ASGIReceiveEvent:
        while True:
            if self.body_read and self.events and self.eof:
                return {"type": "http.disconnect"}
            message = await super().receive()
            if message["type"] != "http.request" or message.get("more_body"):
                return message
            if not self.body_read:  # the end of the body; later ones are eof_received's wake-ups
                self.body_read = True
                return message

    def send(self, message: ASGISendEvent) -> Coroutine[Any, Any, None]:
        # not a coroutine itself: uvicorn's send is awaited with no frame of ours around it
        if message["type"] == "http.response.start" and _is_event_stream(message):
            self.events = True
            if self.eof:
                self.message_event.set()
        return super().send(message)


class GatewayProtocol(HttpToolsProtocol):
    """uvicorn's httptools HTTP/1.1 protocol with the limits of the module docstring."""

    limit: ClassVar[ConnectionLimit]
    idle_timeout: ClassVar[float]
    header_timeout: ClassVar[float]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        self._phase = _BUSY  # what the connection waits for: its timer checks it
        self._since = 0.0  # when that wait began (loop clock)
        self._cycles: deque[EofAwareCycle] = deque()  # read, oldest first
        self._eof = False
        self._head_bytes: int | None = None  # None: not inside a request head
        self._refused = False

    # -- connection events ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._wait_for_request()
        self._look_again(self._since)
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
            for cycle in unanswered:
                cycle.eof = True
                cycle.message_event.set()  # an event stream waiting in receive() learns it
            return True
        return None  # nothing to answer, or a body cut short: close now

    # -- parser callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.limit.waiting.pop(self, None)
        self._head_bytes = 0
        self._phase, self._since = _HEAD, self.loop.time()

    def on_headers_complete(self) -> None:
        self._head_bytes = None
        self._phase = _BUSY
        super().on_headers_complete()
        cycle = self.cycle  # a new one, unless the head asked for a WebSocket
        if cycle is None or cycle.response_complete:
            return
        if not self._cycles or self._cycles[-1] is not cycle:
            cycle.__class__ = EofAwareCycle  # uvicorn builds it inline: no other way in
            self._cycles.append(cast(EofAwareCycle, cycle))

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

    # -- the timer --------------------------------------------------------------------------
    #
    # One timer per connection, armed when it opens and re-armed only when it fires: a phase
    # (waiting for a request, inside a head, busy) begins by noting the time, and the timer
    # is never further away than the shorter timeout, so it fires by the deadline of any
    # phase begun since it was armed, then looks at what the connection is doing. A request
    # costs no timer of its own (two per request were a few percent of a gateway call).

    def _unanswered(self) -> list[EofAwareCycle]:
        return [cycle for cycle in self._cycles if not cycle.response_complete]

    def _wait_for_request(self) -> None:
        self.limit.waiting[self] = None
        self._phase, self._since = _IDLE, self.loop.time()

    def _check(self) -> None:
        """Close an idle connection, refuse a head too slow, else look again later."""
        self._timer = None
        now = self.loop.time()
        if self._phase == _IDLE and now >= self._since + self.idle_timeout - _EARLY:
            if not self._unanswered():
                self.transport.close()
                return
        elif self._phase == _HEAD and now >= self._since + self.header_timeout - _EARLY:
            if not self._unanswered():
                self._refuse(408, f"request head not received within {self.header_timeout:g}s")
                return
            self._since = now  # a pipelined head waits for reading to resume: not its fault
        self._look_again(now)

    def _look_again(self, now: float) -> None:
        when = now + min(self.idle_timeout, self.header_timeout)
        if self._phase == _IDLE:
            when = min(when, self._since + self.idle_timeout)
        elif self._phase == _HEAD:
            when = min(when, self._since + self.header_timeout)
        self._timer = self.loop.call_at(when, self._check)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

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
        self._phase = _BUSY
        self._cancel_timer()
        self._timer = self.loop.call_later(LINGER, self.transport.close)


def _is_event_stream(start: ASGISendEvent) -> bool:
    for name, value in start.get("headers", ()):  # type: ignore[attr-defined]
        if name.lower() == b"content-type":
            return bytes(value).split(b";", 1)[0].strip().lower() == b"text/event-stream"
    return False


class GatewayServer(uvicorn.Server):
    """``uvicorn.Server`` with a hook at the start of shutdown, exiting 0 after a signal.

    ``before_shutdown`` runs as soon as shutdown starts, before uvicorn stops listening and
    waits (up to ``timeout_graceful_shutdown``) for the open connections: the app ends its
    endless answers there (event streams, WebSockets), so they do not hold the exit up.
    SIGTERM or SIGINT stops the server gracefully (a second SIGINT at once), and the process
    then exits 0 as a service does, instead of uvicorn raising the signal again.
    """

    def __init__(
        self, config: uvicorn.Config, before_shutdown: Callable[[], None] | None = None
    ) -> None:
        super().__init__(config)
        self.before_shutdown = before_shutdown

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        else:
            self.should_exit = True

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.before_shutdown is not None:
            try:
                self.before_shutdown()
            except Exception:
                log.exception("ending the open streams failed")
        await super().shutdown(sockets)


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


class Limits(Protocol):
    """What :func:`server_config` reads of an app's options (an ``ApiOptions``, ``WebOptions``,
    ``ProxyOptions``: their common ``AppOptions``)."""

    idle_timeout: float
    header_timeout: float
    max_connections: int
    max_body: int


def server_config(
    app: ASGIApp,
    limits: Limits,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    log_level: str = "info",
    lifespan: LifespanType = "on",
    graceful: int = 10,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
    ssl_ca_certs: str | None = None,
) -> uvicorn.Config:
    """The uvicorn configuration of a toolkit app (``micro api``, ``micro web``, ``micro
    proxy``, the dashboard of ``micro run``): :class:`GatewayProtocol` with the app's
    connection limits, WebSocket frames up to its body limit, no uvicorn access log (the app
    logs its own).

    With ``ssl_certfile`` (and ``ssl_keyfile`` unless the file holds the key too) it serves
    https and wss; with ``ssl_ca_certs`` too, every client must present a certificate that
    CA signed (mutual TLS). The files are read by ``Config.load()``.
    """
    tls: dict[str, Any] = {}
    if ssl_certfile:
        tls = {"ssl_certfile": ssl_certfile, "ssl_keyfile": ssl_keyfile}
        if ssl_ca_certs:
            tls.update(ssl_ca_certs=ssl_ca_certs, ssl_cert_reqs=ssl.CERT_REQUIRED)
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        lifespan=lifespan,
        http=protocol_class(
            idle_timeout=limits.idle_timeout,
            header_timeout=limits.header_timeout,
            max_connections=limits.max_connections,
        ),
        ws_max_size=max(limits.max_body, 1),
        # the protocol closes idle connections itself; uvicorn's own timer is a backstop
        timeout_keep_alive=math.ceil(limits.idle_timeout),
        timeout_graceful_shutdown=graceful,
        proxy_headers=False,  # the rate limit keys on the real peer, not X-Forwarded-For
        **tls,
    )
