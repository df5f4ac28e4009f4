"""The proxies' pooled HTTP/1.1 client, against real loopback servers that answer as scripted
(good answers in every framing, malformed and cut ones, silence, refusals)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from micro.toolkit.api._upstream import (
    BadAddress,
    BadAnswer,
    ConnectFailed,
    Pool,
    UpstreamTimeout,
    split_address,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-a: 1\r\n\r\nhello"


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One request's head and body (Content-Length or chunked)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.lower().split(b"\r\n")
    length = next((int(x.split(b":")[1]) for x in lines if x.startswith(b"content-length:")), 0)
    if any(x.startswith(b"transfer-encoding: chunked") for x in lines):
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if not size:
                return head, body
            body += chunk[:-2]
    return head, await reader.readexactly(length) if length else b""


@contextlib.asynccontextmanager
async def server(handler: Handler) -> AsyncIterator[str]:
    """A loopback server running ``handler`` per connection; its address."""
    tasks: set[asyncio.Task[None]] = set()

    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tasks.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    srv = await asyncio.start_server(run, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        srv.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def answering(*answers: bytes, keep: bool = True) -> Handler:
    """A handler answering each request of a connection with the next of ``answers``."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for answer in answers:
            await read_request(reader)
            writer.write(answer)
            await writer.drain()
        if keep:
            await reader.read()  # until the client closes

    return handler


async def fetch(pool: Pool, address: str) -> bytes:
    """GET / from ``address``, read whole."""
    answer = await pool.request("GET", address, "/", [])
    return await answer.read()


@pytest.fixture
async def pool() -> AsyncIterator[Pool]:
    p = Pool(connect_timeout=2, read_timeout=2)
    yield p
    await p.close()


async def test_answer_with_length_and_connection_reuse(pool: Pool) -> None:
    seen: list[bytes] = []
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            head, body = await read_request(reader)
            seen.append(head + body)
            writer.write(OK)

    async with server(handler) as address:
        for _ in range(3):
            answer = await pool.request("GET", address, "/a?b=1", [(b"x-h", b"v")])
            assert (answer.status, answer.content_length()) == (200, 5)
            assert (b"x-a", b"1") in answer.headers
            assert await answer.read() == b"hello"
            assert pool.idle_connections(address) == 1
        assert connections == 1  # one kept-alive connection carried all three
        assert seen[0].startswith(b"GET /a?b=1 HTTP/1.1\r\nhost: " + address.encode())
        assert b"x-h: v\r\n" in seen[0]
        assert b"content-length" not in seen[0]  # a GET without body declares none


async def test_chunked_and_until_close_answers(pool: Pool) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    until_close = b"HTTP/1.1 200 OK\r\n\r\nto the end"
    async with server(answering(chunked, until_close, keep=False)) as address:
        first = await pool.request("GET", address, "/", [])
        assert await first.read() == b"abcde"
        second = await pool.request("GET", address, "/", [])
        assert second.content_length() is None
        assert await second.read() == b"to the end"


async def test_bodies_sent_with_length_or_chunked(pool: Pool) -> None:
    got: list[tuple[bytes, bytes]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            got.append(await read_request(reader))
            writer.write(OK)

    async def parts() -> AsyncIterator[bytes]:
        for part in (b"one", b"", b"two" * 50_000):
            yield part

    async with server(handler) as address:
        await (await pool.request("POST", address, "/", [], b"payload")).read()
        await (await pool.request("PUT", address, "/", [], parts())).read()
        await (await pool.request("POST", address, "/", [])).read()
    assert b"content-length: 7\r\n" in got[0][0]
    assert got[0][1] == b"payload"
    assert b"transfer-encoding: chunked\r\n" in got[1][0]
    assert got[1][1] == b"one" + b"two" * 50_000
    assert b"content-length: 0\r\n" in got[2][0]


async def test_interim_answer_skipped_and_head_has_no_body(pool: Pool) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.1)  # the interim answer comes alone
        writer.write(OK)
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 900\r\n\r\n")
        await reader.read()

    async with server(handler) as address:
        answer = await pool.request("GET", address, "/", [])
        assert (answer.status, await answer.read()) == (200, b"hello")
        answer = await pool.request("HEAD", address, "/", [])
        assert (answer.status, answer.content_length(), await answer.read()) == (200, 900, b"")


@pytest.mark.parametrize(
    "reply",
    [
        b"not http at all\r\n\r\n",
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nbad header line\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: h2c\r\nconnection: upgrade\r\n\r\n",
        b"",  # closed without a word
        b"HTTP/1.1 200 OK\r\ncontent-le",  # closed inside the head
    ],
)
async def test_malformed_answers_are_bad(pool: Pool, reply: bytes) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(reply)
        await writer.drain()

    async with server(handler) as address:
        with pytest.raises(BadAnswer):
            await fetch(pool, address)
    assert pool.open_connections() == 0


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nabc",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nabc\r\n",
    ],
)
async def test_cut_or_broken_bodies_are_bad(pool: Pool, reply: bytes) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(reply)
        await writer.drain()

    async with server(handler) as address:
        with pytest.raises(BadAnswer):  # in the head's packet, or read later
            await fetch(pool, address)
    assert pool.open_connections() == 0


async def test_silence_times_out_and_the_connection_closes() -> None:
    pool = Pool(read_timeout=0.3)

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    async def stalls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")
        await reader.read()

    try:
        async with server(silent) as address:
            with pytest.raises(UpstreamTimeout):
                await asyncio.wait_for(pool.request("GET", address, "/", []), 5)
        async with server(stalls) as address:
            answer = await pool.request("GET", address, "/", [])
            with pytest.raises(UpstreamTimeout):
                await asyncio.wait_for(answer.read(), 5)
        assert pool.open_connections() == 0
    finally:
        await pool.close()


async def test_refused_and_bad_addresses(pool: Pool) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    with pytest.raises(ConnectFailed) as refused:
        await pool.request("GET", f"127.0.0.1:{port}", "/", [])
    assert not isinstance(refused.value, BadAddress)
    for bad in ("nohost", "[::1:80", "host:99999", ":80", "a b:80"):
        with pytest.raises(BadAddress):
            await pool.request("GET", bad, "/", [])
    assert split_address("[::1]:80") == ("::1", 80)
    with pytest.raises(ValueError, match="bad request line"):
        await pool.request("GET", f"127.0.0.1:{port}", "no-slash", [])
    with pytest.raises(ValueError, match="bad request line"):
        await pool.request("G T", f"127.0.0.1:{port}", "/", [])


async def test_stale_kept_alive_connection_is_retried_once(pool: Pool) -> None:
    connections = 0

    async def one_per_connection(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        nonlocal connections
        connections += 1
        await read_request(reader)
        writer.write(OK)  # says keep-alive, then closes as soon as the next request comes
        await writer.drain()
        await reader.read(1)

    async with server(one_per_connection) as address:
        for _ in range(3):
            answer = await pool.request("GET", address, "/", [])
            assert await answer.read() == b"hello"
        with pytest.raises(BadAnswer):  # a POST is not sent twice
            await pool.request("POST", address, "/", [], b"x")
    assert connections == 3  # each GET after the first went again on a new connection


async def test_back_pressure_pauses_reading() -> None:
    pool = Pool(read_timeout=5)
    size = 4 * 1024 * 1024
    sent = asyncio.Event()

    async def big(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size)
        writer.write(b"z" * size)
        await writer.drain()
        sent.set()
        await reader.read()

    try:
        async with server(big) as address:
            answer = await pool.request("GET", address, "/", [])
            await asyncio.sleep(0.3)
            assert not sent.is_set()  # the client stopped reading: the server's writes wait
            got = 0
            async for chunk in answer.chunks():
                got += len(chunk)
            assert got == size
            assert pool.idle_connections(address) == 1
    finally:
        await pool.close()


async def test_early_stop_closes_and_ttl_sweeps() -> None:
    pool = Pool(idle_ttl=0.2)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 200000\r\n\r\n" + b"q" * 200_000)

    try:
        async with server(handler) as address:
            answer = await pool.request("GET", address, "/", [])
            async for _ in answer.chunks():
                break  # not read whole: the connection cannot carry another request
            await asyncio.sleep(0.05)
            assert pool.open_connections() == 0
            answer = await pool.request("GET", address, "/", [])
            assert len(await answer.read()) == 200_000
            assert pool.idle_connections() == 1
            await asyncio.sleep(0.6)
            assert pool.idle_connections() == 0  # idle past the TTL: closed
            assert pool.open_connections() == 0
    finally:
        await pool.close()


async def test_the_pool_is_bounded() -> None:
    pool = Pool(max_connections=2, connect_timeout=0.5)
    release = asyncio.Event()

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            await release.wait()
            writer.write(OK)
            await writer.drain()

    try:
        async with server(slow) as address:
            busy = [asyncio.create_task(pool.request("GET", address, "/", [])) for _ in range(2)]
            await asyncio.sleep(0.1)
            assert pool.open_connections() == 2
            with pytest.raises(ConnectFailed):  # no free connection within the timeout
                await pool.request("GET", address, "/", [])
            third = asyncio.create_task(pool.request("GET", address, "/", []))
            release.set()
            for task in [*busy, third]:
                assert await (await task).read() == b"hello"
            assert pool.open_connections() <= 2
    finally:
        await pool.close()
