"""``micro-tcp``, ``micro-nats``, ``micro-rabbitmq``: the ``micro`` target on other transports.

The same greeter service and client as ``micro_http.py`` (whose code this reuses), with
``transport=<name>`` on both ``micro.Service`` and ``micro.Client``. The client calls the
address the server's listener reports, whatever its form: ``host:port`` for tcp, a subject
for nats, a queue name for rabbitmq.

A target is skipped, with a reason naming its transport, while that transport is not in
micro.plugins' "transport" table (or its driver does not import), and a broker transport
also while its broker is not reachable at the runner's ``--nats-url`` / ``--amqp-url``.
The transports find their broker through their own settings (docs/configuration.md), whose
defaults are the same loopback servers; set those in the environment to point elsewhere
(the server subprocesses inherit it).

The server subprocess learns its transport from ``$BENCH_MICRO_TRANSPORT``.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import ClassVar

from benchmarks.harness import Options
from benchmarks.targets._brokers import rabbitmq_version, unreachable
from benchmarks.targets.micro_http import MicroTarget, open_service
from micro import plugins

TRANSPORT_ENV = "BENCH_MICRO_TRANSPORT"


async def open_server() -> tuple[str, Callable[[], Awaitable[None]]]:
    return await open_service(os.environ[TRANSPORT_ENV])


def transport_missing(name: str) -> str | None:
    """Why micro's ``name`` transport cannot be used here, or ``None`` if it can."""
    known = plugins.known("transport")
    if name not in known:
        return (
            f"micro transport {name!r} is not registered in micro.plugins "
            f"(known transports: {', '.join(known)})"
        )
    try:
        plugins.resolve("transport", name)
    except (plugins.PluginNotFound, AttributeError) as exc:  # its driver does not import
        return f"micro transport {name!r} does not load: {exc}"
    return None


class MicroTransportTarget(MicroTarget):
    """``micro`` with ``transport`` on both sides; subclasses name the transport."""

    server_module = __name__
    import_probes: ClassVar[dict[str, str]] = {}  # ``import micro`` is timed by ``micro``

    def unavailable(self, options: Options) -> str | None:
        return super().unavailable(options) or transport_missing(self.transport)

    def server_env(self, options: Options) -> dict[str, str]:
        return {TRANSPORT_ENV: self.transport}


class MicroTcpTarget(MicroTransportTarget):
    name = "micro-tcp"
    title = "micro tcp transport (mucp frames multiplexed over TCP)"
    transport = "tcp"


class MicroNatsTarget(MicroTransportTarget):
    name = "micro-nats"
    title = "micro nats transport (mucp over NATS request/reply)"
    transport = "nats"

    def unavailable(self, options: Options) -> str | None:
        missing = super().unavailable(options)
        return missing or unreachable(options.nats_url, 4222, "NATS server")

    def broker_info(self, options: Options) -> str | None:
        from benchmarks.targets.nats_reqrep import NatsTarget

        return NatsTarget().broker_info(options)


class MicroRabbitmqTarget(MicroTransportTarget):
    name = "micro-rabbitmq"
    title = "micro rabbitmq transport (mucp over AMQP queues)"
    transport = "rabbitmq"

    def unavailable(self, options: Options) -> str | None:
        missing = super().unavailable(options)
        return missing or unreachable(options.amqp_url, 5672, "RabbitMQ")

    def broker_info(self, options: Options) -> str | None:
        return rabbitmq_version(options.amqp_url)


TCP = MicroTcpTarget()
NATS = MicroNatsTarget()
RABBITMQ = MicroRabbitmqTarget()
