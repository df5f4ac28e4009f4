"""Sans-IO parts of the RabbitMQ broker: addresses, names, and AMQP header mapping."""

from __future__ import annotations

import datetime
import decimal
import hashlib
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from micro.errors import BrokerError

DEFAULT_ADDRESS = "amqp://guest:guest@127.0.0.1:5672/"
MAX_NAME = 255  # AMQP shortstr: routing keys, queue and exchange names
_NAME_CHARS = re.compile(r"[^a-zA-Z0-9\-_.:@#,/+ ]")  # what pamqp accepts in queue names

# Headers RabbitMQ adds when it dead-letters a message; not the publisher's.
_BOOKKEEPING = ("x-death", "x-first-death-", "x-last-death-")
# Scalars a foreign publisher may put in an AMQP header table; they become their str().
_SCALARS = (int, float, decimal.Decimal, datetime.datetime)


def amqp_url(address: str) -> str:
    """``host:port`` (guest/guest, vhost ``/``) or an ``amqp(s)://`` URL, as a URL.

    Raises:
        BrokerError: the address is empty or not an AMQP URL.
    """
    address = address.strip()
    if not address:
        return DEFAULT_ADDRESS
    if "://" not in address:
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise BrokerError(f"rabbitmq: address {address!r} is not host:port or an amqp URL")
        return f"amqp://guest:guest@{host}:{port}/"
    scheme = urlsplit(address).scheme
    if scheme not in ("amqp", "amqps"):
        raise BrokerError(f"rabbitmq: address {address!r}: scheme must be amqp or amqps")
    return address


def check_name(kind: str, name: str) -> str:
    """``name`` if it is a valid AMQP short string (1..255 UTF-8 bytes).

    Raises:
        BrokerError: it is empty or too long.
    """
    if not name:
        raise BrokerError(f"rabbitmq: {kind} must not be empty")
    if len(name.encode()) > MAX_NAME:
        raise BrokerError(f"rabbitmq: {kind} {name[:40]!r}... is over {MAX_NAME} bytes")
    return name


def check_exchange(name: str) -> str:
    """``name`` if RabbitMQ accepts it as an exchange name.

    Raises:
        BrokerError: it is empty, too long, or has characters outside ``A-Za-z0-9-_.:@#,/+``.
    """
    if _NAME_CHARS.search(name):
        raise BrokerError(f"rabbitmq: exchange {name!r} has characters AMQP does not allow")
    return check_name("exchange", name)


def name_part(text: str) -> str:
    """``text`` made safe for a queue name (``*`` and the like become ``_`` plus a hash)."""
    safe = _NAME_CHARS.sub("_", text)
    if safe != text:
        safe += "-" + hashlib.sha1(text.encode()).hexdigest()[:8]
    return safe


def group_queue(exchange: str, topic: str, queue: str) -> str:
    """The durable shared queue of a queue group: ``<exchange>.<topic>.<queue>``."""
    return check_name("queue name", f"{exchange}.{name_part(topic)}.{name_part(queue)}")


def dead_letter_queue(queue: str) -> str:
    """Where a group queue's dead letters go: ``<queue>.dlq``."""
    return check_name("dead-letter queue name", f"{queue}.dlq")


def broadcast_queue(exchange: str, topic: str, token: str) -> str:
    """A subscriber's own exclusive queue: ``<exchange>.<topic>.broadcast.<token>``."""
    return check_name("queue name", f"{exchange}.{name_part(topic)}.broadcast.{token}")


def to_amqp(header: Mapping[str, str]) -> dict[str, Any]:
    """Properties for an outgoing message: headers, and content type / id from them."""
    props: dict[str, Any] = {"headers": dict(header)}
    if content_type := header.get("Content-Type"):
        props["content_type"] = content_type
    if message_id := header.get("Micro-Id"):
        props["message_id"] = message_id
    return props


def from_amqp(
    headers: Mapping[str, Any] | None, content_type: str | None, message_id: str | None
) -> dict[str, str]:
    """A message header dict from an incoming AMQP message.

    String headers pass through; byte strings must be UTF-8; numbers and timestamps become
    their text. Tables, arrays and RabbitMQ's dead-letter bookkeeping (``x-death``,
    ``x-first-death-*``, ``x-last-death-*``) are left out.
    ``Content-Type``/``Micro-Id`` fall back to the content_type/message_id properties, so a
    foreign publisher that only sets properties still reads naturally.

    Raises:
        ValueError: a header is not valid UTF-8 (the message is undecodable).
    """
    header: dict[str, str] = {}
    for key, value in (headers or {}).items():
        if key.startswith(_BOOKKEEPING):
            continue
        if isinstance(value, str):
            header[key] = value
        elif isinstance(value, bytes | bytearray | memoryview):
            header[key] = bytes(value).decode()  # UnicodeDecodeError is a ValueError
        elif isinstance(value, bool):
            header[key] = "true" if value else "false"
        elif isinstance(value, _SCALARS):
            header[key] = str(value)
    if content_type and "Content-Type" not in header:
        header["Content-Type"] = content_type
    if message_id and "Micro-Id" not in header:
        header["Micro-Id"] = message_id
    return header
