"""Where the tests find NATS (JetStream), Redis, RabbitMQ and mosquitto.

For each server (``nats``, ``redis``, ``rabbitmq``, ``mqtt``) the address is, in this order:

1. ``MICRO_TEST_NATS`` / ``MICRO_TEST_REDIS`` / ``MICRO_TEST_RABBITMQ`` / ``MICRO_TEST_MQTT``
   (``host:port``) when set;
2. the default port on 127.0.0.1 (4222, 6379, 5672, 1883) when something accepts there;
3. else a private instance on a free loopback port, started on first use, once per process,
   and stopped when the process exits.

The address found is exported to ``MICRO_TEST_<NAME>``, so processes the tests spawn (and
that import this module) use the same server. A missing server binary is an error, never a
skip.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

DEFAULT_PORTS = {"nats": 4222, "redis": 6379, "rabbitmq": 5672, "mqtt": 1883}
PACKAGES = {  # the Debian package that has the server
    "nats": "nats-server",
    "redis": "redis-server",
    "rabbitmq": "rabbitmq-server",
    "mqtt": "mosquitto",
}
BINARIES = {**PACKAGES, "rabbitmq": "/usr/lib/rabbitmq/bin/rabbitmq-server"}

_lock = threading.Lock()
_private: dict[str, Any] = {}  # name -> the running private instance
started: list[str] = []  # one line per private instance, for the session summary


def env_var(name: str) -> str:
    return f"MICRO_TEST_{name.upper()}"


def address(name: str) -> str:
    """``host:port`` of the ``name`` server the tests must use (see the module docstring)."""
    with _lock:
        found = os.environ.get(env_var(name)) or _default(name) or _start(name)
        os.environ[env_var(name)] = found
        return found


def host_port(name: str) -> tuple[str, int]:
    host, _, port = address(name).rpartition(":")
    return host, int(port)


def nats_url() -> str:
    return f"nats://{address('nats')}"


def redis_url() -> str:
    return f"redis://{address('redis')}"


def amqp_url() -> str:
    return f"amqp://guest:guest@{address('rabbitmq')}/"


def mqtt_address() -> str:
    return address("mqtt")


def accepts(host: str, port: int) -> bool:
    """True when a TCP connect to host:port succeeds."""
    try:
        socket.create_connection((host, port), timeout=1.0).close()
    except OSError:
        return False
    return True


def _default(name: str) -> str:
    port = DEFAULT_PORTS[name]
    return f"127.0.0.1:{port}" if accepts("127.0.0.1", port) else ""


def _start(name: str) -> str:
    if shutil.which(BINARIES[name]) is None:
        raise RuntimeError(
            f"tests need {PACKAGES[name]}: nothing listens on 127.0.0.1:{DEFAULT_PORTS[name]}, "
            f"{env_var(name)} is not set, and there is no {BINARIES[name]} to start one; "
            f"install the Debian package {PACKAGES[name]} (apt-get install {PACKAGES[name]})"
        )
    server = _instance(name)
    server.spawn()
    try:
        _wait(server, timeout=90 if name == "rabbitmq" else 20)
    except BaseException:
        server.close()
        raise
    _private[name] = server
    found = f"127.0.0.1:{server.port}"
    line = (
        f"tests: no {PACKAGES[name]} on 127.0.0.1:{DEFAULT_PORTS[name]}; "
        f"started a private one on {found} ({env_var(name)})"
    )
    started.append(line)
    print(line, file=sys.stderr, flush=True)
    return found


def _instance(name: str) -> Any:
    """An unstarted private server: it has ``port``, ``proc``, ``spawn()`` and ``close()``."""
    if name == "rabbitmq":
        from tests.broker.rabbitmq.private_node import PrivateRabbit

        return PrivateRabbit()
    if name == "mqtt":
        from tests.broker.mqtt.private_mosquitto import PrivateMosquitto

        return PrivateMosquitto(persistence=False)
    from tests.broker.helpers import PrivateNats, PrivateRedis

    directory = Path(tempfile.mkdtemp(prefix=f"micro-test-{name}-"))
    return PrivateNats(directory) if name == "nats" else PrivateRedis(directory, durable=False)


def _wait(server: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not accepts("127.0.0.1", server.port):
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.proc.args} exited with {server.proc.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{server.proc.args} not listening after {timeout} s")
        time.sleep(0.1)


@atexit.register
def stop_all() -> None:
    """Stop every private instance (their process groups; rabbitmq's own epmd too)."""
    with _lock:
        while _private:
            name, server = _private.popitem()
            server.close()
            os.environ.pop(env_var(name), None)
