"""Server: serves the public methods of handler objects as ``Handler.Method`` endpoints.

A handler is any object; each public method becomes an endpoint named after the class and
the method in CamelCase (``Greeter.say_hello`` -> ``Greeter.SayHello``), as in go-micro.
The method's annotations give the request and response types: the request is decoded and
validated into the first parameter's type, the return value is encoded with the caller's
codec. Three shapes are served::

    async def say_hello(self, req: HelloRequest) -> HelloResponse: ...        # unary
    def lookup(self, req: Query) -> Answer: ...                                # sync: in a thread
    async def watch(self, req: WatchRequest) -> AsyncIterator[Event]: ...     # server stream
    async def chat(self, stream: Stream[ChatIn, ChatOut]) -> None: ...        # bidirectional

Wrappers are middleware around each call: ``HandlerWrapper`` takes the next
``HandlerFunc`` and returns a new one, so the first wrapper listed runs outermost::

    def logged(next: HandlerFunc) -> HandlerFunc:
        async def call(req: Request) -> Any:
            log.info("%s called", req.endpoint)
            return await next(req)
        return call

Subscribers receive broker events: ``server.subscribe("user.created", on_created)`` takes a
function (endpoint ``Func``, as go-micro names it) or an object whose public methods each
subscribe (``<Type>.<Method>``). The event is decoded into the first parameter's annotation;
a parameter annotated :class:`micro.broker.Event` receives the raw event (for manual ack).
``SubscriberWrapper`` is to subscribers what ``HandlerWrapper`` is to handlers.

The backend is :class:`micro.server.rpc.RpcServer` (go-micro's "mucp" over a
:class:`~micro.transport.Transport`; see ``docs/protocol.md``).
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

from micro.registry import Endpoint

if TYPE_CHECKING:
    from micro.server.rpc import RpcServer

__all__ = [
    "EndOfStream",
    "HandlerFunc",
    "HandlerWrapper",
    "Publication",
    "Request",
    "RpcServer",
    "Server",
    "Stream",
    "SubscriberFunc",
    "SubscriberWrapper",
]

ReqT = TypeVar("ReqT")
RspT = TypeVar("RspT")


class EndOfStream(StopAsyncIteration):
    """Raised by :meth:`Stream.recv` once the peer has ended its sending half (``EOS``).

    A ``StopAsyncIteration``, as the client's ``Stream.recv`` raises at the end of a stream.
    """


class Stream(abc.ABC, Generic[ReqT, RspT]):
    """The server's side of a bidirectional stream, given to handlers that declare it.

    ``async for msg in stream`` reads until the client ends its half of the stream;
    ``await stream.send(rsp)`` writes one message. When the handler returns, the server ends
    the stream (``EOS``) and closes the connection; if it raises, the client gets the error.
    """

    @abc.abstractmethod
    async def recv(self) -> ReqT:
        """The next message from the client, decoded into ``ReqT``.

        Raises:
            EndOfStream: the client has ended its sending half.
            CodecError: the message does not decode into ``ReqT`` (a 400; the stream goes on).
            ConnectionClosed: the client went away (the handler is also cancelled).
        """

    @abc.abstractmethod
    async def send(self, message: RspT) -> None:
        """Send one message to the client.

        Raises:
            ConnectionClosed: the client went away.
            InternalServerError: ``message`` cannot be encoded with the client's codec.
        """

    def __aiter__(self) -> AsyncIterator[ReqT]:
        return self

    async def __anext__(self) -> ReqT:
        try:
            return await self.recv()
        except EndOfStream:
            raise StopAsyncIteration from None


class Request:
    """One call to one endpoint, as wrappers see it.

    Attributes:
        service: the service name the call was addressed to.
        endpoint: ``Handler.Method``.
        content_type: the codec's content type (the reply uses the same).
        header: every inbound transport header (canonical names).
        metadata: the request metadata (the headers less the per-hop ones), also readable
            with :func:`micro.metadata.get` inside the handler.
        body: the decoded request; for a bidirectional stream, the :class:`Stream` the
            handler receives (a wrapper may replace it with a wrapping one); ``None`` for
            methods that take no request.
        stream: True for streaming endpoints.
        io: the stream's connection to the client (``None`` for unary calls): a server
            stream's items are sent through it.
    """

    __slots__ = (
        "body",
        "content_type",
        "endpoint",
        "header",
        "io",
        "metadata",
        "service",
        "stream",
    )

    def __init__(
        self,
        *,
        service: str,
        endpoint: str,
        content_type: str,
        header: Mapping[str, str],
        metadata: Mapping[str, str],
        body: Any = None,
        stream: bool = False,
        io: Stream[Any, Any] | None = None,
    ) -> None:
        self.service = service
        self.endpoint = endpoint
        self.content_type = content_type
        self.header = header
        self.metadata = metadata
        self.body = body
        self.stream = stream
        self.io = io

    @property
    def method(self) -> str:
        """go-micro's name for the endpoint (the same ``Handler.Method``)."""
        return self.endpoint

    def __repr__(self) -> str:
        kind = "stream" if self.stream else "call"
        return f"<Request {kind} {self.service} {self.endpoint}>"


HandlerFunc = Callable[[Request], Awaitable[Any]]
"""Serves one request. For unary endpoints it returns the response; for streams it runs the
whole stream (sending as it goes) and returns ``None``."""

HandlerWrapper = Callable[[HandlerFunc], HandlerFunc]
"""Middleware: wraps the next ``HandlerFunc``. May short-circuit by not calling it."""


class Publication:
    """One event on its way to a subscriber, as subscriber wrappers see it.

    Attributes:
        topic: the topic it was published to.
        endpoint: the subscriber's endpoint name (``Func`` or ``Type.Method``).
        content_type: the codec that decoded it (``Content-Type``; JSON when absent).
        header: every message header (``Micro-Id``, ``Micro-Topic``, caller metadata...).
        metadata: the headers less the per-hop ones, also readable with
            :func:`micro.metadata.get` inside the subscriber.
        body: the decoded event (a wrapper may replace it).
        event: the broker's :class:`micro.broker.Event` (``ack``/``nack``, raw message).
    """

    __slots__ = ("body", "content_type", "endpoint", "event", "header", "metadata", "topic")

    def __init__(
        self,
        *,
        topic: str,
        endpoint: str,
        content_type: str,
        header: Mapping[str, str],
        metadata: Mapping[str, str],
        body: Any,
        event: Any,
    ) -> None:
        self.topic = topic
        self.endpoint = endpoint
        self.content_type = content_type
        self.header = header
        self.metadata = metadata
        self.body = body
        self.event = event

    @property
    def id(self) -> str:
        """The message id (``Micro-Id``)."""
        return self.header.get("Micro-Id", "")

    def __repr__(self) -> str:
        return f"<Publication {self.topic} -> {self.endpoint} id={self.id!r}>"


SubscriberFunc = Callable[[Publication], Awaitable[None]]
"""Handles one event; raising nacks it (the broker redelivers or dead-letters it)."""

SubscriberWrapper = Callable[[SubscriberFunc], SubscriberFunc]
"""Middleware around :data:`SubscriberFunc`; the first wrapper listed runs outermost."""


class Server(abc.ABC):
    """Serves handlers on a transport and announces them in a registry.

    A server is an async context manager: ``start()`` on enter, ``stop()`` on exit.
    """

    name: str = "server"

    @abc.abstractmethod
    def handle(
        self,
        handler: object,
        *,
        name: str | None = None,
        internal: bool = False,
        metadata: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        """Serve ``handler``'s public methods as ``<name>.<Method>`` endpoints.

        Args:
            handler: any object; its public methods become endpoints.
            name: the handler name (default: the class name).
            internal: serve the endpoints but do not advertise them in the registry.
            metadata: extra endpoint metadata by endpoint name (``"Greeter.SayHello"``).

        Raises:
            TypeError: a method has a signature the server cannot serve, or an endpoint
                name is already taken.
        """

    @abc.abstractmethod
    async def start(self) -> None:
        """Listen, then register in the registry and keep re-registering.

        Raises:
            ConnectError: the address cannot be bound.
            RegistryError: the first registration failed (the listener is closed again).
        """

    @abc.abstractmethod
    async def stop(self, *, grace: float | None = None) -> None:
        """Deregister, stop accepting, let in-flight requests finish within ``grace`` seconds
        (then cancel them), close every connection. Idempotent; never raises."""

    @property
    @abc.abstractmethod
    def address(self) -> str:
        """The bound ``host:port`` once started (the configured address before)."""

    @abc.abstractmethod
    def endpoints(self) -> list[Endpoint]:
        """The advertised endpoints, sorted by name."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def __getattr__(name: str) -> Any:
    if name == "RpcServer":
        from micro.server.rpc import RpcServer

        return RpcServer
    raise AttributeError(f"module 'micro.server' has no attribute {name!r}")
