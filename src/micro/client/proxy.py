"""Calls, streams and publishes through ``micro proxy`` (``micro.Client`` with a proxy).

``RpcClient(proxy="host:port")``, or any client whose settings carry ``MICRO_PROXY_ADDRESS``
(``--proxy-address``), hands its ``call``, ``stream`` and ``publish`` to a
:class:`ProxyClient`; the proxy, inside the remote environment, resolves the service in its
registry and calls it with its own client.

- ``call``: ``POST /rpc`` (on pooled keep-alive connections, micro's own HTTP/1.1 client)
  with ``{"service", "endpoint", "request", "address"?}`` in JSON, the
  call's remaining seconds in the ``Timeout`` header and its metadata as headers. The
  answer is decoded into ``response_type``; an error answer is raised as the same
  :class:`~micro.errors.MicroError` class, code and detail the service raised.
- ``stream``: a WebSocket ``GET /rpc?service=&endpoint=``: each message one text frame, a
  zero-byte binary frame for ``close_send``, close 1000 for the end, and an ``{"error": ...}``
  frame then close ``4000 + code`` for an error.
- ``publish``: ``POST /broker?topic=&frame=1`` with the headers ``RpcClient.publish`` makes.

The hop to the proxy is JSON whatever ``content_type`` says (the proxy calls the service in
its client's default codec); a published body is carried as encoded. Selector ``filters``
do not apply (the proxy selects). Retries: the proxy's own client retries as configured
there; this side sends a call again only when it provably never reached the proxy (the
connection could not be made, or a kept-alive one the proxy closed never read it), so no
call runs more often than it would without the proxy.
Call wrappers run once per attempt with a :class:`~micro.registry.Node` for the proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Self

import aiohttp
import msgspec

from micro import metadata as md
from micro._proxy_link import ProxyLink, ProxyUnreachable
from micro.broker.proxy import publish_frame
from micro.client import (
    Backoff,
    CallFunc,
    CallOptions,
    CallWrapper,
    Client,
    Request,
    Stream,
)
from micro.client.retries import exponential_backoff
from micro.codec import Codec, lookup
from micro.errors import ConnectionClosed, MicroError, NotFound, ServiceNotFound, Timeout
from micro.registry import Node
from micro.selector import Filter
from micro.transport import Message

__all__ = ["ProxyClient", "ProxyStream"]

ERROR_ID = "go.micro.client"
JSON = "application/json"
_CLOSE_TIMEOUT = 1.0


def sent_nothing(error: BaseException) -> bool:
    """Whether a failed attempt provably never reached the proxy (and may be sent again)."""
    return isinstance(error, ProxyUnreachable) and error.retryable


class ProxyClient(Client):
    """A client whose calls go through one ``micro proxy`` (see the module docs).

    Args:
        proxy: the proxy, ``host:port``, ``http://host:port`` or ``https://host:port``.
        token: bearer token the proxy checks.
        tls_ca: CA file of the proxy's certificate (implies https).
        tls_cert, tls_key: client certificate for mutual TLS.
        timeout: default seconds per call (5 s).
        retries: attempts after the first, for calls that never reached the proxy.
        dial_timeout: seconds allowed to connect to the proxy.
        wrappers: call wrappers, the first outermost; each runs once per attempt.
        from_service: the calling service's name, sent as ``Micro-From-Service``.
        backoff: seconds to wait before retry ``n``.
        content_type: the default codec of published messages.

    Raises:
        ValueError: a bad address or TLS file.
    """

    name = "proxy"

    def __init__(
        self,
        proxy: str,
        *,
        token: str | None = None,
        tls_ca: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        timeout: float = 5.0,
        retries: int = 1,
        dial_timeout: float = 5.0,
        wrappers: Sequence[CallWrapper] = (),
        from_service: str | None = None,
        backoff: Backoff = exponential_backoff,
        content_type: str = JSON,
    ) -> None:
        self.link = ProxyLink(
            proxy,
            token=token,
            tls_ca=tls_ca,
            tls_cert=tls_cert,
            tls_key=tls_key,
            timeout=timeout,
            dial_timeout=dial_timeout,
        )
        self.timeout = timeout
        self.retries = retries
        self.dial_timeout = dial_timeout
        self.from_service = from_service
        self.backoff = backoff
        self.content_type = content_type
        self.node = Node(
            id=f"proxy-{self.link.url}",
            address=self.link.node_address,
            metadata={"proxy": self.link.url},
        )
        """What call wrappers see as the node of every attempt."""
        call: CallFunc = self._post
        for wrapper in reversed(wrappers):
            call = wrapper(call)
        self._call = call
        self._json = lookup(JSON)
        self._codecs: dict[str, Codec] = {}
        self._turn = itertools.count()
        self._streams: set[ProxyStream] = set()
        self._closed = False

    def __repr__(self) -> str:
        return f"ProxyClient({self.link.url!r}, timeout={self.timeout})"

    @property
    def url(self) -> str:
        """The proxy's URL, as error lines name it."""
        return self.link.url

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for stream in list(self._streams):
            await stream.close()
        await self.link.close()

    # -- calls -----------------------------------------------------------------------------

    async def call(
        self,
        service: str,
        endpoint: str,
        request: Any = None,
        *,
        response_type: Any = Any,
        timeout: float | None = None,
        retries: int | None = None,
        address: str | Sequence[str] | None = None,
        content_type: str | None = None,
        filters: Sequence[Filter] = (),
        metadata: Mapping[str, str] | None = None,
    ) -> Any:
        """Call ``endpoint`` of ``service`` through the proxy (see :meth:`Client.call`)."""
        if self._closed:
            raise RuntimeError("client is closed")
        limit = self.timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        opts = CallOptions(
            limit,
            loop.time() + limit,
            self.retries if retries is None else retries,
            _addresses(address),
            (),
            metadata,
            self.dial_timeout,
        )
        req = Request(service, endpoint, request, content_type or JSON, response_type)
        attempt = 0
        while True:
            try:
                return await self._call(self.node, req, opts)
            except MicroError as exc:
                if attempt >= opts.retries or not sent_nothing(exc):
                    raise
                error = exc
            attempt += 1
            delay = self.backoff(attempt)
            if loop.time() + delay >= opts.deadline:
                detail = f"{_timeout_detail(req, opts)}; last error: {error.detail}"
                raise Timeout(detail, id=ERROR_ID) from error
            await asyncio.sleep(delay)

    async def _post(self, node: Node, req: Request, opts: CallOptions) -> Any:
        """One attempt: the innermost CallFunc, below the wrappers."""
        remaining = opts.deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise Timeout(_timeout_detail(req, opts), id=ERROR_ID)
        body: dict[str, Any] = {
            "service": req.service,
            "endpoint": req.endpoint,
            "request": msgspec.Raw(self._json.encode(req.body)),
        }
        if opts.address:
            body["address"] = opts.address[next(self._turn) % len(opts.address)]
        headers = self._headers(opts.metadata)
        headers["Timeout"] = _seconds(remaining)
        try:
            data = await self.link.call(
                msgspec.json.encode(body),
                headers=headers,
                timeout=remaining,
                what=f"call timeout: {req.service} {req.endpoint}",
            )
        except NotFound as exc:
            raise _not_found(exc) from None
        return self._json.decode(data, req.response_type)

    def _headers(self, metadata: Mapping[str, str] | None) -> dict[str, str]:
        headers = md.outgoing(metadata)
        if self.from_service:
            headers["Micro-From-Service"] = self.from_service
        return headers

    async def publish(
        self,
        topic: str,
        message: Any,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """Publish an event through the proxy's broker (see :meth:`Client.publish`)."""
        if self._closed:
            raise RuntimeError("client is closed")
        kind = content_type or self.content_type
        body = self._codec(kind).encode(message)
        header = md.outgoing(metadata)
        header["Content-Type"] = kind
        header["Micro-Topic"] = topic
        header["Micro-Id"] = str(uuid.uuid4())
        if self.from_service:
            header["Micro-From-Service"] = self.from_service
        await publish_frame(self.link, topic, Message(header, body), timeout=self.timeout)

    def stream(
        self,
        service: str,
        endpoint: str,
        request: Any = None,
        *,
        response_type: Any = Any,
        timeout: float | None = None,
        retries: int | None = None,
        address: str | Sequence[str] | None = None,
        content_type: str | None = None,
        filters: Sequence[Filter] = (),
        metadata: Mapping[str, str] | None = None,
    ) -> ProxyStream:
        """A stream through the proxy (see :meth:`Client.stream`); ``timeout`` bounds
        opening it and, only when given, its whole life."""
        if self._closed:
            raise RuntimeError("client is closed")
        req = Request(service, endpoint, request, JSON, response_type, True)
        return ProxyStream(
            self,
            req,
            timeout=timeout,
            retries=self.retries if retries is None else retries,
            address=_addresses(address),
            metadata=metadata,
        )

    def _codec(self, content_type: str) -> Codec:
        found = self._codecs.get(content_type)
        if found is None:
            found = self._codecs[content_type] = lookup(content_type)
        return found


class ProxyStream(Stream):
    """A stream through the proxy's ``/rpc`` WebSocket (see the module docs)."""

    def __init__(
        self,
        client: ProxyClient,
        request: Request,
        *,
        timeout: float | None,
        retries: int,
        address: tuple[str, ...],
        metadata: Mapping[str, str] | None,
    ) -> None:
        self.service = request.service
        self.endpoint = request.endpoint
        self.request = request
        self.id = uuid.uuid4().hex[:16]
        self.header = {"Micro-Stream": self.id}
        """Every message through the proxy is a stream message."""
        self._client = client
        self._timeout = timeout
        self._retries = retries
        self._address = address
        self._metadata = metadata
        self._deadline: float | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._send_done = False
        self._recv_done = False
        self._closed = False

    def __repr__(self) -> str:
        return f"ProxyStream({self.service!r}, {self.endpoint!r}, via={self._client.url!r})"

    async def open(self) -> Self:
        if self._ws is not None:
            return self
        if self._closed:
            raise ConnectionClosed("stream is closed", id=ERROR_ID)
        client = self._client
        loop = asyncio.get_running_loop()
        limit = client.timeout if self._timeout is None else self._timeout
        start_deadline = loop.time() + limit
        if self._timeout is not None:
            self._deadline = start_deadline
        params = {"service": self.service, "endpoint": self.endpoint}
        if self._address:
            params["address"] = self._address[0]
        if self._timeout is not None:
            params["timeout"] = _seconds(self._timeout)
        attempt = 0
        while True:
            remaining = start_deadline - loop.time()
            try:
                self._ws = await client.link.websocket(
                    "/rpc",
                    params=params,
                    headers=client._headers(self._metadata),
                    timeout=remaining,
                )
                break
            except Timeout:
                detail = f"stream timeout: could not open {self.service} {self.endpoint} "
                raise Timeout(f"{detail}within {limit:g}s", id=ERROR_ID) from None
            except MicroError as exc:
                attempt += 1
                if attempt > self._retries or not sent_nothing(exc):
                    raise
                delay = client.backoff(attempt)
                if loop.time() + delay >= start_deadline:
                    raise
                await asyncio.sleep(delay)
        client._streams.add(self)
        if self.request.body is not None:
            await self._send_text(self.request.body)
        return self

    def _sock(self) -> aiohttp.ClientWebSocketResponse:
        if self._ws is None:
            if self._closed:
                raise ConnectionClosed("stream is closed", id=ERROR_ID)
            raise RuntimeError("stream is not open: use 'async with' or 'await' first")
        return self._ws

    async def send(self, obj: Any) -> None:
        self._sock()
        if self._send_done:
            raise ConnectionClosed("stream: send after close_send()", id=ERROR_ID)
        await self._send_text(obj)

    async def _send_text(self, obj: Any) -> None:
        ws = self._sock()
        text = self._client._json.encode(obj).decode()
        try:
            await self._bounded(ws.send_str(text))
        except (aiohttp.ClientError, OSError, RuntimeError) as exc:
            raise self._cut_off(f"send failed: {exc or type(exc).__name__}") from exc

    async def recv(self, type: Any = Any) -> Any:
        if self._recv_done:
            raise StopAsyncIteration
        ws = self._sock()
        msg = await self._bounded(ws.receive())
        if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
            data = msg.data.encode() if isinstance(msg.data, str) else msg.data
            error = _error_frame(data)
            if error is not None:
                self._recv_done = True
                raise _not_found(error) if isinstance(error, NotFound) else error
            wanted = self.request.response_type if type is Any else type
            return self._client._json.decode(data, wanted)
        self._recv_done = True
        code = ws.close_code
        if code == 1000:
            raise StopAsyncIteration
        reason = str(msg.extra) if msg.type is aiohttp.WSMsgType.CLOSE and msg.extra else ""
        if code is not None and 4000 <= code < 5000:
            raise self._client.link.closed(code, reason)
        raise self._cut_off(f"closed {code}" if code else "connection lost")

    def _cut_off(self, why: str) -> ConnectionClosed:
        detail = f"stream {self.service} {self.endpoint} through the proxy at {self._client.url}"
        return ConnectionClosed(f"{detail} cut off before its end: {why}", id=ERROR_ID)

    async def _bounded(self, awaitable: Any) -> Any:
        if self._deadline is None:
            return await awaitable
        try:
            async with asyncio.timeout_at(self._deadline):
                return await awaitable
        except TimeoutError as exc:
            if isinstance(exc, MicroError):
                raise
            detail = f"stream timeout: {self.service} {self.endpoint} ran past {self._timeout:g}s"
            raise Timeout(detail, id=ERROR_ID) from None

    async def close_send(self) -> None:
        ws = self._sock()
        if self._send_done:
            return
        self._send_done = True
        try:
            await self._bounded(ws.send_bytes(b""))
        except (aiohttp.ClientError, OSError, RuntimeError) as exc:
            raise self._cut_off(f"close_send failed: {exc or type(exc).__name__}") from exc

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._client._streams.discard(self)
        ws, self._ws = self._ws, None
        if ws is None:
            return
        with contextlib.suppress(Exception):
            async with asyncio.timeout(_CLOSE_TIMEOUT):
                await ws.close()


def _error_frame(data: bytes) -> MicroError | None:
    """The error of an ``{"error": {id, code, detail, status}}`` frame, else None."""
    if not data.lstrip().startswith(b'{"error":'):  # cheap: most frames are not errors
        return None
    try:
        raw = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return None
    if not isinstance(raw, dict) or set(raw) != {"error"} or not isinstance(raw["error"], dict):
        return None
    if not isinstance(raw["error"].get("code"), int):
        return None
    return MicroError.parse(msgspec.json.encode(raw["error"]))


def _not_found(exc: NotFound) -> NotFound:
    """The proxy's client found no such service: the ``ServiceNotFound`` it raised there."""
    if exc.id == ERROR_ID and not isinstance(exc, ServiceNotFound):
        return ServiceNotFound(exc.detail, id=exc.id, code=exc.code, status=exc.status)
    return exc


def _addresses(address: str | Sequence[str] | None) -> tuple[str, ...]:
    if not address:
        return ()
    if isinstance(address, str):
        return (address,)
    return tuple(address)


def _seconds(value: float) -> str:
    """Seconds for the ``Timeout`` header and parameter (at least a millisecond)."""
    return f"{max(value, 0.001):.3f}"


def _timeout_detail(req: Request, opts: CallOptions) -> str:
    return f"call timeout: {req.service} {req.endpoint} did not answer within {opts.timeout:g}s"
