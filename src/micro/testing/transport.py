"""The contract every :class:`~micro.transport.Transport` backend keeps, as a reusable suite.

    from micro.testing.transport import check_transport

    async def test_my_transport() -> None:
        await check_transport(lambda: MyTransport(), max_body=1 << 20)

``make`` builds a fresh transport for each check; the check listens on ``127.0.0.1:0`` and
dials the bound address with that same instance, then closes it. ``max_body`` is the largest
body the backend promises to carry. The checks are also exported one by one (:data:`CHECKS`)
so a test can parametrize over them. They raise :class:`AssertionError` and need no test
framework; each is bounded by ``timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from micro.errors import ConnectError, ConnectionClosed
from micro.transport import DEFAULT_MAX_BODY, Handler, Listener, Message, Socket, Transport

__all__ = [
    "CHECKS",
    "MakeTransport",
    "check_cancelled_recv",
    "check_client_close",
    "check_concurrent_connections",
    "check_dial_refused",
    "check_large_bodies",
    "check_many_messages",
    "check_round_trip",
    "check_server_close",
    "check_streams_both_ways",
    "check_transport",
]

MakeTransport = Callable[[], Transport]
"""Builds the transport under test (one per check)."""

Check = Callable[[MakeTransport, int], Awaitable[None]]

ADDRESS = "127.0.0.1:0"
HEADER = {
    "Content-Type": "application/octet-stream",
    "Micro-Id": "42",
    "Micro-Service": "contract.echo",
    "Micro-Endpoint": "Echo.Call",
    "X-Micro-Endpoint": "Echo.Call",
    "X-User-Name": "J\u00f6rg \u2713",
}
BINARY = bytes(range(256)) * 4


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


async def _echo(sock: Socket) -> None:
    """Answers every message with the same headers (plus ``Echo: 1``) and body."""
    while True:
        message = await sock.recv()
        await sock.send(Message({**message.header, "Echo": "1"}, message.body))


async def _quiet_echo(sock: Socket) -> None:
    try:
        await _echo(sock)
    except ConnectionClosed:
        pass


@asynccontextmanager
async def _serving(make: MakeTransport, handler: Handler) -> AsyncIterator[tuple[Transport, str]]:
    """Listen with ``handler``; on exit close everything and re-raise what a handler raised
    (other than ConnectionClosed, which is how a handler learns the peer went away)."""
    failures: list[Exception] = []

    async def guarded(sock: Socket) -> None:
        try:
            await handler(sock)
        except ConnectionClosed:
            pass
        except Exception as exc:  # kept for the check to report
            failures.append(exc)

    transport = make()
    listener: Listener | None = None
    try:
        listener = await transport.listen(ADDRESS, guarded)
        yield transport, listener.address
    finally:
        if listener is not None:
            await listener.close()
        await transport.close()
    if failures:
        raise AssertionError(f"a connection handler failed: {failures[0]!r}") from failures[0]


async def _expect_closed(sock: Socket, what: str) -> None:
    try:
        message = await asyncio.wait_for(sock.recv(), 5.0)
    except ConnectionClosed:
        return
    raise AssertionError(f"{what}: recv returned {message!r} instead of raising ConnectionClosed")


async def check_round_trip(make: MakeTransport, max_body: int = DEFAULT_MAX_BODY) -> None:
    """Headers (canonical names, UTF-8 values) and a binary body arrive unchanged both ways."""
    seen: list[Message] = []
    peers: list[tuple[str, str]] = []

    async def handler(sock: Socket) -> None:
        message = await sock.recv()
        seen.append(message)
        peers.append((sock.local, sock.remote))
        await sock.send(Message({"Micro-Id": "42", "X-Reply": "\u00e9t\u00e9"}, BINARY[::-1]))

    async with _serving(make, handler) as (transport, address):
        sock = await transport.dial(address)
        try:
            _expect(bool(sock.local) and bool(sock.remote), "dialed socket lacks local/remote")
            await sock.send(Message(dict(HEADER), BINARY))
            reply = await sock.recv()
        finally:
            await sock.close()
    _expect(len(seen) == 1, f"the server received {len(seen)} messages, not 1")
    for name, value in HEADER.items():
        got = seen[0].header.get(name)
        _expect(got == value, f"request header {name}: sent {value!r}, received {got!r}")
    _expect(seen[0].body == BINARY, "the request body changed on the way")
    _expect(all(peers[0]), "accepted socket lacks local/remote")
    _expect(reply.header.get("X-Reply") == "\u00e9t\u00e9", f"reply header lost: {reply!r}")
    _expect(reply.body == BINARY[::-1], "the response body changed on the way")


async def check_many_messages(make: MakeTransport, max_body: int = DEFAULT_MAX_BODY) -> None:
    """Many messages each way on one connection keep their order, sent ahead of replies."""
    count = 200
    async with _serving(make, _echo) as (transport, address):
        sock = await transport.dial(address)
        try:
            for i in range(count):
                await sock.send(Message({"Micro-Id": str(i)}, f"body {i}".encode()))
            for i in range(count):
                reply = await sock.recv()
                _expect(reply.header.get("Micro-Id") == str(i), f"reply {i} out of order")
                _expect(reply.body == f"body {i}".encode(), f"reply {i} has the wrong body")
                _expect(reply.header.get("Echo") == "1", f"reply {i} lacks the echo header")
        finally:
            await sock.close()


async def check_streams_both_ways(make: MakeTransport, max_body: int = DEFAULT_MAX_BODY) -> None:
    """One task sends while another receives, on each side at once (a bidirectional stream)."""
    count = 100

    async def handler(sock: Socket) -> None:
        async def produce() -> None:
            for i in range(count):
                await sock.send(Message({"Seq": str(i)}, b"s%d" % i))

        producer = asyncio.create_task(produce())
        for i in range(count):
            message = await sock.recv()
            _expect(message.body == b"c%d" % i, f"server got {message.body!r} as message {i}")
        await producer
        await sock.send(Message({"Micro-Error": "EOS"}))

    async with _serving(make, handler) as (transport, address):
        sock = await transport.dial(address)
        try:

            async def produce() -> None:
                for i in range(count):
                    await sock.send(Message({"Seq": str(i)}, b"c%d" % i))

            producer = asyncio.create_task(produce())
            for i in range(count):
                message = await sock.recv()
                _expect(message.body == b"s%d" % i, f"client got {message.body!r} as message {i}")
            await producer
            end = await sock.recv()
            _expect(end.header.get("Micro-Error") == "EOS", f"expected EOS, got {end!r}")
        finally:
            await sock.close()


async def check_concurrent_connections(
    make: MakeTransport, max_body: int = DEFAULT_MAX_BODY
) -> None:
    """Several connections in flight at once each get their own replies."""
    connections, rounds = 16, 20
    async with _serving(make, _echo) as (transport, address):

        async def client(n: int) -> None:
            sock = await transport.dial(address)
            try:
                for i in range(rounds):
                    body = f"conn {n} round {i}".encode()
                    await sock.send(Message({"Conn": str(n)}, body))
                    reply = await sock.recv()
                    _expect(reply.body == body, f"connection {n} got {reply.body!r}")
                    _expect(reply.header.get("Conn") == str(n), f"connection {n}: crossed reply")
            finally:
                await sock.close()

        await asyncio.gather(*(client(n) for n in range(connections)))


async def check_server_close(make: MakeTransport, max_body: int = DEFAULT_MAX_BODY) -> None:
    """A handler that returns closes its connection: the client's recv raises ConnectionClosed,
    after the replies already sent, and so does a later send or recv."""

    async def handler(sock: Socket) -> None:
        await sock.recv()
        await sock.send(Message({"N": "1"}, b"one"))
        await sock.send(Message({"N": "2"}, b"two"))

    async with _serving(make, handler) as (transport, address):
        sock = await transport.dial(address)
        try:
            await sock.send(Message({}, b"go"))
            first, second = await sock.recv(), await sock.recv()
            _expect((first.body, second.body) == (b"one", b"two"), "replies before close lost")
            await _expect_closed(sock, "after the handler returned")
            _expect(sock.closed, "socket.closed is False after the peer closed")
            await _expect_closed(sock, "a second recv after the close")
            try:
                await sock.send(Message({}, b"late"))
            except ConnectionClosed:
                pass
            else:
                raise AssertionError("send on a closed connection did not raise")
        finally:
            await sock.close()


async def check_client_close(make: MakeTransport, max_body: int = DEFAULT_MAX_BODY) -> None:
    """When the client closes, the handler's pending recv raises ConnectionClosed."""
    outcome: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    async def handler(sock: Socket) -> None:
        message = await sock.recv()
        await sock.send(message)
        try:
            await sock.recv()
        except Exception as exc:  # any error is the outcome checked
            outcome.set_result(exc)
            return
        outcome.set_result(None)

    async with _serving(make, handler) as (transport, address):
        sock = await transport.dial(address)
        await sock.send(Message({}, b"hi"))
        await sock.recv()
        await sock.close()
        _expect(sock.closed, "socket.closed is False after close()")
        await sock.close()  # idempotent
        raised = await asyncio.wait_for(outcome, 5.0)
    _expect(
        isinstance(raised, ConnectionClosed),
        f"the handler's recv ended with {raised!r}, not ConnectionClosed",
    )


async def check_dial_refused(make: MakeTransport, max_body: int = DEFAULT_MAX_BODY) -> None:
    """A closed listener accepts no more (dial raises ConnectError naming the address), and
    the connections it accepted before keep working."""
    transport = make()
    try:
        listener = await transport.listen(ADDRESS, _quiet_echo)
        address = listener.address
        sock = await transport.dial(address)
        try:
            await listener.close()
            await sock.send(Message({}, b"still here"))
            reply = await sock.recv()
            _expect(reply.body == b"still here", "an open connection broke on listener close")
        finally:
            await sock.close()
        try:
            late = await transport.dial(address, timeout=2.0)
        except ConnectError as exc:
            _expect(address in exc.detail, f"ConnectError detail lacks the address: {exc!r}")
        else:
            await late.close()
            raise AssertionError(f"dial {address} succeeded after the listener closed")
    finally:
        await transport.close()


async def check_large_bodies(make: MakeTransport, max_body: int = DEFAULT_MAX_BODY) -> None:
    """Bodies just under the limit, and empty ones, make it both ways."""
    big = os.urandom(max(max_body - 4096, 0))
    async with _serving(make, _echo) as (transport, address):
        sock = await transport.dial(address)
        try:
            for body in (big, b"", big[: len(big) // 3]):
                await sock.send(Message({"Size": str(len(body))}, body))
                reply = await sock.recv()
                _expect(
                    len(reply.body) == len(body),
                    f"{len(body)} bytes came back as {len(reply.body)}",
                )
                _expect(reply.body == body, f"a {len(body)} byte body changed on the way")
        finally:
            await sock.close()


async def check_cancelled_recv(make: MakeTransport, max_body: int = DEFAULT_MAX_BODY) -> None:
    """Cancelling a waiting recv loses nothing: the next recv gets the next message."""
    async with _serving(make, _echo) as (transport, address):
        sock = await transport.dial(address)
        try:
            waiting = asyncio.create_task(sock.recv())
            await asyncio.sleep(0.01)
            waiting.cancel()
            try:
                await waiting
            except asyncio.CancelledError:
                pass
            await sock.send(Message({}, b"after cancel"))
            reply = await asyncio.wait_for(sock.recv(), 5.0)
            _expect(reply.body == b"after cancel", f"got {reply!r} after a cancelled recv")
        finally:
            await sock.close()


CHECKS: dict[str, Check] = {
    "round_trip": check_round_trip,
    "many_messages": check_many_messages,
    "streams_both_ways": check_streams_both_ways,
    "concurrent_connections": check_concurrent_connections,
    "server_close": check_server_close,
    "client_close": check_client_close,
    "dial_refused": check_dial_refused,
    "large_bodies": check_large_bodies,
    "cancelled_recv": check_cancelled_recv,
}


async def check_transport(
    make: MakeTransport, *, max_body: int = DEFAULT_MAX_BODY, timeout: float = 30.0
) -> None:
    """Run every check of :data:`CHECKS` against fresh transports from ``make``."""
    for name, check in CHECKS.items():
        try:
            async with asyncio.timeout(timeout):
                await check(make, max_body)
        except TimeoutError:
            raise AssertionError(f"transport check {name} took over {timeout}s") from None
