"""The proxy: an ASGI application that lets a client outside the network reach its
services, registry and broker through one address.

Request flow: access log -> (WebSockets) refusals made readable -> header check -> rate limit
-> auth -> the route table: ``/registry`` (:mod:`.registry`), ``/rpc`` (:mod:`.rpc`),
``/broker`` (:mod:`.broker`), ``/health``; anything else is a 404. Each route answers HTTP
and, upgraded, a WebSocket (watch, stream, subscribe). Errors are go-micro's JSON error with
the status of its code; a service's own error passes through unchanged.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketState

import micro
from micro.broker import Broker
from micro.client import Client
from micro.errors import MethodNotAllowed, MicroError, NotFound
from micro.registry import Registry
from micro.selector import Selector
from micro.settings import PROXY_GROUPS, Settings
from micro.toolkit._app import BrokerApp
from micro.toolkit.api.app import Gateway
from micro.toolkit.api.middleware import AccessLog, Auth, AuthCheck, HeaderCheck
from micro.toolkit.api.options import ApiOptions
from micro.toolkit.proxy._common import (
    PROXY_ID,
    WebSocketRefusals,
    encode,
    json_reply,
    reply_error,
    ws_fail,
)
from micro.toolkit.proxy.broker import broker_http, broker_subscribe
from micro.toolkit.proxy.options import ProxyOptions
from micro.toolkit.proxy.registry import registry_http, registry_watch
from micro.toolkit.proxy.rpc import rpc_http, rpc_stream

__all__ = ["ProxyApp"]

log = logging.getLogger("micro.proxy")
access_log = logging.getLogger("micro.proxy.access")

HttpRoute = Callable[["ProxyApp", Scope, Receive, Send], Awaitable[None]]
SocketRoute = Callable[["ProxyApp", WebSocket], Awaitable[None]]


class ProxyApp(BrokerApp[ProxyOptions]):
    """The ``micro proxy`` ASGI application.

    Args:
        options: the settings (defaults: go-micro's).
        registry: a Registry (else built from ``options.registry``/settings and owned).
        selector: a Selector (else the registry-cache selector over ``registry``, owned).
        client: a :class:`micro.Client` for the calls (else one over the registry/selector).
        broker: a Broker for ``/broker`` (else built from the settings on first use, owned).
        auth: the bearer-token check; when given, every route but ``/health`` needs
            ``Authorization: Bearer <token>`` (401, or WebSocket close 4401, without one).
        settings: the settings the backends (and the companion app, see ``docs/proxy.md``)
            are built from (default: read from the environment, here, once).

    Serve it with any ASGI server. It starts on the ASGI lifespan event or, without one, on
    the first request; :meth:`close` releases what it built. Instances passed in are used,
    never closed. When the server starts to shut down, call :meth:`end_streams` so that
    the open WebSockets (watches, streams, subscriptions) end at once rather than hold the
    server's graceful wait (``micro proxy`` does).
    """

    def __init__(
        self,
        options: ProxyOptions | None = None,
        *,
        registry: Registry | None = None,
        selector: Selector | None = None,
        client: Client | None = None,
        broker: Broker | None = None,
        auth: AuthCheck | None = None,
        settings: Settings | None = None,
    ) -> None:
        options = options or ProxyOptions()
        super().__init__(options, settings, PROXY_GROUPS, registry, selector)
        self.client = self._client(client)
        self._init_streaming(broker, owned=False)
        # the gateway over the same backends serves the stream WebSockets (its protocol)
        self.gateway = Gateway(
            ApiOptions(namespace="", handler="rpc", access_log=False, max_body=options.max_body),
            registry=self.registry,
            selector=self.selector,
            client=self.client,
            settings=self.settings,
        )
        self.companion = _companion(self.settings, self.registry)
        self.auth = auth
        self._http: dict[str, HttpRoute] = {
            "/registry": registry_http,
            "/rpc": rpc_http,
            "/broker": broker_http,
            "/health": _health,
        }
        self._sockets: dict[str, SocketRoute] = {
            "/registry": registry_watch,
            "/rpc": rpc_stream,
            "/broker": broker_subscribe,
        }
        self._app, self._socket_app = self._stacks()

    def set_auth(self, check: AuthCheck | None) -> None:
        """Require a bearer token accepted by ``check`` (None: no auth) from now on."""
        self.auth = check
        self._app, self._socket_app = self._stacks()

    # -- lifecycle (start, close, the broker and the ASGI entry are BrokerApp's) -----------

    async def _start_parts(self) -> None:
        """Start the companion app's care."""
        if self.companion is not None:
            await self.companion.start()
        self._reopen_streams()
        log.info("micro proxy: registry %s", self.registry.name)

    def end_streams(self) -> None:
        """End every open WebSocket (watch, stream, subscription) now, and any opened later:
        a stream is cancelled on its service, an unacknowledged message is given back to the
        broker. Call it when the server begins to shut down. Never raises."""
        self.streams.end()

    async def _close_parts(self) -> None:
        """End the sockets, stop the companion, close the gateway and the broker if the
        proxy built it; never raises."""
        self.end_streams()
        if self.companion is not None:
            with contextlib.suppress(Exception):
                await self.companion.close()
        with contextlib.suppress(Exception):
            await self.gateway.close()
        await self._close_broker()

    async def close_socket(self, ws: WebSocket) -> None:
        """Close ``ws`` if it is still open: 1000, or 1001 when the proxy is stopping."""
        with contextlib.suppress(Exception):
            if ws.application_state == WebSocketState.CONNECTED:
                await ws.close(code=1001 if self.streams.ended else 1000)

    # -- ASGI -------------------------------------------------------------------------------

    def _stacks(self) -> tuple[ASGIApp, ASGIApp]:
        """The middleware of HTTP requests, and of WebSockets (which also make refusals
        readable): only the layers the options turn on, so that one turned off costs a
        request nothing."""
        opts = self.options
        app: ASGIApp = self._dispatch
        if self.auth is not None:
            app = Auth(app, check=self.auth, exempt=frozenset(opts.auth_exempt))
        app = HeaderCheck(self._rate_limit(app))
        sockets: ASGIApp = WebSocketRefusals(app)
        if opts.access_log:
            app, sockets = AccessLog(app, access_log), AccessLog(sockets, access_log)
        return app, sockets

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        if scope["type"] == "websocket":
            ws = WebSocket(scope, receive, send)
            socket_route = self._sockets.get(path)
            if socket_route is None:
                await ws_fail(ws, _no_route(path, websocket=True))
                return
            await socket_route(self, ws)
            return
        route = self._http.get(path)
        if route is None:
            await reply_error(send, _no_route(path, websocket=False))
            return
        await route(self, scope, receive, send)

    async def health(self) -> tuple[int, dict[str, Any]]:
        """The ``/health`` answer: status and body (503 while the companion app is down)."""
        body: dict[str, Any] = {
            "status": "ok",
            "version": micro.__version__,
            "registry": self.registry.name,
            # what the broker keeps (the laptop's ProxyBroker adopts it): built, not connected
            "broker": {
                "name": self.broker.name,
                "capabilities": sorted(self.broker.capabilities),
            },
        }
        status = 200
        if self.companion is not None:
            app = dict(self.companion.status())
            body["app"] = app
            if not app.get("healthy", True):
                body["status"], status = "unhealthy", 503
        return status, body


def _no_route(path: str, *, websocket: bool) -> MicroError:
    if websocket and path == "/health":
        return MicroError("/health answers HTTP only", id=PROXY_ID, code=405)
    return NotFound(f"nothing at {path}: the proxy serves /registry, /rpc, /broker", id=PROXY_ID)


async def _health(app: ProxyApp, scope: Scope, receive: Receive, send: Send) -> None:
    if scope["method"] not in ("GET", "HEAD"):
        err = MethodNotAllowed(f"{scope['method']} not allowed on /health", id=PROXY_ID)
        await reply_error(send, err, allow="GET")
        return
    status, body = await app.health()
    await json_reply(send, encode(body), status)


def _companion(settings: Settings, registry: Registry) -> Any:
    """The companion app's keeper the settings ask for (``--server-name``...), else None."""
    try:
        module = importlib.import_module("micro.toolkit.proxy.companion")
    except ModuleNotFoundError as exc:  # a build without companion mode
        if exc.name != "micro.toolkit.proxy.companion":
            raise
        return None
    return module.Companion.from_settings(settings, registry)
