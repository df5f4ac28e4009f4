"""Every transport by name, for suites that run over each: the in-process ones and the real
servers' (NATS and RabbitMQ found by tests/servers.py)."""

from __future__ import annotations

from micro import plugins
from micro.transport import Transport
from tests.servers import amqp_url, nats_url

ALL = ["memory", "http", "tcp", "nats", "rabbitmq"]
"""Transport names, cheapest first."""


def make_transport(name: str) -> Transport:
    """A new transport ``name``; nats and rabbitmq on the test servers."""
    where = {"nats": nats_url, "rabbitmq": amqp_url}.get(name)
    return plugins.create("transport", name, address=where() if where else None)
