"""``RpcServer``: go-micro's "mucp" server over any :class:`~micro.transport.Transport`.

This module holds the lifecycle: options, handlers, registration with TTL and re-registration,
and the graceful stop. Serving the connections is :mod:`micro.server._router`'s job; the
wire behaviour and the error table are in ``docs/protocol.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from micro import plugins
from micro.broker import Broker, Subscription
from micro.errors import MicroError
from micro.registry import Endpoint, Node, Registry, Service
from micro.server import HandlerWrapper, Server, SubscriberWrapper
from micro.server._addr import advertise_address
from micro.server._endpoint import endpoint_record, inner_call
from micro.server._ratelimit import RateLimiter
from micro.server._router import SERVER_ID, Route, Router
from micro.server._shed import LoadShedder
from micro.server._subscriber import SubscriberSpec, broker_handler, introspect_subscriber
from micro.server._subscriber import endpoint_record as subscriber_record
from micro.server.debug import Debug
from micro.server.handler import introspect
from micro.settings import SERVICE_GROUPS, Settings, load
from micro.transport import Listener, Socket, Transport

__all__ = ["RpcServer"]

log = logging.getLogger("micro.server")


class RpcServer(Server):
    """Serves handlers over a transport and keeps its node registered.

    Options not given here come from ``settings`` (:mod:`micro.settings`, service groups);
    without it, the server reads flags-free settings from the environment once, here.

    Args:
        name: the service name (setting ``server_name``, else ``go.micro.server``).
        version: the service version.
        id: the node id (default ``<name>-<uuid4>``).
        address: where to listen (setting ``server_address``, default ``:0``).
        advertise: the address put in the registry (setting ``server_advertise``); by
            default the bound address, with an unspecified host replaced by the first
            address of the ``mdns_interfaces`` setting or the host's private IPv4 address.
        metadata: extra node metadata.
        transport: where to listen (default: the ``transport`` setting, ``http``).
        registry: where to register (default: the ``registry`` setting, ``mdns``).
        broker: the broker subscribers receive from (default: built from the settings when
            a subscriber is added, ``http``); connected on start, drained on stop.
        broker_name: the broker's name for the node metadata (default: ``broker.name``).
        register_ttl: seconds the registration lives unless renewed (0: forever).
        register_interval: seconds between re-registrations (0: never).
        wrappers: handler middleware; the first is outermost.
        subscriber_wrappers: subscriber middleware; the first is outermost.
        grace: seconds ``stop()`` lets in-flight requests finish by default.
        max_in_flight: calls handled at once; past it a call is refused at once with 503
            (setting ``resilience_max_in_flight``; 0: no limit).
        rate_limit: calls per second per caller; past it 429 (setting
            ``resilience_rate_limit``; 0: no limit). ``rate_burst`` and ``rate_key`` (the
            metadata key naming the caller; default its remote host) come from the settings
            ``resilience_rate_burst`` and ``resilience_rate_key``. See ``docs/resilience.md``.
        settings: the resolved settings backends and defaults come from.
    """

    name = "mucp"

    def __init__(
        self,
        *,
        name: str | None = None,
        version: str = "latest",
        id: str | None = None,
        address: str | None = None,
        advertise: str | None = None,
        metadata: Mapping[str, str] | None = None,
        transport: Transport | None = None,
        registry: Registry | None = None,
        broker: Broker | None = None,
        broker_name: str | None = None,
        register_ttl: float = 60.0,
        register_interval: float = 30.0,
        wrappers: Iterable[HandlerWrapper] = (),
        subscriber_wrappers: Iterable[SubscriberWrapper] = (),
        grace: float = 10.0,
        max_in_flight: int | None = None,
        rate_limit: float | None = None,
        settings: Settings | None = None,
    ) -> None:
        s = settings if settings is not None else load(groups=SERVICE_GROUPS)
        self.settings = s
        self.service_name = name or s["server_name"] or SERVER_ID
        self.version = version
        self.id = id or f"{self.service_name}-{uuid.uuid4()}"
        self._address = address or s["server_address"]
        self._advertise = advertise or s["server_advertise"] or ""
        self._pinned: tuple[str, ...] = s["mdns_interfaces"] or ()
        self.metadata = dict(metadata or {})
        self._owned: list[Any] = []
        self.transport: Transport = transport or self._own(plugins.create("transport", settings=s))
        self.registry: Registry = registry or self._own(plugins.create("registry", settings=s))
        self.broker: Broker | None = broker
        self.broker_name = broker_name or (broker.name if broker is not None else "http")
        self._own_broker = False
        self._sub_wrappers = tuple(subscriber_wrappers)
        self._subscribers: list[SubscriberSpec] = []
        self._subscriptions: list[Subscription] = []
        self.register_ttl = register_ttl
        self.register_interval = register_interval
        self.grace = grace
        self._wrappers = tuple(wrappers)
        self._router = Router(self.service_name)
        self._endpoints: dict[str, Endpoint] = {}
        self._listener: Listener | None = None
        self._advertised = ""
        self._registered = False
        self._keeper: asyncio.Task[None] | None = None
        self._stopping: asyncio.Task[None] | None = None
        self.shedder: LoadShedder | None = None
        self.rate_limiter: RateLimiter | None = None
        self._admission(max_in_flight, rate_limit)
        self._debug = Debug(self._router, self.resilience_stats)
        self.handle(self._debug, internal=True)

    def _admission(self, max_in_flight: int | None, rate_limit: float | None) -> None:
        """Install load shedding and the rate limit in the router when either is on."""
        s = self.settings
        limit = s.get("resilience_max_in_flight") or 0 if max_in_flight is None else max_in_flight
        rate = s.get("resilience_rate_limit") or 0.0 if rate_limit is None else rate_limit
        if limit > 0:
            self.shedder = LoadShedder(limit, self.service_name)
        if rate > 0:
            self.rate_limiter = RateLimiter(
                rate,
                burst=s.get("resilience_rate_burst") or 0,
                key=s.get("resilience_rate_key"),
                service=self.service_name,
            )
        shedder, limiter = self.shedder, self.rate_limiter
        if shedder is not None and limiter is not None:

            def admit(sock: Socket, header: dict[str, str], active: int) -> MicroError | None:
                return shedder.check(active) or limiter.check(sock.remote, header)

            self._router.admit = admit
        elif shedder is not None:
            self._router.admit = lambda sock, header, active: shedder.check(active)
        elif limiter is not None:
            self._router.admit = lambda sock, header, active: limiter.check(sock.remote, header)

    @property
    def debug(self) -> Debug:
        """The built-in ``Debug`` handler: a source added to ``debug.sources`` reports more
        resilience counts; ``Debug.Stats`` reads its ``latency`` source."""
        return self._debug

    def resilience_stats(self) -> dict[str, int]:
        """Calls refused by load shedding (``shed``) and by the rate limit (``rate_limited``)."""
        return {
            "shed": self.shedder.shed if self.shedder is not None else 0,
            "rate_limited": self.rate_limiter.limited if self.rate_limiter is not None else 0,
        }

    def _own(self, backend: Any) -> Any:
        if not plugins.is_shared(backend):  # a shared memory backend outlives this server
            self._owned.append(backend)
        return backend

    # -- handlers and endpoints ------------------------------------------------------------

    def handle(
        self,
        handler: object,
        *,
        name: str | None = None,
        internal: bool = False,
        metadata: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        specs = introspect(handler, name=name)
        routes = self._router.routes
        for spec in specs:
            if spec.name in routes:
                raise TypeError(f"endpoint {spec.name} is already served")
        extra = metadata or {}
        records = {s.name: endpoint_record(s, extra.get(s.name, {})) for s in specs}
        for spec in specs:
            call = inner_call(spec)
            for wrapper in reversed(self._wrappers):
                call = wrapper(call)
            routes[spec.name] = Route(spec, call, counted=not internal)
            if not internal:
                self._endpoints[spec.name] = records[spec.name]
        self._router.known = sorted(self._endpoints)

    def subscribe(
        self,
        topic: str,
        subscriber: object,
        *,
        queue: str | None = None,
        auto_ack: bool = True,
    ) -> None:
        """Receive ``topic``'s events in ``subscriber`` (a function, or an object's methods).

        Args:
            topic: the topic to receive.
            subscriber: a function/method (endpoint ``Func`` / ``Type.Method``) or an object
                whose public methods each subscribe.
            queue: a queue group: the group's members share the events; None broadcasts.
            auto_ack: ack when the subscriber returns; ``False``: it acks the raw Event.

        Raises:
            TypeError: a signature cannot be served.
            RuntimeError: the server has already started.
        """
        if self._listener is not None:
            raise RuntimeError("subscribe before the server starts")
        specs = introspect_subscriber(topic, subscriber, queue=queue, auto_ack=auto_ack)
        if self.broker is None:
            self.broker = plugins.create_broker(registry=self.registry, settings=self.settings)
            self.broker_name = self.broker.name
            self._own_broker = not plugins.is_shared(self.broker)
        self._subscribers.extend(specs)

    def endpoints(self) -> list[Endpoint]:
        handlers = [self._endpoints[name] for name in sorted(self._endpoints)]
        return handlers + [subscriber_record(spec) for spec in self._subscribers]

    @property
    def address(self) -> str:
        return self._listener.address if self._listener is not None else self._address

    @property
    def advertised(self) -> str:
        """The address in the registry (empty until started)."""
        return self._advertised

    def node(self) -> Node:
        """This server's registry node."""
        meta = {
            "transport": self.transport.name,
            "broker": self.broker_name,
            "server": self.name,
            "registry": self.registry.name,
            "protocol": "mucp",
            **self.metadata,
        }
        return Node(id=self.id, address=self._advertised or self.address, metadata=meta)

    def service(self) -> Service:
        """The registry record this server registers."""
        return Service(
            name=self.service_name,
            version=self.version,
            endpoints=self.endpoints(),
            nodes=[self.node()],
        )

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        if self._stopping is not None:
            raise RuntimeError("a stopped server cannot start again; make a new one")
        if self._listener is not None:
            return
        for backend in self._owned:
            if hasattr(backend, "start"):
                await backend.start()
        self._debug.started = time.time()
        listener = await self._listen()
        self._listener = listener
        self._advertised = advertise_address(listener.address, self._advertise, self._pinned)
        try:
            await self._subscribe_all()
            await self._register()
        except BaseException:
            self._listener = None
            await listener.close()
            await self._unsubscribe_all()
            raise
        log.info("%s serving on %s as %s", self.service_name, listener.address, self.id)
        if self.register_interval > 0:
            self._keeper = asyncio.create_task(self._keep_registered())

    async def _listen(self) -> Listener:
        """Bind and start serving; a server speaking another protocol overrides this."""
        return await self.transport.listen(self._address, self._router.serve)

    async def stop(self, *, grace: float | None = None) -> None:
        if self._stopping is None:
            self._stopping = asyncio.create_task(self._shutdown(grace))
        try:
            await asyncio.shield(self._stopping)
        except Exception:  # stop() never raises; a failure here is a bug worth a traceback
            log.exception("stopping %s failed", self.id)

    async def _subscribe_all(self) -> None:
        broker = self.broker
        if broker is None or not self._subscribers:
            return
        await broker.connect()
        for spec in self._subscribers:
            handler = broker_handler(spec, self._sub_wrappers)
            sub = await broker.subscribe(
                spec.topic, handler, queue=spec.queue, auto_ack=spec.auto_ack
            )
            self._subscriptions.append(sub)

    async def _unsubscribe_all(self) -> None:
        """Stop receiving (in-flight events finish), then disconnect a broker of our own."""
        subs, self._subscriptions = self._subscriptions, []
        for sub in subs:
            try:
                await sub.unsubscribe()
            except Exception as exc:  # stop() never raises
                log.warning("unsubscribing from %s failed: %s", sub.topic, exc)
        broker = self.broker
        if broker is not None and self._own_broker:
            try:
                await broker.disconnect()
            except Exception as exc:  # stop() never raises
                log.warning("disconnecting the %s broker failed: %s", broker.name, exc)

    async def _register(self) -> None:
        await self.registry.register(self.service(), ttl=self.register_ttl or None)
        self._registered = True

    async def _keep_registered(self) -> None:
        """Register again every interval, and at once when the registry may have lost us."""
        lost = asyncio.Event()
        listener = asyncio.create_task(self._hear_losses(lost), name=f"micro-lost-{self.id}")
        failures = 0
        delay = self.register_interval
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), delay)
                lost.clear()
                try:
                    await self._register()
                except Exception as exc:  # a registry hiccup must never stop the server
                    failures += 1
                    delay = min(self.register_interval, 0.5 * 2 ** (failures - 1))
                    log.warning(
                        "re-registering %s failed (%s); retry in %.1fs", self.id, exc, delay
                    )
                else:
                    failures = 0
                    delay = self.register_interval
        finally:
            listener.cancel()
            await asyncio.wait({listener})

    async def _hear_losses(self, lost: asyncio.Event) -> None:
        try:
            async for _ in self.registry.lost(self.service()):
                lost.set()
        except Exception as exc:  # a backend bug: the interval still re-registers
            log.warning("watching the registration of %s failed: %r", self.id, exc)

    async def _shutdown(self, grace: float | None) -> None:
        self._router.draining = True
        await self._deregister()
        await self._unsubscribe_all()
        if self._listener is not None:
            try:
                await self._listener.close()
            except Exception as exc:  # stop() never raises
                log.warning("closing the listener failed: %s", exc)
        await self._drain(self.grace if grace is None else grace)
        await self._router.close_all()
        for backend in reversed(self._owned):
            try:
                await backend.close()
            except Exception as exc:  # stop() never raises
                log.warning("closing %s failed: %s", type(backend).__name__, exc)
        log.info("%s stopped", self.id)

    async def _deregister(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
            await asyncio.wait({self._keeper})
        if self._registered:
            try:
                await self.registry.deregister(self.service())
            except Exception as exc:  # stop() never raises
                log.warning("deregistering %s failed: %s", self.id, exc)

    async def _drain(self, grace: float) -> None:
        router = self._router
        if not router.inflight:
            return
        try:
            await asyncio.wait_for(router.drained.wait(), max(grace, 0.0))
            return
        except TimeoutError:
            pass
        log.warning("%d call(s) still running after %.1fs; cancelling", router.inflight, grace)
        cancelled = router.abort()
        if cancelled:
            await asyncio.wait(cancelled, timeout=1.0)
