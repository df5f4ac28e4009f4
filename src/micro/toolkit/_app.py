"""The lifecycle the toolkit's ASGI apps share (``micro api``'s ``Gateway``, ``micro
web``'s ``Dashboard``, ``micro proxy``'s ``ProxyApp``).

:class:`ToolkitApp`: the registry, selector and client given, else built and owned; an
idempotent :meth:`~ToolkitApp.start` on the ASGI lifespan event or the first request; a
:meth:`~ToolkitApp.close` that releases what was built, last built first. :class:`BrokerApp`
adds, for the dashboard and the proxy, a broker built on first use and connected once, and
the open streams that end when the server begins to shut down.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from starlette.types import ASGIApp, Receive, Scope, Send

import micro
from micro import plugins
from micro.broker import Broker
from micro.client import Client
from micro.observability import setup
from micro.registry import Registry
from micro.selector import Selector
from micro.settings import Settings, load
from micro.toolkit._options import AppOptions
from micro.toolkit.api._http import lifespan, read_body
from micro.toolkit.api.middleware import RateLimit
from micro.toolkit.web._context import Streams

if TYPE_CHECKING:
    from micro.observability._asgi import ObservedHttp

__all__ = ["BrokerApp", "ToolkitApp"]

Options = TypeVar("Options", bound=AppOptions)


class ToolkitApp(Generic[Options]):
    """A toolkit app's backends and lifecycle. A subclass sets ``_app`` (its middleware
    stack; ``_socket_app`` too when WebSockets take another) and adds its own parts to
    start and close in :meth:`_start_parts` and :meth:`_close_parts`."""

    client: Client
    _app: ASGIApp
    _socket_app: ASGIApp | None = None

    def __init__(
        self,
        options: Options,
        settings: Settings | None,
        groups: Sequence[str],
        registry: Registry | None,
        selector: Selector | None,
    ) -> None:
        """Check ``options``; use ``settings`` (None: those of ``groups``, read from the
        environment now), ``registry`` and ``selector``, building (and owning) the missing."""
        options.check()
        self.options: Options = options
        self.settings = settings = settings if settings is not None else load(groups=groups)
        self._owned: list[Any] = []
        if registry is None:
            registry = plugins.create("registry", options.registry, settings=settings)
            self._own(registry)
        if selector is None:
            selector = plugins.create("selector", settings=settings, registry=registry)
            self._own(selector)
        self.registry: Registry = registry
        self.selector: Selector = selector
        self._start_lock: asyncio.Lock | None = None
        self._started = False
        self._observed_name = _app_name(type(self))
        self._observed_app: ObservedHttp | None = None
        self.observability = setup(settings, service=self._observed_name)
        """Tracing, metrics and request logs (the ``observability`` settings; None: off)."""

    def _client(self, client: Client | None, **options: Any) -> Client:
        """``client``, else one over the registry and selector with ``options`` (owned)."""
        if client is None:
            obs = self.observability
            if obs is not None:
                options.setdefault("wrappers", obs.call_wrappers())
                options.setdefault("publish_wrappers", obs.publish_wrappers())
            client = micro.Client(
                registry=self.registry,
                selector=self.selector,
                timeout=self.options.timeout,
                settings=self.settings,
                **options,
            )
            if obs is not None:
                built = client
                obs.watch(lambda: (getattr(built, "_pool", None), self.selector))
            self._own(client)
        return client

    def _own(self, backend: Any) -> None:
        """Close ``backend`` with this app, unless it is a per-process memory backend that
        :func:`micro.plugins.create` shares by name (it outlives us, as a service's does)."""
        if not plugins.is_shared(backend):
            self._owned.append(backend)

    async def start(self) -> None:
        """Start the registry, selector and client, then the app's own parts (idempotent)."""
        if self._started:
            return
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._started:
                return
            await self.registry.start()
            await self.selector.start()
            await self.client.start()
            await self._start_parts()
            if self.observability is not None:
                await self.observability.start()
            self._started = True

    async def close(self) -> None:
        """Close the app's own parts, then what it built (the client, the selector, then
        the registry); never raises."""
        self._started = False
        await self._close_parts()
        if self.observability is not None:
            await self.observability.close()
        for backend in reversed(self._owned):
            with contextlib.suppress(Exception):
                await backend.close()

    async def _start_parts(self) -> None:
        """Start what the app adds, once the backends run."""

    async def _close_parts(self) -> None:
        """Close what the app adds, before the backends; never raises."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send, self.start, self.close)
            return
        if not self._started:
            await self.start()
        if scope["type"] == "websocket" and self._socket_app is not None:
            await self._socket_app(scope, receive, send)
            return
        if self._observed is not None:
            await self._observed(scope, receive, send)
            return
        await self._app(scope, receive, send)

    @property
    def _observed(self) -> ASGIApp | None:
        """``_app`` inside the observability middleware (None when all is off)."""
        if self.observability is None:
            return None
        wrapped = self._observed_app
        if wrapped is None or wrapped.app is not self._app:  # set_auth replaces _app
            from micro.observability._asgi import ObservedHttp

            wrapped = ObservedHttp(self._app, self.observability, self._observed_name)
            self._observed_app = wrapped
        return wrapped

    def _rate_limit(self, app: ASGIApp) -> ASGIApp:
        """``app`` behind the options' rate limit per client address (none: ``app``)."""
        opts = self.options
        if opts.rate_limit <= 0:
            return app
        burst = opts.rate_burst or max(1, int(opts.rate_limit))
        return RateLimit(app, rate=opts.rate_limit, burst=burst)


def _app_name(cls: type) -> str:
    """``micro-api``, ``micro-web``, ``micro-proxy``: the name spans and metrics give an app."""
    parts = cls.__module__.split(".")
    if len(parts) > 2 and parts[:2] == ["micro", "toolkit"]:
        return f"micro-{parts[2]}"
    return f"micro-{cls.__name__.lower()}"


class BrokerApp(ToolkitApp[Options]):
    """A toolkit app that also publishes and subscribes (the dashboard, the proxy) and holds
    open streams (WebSockets, event streams) that must end when the server shuts down."""

    def _init_streaming(self, broker: Broker | None, *, owned: bool) -> None:
        """Publish through ``broker`` (None: one built on first use; ``owned``: disconnect
        it on :meth:`close`) and keep the open streams in ``streams``. Call it once, from
        ``__init__``."""
        self._broker = broker
        self._broker_owned = owned
        self._broker_lock: asyncio.Lock | None = None
        self.streams = Streams()

    @property
    def broker(self) -> Broker:
        """The broker, built on first use from the settings (as a service's);
        :meth:`connected_broker` also connects it."""
        if self._broker is None:
            self._broker = plugins.create_broker(settings=self.settings, registry=self.registry)
            self._broker_owned = True
        return self._broker

    async def connected_broker(self) -> Broker:
        """:attr:`broker`, connected (once, however many requests ask at the same time).

        Raises:
            BrokerError: the broker cannot be reached.
        """
        if self._broker_lock is None:
            self._broker_lock = asyncio.Lock()
        async with self._broker_lock:
            broker = self.broker
            await broker.connect()
        return broker

    async def read_body(self, scope: Scope, receive: Receive) -> bytes:
        """The request body within the size limit and read timeout (413, 408 beyond)."""
        opts = self.options
        return await read_body(scope, receive, limit=opts.max_body, timeout=opts.read_timeout)

    def _reopen_streams(self) -> None:
        """Started again after :meth:`close`: streams may open again."""
        if self.streams.ended:
            self.streams = Streams()

    async def _close_broker(self) -> None:
        """Disconnect the broker if the app built it; never raises. The next use builds it
        again, unless the client holds it (it stays the client's)."""
        if self._broker is None or not self._broker_owned:
            return
        with contextlib.suppress(Exception):
            await self._broker.disconnect()
        if self._broker is not getattr(self.client, "broker", None):
            self._broker, self._broker_owned = None, False
