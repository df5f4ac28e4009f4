from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from micro.client.rpc import RpcClient
from micro.registry.memory import MemoryRegistry
from tests.client.fakes import FakeServer, RecordingTransport


def no_backoff(attempt: int) -> float:
    return 0.0


@pytest.fixture
def transport() -> RecordingTransport:
    return RecordingTransport()


@pytest.fixture
def registry() -> MemoryRegistry:
    return MemoryRegistry()


@pytest.fixture
async def server(
    transport: RecordingTransport, registry: MemoryRegistry
) -> AsyncIterator[FakeServer]:
    fake = await FakeServer(transport).start(registry)
    yield fake
    await fake.stop()


@pytest.fixture
async def client(
    transport: RecordingTransport, registry: MemoryRegistry
) -> AsyncIterator[RpcClient]:
    rpc = RpcClient(transport=transport, registry=registry, backoff=no_backoff)
    yield rpc
    await rpc.close()


@pytest.fixture(autouse=True)
def _clean_client_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Client defaults under test must not depend on the caller's environment."""
    for name in (
        "MICRO_CLIENT_REQUEST_TIMEOUT",
        "MICRO_CLIENT_RETRIES",
        "MICRO_CLIENT_POOL_SIZE",
        "MICRO_CLIENT_POOL_TTL",
        "MICRO_CLIENT_DIAL_TIMEOUT",
        "MICRO_CONTENT_TYPE",
        "MICRO_SELECTOR",
    ):
        monkeypatch.delenv(name, raising=False)
