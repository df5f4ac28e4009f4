"""The contract every :class:`~micro.broker.Broker` backend keeps, as a reusable suite.

    from micro.testing.broker import check_broker

    async def test_my_broker() -> None:
        await check_broker(lambda: MyBroker(address="127.0.0.1:4222"))

``make`` builds a fresh, unconnected broker for each check; the check connects it, publishes
and subscribes through that one instance (on topics of its own, ``contract.<random>``) and
disconnects it. Behaviour beyond delivery is checked only where the backend declares it in
``Broker.capabilities`` (or in ``capabilities=`` when given): ``redelivers`` (a raising
handler or ``nack(requeue=True)`` gets the message again), ``ordered`` (one publisher's
messages reach one subscriber in order), ``durable`` (a message published with no
subscriber is not checked as lost). The checks are exported one by one (:data:`CHECKS`) so a
test can parametrize over them; they raise :class:`AssertionError`, need no test framework,
and each is bounded by ``timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from micro.broker import Broker, BrokerError, Event, Handler
from micro.transport import Message

__all__ = ["CHECKS", "MakeBroker", "check_broker"]

MakeBroker = Callable[[], Broker]
"""Builds the broker under test (one per check), not yet connected."""

Check = Callable[[MakeBroker, frozenset[str]], Awaitable[None]]

BINARY = bytes(range(256)) * 2
QUIET = 0.3  # seconds to wait for a message that must NOT come


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def _topic(name: str) -> str:
    return f"contract.{name}.{uuid.uuid4().hex[:10]}"


def _message(n: int = 0, body: bytes | None = None) -> Message:
    header = {
        "Content-Type": "application/octet-stream",
        "Micro-Id": str(uuid.uuid4()),
        "X-Seq": str(n),
    }
    return Message(header, body if body is not None else str(n).encode())


class Recorder:
    """A handler that records events; ``await wait(n)`` until it has seen ``n``."""

    def __init__(
        self,
        behaviour: Callable[[Event, int], Awaitable[None]] | None = None,
        *,
        tee: Recorder | None = None,
    ) -> None:
        self.events: list[Event] = []
        self._behaviour = behaviour
        self._tee = tee  # also records there (a group's members into one total)
        self._changed = asyncio.Event()

    async def __call__(self, event: Event) -> None:
        self.events.append(event)
        self._changed.set()
        if self._tee is not None:
            self._tee.events.append(event)
            self._tee._changed.set()
        if self._behaviour is not None:
            await self._behaviour(event, len(self.events))

    def seqs(self) -> list[str]:
        return [e.message.header.get("X-Seq", "") for e in self.events]

    async def wait(self, n: int, timeout: float = 10.0) -> None:
        try:
            async with asyncio.timeout(timeout):
                while len(self.events) < n:
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(
                f"expected {n} message(s) within {timeout:g}s, got {len(self.events)}"
            ) from None


async def _connected(make: MakeBroker) -> Broker:
    broker = make()
    await broker.connect()
    return broker


# -- the checks --------------------------------------------------------------------------------


async def check_delivery(make: MakeBroker, caps: frozenset[str]) -> None:
    """Headers and a binary body arrive unchanged; ``topic`` and ``id`` are set."""
    broker = await _connected(make)
    try:
        topic, got = _topic("delivery"), Recorder()
        await broker.subscribe(topic, got)
        sent = _message(1, BINARY)
        await broker.publish(topic, sent)
        await got.wait(1)
        event = got.events[0]
        _expect(event.topic == topic, f"event.topic {event.topic!r} != {topic!r}")
        _expect(event.message.body == BINARY, "the binary body changed on the way")
        for key, value in sent.header.items():
            have = event.message.header.get(key)
            _expect(have == value, f"header {key}: sent {value!r}, received {have!r}")
        _expect(event.id == sent.header["Micro-Id"], "event.id is not the Micro-Id header")
    finally:
        await broker.disconnect()


async def check_broadcast(make: MakeBroker, caps: frozenset[str]) -> None:
    """Without a queue, every subscription gets every message."""
    broker = await _connected(make)
    try:
        topic, one, two = _topic("broadcast"), Recorder(), Recorder()
        await broker.subscribe(topic, one)
        await broker.subscribe(topic, two)
        for n in range(10):
            await broker.publish(topic, _message(n))
        await one.wait(10)
        await two.wait(10)
        await asyncio.sleep(QUIET)
        for rec in (one, two):
            _expect(sorted(rec.seqs(), key=int) == [str(n) for n in range(10)], f"{rec.seqs()}")
    finally:
        await broker.disconnect()


async def check_queue_group(make: MakeBroker, caps: frozenset[str]) -> None:
    """A queue group's members share the messages (each once); a broadcast one gets all."""
    broker = await _connected(make)
    try:
        group, watcher = Recorder(), Recorder()
        topic, a, b = _topic("queue"), Recorder(tee=group), Recorder(tee=group)
        await broker.subscribe(topic, a, queue="workers")
        await broker.subscribe(topic, b, queue="workers")
        await broker.subscribe(topic, watcher)
        total = 20
        for n in range(total):
            await broker.publish(topic, _message(n))
        await watcher.wait(total)
        await group.wait(total)
        await asyncio.sleep(QUIET)
        shared = sorted(a.seqs() + b.seqs(), key=int)
        _expect(shared == [str(n) for n in range(total)], f"group got {shared}")
        _expect(bool(a.events) and bool(b.events), "one member of the group got nothing")
    finally:
        await broker.disconnect()


async def check_auto_ack(make: MakeBroker, caps: frozenset[str]) -> None:
    """A handler that returns acks its message: it is not delivered again."""
    broker = await _connected(make)
    try:
        topic, got = _topic("autoack"), Recorder()
        await broker.subscribe(topic, got)
        await broker.publish(topic, _message(1))
        await got.wait(1)
        await asyncio.sleep(QUIET * 2)
        _expect(len(got.events) == 1, f"acked message delivered {len(got.events)} times")
    finally:
        await broker.disconnect()


async def check_manual_ack(make: MakeBroker, caps: frozenset[str]) -> None:
    """With ``auto_ack=False`` the handler acks; a nack(requeue) redelivers if declared."""

    async def first_nacked(event: Event, count: int) -> None:
        if count == 1 and "redelivers" in caps:
            await event.nack(requeue=True)
        else:
            await event.ack()
            await event.ack()  # idempotent

    broker = await _connected(make)
    try:
        topic, got = _topic("manual"), Recorder(first_nacked)
        await broker.subscribe(topic, got, auto_ack=False)
        await broker.publish(topic, _message(7))
        want = 2 if "redelivers" in caps else 1
        await got.wait(want)
        await asyncio.sleep(QUIET)
        _expect(len(got.events) == want, f"expected {want} deliveries, got {len(got.events)}")
        _expect(set(got.seqs()) == {"7"}, f"unexpected messages {got.seqs()}")
    finally:
        await broker.disconnect()


async def check_handler_raises(make: MakeBroker, caps: frozenset[str]) -> None:
    """A raising handler never stops the subscription; with ``redelivers`` it is retried."""

    async def fail_first(event: Event, count: int) -> None:
        if count == 1:
            raise RuntimeError("contract: handler failure (expected in this test)")

    broker = await _connected(make)
    try:
        topic, got = _topic("raises"), Recorder(fail_first)
        await broker.subscribe(topic, got)
        await broker.publish(topic, _message(1))
        await got.wait(1)
        await broker.publish(topic, _message(2))
        if "redelivers" in caps:
            await got.wait(3)
            _expect(got.seqs().count("1") >= 2, f"failed message not redelivered: {got.seqs()}")
        else:
            await got.wait(2)
        _expect("2" in got.seqs(), "the subscription stopped after a handler raised")
    finally:
        await broker.disconnect()


async def check_nack_drop(make: MakeBroker, caps: frozenset[str]) -> None:
    """``nack(requeue=False)`` is final: the message is not delivered to the handler again."""

    async def drop(event: Event, count: int) -> None:
        await event.nack(requeue=False)

    broker = await _connected(make)
    try:
        topic, got = _topic("drop"), Recorder(drop)
        await broker.subscribe(topic, got, auto_ack=False)
        await broker.publish(topic, _message(1))
        await got.wait(1)
        await broker.publish(topic, _message(2))
        await got.wait(2)
        await asyncio.sleep(QUIET * 2)
        _expect(got.seqs() == ["1", "2"], f"dropped messages came back: {got.seqs()}")
    finally:
        await broker.disconnect()


async def check_unsubscribe(make: MakeBroker, caps: frozenset[str]) -> None:
    """After ``unsubscribe`` (idempotent) nothing more arrives; other subscriptions go on."""
    broker = await _connected(make)
    try:
        topic, gone, stays = _topic("unsub"), Recorder(), Recorder()
        sub = await broker.subscribe(topic, gone)
        await broker.subscribe(topic, stays)
        await broker.publish(topic, _message(1))
        await gone.wait(1)
        await stays.wait(1)
        await sub.unsubscribe()
        await sub.unsubscribe()
        await broker.publish(topic, _message(2))
        await stays.wait(2)
        await asyncio.sleep(QUIET)
        _expect(gone.seqs() == ["1"], f"received after unsubscribe: {gone.seqs()}")
    finally:
        await broker.disconnect()


async def check_publish_to_nobody(make: MakeBroker, caps: frozenset[str]) -> None:
    """Publishing with no subscriber succeeds; a later subscriber gets later messages."""
    broker = await _connected(make)
    try:
        topic, got = _topic("nobody"), Recorder()
        await broker.publish(topic, _message(1))
        await broker.subscribe(topic, got)
        await broker.publish(topic, _message(2))
        await got.wait(1)
        await asyncio.sleep(QUIET)
        if "durable" not in caps:
            _expect(got.seqs() == ["2"], f"expected only the later message: {got.seqs()}")
        else:
            _expect("2" in got.seqs(), f"the later message is missing: {got.seqs()}")
    finally:
        await broker.disconnect()


async def check_ordered(make: MakeBroker, caps: frozenset[str]) -> None:
    """With ``ordered``: 200 messages from one publisher arrive in publish order."""
    if "ordered" not in caps:
        return
    broker = await _connected(make)
    try:
        topic, got = _topic("ordered"), Recorder()
        await broker.subscribe(topic, got)
        for n in range(200):
            await broker.publish(topic, _message(n))
        await got.wait(200)
        _expect(got.seqs() == [str(n) for n in range(200)], "messages arrived out of order")
    finally:
        await broker.disconnect()


async def check_disconnect_drains(make: MakeBroker, caps: frozenset[str]) -> None:
    """``disconnect`` lets running handlers finish (none is cut off) and never raises."""
    started: list[str] = []
    finished: list[str] = []
    first = asyncio.Event()

    async def slow(event: Event) -> None:
        started.append(event.id)
        first.set()
        await asyncio.sleep(0.05)
        finished.append(event.id)

    broker = await _connected(make)
    topic = _topic("drain")
    await broker.subscribe(topic, slow)
    for n in range(5):
        await broker.publish(topic, _message(n))
    try:
        await asyncio.wait_for(first.wait(), 10)
    except TimeoutError:
        raise AssertionError("no message arrived within 10s") from None
    await broker.disconnect()
    _expect(started == finished, f"handlers cut off by disconnect: {started} vs {finished}")
    await broker.disconnect()  # idempotent


async def check_bad_use(make: MakeBroker, caps: frozenset[str]) -> None:
    """Publishing or subscribing before ``connect`` raises BrokerError (no hang, no crash)."""
    broker = make()
    handler: Handler = Recorder()
    for attempt in (
        lambda: broker.publish(_topic("bad"), _message()),
        lambda: broker.subscribe(_topic("bad"), handler),
    ):
        try:
            async with asyncio.timeout(10):
                await attempt()
        except BrokerError:
            continue
        raise AssertionError("using a broker before connect() did not raise BrokerError")
    await broker.disconnect()  # never connected: a no-op


CHECKS: dict[str, Check] = {
    "delivery": check_delivery,
    "broadcast": check_broadcast,
    "queue_group": check_queue_group,
    "auto_ack": check_auto_ack,
    "manual_ack": check_manual_ack,
    "handler_raises": check_handler_raises,
    "nack_drop": check_nack_drop,
    "unsubscribe": check_unsubscribe,
    "publish_to_nobody": check_publish_to_nobody,
    "ordered": check_ordered,
    "disconnect_drains": check_disconnect_drains,
    "bad_use": check_bad_use,
}


async def run_check(
    name: str,
    make: MakeBroker,
    *,
    capabilities: Collection[str] | None = None,
    timeout: float = 30.0,
) -> None:
    """Run one check, with the backend's declared capabilities unless given."""
    caps = frozenset(capabilities) if capabilities is not None else _declared(make)
    async with asyncio.timeout(timeout):
        await CHECKS[name](make, caps)


async def check_broker(
    make: MakeBroker,
    *,
    capabilities: Collection[str] | None = None,
    timeout: float = 30.0,
    skip: Collection[str] = (),
) -> None:
    """Run every check (but ``skip``) against fresh brokers from ``make``."""
    for name in CHECKS:
        if name not in skip:
            await run_check(name, make, capabilities=capabilities, timeout=timeout)


def _declared(make: MakeBroker) -> frozenset[str]:
    probe: Any = make()
    return frozenset(getattr(probe, "capabilities", ()))
