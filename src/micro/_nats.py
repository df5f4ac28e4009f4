"""What the NATS registry, broker and transport share about nats-py: one connection.

A service whose registry, broker and transport all point at the same NATS servers holds
**one** NATS connection, not three: :func:`connect` hands out leases on a connection kept
per event loop and per :class:`Options.key` (the server URLs and the credentials), and the
last :meth:`Lease.release` drains and closes it. Each user keeps its own subscriptions and
unsubscribes them itself before releasing; nats-py's one ``disconnected_cb`` and
``reconnected_cb`` are fanned out to every user (the transport fails its sockets, the
registry re-announces its nodes). The first user's timing options (``connect_timeout``,
``reconnect_wait``, the connection name) are the connection's.

The first connect is bounded: it gives up once every server has failed once (nats-py would
otherwise retry it forever, since the reconnects that ride out a later outage are
unlimited).

:func:`settle` waits until the server has processed every command this connection sent so
far. ``Client.flush()`` alone does not promise that in nats-py 2.16: it writes its PING
straight to the socket, ahead of commands still queued for the client's flusher task (a SUB
just made, a PUB just published), so its PONG can come back before the server saw them, and
a lookup made right after a ``register`` then finds "no responders" (seen about 1 run in 10
on a fresh server). Handing the queue to the flusher first and then pinging keeps the order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from nats.aio.client import Client as NatsClient

__all__ = [
    "SETTLE_TIMEOUT",
    "Lease",
    "Options",
    "User",
    "connect",
    "parse_servers",
    "settle",
]

log = logging.getLogger("micro.nats")

SETTLE_TIMEOUT = 2  # seconds; nats-py wants an int
DRAIN_TIMEOUT = 5  # seconds the last release gives pending messages


async def settle(nc: NatsClient, timeout: int = SETTLE_TIMEOUT) -> None:
    """Return once the server has processed everything sent on ``nc`` before the call.

    Raises:
        TimeoutError: the queued commands were not written within ``timeout`` seconds (an
            int: nats-py wants one), e.g. while the connection is down.
        nats.errors.Error: the PING was not answered in time, or the connection is closed.
    """
    flush_queued = getattr(nc, "_flush_pending", None)  # private: absent, the PING is all
    if flush_queued is not None:
        async with asyncio.timeout(timeout):  # its own wait has no limit by default
            await flush_queued(force_flush=True)
    await nc.flush(timeout=timeout)


def parse_servers(address: str | Sequence[str]) -> list[str]:
    """``"a:4222,nats://b:4222"`` (or a sequence) -> NATS URLs, ``nats://`` added where missing.

    Raises:
        ValueError: no server in ``address``.
    """
    parts = address.split(",") if isinstance(address, str) else list(address)
    servers = [p.strip() for p in parts if p.strip()]
    if not servers:
        raise ValueError(f"no NATS server in address {address!r}")
    return [s if "://" in s else f"nats://{s}" for s in servers]


class User(Protocol):
    """A holder of a lease, told when the shared connection drops and comes back."""

    async def on_disconnect(self) -> None: ...
    async def on_reconnect(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Options:
    """How to reach NATS. Two users share a connection when their :attr:`key` is equal."""

    servers: tuple[str, ...]
    user: str | None = None
    password: str | None = None
    token: str | None = None
    creds: str | None = None  # user credentials file (JWT and NKey)
    nkey: str | None = None  # NKey seed file
    tls: ssl.SSLContext | None = None
    tls_files: tuple[str | None, ...] = ()  # what ``tls`` was built from, when known
    name: str = "micro"
    connect_timeout: float = 5.0
    reconnect_wait: float = 0.5

    @property
    def key(self) -> tuple[object, ...]:
        """The servers and credentials. A TLS context counts by the files it came from, else
        by identity: two contexts built apart are never assumed to be the same."""
        tls: object = None
        if self.tls is not None:
            tls = self.tls_files if any(self.tls_files) else id(self.tls)
        return (self.servers, self.user, self.password, self.token, self.creds, self.nkey, tls)

    def connect_kwargs(self) -> dict[str, Any]:
        auth = {
            "user": self.user,
            "password": self.password,
            "token": self.token,
            "user_credentials": self.creds,
            "nkeys_seed": self.nkey,
            "tls": self.tls,
        }
        return {k: v for k, v in auth.items() if v is not None}


@dataclass(eq=False)
class _Shared:
    options: Options
    nc: NatsClient = field(default_factory=NatsClient)
    users: list[User] = field(default_factory=list)
    first_errors: list[Exception] | None = None
    first_failed: asyncio.Event = field(default_factory=asyncio.Event)
    ready: asyncio.Future[None] | None = None

    async def open(self) -> None:
        """The first connect, given up once every server has failed once."""
        options = self.options
        self.first_errors = []
        connect = asyncio.ensure_future(
            self.nc.connect(
                servers=list(options.servers),
                name=options.name,
                connect_timeout=options.connect_timeout,  # type: ignore[arg-type]
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=options.reconnect_wait,  # type: ignore[arg-type]
                drain_timeout=DRAIN_TIMEOUT,
                error_cb=self._on_error,
                disconnected_cb=self._on_disconnect,
                reconnected_cb=self._on_reconnect,
                **options.connect_kwargs(),
            )
        )
        failed = asyncio.ensure_future(self.first_failed.wait())
        try:
            await asyncio.wait(
                {connect, failed},
                timeout=options.connect_timeout * len(options.servers) + 1.0,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            failed.cancel()
            if not connect.done():
                connect.cancel()
                await asyncio.gather(connect, return_exceptions=True)
        errors, self.first_errors = self.first_errors or [], None
        if connect.cancelled():
            last = errors[-1] if errors else TimeoutError("no answer")
            raise ConnectionError(f"every server failed: {last!r}")
        connect.result()

    async def _on_error(self, exc: Exception) -> None:
        if self.first_errors is not None:  # the first connect: one round over the servers
            self.first_errors.append(exc)
            if len(self.first_errors) >= len(self.options.servers):
                self.first_failed.set()
            return
        log.warning("NATS %s: %r", ",".join(self.options.servers), exc)

    async def _on_disconnect(self) -> None:
        for user in list(self.users):
            try:
                await user.on_disconnect()
            except Exception:  # one user's failure must not keep the news from the others
                log.exception("NATS disconnect callback of %r failed", user)

    async def _on_reconnect(self) -> None:
        for user in list(self.users):
            try:
                await user.on_reconnect()
            except Exception:
                log.exception("NATS reconnect callback of %r failed", user)


# per event loop, per Options.key; a loop that is gone takes its table with it
_tables: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[object, ...], _Shared]]
_tables = weakref.WeakKeyDictionary()


class Lease:
    """One user's hold on a shared connection; :meth:`release` once, when done with it."""

    __slots__ = ("_shared", "_user", "nc")

    def __init__(self, shared: _Shared, user: User) -> None:
        self._shared: _Shared | None = shared
        self._user = user
        self.nc = shared.nc

    @property
    def shared_with(self) -> int:
        """How many users hold the connection, this one included (0 once released)."""
        return len(self._shared.users) if self._shared is not None else 0

    async def release(self) -> None:
        """Stop being told about the connection; the last user drains and closes it.

        Never raises.
        """
        shared, self._shared = self._shared, None
        if shared is None:
            return
        with contextlib.suppress(ValueError):
            shared.users.remove(self._user)
        if shared.users:
            return
        table = _tables.get(asyncio.get_running_loop(), {})
        if table.get(shared.options.key) is shared:
            del table[shared.options.key]
        await _close(shared.nc)


async def connect(options: Options, user: User) -> Lease:
    """A lease on the connection for ``options.key`` in this event loop, made if needed.

    Raises:
        ConnectionError: every server failed the first connect.
        nats.errors.Error: the server refused the connection (e.g. bad credentials).
    """
    table = _tables.setdefault(asyncio.get_running_loop(), {})
    key = options.key
    shared = table.get(key)
    if shared is not None and shared.nc.is_closed:
        del table[key]
        shared = None
    if shared is None:
        shared = _Shared(options)
        shared.ready = asyncio.get_running_loop().create_future()
        table[key] = shared
        try:
            await shared.open()
        except BaseException as exc:
            if table.get(key) is shared:
                del table[key]
            await _close(shared.nc)
            if isinstance(exc, Exception):
                shared.ready.set_exception(exc)
                shared.ready.exception()  # retrieved: the waiters re-raise their own way
            else:
                shared.ready.cancel()
            raise
        shared.ready.set_result(None)
    else:
        assert shared.ready is not None
        await asyncio.shield(shared.ready)  # another user's first connect: share its outcome
    shared.users.append(user)
    return Lease(shared, user)


async def _close(nc: NatsClient) -> None:
    """Drain (pending publishes go out) then close; never raises."""
    if nc.is_closed:
        return
    try:
        if nc.is_connected:
            await nc.drain()
        else:
            await nc.close()
    except Exception as exc:
        log.debug("NATS close: %r", exc)
        with contextlib.suppress(Exception):
            await nc.close()
