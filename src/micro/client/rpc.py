"""The RPC client (go-micro's "rpc"/"mucp" client): selector -> pool -> transport -> codec.

One call, as go-micro v1 does it (docs/client.md), with its sharp edges fixed:

1. One deadline covers the whole call: ``timeout`` seconds from the start, all attempts and
   backoff waits included. Each attempt sends what is left in the ``Timeout`` header (ns);
   when it passes the call raises :class:`~micro.errors.Timeout` (408, ``call timeout``).
2. The selector is asked once (``select``), then ``Next()`` once per attempt, so a retry
   moves to another node; once every node had its turn, a further retry asks the selector
   again (so a one-node service is retried too). ``address=`` skips the selector (several
   addresses rotate).
3. Each attempt runs through the call wrappers, then takes a pooled connection to the node,
   sends one request (headers per ``docs/protocol.md``) and reads one response. A
   ``Micro-Error`` answer raises the matching :class:`~micro.errors.MicroError` subclass.
   A pooled connection the server closed (go-micro v1.0 closes after every error answer) is
   never written to: the request goes on a new connection, without spending a retry.
4. ``selector.mark(service, node, error)`` reports each attempt (``None`` on success; the
   selector decides which errors count against the node -- the default one ignores 4xx).
5. A failed attempt is retried while ``retry_on(error)`` says so and retries remain, after
   ``backoff(n)`` seconds; see :mod:`micro.client.retries` for the defaults (connection
   errors, 408, 500; 10 ms / 100 ms / 1 s with jitter). A wait that would end past the
   deadline is not started: the call raises ``Timeout`` naming the last error.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar, Unpack, overload

from micro import metadata as md
from micro import plugins
from micro.broker import Broker
from micro.client import (
    Backoff,
    CallFunc,
    CallKeywords,
    CallOptions,
    CallWrapper,
    Client,
    PublishFunc,
    PublishWrapper,
    Request,
    RetryPredicate,
    Stream,
)
from micro.client.deadline import TaskDeadline
from micro.client.options import timeout_header
from micro.client.pool import Pool, check_transport
from micro.client.retries import exponential_backoff, retry_on_error
from micro.client.stream import RpcStream
from micro.codec import Codec, CodecError, Envelope, EnvelopeCodec, lookup
from micro.errors import (
    ConnectError,
    ConnectionClosed,
    MicroError,
    NoneAvailable,
    PluginNotFound,
    ServiceNotFound,
    Timeout,
)
from micro.registry import Node, Registry
from micro.selector import Filter, Next, Selector
from micro.settings import BACKEND_GROUPS, Settings, load, parse_duration
from micro.transport import Message, Transport

if TYPE_CHECKING:
    from micro.client.proxy import ProxyClient
    from micro.client.resilience import (
        BreakerPolicy,
        BulkheadPolicy,
        HedgePolicy,
        Resilience,
        RetryBudgetPolicy,
    )
    from micro.client.sync import BlockingClient
    from micro.grpc.client import GrpcCaller

__all__ = ["RpcClient", "node_address"]

T = TypeVar("T")
_CACHE_LIMIT = 1024
_NO_HEADER: Mapping[str, str] = MappingProxyType({})


class RpcClient(Client):
    """Calls services over the transport; ``micro.Client``.

    Every option not given here comes from ``settings`` (a :class:`micro.settings.Settings`
    of the client and backend groups, read from flags and ``MICRO_*`` env vars by whoever
    built it, such as a :class:`~micro.Service`); without it, the client reads the
    environment once, here. Code beats settings.

    Args:
        registry: a Registry, a backend name, or None (``MICRO_REGISTRY``, else ``mdns``).
            Used only to build the selector when none is given.
        selector: a Selector, a backend name, or None (``MICRO_SELECTOR``, else the
            registry-cache selector), built over ``registry``.
        transport: a Transport, a backend name, or None (``MICRO_TRANSPORT``, else ``http``).
        content_type: the default codec (``MICRO_CONTENT_TYPE``, else application/json).
        timeout: default seconds per call, a number or a Go duration such as ``"500ms"``
            (``MICRO_CLIENT_REQUEST_TIMEOUT``, else 5 s).
        retries: default retries after the first attempt (``MICRO_CLIENT_RETRIES``, else 1).
        pool_size: idle connections kept per address (``MICRO_CLIENT_POOL_SIZE``, else 100).
        pool_ttl: seconds a pooled connection is reused for (60 s).
        dial_timeout: seconds allowed to open one connection (5 s).
        wrappers: call wrappers, the first outermost; each runs once per attempt.
        publish_wrappers: wrappers around each :meth:`publish` (headers set, broker next).
        from_service: the calling service's name, sent as ``Micro-From-Service``.
        retry_on: which failed attempts are retried (default
            :func:`~micro.client.retries.retry_on_error`: connection errors, 408 and 500 --
            including a 500 from a handler that is not idempotent, as in go-micro).
        backoff: seconds to wait before retry ``n`` (default: 10^n ms with +-50 % jitter).
        broker: a Broker, a backend name, or None (``MICRO_BROKER``, else ``http``) for
            :meth:`publish`; built and connected on the first publish.
        protocol: ``auto`` (gRPC to nodes registered with ``protocol=grpc``, mucp to the
            others), ``mucp`` or ``grpc`` (every call, also by ``address=`` to any gRPC
            server); setting ``client``, else ``auto``. See :mod:`micro.grpc`.
        proxy: a ``micro proxy`` to send every call, stream and publish through
            (``host:port`` or ``http(s)://host:port``; ``MICRO_PROXY_ADDRESS``, else none):
            see :mod:`micro.client.proxy`. Its token and TLS files come from ``settings``
            (``MICRO_PROXY_TOKEN``, ``MICRO_PROXY_TLS_*``).
        breaker: circuit breakers per node and per service: a
            :class:`~micro.client.resilience.BreakerPolicy`, True (thresholds from the
            ``resilience_breaker_*`` settings) or False; None: ``MICRO_RESILIENCE_BREAKER``.
        bulkhead: calls in flight per service: a ``BulkheadPolicy`` or a number (0: off);
            None: ``MICRO_RESILIENCE_BULKHEAD``.
        retry_budget: a ``RetryBudgetPolicy``, True or False; None:
            ``MICRO_RESILIENCE_RETRY_BUDGET``.
        hedge: a ``HedgePolicy`` naming the idempotent endpoints to hedge; None:
            ``MICRO_RESILIENCE_HEDGE_AFTER`` and ``..._HEDGE_ENDPOINTS``. See
            :mod:`micro.client.resilience` and ``docs/resilience.md``.
        settings: the resolved settings backends and defaults come from.

    Backends named here (or chosen by env) are built by the client and closed by
    :meth:`close`; instances passed in are started if needed and never closed. Nothing
    starts in the constructor: the registry and selector start on the first call that
    needs them, or in ``async with``.
    """

    name = "rpc"

    def __init__(
        self,
        *,
        registry: Registry | str | None = None,
        selector: Selector | str | None = None,
        transport: Transport | str | None = None,
        content_type: str | None = None,
        timeout: float | str | None = None,
        retries: int | None = None,
        pool_size: int | None = None,
        pool_ttl: float | str | None = None,
        dial_timeout: float | str | None = None,
        wrappers: Sequence[CallWrapper] = (),
        publish_wrappers: Sequence[PublishWrapper] = (),
        from_service: str | None = None,
        retry_on: RetryPredicate = retry_on_error,
        backoff: Backoff = exponential_backoff,
        broker: Broker | str | None = None,
        protocol: str | None = None,
        proxy: str | None = None,
        breaker: BreakerPolicy | bool | None = None,
        bulkhead: BulkheadPolicy | int | None = None,
        retry_budget: RetryBudgetPolicy | bool | None = None,
        hedge: HedgePolicy | None = None,
        settings: Settings | None = None,
    ) -> None:
        s = settings if settings is not None else load(groups=BACKEND_GROUPS)
        self.settings = s
        self.protocol = _protocol(protocol or s.get("client") or "auto")
        self._grpc: GrpcCaller | None = None
        self.content_type = content_type or s["content_type"]
        self.timeout = s["client_request_timeout"] if timeout is None else parse_duration(timeout)
        self.retries = s["client_retries"] if retries is None else retries
        self.dial_timeout = (
            s["client_dial_timeout"] if dial_timeout is None else parse_duration(dial_timeout)
        )
        self.from_service = from_service
        self.retry_on = retry_on
        self.backoff = backoff
        if isinstance(transport, Transport):
            self.transport, self._own_transport = transport, False
        else:
            self.transport = plugins.create("transport", transport, settings=s)
            self._own_transport = not plugins.is_shared(self.transport)
        self.registry: Registry | None = registry if isinstance(registry, Registry) else None
        self.selector: Selector | None = selector if isinstance(selector, Selector) else None
        self._registry_name = registry if isinstance(registry, str) else None
        self._selector_name = selector if isinstance(selector, str) else None
        self._owned: list[Registry | Selector] = []
        self.broker: Broker | None = broker if isinstance(broker, Broker) else None
        self._broker_name = broker if isinstance(broker, str) else None
        self._own_broker = False
        self._broker_ready = False
        pool_ttl_s = s["client_pool_ttl"] if pool_ttl is None else parse_duration(pool_ttl)
        size = s["client_pool_size"] if pool_size is None else pool_size
        self._pool = Pool(self.transport, size=size, ttl=pool_ttl_s)
        self._ids = itertools.count(1)
        call: CallFunc = self._call_node
        for wrapper in reversed(wrappers):
            call = wrapper(call)
        self._call = call
        publish: PublishFunc = self._publish_to_broker
        for publish_wrapper in reversed(publish_wrappers):
            publish = publish_wrapper(publish)
        self._publish = publish
        self._headers: dict[tuple[str, str, str], dict[str, str]] = {}
        self._codecs: dict[str, Codec] = {}
        self._fixed: dict[tuple[str, ...], Next] = {}
        self._streams: set[RpcStream] = set()
        self._start_lock: asyncio.Lock | None = None
        self._started = False
        self._closed = False
        self.resilience: Resilience | None = None
        """The breakers, bulkhead, retry budget and hedging in use (None: all off)."""
        if breaker or bulkhead or retry_budget or hedge or _any_resilience(s):
            from micro.client.resilience import from_settings

            self.resilience = from_settings(
                s, breaker=breaker, bulkhead=bulkhead, retry_budget=retry_budget, hedge=hedge
            )
        self.proxy: ProxyClient | None = None
        """The client calls go through when a proxy is set (see ``proxy``)."""
        target = proxy or s.get("proxy_address")
        if target:
            self.proxy = _proxy_client(target, s, self, wrappers)

    def __repr__(self) -> str:
        if self.proxy is not None:
            return f"RpcClient(proxy={self.proxy.url!r}, timeout={self.timeout})"
        return f"RpcClient(transport={self.transport.name!r}, timeout={self.timeout})"

    @classmethod
    def blocking(cls, **options: Any) -> BlockingClient:
        """A :class:`~micro.client.sync.BlockingClient` with these options (for scripts)."""
        from micro.client.sync import BlockingClient

        return BlockingClient(**options)

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Build (if needed) and start the registry and selector; idempotent."""
        if self._started:
            return
        if self._closed:
            raise RuntimeError("client is closed")
        if self.proxy is not None:  # the proxy resolves services: no registry to start here
            self._started = True
            return
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if not self._started:
                await self._start_selector()
                self._started = True

    async def _start_selector(self) -> None:
        if self.selector is None:
            registry = self.registry
            if registry is None:
                registry = plugins.create("registry", self._registry_name, settings=self.settings)
                if not plugins.is_shared(registry):
                    self._owned.append(registry)
                self.registry = registry
            await registry.start()
            self.selector = plugins.create(
                "selector", self._selector_name, settings=self.settings, registry=registry
            )
            self._owned.append(self.selector)
        await self.selector.start()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.proxy is not None:
            await self.proxy.close()
        for stream in list(self._streams):
            await stream.close()
        await self._pool.close()
        if self._grpc is not None:
            await self._grpc.close()
        if self.broker is not None and self._own_broker:
            try:
                await self.broker.disconnect()
            except Exception:  # close() never raises
                pass
        for backend in reversed(self._owned):
            try:
                await backend.close()
            except Exception:  # close() never raises; one broken backend must not stop the rest
                pass
        if self._own_transport:
            try:
                await self.transport.close()
            except Exception:  # close never raises
                pass

    # -- calls --------------------------------------------------------------------------

    @overload
    async def call(
        self,
        service: str,
        endpoint: str,
        request: Any = None,
        *,
        response_type: type[T],
        **options: Unpack[CallKeywords],
    ) -> T: ...

    @overload
    async def call(
        self,
        service: str,
        endpoint: str,
        request: Any = None,
        *,
        response_type: Any = Any,
        **options: Unpack[CallKeywords],
    ) -> Any: ...

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
        """Call ``endpoint`` of ``service``; see :meth:`micro.client.Client.call`."""
        if self._closed:
            raise RuntimeError("client is closed")
        if self.proxy is not None:
            return await self.proxy.call(
                service,
                endpoint,
                request,
                response_type=response_type,
                timeout=timeout,
                retries=retries,
                address=address,
                content_type=content_type,
                filters=filters,
                metadata=metadata,
            )
        if timeout is None:
            timeout = self.timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        opts = CallOptions(
            timeout,
            deadline,
            self.retries if retries is None else retries,
            _addresses(address),
            tuple(filters) if filters else (),
            metadata,
            self.dial_timeout,
        )
        req = Request(service, endpoint, request, content_type or self.content_type, response_type)
        expiry = TaskDeadline(deadline, loop)
        try:
            if self.resilience is not None:
                return await self.resilience.run(self._run, req, opts, self._call)
            return await self._run(req, opts, self._call)
        except asyncio.CancelledError:
            if expiry.expired():
                raise _timeout(req, opts) from None
            raise
        finally:
            expiry.cancel()

    async def publish(
        self,
        topic: str,
        message: Any,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """Publish an event; see :meth:`micro.client.Client.publish`."""
        if self._closed:
            raise RuntimeError("client is closed")
        if self.proxy is not None:
            await self.proxy.publish(topic, message, content_type=content_type, metadata=metadata)
            return
        broker = self.broker if self._broker_ready else await self._connect_broker()
        assert broker is not None
        kind = content_type or self.content_type
        body = self.codec(kind).encode(message)
        header = md.outgoing(metadata)
        header["Content-Type"] = kind
        header["Micro-Topic"] = topic
        header["Micro-Id"] = str(uuid.uuid4())
        if self.from_service:
            header["Micro-From-Service"] = self.from_service
        await self._publish(topic, Message(header, body))

    async def _publish_to_broker(self, topic: str, message: Message) -> None:
        """The innermost :data:`PublishFunc`, below the publish wrappers."""
        assert self.broker is not None  # publish() connected it
        await self.broker.publish(topic, message)

    async def _connect_broker(self) -> Broker:
        if self.broker is None:
            if self.registry is None and self.selector is None:
                await self.start()  # the http broker finds subscribers in our registry
            registry = self.registry or getattr(self.selector, "registry", None)
            broker = plugins.create_broker(
                self._broker_name, registry=registry, settings=self.settings
            )
            self._own_broker = not plugins.is_shared(broker)
            self.broker = broker
        await self.broker.connect()
        self._broker_ready = True
        return self.broker

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
    ) -> Stream:
        """A stream to ``endpoint`` of ``service``; see :meth:`micro.client.Client.stream`.

        ``timeout`` bounds opening the stream (the client's default when None). Only when it
        is given does it also bound the stream's whole life: it is then sent in the
        ``Timeout`` header and ``recv``/``send`` raise ``Timeout`` after it.
        """
        if self._closed:
            raise RuntimeError("client is closed")
        if self.proxy is not None:
            return self.proxy.stream(
                service,
                endpoint,
                request,
                response_type=response_type,
                timeout=timeout,
                retries=retries,
                address=address,
                content_type=content_type,
                filters=filters,
                metadata=metadata,
            )
        req = Request(
            service, endpoint, request, content_type or self.content_type, response_type, True
        )
        if isinstance(self.codec(req.content_type), EnvelopeCodec):
            raise CodecError(f"{req.content_type} carries no streams (its envelopes are unary)")
        return RpcStream(
            self,
            req,
            timeout=timeout,
            retries=self.retries if retries is None else retries,
            address=_addresses(address),
            filters=tuple(filters),
            metadata=metadata,
        )

    async def _run(self, req: Request, opts: CallOptions, attempt_fn: CallFunc) -> Any:
        """The attempt loop: select once, then Next() / attempt / mark / retry."""
        selector: Selector | None = None
        if opts.address:
            nxt = self._fixed_next(opts.address)
        else:
            if not self._started:
                await self.start()
            selector = self.selector
            assert selector is not None
            nxt = await self._select(selector, req, opts)
        guard = self.resilience
        attempt = 0
        while True:
            try:
                node = nxt()
            except NoneAvailable:
                if selector is None or attempt == 0:
                    raise
                # every node had its turn: a retry starts a new round (a one-node service
                # gets its retries too, as in go-micro)
                nxt = await self._select(selector, req, opts)
                node = nxt()
            if selector is not None and not self._speaks(node):
                node = self._speakable(node, nxt)
            if guard is not None:  # skips nodes whose breaker is open (all open: CircuitOpen)
                node = guard.pick(req.service, node, nxt)
            try:
                if guard is None:
                    response = await attempt_fn(node, req, opts)
                else:  # feeds the node's breaker; may hedge
                    response = await guard.attempt(attempt_fn, node, nxt, req, opts)
            except MicroError as exc:
                if selector is not None:
                    selector.mark(req.service, node, exc)
                if (
                    attempt >= opts.retries
                    or not self.retry_on(exc)
                    or (guard is not None and not guard.may_retry())
                ):
                    raise
                error = exc
            except asyncio.CancelledError:
                if selector is not None and asyncio.get_running_loop().time() >= opts.deadline:
                    selector.mark(req.service, node, _timeout(req, opts))
                raise
            else:
                if selector is not None:
                    selector.mark(req.service, node, None)
                return response
            attempt += 1
            await self._wait(attempt, req, opts, error)

    def _speaks(self, node: Node) -> bool:
        """Whether this client can call ``node``: over gRPC, or its transport is ours (or it
        does not say)."""
        theirs = node.metadata.get("transport") if node.metadata else None
        return not theirs or theirs == self.transport.name or self.speaks_grpc(node)

    def _speakable(self, node: Node, nxt: Next) -> Node:
        """A node of the selection this client can call, in place of ``node`` (a mixed fleet:
        some nodes on another transport). ``node`` itself when none can be: the attempt then
        fails with ``TransportMismatch``, which names both transports."""
        seen = {node.id}
        while True:
            try:
                other = nxt()
            except NoneAvailable:
                return node
            if self._speaks(other):
                return other
            if other.id in seen:  # round the whole selection: nobody speaks it
                return node
            seen.add(other.id)

    async def _wait(self, attempt: int, req: Request, opts: CallOptions, error: MicroError) -> None:
        delay = self.backoff(attempt)
        if delay <= 0:
            return
        if asyncio.get_running_loop().time() + delay >= opts.deadline:
            raise _timeout(req, opts, f"; last error: {error.detail or error}") from error
        await asyncio.sleep(delay)

    async def _select(self, selector: Selector, req: Request, opts: CallOptions) -> Next:
        # only the hashed strategy reads metadata: build the merged copy only when there is any
        metadata = md.outgoing(opts.metadata) if opts.metadata or md.get() else None
        try:
            return await selector.select(req.service, filters=opts.filters, metadata=metadata)
        except ServiceNotFound as exc:
            registry = self.registry or getattr(selector, "registry", None)
            where = f" (no node in the {registry.name} registry)" if registry is not None else ""
            detail = f"service {req.service}: not found{where}"
            raise ServiceNotFound(detail, id="go.micro.client") from exc

    def _fixed_next(self, addresses: tuple[str, ...]) -> Next:
        nxt = self._fixed.get(addresses)
        if nxt is None:
            nodes = [_fixed_node(address) for address in addresses]
            nxt = itertools.cycle(nodes).__next__
            if len(self._fixed) >= _CACHE_LIMIT:
                self._fixed.clear()
            self._fixed[addresses] = nxt
        return nxt

    async def _call_node(self, node: Node, req: Request, opts: CallOptions) -> Any:
        """One attempt: the innermost CallFunc, below the wrappers."""
        if self.speaks_grpc(node):
            return await self.grpc.call(node, req, opts, self.grpc_header(opts.metadata))
        check_transport(node, self.transport.name)
        loop = asyncio.get_running_loop()
        codec = self.codec(req.content_type)
        body = codec.encode(req.body)
        base = self.base_headers(req.service, req.endpoint, req.content_type)
        if opts.metadata is None and not md.get():
            header = base.copy()
        else:
            header = md.outgoing(opts.metadata)
            header.update(base)
        pool = self._pool
        conn = pool.take(node.address)
        if conn is None:
            remaining = max(opts.deadline - loop.time(), 0.0)
            conn = await pool.get(node.address, timeout=min(opts.dial_timeout, remaining))
        header["Timeout"] = timeout_header(opts.deadline - loop.time())
        header["Micro-Id"] = str(next(self._ids))
        if isinstance(codec, EnvelopeCodec):  # go-micro's legacy json-rpc / proto-rpc
            body = codec.pack(Envelope(req.endpoint, header["Micro-Id"], body), response=False)
        message = Message(header, body)
        sent = False
        try:
            try:
                await conn.socket.send(message)
                sent = True
                response = await conn.socket.recv()
            except ConnectError:
                if not conn.reused or (sent and conn.socket.answered):
                    raise
                # a kept-alive connection that provably never read the request: its close
                # was seen before the request left (nothing written), or the server reset it
                # with nothing answered (discarded unread). Dial again, once, without
                # spending a retry. A close after the request left may follow a read: that
                # is left to the retry policy (see Socket.answered).
                await pool.discard(conn)
                remaining = max(opts.deadline - loop.time(), 0.0)
                conn = await pool.connect(node.address, timeout=min(opts.dial_timeout, remaining))
                header["Timeout"] = timeout_header(opts.deadline - loop.time())
                await conn.socket.send(message)
                response = await conn.socket.recv()
        except BaseException as exc:
            await pool.discard(conn)
            if isinstance(exc, OSError):
                detail = f"connection error: {node.address}: {exc}"
                raise ConnectionClosed(detail, id="go.micro.client.transport") from exc
            raise
        if not pool.put(conn):
            await pool.discard(conn)
        return self.decode(response, req.content_type, req.response_type)

    # -- helpers shared with streams ----------------------------------------------------

    def speaks_grpc(self, node: Node) -> bool:
        """Whether calls to ``node`` go over gRPC (see ``protocol``)."""
        if self.protocol == "auto":
            return bool(node.metadata) and node.metadata.get("protocol") == "grpc"
        return self.protocol == "grpc"

    @property
    def grpc(self) -> GrpcCaller:
        """The gRPC side of the client (channels per address), made on first use.

        Raises:
            PluginNotFound: grpcio is not installed (with the pip command that installs it).
        """
        if self._grpc is None:
            try:
                from micro.grpc.client import GrpcCaller
            except ImportError as exc:
                raise PluginNotFound(
                    f"gRPC calls are not available ({exc}); install it with: "
                    f"{plugins.install_hint('grpc')}",
                    id="go.micro.plugins",
                ) from exc
            self._grpc = GrpcCaller()
        return self._grpc

    def grpc_header(self, metadata: Mapping[str, str] | None) -> Mapping[str, str]:
        """The metadata a gRPC call carries: the context's, ``metadata``, the caller."""
        if not metadata and not self.from_service and not md.get():
            return _NO_HEADER
        header = md.outgoing(metadata)
        if self.from_service:
            header["Micro-From-Service"] = self.from_service
        return header

    def codec(self, content_type: str) -> Codec:
        """The codec for a content type (cached)."""
        found = self._codecs.get(content_type)
        if found is None:
            found = lookup(content_type)
            if len(self._codecs) < _CACHE_LIMIT:
                self._codecs[content_type] = found
        return found

    def decode(self, message: Message, content_type: str, type: Any) -> Any:
        """A response's body as ``type``, or the error its ``Micro-Error`` header carries."""
        header = message.header
        error = header.get("Micro-Error") or header.get("X-Micro-Error")
        if error:
            raise MicroError.parse(error)
        codec = self.codec(header.get("Content-Type") or content_type)
        if isinstance(codec, EnvelopeCodec):
            envelope = codec.unpack(message.body, response=True)
            if envelope.error:
                raise MicroError.parse(envelope.error)
            return codec.decode(envelope.body, type)
        return codec.decode(message.body, type)

    def base_headers(self, service: str, endpoint: str, content_type: str) -> dict[str, str]:
        """The fixed request headers of a (service, endpoint, content type), cached."""
        key = (service, endpoint, content_type)
        found = self._headers.get(key)
        if found is None:
            found = {
                "Content-Type": content_type,
                "Accept": content_type,
                "Micro-Service": service,
                "Micro-Endpoint": endpoint,
                "Micro-Method": endpoint,
            }
            if self.from_service:
                found["Micro-From-Service"] = self.from_service
            if len(self._headers) >= _CACHE_LIMIT:
                self._headers.clear()
            self._headers[key] = found
        return found

    def resilience_stats(self) -> dict[str, int]:
        """What this client's resilience refused or saved, and the nodes its selector skips
        now (the client-side fields of ``Debug.Stats``; see ``docs/resilience.md``)."""
        out = self.resilience.stats() if self.resilience is not None else {}
        ejected = getattr(self.selector, "ejected", None)
        if callable(ejected):
            out["ejected"] = ejected()
        return out

    def next_id(self) -> str:
        return str(next(self._ids))


def _proxy_client(
    address: str, s: Settings, client: RpcClient, wrappers: Sequence[CallWrapper]
) -> ProxyClient:
    """The :class:`~micro.client.proxy.ProxyClient` an RpcClient with a proxy hands off to.

    Raises:
        PluginNotFound: aiohttp is not installed (with the pip command that installs it).
    """
    try:
        from micro.client.proxy import ProxyClient
    except ImportError as exc:
        raise PluginNotFound(
            f"calls through a proxy are not available ({exc}); install it with: "
            f"{plugins.install_hint('proxy')}",
            id="go.micro.plugins",
        ) from exc
    return ProxyClient(
        address,
        token=s.get("proxy_token"),
        tls_ca=s.get("proxy_tls_ca"),
        tls_cert=s.get("proxy_tls_cert"),
        tls_key=s.get("proxy_tls_key"),
        timeout=client.timeout,
        retries=client.retries,
        dial_timeout=client.dial_timeout,
        wrappers=wrappers,
        from_service=client.from_service,
        backoff=client.backoff,
        content_type=client.content_type,
    )


def _any_resilience(s: Settings) -> bool:
    """Whether the settings turn on a client resilience mechanism (cheap: no import)."""
    return bool(
        s.get("resilience_breaker")
        or s.get("resilience_bulkhead")
        or s.get("resilience_retry_budget")
        or (s.get("resilience_hedge_after") and s.get("resilience_hedge_endpoints"))
    )


def node_address(node: Node) -> str:
    """``node``'s address as ``call(address=...)`` takes it: ``grpc://host:port`` for a node
    that speaks gRPC, so that a call by address picks the node's protocol."""
    if node.metadata and node.metadata.get("protocol") == "grpc":
        return f"grpc://{node.address}"
    return node.address


def _fixed_node(address: str) -> Node:
    """The node of an ``address=`` target: ``grpc://host:port`` speaks gRPC."""
    scheme, found, rest = address.partition("://")
    if found and scheme in ("grpc", "mucp"):
        return Node(id=address, address=rest, metadata={"protocol": scheme})
    return Node(id=address, address=address)


def _protocol(name: str) -> str:
    if name not in ("auto", "mucp", "rpc", "grpc"):
        raise ValueError(f"client protocol {name!r}: expected auto, mucp or grpc")
    return "mucp" if name == "rpc" else name


def _addresses(address: str | Sequence[str] | None) -> tuple[str, ...]:
    if not address:
        return ()
    if isinstance(address, str):
        return (address,)
    return tuple(address)


def _timeout(req: Request, opts: CallOptions, extra: str = "") -> Timeout:
    detail = (
        f"call timeout: {req.service} {req.endpoint} did not answer within {opts.timeout:g}s{extra}"
    )
    return Timeout(detail, id="go.micro.client")
