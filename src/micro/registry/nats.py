"""The NATS registry: discovery over NATS subjects, so a team that runs NATS needs nothing else.

No JetStream and no storage: each registry instance answers for the nodes it registered.

- ``register`` keeps the node in the instance, subscribes to the service's query subject and
  publishes an announcement on its events subject (also on every re-register: that is the
  heartbeat watchers count on).
- ``get_service`` / ``list_services`` publish a query with a reply inbox and gather the
  answers: they return as soon as answers stop coming (``gather`` seconds of quiet after the
  first), and at once when NATS reports no responders (nobody holds such a service).
- ``watch`` subscribes to the events subject, learns the nodes already live with one query,
  and reports create/update/delete; a node whose TTL passes without a new announcement is
  reported deleted (a crashed process says no goodbye). A process that dies also stops
  answering queries at once, since NATS drops its subscriptions with its connection.

Subjects and bodies are in :mod:`micro.registry._nats_wire`; the default prefix is
``micro.registry`` (``prefix=`` or ``MICRO_NATS_REGISTRY_PREFIX``). go-plugins' NATS
registry used the same query/answer idea on fixed subjects without TTLs; it is not wire
compatible with this one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncGenerator, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError

from micro._nats import Lease, Options, connect, parse_servers, settle
from micro.errors import RegistryError, ServiceNotFound, translate
from micro.registry import Node, Registry, Result, Service, group_by_version
from micro.registry._nats_table import NodeTable
from micro.registry._nats_wire import (
    Announcement,
    decode_answer,
    decode_event,
    encode_answer,
    encode_event,
    event_subject,
    list_subject,
    query_subject,
    validate_prefix,
)

__all__ = ["NatsRegistry"]

log = logging.getLogger("micro.registry.nats")

DEFAULT_ADDRESS = "127.0.0.1:4222"
DEFAULT_PREFIX = "micro.registry"
_ID = "go.micro.registry"


def _failing(what: str) -> contextlib.AbstractContextManager[None]:
    """NATS failures in the block as :class:`RegistryError` ("nats registry: <what>")."""
    return translate(RegistryError, f"nats registry: {what}", id=_ID, driver_errors=(NatsError,))


@dataclass(slots=True)
class _Local:
    service: Service  # one node
    ttl: float | None
    expires: float | None  # loop time
    timer: asyncio.TimerHandle | None = None


class NatsRegistry(Registry):
    """Registry over NATS request/reply and announcements.

    Args:
        address: NATS servers, a comma list or sequence of ``host:port`` or ``nats://``
            URLs (credentials may be in the URL); default ``MICRO_REGISTRY_ADDRESS``, else
            ``127.0.0.1:4222``.
        prefix: subject prefix, so unrelated deployments (or test runs) share one NATS;
            default ``MICRO_NATS_REGISTRY_PREFIX``, else ``micro.registry``.
        timeout: the longest a lookup waits for its first answer, in seconds. It costs
            nothing when no node is there (NATS says "no responders" at once); it only
            bounds the wait for a registry instance that is subscribed but slow to answer
            (a busy event loop), so it is generous.
        gather: how long a lookup keeps listening after the last answer.
        user, password, token, tls: NATS authentication and TLS (an ``ssl.SSLContext``);
            user and password default to ``MICRO_REGISTRY_USERNAME``/``_PASSWORD``.
        reconnect_wait: seconds between reconnection attempts (retried forever).
    """

    name = "nats"

    def __init__(
        self,
        *,
        address: str | Sequence[str] | None = None,
        prefix: str | None = None,
        timeout: float = 2.0,
        gather: float = 0.05,
        user: str | None = None,
        password: str | None = None,
        token: str | None = None,
        tls: ssl.SSLContext | None = None,
        reconnect_wait: float = 1.0,
    ) -> None:
        self.servers = parse_servers(address or DEFAULT_ADDRESS)
        self.prefix = validate_prefix(prefix or DEFAULT_PREFIX)
        self.timeout, self.gather = timeout, gather
        self._options = Options(
            servers=tuple(self.servers),
            user=user,
            password=password,
            token=token,
            tls=tls,
            name="micro-registry",
            connect_timeout=2.0,
            reconnect_wait=reconnect_wait,
        )
        self._lease: Lease | None = None
        self._nc: NatsClient | None = None
        self._lock = asyncio.Lock()
        self._closed = False
        self._local: dict[str, dict[str, _Local]] = {}  # service name -> node id -> entry
        self._query_subs: dict[str, Subscription] = {}
        self._list_sub: Subscription | None = None
        self._watchers: set[asyncio.Queue[Announcement | list[Announcement] | None]] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect to NATS (idempotent).

        Raises:
            RegistryError: no server could be reached.
        """
        await self._connection()

    async def close(self) -> None:
        """Announce our nodes gone, end watches, disconnect; never raises."""
        self._closed = True
        for queue in list(self._watchers):
            queue.put_nowait(None)
        nc, self._nc = self._nc, None
        if nc is not None and nc.is_connected:
            with contextlib.suppress(NatsError, OSError, TimeoutError):
                for entries in self._local.values():
                    for entry in entries.values():
                        await nc.publish(*self._event(entry.service, "delete", None))
                await settle(nc, 1)
        for entries in self._local.values():
            for entry in entries.values():
                if entry.timer is not None:
                    entry.timer.cancel()
        self._local.clear()
        subs = [*self._query_subs.values(), self._list_sub]
        self._query_subs.clear()
        self._list_sub = None
        for task in list(self._tasks):
            task.cancel()
        for sub in subs:  # the connection may stay open for the transport or the broker
            if sub is not None:
                with contextlib.suppress(NatsError, OSError, TimeoutError):
                    await sub.unsubscribe()
        lease, self._lease = self._lease, None
        if lease is not None:
            await lease.release()

    async def _connection(self) -> NatsClient:
        if self._nc is not None and not self._nc.is_closed:
            return self._nc
        async with self._lock:
            if self._nc is None or self._nc.is_closed:
                self._closed = False
                self._nc = await self._connect()
        return self._nc

    async def _connect(self) -> NatsClient:
        with _failing(f"cannot connect to {self.servers}"):
            self._lease = await connect(self._options, self)
        return self._lease.nc

    async def _ready(self) -> NatsClient:
        nc = await self._connection()
        if not nc.is_connected:
            raise RegistryError(f"nats registry: not connected to {self.servers}", id=_ID)
        return nc

    async def on_disconnect(self) -> None:
        if not self._closed:
            log.warning("nats registry: disconnected from %s; reconnecting", self.servers)

    async def on_reconnect(self) -> None:
        """Re-announce our nodes: watchers may have expired them during the outage."""
        log.info("nats registry: reconnected")
        nc = self._nc
        if nc is None:
            return
        with contextlib.suppress(NatsError, OSError):
            for entries in self._local.values():
                for entry in entries.values():
                    await nc.publish(*self._event(entry.service, "refresh", entry.ttl))

    # -- registering ----------------------------------------------------------------------

    async def register(self, service: Service, *, ttl: float | None = None) -> None:
        nc = await self._ready()
        events = [self._remember(service, node, ttl) for node in service.nodes]
        with _failing(f"register {service.name}"):
            await self._subscribe_queries(nc, service.name)  # before any announcement
            for subject, body in events:
                await nc.publish(subject, body)
            await settle(nc)

    def _remember(self, service: Service, node: Node, ttl: float | None) -> tuple[str, bytes]:
        """Keep one node to answer for; the announcement to publish."""
        loop = asyncio.get_running_loop()
        one = msgspec.structs.replace(service, nodes=[node])
        entries = self._local.setdefault(service.name, {})
        old = entries.get(node.id)
        if old is not None and old.timer is not None:
            old.timer.cancel()
        entry = entries[node.id] = _Local(one, ttl, loop.time() + ttl if ttl else None)
        if ttl:
            entry.timer = loop.call_later(ttl, self._lapse, service.name, node.id)
        action = "create" if old is None else "refresh" if old.service == one else "update"
        return self._event(one, action, ttl)

    async def deregister(self, service: Service) -> None:
        nc = await self._ready()
        entries = self._local.get(service.name, {})
        gone = [e for node in service.nodes if (e := entries.pop(node.id, None)) is not None]
        with _failing(f"deregister {service.name}"):
            await self._prune(service.name)  # stop answering before saying goodbye
            for entry in gone:
                if entry.timer is not None:
                    entry.timer.cancel()
                await nc.publish(*self._event(entry.service, "delete", None))
            await settle(nc)

    def _lapse(self, name: str, node_id: str) -> None:
        """A registration's TTL passed with no re-register: forget it and say so."""
        entry = self._local.get(name, {}).pop(node_id, None)
        if entry is None or self._nc is None:
            return
        nc = self._nc

        async def goodbye() -> None:
            with contextlib.suppress(NatsError, OSError):
                await self._prune(name)
                await nc.publish(*self._event(entry.service, "delete", None))

        self._spawn(goodbye())

    async def _subscribe_queries(self, nc: NatsClient, name: str) -> None:
        if name not in self._query_subs:

            async def answer_one(msg: Msg) -> None:
                await self._answer(msg, [name])

            self._query_subs[name] = await nc.subscribe(
                query_subject(self.prefix, name), cb=answer_one
            )
        if self._list_sub is None:

            async def answer_all(msg: Msg) -> None:
                await self._answer(msg, list(self._local))

            self._list_sub = await nc.subscribe(list_subject(self.prefix), cb=answer_all)

    async def _prune(self, name: str) -> None:
        """Stop answering for a service with no node left here (and for lists, if none)."""
        if self._local.get(name):
            return
        self._local.pop(name, None)
        if (sub := self._query_subs.pop(name, None)) is not None:
            await sub.unsubscribe()
        if not self._local and self._list_sub is not None:
            sub, self._list_sub = self._list_sub, None
            await sub.unsubscribe()

    async def _answer(self, msg: Msg, names: list[str]) -> None:
        if not msg.reply or self._nc is None:
            return
        now = asyncio.get_running_loop().time()
        live = [
            Announcement("refresh", e.service, None if e.expires is None else e.expires - now)
            for name in names
            for e in self._local.get(name, {}).values()
            if e.expires is None or e.expires > now
        ]
        with contextlib.suppress(NatsError, OSError):
            await self._nc.publish(msg.reply, encode_answer(live))

    def _event(self, service: Service, action: str, ttl: float | None) -> tuple[str, bytes]:
        ann = Announcement(action, service, ttl)  # type: ignore[arg-type]
        return event_subject(self.prefix, service.name), encode_event(ann)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- looking up -----------------------------------------------------------------------

    async def get_service(self, name: str) -> list[Service]:
        found = [a.service for a in await self._ask(query_subject(self.prefix, name))]
        found = [s for s in found if s.name == name]
        if not found:
            raise ServiceNotFound(f"service {name}: not found", id=_ID)
        return group_by_version(found)

    async def list_services(self) -> list[Service]:
        found = group_by_version(a.service for a in await self._ask(list_subject(self.prefix)))
        return sorted(found, key=lambda s: (s.name, s.version))

    async def _ask(self, subject: str) -> list[Announcement]:
        """Publish a query and gather answers until they stop (or nobody is there)."""
        nc = await self._ready()
        answers: asyncio.Queue[Msg] = asyncio.Queue()
        with _failing(f"query {subject}"):
            sub = await nc.subscribe(nc.new_inbox(), cb=answers.put)
            try:
                await nc.publish(subject, b"", reply=sub.subject)
                return await self._gather(answers, subject)
            finally:
                await sub.unsubscribe()

    async def _gather(self, answers: asyncio.Queue[Msg], subject: str) -> list[Announcement]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        wait, found = self.timeout, []
        while wait > 0:
            try:
                async with asyncio.timeout(wait):
                    msg = await answers.get()
            except TimeoutError:
                break
            if msg.headers and msg.headers.get("Status") == "503":
                break  # no responders: nobody holds such a node
            found.extend(decode_answer(msg.data, subject))
            wait = min(self.gather, deadline - loop.time())
        return found

    # -- watching -------------------------------------------------------------------------

    async def watch(self, service: str | None = None) -> AsyncGenerator[Result, None]:
        nc = await self._ready()
        queue: asyncio.Queue[Announcement | list[Announcement] | None] = asyncio.Queue()

        async def on_event(msg: Msg) -> None:
            ann = decode_event(msg.data, msg.subject)
            if ann is not None and (service is None or ann.service.name == service):
                queue.put_nowait(ann)

        sub = await nc.subscribe(event_subject(self.prefix, service), cb=on_event)
        self._watchers.add(queue)
        seed = asyncio.ensure_future(self._seed(service, queue))
        try:
            await settle(nc)
            async with contextlib.aclosing(_fold(queue)) as results:
                async for result in results:
                    yield result
        finally:
            seed.cancel()
            self._watchers.discard(queue)
            with contextlib.suppress(NatsError, OSError):
                await sub.unsubscribe()

    async def _seed(
        self, service: str | None, queue: asyncio.Queue[Announcement | list[Announcement] | None]
    ) -> None:
        """Tell the watch which nodes were live before it began."""
        subject = (
            list_subject(self.prefix) if service is None else query_subject(self.prefix, service)
        )
        try:
            found = await self._ask(subject)
        except RegistryError as exc:
            log.warning("nats registry: watch could not learn live nodes: %s", exc)
            return
        queue.put_nowait([a for a in found if service is None or a.service.name == service])


async def _fold(
    queue: asyncio.Queue[Announcement | list[Announcement] | None],
) -> AsyncGenerator[Result, None]:
    """Announcements (and a seed list) in; create/update/delete out, with TTL expiry."""
    loop, table = asyncio.get_running_loop(), NodeTable()
    while True:
        deadline = table.next_expiry()
        try:
            async with asyncio.timeout_at(deadline):
                item = await queue.get()
        except TimeoutError:
            for lapsed in table.expire(loop.time()):
                yield lapsed
            continue
        if item is None:
            return
        if isinstance(item, list):
            for ann in item:
                table.seed(ann, loop.time())
        elif (result := table.apply(item, loop.time())) is not None:
            yield result
