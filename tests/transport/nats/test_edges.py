"""The nats transport's own edges (the contract itself is in tests/contract)."""

from __future__ import annotations

import pytest

from micro.errors import ConnectError
from micro.transport.nats import NatsTransport
from tests.servers import nats_url

pytestmark = pytest.mark.integration


async def test_listen_refuses_a_fixed_port() -> None:
    transport = NatsTransport(address=nats_url())
    try:
        with pytest.raises(ConnectError, match="NATS subject"):
            await transport.listen("127.0.0.1:8080", lambda sock: sock.close())
    finally:
        await transport.close()
