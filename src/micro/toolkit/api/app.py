"""The gateway: an ASGI application that turns HTTP requests into calls to services.

Request flow: access log -> header check -> CORS -> rate limit -> auth -> built-in paths
(``/health``, ``/openapi.json``, ``/docs``, ``/rpc``) -> route (``meta`` metadata, else the
resolver) -> handler (``rpc``, ``api``, ``http``, ``web``, ``event``; WebSockets to streams
or through the ``web`` proxy). Errors become go-micro's JSON error with the matching status.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

import micro
from micro.client import Client
from micro.errors import (
    BadRequest,
    MethodNotAllowed,
    MicroError,
    NotFound,
    ServiceNotFound,
)
from micro.registry import Registry, split_host_port
from micro.selector import Selector
from micro.settings import BACKEND_GROUPS, Settings
from micro.toolkit._app import ToolkitApp
from micro.toolkit.api._docs import docs_page
from micro.toolkit.api._errors import API_ID, error_response
from micro.toolkit.api._http import (
    RawResponse,
    decode_json,
    header,
    media_type,
    read_body,
)
from micro.toolkit.api._upstream import Pool
from micro.toolkit.api.catalog import Catalog
from micro.toolkit.api.handlers import (
    Reply,
    api_handler,
    call_metadata,
    call_timeout,
    event_handler,
    rpc_handler,
)
from micro.toolkit.api.middleware import AccessLog, Auth, AuthCheck, HeaderCheck
from micro.toolkit.api.openapi import build_document
from micro.toolkit.api.options import ApiOptions
from micro.toolkit.api.proxy import http_handler, web_socket_proxy
from micro.toolkit.api.resolver import Route, make_resolver
from micro.toolkit.api.stream import web_socket_rpc

__all__ = ["Gateway"]

log = logging.getLogger("micro.api")

Handler = Callable[["Gateway", Scope, Receive, Route], Awaitable[Reply]]
_ROUTE_CACHE = 4096
# Paths and hosts are the client's to choose: a longer key is resolved every time, so that
# the cache holds at most _ROUTE_CACHE short keys (before this, 4096 8 KB paths held 50 MB).
_ROUTE_KEY_MAX = 256
_RPC_ID = "go.micro.rpc"
HANDLERS: dict[str, Handler] = {
    "rpc": rpc_handler,
    "api": api_handler,
    "http": http_handler,
    "proxy": http_handler,
    "web": http_handler,
    "event": event_handler,
}


class Gateway(ToolkitApp[ApiOptions]):
    """The ``micro api`` ASGI application.

    Args:
        options: the settings (defaults: go-micro's).
        registry: a Registry instance (else built from ``options.registry``/env and owned).
        selector: a Selector (else the registry-cache selector over ``registry``, owned).
        client: a :class:`micro.Client` for the calls (else one over the registry/selector).
        auth: the bearer-token check; when given, every request but ``auth_exempt`` paths
            needs ``Authorization: Bearer <token>`` and gets 401 before any service call.
        settings: the backend settings (:mod:`micro.settings`) the registry, selector and
            client are built from (default: read from the environment, here, once).

    Serve it with any ASGI server (``uvicorn.run(Gateway(...))``). It starts on the ASGI
    lifespan event or, without one, on the first request; :meth:`close` releases what it
    built. Instances passed in are used, never closed. ``upstream`` is the pooled HTTP/1.1
    client of the ``http``/``web`` handlers (timeouts: ``timeout``, else 30 s; at most
    ``max_connections`` connections open).
    """

    def __init__(
        self,
        options: ApiOptions | None = None,
        *,
        registry: Registry | None = None,
        selector: Selector | None = None,
        client: Client | None = None,
        auth: AuthCheck | None = None,
        settings: Settings | None = None,
    ) -> None:
        options = options or ApiOptions()
        super().__init__(options, settings, BACKEND_GROUPS, registry, selector)
        self.resolver = make_resolver(options.resolver, options.namespace)
        self.client = self._client(client)
        self.catalog = Catalog(self.registry, options.namespace)
        timeout = options.timeout or 30.0
        self.upstream = Pool(
            connect_timeout=timeout,
            read_timeout=timeout,
            max_connections=options.max_connections,
        )
        self._builtins = self._builtin_paths()
        self._doc: tuple[int, bytes] = (-1, b"")
        self._routes: dict[tuple[str, str, str], Route] = {}
        self._routes_version = -1
        self._app = self._stack(auth)

    def set_auth(self, check: AuthCheck | None) -> None:
        """Require a bearer token accepted by ``check`` (None: no auth) from now on."""
        self._app = self._stack(check)

    # -- lifecycle (start, close and the ASGI entry are ToolkitApp's) -----------------------

    async def _start_parts(self) -> None:
        """Load the catalog."""
        await self.catalog.start()
        log.info(
            "micro api: namespace %r, handler %s", self.options.namespace, self.options.handler
        )

    async def _close_parts(self) -> None:
        """Stop watching, close the upstream pool; never raises."""
        await self.catalog.close()
        with contextlib.suppress(Exception):
            await self.upstream.close()

    # -- ASGI -------------------------------------------------------------------------------

    def _stack(self, auth: AuthCheck | None) -> ASGIApp:
        opts = self.options
        app: ASGIApp = self._dispatch
        if auth is not None:
            app = Auth(app, check=auth, exempt=frozenset(opts.auth_exempt))
        app = self._rate_limit(app)
        if opts.cors_origins:
            app = CORSMiddleware(
                app,
                allow_origins=list(opts.cors_origins),
                allow_methods=list(opts.cors_methods),
                allow_headers=list(opts.cors_headers),
                allow_credentials=opts.cors_credentials,
            )
        app = HeaderCheck(app)
        if opts.access_log:
            app = AccessLog(app)
        return app

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(WebSocket(scope, receive, send))
            return
        builtin = self._builtins.get(scope["path"])
        response: Reply
        try:
            if builtin is not None:
                response = await builtin(scope, receive)
            else:
                route = self.route(scope)
                handler = HANDLERS.get(route.handler, rpc_handler)
                try:
                    response = await handler(self, scope, receive, route)
                except ServiceNotFound as exc:
                    raise self._not_found(route, exc) from None
        except Exception as exc:
            allow = None
            if isinstance(exc, MethodNotAllowed):
                allow = {"Allow": "POST" if builtin is not None else "GET, POST"}
            response = error_response(exc, allow)
        await response(scope, receive, send)

    def route(self, scope: Scope) -> Route:
        """Where the request goes: an endpoint's own metadata route, else the resolver's.

        Routes are cached per (method, path, host) until the catalog changes: resolving
        (regexes, CamelCasing) costs more than a dict lookup on every request. Only short
        keys are cached, so the cache's size is bounded in bytes, not only in entries.
        """
        method = scope.get("method", "GET")
        path = scope["path"]
        host = header(scope, b"host")
        routes = self._routes
        if self._routes_version != self.catalog.version:
            routes.clear()
            self._routes_version = self.catalog.version
        key = (method, path, host)
        found = routes.get(key)
        if found is None:
            found = self._resolve(method, path, host)
            if len(path) + len(host) <= _ROUTE_KEY_MAX:
                if len(routes) >= _ROUTE_CACHE:
                    routes.clear()
                routes[key] = found
        return found

    def _resolve(self, method: str, path: str, host: str) -> Route:
        kind = self.options.handler
        if kind == "meta":
            found = self.catalog.match(method, path, host)
            if found is not None:
                return found
            kind = "rpc"
        return self.resolver.resolve(kind, path, host)

    def _not_found(self, route: Route, exc: ServiceNotFound) -> NotFound:
        ns = self.options.namespace
        where = f" (namespace {ns!r})" if ns else ""
        detail = f"no service {route.service!r} is registered for {route.path}{where}"
        return NotFound(detail, id=API_ID)

    async def read_body(self, scope: Scope, receive: Receive) -> bytes:
        """The request body within the size limit and read timeout."""
        opts = self.options
        return await read_body(scope, receive, limit=opts.max_body, timeout=opts.read_timeout)

    async def _websocket(self, ws: WebSocket) -> None:
        try:
            route = self.route(ws.scope)
        except MicroError as exc:
            await ws.close(code=4000 + exc.code, reason=exc.detail[:120])
            return
        if route.handler == "web":
            await web_socket_proxy(self, ws, route)
        elif route.handler == "rpc":
            await web_socket_rpc(self, ws, route)
        else:
            await ws.close(code=4405, reason=f"no WebSocket with the {route.handler} handler")

    # -- built-in paths ---------------------------------------------------------------------

    def _builtin_paths(self) -> dict[str, Callable[[Scope, Receive], Awaitable[Reply]]]:
        paths: dict[str, Callable[[Scope, Receive], Awaitable[Reply]]] = {
            "/health": self._health,
            "/openapi.json": self._openapi,
            "/docs": self._docs,
            "/favicon.ico": _no_content,
        }
        if self.options.handler in ("meta", "rpc", "api"):
            paths["/"] = self._root
        if self.options.enable_rpc:
            paths["/rpc"] = self._rpc
        return paths

    async def _health(self, scope: Scope, receive: Receive) -> Response:
        return JSONResponse(
            {
                "status": "ok",
                "namespace": self.options.namespace,
                "services": len(self.catalog.services),
            }
        )

    async def _root(self, scope: Scope, receive: Receive) -> Response:
        return JSONResponse({"version": micro.__version__, "openapi": "/openapi.json"})

    def document(self) -> bytes:
        """The OpenAPI 3.1 document as JSON, rebuilt when the catalog changed."""
        version, cached = self._doc
        if version != self.catalog.version:
            doc = build_document(
                self.catalog,
                self.resolver,
                enable_rpc=self.options.enable_rpc,
                version=micro.__version__,
            )
            cached = msgspec.json.encode(doc)
            self._doc = (self.catalog.version, cached)
        return cached

    async def _openapi(self, scope: Scope, receive: Receive) -> Response:
        return Response(self.document(), media_type="application/json")

    async def _docs(self, scope: Scope, receive: Receive) -> Response:
        return HTMLResponse(docs_page(msgspec.json.decode(self.document())))

    async def _rpc(self, scope: Scope, receive: Receive) -> Reply:
        if scope["method"] != "POST":
            raise MethodNotAllowed(f"{scope['method']} not allowed on /rpc: use POST", id=API_ID)
        body = await self.read_body(scope, receive)
        service, endpoint, request, address = _rpc_fields(scope, body)
        rsp = await self.client.call(
            service,
            endpoint,
            request,
            response_type=msgspec.Raw,
            address=address or None,
            timeout=call_timeout(scope) or self.options.timeout,
            metadata=call_metadata(scope),
            content_type="application/json",
        )
        return RawResponse(bytes(rsp))


def _rpc_fields(scope: Scope, body: bytes) -> tuple[str, str, Any, str]:
    """``service, endpoint, request, address`` of a /rpc request (JSON body or form)."""
    if media_type(scope) == "application/x-www-form-urlencoded" and not body.lstrip().startswith(
        b"{"
    ):
        fields: Any = dict(parse_qsl(body.decode("latin-1"), keep_blank_values=True))
    else:
        fields = decode_json(body or b"{}", "JSON body", error_id=_RPC_ID)
    if not isinstance(fields, dict):
        raise BadRequest("the body must be a JSON object", id=_RPC_ID)
    service = fields.get("service")
    endpoint = fields.get("endpoint") or fields.get("method")
    if not service or not isinstance(service, str):
        raise BadRequest("invalid service", id=_RPC_ID)
    if not endpoint or not isinstance(endpoint, str):
        raise BadRequest("invalid endpoint", id=_RPC_ID)
    request = fields.get("request", {})
    if isinstance(request, str):
        request = decode_json(request or "{}", "request JSON", error_id=_RPC_ID)
    address = fields.get("address") or ""
    if not isinstance(address, str):
        raise BadRequest("invalid address", id=_RPC_ID)
    if address:
        try:
            host, port = split_host_port(address)
        except ValueError:
            host, port = "", 0
        if not host or not 0 < port < 65536:
            raise BadRequest(f"invalid address {address!r}: want host:port", id=_RPC_ID)
    return service, endpoint, request, address


async def _no_content(scope: Scope, receive: Receive) -> Response:
    return Response(status_code=404)
