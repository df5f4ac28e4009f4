"""Sans-IO parts of the RabbitMQ transport: addresses, queue names, control headers."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from micro.broker import _rabbitmq_wire as broker_wire
from micro.errors import BrokerError, ConnectError

TRANSPORT_ID = "go.micro.transport"
DEFAULT_MAX_BODY = 16 * 1024 * 1024
CONTROL = "Micro-Transport"
"""The header of the transport's own messages: ``open`` (a dial), ``close`` (the end of a
virtual connection), ``refused`` (a listener's answer to a message for a connection it no
longer has: that message was not read). Never seen by a handler."""
OPEN, CLOSE, REFUSED = "open", "close", "refused"
OPEN_SUFFIX = ".open"
"""An open message's correlation id is the socket id plus this, so that a Go listener (which
knows no open) serves it as a stray connection of its own, not as the socket's first call."""
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"
_PORT_ZERO = re.compile(r"^(\[[^\]]*\]|[^:]*):0$")


SCHEME = "rabbitmq://"
"""A listener's address is ``rabbitmq://<queue>``; the server advertises the bare queue name
(as go-plugins registers it), and ``dial`` takes either."""


def strip_scheme(address: str) -> str:
    """``rabbitmq://name`` -> ``name``; anything else as it is."""
    return address[len(SCHEME) :] if address.startswith(SCHEME) else address


def urls(address: str | Sequence[str]) -> list[str]:
    """AMQP URLs from ``address``: one or a comma-separated list of URLs or ``host:port``.

    Raises:
        ValueError: an entry is not ``host:port`` or an ``amqp(s)://`` URL.
    """
    parts = address.split(",") if isinstance(address, str) else list(address)
    found = [part.strip() for part in parts if part.strip()]
    try:
        return [broker_wire.amqp_url(part) for part in found] or [broker_wire.DEFAULT_ADDRESS]
    except BrokerError as exc:
        raise ValueError(exc.detail.replace("rabbitmq: ", "rabbitmq transport: ")) from None


def safe_url(url: str) -> str:
    """``url`` without its credentials, for messages."""
    head, _, tail = url.rpartition("@")
    return f"{head.partition('://')[0]}://***@{tail}" if head else url


def queue_name(address: str) -> str:
    """The listener queue for ``listen(address)``: a fresh unique name for ``""``, ``:0`` or
    ``host:0`` (as go-plugins' transport does, a UUID), else ``address`` itself.

    Raises:
        ConnectError: ``address`` is not a queue name a client may declare.
    """
    address = strip_scheme(address.strip())
    if not address or _PORT_ZERO.match(address):
        return str(uuid.uuid4())
    if address.startswith("amq."):
        raise ConnectError(f"listen {address}: names starting amq. are RabbitMQ's", id=TRANSPORT_ID)
    if len(address.encode()) > broker_wire.MAX_NAME:
        raise ConnectError(f"listen {address[:40]}...: over 255 bytes", id=TRANSPORT_ID)
    return address


def check_address(address: str) -> str:
    """The queue name ``address`` (bare or ``rabbitmq://``) dials: what ``dial`` publishes to.

    Raises:
        ConnectError: it is empty or over 255 bytes.
    """
    address = strip_scheme(address)
    if not address or len(address.encode()) > broker_wire.MAX_NAME:
        raise ConnectError(f"dial {address[:40]!r}: not a queue name", id=TRANSPORT_ID)
    return address


def to_amqp(header: Mapping[str, str]) -> dict[str, Any]:
    """Message properties for ``header`` (the headers table, content type and id)."""
    return broker_wire.to_amqp(header)


def from_amqp(
    headers: Mapping[str, Any] | None, content_type: str | None, message_id: str | None
) -> dict[str, str]:
    """A :class:`~micro.transport.Message` header from an AMQP message's properties.

    Raises:
        ValueError: a header is not valid UTF-8.
    """
    return broker_wire.from_amqp(headers, content_type, message_id)
