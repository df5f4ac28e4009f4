"""``MemoryBroker``: in-process pub/sub for tests and single-process apps.

Each subscription has its own FIFO and one task that runs its handler, so one publisher's
messages reach one subscriber in order and a slow subscriber never blocks the others.
Broadcast subscriptions each get every message; a queue group hands each message to one
member, round robin. ``publish`` returns once the message is queued for every subscriber.

Ack and redelivery: ``nack(requeue=True)`` (or a raising handler) puts the message back
(for a group: to the next member), up to ``max_deliveries`` deliveries in all; after that,
and on ``nack(requeue=False)``, the message is dead-lettered: logged as an error and kept in
:attr:`MemoryBroker.dead_letters` (the newest 1,000). Nothing survives the process, and a
group's queued messages are dead-lettered when its last member leaves.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
from typing import NamedTuple

from micro.broker import Broker, BrokerError, Handler, Subscription
from micro.broker._common import BaseEvent, deliver, log
from micro.transport import Message

__all__ = ["DeadLetter", "MemoryBroker"]


class DeadLetter(NamedTuple):
    """A message the memory broker gave up on."""

    topic: str
    message: Message
    reason: str


class _Item(NamedTuple):
    message: Message
    deliveries: int  # how many times it was handed to a handler before this one


class _Group:
    """The members of one queue group on one topic, served round robin."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.members: list[_MemorySubscription] = []
        self._turn = itertools.count()

    def next_member(self) -> _MemorySubscription:
        return self.members[next(self._turn) % len(self.members)]


class _MemoryEvent(BaseEvent):
    __slots__ = ("_deliveries", "_sub")

    def __init__(self, sub: _MemorySubscription, item: _Item) -> None:
        super().__init__(sub.topic, item.message)
        self._sub = sub
        self._deliveries = item.deliveries + 1

    async def _nack(self, requeue: bool) -> None:
        self._sub.broker._redeliver(self._sub, self.message, self._deliveries, requeue)


class _MemorySubscription(Subscription):
    def __init__(
        self,
        broker: MemoryBroker,
        topic: str,
        handler: Handler,
        queue: str | None,
        auto_ack: bool,
    ) -> None:
        self.broker = broker
        self.topic = topic
        self.queue = queue
        self.handler = handler
        self.auto_ack = auto_ack
        self.items: collections.deque[_Item] = collections.deque()
        self._wake = asyncio.Event()
        self._stop = False  # leave after the running handler call
        self._drain = False  # leave once the queue is empty
        self.task = asyncio.create_task(self._run(), name=f"memory-sub-{topic}")

    def put(self, item: _Item) -> None:
        self.items.append(item)
        self._wake.set()

    async def _run(self) -> None:
        while not self._stop:
            if not self.items:
                if self._drain:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            item = self.items.popleft()
            await deliver(self.handler, _MemoryEvent(self, item), auto_ack=self.auto_ack)

    def drain(self) -> None:
        self._drain = True
        self._wake.set()

    async def unsubscribe(self) -> None:
        if self._stop:
            return
        self._stop = True
        self.broker._detach(self)
        self._wake.set()
        if self.task is not asyncio.current_task():
            await asyncio.wait({self.task})


class MemoryBroker(Broker):
    """In-process broker.

    Args:
        max_deliveries: deliveries of one message before it is dead-lettered (>= 1).
        drain_timeout: seconds ``disconnect`` lets queued messages be handled.
        address: ignored (accepted so that every backend takes the same options).
    """

    name = "memory"
    capabilities = frozenset({"redelivers", "ordered", "dead_letter"})

    def __init__(
        self,
        *,
        max_deliveries: int = 5,
        drain_timeout: float = 10.0,
        address: str | None = None,
    ) -> None:
        if max_deliveries < 1:
            raise ValueError("max_deliveries must be at least 1")
        self.max_deliveries = max_deliveries
        self.drain_timeout = drain_timeout
        self.dead_letters: collections.deque[DeadLetter] = collections.deque(maxlen=1000)
        self._broadcast: dict[str, list[_MemorySubscription]] = {}
        self._groups: dict[tuple[str, str], _Group] = {}
        self._connected = False

    def __repr__(self) -> str:
        return f"MemoryBroker(connected={self._connected})"

    @property
    def address(self) -> str:
        return "memory"

    async def connect(self) -> None:
        self._connected = True

    async def disconnect(self) -> None:
        if not self._connected:
            return
        self._connected = False
        subs = [s for group in self._broadcast.values() for s in group]
        subs += [s for g in self._groups.values() for s in g.members]
        for sub in subs:
            sub.drain()
        tasks = {sub.task for sub in subs}
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=self.drain_timeout)
            if late:
                log.warning("memory broker: %d subscriber(s) still busy; cancelling", len(late))
        for sub in subs:
            sub.task.cancel()
            await sub.unsubscribe()

    async def publish(self, topic: str, message: Message) -> None:
        if not self._connected:
            raise BrokerError("memory broker is not connected", id="go.micro.broker")
        for sub in self._broadcast.get(topic, ()):
            sub.put(_Item(_copy(message), 0))
        for (group_topic, _), group in self._groups.items():
            if group_topic == topic:
                group.next_member().put(_Item(_copy(message), 0))

    async def subscribe(
        self,
        topic: str,
        handler: Handler,
        *,
        queue: str | None = None,
        auto_ack: bool = True,
    ) -> Subscription:
        if not self._connected:
            raise BrokerError("memory broker is not connected", id="go.micro.broker")
        if not topic:
            raise BrokerError("a subscription needs a topic", id="go.micro.broker")
        sub = _MemorySubscription(self, topic, handler, queue, auto_ack)
        if queue is None:
            self._broadcast.setdefault(topic, []).append(sub)
        else:
            group = self._groups.get((topic, queue))
            if group is None:
                group = self._groups[(topic, queue)] = _Group(queue)
            group.members.append(sub)
        return sub

    # -- internals ---------------------------------------------------------------------------

    def _detach(self, sub: _MemorySubscription) -> None:
        if sub.queue is None:
            subs = self._broadcast.get(sub.topic, [])
            if sub in subs:
                subs.remove(sub)
            if not subs:
                self._broadcast.pop(sub.topic, None)
            return
        key = (sub.topic, sub.queue)
        group = self._groups.get(key)
        if group is None or sub not in group.members:
            return
        group.members.remove(sub)
        left, sub.items = list(sub.items), collections.deque()
        if not group.members:
            del self._groups[key]
            for item in left:
                self._dead(sub.topic, item.message, f"queue group {sub.queue!r} has no member")
            return
        for item in left:  # a leaving member's backlog goes to the others
            group.next_member().put(item)

    def _redeliver(
        self, sub: _MemorySubscription, message: Message, deliveries: int, requeue: bool
    ) -> None:
        if not requeue:
            self._dead(sub.topic, message, "nacked without requeue")
            return
        if deliveries >= self.max_deliveries:
            self._dead(sub.topic, message, f"nacked {deliveries} times")
            return
        item = _Item(message, deliveries)
        group = self._groups.get((sub.topic, sub.queue)) if sub.queue is not None else None
        if group is not None and group.members:
            group.next_member().put(item)
        elif not sub._stop:
            sub.put(item)
        else:
            self._dead(sub.topic, message, "its subscriber left")

    def _dead(self, topic: str, message: Message, reason: str) -> None:
        msg_id = message.header.get("Micro-Id", "(no id)")
        log.error("memory broker: dropped message %s of %s: %s", msg_id, topic, reason)
        self.dead_letters.append(DeadLetter(topic, message, reason))


def _copy(message: Message) -> Message:
    return Message(dict(message.header), message.body)
