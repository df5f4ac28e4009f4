"""ASGI middleware of the gateway: access log, header check, per-client rate limit, auth.

All are plain ASGI (no per-request task or body buffering), so they cost microseconds.
CORS is Starlette's ``CORSMiddleware``, configured from the options.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from micro.errors import BadRequest, MicroError, Unauthorized
from micro.metadata import canonical
from micro.toolkit.api._errors import API_ID, http_error

__all__ = [
    "AccessLog",
    "Auth",
    "AuthCheck",
    "HeaderCheck",
    "RateLimit",
    "bearer_token",
    "run_check",
    "unreadable_header",
]

access_log = logging.getLogger("micro.api.access")

AuthCheck = Callable[[str, Scope], Awaitable[bool] | bool]
"""Decides whether a bearer token may make this request (``scope`` is the ASGI scope).

Return False (or raise ``micro.errors.Unauthorized``/``Forbidden``) to refuse it."""


async def send_error(send: Send, exc: BaseException, headers: list[tuple[bytes, bytes]]) -> None:
    """Answer with ``exc`` as go-micro's JSON error, without touching the request body."""
    err = http_error(exc)
    body = err.to_json().encode()
    await send(
        {
            "type": "http.response.start",
            "status": err.code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class AccessLog:
    """One log line per request: client, method, path, status, bytes, milliseconds.

    Lines go to ``logger`` (default ``micro.api.access``; ``micro web`` passes its own).
    """

    def __init__(self, app: ASGIApp, logger: logging.Logger = access_log) -> None:
        self.app = app
        self.log = logger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not self.log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        seen = {"status": 0, "bytes": 0}

        async def logged(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
            elif message["type"] == "http.response.body":
                seen["bytes"] += len(message.get("body", b""))
            elif message["type"] == "websocket.accept":
                seen["status"] = 101
            await send(message)

        try:
            await self.app(scope, receive, logged)
        finally:
            client = scope.get("client") or ("-", 0)
            query = scope.get("query_string", b"")
            path = scope["path"] + ("?" + query.decode("latin-1") if query else "")
            self.log.info(
                '%s "%s %s HTTP/%s" %d %dB %.2fms',
                client[0],
                scope.get("method", "WS"),
                path,
                scope.get("http_version", "1.1"),
                seen["status"],
                seen["bytes"],
                (time.perf_counter() - started) * 1000,
            )


# Headers the gateway reads itself (CORS, auth, routing, body, call deadline): HTTP's grammar
# for each of them is ASCII.
_INTERPRETED = frozenset(
    {
        b"access-control-request-headers",
        b"access-control-request-method",
        b"authorization",
        b"content-length",
        b"content-type",
        b"host",
        b"origin",
        b"timeout",
    }
)


def unreadable_header(headers: list[tuple[bytes, bytes]]) -> str | None:
    """Why the gateway cannot read these headers, or None when it can.

    A header the gateway interprets must be ASCII; any other must be UTF-8, since it is
    passed on as text (call metadata, go-api ``Request.header``).
    """
    for name, value in headers:
        if value.isascii():
            continue
        title = canonical(name.decode("latin-1"))
        if name in _INTERPRETED:
            return f"invalid {title} header: not ASCII"
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            return f"invalid {title} header: not UTF-8"
    return None


class HeaderCheck:
    """Refuses (400, or WebSocket close 4400) a request with a header it cannot read.

    It runs first, so every later step can decode headers without a failure path.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            problem = unreadable_header(scope["headers"])
            if problem is not None:
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 4400})
                else:
                    await send_error(send, BadRequest(problem, id=API_ID), [])
                return
        await self.app(scope, receive, send)


class RateLimit:
    """A token bucket per client address: ``rate`` requests/s with bursts up to ``burst``.

    Over the limit a request gets 429 with ``Retry-After``; no service is called.
    """

    def __init__(self, app: ASGIApp, *, rate: float, burst: int, max_clients: int = 10000):
        if rate <= 0 or burst < 1:
            raise ValueError("rate limit: rate must be > 0 and burst >= 1")
        self.app = app
        self.rate = rate
        self.burst = float(burst)
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def allow(self, client: str, now: float) -> float:
        """0 when allowed, else the seconds until the next token."""
        tokens, last = self._buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self.rate
        self._buckets[client] = (tokens, now)
        if len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            client = (scope.get("client") or ("-", 0))[0]
            wait = self.allow(str(client), time.monotonic())
            if wait:
                err = MicroError(f"rate limit of {self.rate:g}/s exceeded", id=API_ID, code=429)
                retry = str(max(1, round(wait + 0.5))).encode()
                await send_error(send, err, [(b"retry-after", retry)])
                return
        await self.app(scope, receive, send)


class Auth:
    """Refuses requests without an accepted ``Authorization: Bearer <token>`` (401).

    ``check`` runs before any service is called; paths in ``exempt`` (``/health``) and CORS
    preflights pass without a token.
    """

    def __init__(self, app: ASGIApp, *, check: AuthCheck, exempt: frozenset[str]) -> None:
        self.app = app
        self.check = check
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        if scope.get("method") == "OPTIONS":
            await self.app(scope, receive, send)
            return
        challenge = [(b"www-authenticate", b'Bearer realm="micro"')]
        token = bearer_token(scope)
        try:
            if not token:
                raise Unauthorized("missing bearer token", id=API_ID)
            if not await run_check(self.check, token, scope):
                raise Unauthorized("invalid token", id=API_ID)
        except MicroError as exc:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 4000 + http_error(exc).code})
                return
            await send_error(send, exc, challenge if exc.code == 401 else [])
            return
        await self.app(scope, receive, send)


async def run_check(check: AuthCheck, token: str, scope: Scope) -> bool:
    """Whether ``check`` accepts ``token`` (sync or async); its errors propagate."""
    result: Any = check(token, scope)
    if inspect.isawaitable(result):
        result = await result
    return bool(result)


def bearer_token(scope: Scope) -> str:
    """The token of the request's ``Authorization: Bearer`` header, "" when absent."""
    for key, value in scope["headers"]:
        if key == b"authorization":
            scheme, _, token = str(value.decode("latin-1")).partition(" ")
            if scheme.lower() == "bearer":
                return token.strip()
    return ""
