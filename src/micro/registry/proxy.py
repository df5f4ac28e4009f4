"""A registry reached through ``micro proxy``: the remote environment's registry, from afar.

Each method is one request to the proxy's ``/registry`` route (go-micro's registry handler)::

    get_service(name)   GET    /registry?service=name      -> [Service]   (404: not found)
    list_services()     GET    /registry                   -> [Service]
    register(svc, ttl)  POST   /registry?ttl=30s  {Service}
    deregister(svc)     DELETE /registry          {Service}
    watch(name)         GET    /registry?service=name, upgraded to a WebSocket: one
                        {"action", "service"} text frame per change

Chosen by ``MICRO_PROXY_ADDRESS`` (``--proxy-address``), which beats ``MICRO_REGISTRY``: the
remote engine is not reachable from here, the proxy is. ``MICRO_REGISTRY=proxy`` with
``MICRO_REGISTRY_ADDRESS`` picks it by name too.

Errors: a proxy that cannot be reached raises a :class:`~micro.errors.RegistryError` that is
also a :class:`~micro.errors.ConnectError` (detail ``cannot reach the proxy at <url>: ...``);
the remote registry's failures (5xx) arrive as ``RegistryError`` with their code and detail;
``Unauthorized`` when the proxy refuses the token. A watch ends cleanly when the registry
closes or its consumer stops; when the connection to the proxy ends under it, it raises
``RegistryError``, so that its consumer (the selector's cache, the dashboard) watches again
and re-reads what it may have missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aiohttp
import msgspec

from micro._proxy_link import ProxyLink, ProxyUnreachable
from micro.errors import MicroError, NotFound, RegistryError, ServiceNotFound
from micro.registry import Registry, Result, Service, decode_service, encode_service

__all__ = ["ProxyRegistry"]

log = logging.getLogger("micro.registry.proxy")
ERROR_ID = "go.micro.registry"
_ACTIONS = frozenset({"create", "update", "delete"})


class _Unreachable(ProxyUnreachable, RegistryError):
    """The proxy could not be reached (a ConnectError, and the RegistryError the interface
    promises)."""


class ProxyRegistry(Registry):
    """The registry behind a ``micro proxy`` (see the module docs).

    Args:
        proxy_address: the proxy, ``host:port``, ``http://host:port`` or ``https://...``.
        address: the same, when chosen by name (``MICRO_REGISTRY_ADDRESS``);
            ``proxy_address`` wins.
        proxy_token: bearer token the proxy checks.
        proxy_tls_ca: CA file of the proxy's certificate (implies https).
        proxy_tls_cert, proxy_tls_key: client certificate for mutual TLS.
        timeout: seconds per request (10 s).

    Raises:
        ValueError: no address, or a bad one, or an unreadable TLS file.
    """

    name = "proxy"

    def __init__(
        self,
        *,
        proxy_address: str | None = None,
        address: str | None = None,
        proxy_token: str | None = None,
        proxy_tls_ca: str | None = None,
        proxy_tls_cert: str | None = None,
        proxy_tls_key: str | None = None,
        timeout: float | None = None,
    ) -> None:
        self.link = ProxyLink.of_backend(
            "registry",
            proxy_address=proxy_address,
            address=address,
            token=proxy_token,
            tls_ca=proxy_tls_ca,
            tls_cert=proxy_tls_cert,
            tls_key=proxy_tls_key,
            timeout=timeout,
        )
        self._watches: set[_ProxyWatch] = set()
        self._closed = False

    def __repr__(self) -> str:
        return f"ProxyRegistry({self.link.url!r})"

    @property
    def url(self) -> str:
        """The proxy's URL, as error lines name it."""
        return self.link.url

    async def close(self) -> None:
        self._closed = True
        for watch in list(self._watches):
            await watch.aclose()
        await self.link.close()

    async def register(self, service: Service, *, ttl: float | None = None) -> None:
        params = {"ttl": _duration(ttl)} if ttl is not None else None
        await self._call("POST", f"register {service.name}", encode_service(service), params)

    async def deregister(self, service: Service) -> None:
        await self._call("DELETE", f"deregister {service.name}", encode_service(service))

    async def get_service(self, name: str) -> list[Service]:
        if not name:
            raise ServiceNotFound("service name is empty", id=ERROR_ID)
        try:
            data = await self._call("GET", f"get {name}", params={"service": name})
        except NotFound as exc:
            raise ServiceNotFound(exc.detail, id=exc.id or ERROR_ID) from None
        found = self._services(data)
        if not found:
            raise ServiceNotFound(f"service {name}: not found", id=ERROR_ID)
        return found

    async def list_services(self) -> list[Service]:
        return self._services(await self._call("GET", "list services"))

    def watch(self, service: str | None = None) -> _ProxyWatch:
        return _ProxyWatch(self, service)

    # -- helpers ---------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        what: str,
        body: bytes | None = None,
        params: dict[str, str] | None = None,
    ) -> bytes:
        if self._closed:
            raise RegistryError("the proxy registry is closed", id=ERROR_ID)
        try:
            return await self.link.request(method, "/registry", params=params, body=body, what=what)
        except MicroError as exc:
            raise registry_error(exc) from exc

    def _services(self, data: bytes) -> list[Service]:
        try:
            raw = msgspec.json.decode(data)
        except msgspec.DecodeError:
            raw = None
        if not isinstance(raw, list):
            raise RegistryError(
                f"the proxy at {self.url} answered with no list of services: {data[:80]!r}",
                id=ERROR_ID,
            )
        return [decode_service(item) for item in raw if isinstance(item, dict)]


def registry_error(exc: MicroError) -> MicroError:
    """``exc`` as the registry interface raises it (see the module docs)."""
    if isinstance(exc, ProxyUnreachable) and not isinstance(exc, RegistryError):
        error = _Unreachable(exc.detail, id=exc.id)
        error.retryable = exc.retryable
        return error
    if exc.code >= 500 and not isinstance(exc, RegistryError):
        return RegistryError(exc.detail, id=exc.id or ERROR_ID, code=exc.code, status=exc.status)
    return exc


def _duration(seconds: float) -> str:
    """A Go duration for ``seconds`` (``30s``, ``1.5s``)."""
    text = f"{max(seconds, 0.0):.3f}".rstrip("0").rstrip(".")
    return f"{text or '0'}s"


class _ProxyWatch:
    """One watch: a WebSocket to ``/registry``, opened as soon as the watch is made."""

    def __init__(self, registry: ProxyRegistry, service: str | None) -> None:
        self._registry = registry
        self._service = service
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._opening: asyncio.Future[aiohttp.ClientWebSocketResponse] | None = None
        self._done = registry._closed
        if not self._done:
            registry._watches.add(self)
            with contextlib.suppress(RuntimeError):  # no running loop: open on first use
                self._opening = asyncio.ensure_future(self._open())
                self._opening.add_done_callback(_retrieve)

    def __repr__(self) -> str:
        return f"<proxy registry watch {self._service or '*'} at {self._registry.url}>"

    async def _open(self) -> aiohttp.ClientWebSocketResponse:
        params = {"service": self._service} if self._service else None
        return await self._registry.link.websocket("/registry", params=params)

    def __aiter__(self) -> _ProxyWatch:
        return self

    async def __anext__(self) -> Result:
        if self._done:
            raise StopAsyncIteration
        ws = self._ws
        if ws is None:
            if self._opening is None:
                self._opening = asyncio.ensure_future(self._open())
            try:
                ws = self._ws = await self._opening
            except asyncio.CancelledError:
                if self._done and not _cancelling():  # the registry closed as it opened
                    raise StopAsyncIteration from None
                raise
            except MicroError as exc:
                await self.aclose()
                raise registry_error(exc) from exc
            if self._done:  # closed while it opened
                await ws.close()
                raise StopAsyncIteration
        while True:
            msg = await ws.receive()
            if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                result = self._result(msg.data)
                if result is not None:
                    return result
                continue
            ended_by_us = self._done or self._registry._closed
            await self.aclose()
            if ended_by_us:
                raise StopAsyncIteration
            raise self._ended(ws, msg)

    def _result(self, data: str | bytes) -> Result | None:
        try:
            raw: Any = msgspec.json.decode(data)
        except msgspec.DecodeError:
            raw = None
        if isinstance(raw, dict) and isinstance(raw.get("error"), dict) and "action" not in raw:
            raise registry_error(MicroError.parse(msgspec.json.encode(raw["error"])))
        if not isinstance(raw, dict) or raw.get("action") not in _ACTIONS:
            log.warning("proxy registry watch: skipped a malformed result %.80r", data)
            return None
        try:
            return Result(raw["action"], decode_service(raw.get("service") or {}))
        except RegistryError as exc:
            log.warning("proxy registry watch: skipped a result: %s", exc.detail)
            return None

    def _ended(self, ws: aiohttp.ClientWebSocketResponse, msg: aiohttp.WSMessage) -> MicroError:
        code = ws.close_code or 0
        reason = str(msg.extra or "") if msg.type is aiohttp.WSMsgType.CLOSE else ""
        if 4000 <= code < 5000:
            return registry_error(self._registry.link.closed(code, reason))
        why = f"closed ({code}{': ' + reason if reason else ''})" if code else "connection lost"
        detail = f"registry watch through the proxy at {self._registry.url} ended: {why}"
        return RegistryError(detail, id=ERROR_ID)

    async def aclose(self) -> None:
        """Stop watching; never raises."""
        self._done = True
        self._registry._watches.discard(self)
        opening, self._opening = self._opening, None
        ws, self._ws = self._ws, None
        if ws is None and opening is not None:
            if opening.done() and not opening.cancelled() and opening.exception() is None:
                ws = opening.result()
            else:
                opening.cancel()
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark an eager open's failure as seen (it is raised again by ``__anext__``)."""
    if not future.cancelled():
        future.exception()
