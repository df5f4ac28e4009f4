"""``nats``: nats-py request/reply through a NATS server (``--nats-url``), JSON bodies.

The responder subscribes to a unique subject per run; the client sends ``nc.request`` on one
connection (NATS multiplexes replies through one inbox subscription). Needs nats-py
(``pip install nats-py``); the runner skips this target without it.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import nats

from benchmarks.harness import REQUEST, Client, Options, ServerProcess, Target

URL_ENV = "BENCH_NATS_URL"
SUBJECT_ENV = "BENCH_NATS_SUBJECT"


async def open_server() -> tuple[str, Callable[[], Awaitable[None]]]:
    nc = await nats.connect(os.environ[URL_ENV])
    subject = os.environ[SUBJECT_ENV]

    async def greeter(msg: Any) -> None:
        body = json.loads(msg.data)
        await msg.respond(json.dumps({"msg": f"Hello {body['name']}"}).encode())

    await nc.subscribe(subject, cb=greeter)
    await nc.flush()
    return subject, nc.close


class NatsTarget(Target):
    name = "nats"
    title = "nats-py request/reply via nats-server"
    server_module = __name__
    import_probes = {"nats": "import nats"}

    def __init__(self) -> None:
        self.subject = f"bench.greeter.{os.getpid()}.{secrets.token_hex(3)}"
        self.url = ""

    def unavailable(self, options: Options) -> str | None:
        url = urlsplit(options.nats_url)
        address = (url.hostname or "127.0.0.1", url.port or 4222)
        try:
            socket.create_connection(address, timeout=1.0).close()
        except OSError as exc:
            return f"NATS server not reachable at {address[0]}:{address[1]} ({exc})"
        return None

    def broker_info(self, options: Options) -> str | None:
        """nats-server announces itself in its first line: ``INFO {"version": ...}``."""
        url = urlsplit(options.nats_url)
        try:
            with socket.create_connection((url.hostname, url.port or 4222), timeout=1.0) as sock:
                line = sock.makefile("rb").readline()
            return f"nats-server {json.loads(line.split(b' ', 1)[1])['version']}"
        except (OSError, ValueError, KeyError, IndexError):
            return None

    def server_env(self, options: Options) -> dict[str, str]:
        return {URL_ENV: options.nats_url, SUBJECT_ENV: self.subject}

    def start_server(self, options: Options) -> ServerProcess:
        self.url = options.nats_url
        return super().start_server(options)

    async def make_client(self, address: str) -> Client:
        nc = await nats.connect(self.url)

        async def call() -> Any:
            reply = await nc.request(address, json.dumps(REQUEST).encode(), timeout=10)
            return json.loads(reply.data)

        return Client(call=call, close=nc.close)


TARGET = NatsTarget()
