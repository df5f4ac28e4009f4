"""The blocking facade: from plain code, from threads, and under a running event loop."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

import micro
from micro import metadata, plugins
from micro.client.sync import BlockingClient
from micro.errors import NotFound, Timeout
from micro.transport import Message, Socket
from micro.transport.http import HttpTransport
from tests.client.fakes import FakeServer, fail, reply_to, slow


class Remote:
    """A FakeServer on real sockets, running on an event loop in another thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.transport = HttpTransport()
        self.server = self.run(FakeServer(self.transport).start())

    def run(self, coro: object) -> FakeServer:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(5)  # type: ignore[arg-type]

    @property
    def address(self) -> str:
        return self.server.address

    def stop(self) -> None:
        async def shutdown() -> None:
            await self.server.stop()
            await self.transport.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def remote() -> Iterator[Remote]:
    server = Remote()
    yield server
    server.stop()


async def count(sock: Socket, first: Message) -> None:
    stream = {"Micro-Stream": first.header["Micro-Stream"]}
    for n in range(msgspec.json.decode(first.body)["to"]):
        await sock.send(reply_to(first, {"n": n}, **stream))
    await sock.send(reply_to(first, **stream, **{"Micro-Error": "EOS"}))


def test_blocking_call_from_plain_code(remote: Remote) -> None:
    with BlockingClient(transport="http") as client:
        assert client.call("greeter", "G.H", {"a": 1}, address=remote.address) == {"a": 1}
        with metadata.context({"x-caller": "script"}):
            client.call("greeter", "G.H", {}, address=remote.address)
        thread = client._thread
        assert thread is not None
        assert thread.daemon
        assert thread.is_alive()
    assert not thread.is_alive()
    assert remote.server.requests[1].header["X-Caller"] == "script"
    client.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        client.call("greeter", "G.H", {}, address=remote.address)


class Echo(msgspec.Struct):
    a: int


def test_blocking_call_decodes_into_the_response_type(remote: Remote) -> None:
    with BlockingClient(transport="http") as client:
        rsp = client.call("g", "G.H", {"a": 7}, response_type=Echo, address=remote.address)
        assert rsp == Echo(a=7)
        with pytest.raises(TypeError, match="timout"):
            client.call("g", "G.H", {}, address=remote.address, timout=1)  # type: ignore[call-overload]


def test_blocking_errors_keep_their_class(remote: Remote) -> None:
    remote.server.handlers["G.Missing"] = fail(NotFound("nothing here", id="greeter"))
    remote.server.handlers["G.Slow"] = slow(5.0)
    with micro.Client.blocking(transport="http") as client:
        assert isinstance(client, BlockingClient)
        with pytest.raises(NotFound, match="nothing here"):
            client.call("greeter", "G.Missing", {}, address=remote.address)
        with pytest.raises(Timeout):
            client.call("greeter", "G.Slow", {}, address=remote.address, timeout=0.1)


def test_blocking_stream(remote: Remote) -> None:
    remote.server.streams["Counter.Count"] = count
    with BlockingClient(transport="http") as client:
        items = list(client.stream("c", "Counter.Count", {"to": 3}, address=remote.address))
        assert items == [{"n": 0}, {"n": 1}, {"n": 2}]
        with client.stream("c", "Counter.Count", {"to": 1}, address=remote.address) as stream:
            assert stream.recv() == {"n": 0}
            with pytest.raises(StopIteration):
                stream.recv()


async def test_blocking_call_under_a_running_loop(remote: Remote) -> None:
    """As in Jupyter: a loop runs in this thread and the cell calls the blocking API."""
    client = BlockingClient(transport="http")
    try:
        assert client.call("greeter", "G.H", {"nb": 1}, address=remote.address) == {"nb": 1}
        # and from a worker thread while this loop keeps running
        rsp = await asyncio.to_thread(
            client.call, "greeter", "G.H", {"t": 2}, address=remote.address
        )
        assert rsp == {"t": 2}
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)

        ticker = asyncio.create_task(tick())
        calls = [
            asyncio.to_thread(client.call, "greeter", "G.H", {"n": n}, address=remote.address)
            for n in range(8)
        ]
        assert await asyncio.gather(*calls) == [{"n": n} for n in range(8)]
        ticker.cancel()
        assert ticks > 0
    finally:
        client.close()


def test_blocking_client_refuses_to_deadlock_its_own_loop(remote: Remote) -> None:
    with BlockingClient(transport="http") as client:

        async def reenter() -> object:
            return client.call("greeter", "G.H", {}, address=remote.address)

        with pytest.raises(RuntimeError, match="own event loop"):
            client.run(reenter())
        assert client.call("greeter", "G.H", {"ok": 1}, address=remote.address) == {"ok": 1}


def test_blocking_client_with_bad_options_fails_before_any_thread() -> None:
    client = BlockingClient(transport="carrier-pigeon")
    with pytest.raises(plugins.PluginNotFound):
        client.call("greeter", "G.H", {}, address="127.0.0.1:1")
    assert client._thread is None
    client.close()


@pytest.fixture
def interactive_sigint() -> Iterator[None]:
    """The SIGINT handler an interactive Ctrl-C meets: a shell starts background jobs with
    SIGINT ignored, and Python then keeps it ignored."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.usefixtures("interactive_sigint")
def test_ctrl_c_while_waiting_cancels_the_call(remote: Remote) -> None:
    remote.server.handlers["G.Slow"] = slow(5.0)
    with BlockingClient(transport="http") as client:
        main = threading.main_thread().ident
        assert main is not None
        timer = threading.Timer(0.2, signal.pthread_kill, (main, signal.SIGINT))  # Ctrl-C
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            client.call("greeter", "G.Slow", {}, address=remote.address, timeout=10)
        timer.join()

        async def running() -> int:
            await asyncio.sleep(0.05)
            return len(asyncio.all_tasks()) - 1

        assert client.run(running()) == 0  # the interrupted call no longer runs
        assert client.client._pool.idle(remote.address) == 0
        assert client.call("greeter", "G.H", {"after": 1}, address=remote.address) == {"after": 1}


def test_a_client_left_open_exits_quietly() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MICRO_")}
    env.update(MICRO_MDNS_INTERFACES="127.0.0.1", MICRO_SERVER_ADDRESS="127.0.0.1:0")
    script = Path(__file__).with_name("blocking_unclosed.py")
    name = f"unclosed-{uuid.uuid4().hex[:8]}"
    done = subprocess.run(
        [sys.executable, str(script), name],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "ok" in done.stdout
    assert done.stderr == ""


def test_a_client_left_open_is_closed_when_collected(remote: Remote) -> None:
    client = BlockingClient(transport="http")
    assert client.call("greeter", "G.H", {"a": 1}, address=remote.address) == {"a": 1}
    thread = client._thread
    assert thread is not None
    del client
    gc.collect()
    thread.join(10)
    assert not thread.is_alive()
