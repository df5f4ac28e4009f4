"""The real ``micro web`` process and its endless answers: an event stream ends as soon as its
client leaves (its broker subscription with it), and SIGTERM stops the process at once even
with clients still holding ``/_/events`` and ``/_/tail`` open.

The clients are raw sockets, as a browser's connection is: closing one sends the server an
EOF and nothing more, so the server has to notice it while the stream is idle.
"""

from __future__ import annotations

import signal
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.toolkit.api.test_process import PY, Proc, free_port
from tests.toolkit.web.test_process import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MICRO = [PY, "-m", "micro.toolkit.cli"]


def start_web(tmp: Path, name: str) -> tuple[Proc, str]:
    port = free_port()
    ns = f"test-{uuid.uuid4().hex[:8]}.web"
    proc = Proc(
        [*MICRO, "web", "--address", f"127.0.0.1:{port}", "--namespace", ns], tmp / f"{name}.log"
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(url + "/health", proc)
    except BaseException:
        proc.stop()
        raise
    return proc, url


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proc, str]]:
    proc, url = start_web(tmp_path_factory.mktemp("web"), "web")
    try:
        yield proc, url
    finally:
        proc.stop()


def open_stream(url: str, path: str, first: bytes) -> socket.socket:
    """A raw connection holding ``GET path`` open, once ``first`` (an SSE event name) came."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    seen = b""
    while b"event: " + first not in seen:
        chunk = sock.recv(65536)
        assert chunk, seen
        seen += chunk
    assert seen.startswith(b"HTTP/1.1 200 "), seen
    return sock


def read_to_end(sock: socket.socket, timeout: float) -> bytes:
    """What the server sends until it closes the connection (``timeout`` at most)."""
    sock.settimeout(timeout)
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


def info(url: str) -> dict[str, Any]:
    data: dict[str, Any] = httpx.get(url + "/_/info", timeout=5).json()
    return data


def subscribed(url: str, topic: str) -> bool:
    """The dashboard's registry holds the http broker's entry for ``topic``."""
    found = httpx.get(
        url + "/registry",
        params={"service": f"topic:{topic}"},
        headers={"accept": "application/json"},
        timeout=5,
    )
    return found.status_code == 200 and bool(found.json()["services"])


def wait_until(check: Any, timeout: float) -> float:
    """Poll ``check()`` until true; the seconds it took (fails past ``timeout``)."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, f"not within {timeout}s"
        time.sleep(0.02)
    return time.monotonic() - started


def test_a_client_leaving_ends_its_streams_at_once(web: tuple[Proc, str]) -> None:
    _, url = web
    topic = f"shutdown-{uuid.uuid4().hex[:8]}"
    events = open_stream(url, "/_/events", b"services")
    tail = open_stream(url, f"/_/tail?topic={topic}", b"subscribed")
    assert info(url)["streams"] == {"events": 1, "tail": 1}
    assert subscribed(url, topic)
    time.sleep(0.3)  # the streams are idle: nothing is written that would fail
    events.close()
    tail.close()
    assert wait_until(lambda: info(url)["streams"] == {}, timeout=5) < 1.0
    assert wait_until(lambda: not subscribed(url, topic), timeout=5) < 1.0


def test_a_half_closed_client_ends_its_event_stream(web: tuple[Proc, str]) -> None:
    _, url = web
    events = open_stream(url, "/_/events", b"services")
    events.shutdown(socket.SHUT_WR)
    # the server ends the answer properly (the last chunk), then closes the connection
    assert read_to_end(events, timeout=3).endswith(b"0\r\n\r\n")
    events.close()
    assert wait_until(lambda: info(url)["streams"] == {}, timeout=5) < 1.0


def test_sigterm_ends_open_streams_and_exits_at_once(tmp_path: Path) -> None:
    proc, url = start_web(tmp_path, "stopped")
    try:
        topic = f"shutdown-{uuid.uuid4().hex[:8]}"
        events = open_stream(url, "/_/events", b"services")
        tail = open_stream(url, f"/_/tail?topic={topic}", b"subscribed")
        assert info(url)["streams"] == {"events": 1, "tail": 1}
        started = time.monotonic()
        proc.proc.send_signal(signal.SIGTERM)
        code = proc.proc.wait(timeout=15)
        took = time.monotonic() - started
        assert code == 0, proc.text()
        assert took < 3, f"took {took:.1f}s:\n{proc.text()}"
        for sock in (events, tail):  # each answer ended properly, not cut
            assert read_to_end(sock, timeout=3).endswith(b"0\r\n\r\n")
            sock.close()
        assert "Traceback" not in proc.text()
    finally:
        proc.stop()
