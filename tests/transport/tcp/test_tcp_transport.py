"""The tcp transport: multiplexing, flow control, limits, malformed input, reconnects, TLS."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator

import pytest
import trustme

from micro import plugins
from micro.errors import BadRequest, ConnectError, ConnectionClosed, PayloadTooLarge
from micro.settings import load
from micro.transport import Message, Socket
from micro.transport._tcp_wire import (
    CLOSE,
    GOAWAY,
    HEAD,
    MESSAGE,
    MESSAGE_FRAME,
    OPEN,
    FrameDecoder,
    decode_goaway,
    encode_frame,
    encode_hello,
)
from micro.transport.tcp import TcpListener, TcpTransport


async def echo(sock: Socket) -> None:
    while True:
        message = await sock.recv()
        await sock.send(Message({**message.header, "Echo": "1"}, message.body))


@pytest.fixture
async def transport() -> AsyncIterator[TcpTransport]:
    t = TcpTransport(max_body=16 * 1024 * 1024)
    yield t
    await t.close()


@pytest.fixture
async def listener(transport: TcpTransport) -> TcpListener:
    return await transport.listen("127.0.0.1:0", echo)


async def test_streams_share_one_connection(transport: TcpTransport, listener: TcpListener) -> None:
    a = await transport.dial(listener.address)
    b = await transport.dial(listener.address)
    assert a.connection is b.connection
    assert a.id != b.id
    await b.send(Message({"N": "b"}, b"second"))
    await a.send(Message({"N": "a"}, b"first"))
    assert (await a.recv()).body == b"first"
    assert (await b.recv()).body == b"second"
    assert len(listener.connections) == 1


async def test_a_thousand_concurrent_streams_on_one_connection(
    transport: TcpTransport, listener: TcpListener
) -> None:
    async def one(n: int) -> None:
        sock = await transport.dial(listener.address)
        try:
            for round_ in range(3):
                body = f"{n}/{round_}".encode() * 10
                await sock.send(Message({"N": str(n)}, body))
                reply = await sock.recv()
                assert reply.body == body
                assert reply.header["N"] == str(n)
        finally:
            await sock.close()

    await asyncio.gather(*(one(n) for n in range(1000)))
    assert len(listener.connections) == 1


async def test_ten_megabyte_bodies_both_ways(
    transport: TcpTransport, listener: TcpListener
) -> None:
    body = os.urandom(10 * 1024 * 1024)
    sock = await transport.dial(listener.address)
    await sock.send(Message({"Size": "10M"}, body))
    reply = await sock.recv()
    assert reply.header["Size"] == "10M"
    assert reply.body == body


async def test_a_stalled_stream_does_not_block_another(transport: TcpTransport) -> None:
    """A handler that never reads: its stream's window fills and its sender waits, while
    another stream on the same connection keeps going."""
    stalled, release = asyncio.Event(), asyncio.Event()

    async def handler(sock: Socket) -> None:
        first = await sock.recv()
        if first.header.get("Stall"):
            stalled.set()
            await release.wait()  # reads no more until the test ends
        await sock.send(first)
        await echo(sock)

    listener = await transport.listen("127.0.0.1:0", handler)
    slow = await transport.dial(listener.address)
    fast = await transport.dial(listener.address)
    await slow.send(Message({"Stall": "1"}))
    await stalled.wait()
    chunk = b"x" * (256 * 1024)
    flood = asyncio.create_task(_send_forever(slow, chunk))
    await asyncio.sleep(0.1)
    assert not flood.done()  # blocked on the stalled stream's window...
    for i in range(50):  # ...while the other stream is unaffected
        body = b"%d:" % i + chunk
        await fast.send(Message({}, body))
        assert (await asyncio.wait_for(fast.recv(), 5)).body == body
    assert slow._credit < len(chunk)  # the stalled stream used up its window
    (server_conn,) = listener.connections
    queued = sum(len(m.body) for m, _ in server_conn.streams[slow.id]._inbox)
    assert queued <= transport.window + len(chunk)  # what the reader holds is bounded
    flood.cancel()
    with pytest.raises(asyncio.CancelledError):
        await flood
    release.set()


async def _send_forever(sock: Socket, chunk: bytes) -> None:
    while True:
        await sock.send(Message({}, chunk))


async def test_a_body_over_max_body_resets_only_its_stream() -> None:
    served: list[BaseException] = []

    async def handler(sock: Socket) -> None:
        try:
            await echo(sock)
        except ConnectionClosed as exc:
            served.append(exc)

    transport = TcpTransport(max_body=1024 * 1024)
    try:
        listener = await transport.listen("127.0.0.1:0", handler)
        big = await transport.dial(listener.address)
        other = await transport.dial(listener.address)
        await big.send(Message({}, b"x" * (1024 * 1024 + 1)))
        with pytest.raises(PayloadTooLarge, match="over the limit of 1048576"):
            await big.recv()
        assert big.closed
        with pytest.raises(ConnectionClosed):
            await big.send(Message({}, b"again"))
        await other.send(Message({}, b"still fine"))
        assert (await other.recv()).body == b"still fine"
        assert served
        assert isinstance(served[0], ConnectionClosed)
    finally:
        await transport.close()


async def test_a_reply_over_max_body_fails_the_dialers_recv() -> None:
    server = TcpTransport(max_body=8 * 1024 * 1024)
    client = TcpTransport(max_body=64 * 1024)
    try:

        async def handler(sock: Socket) -> None:
            await sock.recv()
            await sock.send(Message({}, b"y" * (64 * 1024 + 1)))
            await sock.recv()

        listener = await server.listen("127.0.0.1:0", handler)
        sock = await client.dial(listener.address)
        await sock.send(Message({}, b"go"))
        with pytest.raises(PayloadTooLarge):
            await sock.recv()
    finally:
        await client.close()
        await server.close()


async def test_a_dead_connection_fails_its_streams_and_the_next_dial_reconnects(
    transport: TcpTransport, listener: TcpListener
) -> None:
    a = await transport.dial(listener.address)
    b = await transport.dial(listener.address)
    waiting = asyncio.create_task(a.recv())
    await asyncio.sleep(0.01)
    for conn in list(listener.connections):
        conn.abort()  # the server side's connection dies
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(waiting, 5)
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(b.recv(), 5)
    assert a.closed
    assert b.closed
    c = await transport.dial(listener.address)
    assert c.connection is not a.connection
    await c.send(Message({}, b"new"))
    assert (await c.recv()).body == b"new"


async def test_dial_after_the_listener_closed_is_refused(
    transport: TcpTransport, listener: TcpListener
) -> None:
    open_ = await transport.dial(listener.address)
    await listener.close()
    await open_.send(Message({}, b"still here"))
    assert (await open_.recv()).body == b"still here"
    with pytest.raises(ConnectError, match=listener.address):
        await transport.dial(listener.address, timeout=2)


async def test_dial_nothing_listening() -> None:
    transport = TcpTransport()
    listener = await transport.listen("127.0.0.1:0", echo)
    address = listener.address
    await transport.close()
    with pytest.raises(ConnectError, match=address):
        await TcpTransport().dial(address, timeout=2)


async def test_ping(transport: TcpTransport, listener: TcpListener) -> None:
    sock = await transport.dial(listener.address)
    await sock.connection.ping()


async def test_headers_with_nul_are_refused_on_send(
    transport: TcpTransport, listener: TcpListener
) -> None:
    sock = await transport.dial(listener.address)
    with pytest.raises(Exception, match="NUL"):
        await sock.send(Message({"A": "x\x00y"}))
    await sock.send(Message({"A": "ok"}))
    assert (await sock.recv()).header["A"] == "ok"


# -- malformed input on the listener ------------------------------------------------------


async def _raw(address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, _, port = address.rpartition(":")
    return await asyncio.open_connection(host, int(port))


async def _read_until_closed(reader: asyncio.StreamReader) -> bytes:
    data = b""
    async with asyncio.timeout(5):
        while chunk := await reader.read(65536):
            data += chunk
    return data


def _goaway_reason(data: bytes) -> tuple[int, str]:
    frames = FrameDecoder().feed(data)
    goaways = [decode_goaway(payload) for kind, _, _, payload in frames if kind == GOAWAY]
    assert goaways, f"no GOAWAY in {frames!r}"
    return goaways[-1][1], goaways[-1][2]


@pytest.mark.parametrize(
    ("garbage", "reason"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "over the limit"),
        (encode_frame(OPEN, 0, 1), "first frame is not HELLO"),
        (encode_hello(1 << 20, 1 << 20) + HEAD.pack(0, 42, 0, 1), "unknown frame kind 42"),
        (encode_hello(1 << 20, 1 << 20) + encode_frame(3, 0, 9, b"x"), "never opened"),
        (encode_hello(1 << 20, 1 << 20) + encode_frame(OPEN, 0, 0), "not above 0"),
        (encode_frame(0, 0, 0, b"MTCP\x07" + bytes(8)), "version 7"),
    ],
)
async def test_malformed_frames_close_the_connection_with_a_reason(
    listener: TcpListener, garbage: bytes, reason: str
) -> None:
    reader, writer = await _raw(listener.address)
    writer.write(garbage)
    data = await _read_until_closed(reader)
    code, why = _goaway_reason(data)
    assert code == 400
    assert reason in why
    writer.close()


async def test_random_bytes_never_crash_the_listener(
    transport: TcpTransport, listener: TcpListener
) -> None:
    rng = random.Random(1234)
    hello = encode_hello(1 << 20, 1 << 20)
    session = (
        hello
        + encode_frame(OPEN, 0, 1)
        + MESSAGE_FRAME.pack(19, MESSAGE, 0, 1, 3, 8)
        + b"A\x00b"
        + b"12345678"
        + encode_frame(CLOSE, 0, 1)
    )
    for i in range(60):
        reader, writer = await _raw(listener.address)
        junk = rng.randbytes(rng.randrange(1, 2000))
        if i % 3 == 1:  # a valid start, then garbage: exercises the frame kinds
            junk = hello + encode_frame(OPEN, 0, 1) + junk
        elif i % 3 == 2:  # a valid session with a few bytes garbled
            garbled = bytearray(session)
            for _ in range(rng.randrange(1, 4)):
                garbled[rng.randrange(len(garbled))] = rng.randrange(256)
            junk = bytes(garbled)
        writer.write(junk)
        writer.write_eof()
        await _read_until_closed(reader)  # closed (with a GOAWAY or at EOF), never hangs
        writer.close()
    sock = await transport.dial(listener.address)  # the listener still serves
    await sock.send(Message({}, b"alive"))
    assert (await sock.recv()).body == b"alive"


async def test_a_client_facing_a_non_micro_server_fails_to_dial() -> None:
    async def http_like(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(http_like, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport = TcpTransport()
    try:
        with pytest.raises(ConnectError, match=r"over the limit|not a micro"):
            await transport.dial(f"127.0.0.1:{port}", timeout=3)
    finally:
        await transport.close()
        server.close()
        await server.wait_closed()


# -- TLS ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("client.example")
    d = tmp_path_factory.mktemp("tls")
    paths = {
        "ca": d / "ca.pem",
        "cert": d / "server.pem",
        "key": d / "server.key",
        "ccert": d / "client.pem",
        "ckey": d / "client.key",
    }
    ca.cert_pem.write_to_path(str(paths["ca"]))
    server.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    server.private_key_pem.write_to_path(str(paths["key"]))
    client.cert_chain_pems[0].write_to_path(str(paths["ccert"]))
    client.private_key_pem.write_to_path(str(paths["ckey"]))
    return {k: str(v) for k, v in paths.items()}


async def test_tls(tls_files: dict[str, str]) -> None:
    server = TcpTransport(tls_cert=tls_files["cert"], tls_key=tls_files["key"])
    client = TcpTransport(tls_ca=tls_files["ca"])
    try:
        listener = await server.listen("127.0.0.1:0", echo)
        sock = await client.dial(listener.address)
        body = os.urandom(3 * 1024 * 1024)
        await sock.send(Message({"Tls": "yes"}, body))
        reply = await sock.recv()
        assert reply.body == body
        transport = sock.connection.transport
        assert transport is not None
        assert transport.get_extra_info("ssl_object") is not None
        with pytest.raises(ConnectError):  # plain TCP to a TLS listener
            await TcpTransport().dial(listener.address, timeout=2)
    finally:
        await client.close()
        await server.close()


async def test_mutual_tls(tls_files: dict[str, str]) -> None:
    server = TcpTransport(
        tls_cert=tls_files["cert"], tls_key=tls_files["key"], tls_ca=tls_files["ca"]
    )
    good = TcpTransport(
        tls_ca=tls_files["ca"], tls_cert=tls_files["ccert"], tls_key=tls_files["ckey"]
    )
    anonymous = TcpTransport(tls_ca=tls_files["ca"])
    try:
        listener = await server.listen("127.0.0.1:0", echo)
        sock = await good.dial(listener.address)
        await sock.send(Message({}, b"mtls"))
        assert (await sock.recv()).body == b"mtls"
        with pytest.raises(ConnectError):
            await anonymous.dial(listener.address, timeout=2)
    finally:
        await anonymous.close()
        await good.close()
        await server.close()


def test_bad_options() -> None:
    with pytest.raises(ValueError, match="window"):
        TcpTransport(window=10)
    with pytest.raises(ValueError, match="tls_key needs tls_cert"):
        TcpTransport(tls_key="k.pem")
    with pytest.raises(FileNotFoundError):
        TcpTransport(tls_cert="/nonexistent.pem")


async def test_small_windows_still_carry_big_bodies_on_many_streams() -> None:
    """Windows of the minimum size: credit flows back as bodies are read, nothing stalls."""
    transport = TcpTransport(window=64 * 1024, max_frame=16 * 1024, max_header=8 * 1024)
    try:
        listener = await transport.listen("127.0.0.1:0", echo)
        body = os.urandom(1024 * 1024 + 7)

        async def one() -> None:
            sock = await transport.dial(listener.address)
            for _ in range(2):
                await sock.send(Message({}, body))
                assert (await sock.recv()).body == body
            await sock.close()

        await asyncio.gather(*(one() for _ in range(8)))
    finally:
        await transport.close()


async def test_headers_larger_than_half_the_peers_window_are_refused() -> None:
    server = TcpTransport(window=64 * 1024, max_header=16 * 1024)
    client = TcpTransport()
    try:
        listener = await server.listen("127.0.0.1:0", echo)
        sock = await client.dial(listener.address)
        with pytest.raises(BadRequest, match="half the peer's window"):
            await sock.send(Message({"Big": "v" * 40000}))
        await sock.send(Message({"Small": "v" * 1000}))
        assert (await sock.recv()).header["Small"] == "v" * 1000
    finally:
        await client.close()
        await server.close()


async def test_headers_over_the_receivers_limit_reset_only_their_stream() -> None:
    server = TcpTransport(max_header=1024)
    client = TcpTransport()
    try:
        listener = await server.listen("127.0.0.1:0", echo)
        big = await client.dial(listener.address)
        other = await client.dial(listener.address)
        await big.send(Message({"Big": "v" * 2000}))
        with pytest.raises(BadRequest, match="over the limit of 1024"):
            await big.recv()
        await other.send(Message({}, b"fine"))
        assert (await other.recv()).body == b"fine"
    finally:
        await client.close()
        await server.close()


async def test_a_listener_that_never_says_hello_times_the_dial_out_and_is_dropped() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        await reader.read()  # reads, never answers

    server = await asyncio.start_server(mute, "127.0.0.1", 0)
    address = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    transport = TcpTransport()
    try:
        with pytest.raises(ConnectError, match=r"no stream within 0\.2s"):
            await transport.dial(address, timeout=0.2)
        assert transport.connection(address) is None
        with pytest.raises(ConnectError, match=r"no stream within 0\.2s"):
            await transport.dial(address, timeout=0.2)
        assert len(accepted) == 2  # a fresh connection for the second dial
    finally:
        await transport.close()
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_small_messages_after_a_large_one_take_the_one_frame_path(
    transport: TcpTransport, listener: TcpListener
) -> None:
    sock = await transport.dial(listener.address)
    await sock.send(Message({}, b"z" * (2 * 1024 * 1024)))
    assert len((await sock.recv()).body) == 2 * 1024 * 1024
    writes: list[int] = []
    conn = sock.connection
    original = conn.write

    def counting(data: bytes | memoryview) -> None:
        writes.append(len(data))
        original(data)

    conn.write = counting  # type: ignore[method-assign]
    await sock.send(Message({"A": "b"}, b"small"))
    assert (await sock.recv()).body == b"small"
    assert len(writes) == 1  # one frame, one write


def test_settings_configure_the_tcp_transport(tls_files: dict[str, str]) -> None:
    settings = load(
        environ={
            "MICRO_TRANSPORT": "tcp",
            "MICRO_TRANSPORT_MAX_BODY": "8M",
            "MICRO_TRANSPORT_IDLE_TIMEOUT": "30s",
            "MICRO_TRANSPORT_TLS_CERT": tls_files["cert"],
            "MICRO_TRANSPORT_TLS_KEY": tls_files["key"],
            "MICRO_TRANSPORT_TLS_CA": tls_files["ca"],
        }
    )
    made = plugins.create("transport", settings=settings)
    assert isinstance(made, TcpTransport)
    assert made.max_body == 8 * 1024 * 1024
    assert made.idle_timeout == 30
    assert made.tls is not None
    assert made.server_tls is not None
