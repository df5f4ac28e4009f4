"""Sans-IO parts of the MQTT broker: addresses, topic checks, v5 properties, ack order."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from micro.errors import BrokerError

DEFAULT_ADDRESS = "127.0.0.1:1883"
MAX_TOPIC = 65535  # MQTT UTF-8 string length limit


def parse_address(address: str) -> tuple[str, int]:
    """``host:port``, ``host`` or ``mqtt://host:port`` (also ``tcp://``) as (host, port).

    Raises:
        BrokerError: not such an address.
    """
    address = address.strip() or DEFAULT_ADDRESS
    if "://" in address:
        parts = urlsplit(address)
        if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
            raise BrokerError(f"mqtt: address {address!r}: use mqtt://host:port or host:port")
        try:
            return parts.hostname, parts.port or 1883
        except ValueError as exc:
            raise BrokerError(f"mqtt: address {address!r}: bad port") from exc
    host, sep, port = address.rpartition(":")
    if not sep:
        return address, 1883
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BrokerError(f"mqtt: address {address!r} is not host:port")
    return host, int(port)


def _check_common(kind: str, topic: str) -> None:
    if not topic:
        raise BrokerError(f"mqtt: {kind} must not be empty")
    if "\x00" in topic or len(topic.encode()) > MAX_TOPIC:
        raise BrokerError(f"mqtt: {kind} {topic[:40]!r} has a NUL or is too long")


def check_topic(topic: str) -> str:
    """A topic to publish to: no wildcards, not a ``$`` system topic.

    Raises:
        BrokerError: it is not a valid MQTT topic name.
    """
    _check_common("topic", topic)
    if "+" in topic or "#" in topic or topic.startswith("$"):
        raise BrokerError(f"mqtt: cannot publish to {topic!r} (wildcard or $ topic)")
    return topic


def check_filter(topic: str) -> str:
    """A topic filter to subscribe to: ``+`` a whole level, ``#`` the last level only.

    Raises:
        BrokerError: it is not a valid MQTT topic filter.
    """
    _check_common("topic", topic)
    levels = topic.split("/")
    for i, level in enumerate(levels):
        if ("+" in level and level != "+") or ("#" in level and level != "#"):
            raise BrokerError(f"mqtt: bad wildcard in topic filter {topic!r}")
        if level == "#" and i != len(levels) - 1:
            raise BrokerError(f"mqtt: '#' must be the last level in {topic!r}")
    return topic


def subscription_filter(topic: str, queue: str | None) -> str:
    """``topic`` for broadcast, ``$share/<queue>/<topic>`` for a queue group.

    Raises:
        BrokerError: the topic or queue name is not valid in MQTT.
    """
    check_filter(topic)
    if queue is None:
        return topic
    if not queue or any(c in queue for c in "/+#\x00"):
        raise BrokerError(f"mqtt: queue name {queue!r} must be non-empty without / + #")
    return f"$share/{queue}/{topic}"


def session_id(client_id: str, topic: str, queue: str | None, index: int = 0) -> str:
    """A stable client id for a subscription of ``client_id`` (same inputs, same id).

    ``index`` tells apart several subscriptions of one process to the same topic and queue
    (the n-th one made gets ``n``), which would otherwise take each other's session over.
    """
    digest = hashlib.sha1(f"{topic}\x00{queue or ''}".encode()).hexdigest()[:12]
    return f"{client_id}-{digest}" + (f"-{index}" if index else "")


def publish_properties(header: Mapping[str, str]) -> Properties:
    """v5 PUBLISH properties: every header as a user property, Content-Type also native."""
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    if header:
        props.UserProperty = list(header.items())
    if content_type := header.get("Content-Type"):
        props.ContentType = content_type
    return props


def header_from(properties: Properties | None) -> dict[str, str]:
    """The message header from received v5 properties (none for v3 or foreign publishers)."""
    if properties is None:
        return {}
    header = {str(k): str(v) for k, v in getattr(properties, "UserProperty", None) or ()}
    content_type = getattr(properties, "ContentType", None)
    if content_type and "Content-Type" not in header:
        header["Content-Type"] = str(content_type)
    return header


class AckOrder:
    """PUBACKs in arrival order, as MQTT requires, while handlers finish in any order.

    ``add(mid)`` when a QoS 1 message arrives; ``done(mid)`` when it is settled. Each call
    to ``send`` acknowledges the longest settled prefix.
    """

    def __init__(self, send: Callable[[int], None]) -> None:
        self._pending: OrderedDict[int, bool] = OrderedDict()
        self._send = send

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, mid: int) -> None:
        self._pending[mid] = False

    def done(self, mid: int) -> None:
        if mid not in self._pending:
            return
        self._pending[mid] = True
        while self._pending:
            first, settled = next(iter(self._pending.items()))
            if not settled:
                break
            del self._pending[first]
            self._send(first)

    def clear(self) -> None:
        """Forget everything (after a reconnect the session redelivers what was pending)."""
        self._pending.clear()
