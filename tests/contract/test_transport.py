"""The transport contract over every backend: memory, http (mucp over HTTP/1.1) and tcp."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import uvloop

from micro.testing.transport import CHECKS, check_transport
from micro.transport import Message, Socket, Transport
from micro.transport.http import HttpTransport
from micro.transport.memory import MemoryTransport
from micro.transport.tcp import TcpTransport

SMALL_LIMIT = 256 * 1024

BACKENDS: dict[str, tuple[Callable[[], Transport], int]] = {
    "memory": (MemoryTransport, 4 * 1024 * 1024),
    "http": (HttpTransport, 4 * 1024 * 1024),
    "http-small-limit": (lambda: HttpTransport(max_body=SMALL_LIMIT), SMALL_LIMIT),
    "tcp": (TcpTransport, 4 * 1024 * 1024),
    "tcp-small-limit": (lambda: TcpTransport(max_body=SMALL_LIMIT), SMALL_LIMIT),
}


@pytest.mark.parametrize("check", sorted(CHECKS))
@pytest.mark.parametrize("backend", sorted(BACKENDS))
async def test_transport_contract(backend: str, check: str) -> None:
    make, max_body = BACKENDS[backend]
    await CHECKS[check](make, max_body)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
async def test_check_transport_runs_every_check(backend: str) -> None:
    make, max_body = BACKENDS[backend]
    await check_transport(make, max_body=max_body)


async def test_contract_catches_a_transport_that_drops_headers() -> None:
    class Lossy(MemoryTransport):
        async def dial(self, address: str, *, timeout: float = 5.0) -> Socket:
            sock = await super().dial(address, timeout=timeout)
            send = sock.send

            async def lossy_send(message: Message) -> None:
                await send(Message({}, message.body))

            sock.send = lossy_send  # type: ignore[method-assign]
            return sock

    with pytest.raises(AssertionError, match="request header"):
        await CHECKS["round_trip"](Lossy, 1024)


def test_http_contract_on_uvloop() -> None:
    uvloop.run(check_transport(HttpTransport))


def test_tcp_contract_on_uvloop() -> None:
    uvloop.run(check_transport(TcpTransport))
