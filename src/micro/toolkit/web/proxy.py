"""The reverse proxy: ``/[name]/...`` to a node of the web service ``<namespace>.[name]``.

- ``[name]`` must match :data:`~micro.toolkit.web.options.NAME_PATTERN` (go-micro's rule).
- The ``/[name]`` prefix is stripped, the query string kept; the service sees
  ``X-Micro-Web-Base-Path: /[name]`` (to build its links) and ``X-Forwarded-For``,
  ``-Host`` and ``-Proto``.
- ``GET /[name]`` (no trailing slash) redirects (307) to ``/[name]/``, so the page's
  relative links resolve under its prefix; other methods go to the service's ``/``.
- Bodies stream both ways (an SSE page or a large download is relayed as it comes; an
  upload beyond ``max_body`` is cut with 413). WebSocket upgrades pass through, frames both
  ways.
- The node is chosen by the selector. A node that refuses the connection is marked failed
  (``selector.mark``) and, when the request can be sent again (nothing of it read, or a small
  body read whole), the next node is tried; with none left the answer is 502.
- When auth is on, the dashboard's credential (the ``micro_token`` cookie, and the bearer
  token it checked) is not passed on: a web service never sees the dashboard's token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING
from urllib.parse import quote

from starlette.responses import RedirectResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidHandshake, InvalidURI

from micro.errors import (
    BadRequest,
    ConnectError,
    MicroError,
    NoneAvailable,
    PayloadTooLarge,
    RequestTimeout,
    ServiceNotFound,
    Timeout,
)
from micro.registry import Node
from micro.toolkit.api._errors import error_response, http_error
from micro.toolkit.api._http import header
from micro.toolkit.api._upstream import (
    BadAddress,
    ConnectFailed,
    UpstreamError,
    UpstreamTimeout,
)
from micro.toolkit.api.proxy import ATTEMPTS, HOP, Whole, pump, reason, relay
from micro.toolkit.web.options import NAME_PATTERN
from micro.toolkit.web.pages import error_page
from micro.toolkit.web.security import PROXIED, TOKEN_COOKIE, WEB_ID, wants_html

if TYPE_CHECKING:
    from micro.toolkit.web.app import Dashboard

__all__ = ["BASE_PATH", "WebProxy", "split_name"]

log = logging.getLogger("micro.web")

BASE_PATH = b"x-micro-web-base-path"
REPLAYABLE = 256 * 1024
"""Bodies up to this size (declared by Content-Length) are read before sending, so that
the request can go to another node when the first refuses it; larger ones stream."""
_SKIP = (
    HOP
    | {BASE_PATH, b"x-forwarded-for", b"x-forwarded-host", b"x-forwarded-proto"}
    | {
        b"cookie",
        b"expect",
    }
)
"""Request headers not passed on as they are: per-hop ones, the proxy headers (set anew),
``Cookie`` (passed less the dashboard's token), ``Expect`` (the client's 100-continue was
answered here)."""
_TOKEN_NAME = TOKEN_COOKIE.encode()
_TITLES = {502: "Bad gateway", 503: "Service unavailable", 504: "Gateway timeout"}


def split_name(path: str) -> tuple[str, str] | None:
    """``/name/rest`` -> ``("name", "/rest")``; None when ``name`` is not a valid web name."""
    name, sep, rest = path[1:].partition("/")
    if not NAME_PATTERN.match(name):
        return None
    return name, sep + rest


class _Gone(Exception):
    """The client went away while sending its body."""


class _Body:
    """The request body, streamed to the service within the size limit and read timeout.

    ``started`` tells whether any of it was read (then the request cannot go to another
    node); ``error`` holds the client's fault that cut it (413, 408, gone).
    """

    def __init__(self, receive: Receive, limit: int, timeout: float) -> None:
        self.receive = receive
        self.limit = limit
        self.timeout = timeout
        self.started = False
        self.error: BaseException | None = None

    async def chunks(self) -> AsyncIterator[bytes]:
        self.started = True
        size = 0
        while True:
            try:
                async with asyncio.timeout(self.timeout):
                    message = await self.receive()
            except TimeoutError:
                raise self._fail(RequestTimeout("request body too slow", id=WEB_ID)) from None
            if message["type"] == "http.disconnect":
                raise self._fail(_Gone())
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                raise self._fail(PayloadTooLarge(f"body exceeds {self.limit} bytes", id=WEB_ID))
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                return

    def _fail(self, exc: BaseException) -> BaseException:
        self.error = exc
        return exc


class WebProxy:
    """Relays requests to the web services of ``dash``'s namespace."""

    def __init__(self, dash: Dashboard) -> None:
        self.dash = dash

    def service(self, name: str) -> str:
        """The registry name of the web service at ``/name``."""
        return f"{self.dash.options.namespace}.{name}"

    # -- HTTP ---------------------------------------------------------------------------

    async def http(self, scope: Scope, receive: Receive, send: Send, name: str, rest: str) -> None:
        """Answer one HTTP request for ``/name...`` from a node of its service."""
        if not rest and scope["method"] in ("GET", "HEAD"):
            query = scope["query_string"].decode("latin-1")
            target = f"/{name}/" + (f"?{query}" if query else "")
            await RedirectResponse(target, status_code=307)(scope, receive, send)
            return
        try:
            response = await self._forward(scope, receive, name)
        except _Gone:
            return
        except ServiceNotFound:
            response = await self.dash.not_found(scope)
        except Exception as exc:
            response = self._error(scope, exc)
        await response(scope, receive, send)

    async def _forward(self, scope: Scope, receive: Receive, name: str) -> Response | Whole:
        service = self.service(name)
        dash = self.dash
        next_node = await dash.selector.select(service)
        body = await self._body(scope, receive)
        headers = self._headers(scope, name)
        target = _target(scope, name)
        last: BaseException | None = None
        for _ in range(ATTEMPTS):
            try:
                node = next_node()
            except NoneAvailable:
                break
            content = body.chunks() if isinstance(body, _Body) else body
            try:
                answer = await dash.upstream.request(
                    scope["method"], node.address, target, headers, content
                )
            except BadAddress as exc:
                last = ConnectError(
                    f"{service}: bad node address {node.address!r}: {exc}", id=WEB_ID
                )
                dash.selector.mark(service, node, last)
                continue
            except ConnectFailed as exc:
                last = ConnectError(f"{service} at {node.address}: {reason(exc)}", id=WEB_ID)
                dash.selector.mark(service, node, last)
                if isinstance(body, _Body) and (body.started or body.error):
                    break
                continue
            except UpstreamError as exc:
                raise self._failed(service, node, body, exc) from None
            dash.selector.mark(service, node, None)
            scope[PROXIED] = True
            return await relay(answer)
        raise last or NoneAvailable(f"service {service}: none available", id=WEB_ID)

    async def _body(self, scope: Scope, receive: Receive) -> bytes | _Body | None:
        opts = self.dash.options
        declared = header(scope, b"content-length")
        chunked = "chunked" in header(scope, b"transfer-encoding").lower()
        if declared:
            if not declared.isdigit():
                raise BadRequest(f"invalid Content-Length {declared!r}", id=WEB_ID)
            if int(declared) > opts.max_body:
                raise PayloadTooLarge(
                    f"body of {declared} bytes exceeds {opts.max_body}", id=WEB_ID
                )
            if int(declared) <= REPLAYABLE:
                return await self.dash.read_body(scope, receive) if int(declared) else None
        elif not chunked:
            return None
        return _Body(receive, opts.max_body, opts.read_timeout)

    def _failed(
        self, service: str, node: Node, body: bytes | _Body | None, exc: UpstreamError
    ) -> BaseException:
        if isinstance(body, _Body) and body.error is not None:
            return body.error
        if isinstance(exc, UpstreamTimeout):
            return Timeout(f"{service} at {node.address}: {reason(exc)}", id=WEB_ID)
        error = ConnectError(f"{service} at {node.address}: {reason(exc)}", id=WEB_ID)
        self.dash.selector.mark(service, node, error)
        return error

    def _headers(self, scope: Scope, name: str) -> list[tuple[bytes, bytes]]:
        """The headers for the service, in one pass over the request's: its own less the
        per-hop ones, the dashboard's credential (with auth on) and forged proxy headers,
        then ``X-Forwarded-For`` (the peer appended), ``-Host``, ``-Proto`` and the base
        path."""
        strip_auth = self.dash.auth is not None
        out: list[tuple[bytes, bytes]] = []
        forwarded_for = host = b""
        cookies: list[bytes] = []
        for key, value in scope["headers"]:
            if key not in _SKIP:
                if not (strip_auth and key == b"authorization"):
                    out.append((key, value))
            elif key == b"host":
                host = value
            elif key == b"cookie":
                cookies.append(value)
            elif key == b"x-forwarded-for":
                forwarded_for = value
        client = scope.get("client")
        if client:
            peer = str(client[0]).encode()
            forwarded_for = forwarded_for + b", " + peer if forwarded_for else peer
        if forwarded_for:
            out.append((b"x-forwarded-for", forwarded_for))
        if cookies:
            kept = _cookies_without_token(cookies)
            if kept:
                out.append((b"cookie", kept))
        if host:
            out.append((b"x-forwarded-host", host))
        out.append((b"x-forwarded-proto", _http_scheme(scope).encode()))
        out.append((BASE_PATH, f"/{name}".encode()))
        return out

    def _error(self, scope: Scope, exc: BaseException) -> Response:
        err = http_error(exc)
        title = _TITLES.get(err.code)
        if title is not None and wants_html(scope):
            return error_page(err.code, title, err.detail)
        return error_response(err)

    # -- WebSocket ----------------------------------------------------------------------

    async def websocket(
        self, scope: Scope, receive: Receive, send: Send, name: str, rest: str
    ) -> None:
        """Pass the WebSocket through to a node of the service; close codes 4000 + status
        (4404 no such service, 4502 no node answered) when it cannot."""
        ws = WebSocket(scope, receive, send)
        service = self.service(name)
        dash = self.dash
        try:
            next_node = await dash.selector.select(service)
        except MicroError as exc:
            await _refuse(ws, exc)
            return
        headers = [
            (key.decode(), value.decode())  # UTF-8: the header check let nothing else by
            for key, value in self._headers(scope, name)
            if not key.startswith(b"sec-websocket")
        ]
        last: MicroError = NoneAvailable(f"service {service}: none available", id=WEB_ID)
        for _ in range(ATTEMPTS):
            try:
                node = next_node()
            except NoneAvailable:
                break
            try:
                upstream = await connect(
                    f"ws://{node.address}{_target(scope, name)}",
                    subprotocols=scope.get("subprotocols") or None,
                    additional_headers=headers,
                    open_timeout=dash.options.read_timeout,
                    max_size=dash.options.max_body or None,
                )
            except (OSError, TimeoutError) as exc:
                last = ConnectError(f"{service} at {node.address}: {exc}", id=WEB_ID)
                dash.selector.mark(service, node, last)
                continue
            except (InvalidHandshake, InvalidURI) as exc:
                last = ConnectError(f"{service} at {node.address}: {exc}", id=WEB_ID)
                break
            dash.selector.mark(service, node, None)
            async with upstream:
                await ws.accept(subprotocol=upstream.subprotocol)
                await pump(ws, upstream)
            return
        await _refuse(ws, last)


async def _refuse(ws: WebSocket, exc: MicroError) -> None:
    """Accept, then close with 4000 + the HTTP status: a browser sees the code and reason
    (a refused handshake shows it neither)."""
    err = http_error(exc)
    with contextlib.suppress(Exception):
        await ws.accept()
        await ws.close(code=4000 + err.code, reason=err.detail[:120])


def _target(scope: Scope, name: str) -> str:
    """The service's target for this request: the path less its ``/name`` prefix (as the
    client encoded it where it can be cut there), and the query string."""
    prefix = f"/{name}".encode()
    raw = scope.get("raw_path") or b""
    path = ""
    if raw.startswith(prefix):
        path = raw[len(prefix) :].decode("latin-1")
    if path[:1] not in ("", "/"):  # the name or its slash percent-encoded: use the decoded path
        path = quote(scope["path"][len(prefix) :], safe="/:@!$&'()*+,;=~")
    query = scope["query_string"].decode("latin-1")
    return (path or "/") + (f"?{query}" if query else "")


def _http_scheme(scope: Scope) -> str:
    scheme = str(scope.get("scheme", "http"))
    return {"ws": "http", "wss": "https"}.get(scheme, scheme)


def _cookies_without_token(values: list[bytes]) -> bytes:
    """The request's ``Cookie`` headers as one, less ``micro_token`` (the dashboard's own)."""
    if len(values) == 1 and _TOKEN_NAME not in values[0]:
        return values[0].strip()
    kept: list[str] = []
    for value in values:
        for part in value.decode("latin-1").split(";"):
            if part.strip() and part.strip().partition("=")[0] != TOKEN_COOKIE:
                kept.append(part.strip())
    return "; ".join(kept).encode("latin-1")
