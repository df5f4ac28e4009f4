"""Helpers shared by the broker tests: a recording handler, ports, private servers, and
subscriber processes killed mid-handler."""

from __future__ import annotations

import abc
import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Self

import pytest

from micro.broker import Broker, BrokerError, Event, Message

# run as a module: as a script, its folder would come first and tests/broker/nats shadow nats
CHILD = "tests.broker.subscriber_child"


class Inbox:
    """A handler that records events; ``wait(n)`` until ``n`` have arrived.

    ``fail`` decides per event whether to raise (after recording it).
    """

    def __init__(self, fail: Callable[[Event], bool] | None = None) -> None:
        self.events: list[Event] = []
        self.fail = fail
        self.changed = asyncio.Event()

    async def __call__(self, event: Event) -> None:
        self.events.append(event)
        self.changed.set()
        if self.fail is not None and self.fail(event):
            raise RuntimeError(f"planted failure on {event.id}")

    async def wait(self, count: int, timeout: float = 10.0) -> list[Event]:
        async with asyncio.timeout(timeout):
            while len(self.events) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.events

    async def wait_for(self, body: bytes, timeout: float = 10.0) -> None:
        """Until an event with ``body`` has arrived."""
        async with asyncio.timeout(timeout):
            while body not in self.bodies:
                self.changed.clear()
                await self.changed.wait()

    @property
    def bodies(self) -> list[bytes]:
        return [event.message.body for event in self.events]


def msg(i: int | str, **header: str) -> Message:
    return Message({"Micro-Id": f"id-{i}", "Content-Type": "text/plain", **header}, f"{i}".encode())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_port(port: int, timeout: float = 10.0) -> None:
    """Until something accepts on 127.0.0.1:port."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return


class PrivateServer(abc.ABC):
    """A server process (in its own process group) on a free loopback port, with its files in
    ``directory``."""

    scheme = ""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @abc.abstractmethod
    def command(self) -> list[str]:
        """The command line that runs the server in the foreground."""

    def spawn(self) -> None:
        """Start the process; it listens soon after."""
        self.proc = subprocess.Popen(
            self.command(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    async def start(self) -> None:
        self.spawn()
        await wait_port(self.port)

    async def __aenter__(self) -> Self:
        """Started; killed on exit (a fixture: ``async with PrivateX(tmp_path) as s: yield s``)."""
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.kill()

    def kill(self) -> None:
        """SIGKILL its process group: the crash case, no clean shutdown."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def close(self) -> None:
        """Kill it and remove its directory."""
        self.kill()
        shutil.rmtree(self.directory, ignore_errors=True)


class PrivateNats(PrivateServer):
    """``nats-server -js`` on a free loopback port with its store in ``directory``."""

    scheme = "nats"

    def command(self) -> list[str]:
        cmd = ["nats-server", "-a", "127.0.0.1", "-p", str(self.port), "-js"]
        cmd += ["-sd", str(self.directory / "store"), "-l", str(self.directory / "nats.log")]
        return cmd


class PrivateRedis(PrivateServer):
    """redis-server on a free loopback port in ``directory``; ``durable``: AOF fsynced on
    every write, else nothing saved."""

    scheme = "redis"

    def __init__(self, directory: Path, *, durable: bool = True) -> None:
        super().__init__(directory)
        self.durable = durable

    def command(self) -> list[str]:
        cmd = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        if self.durable:
            cmd += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            cmd += ["--appendonly", "no"]
        cmd += ["--dir", str(self.directory), "--logfile", str(self.directory / "redis.log")]
        return cmd


async def check_publishes_survive_a_crash(
    broker: Broker, server: PrivateServer, topic: str
) -> None:
    """Publish 50 with a live group and an offline one, SIGKILL and restart ``server`` (same
    port, same files): the offline group gets all 50, and the broker reconnects by itself."""
    async with broker:
        offline = await broker.subscribe(topic, Inbox(), queue="offline")
        await offline.unsubscribe()  # the group stays, with nobody reading
        live = Inbox()
        await broker.subscribe(topic, live, queue="live")  # stays subscribed across the crash
        for i in range(50):
            await broker.publish(topic, Message({"Micro-Id": str(i)}, str(i).encode()))
        await live.wait(50)
        server.kill()  # SIGKILL: no clean shutdown
        with pytest.raises(BrokerError, match="not accepted"):
            await broker.publish(topic, Message({}, b"server is down"))
        await server.start()  # same port, same files: what was acknowledged is back
        back = Inbox()
        await broker.subscribe(topic, back, queue="offline")
        stored = await back.wait(50, timeout=20)
        assert sorted(int(e.message.body) for e in stored) == list(range(50))
        await broker.publish(topic, Message({}, b"after"))  # the broker reconnected by itself
        # at-least-once: a message whose ack the crash lost may come again before "after"
        await live.wait_for(b"after", timeout=20)
        assert set(live.bodies) == {str(i).encode() for i in range(50)} | {b"after"}


@contextlib.contextmanager
def child_subscriber(
    backend: str, url: str, topic: str, queue: str, options: str = "{}"
) -> Iterator[subprocess.Popen[str]]:
    """A subscriber process that reports ``GOT <body>`` and then hangs in its handler."""
    proc = subprocess.Popen(
        [sys.executable, "-m", CHILD, backend, url, topic, queue, options],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": "src"},
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


async def readline(proc: subprocess.Popen[str], timeout: float = 15.0) -> str:
    assert proc.stdout is not None
    return (await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), timeout)).strip()
