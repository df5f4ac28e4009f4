"""Service: a named unit that serves handlers and calls other services.

It composes a registry, a selector, a transport, a broker, a server and a client from code,
command-
line flags and ``MICRO_*`` environment variables, in that order of precedence (code beats
flags, flags beat env, env beats defaults)::

    service = micro.Service("greeter", version="1.0.0")
    service.handle(Greeter())

    @service.subscribe("user.created", queue="greeter")
    async def on_user_created(event: UserCreated) -> None: ...

    service.run()          # registers, serves, re-registers, drains on SIGTERM/SIGINT

Nothing starts in the constructor; ``start()``/``stop()`` (or ``async with service``) run it
inside an existing event loop, and ``run()`` owns a loop of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar, overload

from micro import plugins
from micro.broker import Broker
from micro.registry import Registry
from micro.selector import Selector
from micro.transport import Transport

__all__ = ["FLAGS", "Service", "parse_flags"]

log = logging.getLogger("micro.service")

Hook = Callable[[], Awaitable[None] | None]
S = TypeVar("S")

# flag name -> (env var suffix, help); every flag also reads MICRO_<SUFFIX>
FLAGS: dict[str, tuple[str, str]] = {
    "server_name": ("SERVER_NAME", "name of the service (default: the name given in code)"),
    "server_version": ("SERVER_VERSION", "version to register (default: latest)"),
    "server_address": ("SERVER_ADDRESS", "address to bind, host:port (default :0)"),
    "server_advertise": ("SERVER_ADVERTISE", "address to put in the registry"),
    "registry": ("REGISTRY", "registry backend: " + ", ".join(plugins.TABLE["registry"])),
    "registry_address": ("REGISTRY_ADDRESS", "comma-separated registry addresses"),
    "selector": ("SELECTOR", "selector backend (default: registry, round robin)"),
    "transport": ("TRANSPORT", "transport backend: " + ", ".join(plugins.TABLE["transport"])),
    "broker": ("BROKER", "broker backend: " + ", ".join(plugins.TABLE["broker"])),
    "broker_address": ("BROKER_ADDRESS", "comma-separated broker addresses"),
    "content_type": ("CONTENT_TYPE", "content type of outgoing calls (default application/json)"),
    "register_ttl": ("REGISTER_TTL", "seconds a registration lives without refresh (60)"),
    "register_interval": ("REGISTER_INTERVAL", "seconds between re-registrations (30)"),
    "client_request_timeout": ("CLIENT_REQUEST_TIMEOUT", "call timeout, e.g. 5s or 500ms"),
    "client_retries": ("CLIENT_RETRIES", "retries per call on 408/500/connection errors (1)"),
    "client_pool_size": ("CLIENT_POOL_SIZE", "idle connections kept per address (100)"),
    "mdns_interfaces": ("MDNS_INTERFACES", "comma-separated addresses mDNS may use"),
}


def parse_flags(argv: Sequence[str] | None = None, *, prog: str | None = None) -> dict[str, str]:
    """Parse go-micro style flags (``--registry mdns``); only the flags given are returned."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run a micro service. Every flag can also be set with its MICRO_* env var.",
        argument_default=argparse.SUPPRESS,
    )
    for flag, (suffix, text) in FLAGS.items():
        parser.add_argument(f"--{flag}", metavar=suffix, help=f"{text} [MICRO_{suffix}]")
    return {k: str(v) for k, v in vars(parser.parse_args(argv)).items()}


def _seconds(value: str, what: str) -> float:
    """Seconds from ``"30"``, ``"30s"``, ``"500ms"``, ``"1m"``."""
    text = value.strip().lower()
    for suffix, scale in (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        if text.endswith(suffix) and text[: -len(suffix)].replace(".", "", 1).isdigit():
            return float(text[: -len(suffix)]) * scale
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{what}: {value!r} is not a duration (try 30, 30s or 500ms)") from None


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
        register_ttl, register_interval: seconds (defaults 60 and 30).
        wrappers: handler wrappers (server middleware), outermost first.
        subscriber_wrappers: subscriber wrappers, outermost first.
        call_wrappers: client call wrappers, outermost first.
        grace: seconds in-flight requests get to finish on stop.
        handle_signals: ``run()`` stops on SIGTERM/SIGINT.
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
        register_ttl: float | None = None,
        register_interval: float | None = None,
        wrappers: Sequence[Any] = (),
        call_wrappers: Sequence[Any] = (),
        subscriber_wrappers: Sequence[Any] = (),
        grace: float = 10.0,
        handle_signals: bool = True,
    ) -> None:
        self._code: dict[str, Any] = {
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
        }
        self._flags: dict[str, str] = {}
        self._metadata = dict(metadata or {})
        self._wrappers = list(wrappers)
        self._call_wrappers = list(call_wrappers)
        self._handlers: list[tuple[object, dict[str, Any]]] = []
        self._sub_wrappers = list(subscriber_wrappers)
        self._subscribers: list[tuple[str, object, dict[str, Any]]] = []
        self._broker: Any = None
        self._own_broker = False
        self.grace = grace
        self.handle_signals = handle_signals
        self.hooks: dict[str, list[Hook]] = {
            "before_start": [],
            "after_start": [],
            "before_stop": [],
            "after_stop": [],
        }
        self._server: Any = None
        self._client: Any = None
        self._owned: list[Any] = []
        self._started = False

    # -- configuration -------------------------------------------------------------------

    def option(self, key: str, default: Any = None) -> Any:
        """One setting, resolved code > flag > env > ``default``."""
        value = self._code.get(key)
        if value is None:
            value = self._flags.get(key)
        if value is None:
            value = os.environ.get(f"MICRO_{FLAGS[key][0]}") or None
        return default if value is None else value

    @property
    def name(self) -> str:
        name = self.option("server_name")
        if not name:
            raise ValueError("a service needs a name: Service('greeter') or --server_name")
        return str(name)

    def handle(self, handler: object, **options: Any) -> None:
        """Serve the public methods of ``handler`` as ``Handler.Method`` endpoints."""
        self._handlers.append((handler, options))
        if self._server is not None:
            self._server.handle(handler, **options)

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
            if self._server is not None:
                self._server.subscribe(topic, target, **options)
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

    def _make_broker(self, registry: Registry) -> Any:
        chosen = self.option("broker")
        if chosen is not None and not isinstance(chosen, str):
            return chosen
        broker = plugins.create_broker(
            chosen, registry=registry, address=self.option("broker_address")
        )
        self._own_broker = not plugins.is_shared(broker)
        return broker

    def _backend(self, kind: str) -> Any:
        chosen = self.option(kind)
        if chosen is not None and not isinstance(chosen, str):
            return chosen
        options: dict[str, Any] = {}
        if kind == "registry" and (addr := self.option("registry_address")):
            options["address"] = addr
        backend = plugins.create(kind, chosen, **options)
        if not plugins.is_shared(backend):
            self._owned.append(backend)
        return backend

    def _build(self) -> None:
        if self._server is not None:
            return
        from micro.client.rpc import RpcClient
        from micro.server.rpc import RpcServer

        if ifaces := self._flags.get("mdns_interfaces"):
            os.environ["MICRO_MDNS_INTERFACES"] = ifaces
        registry = self._backend("registry")
        transport = self._backend("transport")
        selector = self.option("selector")
        if not isinstance(selector, Selector):
            selector = plugins.create("selector", selector, registry=registry)
            self._owned.append(selector)  # closed first: it watches the registry
        self._broker = broker = self._make_broker(registry)
        server_options: dict[str, Any] = {
            "name": self.name,
            "broker": broker,
            "subscriber_wrappers": self._sub_wrappers,
            "version": self.option("server_version", "latest"),
            "metadata": self._metadata,
            "transport": transport,
            "registry": registry,
            "register_ttl": _seconds(str(self.option("register_ttl", 60)), "register_ttl"),
            "register_interval": _seconds(
                str(self.option("register_interval", 30)), "register_interval"
            ),
            "wrappers": self._wrappers,
            "grace": self.grace,
        }
        for key, opt in (("address", "server_address"), ("advertise", "server_advertise")):
            if value := self.option(opt):
                server_options[key] = value
        self._server = RpcServer(**server_options)
        for handler, options in self._handlers:
            self._server.handle(handler, **options)
        for topic, target, sub_options in self._subscribers:
            self._server.subscribe(topic, target, **sub_options)
        self._client = RpcClient(
            broker=broker,
            registry=registry,
            selector=selector,
            transport=transport,
            content_type=self.option("content_type"),
            wrappers=self._call_wrappers,
            from_service=self.name,
        )

    @property
    def server(self) -> Any:
        """The :class:`micro.server.rpc.RpcServer` (built on first use)."""
        self._build()
        return self._server

    @property
    def broker(self) -> Any:
        """The :class:`micro.broker.Broker` of this service (built on first use)."""
        self._build()
        return self._broker

    @property
    def client(self) -> Any:
        """A :class:`micro.Client` sharing this service's registry, selector and transport."""
        self._build()
        return self._client

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
        self._build()
        await self._run_hooks("before_start")
        await self._server.start()
        self._started = True  # the server logs where it serves
        await self._run_hooks("after_start")

    async def stop(self) -> None:
        """Deregister, drain in-flight requests (up to ``grace`` s), release everything."""
        if not self._started:
            return
        self._started = False
        await self._run_hooks("before_stop")
        await self._server.stop(grace=self.grace)
        await self._client.close()
        if self._own_broker:
            with contextlib.suppress(Exception):
                await self._broker.disconnect()
        for backend in reversed(self._owned):
            with contextlib.suppress(Exception):
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
        """
        self._flags = parse_flags(argv)
        default_logging()
        run_loop(self.serve())


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
