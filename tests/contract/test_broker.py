"""The broker contract over the core backends: memory, and http (over a memory registry and
over the real mDNS registry on loopback). The nats, redis, rabbitmq and mqtt backends add
their own files running the same suite against their real servers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from micro.broker import Broker, Event
from micro.broker.http import HttpBroker
from micro.broker.memory import MemoryBroker
from micro.registry.memory import MemoryRegistry
from micro.testing.broker import CHECKS, check_broker, run_check

MakeBroker = Callable[[], Broker]


@pytest.fixture
async def registry() -> AsyncIterator[MemoryRegistry]:
    reg = MemoryRegistry()
    await reg.start()
    yield reg
    await reg.close()


def _backend(name: str, registry: MemoryRegistry) -> MakeBroker:
    if name == "memory":
        return MemoryBroker
    return lambda: HttpBroker(registry=registry, address="127.0.0.1:0", retry_backoff=0.02)


@pytest.mark.parametrize("check", list(CHECKS))
@pytest.mark.parametrize("backend", ["memory", "http"])
async def test_broker_contract(backend: str, check: str, registry: MemoryRegistry) -> None:
    await run_check(check, _backend(backend, registry))


@pytest.mark.integration
@pytest.mark.slow
async def test_http_broker_contract_over_mdns() -> None:
    from micro.registry.mdns import MdnsRegistry

    registry = MdnsRegistry()
    await registry.start()
    try:
        await check_broker(lambda: HttpBroker(registry=registry, retry_backoff=0.02))
    finally:
        await registry.close()


async def test_contract_catches_a_broker_that_ignores_queue_groups() -> None:
    class NoGroups(MemoryBroker):
        async def subscribe(self, topic, handler, *, queue=None, auto_ack=True):
            return await super().subscribe(topic, handler, auto_ack=auto_ack)

    with pytest.raises(AssertionError, match="group got"):
        await run_check("queue_group", NoGroups)


async def test_contract_catches_a_broker_that_loses_headers() -> None:
    class Lossy(MemoryBroker):
        async def subscribe(self, topic, handler, *, queue=None, auto_ack=True):
            async def strip(event: Event) -> None:
                event.message.header.clear()
                await handler(event)

            return await super().subscribe(topic, strip, queue=queue, auto_ack=auto_ack)

    with pytest.raises(AssertionError, match="header"):
        await run_check("delivery", Lossy)
