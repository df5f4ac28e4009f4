"""Calls on pooled keep-alive connections (``ProxyLink.call``, what ``ProxyClient.call``
sends): reuse, and a proxy closing or resetting a kept-alive connection, in plain HTTP and
in TLS. Each call must succeed and run exactly once when the request provably went unread,
and must never be sent twice when the proxy may have read it.

The proxy here is a small blocking HTTP/1.1 server in a thread (its own timing, whatever
the test's event loop does), which counts the requests it read and answers each one, then
does what the test says with the connection."""

from __future__ import annotations

import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from micro._proxy_link import ProxyLink, ProxyUnreachable
from micro.errors import ConnectionClosed

ANSWER = b'{"msg":"Hello"}'
# what the server does after reading request n (1-based) of a connection:
ANSWER_KEEP = "answer"  # answer, keep the connection open
ANSWER_CLOSE = "answer-close"  # answer; on release(), close (FIN, or close_notify under TLS)
RESET_UNREAD = "reset-unread"  # before reading the request: reset (the race of a close)
READ_CLOSE = "read-close"  # read the request, close without answering


class Server:
    """The small HTTP/1.1 server (see the module docs); ``plan(n)`` says what to do after
    request ``n`` of a connection."""

    def __init__(self, plan: dict[int, str] | None = None, tls: ssl.SSLContext | None = None):
        self.plan = plan or {}
        self.tls = tls
        self.requests: list[tuple[int, bytes]] = []  # (connection number, head) read
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._stop = threading.Event()
        self._release = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def close_idle(self) -> None:
        """Close the connections waiting in ``ANSWER_CLOSE``; block until they did (the
        test's event loop does not run meanwhile, so it reads nothing of it)."""
        self._release.set()
        time.sleep(0.2)

    def close(self) -> None:
        self._stop.set()
        self._release.set()
        for thread in list(self._threads):
            thread.join(5)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            thread = threading.Thread(target=self._serve, args=(sock, self.connections))
            thread.daemon = True
            self._threads.append(thread)
            thread.start()

    def _serve(self, raw: socket.socket, number: int) -> None:
        raw.settimeout(5)
        sock = raw
        try:
            if self.tls is not None:
                sock = self.tls.wrap_socket(raw, server_side=True)
            for n in range(1, 1000):
                action = self.plan.get(n, ANSWER_KEEP)
                if action == RESET_UNREAD:
                    _wait_readable(raw)  # the request has arrived: reset, unread
                    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                head = _read_request(sock)
                if head is None:
                    return
                self.requests.append((number, head))
                if action == READ_CLOSE:
                    return
                sock.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(ANSWER), ANSWER)
                )
                if action == ANSWER_CLOSE:
                    self._release.wait(5)
                    if isinstance(sock, ssl.SSLSocket):
                        sock.unwrap()  # close_notify, the TCP connection open till the reply
                    return
        except (OSError, ValueError):
            return
        finally:
            sock.close()


def _wait_readable(sock: socket.socket) -> None:
    sock.recv(1, socket.MSG_PEEK)


def _read_request(sock: socket.socket) -> bytes | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        body += sock.recv(65536)
    return head


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    made: list[Server] = []
    yield made
    for server in made:
        server.close()


def _serve(
    servers: list[Server], plan: dict[int, str] | None = None, tls: ssl.SSLContext | None = None
) -> Server:
    server = Server(plan, tls)
    servers.append(server)
    return server


async def _call(link: ProxyLink) -> bytes:
    return await link.call(b'{"service":"greeter"}', headers={"X-Trace": "t1"}, timeout=5)


# -- reuse ---------------------------------------------------------------------------------


async def test_sequential_calls_share_one_keep_alive_connection(servers: list[Server]) -> None:
    server = _serve(servers)
    link = ProxyLink(f"http://{server.address}/micro", token="s3cret")
    try:
        for _ in range(5):
            assert await _call(link) == ANSWER
    finally:
        await link.close()
    assert server.connections == 1
    assert len(server.requests) == 5
    head = server.requests[0][1].decode()
    assert head.startswith("POST /micro/rpc HTTP/1.1\r\n")  # the address's prefix is kept
    assert head.count("Authorization: Bearer s3cret") == 1
    assert "Content-Type: application/json" in head
    assert "X-Trace: t1" in head


async def test_the_token_is_sent_once_even_when_metadata_names_one(servers: list[Server]) -> None:
    server = _serve(servers)
    link = ProxyLink(server.address, token="s3cret")
    try:
        await link.call(b"{}", headers={"Authorization": "Bearer other", "Content-Type": "x"})
    finally:
        await link.close()
    head = server.requests[0][1].decode()
    assert head.count("Authorization:") == 1
    assert "Authorization: Bearer s3cret" in head
    assert head.count("Content-Type:") == 1
    assert "Content-Type: application/json" in head


def test_a_token_with_a_control_character_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="control character"):
        ProxyLink("127.0.0.1:8081", token="abc\r\nX-Evil: 1")


# -- the proxy ends a kept-alive connection --------------------------------------------------


async def test_a_close_waiting_unread_is_seen_before_the_request_leaves(
    servers: list[Server],
) -> None:
    server = _serve(servers, {1: ANSWER_CLOSE})  # as a proxy's idle timeout would
    link = ProxyLink(server.address)
    try:
        assert await _call(link) == ANSWER
        server.close_idle()  # the close arrives while the event loop cannot read it
        assert await _call(link) == ANSWER
    finally:
        await link.close()
    assert [n for n, _ in server.requests] == [1, 2]  # each call ran once, the 2nd anew


async def test_a_reset_before_the_request_was_read_sends_it_again_once(
    servers: list[Server],
) -> None:
    server = _serve(servers, {2: RESET_UNREAD})  # the proxy closed as the request arrived
    link = ProxyLink(server.address)
    try:
        assert await _call(link) == ANSWER
        assert await _call(link) == ANSWER
    finally:
        await link.close()
    assert [n for n, _ in server.requests] == [1, 2]


async def test_a_close_after_the_request_was_read_is_never_sent_again(
    servers: list[Server],
) -> None:
    server = _serve(servers, {2: READ_CLOSE})  # read, then gone: it may have run
    link = ProxyLink(server.address)
    try:
        assert await _call(link) == ANSWER
        with pytest.raises(ConnectionClosed) as caught:
            await _call(link)
    finally:
        await link.close()
    assert not isinstance(caught.value, ProxyUnreachable)
    assert caught.value.detail.startswith(f"the connection to the proxy at http://{server.address}")
    assert len(server.requests) == 2  # read once, never again
    assert server.connections == 1


# -- TLS -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _tls_server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


async def test_tls_calls_share_one_connection(
    servers: list[Server], ca: trustme.CA, tmp_path: Path
) -> None:
    server = _serve(servers, tls=_tls_server_context(ca))
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    link = ProxyLink(server.address, tls_ca=str(ca_file))
    try:
        for _ in range(3):
            assert await _call(link) == ANSWER
    finally:
        await link.close()
    assert (server.connections, len(server.requests)) == (1, 3)


async def test_a_tls_close_waiting_unread_is_seen_before_the_request_leaves(
    servers: list[Server], ca: trustme.CA, tmp_path: Path
) -> None:
    # a TLS server closing an idle connection sends close_notify and waits for ours: the
    # TCP connection stays open, only the TLS layer can tell the close from data
    server = _serve(servers, {1: ANSWER_CLOSE}, tls=_tls_server_context(ca))
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    link = ProxyLink(server.address, tls_ca=str(ca_file))
    try:
        assert await _call(link) == ANSWER
        server.close_idle()  # the close_notify arrives while the event loop cannot read it
        assert await _call(link) == ANSWER
    finally:
        await link.close()
    assert [n for n, _ in server.requests] == [1, 2]
