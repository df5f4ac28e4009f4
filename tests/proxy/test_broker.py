"""ProxyBroker keeps the broker contract (micro.testing.broker) against a real proxy over
a memory broker and over NATS JetStream, and its ack mode loses nothing across a proxy
restart on JetStream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from micro.broker import Event
from micro.broker.memory import MemoryBroker
from micro.broker.proxy import ProxyBroker
from micro.errors import Forbidden, Unauthorized
from micro.testing.broker import CHECKS, run_check
from micro.transport import Message
from tests.contract.test_broker_nats_redis import FAST, TrackedNats, _delete_streams
from tests.proxy.conftest import TOKEN, Remote
from tests.servers import nats_url

pytestmark = pytest.mark.integration

MEMORY = MemoryBroker.capabilities  # what the proxy's broker offers; dead_letter is dropped


@pytest.fixture
async def jetstream() -> AsyncIterator[Remote]:
    """A remote environment whose proxy publishes and subscribes on NATS JetStream."""
    broker = TrackedNats(address=nats_url(), jetstream=True, **FAST)  # type: ignore[arg-type]
    broker.used = set()
    env = Remote(broker)
    await broker.connect()
    await env.start_proxy()
    yield env
    await env.close()
    await _delete_streams(broker.used)


@pytest.mark.parametrize("check", list(CHECKS))
async def test_broker_contract_over_memory(proxy: str, check: str) -> None:
    make = lambda: ProxyBroker(proxy_address=proxy, capabilities=MEMORY)  # noqa: E731
    await run_check(check, make)


@pytest.mark.slow
@pytest.mark.parametrize("check", list(CHECKS))
async def test_broker_contract_over_jetstream(jetstream: Remote, check: str) -> None:
    caps = TrackedNats(address=nats_url(), jetstream=True).capabilities
    make = lambda: ProxyBroker(proxy_address=jetstream.address, capabilities=caps)  # noqa: E731
    await run_check(check, make)


def test_capabilities_are_what_the_proxy_keeps() -> None:
    assert ProxyBroker(proxy_address="h:1").capabilities == frozenset()
    assert ProxyBroker(proxy_address="h:1", capabilities=MEMORY).capabilities == {
        "redelivers",
        "ordered",
    }


async def _wait_for(condition: object, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.02)


@pytest.mark.slow
async def test_nothing_is_lost_across_a_proxy_restart_on_jetstream(jetstream: Remote) -> None:
    """A handler cut off by the restart gets its message again; messages published while
    the proxy is down arrive once the subscription is back."""
    address = jetstream.address
    port = int(address.rpartition(":")[2])
    seen: list[str] = []
    release = asyncio.Event()

    async def handler(event: Event) -> None:
        seen.append(event.message.header["X-Seq"])
        if event.message.header["X-Seq"] == "1" and seen.count("1") == 1:
            await release.wait()  # still running when the proxy goes

    broker = ProxyBroker(proxy_address=address)
    await broker.connect()
    try:
        topic = "proxy.restart.test"
        await broker.subscribe(topic, handler, queue="workers")
        publisher = jetstream.broker
        await publisher.publish(topic, Message({"X-Seq": "1"}, b"one"))
        await _wait_for(lambda: seen == ["1"])
        await jetstream.stop_proxy()
        release.set()  # its ack has nowhere to go: the proxy gave the message back
        await publisher.publish(topic, Message({"X-Seq": "2"}, b"two"))
        await jetstream.start_proxy(port=port)
        await _wait_for(lambda: "2" in seen and seen.count("1") >= 2, 20)
    finally:
        await broker.disconnect()


async def test_a_refused_subscription_raises_at_subscribe(remote: Remote) -> None:
    address = await remote.start_proxy(token=TOKEN, allow_topics=("allowed.*",))

    async def ignore(event: Event) -> None:
        pass

    anonymous = ProxyBroker(proxy_address=address)
    trusted = ProxyBroker(proxy_address=address, proxy_token=TOKEN)
    await anonymous.connect()
    await trusted.connect()
    try:
        with pytest.raises(Unauthorized):
            await anonymous.subscribe("allowed.x", ignore)
        with pytest.raises(Unauthorized):
            await anonymous.publish("allowed.x", Message({}, b""))
        with pytest.raises(Forbidden, match="not allowed through this proxy"):
            await trusted.subscribe("secret.x", ignore)
        with pytest.raises(Forbidden, match="not allowed through this proxy"):
            await trusted.publish("secret.x", Message({}, b""))
        sub = await trusted.subscribe("allowed.x", ignore)
        await sub.unsubscribe()
    finally:
        await anonymous.disconnect()
        await trusted.disconnect()
