"""Transport: moves messages (headers + body) between a client and a server.

A dialed :class:`Socket` and an accepted one behave alike: ``send`` one message, ``recv`` the
next. A unary call is one send and one recv; a stream is any number of each. The default
backend is ``http``, go-micro's v1 "mucp" protocol: every message is one HTTP/1.1 ``POST /``
(or one response) on a kept-alive connection, headers as HTTP headers.

Header names in :class:`Message` are canonical (``Micro-Id``, not ``micro-id``); use
:func:`get_header` to read a header that older peers send as ``X-Micro-*``.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable

from micro.errors import ConnectError, ConnectionClosed

__all__ = [
    "ConnectError",
    "ConnectionClosed",
    "Handler",
    "Listener",
    "Message",
    "Socket",
    "Transport",
    "get_header",
]

DEFAULT_MAX_BODY = 4 * 1024 * 1024


class Message:
    """One transport message. ``header`` keys are canonical HTTP header names."""

    __slots__ = ("body", "header")

    def __init__(self, header: dict[str, str] | None = None, body: bytes = b"") -> None:
        self.header = header if header is not None else {}
        self.body = body

    def __repr__(self) -> str:
        return f"Message(header={self.header!r}, body={self.body[:64]!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return self.header == other.header and self.body == other.body


def get_header(header: dict[str, str], name: str, default: str = "") -> str:
    """Read ``Micro-X`` or, failing that, its legacy spelling ``X-Micro-X``."""
    value = header.get(name)
    if value is None:
        value = header.get("X-" + name)
    return default if value is None else value


class Socket(abc.ABC):
    """One connection. Not safe for concurrent ``recv`` calls; one exchange at a time."""

    local: str = ""
    remote: str = ""
    busy: bool = False
    """Set by the handler of an accepted socket while it serves a call: a transport that
    closes idle connections spares a busy one (a stream may be quiet for a long time)."""

    @abc.abstractmethod
    async def send(self, message: Message) -> None:
        """Send one message.

        Raises:
            ConnectionClosed: the connection is closed.
        """

    @abc.abstractmethod
    async def recv(self) -> Message:
        """Wait for the next message.

        Raises:
            ConnectionClosed: the peer closed the connection (also on a clean close). On an
                accepted socket also when the transport refused what the peer sent (not
                HTTP, too large): the transport has already answered the peer and closed.
            PayloadTooLarge, BadRequest: on a dialed socket, the peer sent something that
                is not a message (the socket is closed after).
        """

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the connection; idempotent, never raises."""

    @property
    @abc.abstractmethod
    def closed(self) -> bool:
        """True once either side closed the connection."""

    @property
    def answered(self) -> bool:
        """On a dialed socket: whether any byte of an answer to the last ``send`` arrived.

        A client may send a request again on a new connection when a kept-alive one closed
        with nothing answered: the server closed it, idle, as the request left. A backend
        that cannot tell says True (never resend).
        """
        return True


Handler = Callable[[Socket], Awaitable[None]]
"""Called once per accepted connection; the connection is closed when it returns."""


class Listener(abc.ABC):
    """A bound server socket that hands each accepted connection to a handler task."""

    @property
    @abc.abstractmethod
    def address(self) -> str:
        """The bound ``host:port`` (the real port when bound to port 0)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop accepting. Open connections are left to their handlers to finish."""


class Transport(abc.ABC):
    """Dials and listens. One instance may be shared by a client and a server."""

    name: str = "transport"

    @abc.abstractmethod
    async def dial(self, address: str, *, timeout: float = 5.0) -> Socket:
        """Open a connection to ``address`` (``host:port``).

        Raises:
            ConnectError: nothing listens there, or the dial took longer than ``timeout``.
        """

    @abc.abstractmethod
    async def listen(self, address: str, handler: Handler) -> Listener:
        """Bind ``address`` (port 0 picks a free port) and serve each connection with ``handler``.

        Raises:
            ConnectError: the address cannot be bound.
        """

    async def close(self) -> None:
        """Release shared resources (never raises)."""
