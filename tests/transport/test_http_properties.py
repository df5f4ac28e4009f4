"""Property tests and fuzzing of the HTTP transport's parsers and encoders (hypothesis).

Each property runs every example on one event loop and one listener (hypothesis drives a
sync function), so examples cost one connection, not one server.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from micro.errors import BadRequest, ConnectionClosed, PayloadTooLarge
from micro.metadata import canonical
from micro.transport import Message
from micro.transport._http_client import HttpClientSocket
from micro.transport._http_listener import HttpListener
from micro.transport._http_server import HttpServerSocket
from micro.transport._http_wire import HOP_SEND
from micro.transport.http import HttpTransport

from .conftest import FakeTransport, Recorder, echo
from .go_wire import (
    HEADER_5_1,
    HEADER_5_3,
    REQUEST_5_1,
    REQUESTS_5_3,
    RESPONSE_5_1,
    RESPONSE_5_2,
    RESPONSES_5_3,
)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

names = (
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,24}", fullmatch=True)
    .map(canonical)
    .filter(lambda name: name not in HOP_SEND)
)
values = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=60).map(
    lambda value: value.strip(" \t")
)
headers = st.dictionaries(names, values, max_size=24)
bodies = st.binary(max_size=8192)


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def event_loop() -> Iterator[tuple[asyncio.AbstractEventLoop, list[dict[str, Any]]]]:
    """A private loop whose unhandled-exception reports, and warning logs, are collected."""
    loop = asyncio.new_event_loop()
    problems: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: problems.append(context))
    captured = Captured()
    for name in ("asyncio", "micro"):
        logging.getLogger(name).addHandler(captured)
    try:
        yield loop, problems
    finally:
        for name in ("asyncio", "micro"):
            logging.getLogger(name).removeHandler(captured)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        problems.extend({"log": r.getMessage(), "exc": r.exc_info} for r in captured.records)


def test_any_headers_and_body_round_trip() -> None:
    with event_loop() as (loop, problems):
        transport = HttpTransport()
        recorder = Recorder(reply=echo)
        listener = loop.run_until_complete(transport.listen("127.0.0.1:0", recorder))
        sock = loop.run_until_complete(transport.dial(listener.address))

        @SETTINGS
        @given(header=headers, body=bodies)
        def round_trip(header: dict[str, str], body: bytes) -> None:
            recorder.messages.clear()

            async def exchange() -> Message:
                await sock.send(Message(dict(header), body))
                return await asyncio.wait_for(sock.recv(), 5.0)

            reply = loop.run_until_complete(exchange())
            assert recorder.messages == [Message(header, body)]
            assert reply == Message(header, body)

        try:
            round_trip()
        finally:
            loop.run_until_complete(transport.close())
    assert problems == []


HTTP_STATUS = re.compile(rb"HTTP/1\.1 (\d{3}) ")


def fuzz_server(make_payload: Callable[[Any], bytes], strategy: Any) -> None:
    """Feed payloads to a server; each answer is a refusal, a 200 (it was valid), or nothing."""
    with event_loop() as (loop, problems):
        transport = HttpTransport(max_body=4096, max_header=2048, linger=0.05)
        recorder = Recorder(reply=echo)
        listener = loop.run_until_complete(transport.listen("127.0.0.1:0", recorder))
        host, port = listener.address.rsplit(":", 1)

        async def exchange(payload: bytes) -> bytes:
            reader, writer = await asyncio.open_connection(host, int(port))
            try:
                writer.write(payload)
                writer.write_eof()
                return await asyncio.wait_for(reader.read(), 5.0)
            finally:
                writer.close()
                await writer.wait_closed()

        @SETTINGS
        @given(strategy)
        def fuzz(drawn: Any) -> None:
            answer = loop.run_until_complete(exchange(make_payload(drawn)))
            statuses = HTTP_STATUS.findall(answer)
            if answer:
                assert answer.startswith(b"HTTP/1.1 "), answer[:80]
            assert set(statuses) <= {b"100", b"200", b"400", b"405", b"413"}, answer[:200]
            refusals = [s for s in statuses if s not in (b"100", b"200")]
            assert len(refusals) <= 1
            if refusals:
                assert b"Connection: close\r\n" in answer

        try:
            fuzz()
            assert loop.run_until_complete(listener.wait_closed(5.0))
            assert all(isinstance(ending, ConnectionClosed) for ending in recorder.endings), (
                recorder.endings
            )
        finally:
            loop.run_until_complete(transport.close())
    assert problems == []


def test_fuzz_random_bytes() -> None:
    fuzz_server(lambda data: data, st.binary(min_size=1, max_size=2048))


VALID = REQUEST_5_1 + REQUESTS_5_3


def mutate(edits: list[tuple[int, int, bytes]]) -> bytes:
    data = bytearray(VALID)
    for position, kind, blob in edits:
        at = position % (len(data) + 1)
        if kind == 0:  # overwrite
            data[at : at + len(blob)] = blob
        elif kind == 1:  # insert
            data[at:at] = blob
        else:  # delete
            del data[at : at + len(blob) + 1]
    return bytes(data)


def test_fuzz_mutated_go_requests() -> None:
    edit = st.tuples(
        st.integers(0, 4096),
        st.integers(0, 2),
        st.sampled_from(
            [b"\r\n", b"\n", b":", b" ", b"\x00", b"0", b"9999999", b"chunked", b"-1", b"\xff"]
        )
        | st.binary(min_size=1, max_size=8),
    )
    fuzz_server(mutate, st.lists(edit, min_size=1, max_size=4))


# --------------------------------------------------------------------------- segmentation


def cut(data: bytes, points: list[int]) -> list[bytes]:
    edges = sorted({0, len(data), *(p % (len(data) + 1) for p in points)})
    return [data[a:b] for a, b in itertools.pairwise(edges)]


@SETTINGS
@given(st.lists(st.integers(0, 10_000), max_size=60))
def test_requests_parse_the_same_in_any_segmentation(points: list[int]) -> None:
    async def run() -> list[Message]:
        recorder = Recorder()
        listener = HttpListener(recorder, max_body=1 << 20, max_header=1 << 16)
        conn = HttpServerSocket(listener)
        conn.connection_made(FakeTransport())
        for piece in cut(VALID, points):
            conn.data_received(piece)
        conn.eof_received()
        await asyncio.wait_for(recorder.ended.wait(), 5.0)
        conn.connection_lost(None)
        return recorder.messages

    messages = asyncio.run(run())
    assert messages == [
        Message(HEADER_5_1, b'{"name":"John"}\n'),
        Message(HEADER_5_3, b'{"name":""}\n'),
        Message(HEADER_5_3, b'{"name":"John"}\n'),
    ]


RESPONSES = RESPONSE_5_1 + RESPONSE_5_2 + RESPONSES_5_3


@SETTINGS
@given(st.lists(st.integers(0, 10_000), max_size=60))
def test_responses_parse_the_same_in_any_segmentation(points: list[int]) -> None:
    async def run() -> list[Message]:
        conn = HttpClientSocket("127.0.0.1:50051", max_body=1 << 20, max_header=1 << 16)
        conn.connection_made(FakeTransport())
        for piece in cut(RESPONSES, points):
            conn.data_received(piece)
        conn.connection_lost(None)
        out = []
        while True:
            try:
                out.append(await conn.recv())
            except ConnectionClosed:
                return out

    messages = asyncio.run(run())
    assert [m.body for m in messages] == [
        b'{"msg":"Hello John"}\n',
        b"",
        b'{"msg":"Hello John #0"}\n',
        b'{"msg":"Hello John #1"}\n',
        b'{"msg":"Hello John #2"}\n',
    ]
    assert messages[1].header["Micro-Error"].startswith('{"id":"go.micro.srv.greeter"')
    assert messages[0].header == HEADER_5_1
    assert all(m.header == HEADER_5_3 for m in messages[2:])


@SETTINGS
@given(
    st.lists(
        st.binary(max_size=64)
        | st.sampled_from([RESPONSE_5_1, RESPONSE_5_2, b"HTTP/1.1 100 Continue\r\n\r\n"]),
        max_size=8,
    )
)
def test_fuzz_client_parser(pieces: list[bytes]) -> None:
    """Whatever a server sends, recv returns messages or raises a MicroError, nothing else."""

    async def run() -> None:
        conn = HttpClientSocket("127.0.0.1:1", max_body=512, max_header=1024)
        conn.connection_made(FakeTransport())
        for piece in pieces:
            conn.data_received(piece)
        conn.eof_received()
        conn.connection_lost(None)
        for _ in range(len(pieces) + 1):
            try:
                message = await conn.recv()
            except (ConnectionClosed, BadRequest, PayloadTooLarge):
                return
            assert isinstance(message.body, bytes)
            assert all(isinstance(v, str) for v in message.header.values())
        raise AssertionError("recv never ended")

    asyncio.run(run())
