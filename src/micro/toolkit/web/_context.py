"""What the dashboard's data handlers (live, nodes, calls, terminal) need from the app.

:class:`Dashboard` is the part of ``micro.toolkit.web.app.Dashboard`` those handlers use,
as a Protocol, so they are typed without importing the app (which imports them). The
helpers below answer JSON, errors (``{"error": {id, code, detail, status}}`` with the
HTTP status of ``code``) and Server-Sent Events over plain ASGI.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl

import msgspec
from starlette.types import ASGIApp, Receive, Scope, Send

from micro.errors import (
    BadRequest,
    BrokerError,
    MethodNotAllowed,
    MicroError,
    status_text,
)
from micro.toolkit.api._errors import http_error

if TYPE_CHECKING:
    from micro.broker import Broker
    from micro.client import Client
    from micro.registry import Registry
    from micro.selector import Selector
    from micro.settings import Settings
    from micro.toolkit.web.live import Live
    from micro.toolkit.web.options import WebOptions

__all__ = [
    "WEB_ID",
    "Dashboard",
    "Handler",
    "Streams",
    "error_body",
    "handler",
    "json_object",
    "query",
    "send_json",
    "sse_event",
    "sse_start",
    "wait_disconnect",
]

WEB_ID = "go.micro.web"
"""The ``id`` of the errors the dashboard itself answers with."""

_json = msgspec.json.Encoder()
log = logging.getLogger("micro.web")

Handler = Callable[[Scope, Receive, Send], Awaitable[None]]


class Dashboard(Protocol):
    """The app object the handlers are built over (read-only views of its attributes)."""

    @property
    def options(self) -> WebOptions: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def registry(self) -> Registry: ...

    @property
    def selector(self) -> Selector: ...

    @property
    def client(self) -> Client: ...

    @property
    def broker(self) -> Broker: ...

    @property
    def live(self) -> Live: ...

    @property
    def streams(self) -> Streams: ...

    async def read_body(self, scope: Scope, receive: Receive) -> bytes:
        """The request body, within the size limit and the read timeout."""
        ...

    async def connected_broker(self) -> Broker:
        """:attr:`broker`, connected once however many requests ask at the same time."""
        ...


def error_body(exc: BaseException) -> tuple[int, bytes]:
    """(HTTP status, ``{"error": {...}}`` bytes) for ``exc``.

    A service's own error keeps its code; the client's conditions map as the gateway's
    (no such service 404, node unreachable 502, deadline 504); a broker failure is 502.
    """
    if isinstance(exc, BrokerError):
        exc = MicroError(exc.detail, id=exc.id or WEB_ID, code=502)
    elif not isinstance(exc, MicroError):
        log.error("dashboard failure", exc_info=exc)
        exc = MicroError(f"dashboard failure: {type(exc).__name__}", id=WEB_ID, code=500)
    err = http_error(exc)
    if not err.status:
        err.status = status_text(err.code)
    return err.code, b'{"error":' + err.to_json().encode() + b"}"


async def send_json(send: Send, body: Any, status: int = 200) -> None:
    """Answer ``body`` (bytes: already JSON) as an ``application/json`` response."""
    data = body if isinstance(body, bytes) else _json.encode(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(data)),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


def handler(*methods: str) -> Callable[[Handler], ASGIApp]:
    """Wrap an HTTP handler: other methods get 405, failures become JSON errors.

    A :class:`MicroError` raised before the response started is the answer; anything else
    is logged and answered as a 500 (never a traceback to the client).
    """
    allowed = frozenset(methods)

    def wrap(func: Handler) -> ASGIApp:
        @functools.wraps(func)
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            started = False

            async def tracked(message: Any) -> None:
                nonlocal started
                started = True
                await send(message)

            try:
                if scope["type"] != "http":
                    raise BadRequest(f"{scope['path']} answers HTTP only", id=WEB_ID)
                if scope["method"] not in allowed:
                    names = ", ".join(sorted(allowed))
                    raise MethodNotAllowed(f"use {names} for {scope['path']}", id=WEB_ID)
                await func(scope, receive, tracked)
            except Exception as exc:
                if started:
                    raise
                status, body = error_body(exc)
                await send_json(send, body, status)

        return app

    return wrap


def query(scope: Scope, name: str) -> str:
    """The last value of ``name`` in the query string ("" when absent)."""
    raw = scope.get("query_string", b"").decode("latin-1")
    found = ""
    for key, value in parse_qsl(raw, keep_blank_values=True):
        if key == name:
            found = value
    return found


async def json_object(dash: Dashboard, scope: Scope, receive: Receive) -> dict[str, Any]:
    """The request body as a JSON object.

    Raises:
        BadRequest: the body is empty, not JSON, or not an object.
        PayloadTooLarge, RequestTimeout: from ``dash.read_body``.
    """
    raw = await dash.read_body(scope, receive)
    if not raw.strip():
        raise BadRequest("empty body: send a JSON object", id=WEB_ID)
    try:
        data = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise BadRequest(f"invalid JSON body: {exc}", id=WEB_ID) from None
    except RecursionError:
        raise BadRequest("invalid JSON body: nested too deeply", id=WEB_ID) from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object", id=WEB_ID)
    return data


# -- Server-Sent Events -------------------------------------------------------------------

PING = b": ping\n\n"


async def sse_start(send: Send) -> None:
    """Start an event stream response (no caching, no proxy buffering)."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-store"),
                (b"x-accel-buffering", b"no"),
            ],
        }
    )


def sse_event(name: str, data: bytes) -> bytes:
    """One event; ``data`` is one line of JSON (compact JSON has no raw newline)."""
    return b"event: " + name.encode() + b"\ndata: " + data + b"\n\n"


async def wait_disconnect(receive: Receive) -> None:
    """Return once the client has gone (the request body, if any, is ignored)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


class Streams:
    """The dashboard's open endless answers (event streams, stream WebSockets): counted by
    kind for ``/_/info``, and ended together by :meth:`end` when the server shuts down."""

    def __init__(self) -> None:
        self._open: dict[asyncio.Event, str] = {}
        self.ended = False
        """True after :meth:`end`: a stream opened later ends at once."""

    def counts(self) -> dict[str, int]:
        """How many streams of each kind are open (kinds with none are left out)."""
        out: dict[str, int] = {}
        for kind in self._open.values():
            out[kind] = out.get(kind, 0) + 1
        return dict(sorted(out.items()))

    def end(self) -> None:
        """End every open stream, and any opened from now on."""
        self.ended = True
        for event in self._open:
            event.set()

    @contextlib.asynccontextmanager
    async def watch(
        self, kind: str, gone: Callable[[], Awaitable[Any]]
    ) -> AsyncIterator[asyncio.Task[Any]]:
        """Count a stream of ``kind`` while the block runs; the task it gives ends when
        ``gone()`` returns (the client left) or :meth:`end` is called, whichever is first."""
        ended = asyncio.Event()
        if self.ended:
            ended.set()
        self._open[ended] = kind
        over = asyncio.create_task(_first(gone(), ended.wait()))
        try:
            yield over
        finally:
            del self._open[ended]
            await stop(over)


async def _first(*aws: Awaitable[Any]) -> None:
    """Return when the first of ``aws`` is done; cancel the others."""
    tasks = [asyncio.ensure_future(aw) for aw in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            await stop(task)


STOP_WAIT = 2.0
"""Seconds :func:`stop` waits for a cancelled task before it leaves it behind."""


async def stop(task: asyncio.Task[Any] | None, wait: float = STOP_WAIT) -> None:
    """Cancel ``task`` and wait for it, at most ``wait`` seconds; never raises.

    Bounded because a task can fail to end when cancelled (seen: a registry watch over a
    gRPC stream to an unreachable etcd, now and then), and closing the dashboard must
    not hang on it: such a task is logged and left behind.
    """
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(BaseException):
        done, _ = await asyncio.wait({task}, timeout=wait)
        if not done:
            log.warning("%s did not stop within %.0f s of its cancel; left behind", task, wait)
            return
        if not task.cancelled():
            task.exception()  # retrieved, so asyncio does not log it as never retrieved
