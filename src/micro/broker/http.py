"""``HttpBroker``: the zero-set-up default, go-micro's HTTP broker protocol without its flaws.

Every broker runs a small HTTP server (``POST /_sub?id=<subscriber id>``). A subscription is
a node (id ``<topic>-<broker id>``, metadata ``broker=http``, ``topic=<topic>``, ``secure``)
registered under ``go.micro.http.broker`` and under ``topic:<topic>``, version = the queue name
or ``ff.http.broadcast``, with a TTL and renewed: the two names are what go-micro v1.18+ and
v1.0 to v1.12 publishers look up (:mod:`micro.broker._http_records`). ``publish`` finds the
subscribers in a watched registry cache and POSTs ``{"Header": {..., ":topic": topic},
"Body": base64}`` to every broadcast node and to one node per queue group (wire format in
``docs/broker.md``).

What go-micro drops silently, this broker retries and then reports:

* ``publish`` queues one delivery per target and returns; a bounded queue (``max_pending``)
  makes a publisher wait, then raise :class:`BrokerError`, when subscribers cannot keep up.
* A delivery that fails (connection refused, no answer, the handler raised: ``503``) is
  retried with exponential backoff up to ``max_attempts`` times, a queue-group delivery on
  another member; then it is logged with its message id, counted in :attr:`stats` and
  handed to ``on_undelivered``.
* ``publish(..., wait=True)`` returns only once every target acknowledged (its handler
  returned or acked), and raises :class:`BrokerError` when there was no subscriber or a
  delivery failed for good.

The receiving side answers a publication after the handler settled it: ``200`` for ack,
``503`` for ``nack(requeue=True)`` (the publisher redelivers), ``200`` for
``nack(requeue=False)`` (dropped, logged here), ``404`` for an unknown subscriber id, ``400``
for a body that is not a publication, ``405`` for any method but POST.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from micro import plugins
from micro.broker import Broker, BrokerError, Handler, Subscription
from micro.broker._common import BaseEvent, deliver
from micro.broker._http_nodes import SubscriberCache, Targets
from micro.broker._http_records import as_stored, subscription_entries
from micro.broker._http_sender import Delivery, Sender
from micro.broker._http_server import TARGET, BrokerListener, BrokerSocket
from micro.broker._http_wire import (
    BROADCAST,
    BROKER_ID,
    decode_publication,
    encode_publication,
    subscriber_id,
)
from micro.errors import BadRequest, MicroError, NotFound
from micro.registry import Node, Registry, Result, Service
from micro.server._addr import advertise_address
from micro.transport import DEFAULT_MAX_BODY, Message
from micro.transport._http_wire import split_address

__all__ = ["HttpBroker"]

log = logging.getLogger("micro.broker.http")

Undelivered = Callable[[str, Message | None, str, MicroError], None]
"""``on_undelivered(topic, None, message_id, error)``: a delivery given up on."""


class _Tracker:
    """Counts the outcomes of one ``publish(wait=True)``."""

    __slots__ = ("errors", "future", "left")

    def __init__(self, targets: int) -> None:
        self.left = targets
        self.errors: list[MicroError] = []
        self.future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def done(self, error: MicroError | None) -> None:
        if error is not None:
            self.errors.append(error)
        self.left -= 1
        if self.left == 0 and not self.future.done():
            self.future.set_result(None)


class _HttpEvent(BaseEvent):
    __slots__ = ("settled",)

    def __init__(self, topic: str, message: Message) -> None:
        super().__init__(topic, message)
        self.settled = asyncio.Event()

    async def _ack(self) -> None:
        self.settled.set()

    async def _nack(self, requeue: bool) -> None:
        if not requeue:
            log.error("http broker: message %s of %s dropped (nack)", self.id, self.topic)
        self.settled.set()


class _HttpSubscription(Subscription):
    def __init__(
        self, broker: HttpBroker, node_id: str, topic: str, handler: Handler, queue: str | None,
        auto_ack: bool,
    ) -> None:  # fmt: skip
        self.broker = broker
        self.id = node_id
        self.topic = topic
        self.handler = handler
        self.queue = queue
        self.auto_ack = auto_ack
        self.inflight = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self.active = True

    def entries(self) -> list[Service]:
        """This subscription's registry entries, one node under both names."""
        meta = {"secure": "false", "broker": "http", "topic": self.topic}
        node = Node(id=self.id, address=self.broker.advertised, metadata=meta)
        return subscription_entries(node, self.topic, self.queue or BROADCAST)

    async def unsubscribe(self) -> None:
        await self.broker._unsubscribe(self)


class HttpBroker(Broker):
    """go-micro's HTTP broker.

    Args:
        address: ``host:port`` to listen on (default ``127.0.0.1:0``; a ``Service`` passes
            the ``broker_address`` setting, else its server's host with port 0).
        advertise: the address put in the registry (default: the bound one, an unspecified
            host replaced by the first of ``interfaces``, else the private IPv4 address).
        interfaces: the pinned mDNS interfaces (setting ``mdns_interfaces``).
        registry: a Registry, a backend name, or None (mdns).
        register_ttl, register_interval: seconds a subscription's entry lives / between
            renewals (60 / 30).
        max_pending: deliveries queued or in flight before ``publish`` waits (10,000).
        publish_timeout: seconds ``publish`` waits for room in that queue before raising.
        max_attempts: tries per delivery before it is reported undelivered (8).
        retry_backoff: seconds before the first retry; doubles per retry, up to 2 s.
        ack_timeout: seconds the receiver waits for a manual ack before answering 503.
        drain_timeout: seconds ``disconnect`` lets queued deliveries and handlers finish.
        on_undelivered: called for each delivery given up on (after the error log).
    """

    name = "http"
    capabilities = frozenset({"redelivers", "ordered"})

    def __init__(
        self,
        *,
        address: str | None = None,
        advertise: str | None = None,
        interfaces: Sequence[str] = (),
        registry: Registry | str | None = None,
        register_ttl: float = 60.0,
        register_interval: float = 30.0,
        max_pending: int = 10_000,
        publish_timeout: float = 5.0,
        max_attempts: int = 8,
        retry_backoff: float = 0.1,
        ack_timeout: float = 10.0,
        drain_timeout: float = 10.0,
        max_body: int = DEFAULT_MAX_BODY,
        on_undelivered: Undelivered | None = None,
    ) -> None:
        self.id = str(uuid.uuid4())
        self._address = (address or "").split(",")[0].strip() or "127.0.0.1:0"
        self._interfaces = tuple(interfaces)
        split_address(self._address, default_host="")  # fail now on a malformed address
        self._advertise = advertise or ""
        self.advertised = ""
        if isinstance(registry, Registry):
            self.registry, self._own_registry = registry, False
        else:
            self.registry = plugins.create("registry", registry)
            self._own_registry = not plugins.is_shared(self.registry)
        self.register_ttl = register_ttl
        self.register_interval = register_interval
        self.max_pending = max_pending
        self.publish_timeout = publish_timeout
        self.max_attempts = max_attempts
        self.retry_backoff = retry_backoff
        self.ack_timeout = ack_timeout
        self.drain_timeout = drain_timeout
        self.max_body = max_body
        self.on_undelivered = on_undelivered
        self.stats = dict.fromkeys(
            ("published", "delivered", "retried", "undelivered", "no_subscriber", "received"), 0
        )
        self._subs: dict[str, _HttpSubscription] = {}
        self._senders: dict[str, Sender] = {}
        self._cache = SubscriberCache(self.registry)
        self._listener: BrokerListener | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._pending = 0
        self._room = asyncio.Event()
        self._empty = asyncio.Event()
        self._timers: dict[Delivery, asyncio.TimerHandle] = {}
        self._seq = itertools.count(1)
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"HttpBroker(address={self.address!r}, registry={self.registry.name!r})"

    @property
    def address(self) -> str:
        return self._listener.address if self._listener is not None else self._address

    @property
    def connected(self) -> bool:
        return self._listener is not None

    # -- lifecycle -----------------------------------------------------------------------------

    async def connect(self) -> None:
        async with self._lock:
            if self._listener is not None:
                return
            await self.registry.start()
            listener = BrokerListener(self._serve, max_body=self.max_body, max_header=64 * 1024)
            host, port = split_address(self._address, default_host="0.0.0.0")
            try:
                await listener.start(host, port, backlog=1024)
            except OSError as exc:
                detail = f"http broker: listen {self._address}: {exc}"
                raise BrokerError(detail, id=BROKER_ID) from None
            self._listener = listener
            self.advertised = advertise_address(listener.address, self._advertise, self._interfaces)
            if self.register_interval > 0:
                self._keeper = asyncio.create_task(self._keep_registered())
            log.debug("http broker %s listening on %s", self.id, listener.address)

    async def disconnect(self) -> None:
        async with self._lock:
            listener, self._listener = self._listener, None
            if listener is None:
                return
            await self._flush(self.drain_timeout)
            if self._keeper is not None:
                self._keeper.cancel()
                await asyncio.wait({self._keeper})
            for sub in list(self._subs.values()):
                await self._unsubscribe(sub)
            await self._close_senders()
            await listener.close()
            await listener.abort()
            await self._cache.close()
            if self._own_registry:
                await self.registry.close()

    # -- subscribing ---------------------------------------------------------------------------

    async def subscribe(
        self,
        topic: str,
        handler: Handler,
        *,
        queue: str | None = None,
        auto_ack: bool = True,
    ) -> Subscription:
        if self._listener is None:
            raise BrokerError("http broker is not connected", id=BROKER_ID)
        if not topic:
            raise BrokerError("a subscription needs a topic", id=BROKER_ID)
        node_id = f"{topic}-{self.id}"
        if node_id in self._subs:
            node_id = f"{node_id}-{next(self._seq)}"
        sub = _HttpSubscription(self, node_id, topic, handler, queue, auto_ack)
        self._subs[node_id] = sub
        try:
            await self._register(sub)
        except Exception as exc:  # any registry's failure is this broker's: subscribe promises
            del self._subs[node_id]  # a BrokerError, so a RegistryError is relabelled too
            await self._deregister(sub)  # the entry that may have got in
            raise BrokerError(f"http broker: registering {topic}: {exc}", id=BROKER_ID) from exc
        for entry in sub.entries():
            self._cache.apply(Result(action="create", service=entry))
        return sub

    async def _register(self, sub: _HttpSubscription) -> None:
        for entry in sub.entries():
            stored = as_stored(entry, self.registry.name)
            await self.registry.register(stored, ttl=self.register_ttl or None)

    async def _deregister(self, sub: _HttpSubscription) -> None:
        """Remove both entries; never raises."""
        for entry in sub.entries():
            try:
                await self.registry.deregister(entry)
            except Exception as exc:  # unsubscribe never raises
                log.warning(
                    "http broker: deregistering %s (%s) failed: %s", sub.id, entry.name, exc
                )

    async def _unsubscribe(self, sub: _HttpSubscription) -> None:
        if not sub.active:
            return
        sub.active = False
        for entry in sub.entries():
            self._cache.apply(Result(action="delete", service=entry))
        await self._deregister(sub)
        try:
            await asyncio.wait_for(sub.idle.wait(), self.drain_timeout)
        except TimeoutError:
            log.warning("http broker: %s still handling after %gs", sub.id, self.drain_timeout)
        self._subs.pop(sub.id, None)

    async def _keep_registered(self) -> None:
        while True:
            await asyncio.sleep(self.register_interval)
            for sub in list(self._subs.values()):
                try:
                    await self._register(sub)
                except Exception as exc:  # a registry hiccup must not end the subscription
                    log.warning("http broker: re-registering %s failed: %s", sub.id, exc)

    # -- receiving -----------------------------------------------------------------------------

    async def _serve(self, sock: Any) -> None:
        assert isinstance(sock, BrokerSocket)
        while True:
            try:
                message = await sock.recv()
            except (MicroError, OSError):
                return
            error = await self._receive(message)
            if error is None:
                await sock.send_ok()
            else:
                await sock.send_error(error)

    async def _receive(self, request: Message) -> MicroError | None:
        target = request.header.get(TARGET, "")
        node_id = subscriber_id(target)
        if not node_id:
            return NotFound(f"no route {target!r}: use POST /_sub?id=<subscriber id>", id=BROKER_ID)
        try:
            topic, message = decode_publication(request.body)
        except BadRequest as exc:
            return exc
        sub = self._subs.get(node_id)
        if sub is None or not sub.active or (topic and topic != sub.topic):
            return NotFound(f"no subscriber {node_id} for {topic!r} here", id=BROKER_ID)
        self.stats["received"] += 1
        event = _HttpEvent(sub.topic, message)
        sub.inflight += 1
        sub.idle.clear()
        try:
            await deliver(sub.handler, event, auto_ack=sub.auto_ack)
            if event.outcome is None:
                try:
                    await asyncio.wait_for(event.settled.wait(), self.ack_timeout)
                except TimeoutError:
                    await event.nack(requeue=True)
        finally:
            sub.inflight -= 1
            if not sub.inflight:
                sub.idle.set()
        if event.outcome == "requeue":
            return MicroError(f"{sub.id}: message {event.id} nacked", id=BROKER_ID, code=503)
        return None

    # -- publishing ----------------------------------------------------------------------------

    async def publish(self, topic: str, message: Message, *, wait: bool = False) -> None:
        """Publish ``message`` to every subscriber of ``topic`` (one per queue group).

        Returns once the deliveries are queued; with ``wait`` once every subscriber
        acknowledged.

        Raises:
            BrokerError: not connected; the registry cannot be read (and nothing is cached);
                the queue stayed full for ``publish_timeout``; with ``wait``: no subscriber,
                or a delivery failed after ``max_attempts`` tries.
        """
        if self._listener is None:
            raise BrokerError("http broker is not connected", id=BROKER_ID)
        try:
            targets = await self._cache.targets(topic)
        except MicroError as exc:
            raise BrokerError(f"http broker: finding subscribers of {topic}: {exc.detail}",
                              id=BROKER_ID) from exc  # fmt: skip
        chosen = self._choose(targets)
        msg_id = message.header.get("Micro-Id", "")
        self.stats["published"] += 1
        if not chosen:
            self.stats["no_subscriber"] += 1
            if wait:
                raise BrokerError(f"no subscriber for {topic}", id=BROKER_ID)
            log.debug("http broker: no subscriber for %s (message %s)", topic, msg_id)
            return
        await self._wait_room()
        tracker = _Tracker(len(chosen)) if wait else None
        payload = encode_publication(topic, message)
        for node, group in chosen:
            delivery = Delivery(topic, payload, node.id, group, msg_id, tracker)
            self._pending += 1
            self._send(node.address, delivery)
        if tracker is not None:
            await tracker.future
            if tracker.errors:
                first = tracker.errors[0]
                raise BrokerError(
                    f"{len(tracker.errors)} of {len(chosen)} deliveries of {topic} failed: "
                    f"{first.detail}",
                    id=BROKER_ID,
                )

    def _choose(self, targets: Targets) -> list[tuple[Node, str | None]]:
        chosen: list[tuple[Node, str | None]] = []
        for version, nodes in targets.items():
            if version == BROADCAST:
                chosen.extend((node, None) for node in nodes)
            elif (node := self._cache.pick(nodes)) is not None:
                chosen.append((node, version))
        return chosen

    async def _wait_room(self) -> None:
        if self._pending < self.max_pending:
            return
        try:
            async with asyncio.timeout(self.publish_timeout):
                while self._pending >= self.max_pending:
                    self._room.clear()
                    await self._room.wait()
        except TimeoutError:
            raise BrokerError(
                f"http broker: {self._pending} deliveries pending for {self.publish_timeout:g}s; "
                "subscribers are not keeping up",
                id=BROKER_ID,
            ) from None

    def _send(self, address: str, delivery: Delivery) -> None:
        sender = self._senders.get(address)
        if sender is None:
            sender = self._senders[address] = Sender(address, self._result, max_body=self.max_body)
        sender.put(delivery)

    def _result(self, delivery: Delivery, error: MicroError | None) -> None:
        if error is None:
            self.stats["delivered"] += 1
            self._finish(delivery, None)
            return
        delivery.attempts += 1
        if error.code == 404:  # that node has no such subscriber (any more)
            self._cache.forget(delivery.topic, delivery.node_id)
        elif error.code != 503 and (node := self._cache.find(delivery.topic, delivery.node_id)):
            self._cache.mark_bad(node.address)
        if delivery.attempts >= self.max_attempts:
            self._give_up(delivery, error)
            return
        self.stats["retried"] += 1
        delay = min(self.retry_backoff * 2 ** (delivery.attempts - 1), 2.0)
        loop = asyncio.get_running_loop()
        self._timers[delivery] = loop.call_later(delay, self._retry, delivery, error)

    def _retry(self, delivery: Delivery, error: MicroError) -> None:
        self._timers.pop(delivery, None)
        node = self._retry_target(delivery)
        if node is None:
            self._give_up(delivery, error)
            return
        delivery.node_id = node.id
        self._send(node.address, delivery)

    def _retry_target(self, delivery: Delivery) -> Node | None:
        if delivery.group is not None:
            nodes = self._cache.cached(delivery.topic).get(delivery.group, [])
            return self._cache.pick(nodes)
        # None when the broadcast subscriber left: nobody to redeliver to
        return self._cache.find(delivery.topic, delivery.node_id)

    def _give_up(self, delivery: Delivery, error: MicroError) -> None:
        self.stats["undelivered"] += 1
        log.error(
            "http broker: message %s of %s NOT delivered to %s after %d attempt(s): %s",
            delivery.message_id or "(no id)",
            delivery.topic,
            delivery.group or delivery.node_id,
            delivery.attempts,
            error.detail,
        )
        if self.on_undelivered is not None:
            try:
                self.on_undelivered(delivery.topic, None, delivery.message_id, error)
            except Exception:  # a failing user callback is logged
                log.exception("on_undelivered failed")
        self._finish(delivery, error)

    def _finish(self, delivery: Delivery, error: MicroError | None) -> None:
        if delivery.tracker is not None:
            delivery.tracker.done(error)
        self._pending -= 1
        if self._pending < self.max_pending:
            self._room.set()
        if not self._pending:
            self._empty.set()

    async def _flush(self, timeout: float) -> None:
        if not self._pending:
            return
        self._empty.clear()
        try:
            await asyncio.wait_for(self._empty.wait(), timeout)
        except TimeoutError:
            log.error("http broker: %d deliveries still pending at disconnect", self._pending)

    async def _close_senders(self) -> None:
        gone = BrokerError("the broker disconnected before delivering it", id=BROKER_ID)
        timers, self._timers = self._timers, {}
        for delivery, timer in timers.items():
            timer.cancel()
            self._give_up(delivery, gone)
        senders, self._senders = self._senders, {}
        for sender in senders.values():
            await sender.close()  # unanswered deliveries go back on its queue
            for delivery in sender.queue:
                self._give_up(delivery, gone)
