"""Serving connections: route each message to its endpoint, call it, answer (docs/protocol.md).

One loop per connection: receive a message, route it by ``Micro-Endpoint``, decode the body
with the codec of its ``Content-Type``, call the handler through the wrappers (request
metadata in context, the ``Timeout`` header as a deadline), encode and send the reply.

Unary handlers run inline in the connection's task: no task per request. Deadlines share one
timer (:class:`_Watchdog`) instead of an ``asyncio.timeout`` per call, which costs ~5 us on
every request. A stream gets a handler task and a reader task, so that a client going away
cancels its handler.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from micro import metadata as md
from micro.codec import (
    DEFAULT_CONTENT_TYPE,
    Codec,
    CodecError,
    Envelope,
    EnvelopeCodec,
    lookup,
    supported,
)
from micro.errors import (
    BadRequest,
    ConnectionClosed,
    InternalServerError,
    MicroError,
    NotFound,
    Timeout,
)
from micro.server import HandlerFunc, Request, _legacy
from micro.server._stream import EOS, ServerStream
from micro.server.handler import NO_REQUEST, EndpointSpec, wire_types
from micro.transport import Message, Socket

__all__ = ["SERVER_ID", "Conn", "Route", "Router"]

log = logging.getLogger("micro.server")

SERVER_ID = "go.micro.server"
Admit = Callable[[Socket, dict[str, str], int], MicroError | None]
"""Admission control (load shedding, rate limits): the socket, the request's header and the
calls in flight (this one included) -> None to serve it, or the error that refuses it."""
_GONE: Any = object()  # a stream's outcome when its client went away


class Route:
    __slots__ = ("call", "carried", "counted", "spec", "types")

    def __init__(self, spec: EndpointSpec, call: HandlerFunc, *, counted: bool = True) -> None:
        self.spec = spec
        self.call = call
        self.counted = counted  # False for internal endpoints (Debug.*): not in the counts
        self.types = wire_types(spec)
        self.carried: dict[Codec, bool] = {}  # speaks() answers, read first on the hot path

    def speaks(self, codec: Codec) -> bool:
        """Whether ``codec`` can carry this endpoint's request and response types."""
        known = self.carried.get(codec)
        if known is None:
            known = self.carried[codec] = all(codec.carries(tp) for tp in self.types)
        return known

    def content_types(self) -> list[str]:
        """The content types this endpoint speaks, for error details (legacy envelopes,
        which wrap JSON and protobuf, go unnamed)."""
        codecs = ((name, lookup(name)) for name in supported())
        return [n for n, c in codecs if not isinstance(c, EnvelopeCodec) and self.speaks(c)]


class Conn:
    """One served connection and what stop() and the watchdog need to know about it."""

    __slots__ = ("aborted", "busy", "deadline", "expired", "seconds", "sock", "task")

    def __init__(self, sock: Socket, task: asyncio.Task[Any] | None) -> None:
        self.sock = sock
        self.task = task
        self.busy = False
        self.deadline = 0.0  # loop time the running call must end by; 0: none
        self.seconds = 0.0  # the running call's Timeout
        self.expired = False  # the watchdog cancelled the running call
        self.aborted = False  # stop() cancelled the running call


class _Watchdog:
    """One timer for the deadlines of every call in flight, armed at the nearest one."""

    def __init__(self, conns: set[Conn]) -> None:
        self._conns = conns
        self._timer: asyncio.TimerHandle | None = None
        self._at = 0.0

    def arm(self, when: float, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is None or when < self._at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = loop.call_at(when, self._fire, loop)
            self._at = when

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        now = loop.time()
        nearest = 0.0
        for conn in self._conns:
            deadline = conn.deadline
            if not deadline:
                continue
            if deadline <= now and conn.task is not None:
                conn.deadline = 0.0
                conn.expired = True
                conn.task.cancel()
            elif not nearest or deadline < nearest:
                nearest = deadline
        if nearest:
            self.arm(nearest, loop)


class Router:
    """Routes messages to endpoints and tracks the connections being served.

    It also counts the requests it serves for ``Debug.Stats`` (plain ints: one event loop
    touches them): ``requests`` answered or being answered, streams included; ``errors``,
    those answered with an error; ``active``, those in flight. Calls to internal
    endpoints (``Debug.*``) are left out, so that polling the stats does not move them.
    """

    def __init__(self, service: str) -> None:
        self.service = service
        self.routes: dict[str, Route] = {}
        self.known: list[str] = []  # advertised endpoint names, for 404 details
        self.conns: set[Conn] = set()
        self.inflight = 0  # every message being served, internal ones included (draining)
        self.requests = 0
        self.errors = 0
        self.active = 0
        self.drained = asyncio.Event()
        self.draining = False
        self.admit: Admit | None = None  # None: every call is served (no per-call cost)
        self._codecs: dict[str, Codec] = {}
        self._watchdog = _Watchdog(self.conns)

    # -- the connection loop ---------------------------------------------------------------

    async def serve(self, sock: Socket) -> None:
        """The transport's handler: serve ``sock`` until it closes or must close."""
        conn = Conn(sock, asyncio.current_task())
        self.conns.add(conn)
        try:
            while True:
                try:
                    msg = await sock.recv()
                except (MicroError, OSError):  # closed, or not a message (already answered)
                    return
                if msg.header.get("Micro-Error") == EOS:
                    continue  # a stream's end, after a unary answer to its opening: no call
                if self.draining:
                    endpoint = _endpoint(msg.header)
                    route = self.routes.get(endpoint)
                    counted = route is None or route.counted
                    self.requests += counted
                    reply = _reply(msg.header, endpoint, self.service)
                    await self._send_error(sock, reply, shutting_down(), counted)
                    return
                conn.busy = sock.busy = True  # a quiet stream is not idle to the transport
                self.inflight += 1
                try:
                    keep = await self._dispatch(conn, msg)
                finally:
                    conn.busy = sock.busy = False
                    self.inflight -= 1
                    if self.draining and not self.inflight:
                        self.drained.set()
                if not keep:
                    return
        except (MicroError, OSError):  # the reply could not be sent: the client went away
            return
        finally:
            self.conns.discard(conn)
            if not self.conns:
                self._watchdog.cancel()

    async def _dispatch(self, conn: Conn, msg: Message) -> bool:
        """Serve one message and count it; False when the connection must close after it."""
        header = msg.header
        content_type = header.get("Content-Type") or ""
        if "-rpc" in content_type or "-RPC" in content_type:  # cheap: only legacy types
            codec = self._codec(content_type)
            if isinstance(codec, EnvelopeCodec):
                return await self._enveloped(conn, msg, codec)
        endpoint = _endpoint(header)
        route = self.routes.get(endpoint)
        counted = route is None or route.counted
        if counted:
            self.requests += 1
            self.active += 1
        try:
            service = header.get("Micro-Service") or header.get("X-Micro-Service") or ""
            reply = _reply(header, endpoint, service or self.service)
            if self.admit is not None and counted:
                refused = self.admit(conn.sock, header, self.active)
                if refused is not None:
                    await self._send_error(conn.sock, reply, refused, counted)
                    return True
            content_type = reply["Content-Type"]
            if not (service.isascii() and endpoint.isascii() and content_type.isascii()):
                bad = _not_utf8(reply)
                if bad is not None:
                    await self._send_error(conn.sock, reply, bad, counted)
                    return True
            codec = self._codecs.get(content_type) or self._codec(content_type)
            if (
                route is None
                or codec is None
                or (service and service != self.service)
                or not (route.carried.get(codec) or route.speaks(codec))
            ):
                error = self._route_error(endpoint, service, content_type)
                await self._send_error(conn.sock, reply, error, counted)
                return True
            if route.spec.kind != "unary":
                return await self._stream(conn, msg, route, codec, reply)
            try:
                result = await self._call(conn, msg, route, codec, content_type)
            except asyncio.CancelledError:
                answer = self._cancelled(conn, route.spec)
                if answer is None:
                    raise
                await self._send_error(conn.sock, reply, answer, counted)
                return answer.code != 503
            except Exception as exc:
                failure = self._failure(route.spec, exc)
                await self._send_error(conn.sock, reply, failure, counted)
                return True
            try:
                body = codec.encode(result)
            except CodecError as exc:
                log.error("%s: %s", route.spec.name, exc.detail)
                failed = InternalServerError(f"{route.spec.name}: {exc.detail}", id=self.service)
                await self._send_error(conn.sock, reply, failed, counted)
                return True
            await conn.sock.send(Message(reply, body))
            return True
        finally:
            if counted:
                self.active -= 1

    async def _enveloped(self, conn: Conn, msg: Message, codec: EnvelopeCodec) -> bool:
        """A json-rpc or proto-rpc request: served unwrapped, answered in an envelope."""
        try:
            inner, envelope = _legacy.unwrap(msg, codec)
        except CodecError as exc:
            self.requests += 1
            reply = _reply(msg.header, _endpoint(msg.header), self.service)
            answer = _legacy.EnvelopeSocket(conn.sock, codec, Envelope("", "", b""))
            await self._send_error(answer, reply, BadRequest(exc.detail, id=SERVER_ID), True)
            return True
        sock = conn.sock
        conn.sock = _legacy.EnvelopeSocket(sock, codec, envelope)
        try:
            route = self.routes.get(_endpoint(inner.header))
            if route is not None and route.spec.kind != "unary":
                self.requests += 1
                detail = f"{route.spec.name} is a stream: {codec.content_type} carries no streams"
                reply = _reply(inner.header, route.spec.name, self.service)
                await self._send_error(conn.sock, reply, BadRequest(detail, id=SERVER_ID), True)
                return True
            return await self._dispatch(conn, inner)
        finally:
            conn.sock = sock

    async def _call(
        self, conn: Conn, msg: Message, route: Route, codec: Codec, content_type: str
    ) -> Any:
        request = self._request(msg.header, msg.body, route.spec, codec, content_type)
        timeout = msg.header.get("Timeout")
        if not timeout:
            return await route.call(request)
        seconds = _seconds(timeout)
        if seconds <= 0:
            return await route.call(request)
        loop = asyncio.get_running_loop()
        conn.deadline = when = loop.time() + seconds
        conn.seconds = seconds
        self._watchdog.arm(when, loop)
        try:
            result = await route.call(request)
        finally:
            conn.deadline = 0.0
        if conn.expired:  # the handler swallowed the watchdog's cancellation
            if conn.task is not None:
                conn.task.uncancel()
            conn.expired = False
            raise self._expired(route.spec, seconds)
        return result

    def _request(
        self,
        header: dict[str, str],
        data: bytes,
        spec: EndpointSpec,
        codec: Codec,
        content_type: str,
        io: ServerStream | None = None,
    ) -> Request:
        if spec.kind == "bidi":
            body: Any = io  # the opening message's body is ignored, as in go-micro v1
        elif spec.request_type is NO_REQUEST or (spec.optional and not data.strip()):
            body = None
        else:
            body = codec.decode(data, spec.request_type)
        md.set_incoming(header)
        return Request(
            service=self.service,
            endpoint=spec.name,
            content_type=content_type,
            header=header,
            metadata=md.get(),
            body=body,
            stream=io is not None,
            io=io,
        )

    # -- streams ---------------------------------------------------------------------------

    async def _stream(
        self, conn: Conn, msg: Message, route: Route, codec: Codec, reply: dict[str, str]
    ) -> bool:
        """Run a stream to its end; the connection always closes after it."""
        spec = route.spec
        stream_id = msg.header.get("Micro-Stream") or msg.header.get("X-Micro-Stream")
        if stream_id is not None:
            reply["Micro-Stream"] = stream_id
        stream = ServerStream(
            conn.sock,
            codec,
            endpoint=spec.name,
            service=self.service,
            request_type=spec.request_type,
            reply_header=reply,
            reads=spec.kind == "bidi",
            takes_request=spec.kind == "server_stream" and spec.request_type is not NO_REQUEST,
        )
        outcome = await self._run_stream(conn, route, msg, stream, codec)
        if outcome is not _GONE:
            if outcome is not None:
                self.errors += route.counted
            await stream.end(outcome)
        return False

    async def _run_stream(
        self, conn: Conn, route: Route, opening: Message, stream: ServerStream, codec: Codec
    ) -> Any:
        """The handler's outcome: None (done), its MicroError, or _GONE (the client left)."""
        seconds = _seconds(opening.header.get("Timeout") or "0")
        handler = asyncio.create_task(self._serve_stream(route, opening, stream, codec))
        reader = asyncio.create_task(stream.pump())
        try:
            done, _ = await asyncio.wait(
                {handler, reader},
                timeout=seconds if seconds > 0 else None,
                return_when=asyncio.FIRST_COMPLETED,
            )
        except asyncio.CancelledError:
            await _cancel(handler, reader)
            answer = self._cancelled(conn, route.spec)
            if answer is None:
                raise
            return answer
        await _cancel(reader, handler)
        if not done:
            return self._expired(route.spec, seconds)
        if reader in done or handler.cancelled():
            return _GONE
        exc = handler.exception()
        if exc is None:
            return None
        if isinstance(exc, ConnectionClosed):
            return _GONE
        return self._failure(route.spec, exc)

    async def _serve_stream(
        self, route: Route, opening: Message, stream: ServerStream, codec: Codec
    ) -> None:
        """The handler task: wait for a server stream's request if it takes one, then call.

        The request comes from the client's first stream message, as go-micro v1 servers
        take it; the opening message gives the headers (metadata, deadline) and, only when
        the client ends its half before sending a message, the body.
        """
        body = opening.body
        if stream.takes_request:
            first = await stream.request()
            if first is not None:
                body = first.body
        spec, content_type = route.spec, stream.content_type
        request = self._request(opening.header, body, spec, codec, content_type, stream)
        await route.call(request)

    # -- stopping --------------------------------------------------------------------------

    def abort(self) -> list[asyncio.Task[Any]]:
        """Cancel every call in flight (they answer 503); returns the tasks cancelled."""
        tasks = []
        for conn in self.conns:
            if conn.busy and conn.task is not None:
                conn.aborted = True
                conn.task.cancel()
                tasks.append(conn.task)
        return tasks

    async def close_all(self) -> None:
        """Close every connection and wait (briefly) for their loops to end."""
        conns = list(self.conns)
        for conn in conns:
            await conn.sock.close()
        current = asyncio.current_task()
        tasks = [c.task for c in conns if c.task is not None and c.task is not current]
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)
        self._watchdog.cancel()

    # -- errors ----------------------------------------------------------------------------

    def _codec(self, content_type: str) -> Codec | None:
        try:
            codec = lookup(content_type)
        except CodecError:
            return None
        if len(self._codecs) < 64:
            self._codecs[content_type] = codec
        return codec

    def _route_error(self, endpoint: str, service: str, content_type: str) -> MicroError:
        if not endpoint:
            return BadRequest("rpc: service/endpoint request ill-formed", id=SERVER_ID)
        if service and service != self.service:
            detail = f"service {service}: not found here (this is {self.service})"
            return NotFound(detail, id=SERVER_ID)
        route = self.routes.get(endpoint)
        if route is None:
            listed = ", ".join(self.known[:10]) + (", ..." if len(self.known) > 10 else "")
            return NotFound(f"unknown endpoint {endpoint} (known: {listed})", id=SERVER_ID)
        speaks = ", ".join(route.content_types())
        detail = f"Unsupported Content-Type: {content_type} ({endpoint} speaks {speaks})"
        return BadRequest(detail, id=SERVER_ID)

    def _failure(self, spec: EndpointSpec, exc: BaseException) -> MicroError:
        """The wire error for what decoding or the handler raised."""
        if isinstance(exc, MicroError):
            if not exc.id:
                exc.id = self.service
            return exc
        log.error("%s failed", spec.name, exc_info=exc)
        return InternalServerError(f"{spec.name}: {type(exc).__name__}: {exc}", id=self.service)

    def _cancelled(self, conn: Conn, spec: EndpointSpec) -> MicroError | None:
        """The answer to a call that the watchdog or stop() cancelled; None if neither did."""
        expired, aborted = conn.expired, conn.aborted
        conn.expired = False
        ours = int(expired) + int(aborted)
        task = conn.task
        if not ours or task is None:
            return None
        remaining = 0
        for _ in range(ours):
            remaining = task.uncancel()
        if remaining:  # cancelled by someone else too: let it propagate
            return None
        if aborted:
            return shutting_down()
        return self._expired(spec, conn.seconds)

    def _expired(self, spec: EndpointSpec, seconds: float) -> Timeout:
        return Timeout(f"{spec.name}: deadline of {seconds:g}s exceeded", id=self.service)

    async def _send_error(
        self, sock: Socket, reply: dict[str, str], error: MicroError, counted: bool
    ) -> None:
        """Answer ``error``; ``counted``: the request is in the counts (not ``Debug.*``)."""
        self.errors += counted
        reply["Micro-Error"] = reply["X-Micro-Error"] = error.to_json()
        await sock.send(Message(reply, b""))


def shutting_down() -> MicroError:
    return MicroError("server is shutting down", id=SERVER_ID, code=503)


def _endpoint(header: dict[str, str]) -> str:
    return (
        header.get("Micro-Endpoint")
        or header.get("Micro-Method")
        or header.get("X-Micro-Endpoint")
        or header.get("X-Micro-Method")
        or ""
    )


def _reply(header: dict[str, str], endpoint: str, service: str) -> dict[str, str]:
    """The reply's headers: the request's routing headers echoed."""
    reply = {
        "Content-Type": header.get("Content-Type") or DEFAULT_CONTENT_TYPE,
        "Micro-Service": service,
        "Micro-Endpoint": endpoint,
        "Micro-Method": endpoint,
    }
    request_id = header.get("Micro-Id") or header.get("X-Micro-Id")
    if request_id is not None:
        reply["Micro-Id"] = request_id
    return reply


def _not_utf8(reply: dict[str, str]) -> BadRequest | None:
    """A 400 naming the first routing header that was not UTF-8 on the wire, else None.

    The transport keeps such bytes as lone surrogates (``surrogateescape``); each bad value
    in ``reply`` is replaced by its escaped form, so that neither the detail nor the echoed
    headers carry them back.
    """
    error = None
    for name in ("Micro-Service", "Micro-Endpoint", "Micro-Method", "Content-Type"):
        value = reply[name]
        if _is_utf8(value):
            continue
        shown = reply[name] = _shown(value)
        if error is None:
            error = BadRequest(f"header {name} is not valid UTF-8: '{shown}'", id=SERVER_ID)
    return error


def _is_utf8(value: str) -> bool:
    if value.isascii():
        return True
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _shown(value: str) -> str:
    """A header value as printable ASCII: each other byte escaped as a bytes repr does."""
    try:
        return repr(value.encode("utf-8", "surrogateescape"))[2:-1]
    except UnicodeEncodeError:  # a surrogate no received byte stands for (an in-process peer)
        return ascii(value)[1:-1]


def _seconds(timeout: str) -> float:
    try:
        return int(timeout) / 1e9
    except ValueError:
        return 0.0


async def _cancel(*tasks: asyncio.Task[Any]) -> None:
    """Cancel ``tasks`` and wait for them to end (their outcome stays on the tasks)."""
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks)
