"""`micro api`'s connections over raw sockets: idle and slow clients, half-closes, pipelined
requests of a client that left, and the connection limit.

The gateway runs as a process (`python -m micro.toolkit.api`, uvloop when installed, as in
production) on the memory registry: no service is needed. Its limits are set through the
environment, so that a gateway without them still starts and the tests fail on what they
check. A slow request is a `/rpc` call to a local socket that accepts and never answers,
which the gateway's `--timeout` turns into a 504.
"""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.toolkit.api.test_process import Proc
from tests.toolkit.api.test_process import gateway as gateway_process

pytestmark = [pytest.mark.integration]

HEALTH = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
IDLE, HEADER = 1.0, 1.5


def start(tmp: Path, **env: str) -> tuple[Proc, int]:
    """A ``micro api`` process on a memory registry (``env`` adds settings); its port."""
    proc, url = gateway_process(tmp, "", env={"MICRO_REGISTRY": "memory", **env})
    return proc, int(url.rpartition(":")[2])


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proc, int]]:
    proc, port = start(
        tmp_path_factory.mktemp("gateway"),
        MICRO_API_IDLE_TIMEOUT=str(IDLE),
        MICRO_API_HEADER_TIMEOUT=str(HEADER),
        MICRO_API_ENABLE_RPC="1",
        MICRO_API_TIMEOUT="0.5",
    )
    yield proc, port
    proc.stop()


@pytest.fixture
def silent_node() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


def slow_request(port: int) -> bytes:
    call = {"service": "x", "endpoint": "X.Y", "address": f"127.0.0.1:{port}"}
    body = json.dumps(call).encode()
    return b"POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


def read_all(sock: socket.socket, timeout: float) -> bytes:
    """Everything until the gateway closes the connection (or ``timeout`` passes)."""
    sock.settimeout(timeout)
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except TimeoutError:
        pass
    return out


def wait_logged(proc: Proc, text: str, count: int = 1, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while proc.text().count(text) < count:
        assert time.monotonic() < deadline, f"{text!r} not logged {count}x:\n{proc.text()}"
        time.sleep(0.05)
    return proc.text()


def test_a_silent_connection_is_closed_after_the_idle_timeout(gateway: tuple[Proc, int]) -> None:
    _, port = gateway
    with socket.create_connection(("127.0.0.1", port)) as sock:
        started = time.monotonic()
        assert read_all(sock, timeout=IDLE + 5) == b""
        waited = time.monotonic() - started
    assert IDLE * 0.8 <= waited < IDLE + 4


def test_a_dribbled_head_gets_408_after_the_header_timeout(gateway: tuple[Proc, int]) -> None:
    _, port = gateway
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nX-Slow: ")
        started = time.monotonic()
        answer = b""
        while not answer and time.monotonic() - started < HEADER + 5:
            sock.sendall(b"a")  # one byte every 0.1 s: never idle, never a complete head
            if select.select([sock], [], [], 0.1)[0]:
                answer = read_all(sock, timeout=2)
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["code"] == 408
    assert HEADER * 0.8 <= waited < HEADER + 4


def read_answer(sock: socket.socket) -> bytes:
    """One answer to ``HEALTH`` (its head and its Content-Length of body)."""
    sock.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
    while len(body) < length:
        body += sock.recv(65536)
    return head


def test_the_idle_timeout_counts_from_the_last_answer(tmp_path: Path) -> None:
    """Requests keep a connection open past the idle timeout; after its last answer it
    closes ``idle`` seconds later, not counted from when it opened. (uvicorn's own
    keep-alive timer, set to the timeout rounded up to whole seconds, closes it after 1 s
    anyway: the timeout here is well under that.)"""
    idle = 0.3
    proc, port = start(tmp_path, MICRO_API_IDLE_TIMEOUT=str(idle))
    try:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            opened = time.monotonic()
            while time.monotonic() - opened < idle * 4:
                time.sleep(idle * 0.4)
                sock.sendall(HEALTH)
                assert read_answer(sock).startswith(b"HTTP/1.1 200 ")
            answered = time.monotonic()
            assert read_all(sock, timeout=5) == b""
            waited = time.monotonic() - answered
    finally:
        proc.stop()
    assert idle * 0.8 <= waited < 0.9


def test_the_header_timeout_counts_from_the_heads_first_byte(gateway: tuple[Proc, int]) -> None:
    """A head begun late in an idle wait gets the whole header timeout, however long the
    connection waited before it."""
    _, port = gateway
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(HEALTH)
        assert read_answer(sock).startswith(b"HTTP/1.1 200 ")
        time.sleep(IDLE * 0.7)
        sock.sendall(b"GET /health HTTP/1.1\r\nX-Slow: ")
        started = time.monotonic()
        answer = b""
        while not answer and time.monotonic() - started < HEADER + 5:
            sock.sendall(b"a")
            if select.select([sock], [], [], 0.1)[0]:
                answer = read_all(sock, timeout=2)
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert HEADER * 0.8 <= waited < HEADER + 4


def test_a_huge_head_is_431_and_a_large_one_is_served(gateway: tuple[Proc, int]) -> None:
    _, port = gateway
    for size, status in ((32 * 1024, b"200"), (1024 * 1024, b"431")):
        with socket.create_connection(("127.0.0.1", port)) as sock:
            head = b"GET /health HTTP/1.1\r\nConnection: close\r\nX-Big: %s\r\n\r\n" % (b"a" * size)
            sock.sendall(head)  # the gateway reads on after refusing: no reset
            answer = read_all(sock, timeout=10)
        assert answer.startswith(b"HTTP/1.1 " + status), answer[:100]


def test_a_half_closed_client_gets_its_answer(gateway: tuple[Proc, int], silent_node: int) -> None:
    _, port = gateway
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(slow_request(silent_node))
        sock.shutdown(socket.SHUT_WR)
        answer = read_all(sock, timeout=10)
    assert answer.startswith(b"HTTP/1.1 504 "), answer
    with socket.create_connection(("127.0.0.1", port)) as sock:  # pipelined, all answered
        sock.sendall(HEALTH * 3)
        sock.shutdown(socket.SHUT_WR)
        assert read_all(sock, timeout=10).count(b"HTTP/1.1 200 ") == 3


def test_a_client_gone_with_pipelined_requests_costs_no_traceback(
    gateway: tuple[Proc, int], silent_node: int
) -> None:
    proc, port = gateway
    slow_logged = proc.text().count('"POST /rpc HTTP/1.1" 504')
    tracebacks = proc.text().count("Traceback")
    for _ in range(5):
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(slow_request(silent_node) + HEALTH * 5)
    text = wait_logged(proc, '"POST /rpc HTTP/1.1" 504', count=slow_logged + 5)
    assert text.count("Traceback") == tracebacks


def test_a_non_utf8_timeout_header_is_400(gateway: tuple[Proc, int]) -> None:
    proc, port = gateway
    tracebacks = proc.text().count("Traceback")
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"GET /x/y HTTP/1.1\r\nHost: x\r\nTimeout: \xff\xfe\r\nConnection: close\r\n\r\n"
        )
        answer = read_all(sock, timeout=10)
    assert answer.startswith(b"HTTP/1.1 400 "), answer
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["detail"] == (
        "invalid Timeout header: not ASCII"
    )
    assert proc.text().count("Traceback") == tracebacks


def test_idle_sockets_past_max_connections_do_not_lock_out_requests(tmp_path: Path) -> None:
    proc, port = start(tmp_path, MICRO_API_MAX_CONNECTIONS="8")
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(30)]
    try:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(HEALTH)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        closed = _closed_by_the_gateway(idle, expected=30 - 8, timeout=10)
        assert closed >= 30 - 8
        text = wait_logged(proc, "--max-connections")
        assert text.count("--max-connections") == 1
    finally:
        for sock in idle:
            sock.close()
        proc.stop()


def _closed_by_the_gateway(socks: list[socket.socket], expected: int, timeout: float) -> int:
    """How many of ``socks`` the gateway closed, waiting until ``expected`` or ``timeout``."""
    open_ = list(socks)
    closed = 0
    deadline = time.monotonic() + timeout
    while closed < expected and time.monotonic() < deadline:
        for sock in select.select(open_, [], [], 0.1)[0]:
            if sock.recv(1) == b"":
                open_.remove(sock)
                closed += 1
    return closed


def test_past_the_limit_with_every_connection_busy_a_new_one_is_closed(tmp_path: Path) -> None:
    proc, port = start(
        tmp_path, MICRO_API_MAX_CONNECTIONS="2", MICRO_API_ENABLE_RPC="1", MICRO_API_TIMEOUT="2"
    )
    nodes = [socket.create_server(("127.0.0.1", 0)) for _ in range(2)]
    busy = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
    try:
        for sock, node in zip(busy, nodes, strict=True):
            sock.sendall(slow_request(node.getsockname()[1]))
            node.settimeout(10)
            node.accept()[0].close()  # the gateway called it: the request is in progress
        with socket.create_connection(("127.0.0.1", port)) as newcomer:
            started = time.monotonic()
            assert read_all(newcomer, timeout=10) == b""
            assert time.monotonic() - started < 2  # closed at once, not after the slow calls
        for sock in busy:  # the requests in progress are still answered
            sock.settimeout(10)
            assert sock.recv(65536).startswith(b"HTTP/1.1 504 ")
    finally:
        for sock in busy + nodes:
            sock.close()
        proc.stop()
