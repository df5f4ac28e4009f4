"""The dashboard: an ASGI application serving the pages, their JSON/SSE/WebSocket API, and
the reverse proxy to the web services.

Request flow: access log -> header check -> security headers -> rate limit -> same-origin
check -> auth -> the route table (pages, ``/registry``, ``/rpc``, ``/health``, ``/_/...``),
else ``/static/<file>``, else ``/[name]/...`` through the proxy, else the 404 page listing the
web services. The ``/_/...`` handlers of :mod:`.live`, :mod:`.nodes`, :mod:`.calls` and
:mod:`.terminal` plug in through their ``routes(dash)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import msgspec
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

import micro
from micro import plugins
from micro.broker import Broker
from micro.client import Client
from micro.errors import MicroError, NotFound, RegistryError, ServiceNotFound
from micro.registry import Registry
from micro.selector import Selector
from micro.settings import Settings
from micro.toolkit._app import BrokerApp
from micro.toolkit.api._errors import error_response
from micro.toolkit.api._http import header
from micro.toolkit.api._upstream import Pool
from micro.toolkit.api.app import Gateway
from micro.toolkit.api.middleware import AccessLog, AuthCheck, HeaderCheck
from micro.toolkit.api.options import ApiOptions
from micro.toolkit.web.cli import WEB_GROUPS
from micro.toolkit.web.options import NAME_PATTERN, WebOptions
from micro.toolkit.web.pages import Assets, not_found_page, with_snapshot
from micro.toolkit.web.proxy import WebProxy, split_name
from micro.toolkit.web.security import (
    WEB_ID,
    SameOrigin,
    SecurityHeaders,
    WebAuth,
    login_handler,
    logout_handler,
    wants_html,
)

__all__ = ["Dashboard"]

log = logging.getLogger("micro.web")
access_log = logging.getLogger("micro.web.access")

PAGES = {
    "/": "index.html",
    "/call": "call.html",
    "/client": "call.html",
    "/publish": "publish.html",
    "/terminal": "terminal.html",
    "/cli": "terminal.html",
}
"""Page paths and their HTML shells in ``static/`` (``/registry`` and ``/login`` too)."""
_LIST_TIMEOUT = 5.0
_encoder = msgspec.json.Encoder()


class Dashboard(BrokerApp[WebOptions]):
    """The ``micro web`` ASGI application.

    Args:
        options: the settings (defaults: go-micro's, but on 127.0.0.1).
        registry: a Registry (else built from ``options.registry``/settings and owned).
        selector: a Selector (else the registry-cache selector over ``registry``, owned).
        client: a :class:`micro.Client` for the calls (else one over the registry/selector).
        broker: a Broker for publish and the topic tail (else built on first use, owned).
        auth: the token check; when given every route but ``/login``, ``/static/`` and
            ``/health`` needs a token (bearer header or the ``micro_token`` cookie).
        settings: the settings the backends are built from (default: read from the
            environment, here, once).

    Serve it with any ASGI server. It starts on the ASGI lifespan event or, without one, on
    the first request; :meth:`close` releases what it built. Instances passed in are used,
    never closed. When the server starts to shut down, call :meth:`end_streams` so that the
    open event streams and stream WebSockets end at once rather than hold the server's
    graceful wait for open connections (``micro web`` does).

    What the ``/_/...`` handlers use: ``options``, ``settings``, ``registry``, ``selector``,
    ``client``, ``broker`` (or :meth:`connected_broker`), ``gateway`` (the ``micro api``
    application over the same backends, for ``/rpc``), ``upstream`` (the proxy's pooled
    HTTP/1.1 client), :meth:`read_body`, ``live`` and ``streams`` (the open streams).
    """

    def __init__(
        self,
        options: WebOptions | None = None,
        *,
        registry: Registry | None = None,
        selector: Selector | None = None,
        client: Client | None = None,
        broker: Broker | None = None,
        auth: AuthCheck | None = None,
        settings: Settings | None = None,
    ) -> None:
        options = options or WebOptions()
        super().__init__(options, settings, WEB_GROUPS, registry, selector)
        broker_owned = False
        if client is None:
            from micro.toolkit.web.calls import record_node

            if broker is None:  # one broker for the pages and the terminal's publish
                broker = plugins.create_broker(settings=self.settings, registry=self.registry)
                broker_owned = True  # built, not connected: it connects on first use
            # record_node: so /_/call can say which node answered
            client = self._client(None, broker=broker, wrappers=[record_node])
        self.client = client
        self._init_streaming(broker, owned=broker_owned)
        self.auth: AuthCheck | None = auth
        self.gateway = Gateway(
            ApiOptions(
                namespace="",
                handler="rpc",
                enable_rpc=True,
                max_body=options.max_body,
                read_timeout=options.read_timeout,
                timeout=options.timeout,
                access_log=False,
            ),
            registry=self.registry,
            selector=self.selector,
            client=client,
            settings=self.settings,
        )
        read = options.timeout or max(options.idle_timeout, 60.0)
        self.upstream = Pool(
            connect_timeout=min(read, 10.0),
            read_timeout=read,
            max_connections=options.max_connections,
        )
        self.assets = Assets()
        self.proxy = WebProxy(self)
        from micro.toolkit.web import live

        self.live = live.Live(self)
        self.routes: dict[str, ASGIApp] = self._route_table()
        self._app = self._stack()

    def set_auth(self, check: AuthCheck | None) -> None:
        """Require a token accepted by ``check`` (None: no auth) from now on."""
        self.auth = check
        self._app = self._stack()

    # -- lifecycle (start, close, the broker and the ASGI entry are BrokerApp's) -----------

    async def _start_parts(self) -> None:
        """Start the live data."""
        await self.live.start()
        self._reopen_streams()
        log.info("micro web: namespace %r", self.options.namespace)

    def end_streams(self) -> None:
        """End every open ``/_/events`` and ``/_/tail`` event stream and ``/_/stream``
        WebSocket now (their broker subscriptions and streams with them), and any opened
        later. Call it when the server begins to shut down, before it waits for the open
        connections to close: those answers have no end of their own. Never raises."""
        self.streams.end()

    async def _close_parts(self) -> None:
        """End the streams, stop the live data, close the gateway, the upstream pool and the
        broker if the dashboard built it; never raises."""
        self.end_streams()
        with contextlib.suppress(Exception):
            await self.live.close()
        with contextlib.suppress(Exception):
            await self.gateway.close()
        with contextlib.suppress(Exception):
            await self.upstream.close()
        await self._close_broker()

    # -- ASGI -------------------------------------------------------------------------------

    def _stack(self) -> ASGIApp:
        opts = self.options
        app: ASGIApp = self._dispatch
        if self.auth is not None:
            exempt = frozenset({*opts.auth_exempt, "/health", "/login", "/favicon.ico"})
            app = WebAuth(app, check=self.auth, exempt=exempt)
        app = SameOrigin(app)
        app = self._rate_limit(app)
        app = SecurityHeaders(app)
        app = HeaderCheck(app)
        if opts.access_log:
            app = AccessLog(app, access_log)
        return app

    def _route_table(self) -> dict[str, ASGIApp]:
        from micro.toolkit.web import calls, live, nodes, terminal

        own: dict[str, ASGIApp] = {path: self._page(shell) for path, shell in PAGES.items()}
        own["/"] = self._page_of(self._services_page)
        own.update(
            {
                "/registry": self._registry,
                "/login": login_handler(lambda: self.auth, self._shell("login.html")),
                "/logout": logout_handler,
                "/rpc": self._rpc,
                "/health": self._endpoint(self._health),
                "/_/info": self._endpoint(self._info),
                "/favicon.ico": self._favicon,
            }
        )
        self._http_only = frozenset(own)
        return {
            **live.routes(self),
            **nodes.routes(self),
            **calls.routes(self),
            **terminal.routes(self),
            **own,
        }

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        route = self.routes.get(path)
        if scope["type"] == "websocket":
            await self._websocket(route, scope, receive, send)
            return
        if route is not None:
            await route(scope, receive, send)
            return
        if path.startswith("/static/"):
            await self._static(scope, receive, send, path[len("/static/") :])
            return
        if path.startswith("/_/"):
            err = NotFound(f"no API at {path}", id=WEB_ID)
            await error_response(err)(scope, receive, send)
            return
        found = split_name(path)
        if found is not None:
            await self.proxy.http(scope, receive, send, *found)
            return
        await (await self.not_found(scope))(scope, receive, send)

    async def _websocket(
        self, route: ASGIApp | None, scope: Scope, receive: Receive, send: Send
    ) -> None:
        path: str = scope["path"]
        if route is not None and path not in self._http_only:
            await route(scope, receive, send)
            return
        found = split_name(path) if route is None and not path.startswith("/_/") else None
        if found is None:
            await send({"type": "websocket.close", "code": 4404, "reason": "no WebSocket here"})
            return
        await self.proxy.websocket(scope, receive, send, *found)

    # -- pages and assets -------------------------------------------------------------------

    def _shell(self, name: str) -> Callable[[Scope], Response]:
        def page(scope: Scope) -> Response:
            response = self.assets.response(scope, name)
            if response is None:
                err = MicroError(f"page {name} is missing from the package", id=WEB_ID, code=500)
                return error_response(err)
            return response

        return page

    def _services_page(self, scope: Scope) -> Response:
        """The services page with the services JSON it draws first (``/_/services``'s, in
        its data block), so that its rows need no round trip before the event stream's.

        Sent with ``Cache-Control: no-store``, as ``/_/services``: the page is as current as
        the registry view at the time it is asked for, and a browser never shows it again
        from its cache (not from its back/forward cache either, where the event stream
        would be closed). Until the first registry load is done the block stays empty and
        the page waits for the event stream.
        """
        asset = self.assets.get("index.html")
        if asset is None:
            err = MicroError("page index.html is missing from the package", id=WEB_ID, code=500)
            return error_response(err)
        body = asset.body
        if self.live.ready:
            body = with_snapshot(body, self.live.payload())
        headers = {"Cache-Control": "no-store"}
        if scope.get("method") == "HEAD":
            headers["Content-Length"] = str(len(body))
            body = b""
        return Response(body, media_type=asset.media_type, headers=headers)

    def _page(self, name: str) -> ASGIApp:
        return self._page_of(self._shell(name))

    def _page_of(self, shell: Callable[[Scope], Response]) -> ASGIApp:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["method"] not in ("GET", "HEAD"):
                await _method_not_allowed(scope, "GET")(scope, receive, send)
                return
            await shell(scope)(scope, receive, send)

        return app

    async def _static(self, scope: Scope, receive: Receive, send: Send, name: str) -> None:
        response: Response | None
        if scope["method"] not in ("GET", "HEAD"):
            response = _method_not_allowed(scope, "GET")
        else:
            response = self.assets.response(scope, name)
            if response is None:
                response = error_response(NotFound(f"no file {name!r}", id=WEB_ID))
        await response(scope, receive, send)

    async def _favicon(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = self.assets.response(scope, "favicon.svg") or Response(status_code=204)
        await response(scope, receive, send)

    async def web_services(self) -> list[tuple[str, str]]:
        """``(short name, full name)`` of the namespace's web services that the proxy can
        reach (their short name is a valid ``/[name]``), sorted; [] if the registry fails."""
        prefix = self.options.namespace + "."
        try:
            async with asyncio.timeout(_LIST_TIMEOUT):
                services = await self.registry.list_services()
        except (RegistryError, TimeoutError) as exc:
            log.warning("micro web: cannot list services: %s", exc)
            return []
        names = {s.name for s in services if s.name.startswith(prefix)}
        found = ((name[len(prefix) :], name) for name in sorted(names))
        return [(short, name) for short, name in found if NAME_PATTERN.match(short)]

    async def not_found(self, scope: Scope) -> Response:
        """The 404 answer for ``scope``'s path: the page listing the web services for a
        browser, go-micro's JSON error for other clients."""
        path = scope["path"]
        if not wants_html(scope):
            return error_response(NotFound(f"nothing at {path}", id=WEB_ID))
        return not_found_page(path, await self.web_services(), self.options.namespace)

    # -- /registry, /rpc, /health, /_/info --------------------------------------------------

    async def _registry(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The services page, or ``{"services": [...]}`` for a JSON client (go-micro's)."""
        if scope["method"] not in ("GET", "HEAD"):
            await _method_not_allowed(scope, "GET")(scope, receive, send)
            return
        service = _query_param(scope, "service")
        if not _wants_json(scope):
            page = self._shell("service.html") if service else self._services_page
            await page(scope)(scope, receive, send)
            return
        response: Response
        try:
            if service:
                found = await self.registry.get_service(service)
            else:
                found = await self.registry.list_services()
            found = sorted(found, key=lambda s: (s.name, s.version))
            response = _json({"services": found})
        except ServiceNotFound:
            response = error_response(NotFound(f"service {service!r} not found", id=WEB_ID))
        except MicroError as exc:
            response = error_response(exc)
        await response(scope, receive, send)

    async def _rpc(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``POST /rpc``, answered by the gateway as ``micro api --enable-rpc``'s."""
        await self.gateway(scope, receive, send)

    def _endpoint(self, handler: Callable[[], Awaitable[Response]]) -> ASGIApp:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["method"] not in ("GET", "HEAD"):
                await _method_not_allowed(scope, "GET")(scope, receive, send)
                return
            await (await handler())(scope, receive, send)

        return app

    async def _health(self) -> Response:
        return JSONResponse(
            {"status": "ok", "version": micro.__version__, "namespace": self.options.namespace}
        )

    async def _info(self) -> Response:
        broker = self.settings.get("broker") or plugins.DEFAULTS["broker"]
        if self._broker is not None:
            broker = self._broker.name
        return JSONResponse(
            {
                "version": micro.__version__,
                "namespace": self.options.namespace,
                "registry": self.registry.name,
                "broker": broker,
                "auth": self.auth is not None,
                "streams": self.streams.counts(),
            }
        )


def _json(value: Any, status: int = 200) -> Response:
    return Response(_encoder.encode(value), status_code=status, media_type="application/json")


def _wants_json(scope: Scope) -> bool:
    accept = header(scope, b"accept")
    kind = header(scope, b"content-type").split(";", 1)[0].strip().lower()
    return kind == "application/json" or (
        "application/json" in accept and "text/html" not in accept
    )


def _query_param(scope: Scope, name: str) -> str:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(name)
    return values[0] if values else ""


def _method_not_allowed(scope: Scope, allow: str) -> Response:
    err = MicroError(f"{scope['method']} not allowed on {scope['path']}", id=WEB_ID, code=405)
    return error_response(err, {"Allow": allow})
