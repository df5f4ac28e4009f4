"""What the broker targets share: is the broker there, and which one is it."""

from __future__ import annotations

import importlib
import socket
from urllib.parse import urlsplit


def unreachable(url: str, default_port: int, what: str) -> str | None:
    """Why nothing accepts a TCP connection at ``url``'s host and port, or ``None``."""
    parts = urlsplit(url if "//" in url else f"//{url}")
    address = (parts.hostname or "127.0.0.1", parts.port or default_port)
    try:
        socket.create_connection(address, timeout=1.0).close()
    except OSError as exc:
        return f"{what} not reachable at {address[0]}:{address[1]} ({exc})"
    return None


def rabbitmq_version(url: str) -> str | None:
    """The AMQP broker's product and version from its connection properties, if it answers."""
    try:
        kombu = importlib.import_module("kombu")  # installed with nameko (group bench)
        with kombu.Connection(url, connect_timeout=2) as conn:
            conn.connect()
            props = conn.connection.server_properties
    except Exception:
        return None
    return f"{props.get('product', 'AMQP broker')} {props.get('version', '?')}"
