"""Raw loopback sockets for ``benchmarks.fuzz``: one case per connection, and held connections.

Answers are read with a small HTTP/1.1 response parser: enough to split pipelined answers
(``Content-Length`` framing, 1xx interim answers skipped) and to read a mucp error, which
travels in a ``Micro-Error`` header of a 200 answer.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from benchmarks._fuzz_cases import Case

HOST = "127.0.0.1"
NOT_HTTP = 0  # the status recorded for an answer that is not HTTP
_STATUS = re.compile(rb"HTTP/\d\.\d (\d{3})")
_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
_ERROR = re.compile(rb"\r\nmicro-error:[ \t]*([^\r\n]*)", re.IGNORECASE)


def micro_error_code(head: bytes) -> int | None:
    """The ``code`` of a ``Micro-Error`` header holding the error JSON, else None."""
    found = _ERROR.search(head)
    if found is None:
        return None
    try:
        code = json.loads(found[1]).get("code")
    except (ValueError, AttributeError):
        return None
    return code if isinstance(code, int) and 100 <= code <= 599 else None


def parse_answers(buf: bytes, *, head_only: bool, mucp: bool) -> tuple[list[int], bool]:
    """The statuses of the answers in ``buf``, and whether the last one is complete.

    With ``mucp`` an answer carrying a ``Micro-Error`` counts as that error's code.
    """
    codes: list[int] = []
    pos = 0
    while pos < len(buf):
        end = buf.find(b"\r\n\r\n", pos)
        if end < 0:
            return codes, False
        head = buf[pos:end]
        status = _STATUS.match(head)
        if status is None:
            return [*codes, NOT_HTTP], True
        code = int(status[1])
        pos = end + 4
        if 100 <= code < 200:
            continue
        codes.append((micro_error_code(head) if mucp else None) or code)
        length = _LENGTH.search(head)
        if not (head_only or code in (204, 304)):
            pos += int(length[1]) if length else len(buf)  # no length: the body runs to EOF
    return codes, pos <= len(buf)


@dataclass
class Outcome:
    """What one connection got: its answers' statuses, or why it got none."""

    codes: list[int]
    end: str  # answered, closed (EOF), reset, timeout, refused, or left (the client, on purpose)
    body: bytes = b""


async def run_case(port: int, case: Case, *, timeout: float, mucp: bool) -> Outcome:
    """Send ``case`` on a new connection; read until ``case.expect`` answers, EOF or timeout."""
    try:
        reader, writer = await asyncio.open_connection(HOST, port)
    except OSError:
        return Outcome([], "refused")
    buf = b""
    try:
        async with asyncio.timeout(timeout):
            writer.write(case.data)
            if case.half_close:
                writer.write_eof()
            await writer.drain()
            if case.expect == 0:
                if case.reset:
                    _reset(writer)
                return Outcome([], "left")
            while chunk := await reader.read(65536):
                buf += chunk
                codes, complete = parse_answers(buf, head_only=case.head_only, mucp=mucp)
                if complete and len(codes) >= case.expect:
                    return Outcome(codes, "answered", buf)
            end = "closed"
    except TimeoutError:
        end = "timeout"
    except OSError:
        end = "reset"
    finally:
        writer.close()
    codes, _ = parse_answers(buf, head_only=case.head_only, mucp=mucp)
    return Outcome(codes or ([NOT_HTTP] if buf else []), end, buf)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0) instead of a FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


# -- held connections: slowloris and idle -----------------------------------------------------


@dataclass
class Held:
    """Connections held open against a target, and how the target treated them."""

    opened: int = 0
    closed_after: list[float] = field(default_factory=list)  # seconds, sorted (see _watch)
    probe_ok: bool = False  # a valid call made while they were all open


Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter, float]  # and when it opened


async def _connect(port: int, limit: asyncio.Semaphore) -> Conn:
    async with limit, asyncio.timeout(10):
        reader, writer = await asyncio.open_connection(HOST, port)
    return reader, writer, asyncio.get_running_loop().time()


async def _watch(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    opened: float,
    head: bytes,
    interval: float,
) -> float:
    """Seconds until the target answers or closes; dribbles ``head`` a byte per ``interval``.

    Counted from the first byte sent, or with an empty ``head`` (an idle connection, which
    sends nothing) from connecting. Runs until cancelled.
    """
    loop = asyncio.get_running_loop()
    started, sent = loop.time() if head else opened, 0
    try:
        while True:
            if head:
                if sent == len(head):
                    raise RuntimeError("slowloris head too short for the run")
                writer.write(head[sent : sent + 1])
                sent += 1
                await writer.drain()
            try:
                async with asyncio.timeout(interval):
                    await reader.read(1)  # an answer (408) or EOF: the target let go
                return loop.time() - started
            except TimeoutError:
                continue
    except OSError:
        return loop.time() - started
    finally:
        writer.close()


async def hold(
    port: int,
    count: int,
    *,
    head: bytes,
    interval: float,
    seconds: float,
    probe: Callable[[], Awaitable[bool]],
) -> Held:
    """Open ``count`` connections, call ``probe`` while all are open, watch them ``seconds``."""
    limit = asyncio.Semaphore(256)  # connects at once: stay under the targets' backlog
    opened = await asyncio.gather(
        *(_connect(port, limit) for _ in range(count)), return_exceptions=True
    )
    conns = [c for c in opened if isinstance(c, tuple)]
    tasks = [asyncio.create_task(_watch(*c, head, interval)) for c in conns]
    held = Held(opened=len(conns), probe_ok=await probe())
    done, pending = await asyncio.wait(tasks, timeout=seconds) if tasks else (set(), set())
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    held.closed_after = sorted(t.result() for t in done if not t.exception())
    return held
