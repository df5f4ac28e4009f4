"""Service: a named unit that serves handlers and calls other services.

It composes a registry, a selector, a transport, a broker, a server and a client from the
settings of :mod:`micro.settings`: code, command-line flags and ``MICRO_*`` environment
variables, in that order of precedence (code beats flags, flags beat env, env beats
defaults), read once and passed down::

    service = micro.Service("greeter", version="1.0.0")
    service.handle(Greeter())

    @service.subscribe("user.created", queue="greeter")
    async def on_user_created(event: UserCreated) -> None: ...

    service.run()          # registers, serves, re-registers, drains on SIGTERM/SIGINT

Nothing starts in the constructor; ``start()``/``stop()`` (or ``async with service``) run it
inside an existing event loop, and ``run()`` owns a loop of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar, overload

from micro import plugins
from micro.broker import Broker
from micro.client import CallWrapper, PublishWrapper
from micro.registry import Registry
from micro.selector import Selector
from micro.server import HandlerWrapper, SubscriberWrapper
from micro.settings import SERVICE_GROUPS, Settings, SettingsError, load, parse_flags
from micro.transport import Transport

if TYPE_CHECKING:
    from micro.client.resilience import (
        BreakerPolicy,
        BulkheadPolicy,
        HedgePolicy,
        RetryBudgetPolicy,
    )
    from micro.client.rpc import RpcClient
    from micro.observability import Observability
    from micro.server.rpc import RpcServer

__all__ = ["Service"]

log = logging.getLogger("micro.service")

Hook = Callable[[], Awaitable[None] | None]
S = TypeVar("S")
B = TypeVar("B")


class Service:
    """A named service: its handlers, its server and a client for onward calls.

    Args:
        name: the registered name (flag ``--server_name`` / ``MICRO_SERVER_NAME`` otherwise).
        version: registered version.
        address: ``host:port`` to bind (``127.0.0.1:0`` picks a free port on loopback).
        advertise: ``host:port`` to register instead of the bound address.
        metadata: node metadata added to the registry entry.
        registry, selector, transport, broker: a backend instance or name (see
            ``micro.plugins``); the broker defaults to ``http``.
        content_type: content type of calls made with :attr:`client`.
        register_ttl, register_interval: seconds or durations like ``"1m"`` (60 s, 30 s).
        wrappers: handler wrappers (server middleware), outermost first.
        subscriber_wrappers: subscriber wrappers, outermost first.
        call_wrappers: client call wrappers, outermost first.
        grace: seconds (or a duration) in-flight requests get to finish on stop (10).
        handle_signals: ``run()`` stops on SIGTERM/SIGINT.
        max_in_flight: server load shedding: calls handled at once, past it 503 at once
            (``MICRO_RESILIENCE_MAX_IN_FLIGHT``; 0: no limit).
        rate_limit: server calls per second per caller, past it 429
            (``MICRO_RESILIENCE_RATE_LIMIT``; 0: no limit).
        breaker, bulkhead, retry_budget, hedge: the client's resilience options (see
            :class:`micro.client.rpc.RpcClient`); all are described in
            ``docs/resilience.md``.
        tracing: OpenTelemetry spans and ``traceparent`` propagation: True, False, or
            ``"auto"`` (the default: on when ``OTEL_*`` asks for traces); needs ``micro[otel]``.
        tracer_provider: the OpenTelemetry ``TracerProvider`` spans go to (turns tracing on;
            default: the global one, else an SDK one configured from ``OTEL_*``).
        metrics_address: ``host:port`` to serve Prometheus ``/metrics`` on (``micro[metrics]``).
        request_log: ``"json"`` or ``"text"``: one ``micro.request`` log line per request.
        server: the protocol served: ``mucp`` (default), ``grpc`` (see :mod:`micro.grpc`),
            or ``mucp,grpc``: both, on two ports (the gRPC one at the ``grpc_address``
            setting), each registering its node.

    Observability wrappers (docs/observability.md) run outside the ones given here; with all
    three off, none is installed.
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        version: str | None = None,
        address: str | None = None,
        advertise: str | None = None,
        metadata: Mapping[str, str] | None = None,
        registry: Registry | str | None = None,
        selector: Selector | str | None = None,
        transport: Transport | str | None = None,
        broker: Broker | str | None = None,
        content_type: str | None = None,
        register_ttl: float | str | None = None,
        register_interval: float | str | None = None,
        wrappers: Sequence[HandlerWrapper] = (),
        call_wrappers: Sequence[CallWrapper] = (),
        subscriber_wrappers: Sequence[SubscriberWrapper] = (),
        grace: float | str | None = None,
        handle_signals: bool = True,
        max_in_flight: int | None = None,
        rate_limit: float | None = None,
        breaker: BreakerPolicy | bool | None = None,
        bulkhead: BulkheadPolicy | int | None = None,
        retry_budget: RetryBudgetPolicy | bool | None = None,
        hedge: HedgePolicy | None = None,
        tracing: bool | str | None = None,
        tracer_provider: Any = None,
        metrics_address: str | None = None,
        request_log: str | None = None,
        server: str | None = None,
    ) -> None:
        self._code: dict[str, Any] = {
            "server": server,
            "server_name": name,
            "server_version": version,
            "server_address": address,
            "server_advertise": advertise,
            "registry": registry,
            "selector": selector,
            "transport": transport,
            "broker": broker,
            "content_type": content_type,
            "register_ttl": register_ttl,
            "register_interval": register_interval,
            "server_grace": grace,
            "resilience_max_in_flight": max_in_flight,
            "resilience_rate_limit": rate_limit,
            "tracing": ("on" if tracing else "off") if isinstance(tracing, bool) else tracing,
            "metrics_address": metrics_address,
            "request_log": request_log,
        }
        self._resilience: dict[str, Any] = {
            "breaker": breaker,
            "bulkhead": bulkhead,
            "retry_budget": retry_budget,
            "hedge": hedge,
        }
        self._tracer_provider = tracer_provider
        self.observability: Observability | None = None
        """What this service observes (None when tracing, metrics and logs are all off)."""
        self._flags: dict[str, str] = {}
        self._settings: Settings | None = None
        self._metadata = dict(metadata or {})
        self._wrappers = list(wrappers)
        self._call_wrappers = list(call_wrappers)
        self._handlers: list[tuple[object, dict[str, Any]]] = []
        self._sub_wrappers = list(subscriber_wrappers)
        self._subscribers: list[tuple[str, object, dict[str, Any]]] = []
        self._own_broker = False
        self.handle_signals = handle_signals
        self.hooks: dict[str, list[Hook]] = {
            "before_start": [],
            "after_start": [],
            "before_stop": [],
            "after_stop": [],
        }
        self._built: tuple[RpcServer, RpcClient, Broker] | None = None
        self._also: list[RpcServer] = []  # the gRPC server when serving both protocols
        self._owned: list[Any] = []
        self._started = False

    # -- configuration -------------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        """The resolved settings (code > flags > env > defaults), read once.

        Raises:
            SettingsError: a flag or env var has a value that does not parse.
        """
        if self._settings is None:
            self._settings = load(groups=SERVICE_GROUPS, flags=self._flags, code=self._code)
        return self._settings

    @property
    def grace(self) -> float:
        """Seconds in-flight requests get to finish on stop."""
        return float(self.settings["server_grace"])

    @property
    def name(self) -> str:
        name = self.settings["server_name"]
        if not name:
            raise SettingsError("a service needs a name: Service('greeter') or --server-name")
        return str(name)

    def handle(self, handler: object, **options: Any) -> None:
        """Serve the public methods of ``handler`` as ``Handler.Method`` endpoints."""
        self._handlers.append((handler, options))
        if self._built is not None:
            for server in self.servers:
                server.handle(handler, **options)

    @overload
    def subscribe(
        self, topic: str, subscriber: None = None, *, queue: str | None = ..., auto_ack: bool = ...
    ) -> Callable[[S], S]: ...

    @overload
    def subscribe(
        self, topic: str, subscriber: S, *, queue: str | None = ..., auto_ack: bool = ...
    ) -> S: ...

    def subscribe(
        self,
        topic: str,
        subscriber: Any = None,
        *,
        queue: str | None = None,
        auto_ack: bool = True,
    ) -> Any:
        """Receive ``topic``'s events: ``service.subscribe(topic, fn_or_obj)`` or a decorator.

        The event is decoded into the first parameter's annotation (as handlers' requests
        are); a parameter annotated :class:`micro.broker.Event` gets the raw event. With
        ``queue`` the group's members share the events (each to one member); without, every
        subscriber gets each. ``auto_ack=False`` leaves ``ack()`` to the subscriber. The
        subscribers are listed in the registry entry (``subscriber=true``, ``topic``).

        Raises:
            TypeError: the signature cannot be served (raised at once).
        """
        from micro.server._subscriber import introspect_subscriber

        def add(target: S) -> S:
            options: dict[str, Any] = {"queue": queue, "auto_ack": auto_ack}
            introspect_subscriber(topic, target, queue=queue, auto_ack=auto_ack)  # fail early
            self._subscribers.append((topic, target, options))
            if self._built is not None:
                self._built[0].subscribe(topic, target, **options)
            return target

        if subscriber is None:
            return add
        return add(subscriber)

    def hook(self, when: str) -> Callable[[Hook], Hook]:
        """Decorator: run a function at ``before_start``, ``after_start``, ``before_stop``…"""

        def add(fn: Hook) -> Hook:
            self.hooks[when].append(fn)
            return fn

        return add

    # -- components ----------------------------------------------------------------------

    def _make_broker(self, registry: Registry) -> Broker:
        s = self.settings
        if s["broker"] is not None and not isinstance(s["broker"], str):
            chosen: Broker = s["broker"]
            return chosen
        address = None
        host = s["server_address"].rpartition(":")[0]
        http = (s["broker"] or plugins.DEFAULTS["broker"]) == "http"
        if http and not s["broker_address"] and host:
            address = f"{host}:0"  # the http broker listens where the server does
        broker = plugins.create_broker(registry=registry, settings=s, address=address)
        self._own_broker = not plugins.is_shared(broker)
        return broker

    def _backend(self, kind: str, create: Callable[[], B]) -> B:
        """The ``kind`` backend given in code, else ``create()``'s (closed on stop)."""
        chosen = self.settings[kind]
        if chosen is not None and not isinstance(chosen, str):
            given: B = chosen
            return given
        backend = create()
        if not plugins.is_shared(backend):
            self._owned.append(backend)
        return backend

    def _build(self) -> tuple[RpcServer, RpcClient, Broker]:
        """The server, client and broker, built from the settings on first use."""
        if self._built is None:
            self._built = self._assemble()
        return self._built

    def _assemble(self) -> tuple[RpcServer, RpcClient, Broker]:
        from micro.client.rpc import RpcClient

        s = self.settings
        protocols = _protocols(s["server"])
        registry = self._backend("registry", lambda: plugins.create("registry", settings=s))
        transport = self._backend("transport", lambda: plugins.create("transport", settings=s))
        selector = self._backend(
            "selector", lambda: plugins.create("selector", settings=s, registry=registry)
        )
        broker = self._make_broker(registry)
        obs = self._observe(broker)
        wrappers, call_wrappers = self._wrappers, self._call_wrappers
        sub_wrappers: list[SubscriberWrapper] = self._sub_wrappers
        publish_wrappers: list[PublishWrapper] = []
        if obs is not None:  # outermost, so that spans and timings cover the user's wrappers
            wrappers = [*obs.handler_wrappers(), *wrappers]
            call_wrappers = [*obs.call_wrappers(), *call_wrappers]
            sub_wrappers = [*obs.subscriber_wrappers(), *sub_wrappers]
            publish_wrappers = obs.publish_wrappers()
        options: dict[str, Any] = {
            "name": self.name,
            "version": s["server_version"],
            "metadata": self._metadata,
            "transport": transport,
            "registry": registry,
            "broker": broker,
            "register_ttl": s["register_ttl"],
            "register_interval": s["register_interval"],
            "wrappers": wrappers,
            "subscriber_wrappers": sub_wrappers,
            "grace": self.grace,
            "settings": s,
        }
        server = _server(protocols[0], options)
        self._also = []
        if len(protocols) > 1:
            host = s["server_address"].rpartition(":")[0]
            address = s["grpc_address"] or f"{host}:0"
            self._also.append(_server("grpc", {**options, "address": address}))
        for handler, handler_options in self._handlers:
            for each in (server, *self._also):
                each.handle(handler, **handler_options)
        for topic, target, sub_options in self._subscribers:
            server.subscribe(topic, target, **sub_options)
        client = RpcClient(
            broker=broker,
            registry=registry,
            selector=selector,
            transport=transport,
            wrappers=call_wrappers,
            publish_wrappers=publish_wrappers,
            from_service=self.name,
            settings=s,
            **self._resilience,
        )
        server.debug.sources.append(client.resilience_stats)
        if obs is not None:
            server.debug.latency = obs.latency
            obs.watch(lambda: (getattr(client, "_pool", None), client.selector))
            obs.watch_resilience(server.debug.resilience)
        return server, client, broker

    def _observe(self, broker: Broker) -> Observability | None:
        """Tracing, metrics and request logs as the settings ask (None: all off)."""
        from micro.observability import setup

        def address() -> str:
            return self._built[0].address if self._built is not None else ""

        self.observability = setup(
            self.settings,
            service=self.name,
            tracer_provider=self._tracer_provider,
            address=address,
            broker=broker.name,
        )
        return self.observability

    @property
    def server(self) -> RpcServer:
        """The :class:`micro.server.rpc.RpcServer` (built on first use)."""
        return self._build()[0]

    @property
    def servers(self) -> list[RpcServer]:
        """Every server of the service: the mucp one, the gRPC one, or both."""
        return [self._build()[0], *self._also]

    @property
    def client(self) -> RpcClient:
        """A :class:`micro.Client` sharing this service's registry, selector and transport."""
        return self._build()[1]

    @property
    def broker(self) -> Broker:
        """The :class:`micro.broker.Broker` of this service (built on first use)."""
        return self._build()[2]

    # -- lifecycle -----------------------------------------------------------------------

    async def _run_hooks(self, when: str) -> None:
        for fn in self.hooks[when]:
            result = fn()
            if inspect.isawaitable(result):
                await result

    async def start(self) -> None:
        """Start serving: bind, register, begin re-registering."""
        if self._started:
            return
        server, _, _ = self._build()
        await self._run_hooks("before_start")
        await server.start()
        for other in self._also:
            try:
                await other.start()
            except BaseException:
                await server.stop(grace=0)
                raise
        if self.observability is not None:
            try:
                await self.observability.start()
            except BaseException:
                await asyncio.gather(*(each.stop(grace=0) for each in (server, *self._also)))
                raise
        self._started = True  # the server logs where it serves
        await self._run_hooks("after_start")

    async def stop(self) -> None:
        """Deregister, drain in-flight requests (up to ``grace`` s), release everything."""
        if not self._started:
            return
        self._started = False
        server, client, broker = self._build()
        await self._run_hooks("before_stop")
        await asyncio.gather(*(each.stop(grace=self.grace) for each in (server, *self._also)))
        await client.close()
        if self.observability is not None:
            await self.observability.close()
        if self._own_broker:
            with contextlib.suppress(Exception):  # stop() never raises: a broker gone is fine
                await broker.disconnect()
        for backend in reversed(self._owned):
            with contextlib.suppress(Exception):  # stop() never raises: release the rest
                await backend.close()
        self._owned.clear()
        await self._run_hooks("after_stop")

    async def __aenter__(self) -> Service:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def serve(self, stop: asyncio.Event | None = None) -> None:
        """Start, wait for ``stop`` (or SIGTERM/SIGINT when handling signals), then stop."""
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        if self.handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
                installed.append(sig)
        try:
            await self.start()
            await stop.wait()
            log.info("service %s stopping", self.name)
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            await self.stop()

    def run(self, argv: Sequence[str] | None = None) -> None:
        """Parse flags, then serve until SIGTERM/SIGINT in a new event loop (uvloop if present).

        When the program has not configured logging, micro's own log lines (where it serves,
        when it stops) go to stderr at INFO, as a command-line server's should.

        A configuration error (a bad flag or env value, an unknown backend, a bad address)
        exits with status 2 and a runtime failure to start (port in use, registry out of
        reach) with status 1, each as one line on stderr: ``<prog>: error: <what>``.
        """
        from micro.errors import MicroError

        prog = _prog()
        self._flags = parse_flags(argv, prog=prog)
        self._settings = None
        default_logging()
        try:
            self._build()
        except (SettingsError, MicroError, ValueError) as exc:
            _exit(prog, 2, exc)
        try:
            run_loop(self.serve())
        except ValueError as exc:
            _exit(prog, 2, exc)
        except (MicroError, OSError) as exc:
            _exit(prog, 1, exc)


def _protocols(text: str) -> list[str]:
    """The protocols of the ``server`` setting, the first one being the primary server's.

    Raises:
        SettingsError: a protocol other than mucp and grpc, or none.
    """
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names or any(name not in ("mucp", "grpc") for name in names):
        raise SettingsError(f"server {text!r}: expected mucp, grpc or mucp,grpc")
    return list(dict.fromkeys(names))


def _server(protocol: str, options: dict[str, Any]) -> RpcServer:
    if protocol == "mucp":
        from micro.server.rpc import RpcServer

        return RpcServer(**options)
    try:
        from micro.grpc.server import GrpcServer
    except ImportError as exc:
        from micro.errors import PluginNotFound

        raise PluginNotFound(
            f"the gRPC server is not available ({exc}); install it with: "
            f"{plugins.install_hint('grpc')}",
            id="go.micro.plugins",
        ) from exc
    return GrpcServer(**options)


def _prog() -> str:
    return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "service"


def _exit(prog: str, status: int, exc: BaseException) -> NoReturn:
    detail = getattr(exc, "detail", None) or str(exc) or type(exc).__name__
    print(f"{prog}: error: {detail}", file=sys.stderr)
    raise SystemExit(status)


def default_logging() -> None:
    """Send the ``micro`` loggers to stderr at INFO, unless logging is already configured."""
    root, own = logging.getLogger(), logging.getLogger("micro")
    if root.handlers or own.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    own.addHandler(handler)
    if own.level == logging.NOTSET:
        own.setLevel(logging.INFO)


def run_loop(main: Awaitable[None]) -> None:
    """``asyncio.run`` with uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)  # type: ignore[arg-type]
        return
    uvloop.run(main)  # type: ignore[arg-type]
