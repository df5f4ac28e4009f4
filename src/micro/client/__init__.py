"""Client: calls services by name (``call``) and opens streams to them (``stream``).

A call resolves the service through the selector, sends one request over the transport with
the codec of its content type, and decodes the answer::

    async with micro.Client() as client:
        rsp = await client.call("greeter", "Greeter.SayHello", {"name": "John"}, timeout=2.0)

        async with client.stream("counter", "Counter.Count", {"to": 3}) as stream:
            async for item in stream:
                ...

The default backend is :class:`micro.client.rpc.RpcClient` (exported as ``micro.Client``);
:class:`micro.client.sync.BlockingClient` offers the same calls to code without an event loop.

Per-attempt middleware follows go-micro: a :data:`CallWrapper` takes the next
:data:`CallFunc` and returns a new one. It runs once per attempt and sees the node the
selector chose, so it can time, trace, log, or short-circuit attempts. Wrappers listed first
run outermost. A :data:`PublishWrapper` does the same around each publish.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Self, TypedDict

import msgspec

from micro.registry import Node
from micro.selector import Filter

if TYPE_CHECKING:
    from micro.transport import Message

__all__ = [
    "Backoff",
    "CallFunc",
    "CallKeywords",
    "CallOptions",
    "CallWrapper",
    "PublishFunc",
    "PublishWrapper",
    "Client",
    "Request",
    "RetryPredicate",
    "Stream",
]


class Request(msgspec.Struct):
    """One call as a wrapper sees it.

    Attributes:
        service: the target service name.
        endpoint: ``Handler.Method``.
        body: the request object (encoded by the codec of ``content_type``).
        content_type: the codec's content type, sent as ``Content-Type`` and ``Accept``.
        response_type: the type the response body is decoded into (``Any``: builtins).
        stream: True for a stream's opening request.
    """

    service: str
    endpoint: str
    body: Any = None
    content_type: str = "application/json"
    response_type: Any = Any
    stream: bool = False


class CallOptions(msgspec.Struct, frozen=True):
    """The resolved options of one call (client defaults overridden per call).

    Attributes:
        timeout: seconds allowed for the whole call, all attempts and backoff included.
        deadline: when the call expires, on the event loop's clock (``loop.time()``); each
            attempt sends what is left of it in the ``Timeout`` header.
        retries: attempts after the first (0: try once).
        address: fixed ``host:port`` targets that bypass the selector (empty: use it).
        filters: selector filters applied to the registry's answer.
        metadata: per-call metadata, merged over :func:`micro.metadata.get` when sent.
        dial_timeout: seconds allowed for opening one connection.
    """

    timeout: float
    deadline: float
    retries: int
    address: tuple[str, ...] = ()
    filters: tuple[Filter, ...] = ()
    metadata: Mapping[str, str] | None = None
    dial_timeout: float = 5.0


class CallKeywords(TypedDict, total=False):
    """The per-call keyword options of ``call`` and ``stream`` (see :meth:`Client.call`).

    Wrappers and facades take them as ``**options: Unpack[CallKeywords]`` and pass them on,
    so the option list is written once for every signature that only forwards it.
    """

    timeout: float | None
    retries: int | None
    address: str | Sequence[str] | None
    content_type: str | None
    filters: Sequence[Filter]
    metadata: Mapping[str, str] | None


CallFunc = Callable[[Node, Request, CallOptions], Awaitable[Any]]
"""One attempt of a call to one node: returns the decoded response or raises a MicroError."""

CallWrapper = Callable[[CallFunc], CallFunc]
"""Middleware around :data:`CallFunc`; the first wrapper of a list is the outermost."""

PublishFunc = Callable[[str, "Message"], Awaitable[None]]
"""Hands one encoded event (its headers already set) to the broker for a topic."""

PublishWrapper = Callable[[PublishFunc], PublishFunc]
"""Middleware around :data:`PublishFunc` (tracing, metrics); the first listed is outermost."""

RetryPredicate = Callable[[BaseException], bool]
"""Decides whether a failed attempt is tried again (``micro.client.retries.retry_on_error``)."""

Backoff = Callable[[int], float]
"""Seconds to wait before attempt ``n`` (1 for the first retry; attempt 0 never waits)."""


class Stream(abc.ABC):
    """A stream to one node of a service, on a connection of its own.

    Open it with ``async with`` (or ``await``); it closes on exit. Messages arrive through
    :meth:`recv` or ``async for``; the stream ends when the server sends ``EOS`` or closes
    the connection. Errors the server ends the stream with are raised by :meth:`recv`.
    """

    service: str
    endpoint: str

    @abc.abstractmethod
    async def open(self) -> Self:
        """Connect, send the opening message and the request (idempotent); returns self.

        Raises:
            ServiceNotFound, NoneAvailable: no node to connect to.
            ConnectError: every attempt to connect failed.
            Timeout: connecting took longer than the call's timeout.
        """

    @abc.abstractmethod
    async def send(self, obj: Any) -> None:
        """Send one message.

        Raises:
            ConnectionClosed: the connection is gone (or :meth:`close_send` was called).
            CodecError: ``obj`` cannot be encoded.
        """

    @abc.abstractmethod
    async def recv(self, type: Any = Any) -> Any:
        """The next message, decoded into ``type``.

        Raises:
            StopAsyncIteration: the server ended the stream (``EOS`` or closing).
            MicroError: the server ended the stream with this error.
            Timeout: the stream's deadline (if it has one) passed.
        """

    @abc.abstractmethod
    async def close_send(self) -> None:
        """Tell the server nothing more will be sent (``EOS``); receiving goes on.

        go-micro servers before v1.7 (node metadata ``server: rpc``) have no such message:
        nothing is sent to them, sending just stops.
        """

    @abc.abstractmethod
    async def close(self) -> None:
        """End the stream and close its connection; idempotent, never raises."""

    def __await__(self) -> Generator[Any, None, Self]:
        return self.open().__await__()

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Any:
        return await self.recv()


class Client(abc.ABC):
    """Calls services. An async context manager: ``start()`` on enter, ``close()`` on exit.

    Backends start lazily, so a client also works without ``async with`` (then call
    :meth:`close` when done).
    """

    name: str = "client"

    async def start(self) -> None:
        """Start the registry and selector the client uses (idempotent)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close pooled connections, open streams and the backends the client built.

        Idempotent, never raises. Backends passed in as instances are left open.
        """

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @abc.abstractmethod
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
        """Call ``endpoint`` (``Handler.Method``) of ``service`` and return its response.

        Args:
            service: the service name, resolved through the selector.
            endpoint: ``Handler.Method``.
            request: the request object (a Struct, dataclass, dict, ...).
            response_type: what the response body is decoded into (``Any``: builtins).
            timeout: seconds for the whole call, retries included (client default if None).
            retries: attempts after the first (client default if None; 0: no retry).
            address: ``host:port`` (or several) to call directly, bypassing the selector.
            content_type: the codec to encode with (client default if None).
            filters: selector filters (``micro.selector.filters``) for this call.
            metadata: extra metadata sent as headers, over the context's.

        Raises:
            ServiceNotFound: the registry knows no such service.
            NoneAvailable: no node passes the filters.
            Timeout: the call's deadline passed (also ``TimeoutError``).
            ConnectError: the last attempt could not reach its node.
            CodecError: the request could not be encoded or the response decoded.
            MicroError: the error the server answered with, as its class
                (``NotFound``, ``BadRequest``, ...).

        Retries: a failed attempt is tried again (on the next node) for connection errors
        and answers with code 408 or 500, after a backoff of about 10 ms, 100 ms, 1 s...
        (:mod:`micro.client.retries`). As in go-micro, that includes a 500 raised by a
        handler that is not idempotent; pass ``retries=0`` (or a client ``retry_on``) to
        prevent a second execution.

        Cancellation: cancelling the awaiting task stops the call at once; a connection
        that was mid-exchange is closed, never reused.
        """

    @abc.abstractmethod
    async def publish(
        self,
        topic: str,
        message: Any,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """Publish ``message`` to ``topic`` through the client's broker.

        The body is ``message`` encoded with the codec of ``content_type`` (client default
        if None). Headers, as go-micro's ``client.Publish``: ``Content-Type``,
        ``Micro-Topic``, ``Micro-Id`` (a uuid4), the context's metadata plus ``metadata``,
        and ``Micro-From-Service`` when the client belongs to a service.

        Raises:
            CodecError: ``message`` cannot be encoded.
            BrokerError: the broker did not accept it (see the backend's guarantee).
        """

    @abc.abstractmethod
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
        """A stream to ``endpoint`` of ``service``, opened by ``async with`` or ``await``.

        ``request`` is the stream's first message: the request of a server-streaming
        endpoint, which reads it as go-micro's do (``None`` sends nothing: a
        bidirectional stream's messages follow via ``send``). It also goes in the opening
        message, whose body servers do not hand to handlers. Options are those of
        :meth:`call`; ``timeout`` bounds opening the stream and, only when given, its whole
        life.
        """
