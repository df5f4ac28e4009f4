"""The connection to one ``micro proxy``: calls on micro's HTTP/1.1 client, the rest on aiohttp.

The proxy backends (:mod:`micro.registry.proxy`, :mod:`micro.broker.proxy`,
:mod:`micro.client.proxy`) each hold one :class:`ProxyLink`. It parses the address
(``host:port``, ``http://host:port``, ``https://host:port``; TLS settings imply https),
verifies the proxy's certificate (the system's CAs, or ``tls_ca``), presents a client
certificate when given one, sends ``Authorization: Bearer <token>``, and turns every failure
into the error tree of :mod:`micro.errors`:

- the proxy cannot be reached: :class:`ProxyUnreachable` (a ``ConnectError``), detail
  ``cannot reach the proxy at <url>: <reason>``; ``sent`` is False: the request provably
  never left, so it is safe to send again;
- the connection broke after the request left: ``ConnectionClosed`` (not safe to repeat);
- 401: ``Unauthorized`` saying the proxy refused the token (or that none was given);
- an error answer in go-micro's JSON: ``MicroError.parse`` (the same class, code and detail
  the service or the proxy raised); any other error answer: ``MicroError`` with the HTTP
  status as code and the body as detail.

Calls (``POST /rpc``, :meth:`ProxyLink.call`) go on micro's own HTTP/1.1 client, the one
``micro.Client`` speaks to services with (:class:`~micro.transport.http.HttpTransport` and
its connection :class:`~micro.client.pool.Pool`): a fraction of aiohttp's CPU per request.
It carries the path, the token and TLS; a kept-alive connection the proxy closed is caught
before the request leaves, and a request the proxy's system provably discarded unread (a
reset with nothing answered) is sent once more on a new connection. Everything else
(registry, broker, WebSockets) is on one ``aiohttp.ClientSession`` per link, made in the
running loop on first use and closed by :meth:`ProxyLink.close`; its idle connections are
kept for :data:`KEEPALIVE` seconds only, less than a server's idle timeout, so a request is
not written to a connection the proxy is closing (which would leave it unknown whether the
request arrived).
"""

from __future__ import annotations

import asyncio
import ssl
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple

import aiohttp
import msgspec

from micro.client.deadline import TaskDeadline
from micro.client.pool import Conn, Pool
from micro.errors import ConnectError, ConnectionClosed, MicroError, Timeout, Unauthorized
from micro.transport import Message
from micro.transport.http import HttpTransport

__all__ = ["KEEPALIVE", "Address", "ProxyLink", "ProxyUnreachable", "parse_address"]

KEEPALIVE = 4.0
"""Seconds an idle connection to the proxy is kept (uvicorn closes idle ones after 5 s)."""
HEARTBEAT = 20.0
"""Seconds between our WebSocket pings: a proxy gone silent ends the socket after two."""
MAX_MESSAGE = 64 * 1024 * 1024
"""Largest WebSocket message accepted from the proxy."""
CALL_TTL = 30.0
"""Seconds a connection for calls is reused after it opened (under the proxy's 60 s idle
timeout, and under the idle limits of the usual load balancers in between)."""
ERROR_ID = "go.micro.client"
_CONNECT_TIMEOUTS: tuple[type[BaseException], ...] = tuple(
    t for t in (getattr(aiohttp, "ConnectionTimeoutError", None),) if t is not None
)


_PATH_SAFE = "/%:@!$&'()*+,;=~"
_Dial = Callable[..., Awaitable[Conn]]


class _Unread(Exception):
    """A pooled connection was closed or reset before it read the request."""


class ProxyUnreachable(ConnectError):
    """The proxy could not be reached; the request never left this process."""

    retryable = True
    """False when trying again cannot help (the proxy's certificate was refused)."""


class Address(NamedTuple):
    """A parsed proxy address."""

    scheme: str  # http or https
    host: str
    port: int
    prefix: str  # a path the routes go under ("" for none)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.prefix}"


def parse_address(address: str, *, tls: bool = False) -> Address:
    """The proxy of ``host:port``, ``http://host:port`` or ``https://host:port``.

    ``tls`` (a TLS setting is given) turns the bare form into https. A path is kept as a
    prefix (a proxy behind an ingress at ``https://host/micro``).

    Raises:
        ValueError: the address is none of those forms, or says http while ``tls``.
    """
    text = address.strip()
    forms = "use host:port, http://host:port or https://host:port"
    if not text:
        raise ValueError("the proxy address is empty")
    if "://" not in text:
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"proxy address {address!r} has no port: {forms}")
        text = f"{'https' if tls else 'http'}://{host or '127.0.0.1'}:{port}"
    try:
        parts = urllib.parse.urlsplit(text)
        number = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        raise ValueError(f"proxy address {address!r} is not a valid URL: {forms}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or number is None:
        raise ValueError(f"proxy address {address!r}: {forms}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"proxy address {address!r} may not carry credentials, query or #")
    if tls and parts.scheme == "http":
        raise ValueError(
            f"proxy address {address!r} says http://, but a proxy TLS setting is given: "
            "use https:// (or drop the TLS settings)"
        )
    return Address(parts.scheme, parts.hostname, number, parts.path.rstrip("/"))


def _ssl_context(ca: str | None, cert: str | None, key: str | None) -> ssl.SSLContext:
    """A client context verifying the proxy (system CAs or ``ca``), with our cert if given."""
    if key and not cert:
        raise ValueError("proxy_tls_key is set without proxy_tls_cert")
    try:
        context = ssl.create_default_context(cafile=ca or None)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"proxy_tls_ca {ca!r}: {_reason(exc)}") from None
    if cert:
        try:
            context.load_cert_chain(cert, key or None)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"proxy_tls_cert {cert!r}: {_reason(exc)}") from None
    return context


class ProxyLink:
    """HTTP and WebSocket access to one proxy (see the module docs).

    Args:
        address: the proxy, ``host:port`` or a URL.
        token: sent as ``Authorization: Bearer <token>``.
        tls_ca: CA file that signs the proxy's certificate (implies https).
        tls_cert, tls_key: client certificate and key for mutual TLS (imply https).
        timeout: seconds per request when the caller gives none.
        dial_timeout: seconds allowed to open a connection.

    Raises:
        ValueError: a bad address or TLS file (the message says which).
    """

    def __init__(
        self,
        address: str,
        *,
        token: str | None = None,
        tls_ca: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        timeout: float = 10.0,
        dial_timeout: float = 5.0,
    ) -> None:
        tls = bool(tls_ca or tls_cert or tls_key)
        self.base = parse_address(address, tls=tls)
        self.url = self.base.url
        """The proxy as error lines name it (``http://127.0.0.1:8081``)."""
        self._ssl: ssl.SSLContext | bool = (
            _ssl_context(tls_ca, tls_cert, tls_key) if self.base.scheme == "https" else False
        )
        self._client_cert = bool(tls_cert)
        if token and not token.isprintable():
            raise ValueError("proxy_token holds a control character")
        self.token = token or None
        self.timeout = timeout
        self.dial_timeout = dial_timeout
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._session: aiohttp.ClientSession | None = None
        self._calls = HttpTransport(
            max_body=MAX_MESSAGE,
            dial_timeout=dial_timeout,
            path=urllib.parse.quote(self.base.prefix, safe=_PATH_SAFE) + "/rpc",
            headers={"Content-Type": "application/json", **self._headers},
            tls=self._ssl if isinstance(self._ssl, ssl.SSLContext) else None,
        )
        self._pool: Pool | None = None

    def __repr__(self) -> str:
        return f"ProxyLink({self.url!r})"

    @classmethod
    def of_backend(
        cls,
        kind: str,
        *,
        proxy_address: str | None,
        address: str | None,
        token: str | None,
        tls_ca: str | None,
        tls_cert: str | None,
        tls_key: str | None,
        timeout: float | None,
    ) -> ProxyLink:
        """The link of a ``proxy`` registry or broker (``kind``): ``proxy_address`` (from
        ``MICRO_PROXY_ADDRESS``), else the first of ``address`` (the backend's own
        ``MICRO_<KIND>_ADDRESS``, when it was chosen by name).

        Raises:
            ValueError: no address, a bad one, or an unreadable TLS file.
        """
        target = proxy_address or (address.split(",")[0] if address else "")
        if not target:
            raise ValueError(f"the proxy {kind} needs the proxy's address (--proxy-address)")
        return cls(
            target,
            token=token,
            tls_ca=tls_ca,
            tls_cert=tls_cert,
            tls_key=tls_key,
            timeout=timeout or 10.0,
        )

    @property
    def node_address(self) -> str:
        """``host:port`` of the proxy (what a call wrapper's Node shows)."""
        host = f"[{self.base.host}]" if ":" in self.base.host else self.base.host
        return f"{host}:{self.base.port}"

    def _url(self, path: str) -> str:
        return self.url + path

    def session(self) -> aiohttp.ClientSession:
        """The link's session, made in the running loop on first use."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._ssl, keepalive_timeout=KEEPALIVE, limit=0)
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers=self._headers,
                skip_auto_headers=("User-Agent",),
                timeout=aiohttp.ClientTimeout(total=None),
            )
        return self._session

    async def close(self) -> None:
        """Close the session and the connections (a later request opens new ones);
        idempotent, never raises."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()
        await self._calls.close()
        session, self._session = self._session, None
        if session is not None:
            try:
                await session.close()
            except Exception:  # close() never raises
                pass

    # -- HTTP ------------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        what: str = "",
    ) -> bytes:
        """Send one request; the body of a 2xx answer.

        Args:
            timeout: seconds for the whole exchange (the link's default if None).
            what: the request as a ``Timeout`` names it (``"list services"``).

        Raises:
            ProxyUnreachable: nothing was sent (connection refused, no route, bad TLS).
            ConnectionClosed: the connection broke once the request had left.
            Timeout: no answer within ``timeout``.
            MicroError: the proxy's (or the service's) error answer, as its class.
        """
        limit = self.timeout if timeout is None else timeout
        client_timeout = aiohttp.ClientTimeout(
            total=max(limit, 0.001), sock_connect=min(self.dial_timeout, max(limit, 0.001))
        )
        request_headers = dict(headers) if headers else {}
        if body is not None:
            request_headers.setdefault("Content-Type", "application/json")
        try:
            async with self.session().request(
                method,
                self._url(path),
                params=params,
                data=body,
                headers=request_headers,
                timeout=client_timeout,
            ) as rsp:
                data = await rsp.read()
                status = rsp.status
        except MicroError:
            raise
        except aiohttp.ClientConnectorError as exc:
            raise self.unreachable(exc) from exc
        except _CONNECT_TIMEOUTS as exc:
            raise self.unreachable(exc) from exc
        except TimeoutError as exc:
            what = what or f"{method} {path}"
            detail = f"{what}: the proxy at {self.url} did not answer within {limit:g}s"
            raise Timeout(detail, id=ERROR_ID) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise self.lost(exc) from exc
        if status >= 400:
            raise self.error(status, data)
        return data

    async def call(
        self,
        body: bytes,
        *,
        headers: dict[str, str],
        timeout: float | None = None,
        what: str = "",
    ) -> bytes:
        """``POST /rpc`` (JSON ``body``, ``headers`` added to the link's) on a pooled
        keep-alive connection; the body of a 2xx answer. Errors as :meth:`request`'s.

        A pooled connection whose close (or reset) was seen before the request left, or
        that was reset with nothing answered (the request discarded unread), is replaced
        by a new connection once; a connection that broke after the proxy may have read
        the request is ``ConnectionClosed``, never sent again.
        """
        limit = self.timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(limit, 0.001)
        pool = self._pool
        if pool is None:
            pool = self._pool = Pool(self._calls, ttl=CALL_TTL)
        for name in self._calls.headers:  # the link's own (the token) are sent once
            headers.pop(name, None)
        message = Message(headers, body)
        conn = pool.take(self.node_address) or await self._connect(pool.get, deadline)
        expiry = TaskDeadline(deadline, loop)
        try:
            try:
                answer = await self._exchange(conn, message)
            except _Unread:
                await pool.discard(conn)
                conn = await self._connect(pool.connect, deadline)
                answer = await self._exchange(conn, message)
        except BaseException as exc:
            timed_out = isinstance(exc, asyncio.CancelledError) and expiry.expired()
            await pool.discard(conn)
            if timed_out:
                detail = f"{what or 'POST /rpc'}: the proxy at {self.url} did not answer "
                raise Timeout(f"{detail}within {limit:g}s", id=ERROR_ID) from None
            if isinstance(exc, OSError) and not isinstance(exc, MicroError):
                raise self.lost(exc) from exc
            raise
        finally:
            expiry.cancel()
        if not pool.put(conn):
            await pool.discard(conn)
        error = answer.header.get("Micro-Error")
        if error is None:
            return answer.body
        status = MicroError.parse(error).code  # the transport's, from the HTTP status
        if 200 <= status < 300:
            return answer.body
        raise self.error(status, answer.body)

    async def _connect(self, get: _Dial, deadline: float) -> Conn:
        """A connection from ``get`` (the pool's ``get`` or ``connect``) within the dial
        timeout; a failure is :class:`ProxyUnreachable`."""
        remaining = deadline - asyncio.get_running_loop().time()
        try:
            return await get(self.node_address, timeout=min(self.dial_timeout, remaining))
        except ConnectError as exc:
            raise self.unreachable(exc.__cause__ or exc) from exc

    async def _exchange(self, conn: Conn, message: Message) -> Message:
        """Send ``message`` on ``conn``, the answer. :class:`_Unread` when a reused
        connection provably did not read it; ``ConnectionClosed`` when it broke after."""
        sent = False
        try:
            await conn.socket.send(message)
            sent = True
            return await conn.socket.recv()
        except ConnectError as exc:
            if conn.reused and not (sent and conn.socket.answered):
                raise _Unread from exc
            raise self.lost(exc) from exc

    async def get_json(self, path: str, *, params: Mapping[str, str] | None = None) -> Any:
        """``GET path`` decoded from JSON (a malformed answer is a ``ConnectError``)."""
        data = await self.request("GET", path, params=params)
        try:
            return msgspec.json.decode(data)
        except msgspec.DecodeError:
            raise ConnectError(
                f"the proxy at {self.url} answered GET {path} with no JSON: {data[:80]!r}",
                id=ERROR_ID,
            ) from None

    # -- WebSocket -------------------------------------------------------------------------

    async def websocket(
        self,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> aiohttp.ClientWebSocketResponse:
        """Open a WebSocket to ``path`` (ws or wss as the link's scheme); errors as
        :meth:`request`'s (a refused upgrade carries its HTTP status as code)."""
        limit = self.timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(max(limit, 0.001)):
                return await self.session().ws_connect(
                    self._url(path),
                    params=params,
                    headers=headers,
                    heartbeat=HEARTBEAT,
                    max_msg_size=MAX_MESSAGE,
                )
        except aiohttp.WSServerHandshakeError as exc:
            raise self.refused(exc.status, exc.message) from None
        except aiohttp.ClientConnectorError as exc:
            raise self.unreachable(exc) from exc
        except _CONNECT_TIMEOUTS as exc:
            raise self.unreachable(exc) from exc
        except TimeoutError as exc:
            detail = f"the proxy at {self.url} did not open a WebSocket to {path} within {limit:g}s"
            raise Timeout(detail, id=ERROR_ID) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise self.lost(exc) from exc

    # -- errors ----------------------------------------------------------------------------

    def unreachable(self, exc: BaseException) -> ProxyUnreachable:
        """The error for a connection that could not be made."""
        error = ProxyUnreachable(
            f"cannot reach the proxy at {self.url}: {_reason(exc)}", id=ERROR_ID
        )
        if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
            error.retryable = False
        return error

    def lost(self, exc: BaseException) -> ConnectionClosed:
        """The error for a connection that broke once the request had left."""
        detail = f"the connection to the proxy at {self.url} broke: {_reason(exc)}"
        if self._ssl and not self._client_cert:
            # a proxy that requires a client certificate (mutual TLS) ends the connection
            # once the handshake is over, which looks like any other broken connection
            detail += (
                " (if the proxy requires a client certificate, give --proxy-tls-cert and "
                "--proxy-tls-key)"
            )
        return ConnectionClosed(detail, id=ERROR_ID)

    def error(self, status: int, body: bytes) -> MicroError:
        """The error of a non-2xx answer (see the module docs)."""
        parsed = MicroError.parse(body)
        if status == 401:
            return self.refused(401, parsed.detail if parsed.code else "")
        if parsed.code:
            return parsed
        text = body.decode(errors="replace").strip()
        return MicroError(text or f"the proxy at {self.url} answered {status}", code=status)

    def refused(self, status: int, detail: str = "") -> MicroError:
        """The error for a refused request or upgrade with HTTP ``status``."""
        if status == 401:
            said = f" ({detail})" if detail else ""
            if self.token:
                text = f"the proxy at {self.url} refused the token{said}"
            else:
                text = f"the proxy at {self.url} requires a token (--proxy-token){said}"
            return Unauthorized(text, id=ERROR_ID)
        return MicroError(
            f"the proxy at {self.url} refused the request: {detail or status}",
            id=ERROR_ID,
            code=status,
        )

    def closed(self, code: int, reason: str = "") -> MicroError:
        """The error of a WebSocket the proxy closed with ``4000 + code`` (its class by
        code; 4401: the token, as :meth:`refused` says)."""
        status = code - 4000
        if status == 401:
            return self.refused(401, reason)
        wire = {"id": "go.micro.proxy", "code": status, "detail": reason or f"closed {code}"}
        return MicroError.parse(msgspec.json.encode(wire))


def _reason(exc: BaseException) -> str:
    """A short reason for a connection failure: the OS's words, or the TLS check's."""
    cause: BaseException = exc
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cause = exc.certificate_error
    elif isinstance(exc, aiohttp.ClientConnectorError):
        cause = exc.os_error
    if isinstance(cause, MicroError):  # our transport's, naming what happened
        return cause.detail
    if isinstance(cause, ssl.SSLCertVerificationError):
        return f"certificate rejected: {cause.verify_message or cause.reason or cause}"
    if isinstance(cause, ssl.SSLError):
        return f"TLS failed: {cause.reason or cause}"
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    if isinstance(cause, TimeoutError):
        return "connection timed out"
    return str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
